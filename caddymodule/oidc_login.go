package caddymodule

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/portcullis-gw/portcullis/proxy"
	"github.com/portcullis-gw/portcullis/session"
)

func init() {
	caddy.RegisterModule(OIDCLogin{})
}

// OIDCLogin is the login gateway: browsers without a session are signed in
// at an OpenID Provider (the embedded one or any other found by discovery)
// and requests go on with identity headers. Scripts (no text/html in
// Accept, X-Requested-With, or a non-navigation fetch) get 401 instead of
// a redirect.
//
// Placeholders set for signed-in requests:
//
//	{portcullis.user.id}       the subject (sub)
//	{portcullis.user.email}    email claim
//	{portcullis.user.name}     name claim
//	{portcullis.user.username} preferred_username claim
//	{portcullis.user.groups}   groups, comma-separated
//	{portcullis.claims.NAME}   any ID token claim
type OIDCLogin struct {
	// Issuer of the OpenID Provider. Required.
	Issuer string `json:"issuer"`
	// ClientID registered at the provider. Required.
	ClientID string `json:"client_id"`
	// ClientSecret; placeholders such as {env.X} are expanded. Empty for a
	// public client.
	ClientSecret string `json:"client_secret,omitempty"`
	// Scopes requested. Default: openid profile email.
	Scopes []string `json:"scopes,omitempty"`
	// Flow is code (default: authorization code + PKCE) or hybrid
	// (code id_token with form_post).
	Flow string `json:"flow,omitempty"`
	// DisablePKCE turns PKCE off for confidential clients.
	DisablePKCE bool `json:"disable_pkce,omitempty"`
	// UsePAR pushes authorization requests (RFC 9126); used anyway when the
	// provider requires it.
	UsePAR bool `json:"use_par,omitempty"`
	// UseJAR sends authorization requests as signed request objects (JAR,
	// RFC 9101), signed with the gateway's key; register its JWKS
	// (JWKSPath on the protected site) with the provider.
	UseJAR bool `json:"use_jar,omitempty"`
	// SigningKey is a PEM private key file (EC, RSA or Ed25519) for JAR and
	// identity assertions; placeholders expanded. Default: a P-256 key
	// generated once and kept in Caddy's storage.
	SigningKey string `json:"signing_key,omitempty"`
	// JWKSPath serves the gateway key's public half when JAR or identity
	// assertions are on. Default: /oauth2/jwks.
	JWKSPath string `json:"jwks_path,omitempty"`
	// AssertionHeader sends the upstream a short-lived JWT signed by the
	// gateway's key (iss the site origin, aud AssertionAudience, sub,
	// email, name, preferred_username, groups), verifiable with JWKSPath.
	AssertionHeader string `json:"assertion_header,omitempty"`
	// AssertionAudience is the assertion's aud. Default: the site origin.
	AssertionAudience string `json:"assertion_audience,omitempty"`
	// RedirectPath is the callback path. Default: /oauth2/callback.
	RedirectPath string `json:"redirect_path,omitempty"`
	// LogoutPath signs out. Default: /oauth2/logout.
	LogoutPath string `json:"logout_path,omitempty"`
	// PostLogoutRedirect is where to land after logout. Default: /.
	PostLogoutRedirect string `json:"post_logout_redirect,omitempty"`
	// CookieName is the session cookie's name (with __Host- added unless
	// insecure_cookies). Default: portcullis_session.
	CookieName string `json:"cookie_name,omitempty"`
	// CookieSecrets encrypt the session cookies: the first encodes, all
	// decode (rotation). At least 32 characters; placeholders expanded.
	// Default: a secret generated once and kept in Caddy's storage.
	CookieSecrets []string `json:"cookie_secrets,omitempty"`
	// InsecureCookies drops Secure and __Host- for plain-HTTP development.
	InsecureCookies bool `json:"insecure_cookies,omitempty"`
	// SessionStore is "cookie" (default: the whole session in encrypted
	// cookies) or "server" (in the portcullis app's storage, only an id in
	// the cookie; needed for back-channel logout and session listing).
	SessionStore string `json:"session_store,omitempty"`
	// BackchannelLogoutPath receives back-channel logout tokens. Default:
	// /oauth2/backchannel-logout.
	BackchannelLogoutPath string `json:"backchannel_logout_path,omitempty"`
	// SessionLifetime is the absolute session lifetime. Default: 24h.
	SessionLifetime caddy.Duration `json:"session_lifetime,omitempty"`
	// IdleTimeout ends sessions unused for this long. Default: 8h.
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`
	// Headers maps upstream headers to claims. Default: X-Forwarded-User
	// (sub), X-Forwarded-Email, X-Forwarded-Groups,
	// X-Forwarded-Preferred-Username.
	Headers map[string]string `json:"headers,omitempty"`
	// PassAccessToken sends Authorization: Bearer <access token> upstream.
	PassAccessToken bool `json:"pass_access_token,omitempty"`
	// IDTokenHeader sends the ID token upstream in this header.
	IDTokenHeader string `json:"id_token_header,omitempty"`
	// AllowEmails, AllowDomains, AllowGroups and RequireClaims restrict who
	// may pass; see proxy.Policy.
	AllowEmails   []string            `json:"allow_emails,omitempty"`
	AllowDomains  []string            `json:"allow_domains,omitempty"`
	AllowGroups   []string            `json:"allow_groups,omitempty"`
	RequireClaims map[string][]string `json:"require_claims,omitempty"`
	// Skip lists paths that pass without a session (path.Match patterns or
	// /prefix/*).
	Skip []string `json:"skip,omitempty"`

	gw     *proxy.Gateway
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (OIDCLogin) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.oidc_login", New: func() caddy.Module { return new(OIDCLogin) }}
}

// Provision builds the gateway and starts provider discovery.
func (h *OIDCLogin) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	repl := caddy.NewReplacer()
	secrets, err := h.cookieSecrets(ctx, repl)
	if err != nil {
		return fmt.Errorf("oidc_login: %w", err)
	}
	name := h.CookieName
	if name == "" {
		name = "portcullis_session"
	}
	lifetime, idle := time.Duration(h.SessionLifetime), time.Duration(h.IdleTimeout)
	if lifetime == 0 {
		lifetime = 24 * time.Hour
	}
	if idle == 0 {
		idle = 8 * time.Hour
	}
	if h.InsecureCookies {
		h.logger.Warn("insecure_cookies is on: session cookies are sent over plain HTTP; use this for local development only")
	}
	cookie := session.CookieOptions{Name: name, Secure: !h.InsecureCookies, MaxAge: lifetime}
	var store session.Store
	var endSessions func(context.Context, string, string) (int, error)
	switch h.SessionStore {
	case "", "cookie":
		store, err = session.NewCookieStore(cookie, lifetime, idle, secrets...)
	case "server":
		appIface, aerr := ctx.AppIfConfigured("portcullis")
		if aerr != nil || appIface == nil {
			return errors.New("oidc_login: session_store server keeps sessions in the portcullis app's storage: add `portcullis { storage bbolt <path> }` to the global options")
		}
		backend := gatewaySessions{store: appIface.(*App).store, issuer: h.Issuer}
		store, err = session.NewServerStore(backend, cookie, lifetime, idle, secrets...)
		endSessions = backend.endSessions
	default:
		return fmt.Errorf("oidc_login: session_store %q is not supported; use cookie or server", h.SessionStore)
	}
	if err != nil {
		return fmt.Errorf("oidc_login: %w", err)
	}
	logins, err := proxy.NewLoginCookies(name+"_login", !h.InsecureCookies, h.Flow == "hybrid", secrets...)
	if err != nil {
		return fmt.Errorf("oidc_login: %w", err)
	}
	var signer *proxy.Signer
	if h.UseJAR || h.AssertionHeader != "" {
		if signer, err = h.signingKey(ctx, repl); err != nil {
			return fmt.Errorf("oidc_login: signing key: %w", err)
		}
	}
	metrics, err := gatewayMetricsFor(ctx.GetMetricsRegistry(), h.Issuer)
	if err != nil {
		return fmt.Errorf("oidc_login: metrics: %w", err)
	}
	h.gw, err = proxy.New(proxy.Config{
		Issuer: h.Issuer, ClientID: h.ClientID, ClientSecret: repl.ReplaceKnown(h.ClientSecret, ""),
		Scopes: h.Scopes, Flow: h.Flow, DisablePKCE: h.DisablePKCE, UsePAR: h.UsePAR,
		UseJAR: h.UseJAR, Signer: signer, JWKSPath: h.JWKSPath,
		AssertionHeader: h.AssertionHeader, AssertionAudience: h.AssertionAudience,
		RedirectPath: h.RedirectPath, LogoutPath: h.LogoutPath, PostLogoutRedirect: h.PostLogoutRedirect,
		BackchannelLogoutPath: h.BackchannelLogoutPath, EndSessions: endSessions,
		Sessions: store, LoginCookies: logins, Headers: h.Headers, PassAccessToken: h.PassAccessToken,
		IDTokenHeader: h.IDTokenHeader, Skip: h.Skip, Logger: h.logger, Metrics: metrics,
		Policy: proxy.Policy{AllowEmails: h.AllowEmails, AllowDomains: h.AllowDomains, AllowGroups: h.AllowGroups, RequireClaims: h.RequireClaims},
	})
	if err != nil {
		return fmt.Errorf("oidc_login: %w", err)
	}
	return nil
}

// cookieSecrets returns the configured secrets, or one generated once and
// kept in Caddy's storage (shared by every instance using that storage).
func (h *OIDCLogin) cookieSecrets(ctx caddy.Context, repl *caddy.Replacer) ([][]byte, error) {
	var out [][]byte
	for i, s := range h.CookieSecrets {
		s = repl.ReplaceKnown(s, "")
		if len(s) < 32 {
			return nil, fmt.Errorf("cookie secret %d must be at least 32 characters (try: openssl rand -base64 32)", i)
		}
		out = append(out, []byte(s))
	}
	if len(out) > 0 {
		return out, nil
	}
	raw, err := h.loadOrGenerate(ctx, "portcullis/gateway-cookie-secret", "cookie secret", func() ([]byte, error) {
		b := make([]byte, 32)
		rand.Read(b)
		return []byte(base64.RawURLEncoding.EncodeToString(b)), nil
	})
	if err != nil {
		return nil, err
	}
	return [][]byte{raw}, nil
}

// signingKey loads the configured key file, or the key generated once and
// kept in Caddy's storage (shared by every gateway using that storage, so
// a provider needs only one registration of its JWKS).
func (h *OIDCLogin) signingKey(ctx caddy.Context, repl *caddy.Replacer) (*proxy.Signer, error) {
	var pemBytes []byte
	if h.SigningKey != "" {
		path := repl.ReplaceKnown(h.SigningKey, "")
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		pemBytes = raw
	} else {
		raw, err := h.loadOrGenerate(ctx, "portcullis/gateway-signing-key.pem", "gateway signing key", proxy.GenerateSigningKey)
		if err != nil {
			return nil, err
		}
		pemBytes = raw
	}
	key, err := proxy.ParseSigningKey(pemBytes)
	if err != nil {
		return nil, err
	}
	return proxy.NewSigner(key)
}

// loadOrGenerate returns the value kept under key in Caddy's storage,
// generating and storing it on first use (so every instance sharing that
// storage uses the same one).
func (h *OIDCLogin) loadOrGenerate(ctx caddy.Context, key, what string, generate func() ([]byte, error)) ([]byte, error) {
	st := ctx.Storage()
	raw, err := st.Load(ctx, key)
	if err == nil {
		return raw, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("loading the %s from Caddy's storage: %w", what, err)
	}
	if raw, err = generate(); err != nil {
		return nil, fmt.Errorf("generating the %s: %w", what, err)
	}
	if err := st.Store(ctx, key, raw); err != nil {
		return nil, fmt.Errorf("storing the generated %s: %w", what, err)
	}
	h.logger.Info("generated the "+what+" and kept it in Caddy's storage; configure one to share it across storages", zap.String("storage_key", key))
	return raw, nil
}

// Validate rejects configuration that cannot work.
func (h *OIDCLogin) Validate() error {
	if h.Issuer == "" || h.ClientID == "" {
		return errors.New("oidc_login: issuer and client_id are required")
	}
	return nil
}

// Cleanup stops provider discovery.
func (h *OIDCLogin) Cleanup() error {
	if h.gw != nil {
		h.gw.Close()
	}
	return nil
}

// ServeHTTP signs the browser in when needed and passes signed-in requests
// on with identity headers and placeholders.
func (h *OIDCLogin) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	id, done := h.gw.Serve(w, r)
	if done {
		return nil
	}
	h.gw.Prepare(r, id)
	if id != nil {
		repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		repl.Map(func(key string) (any, bool) {
			if claim, ok := strings.CutPrefix(key, "portcullis.claims."); ok {
				return id.ClaimString(claim), true
			}
			switch key {
			case "portcullis.user.id":
				return id.Subject, true
			case "portcullis.user.email":
				return id.ClaimString("email"), true
			case "portcullis.user.name":
				return id.ClaimString("name"), true
			case "portcullis.user.username":
				return id.ClaimString("preferred_username"), true
			case "portcullis.user.groups":
				return id.ClaimString("groups"), true
			}
			return nil, false
		})
	}
	return next.ServeHTTP(w, r)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*OIDCLogin)(nil)
	_ caddy.Validator             = (*OIDCLogin)(nil)
	_ caddy.CleanerUpper          = (*OIDCLogin)(nil)
	_ caddyhttp.MiddlewareHandler = (*OIDCLogin)(nil)
)
