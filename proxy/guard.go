package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"
	"golang.org/x/net/http/httpguts"
	"golang.org/x/sync/singleflight"

	"github.com/portcullis-gw/portcullis/dpop"
)

// This file is the API guard (bearer_auth): it authenticates requests that
// carry an OAuth 2.0 access token, a JWT verified against the issuer's keys
// or an opaque token introspected at the issuer (RFC 7662), checks the
// token's scopes and claims, and passes the request on with identity
// headers. Refusals are answered the RFC 6750 / RFC 9449 way.

// GuardConfig configures a Guard. Zero values take the documented defaults.
type GuardConfig struct {
	// Issuer is the authorization server's issuer identifier. Required.
	// Tokens must carry it as iss. Its metadata is discovered at
	// Issuer/.well-known/openid-configuration, falling back to the RFC 8414
	// /.well-known/oauth-authorization-server, in the background and
	// retried with back-off; until it answers, requests get 503. Discovery
	// is skipped when JWKSURI and (for opaque tokens) IntrospectionEndpoint
	// or Introspector make it unnecessary.
	Issuer string
	// JWKSURI overrides the discovered jwks_uri.
	JWKSURI string
	// Audiences: a token's aud must contain one of them. Required unless
	// AnyAudience.
	Audiences []string
	// AnyAudience accepts tokens whatever their audience. Only for an API
	// that is the issuer's sole resource: any token the issuer minted for
	// anyone is accepted.
	AnyAudience bool
	// Algorithms are the JWS algorithms accepted. Default: the asymmetric
	// algorithms the issuer advertises (id_token_signing_alg_values_supported
	// and the other *_signing_alg_values_supported), else RS256 and ES256.
	// HMAC algorithms and none are never accepted: NewGuard refuses them.
	Algorithms []string
	// RequireATJWT refuses JWTs whose typ is not at+jwt or
	// application/at+jwt (RFC 9068 §4), so an ID token or other JWT of the
	// issuer cannot pass as an access token.
	RequireATJWT bool
	// Leeway is the clock skew allowed on exp, nbf and iat (and on exp and
	// nbf of introspection answers). Default: 10 seconds.
	Leeway time.Duration
	// Scopes are the scopes a token must carry (scope claim, or an scp
	// list). All of them, or any one with AnyScope.
	Scopes []string
	// AnyScope: one of Scopes is enough.
	AnyScope bool
	// RequireClaims: each claim must be (or contain) one of the values.
	RequireClaims map[string][]string
	// Headers maps upstream request headers to claims (see
	// Token.ClaimString; "scope" is the space-separated scope list).
	// Default (nil): DefaultGuardHeaders. An empty map sets none. Headers of
	// these names, of DefaultGuardHeaders and of the login gateway's
	// DefaultHeaders are always removed from what the client sent.
	Headers map[string]string
	// ForwardAuthorization passes the client's Authorization and DPoP
	// headers (and an access_token query parameter) upstream, for an
	// upstream that checks the token again. Default: false, they are
	// removed, so the upstream, its logs and whatever it calls never hold
	// a token that could be replayed here.
	ForwardAuthorization bool
	// AllowQueryToken accepts the token in an access_token query parameter
	// (RFC 6750 §2.3). Default: refused with 400 invalid_request: URLs end
	// up in logs and Referer headers.
	AllowQueryToken bool

	// IntrospectionEndpoint is where opaque tokens are introspected (RFC
	// 7662). A token with two dots is taken for a compact JWS and one with
	// four for a compact JWE, verified locally; any other is opaque.
	// Default: the discovered introspection_endpoint, when ClientID is set.
	IntrospectionEndpoint string
	// ClientID and ClientSecret authenticate the guard at the
	// introspection endpoint (client_secret_basic).
	ClientID, ClientSecret string
	// Introspector, when set, answers introspection instead of HTTP (the
	// embedded authorization server, in process).
	Introspector Introspector
	// CacheTTL is how long an active introspection answer is reused: a
	// revoked token is refused at the latest this long after revocation.
	// Never past the token's exp. Default: 1 minute.
	CacheTTL time.Duration
	// NegativeTTL is how long an inactive answer is reused. Default: 5
	// seconds.
	NegativeTTL time.Duration
	// CacheEntries bounds the verified-JWT cache and the introspection
	// cache, each. Default: 10000.
	CacheEntries int

	// DecryptionKeys are private keys (RSA or EC) for JWE-encrypted access
	// tokens: the token must be a JWS nested in a JWE (RFC 7519 §5.2),
	// encrypted with RSA-OAEP, RSA-OAEP-256 or ECDH-ES (+A128KW, +A192KW,
	// +A256KW) and A128GCM, A192GCM, A256GCM or A*CBC-HS*. A key's alg,
	// when set, is the only one it is used with. Without keys, encrypted
	// tokens are refused.
	DecryptionKeys []jose.JSONWebKey

	// Resource is the RFC 9728 resource identifier (an https URL). Default:
	// the request's origin.
	Resource string
	// ResourceName is the human-readable resource_name of the metadata.
	ResourceName string
	// ServeMetadata serves the RFC 9728 Protected Resource Metadata at
	// /.well-known/oauth-protected-resource (with the resource's path
	// appended when Resource has one, RFC 9728 §3.1) and names it in 401
	// answers (resource_metadata).
	ServeMetadata bool
	// Realm is the realm of WWW-Authenticate challenges. Default: Resource,
	// else the request's origin.
	Realm string
	// BaseURL is scheme://host[:port] as clients reach the API, when that
	// is not what r.TLS and r.Host say (a TLS-terminating load balancer in
	// front). It is the origin of DPoP htu and of the default resource.
	// X-Forwarded-Proto is never trusted.
	BaseURL string
	// RequestURL, when set, returns the URL the client requested (for the
	// DPoP htu check), e.g. the original request before Caddy's rewrites.
	// Default: BaseURL (or the request's origin) and r.URL's path.
	RequestURL func(r *http.Request) *url.URL

	// DPoP verifies DPoP proofs (RFC 9449) for DPoP-bound tokens; set its
	// Now to the guard's clock, if not time.Now. Default: a verifier with
	// the dpop package's defaults (and its own replay cache) on Now.
	DPoP *dpop.Verifier
	// RequireDPoP refuses Bearer tokens: only DPoP-bound tokens presented
	// with the DPoP scheme pass.
	RequireDPoP bool

	// Revocations, when set, is asked about every JWT's jti after its
	// signature and claims pass: the embedded authorization server of the
	// same Caddy answers from memory, so a token it revoked (a replayed
	// code, a reused refresh token, /revoke) is refused at once.
	Revocations RevocationList
	// IntrospectJWTs also introspects every verified JWT (RFC 7662,
	// through the introspection cache) and refuses it when inactive: for a
	// remote issuer whose revocations must reach the API before the
	// token's exp. A revoked JWT then passes for at most CacheTTL after its
	// revocation; without it, until it expires. Needs an introspection
	// endpoint and ClientID, or an Introspector.
	IntrospectJWTs bool

	// HTTPClient talks to the issuer. Default: a client with a 15 s
	// timeout.
	HTTPClient *http.Client
	// Logger receives refusals (reasons only: never a token or a claim).
	Logger *zap.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Metrics, when set, counts what the guard does.
	Metrics GuardMetrics
}

// DefaultGuardHeaders are the identity headers sent upstream when
// GuardConfig.Headers is nil.
var DefaultGuardHeaders = map[string]string{
	"X-Forwarded-User":      "sub",
	"X-Forwarded-Client-Id": "client_id",
	"X-Forwarded-Scope":     "scope",
}

// Introspector answers RFC 7662 token introspection. Implementations must
// be safe for concurrent use.
type Introspector interface {
	// Introspect returns the RFC 7662 response members for token ("active"
	// false or missing = inactive).
	Introspect(ctx context.Context, token string) (map[string]any, error)
}

// RevocationList knows which JWT access tokens its issuer revoked before
// they expired. Implementations must be safe for concurrent use, and fast:
// the guard asks on every request that carries a JWT.
type RevocationList interface {
	// AccessTokenRevoked reports whether the token with this jti was
	// revoked.
	AccessTokenRevoked(ctx context.Context, jti string) (bool, error)
}

// GuardMetrics receives the guard's events. Implementations must be safe
// for concurrent use.
type GuardMetrics interface {
	// Allowed counts a request let through; kind is "jwt" or "opaque".
	Allowed(kind string)
	// Refused counts a refused request by its error code
	// (invalid_request, invalid_token, insufficient_scope,
	// invalid_dpop_proof, use_dpop_nonce, temporarily_unavailable) or
	// "no_token".
	Refused(code string)
	// Introspected counts introspection calls (cache misses) and whether
	// the issuer answered.
	Introspected(ok bool)
	// KeysFetched counts JWKS fetches and whether they succeeded.
	KeysFetched(ok bool)
}

type noGuardMetrics struct{}

func (noGuardMetrics) Allowed(string)    {}
func (noGuardMetrics) Refused(string)    {}
func (noGuardMetrics) Introspected(bool) {}
func (noGuardMetrics) KeysFetched(bool)  {}

const (
	defaultGuardLeeway  = 10 * time.Second
	defaultCacheTTL     = time.Minute
	defaultNegativeTTL  = 5 * time.Second
	defaultCacheEntries = 10_000
	// verifiedJWTMaxAge bounds how long a verified JWT is trusted without
	// checking its signature again, so that a key the issuer withdraws
	// stops working within minutes even for long-lived tokens.
	verifiedJWTMaxAge = 5 * time.Minute
	// maxTokenLength bounds the credential: real access tokens are a few
	// kilobytes; anything larger is refused before it is parsed.
	maxTokenLength = 16 << 10
	// maxConcurrentIntrospections bounds the calls in flight at the issuer,
	// so a flood of random opaque tokens cannot open connections without
	// limit.
	maxConcurrentIntrospections = 64
	introspectionTimeout        = 10 * time.Second
)

// Guard is the API guard for one bearer_auth configuration.
type Guard struct {
	cfg     GuardConfig
	log     *zap.Logger
	http    *http.Client
	now     func() time.Time
	metrics GuardMetrics

	// algs are the configured algorithms (nil: from discovery).
	algs []jose.SignatureAlgorithm
	// issuer is what discovery found; nil until it succeeds.
	issuer    atomic.Pointer[guardIssuer]
	ready     chan struct{}
	triedOnce chan struct{}
	triedFlag sync.Once
	// started is when the guard was built: during startupGrace a request
	// waits for discovery to succeed, not only for its first attempt.
	started time.Time

	verified     *ttlCache[*Token]
	introspected *ttlCache[*Token]
	inactive     *ttlCache[*guardError]
	flight       singleflight.Group
	slots        chan struct{}

	decrypt  []decryptionKey
	jweAlgs  []jose.KeyAlgorithm
	dpop     *dpop.Verifier
	dpopAlgs string

	// strip are removed from every upstream request.
	strip headerSet
	// upstreamHeaders are the configured headers, canonical, and claims.
	upstreamHeaders []upstreamHeader
	cancel          context.CancelFunc
}

// guardIssuer is the issuer as far as the guard needs it.
type guardIssuer struct {
	keys *keySet // nil: the issuer publishes no keys, JWTs are refused
	algs []jose.SignatureAlgorithm
	// introspector is nil when opaque tokens cannot be checked.
	introspector Introspector
}

// NewGuard validates cfg and starts issuer discovery in the background.
// Call Close to stop it.
func NewGuard(cfg GuardConfig) (*Guard, error) {
	if err := checkAbsoluteURL(cfg.Issuer); err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	for name, u := range map[string]string{"jwks_uri": cfg.JWKSURI, "introspection_endpoint": cfg.IntrospectionEndpoint} {
		if u != "" {
			if err := checkAbsoluteURL(u); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	if len(cfg.Audiences) == 0 && !cfg.AnyAudience {
		return nil, errors.New("an audience is required (the API's identifier in the tokens' aud); or accept any audience explicitly")
	}
	if slices.Contains(cfg.Audiences, "") {
		return nil, errors.New("an audience cannot be empty")
	}
	algs, err := parseAlgorithms(cfg.Algorithms)
	if err != nil {
		return nil, err
	}
	if cfg.IntrospectJWTs && cfg.Introspector == nil && cfg.ClientID == "" {
		return nil, errors.New("introspecting JWTs needs the client_id (and client_secret) the guard introspects with")
	}
	if cfg.BaseURL != "" {
		u, err := url.Parse(cfg.BaseURL)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
			return nil, fmt.Errorf("base URL %q must be scheme://host[:port]", cfg.BaseURL)
		}
		cfg.BaseURL = u.Scheme + "://" + u.Host
	}
	if cfg.Resource != "" {
		u, err := url.Parse(cfg.Resource)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("resource %q must be an absolute http(s) URL without query or fragment (RFC 9728 §1.2)", cfg.Resource)
		}
	}
	if cfg.Headers == nil {
		cfg.Headers = DefaultGuardHeaders
	}
	for h := range cfg.Headers {
		if !httpguts.ValidHeaderFieldName(h) {
			return nil, fmt.Errorf("header %q is not a valid header name", h)
		}
		switch headerIdentity(h) {
		case "Authorization", "Dpop", "Host", "Cookie", "Content-Length", "Transfer-Encoding", "Connection":
			return nil, fmt.Errorf("header %q cannot carry a claim", h)
		}
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = defaultGuardLeeway
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = defaultCacheTTL
	}
	if cfg.NegativeTTL <= 0 {
		cfg.NegativeTTL = defaultNegativeTTL
	}
	if cfg.CacheEntries <= 0 {
		cfg.CacheEntries = defaultCacheEntries
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noGuardMetrics{}
	}
	g := &Guard{
		cfg: cfg, log: cfg.Logger, http: cfg.HTTPClient, now: cfg.Now, metrics: cfg.Metrics, algs: algs,
		ready: make(chan struct{}), triedOnce: make(chan struct{}), started: cfg.Now(),
		verified:     newTTLCache[*Token](cfg.CacheEntries),
		introspected: newTTLCache[*Token](cfg.CacheEntries),
		// Inactive answers get a cache of their own, so junk tokens cannot
		// push live answers out.
		inactive: newTTLCache[*guardError](max(cfg.CacheEntries/4, 1)),
		slots:    make(chan struct{}, maxConcurrentIntrospections),
	}
	if g.decrypt, g.jweAlgs, err = decryptionKeys(cfg.DecryptionKeys); err != nil {
		return nil, err
	}
	if g.dpop, err = newDPoPVerifier(cfg.DPoP, cfg.Now); err != nil {
		return nil, err
	}
	g.dpopAlgs = dpopAlgList(g.dpop)
	var strip []string
	for _, set := range []map[string]string{cfg.Headers, DefaultGuardHeaders, DefaultHeaders} {
		for h := range set {
			strip = append(strip, h)
		}
	}
	if !cfg.ForwardAuthorization {
		strip = append(strip, "Authorization", "Dpop")
	}
	g.strip = newHeaderSet(strip...)
	for h, claim := range cfg.Headers {
		g.upstreamHeaders = append(g.upstreamHeaders, upstreamHeader{http.CanonicalHeaderKey(h), claim})
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	go g.discover(ctx)
	go g.sweep(ctx)
	return g, nil
}

func checkAbsoluteURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%q must be an absolute http(s) URL", s)
	}
	return nil
}

// Close stops background work.
func (g *Guard) Close() { g.cancel() }

// Ready is closed once the issuer's metadata (and keys, if any) are loaded.
func (g *Guard) Ready() <-chan struct{} { return g.ready }

// Serve authenticates r. When done is true a response has been written (a
// 400, 401, 403 or 503 refusal, or the RFC 9728 metadata document).
// Otherwise tok is the verified token — nil for a CORS preflight, which
// passes without one: call Prepare with it before the request goes
// upstream. tok is shared between requests of the same token
// and must not be modified.
func (g *Guard) Serve(w http.ResponseWriter, r *http.Request) (tok *Token, done bool) {
	if g.cfg.ServeMetadata && strings.HasPrefix(r.URL.Path, wellKnownResource) && g.serveMetadata(w, r) {
		return nil, true
	}
	if isPreflight(r) {
		// A CORS preflight never carries credentials (Fetch standard,
		// "CORS-preflight request"): refusing it would break every
		// browser client of the API. The actual request is checked.
		return nil, false
	}
	creds, gerr := g.credentials(r)
	if gerr == nil {
		tok, gerr = g.authenticate(r, creds)
	}
	if gerr != nil {
		g.refuse(w, r, creds.scheme, gerr)
		return nil, true
	}
	if tok.Opaque {
		g.metrics.Allowed("opaque")
	} else {
		g.metrics.Allowed("jwt")
	}
	return tok, false
}

// isPreflight reports whether r is a CORS preflight request.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
}

// authenticate checks the credentials and what the token may do.
func (g *Guard) authenticate(r *http.Request, creds credentials) (*Token, *guardError) {
	if creds.scheme == schemeNone {
		return nil, errNoToken
	}
	if g.cfg.RequireDPoP && creds.scheme != schemeDPoP {
		return nil, tokenError("this resource requires a DPoP-bound token presented with the DPoP scheme", nil)
	}
	iss := g.waitIssuer(r.Context())
	if iss == nil {
		return nil, errUnavailable
	}
	tok, gerr := g.validate(r.Context(), iss, creds.token)
	if gerr != nil {
		return nil, gerr
	}
	if gerr := g.checkBinding(r, creds, tok); gerr != nil {
		return nil, gerr
	}
	return tok, g.authorize(tok)
}

// validate returns the verified token for raw: a JWT checked locally, an
// opaque token introspected.
func (g *Guard) validate(ctx context.Context, iss *guardIssuer, raw string) (*Token, *guardError) {
	key := tokenKey(raw)
	var tok *Token
	var gerr *guardError
	switch strings.Count(raw, ".") {
	case 2:
		tok, gerr = g.verifyJWT(ctx, iss, raw, key, false)
	case 4:
		tok, gerr = g.verifyJWT(ctx, iss, raw, key, true)
	default:
		return g.introspect(ctx, iss, raw, key)
	}
	if gerr != nil {
		return nil, gerr
	}
	return tok, g.checkRevoked(ctx, iss, raw, key, tok)
}

var errRevoked = tokenError("the access token was revoked", nil)

// checkRevoked asks whether a verified JWT was revoked since it was
// issued: the in-process revocation list, then introspection when
// configured. Neither answer is cached with the verified token, so a
// revocation is seen by the next request.
func (g *Guard) checkRevoked(ctx context.Context, iss *guardIssuer, raw string, key [32]byte, tok *Token) *guardError {
	if g.cfg.Revocations != nil {
		if jti := tok.ClaimString("jti"); jti != "" {
			revoked, err := g.cfg.Revocations.AccessTokenRevoked(ctx, jti)
			if err != nil {
				e := *errUnavailable
				e.reason, e.cause = "revocation check failed", err
				return &e
			}
			if revoked {
				return errRevoked
			}
		}
	}
	if !g.cfg.IntrospectJWTs {
		return nil
	}
	if iss.introspector == nil {
		e := *errUnavailable
		e.reason = "the issuer advertises no introspection endpoint to check JWTs at"
		return &e
	}
	if _, gerr := g.introspect(ctx, iss, raw, key); gerr != nil {
		if gerr.status == http.StatusUnauthorized {
			return errRevoked
		}
		return gerr
	}
	return nil
}

// authorize checks the token's scopes and required claims.
func (g *Guard) authorize(tok *Token) *guardError {
	if len(g.cfg.Scopes) > 0 {
		has := func(s string) bool { return slices.Contains(tok.Scopes, s) }
		ok := slices.ContainsFunc(g.cfg.Scopes, has)
		if !g.cfg.AnyScope {
			ok = !slices.ContainsFunc(g.cfg.Scopes, func(s string) bool { return !has(s) })
		}
		if !ok {
			return &guardError{status: http.StatusForbidden, code: "insufficient_scope",
				description: "the token lacks a required scope", scope: strings.Join(g.cfg.Scopes, " ")}
		}
	}
	if len(g.cfg.RequireClaims) > 0 {
		if reason := (Policy{RequireClaims: g.cfg.RequireClaims}).Deny(&Identity{Subject: tok.Subject, Claims: tok.Claims}); reason != "" {
			return &guardError{status: http.StatusForbidden, code: "insufficient_scope",
				description: "the token lacks a required claim value", reason: reason}
		}
	}
	return nil
}

// Prepare rewrites the upstream request: identity headers the client sent
// are removed, the configured ones are set from tok, and the client's
// Authorization and DPoP headers (and access_token query parameter) are
// removed unless ForwardAuthorization.
func (g *Guard) Prepare(r *http.Request, tok *Token) {
	g.strip.removeFrom(r.Header)
	if !g.cfg.ForwardAuthorization && hasQueryToken(r.URL.RawQuery) {
		q := r.URL.Query()
		if q.Has("access_token") {
			q.Del("access_token")
			r.URL.RawQuery = q.Encode()
		}
	}
	if tok == nil {
		return
	}
	for _, h := range g.upstreamHeaders {
		if v := tok.ClaimString(h.claim); v != "" {
			r.Header[h.canonical] = []string{v}
		}
	}
}

// upstreamHeader is a header set from a claim.
type upstreamHeader struct{ canonical, claim string }

// Token is a verified access token.
type Token struct {
	// Subject is the sub claim.
	Subject string
	// ClientID is the client_id claim (azp when there is none).
	ClientID string
	// Scopes are the token's scopes (scope, or an scp list).
	Scopes []string
	// Claims are the JWT's claims, or the introspection response members.
	Claims map[string]any
	// Expiry is exp (zero when an introspection answer has none).
	Expiry time.Time
	// JKT is cnf.jkt: the token is DPoP-bound to the key of that RFC 7638
	// thumbprint.
	JKT string
	// Opaque says the token was introspected.
	Opaque bool

	scope string // Scopes space-separated, computed once
	// x5t is cnf.x5t#S256: the token is bound to a TLS client certificate
	// (RFC 8705).
	x5t string
}

// ClaimString renders a claim for a header or placeholder, as
// Identity.ClaimString does: strings as they are, lists joined with
// commas; "scope" is the scopes space-separated, "client_id" the client
// (azp included). Missing claims are "".
func (t *Token) ClaimString(name string) string {
	switch name {
	case "sub":
		return sanitizeHeader(t.Subject)
	case "scope":
		return sanitizeHeader(t.scope)
	case "client_id":
		return sanitizeHeader(t.ClientID)
	}
	id := Identity{Subject: t.Subject, Claims: t.Claims}
	return id.ClaimString(name)
}

// newToken builds a Token from JWT claims or an introspection response.
func newToken(claims map[string]any, exp time.Time, opaque bool) (*Token, *guardError) {
	t := &Token{Claims: claims, Expiry: exp, Opaque: opaque}
	t.Subject, _ = claims["sub"].(string)
	t.ClientID, _ = claims["client_id"].(string)
	if t.ClientID == "" {
		t.ClientID, _ = claims["azp"].(string)
	}
	switch s := claims["scope"].(type) {
	case string:
		t.Scopes = strings.Fields(s)
	case nil:
		t.Scopes = stringList(claims["scp"])
	default:
		t.Scopes = stringList(s)
	}
	t.scope = strings.Join(t.Scopes, " ")
	if cnf, ok := claims["cnf"]; ok {
		m, ok := cnf.(map[string]any)
		if !ok {
			return nil, tokenError("the token's cnf claim is malformed", nil)
		}
		for method, v := range m {
			s, ok := v.(string)
			switch {
			case !ok || s == "":
				return nil, tokenError("the token's cnf claim is malformed", nil)
			case method == "jkt":
				t.JKT = s
			case method == "x5t#S256":
				t.x5t = s
			default:
				// A token bound to something this guard cannot check must
				// not pass as a plain bearer token.
				return nil, tokenError("the token is bound by an unsupported confirmation method", nil)
			}
		}
	}
	return t, nil
}

// stringList reads a claim that is a list of strings (or one string).
func stringList(v any) []string {
	switch t := v.(type) {
	case string:
		return strings.Fields(t)
	case []string:
		return t
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
