package proxy

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
)

// provider is a discovered OpenID Provider with what the gateway needs of
// its metadata.
type provider struct {
	oidc     *oidc.Provider
	verifier *oidc.IDTokenVerifier
	oauth    oauth2.Config
	meta     providerMetadata
}

// providerMetadata are the discovery fields go-oidc does not expose.
type providerMetadata struct {
	EndSession           string   `json:"end_session_endpoint"`
	PAR                  string   `json:"pushed_authorization_request_endpoint"`
	RequirePAR           bool     `json:"require_pushed_authorization_requests"`
	IssParameter         bool     `json:"authorization_response_iss_parameter_supported"`
	ResponseModes        []string `json:"response_modes_supported"`
	CodeChallengeMethods []string `json:"code_challenge_methods_supported"`
}

// discovery fetches the provider's metadata in the background, retrying
// with capped exponential back-off, so a provider that is down when Caddy
// starts does not stop Caddy from starting: new logins get 503 until it
// answers.
type discovery struct {
	current atomic.Pointer[provider]
	ready   chan struct{}
}

func (g *Gateway) discover(ctx context.Context) {
	retryWithBackoff(ctx, func() error {
		p, err := g.fetchProvider(ctx)
		if err != nil {
			return err
		}
		g.disc.current.Store(p)
		close(g.disc.ready)
		g.log.Info("OpenID Provider discovered", zap.String("issuer", g.cfg.Issuer),
			zap.Bool("par", p.meta.PAR != ""), zap.Bool("end_session", p.meta.EndSession != ""))
		return nil
	}, func(err error, retryIn time.Duration) {
		g.log.Warn("OpenID Provider discovery failed; retrying", zap.String("issuer", g.cfg.Issuer),
			zap.Duration("retry_in", retryIn), zap.Error(err))
	})
}

// retryWithBackoff calls attempt until it succeeds or ctx ends, waiting a
// capped, jittered exponential back-off (0.5 s doubling to 1 min) between
// failures, each reported to failed first.
func retryWithBackoff(ctx context.Context, attempt func() error, failed func(err error, retryIn time.Duration)) {
	backoff := 500 * time.Millisecond
	for {
		err := attempt()
		if err == nil {
			return
		}
		failed(err, backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff + rand.N(backoff/4)):
		}
		backoff = min(backoff*2, time.Minute)
	}
}

func (g *Gateway) fetchProvider(ctx context.Context) (*provider, error) {
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, g.http), 15*time.Second)
	defer cancel()
	op, err := oidc.NewProvider(ctx, g.cfg.Issuer)
	if err != nil {
		return nil, err
	}
	p := &provider{oidc: op}
	if err := op.Claims(&p.meta); err != nil {
		return nil, err
	}
	// go-oidc refreshes the JWKS when a token names an unknown kid, and
	// only accepts the algorithms the provider advertises (never none).
	p.verifier = op.VerifierContext(oidc.ClientContext(context.Background(), g.http), &oidc.Config{ClientID: g.cfg.ClientID, Now: g.now})
	p.oauth = oauth2.Config{
		ClientID: g.cfg.ClientID, ClientSecret: g.cfg.ClientSecret, Endpoint: op.Endpoint(), Scopes: g.cfg.Scopes,
	}
	return p, nil
}

// verifyIDToken verifies an ID token with go-oidc, once more when the
// first attempt fails. go-oidc refetches the JWKS for an unknown kid, but
// a verification that arrives while the previous fetch is finishing is
// answered with that fetch's keys: right after the provider rotates its
// key, the first token signed with the new one would be refused. The
// retry sees a fresh fetch; a token that is really bad fails twice.
func (p *provider) verifyIDToken(ctx context.Context, raw string) (*oidc.IDToken, error) {
	idt, err := p.verifier.Verify(ctx, raw)
	if err != nil {
		idt, err = p.verifier.Verify(ctx, raw)
	}
	return idt, err
}

// provider returns the discovered provider, or nil while discovery has not
// succeeded yet.
func (g *Gateway) provider() *provider { return g.disc.current.Load() }

// waitProvider waits briefly for discovery (start-up races), then gives up.
func (g *Gateway) waitProvider(ctx context.Context) *provider {
	if p := g.provider(); p != nil {
		return p
	}
	t := time.NewTimer(3 * time.Second)
	defer t.Stop()
	select {
	case <-g.disc.ready:
	case <-t.C:
	case <-ctx.Done():
	}
	return g.provider()
}

// clientContext carries the gateway's HTTP client into x/oauth2 and go-oidc.
func (g *Gateway) clientContext(ctx context.Context) context.Context {
	return context.WithValue(oidc.ClientContext(ctx, g.http), oauth2.HTTPClient, g.http)
}
