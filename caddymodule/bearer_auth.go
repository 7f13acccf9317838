package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"

	"github.com/portcullis-gw/portcullis/dpop"
	"github.com/portcullis-gw/portcullis/flows"
	"github.com/portcullis-gw/portcullis/proxy"
)

func init() {
	caddy.RegisterModule(BearerAuth{})
}

// BearerAuth is the API guard: requests need an OAuth 2.0 access token
// (RFC 6750 Bearer, or DPoP-bound per RFC 9449). JWTs are verified against
// the issuer's JWKS, other tokens introspected (RFC 7662) — in process,
// without HTTP, when the issuer is the embedded server of this Caddy.
// Failures are answered per RFC 6750 with WWW-Authenticate; the API's
// protected resource metadata (RFC 9728) is served at
// /.well-known/oauth-protected-resource.
//
// Placeholders set for authorized requests:
//
//	{portcullis.token.sub}        the subject
//	{portcullis.token.client_id}  the client the token was issued to
//	{portcullis.token.scope}      the granted scopes, space-separated
//	{portcullis.claims.NAME}      any claim (JWT) or introspection member
type BearerAuth struct {
	// Issuer of the tokens: its discovery document gives the JWKS and the
	// introspection endpoint. Required.
	Issuer string `json:"issuer"`
	// JWKSURI overrides the discovered jwks_uri.
	JWKSURI string `json:"jwks_uri,omitempty"`
	// Audiences: a token's aud must contain one of them. Required unless
	// AnyAudience.
	Audiences []string `json:"audiences,omitempty"`
	// AnyAudience accepts tokens for any audience (not recommended: a
	// token for another API of the same issuer would pass).
	AnyAudience bool `json:"any_audience,omitempty"`
	// Algorithms allowed for JWT signatures. Default: the asymmetric ones
	// the issuer advertises. none and HMAC are never accepted.
	Algorithms []string `json:"algorithms,omitempty"`
	// RequireATJWT demands RFC 9068 access tokens (typ at+jwt).
	RequireATJWT bool `json:"require_at_jwt,omitempty"`
	// Leeway for exp, nbf and iat. Default: see proxy.GuardConfig.
	Leeway caddy.Duration `json:"leeway,omitempty"`
	// Scopes the token must carry: all of them, or any one with AnyScope.
	Scopes   []string `json:"scopes,omitempty"`
	AnyScope bool     `json:"any_scope,omitempty"`
	// RequireClaims: each claim must have (or contain) one of the values.
	RequireClaims map[string][]string `json:"require_claims,omitempty"`
	// Headers maps upstream request headers to claims; client-sent
	// headers of those names are always removed.
	Headers map[string]string `json:"headers,omitempty"`
	// ForwardAuthorization passes the client's Authorization (and DPoP)
	// header upstream. Default: see proxy.GuardConfig.
	ForwardAuthorization *bool `json:"forward_authorization,omitempty"`
	// AllowQueryToken accepts the access_token query parameter (RFC 6750
	// §2.3). Off by default: URLs end up in logs.
	AllowQueryToken bool `json:"allow_query_token,omitempty"`
	// IntrospectionEndpoint overrides the discovered one.
	IntrospectionEndpoint string `json:"introspection_endpoint,omitempty"`
	// ClientID and ClientSecret authenticate introspection requests
	// (client_secret_basic); placeholders expanded. Not needed for the
	// embedded server of this Caddy.
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	// CacheTTL bounds how long an introspection answer is reused (never
	// past the token's exp); NegativeCacheTTL for inactive answers;
	// CacheEntries bounds each cache.
	CacheTTL         caddy.Duration `json:"cache_ttl,omitempty"`
	NegativeCacheTTL caddy.Duration `json:"negative_cache_ttl,omitempty"`
	CacheEntries     int            `json:"cache_entries,omitempty"`
	// IntrospectJWTs checks every JWT at the introspection endpoint too
	// (through the cache), so that a remote issuer's revocation reaches
	// this API within CacheTTL instead of at the token's exp. Needs
	// ClientID and ClientSecret. Not needed when the issuer is this
	// Caddy's embedded server, whose revocations are seen at once.
	// Default: off.
	IntrospectJWTs bool `json:"introspect_jwts,omitempty"`
	// DecryptionKeys are PEM private key files for JWE access tokens.
	DecryptionKeys []string `json:"decryption_keys,omitempty"`
	// Resource is this API's identifier in its RFC 9728 metadata. Default:
	// the request origin.
	Resource string `json:"resource,omitempty"`
	// ResourceName is a human-readable name in the metadata.
	ResourceName string `json:"resource_name,omitempty"`
	// DisableMetadata stops serving /.well-known/oauth-protected-resource.
	DisableMetadata bool `json:"disable_metadata,omitempty"`
	// RequireDPoP refuses Bearer tokens: every token must be DPoP-bound.
	RequireDPoP bool `json:"require_dpop,omitempty"`
	// DPoPNonce requires server-provided DPoP nonces (RFC 9449 §9).
	DPoPNonce bool `json:"dpop_nonce,omitempty"`

	guard  *proxy.Guard
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (BearerAuth) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.bearer_auth", New: func() caddy.Module { return new(BearerAuth) }}
}

// Provision builds the guard and starts issuer discovery.
func (h *BearerAuth) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	repl := caddy.NewReplacer()
	var decryption []jose.JSONWebKey
	for _, path := range h.DecryptionKeys {
		path = repl.ReplaceKnown(path, "")
		raw, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("bearer_auth: decryption key: %w", err)
		}
		key, err := proxy.ParseSigningKey(raw)
		if err != nil {
			return fmt.Errorf("bearer_auth: decryption key %s: %w", path, err)
		}
		decryption = append(decryption, jose.JSONWebKey{Key: key})
	}
	cfg := proxy.GuardConfig{
		Issuer: h.Issuer, JWKSURI: h.JWKSURI, Audiences: h.Audiences, AnyAudience: h.AnyAudience,
		Algorithms: h.Algorithms, RequireATJWT: h.RequireATJWT, Leeway: time.Duration(h.Leeway),
		Scopes: h.Scopes, AnyScope: h.AnyScope, RequireClaims: h.RequireClaims, Headers: h.Headers,
		AllowQueryToken: h.AllowQueryToken, IntrospectionEndpoint: h.IntrospectionEndpoint,
		ClientID: h.ClientID, ClientSecret: repl.ReplaceKnown(h.ClientSecret, ""),
		CacheTTL: time.Duration(h.CacheTTL), NegativeTTL: time.Duration(h.NegativeCacheTTL), CacheEntries: h.CacheEntries,
		DecryptionKeys: decryption, Resource: h.Resource, ResourceName: h.ResourceName, ServeMetadata: !h.DisableMetadata,
		RequireDPoP: h.RequireDPoP, IntrospectJWTs: h.IntrospectJWTs, Logger: h.logger,
	}
	// DPoP proofs name the URL the client requested, before any rewrite
	// (handle_path, uri strip_prefix) changed r.URL.
	cfg.RequestURL = func(r *http.Request) *url.URL {
		u := dpop.RequestURL(r)
		// Caddy keeps only the method and URL of the original request.
		if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && orig.URL != nil {
			u.Path, u.RawPath = orig.URL.Path, orig.URL.RawPath
		}
		return u
	}
	metrics, err := guardMetricsFor(ctx.GetMetricsRegistry(), h.Issuer)
	if err != nil {
		return fmt.Errorf("bearer_auth: metrics: %w", err)
	}
	cfg.Metrics = metrics
	if h.ForwardAuthorization != nil {
		cfg.ForwardAuthorization = *h.ForwardAuthorization
	}
	if h.DPoPNonce {
		cfg.DPoP = &dpop.Verifier{Nonces: dpop.NewNonceSource(5 * time.Minute)}
	}
	// An explicit introspection endpoint or client is the user's choice of
	// HTTP introspection; otherwise this Caddy's own server answers in
	// process.
	srv := h.embeddedServer(ctx)
	if srv != nil && h.IntrospectionEndpoint == "" && h.ClientID == "" {
		cfg.Introspector = inProcessIntrospector{srv}
		h.logger.Info("opaque tokens of the embedded authorization server are introspected in process", zap.String("issuer", h.Issuer))
	}
	if srv != nil {
		// Revoked JWTs of this Caddy's own server are refused at once.
		cfg.Revocations = srv
	}
	if h.guard, err = proxy.NewGuard(cfg); err != nil {
		return fmt.Errorf("bearer_auth: %w", err)
	}
	return nil
}

// embeddedServer is this Caddy's authorization server when it is the
// guard's issuer.
func (h *BearerAuth) embeddedServer(ctx caddy.Context) *flows.Server {
	appIface, err := ctx.AppIfConfigured("portcullis")
	if err != nil || appIface == nil {
		return nil
	}
	app := appIface.(*App)
	if app.server == nil || strings.TrimSuffix(app.Issuer, "/") != strings.TrimSuffix(h.Issuer, "/") {
		return nil
	}
	return app.server
}

// inProcessIntrospector adapts the embedded server to proxy.Introspector.
type inProcessIntrospector struct{ srv *flows.Server }

func (i inProcessIntrospector) Introspect(ctx context.Context, token string) (map[string]any, error) {
	return i.srv.IntrospectAccessToken(ctx, token)
}

// Validate rejects configuration that cannot work.
func (h *BearerAuth) Validate() error {
	if h.Issuer == "" {
		return errors.New("bearer_auth: issuer is required")
	}
	if len(h.Audiences) == 0 && !h.AnyAudience {
		return errors.New("bearer_auth: set audience (the API identifier) or any_audience")
	}
	return nil
}

// Cleanup stops issuer discovery.
func (h *BearerAuth) Cleanup() error {
	if h.guard != nil {
		h.guard.Close()
	}
	return nil
}

// ServeHTTP authorizes the request and passes it on with placeholders and
// upstream headers, or answers it (401, 403, 400, the metadata document).
func (h *BearerAuth) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	tok, done := h.guard.Serve(w, r)
	if done {
		return nil
	}
	h.guard.Prepare(r, tok)
	if tok != nil {
		repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		repl.Map(func(key string) (any, bool) {
			if claim, ok := strings.CutPrefix(key, "portcullis.claims."); ok {
				return tok.ClaimString(claim), true
			}
			switch key {
			case "portcullis.token.sub":
				return tok.Subject, true
			case "portcullis.token.client_id":
				return tok.ClientID, true
			case "portcullis.token.scope":
				return strings.Join(tok.Scopes, " "), true
			}
			return nil, false
		})
	}
	return next.ServeHTTP(w, r)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*BearerAuth)(nil)
	_ caddy.Validator             = (*BearerAuth)(nil)
	_ caddy.CleanerUpper          = (*BearerAuth)(nil)
	_ caddyhttp.MiddlewareHandler = (*BearerAuth)(nil)
	_ proxy.Introspector          = inProcessIntrospector{}
	_ proxy.RevocationList        = (*flows.Server)(nil)
	_ proxy.GuardMetrics          = (*guardMetrics)(nil)
)
