// Package proxy is the login gateway (oidc_login) as plain net/http logic:
// a browser without a session is sent to an OpenID Provider with the
// authorization code flow + PKCE (or the hybrid flow), the callback is
// validated, the session kept in encrypted cookies, tokens refreshed before
// they expire, and requests passed on with identity headers. It reaches
// every provider, the embedded one included, through the protocol alone:
// it never imports flows.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/portcullis-gw/portcullis/session"
)

// Config configures a Gateway. Zero values take the documented defaults.
type Config struct {
	// Issuer is the OpenID Provider's issuer URL (discovery is at
	// Issuer/.well-known/openid-configuration). Required.
	Issuer string
	// ClientID and ClientSecret are the gateway's client registration.
	// An empty secret makes it a public client (PKCE only).
	ClientID, ClientSecret string
	// RedirectPath is the callback path on every protected site. Default:
	// /oauth2/callback.
	RedirectPath string
	// LogoutPath signs the user out. Default: /oauth2/logout.
	LogoutPath string
	// BackchannelLogoutPath receives OIDC Back-Channel Logout tokens.
	// Default: /oauth2/backchannel-logout.
	BackchannelLogoutPath string
	// EndSessions ends the server-side sessions of a subject and/or
	// provider session id (back-channel logout). Nil with cookie sessions,
	// which cannot be ended from the server.
	EndSessions func(ctx context.Context, subject, sid string) (int, error)
	// PostLogoutRedirect is where the provider sends the browser after
	// logout: an absolute URL, or a path on the current site. Default: /.
	PostLogoutRedirect string
	// Scopes requested. Default: openid profile email.
	Scopes []string
	// Flow is "code" (authorization code + PKCE, the default) or "hybrid"
	// (response_type "code id_token" with response_mode form_post).
	Flow string
	// DisablePKCE turns PKCE off (for providers that refuse it). PKCE is
	// always on for public clients.
	DisablePKCE bool
	// UsePAR pushes the authorization request (RFC 9126). It is used
	// anyway when the provider requires it.
	UsePAR bool
	// UseJAR sends the authorization request as a signed request object
	// (RFC 9101), signed by Signer. Register the gateway's JWKS (served at
	// JWKSPath) or its public key with the provider.
	UseJAR bool
	// Signer is the gateway's own key: it signs request objects and
	// identity assertions. Required with UseJAR or AssertionHeader.
	Signer *Signer
	// JWKSPath serves Signer's public key as a JWK Set, without a session,
	// when Signer is set. Default: /oauth2/jwks.
	JWKSPath string
	// AssertionHeader, when set, sends upstream a short-lived signed JWT
	// (see identityAssertion) naming the user, in that header.
	AssertionHeader string
	// AssertionAudience is the assertion's aud. Default: the site's origin.
	AssertionAudience string
	// Sessions keeps sessions. Required.
	Sessions session.Store
	// LoginCookies protects the per-login state (state, nonce, PKCE
	// verifier) in short-lived cookies. Required: build it with
	// NewLoginCookies.
	LoginCookies *LoginCookies
	// Headers maps upstream request headers to claims. Default:
	// X-Forwarded-User=sub, X-Forwarded-Email=email,
	// X-Forwarded-Groups=groups, X-Forwarded-Preferred-Username=preferred_username.
	Headers map[string]string
	// PassAccessToken sends "Authorization: Bearer <access token>" upstream.
	PassAccessToken bool
	// IDTokenHeader, when set, sends the ID token upstream in that header.
	IDTokenHeader string
	// Policy decides who may pass once signed in.
	Policy Policy
	// Skip lists paths (path.Match patterns, or a prefix ending in /*) that
	// pass without a session (health checks, static assets).
	Skip []string
	// RefreshBefore is how long before the access token expires it is
	// refreshed. Default: 1 minute.
	RefreshBefore time.Duration
	// HTTPClient talks to the provider. Default: a client with a 15 s
	// timeout.
	HTTPClient *http.Client
	// Logger receives structured logs: subjects and reasons, never tokens.
	Logger *zap.Logger
	// Metrics, when set, counts logins, refreshes and failures.
	Metrics Metrics
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// DefaultHeaders are the identity headers sent upstream when none are
// configured.
var DefaultHeaders = map[string]string{
	"X-Forwarded-User":               "sub",
	"X-Forwarded-Email":              "email",
	"X-Forwarded-Groups":             "groups",
	"X-Forwarded-Preferred-Username": "preferred_username",
}

// Metrics receives the gateway's events. Implementations must be safe for
// concurrent use.
type Metrics interface {
	LoginStarted()
	LoginSucceeded()
	LoginFailed(reason string)
	Refreshed(ok bool)
	SessionRejected()
}

type noMetrics struct{}

func (noMetrics) LoginStarted()      {}
func (noMetrics) LoginSucceeded()    {}
func (noMetrics) LoginFailed(string) {}
func (noMetrics) Refreshed(bool)     {}
func (noMetrics) SessionRejected()   {}

// Gateway is the login gateway for one oidc_login configuration.
type Gateway struct {
	cfg     Config
	log     *zap.Logger
	http    *http.Client
	now     func() time.Time
	metrics Metrics
	disc    discovery
	refresh singleflight.Group
	recent  recentRefreshes
	seenJTI seenTokens
	// usedStates makes each login state single use in this process: the
	// browser drops the login cookie at the callback, but a captured
	// callback (URL and cookies) must not sign anyone in a second time.
	usedStates seenTokens
	cancel     context.CancelFunc
	// assertions are signed identity assertions reused while fresh.
	assertions *ttlCache[string]
	// strip are removed from every upstream request: the configured
	// identity headers and tokens, whatever the client sent.
	strip headerSet
}

// New validates cfg and starts provider discovery in the background. Call
// Close to stop it.
func New(cfg Config) (*Gateway, error) {
	u, err := url.Parse(cfg.Issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("issuer %q must be an absolute http(s) URL", cfg.Issuer)
	}
	if cfg.ClientID == "" {
		return nil, errors.New("client_id is required")
	}
	if cfg.Sessions == nil || cfg.LoginCookies == nil {
		return nil, errors.New("a session store and login cookies are required")
	}
	switch cfg.Flow {
	case "":
		cfg.Flow = "code"
	case "code", "hybrid":
	default:
		return nil, fmt.Errorf("flow %q is not supported; use code or hybrid", cfg.Flow)
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&cfg.RedirectPath, "/oauth2/callback")
	def(&cfg.LogoutPath, "/oauth2/logout")
	def(&cfg.BackchannelLogoutPath, "/oauth2/backchannel-logout")
	def(&cfg.PostLogoutRedirect, "/")
	def(&cfg.JWKSPath, "/oauth2/jwks")
	if (cfg.UseJAR || cfg.AssertionHeader != "") && cfg.Signer == nil {
		return nil, errors.New("a signing key is required for JAR and identity assertions")
	}
	for _, p := range []string{cfg.RedirectPath, cfg.LogoutPath, cfg.BackchannelLogoutPath, cfg.JWKSPath} {
		if !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("path %q must start with /", p)
		}
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{"openid", "profile", "email"}
	}
	if !contains(cfg.Scopes, "openid") {
		cfg.Scopes = append([]string{"openid"}, cfg.Scopes...)
	}
	if cfg.Headers == nil {
		cfg.Headers = DefaultHeaders
	}
	for _, pattern := range cfg.Skip {
		if _, err := path.Match(strings.TrimSuffix(pattern, "*"), "/"); err != nil {
			return nil, fmt.Errorf("skip pattern %q: %w", pattern, err)
		}
	}
	if cfg.RefreshBefore <= 0 {
		cfg.RefreshBefore = time.Minute
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger, http: cfg.HTTPClient, now: cfg.Now, metrics: cfg.Metrics}
	g.disc.ready = make(chan struct{})
	strip := []string{"X-Forwarded-Access-Token", cfg.IDTokenHeader, cfg.AssertionHeader}
	for h := range cfg.Headers {
		strip = append(strip, h)
	}
	if cfg.PassAccessToken {
		strip = append(strip, "Authorization")
	}
	if cfg.AssertionHeader != "" {
		g.assertions = newTTLCache[string](maxCachedAssertions)
	}
	g.strip = newHeaderSet(slices.DeleteFunc(strip, func(h string) bool { return h == "" })...)
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	go g.discover(ctx)
	return g, nil
}

// Close stops background work.
func (g *Gateway) Close() { g.cancel() }

// Serve handles the gateway's part of a request. When done is true the
// response has been written (a redirect to sign in, the callback, logout,
// a 401, 403 or error page). Otherwise the request may go upstream: call
// Prepare with the returned identity (nil for skipped paths) first.
func (g *Gateway) Serve(w http.ResponseWriter, r *http.Request) (id *Identity, done bool) {
	switch r.URL.Path {
	case g.cfg.RedirectPath:
		g.callback(w, r)
		return nil, true
	case g.cfg.LogoutPath:
		g.logout(w, r)
		return nil, true
	case g.cfg.BackchannelLogoutPath:
		g.backchannelLogout(w, r)
		return nil, true
	case g.cfg.JWKSPath:
		if g.cfg.Signer != nil {
			g.cfg.Signer.serveJWKS(w, r)
			return nil, true
		}
	}
	if g.skipped(r) {
		return nil, false
	}
	sess, err := g.cfg.Sessions.Load(r)
	if err != nil {
		if !errors.Is(err, session.ErrNoSession) || hasCookie(r, g.cfg.Sessions) {
			g.metrics.SessionRejected()
			g.log.Debug("session refused", zap.Error(err))
		}
		g.unauthenticated(w, r)
		return nil, true
	}
	sess, ok := g.maybeRefresh(w, r, sess)
	if !ok {
		return nil, true
	}
	id = newIdentity(sess)
	if reason := g.cfg.Policy.Deny(id); reason != "" {
		g.log.Info("access denied by policy", zap.String("sub", id.Subject), zap.String("reason", reason))
		g.forbidden(w, r, id)
		return nil, true
	}
	g.touch(w, r, sess)
	return id, false
}

// touch refreshes the session's idle timer, rewriting the cookie at most
// once a minute so that most requests only decode it.
func (g *Gateway) touch(w http.ResponseWriter, r *http.Request, sess *session.Data) {
	now := g.now()
	if now.Sub(sess.LastSeen) < time.Minute {
		return
	}
	sess.LastSeen = now
	if err := g.cfg.Sessions.Save(w, r, sess); err != nil {
		g.log.Error("saving session", zap.Error(err))
	}
}

func hasCookie(r *http.Request, s session.Store) bool {
	for _, c := range r.Cookies() {
		if s.Owns(c.Name) {
			return true
		}
	}
	return false
}

// skipped reports whether the request passes without a session: a
// configured skip path, or a CORS preflight (browsers never send
// credentials with one).
func (g *Gateway) skipped(r *http.Request) bool {
	if r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != "" {
		return true
	}
	if !isCleanPath(r.URL.Path) {
		return false
	}
	for _, pattern := range g.cfg.Skip {
		if prefix, ok := strings.CutSuffix(pattern, "/*"); ok {
			if r.URL.Path == prefix || strings.HasPrefix(r.URL.Path, prefix+"/") {
				return true
			}
			continue
		}
		if ok, _ := path.Match(pattern, r.URL.Path); ok {
			return true
		}
	}
	return false
}

// isCleanPath reports whether p is already in the form upstreams resolve
// paths to. Skip rules only match such paths: "/static/../admin" (however
// it was encoded) is /admin to the upstream, not a static asset. Backslashes
// and ;parameters are refused too: some servers read a backslash as a slash
// and "..;" as "..".
func isCleanPath(p string) bool {
	if strings.ContainsAny(p, "\\;") {
		return false
	}
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	return clean == p
}

// isAPIRequest reports whether the client is a script rather than a
// browser navigation: it gets 401, never a redirect to a login page.
func isAPIRequest(r *http.Request) bool {
	if r.Header.Get("X-Requested-With") != "" {
		return true
	}
	if mode := r.Header.Get("Sec-Fetch-Mode"); mode != "" && mode != "navigate" {
		return true
	}
	return !strings.Contains(r.Header.Get("Accept"), "text/html")
}

// unauthenticated answers a request without a session: API clients get
// 401, browsers are sent to sign in.
func (g *Gateway) unauthenticated(w http.ResponseWriter, r *http.Request) {
	if isAPIRequest(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+requestOrigin(r)+`"`)
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "authentication required", http.StatusUnauthorized)
		return
	}
	g.startLogin(w, r)
}

// Prepare rewrites the upstream request: every identity header the client
// sent is removed, the gateway's own cookies are stripped, and when id is
// not nil its identity headers (and tokens, if configured) are set.
func (g *Gateway) Prepare(r *http.Request, id *Identity) {
	g.strip.removeFrom(r.Header)
	g.stripCookies(r)
	if id == nil {
		return
	}
	for header, claim := range g.cfg.Headers {
		if v := id.ClaimString(claim); v != "" {
			r.Header.Set(header, v)
		}
	}
	if g.cfg.PassAccessToken && id.accessToken != "" {
		r.Header.Set("Authorization", "Bearer "+id.accessToken)
	}
	if g.cfg.IDTokenHeader != "" && id.idToken != "" {
		r.Header.Set(g.cfg.IDTokenHeader, id.idToken)
	}
	if g.cfg.AssertionHeader != "" {
		if jwt, err := g.identityAssertion(r, id); err == nil {
			r.Header.Set(g.cfg.AssertionHeader, jwt)
		} else {
			g.log.Error("signing the identity assertion", zap.Error(err))
		}
	}
}

// stripCookies removes the session and login cookies from the Cookie
// header: upstream apps never see them (oversized cookie headers are the
// classic way gateways break apps).
//
// The gateway's cookies are dropped by name before anything is parsed:
// a session cookie is kilobytes, which r.Cookies() would check byte by
// byte on every request only for them to be thrown away. What is left,
// the app's cookies, is parsed and rewritten as r.Cookies() has them.
func (g *Gateway) stripCookies(r *http.Request) {
	lines := r.Header["Cookie"]
	if len(lines) == 0 {
		return
	}
	var others []string
	dropped := false
	for _, line := range lines {
		var kept []string
		for rest := line; rest != ""; {
			var part string
			part, rest, _ = strings.Cut(rest, ";")
			name, _, _ := strings.Cut(textproto.TrimString(part), "=")
			if name = textproto.TrimString(name); g.cfg.Sessions.Owns(name) || g.cfg.LoginCookies.owns(name) {
				dropped = true
				continue
			}
			kept = append(kept, part)
		}
		if len(kept) > 0 {
			others = append(others, strings.Join(kept, ";"))
		}
	}
	r.Header["Cookie"] = others
	cookies := r.Cookies()
	if !dropped && len(cookies) == 0 {
		r.Header["Cookie"] = lines // nothing to strip, nothing parsed: leave it be
		return
	}
	r.Header.Del("Cookie")
	if len(cookies) > 0 {
		kept := make([]string, 0, len(cookies))
		for _, c := range cookies {
			kept = append(kept, c.Name+"="+c.Value)
		}
		r.Header.Set("Cookie", strings.Join(kept, "; "))
	}
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

// requestOrigin is scheme://host of the request as the browser sees it.
func requestOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
