package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"
)

// issuerMetadata are the fields of OpenID Provider / RFC 8414 metadata the
// guard uses.
type issuerMetadata struct {
	Issuer        string `json:"issuer"`
	JWKSURI       string `json:"jwks_uri"`
	Introspection string `json:"introspection_endpoint"`
	// The issuer's own signing algorithms: what it signs ID tokens,
	// userinfo and introspection answers and JARM responses with is what
	// it signs access tokens with.
	IDTokenAlgs       []string `json:"id_token_signing_alg_values_supported"`
	UserinfoAlgs      []string `json:"userinfo_signing_alg_values_supported"`
	IntrospectionAlgs []string `json:"introspection_signing_alg_values_supported"`
	AuthorizationAlgs []string `json:"authorization_signing_alg_values_supported"`
}

// maxMetadataSize bounds what is read from the issuer (metadata, JWKS,
// introspection answers).
const maxMetadataSize = 1 << 20

// discover loads the issuer's metadata and keys in the background,
// retrying with capped exponential back-off (as the login gateway does), so
// an issuer that is down when Caddy starts does not stop Caddy: requests
// get 503 until it answers.
func (g *Guard) discover(ctx context.Context) {
	retryWithBackoff(ctx, func() error {
		iss, err := g.loadIssuer(ctx)
		if err != nil {
			return err
		}
		g.issuer.Store(iss)
		close(g.ready)
		g.triedFlag.Do(func() { close(g.triedOnce) })
		g.log.Info("API guard ready", zap.String("issuer", g.cfg.Issuer),
			zap.Bool("jwt", iss.keys != nil), zap.Bool("introspection", iss.introspector != nil))
		return nil
	}, func(err error, retryIn time.Duration) {
		g.triedFlag.Do(func() { close(g.triedOnce) })
		g.log.Warn("authorization server discovery failed; retrying", zap.String("issuer", g.cfg.Issuer),
			zap.Duration("retry_in", retryIn), zap.Error(err))
	})
}

// waitIssuer returns the discovered issuer. While the first discovery
// attempt is under way (start-up) it waits for it, briefly.
func (g *Guard) waitIssuer(ctx context.Context) *guardIssuer {
	if iss := g.issuer.Load(); iss != nil {
		return iss
	}
	t := time.NewTimer(3 * time.Second)
	defer t.Stop()
	// Right after start the issuer is often this very Caddy, whose
	// listeners open only after every handler is provisioned: the first
	// attempt fails by construction, so early requests wait for success
	// (bounded). Later, an issuer that is down fails requests fast.
	tried := g.triedOnce
	if g.now().Sub(g.started) < startupGrace {
		tried = nil
	}
	select {
	case <-g.ready:
	case <-tried:
	case <-t.C:
	case <-ctx.Done():
	}
	return g.issuer.Load()
}

// startupGrace is how long after start requests wait for discovery.
const startupGrace = 30 * time.Second

// httpIntrospectionEnabled says opaque tokens are introspected over HTTP.
func (g *Guard) httpIntrospectionEnabled() bool {
	return g.cfg.Introspector == nil && (g.cfg.ClientID != "" || g.cfg.IntrospectionEndpoint != "")
}

// loadIssuer builds the issuer from configuration, discovering what is not
// configured, and fetches its keys once.
func (g *Guard) loadIssuer(ctx context.Context) (*guardIssuer, error) {
	jwksURI, endpoint, algs := g.cfg.JWKSURI, g.cfg.IntrospectionEndpoint, g.algs
	if jwksURI == "" || (g.httpIntrospectionEnabled() && endpoint == "") {
		meta, err := g.fetchMetadata(ctx)
		if err != nil {
			return nil, err
		}
		if jwksURI == "" {
			jwksURI = meta.JWKSURI
		}
		if endpoint == "" {
			endpoint = meta.Introspection
		}
		if algs == nil {
			algs = advertisedAlgorithms(meta)
		}
		for _, u := range []string{jwksURI, endpoint} {
			if u != "" {
				if err := checkAbsoluteURL(u); err != nil {
					return nil, fmt.Errorf("issuer metadata: %w", err)
				}
			}
		}
	}
	if algs == nil {
		algs = []jose.SignatureAlgorithm{jose.RS256, jose.ES256}
	}
	iss := &guardIssuer{algs: algs, introspector: g.cfg.Introspector}
	if jwksURI != "" {
		iss.keys = newKeySet(g, jwksURI)
		iss.keys.refresh(ctx)
	} else {
		g.log.Warn("the issuer publishes no jwks_uri: JWT access tokens will be refused", zap.String("issuer", g.cfg.Issuer))
	}
	if g.httpIntrospectionEnabled() {
		if endpoint != "" {
			iss.introspector = &httpIntrospector{g: g, endpoint: endpoint}
		} else {
			g.log.Warn("the issuer has no introspection_endpoint: opaque access tokens will be refused", zap.String("issuer", g.cfg.Issuer))
		}
	}
	return iss, nil
}

// fetchMetadata reads the issuer's metadata: OpenID Connect Discovery
// first, then RFC 8414 (whose well-known path goes before the issuer's
// path, §3.1).
func (g *Guard) fetchMetadata(ctx context.Context) (*issuerMetadata, error) {
	u, err := url.Parse(g.cfg.Issuer)
	if err != nil {
		return nil, err
	}
	oidcURL := strings.TrimSuffix(g.cfg.Issuer, "/") + "/.well-known/openid-configuration"
	rfc8414 := *u
	rfc8414.Path = "/.well-known/oauth-authorization-server" + strings.TrimSuffix(u.Path, "/")
	rfc8414.RawPath = ""
	var errs []error
	for _, where := range []string{oidcURL, rfc8414.String()} {
		var meta issuerMetadata
		if err := g.getJSON(ctx, where, "application/json", &meta); err != nil {
			errs = append(errs, err)
			continue
		}
		// RFC 8414 §3.3 and OIDC Discovery §4.3: the issuer in the metadata
		// MUST be identical to the one it was fetched for.
		if meta.Issuer != g.cfg.Issuer {
			errs = append(errs, fmt.Errorf("%s: metadata names issuer %q, not %q", where, meta.Issuer, g.cfg.Issuer))
			continue
		}
		return &meta, nil
	}
	return nil, errors.Join(errs...)
}

// advertisedAlgorithms are the asymmetric JWS algorithms the issuer says
// it signs with, nil when it says none.
func advertisedAlgorithms(meta *issuerMetadata) []jose.SignatureAlgorithm {
	var out []jose.SignatureAlgorithm
	for _, list := range [][]string{meta.IDTokenAlgs, meta.UserinfoAlgs, meta.IntrospectionAlgs, meta.AuthorizationAlgs} {
		for _, a := range list {
			alg := jose.SignatureAlgorithm(a)
			if slices.Contains(asymmetricAlgs, alg) && !slices.Contains(out, alg) {
				out = append(out, alg)
			}
		}
	}
	return out
}

// asymmetricAlgs are the JWS algorithms the guard can accept.
var asymmetricAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// parseAlgorithms checks configured algorithms: asymmetric ones only. HMAC
// with a public key as the secret (alg confusion) and none are refused
// here, at configuration time, whatever the provider says.
func parseAlgorithms(names []string) ([]jose.SignatureAlgorithm, error) {
	if len(names) == 0 {
		return nil, nil
	}
	out := make([]jose.SignatureAlgorithm, 0, len(names))
	for _, n := range names {
		alg := jose.SignatureAlgorithm(n)
		switch {
		case slices.Contains(asymmetricAlgs, alg):
			if !slices.Contains(out, alg) {
				out = append(out, alg)
			}
		case strings.EqualFold(n, "none") || strings.HasPrefix(strings.ToUpper(n), "HS"):
			return nil, fmt.Errorf("algorithm %q is never accepted for access tokens: use an asymmetric one (RS256, PS256, ES256, EdDSA…)", n)
		default:
			return nil, fmt.Errorf("unknown signing algorithm %q; use one of %v", n, asymmetricAlgs)
		}
	}
	return out, nil
}

// getJSON GETs u and decodes its JSON body into v.
func (g *Guard) getJSON(ctx context.Context, u, accept string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", accept)
	resp, err := g.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decodeJSONResponse(u, resp, v)
}

// decodeJSONResponse reads a 200 JSON answer of bounded size.
func decodeJSONResponse(u string, resp *http.Response, v any) error {
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("%s: status %d", u, resp.StatusCode)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "" && mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return fmt.Errorf("%s: content type %q is not JSON", u, mt)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataSize+1))
	if err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	if len(body) > maxMetadataSize {
		return fmt.Errorf("%s: answer larger than %d bytes", u, maxMetadataSize)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	return nil
}
