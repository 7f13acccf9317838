// Package flows is the embedded OAuth 2.0 / OpenID Connect authorization
// server: discovery, JWKS, the authorization endpoint with its login and
// consent pages, the token endpoint with one handler per grant type,
// userinfo, introspection, revocation and RP-initiated logout. It is plain
// net/http over a store.Store and a keys.Manager; caddymodule adapts it to
// Caddy.
package flows

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis-gw/portcullis/dpop"
	"github.com/portcullis-gw/portcullis/keys"
	"github.com/portcullis-gw/portcullis/session"
	"github.com/portcullis-gw/portcullis/store"
)

// Config configures a Server. Zero durations take the documented defaults.
type Config struct {
	// Issuer is the issuer identifier: an https URL (http only for local
	// development) without query or fragment. Endpoints are served below
	// its path.
	Issuer string
	// Store persists everything. Required.
	Store store.Store
	// Keys signs tokens. Required.
	Keys *keys.Manager
	// Logger receives structured logs; never a secret or a token.
	Logger *zap.Logger
	// Brand customises the login and consent pages.
	Brand Brand
	// CookieSecrets encrypt the SSO cookie and the authorization request
	// carried through the login form; the first encodes, all decode. At
	// least 32 bytes each. Required.
	CookieSecrets [][]byte
	// InsecureCookies drops Secure and the __Host- prefix, for plain-HTTP
	// development on localhost only.
	InsecureCookies bool
	// AccessTokenTTL is the default access token lifetime. Default: 1h.
	AccessTokenTTL time.Duration
	// IDTokenTTL is the ID token lifetime. Default: 1h.
	IDTokenTTL time.Duration
	// RefreshTokenTTL is the absolute lifetime of a grant and its refresh
	// tokens. Default: 30 days.
	RefreshTokenTTL time.Duration
	// CodeTTL is the authorization code lifetime. Default: 60s.
	CodeTTL time.Duration
	// SessionTTL is the SSO session lifetime. Default: 24h.
	SessionTTL time.Duration
	// LoginThrottle bounds failed sign-ins. Default: 5 per user and 20 per
	// IP, refilling one every minute.
	LoginThrottle ThrottleConfig
	// DeviceCodeTTL is the lifetime of a device authorization request's
	// device_code and user_code (RFC 8628). Default: 10 minutes.
	DeviceCodeTTL time.Duration
	// DevicePollInterval is the minimum time a device waits between polls
	// of the token endpoint, in whole seconds (rounded up). Default: 5s.
	DevicePollInterval time.Duration
	// UserCodeThrottle bounds wrong user codes entered on the device
	// verification page. Default: 10 per IP, one forgiven every minute, and
	// 100 from all IPs together, one forgiven every second.
	UserCodeThrottle UserCodeThrottleConfig
	// CIBA configures Client-Initiated Backchannel Authentication.
	CIBA CIBAConfig
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Brand is the look of the server's pages.
type Brand struct {
	// Name is shown at the top of every page. Default: Portcullis.
	Name string
	// Color is the primary colour, as #rgb or #rrggbb. Default: #2b59c3.
	Color string
	// LogoURL is an optional https (or same-origin path) logo image.
	LogoURL string
}

var hexColor = regexp.MustCompile(`^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

// Validate reports a brand that cannot be rendered safely.
func (b Brand) Validate() error {
	if b.Color != "" && !hexColor.MatchString(b.Color) {
		return fmt.Errorf("brand colour %q must be #rgb or #rrggbb", b.Color)
	}
	if b.LogoURL != "" {
		u, err := url.Parse(b.LogoURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http" && !(u.Scheme == "" && strings.HasPrefix(b.LogoURL, "/"))) {
			return fmt.Errorf("brand logo %q must be an http(s) URL or an absolute path", b.LogoURL)
		}
	}
	return nil
}

// Server is the authorization server. Build it with New; it is an
// http.Handler for the issuer's origin.
type Server struct {
	cfg        Config
	issuer     string
	pathPrefix string
	store      store.Store
	keys       *keys.Manager
	log        *zap.Logger
	now        func() time.Time

	grants    map[string]GrantHandler
	mux       *http.ServeMux
	tmpl      *template.Template
	cookies   *session.Codec // SSO session cookie
	requests  *session.Codec // authorization request carried through forms
	ssoCookie session.CookieOptions
	csrf      session.CookieOptions
	throttle  *throttle
	hashSlots chan struct{} // bounds concurrent argon2id runs

	// userCodes throttles wrong user codes on the verification page;
	// devicePolls remembers when each pending device last polled.
	userCodes   *userCodeThrottle
	devicePolls *devicePolls

	// dpop checks DPoP proofs at the token endpoint and userinfo, whose
	// URLs (as discovery publishes them) the proofs' htu must name.
	dpop        *dpop.Verifier
	tokenURL    *url.URL
	userinfoURL *url.URL

	// assertions holds the used client assertion ids and the clients'
	// keys for private_key_jwt and client_secret_jwt.
	assertions *assertionState

	// ciba is the CIBA flow's state: poll bookkeeping, rate limits and
	// the notifier.
	ciba *cibaState

	discovery atomic.Pointer[[]byte]
}

// New validates cfg and builds a Server with the built-in grants
// registered.
func New(cfg Config) (*Server, error) {
	if err := validateIssuer(cfg.Issuer); err != nil {
		return nil, err
	}
	if cfg.Store == nil || cfg.Keys == nil {
		return nil, errors.New("flows: a store and a key manager are required")
	}
	if len(cfg.CookieSecrets) == 0 {
		return nil, errors.New("flows: a cookie secret is required")
	}
	if err := cfg.Brand.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.CIBA.Validate(); err != nil {
		return nil, err
	}
	setDefaults(&cfg)
	s := &Server{
		cfg:    cfg,
		issuer: strings.TrimSuffix(cfg.Issuer, "/"),
		store:  cfg.Store,
		keys:   cfg.Keys,
		log:    cfg.Logger,
		now:    cfg.Now,
		grants: map[string]GrantHandler{},
	}
	u, _ := url.Parse(s.issuer)
	s.pathPrefix = strings.TrimSuffix(u.Path, "/")
	var err error
	if s.cookies, err = session.NewCodec("sso", cfg.SessionTTL, cfg.CookieSecrets...); err != nil {
		return nil, err
	}
	if s.requests, err = session.NewCodec("authorize", 30*time.Minute, cfg.CookieSecrets...); err != nil {
		return nil, err
	}
	secure := !cfg.InsecureCookies
	s.ssoCookie = session.CookieOptions{Name: "portcullis_sso", Secure: secure, MaxAge: cfg.SessionTTL}
	s.csrf = session.CookieOptions{Name: "portcullis_csrf", Secure: secure}
	s.throttle = newThrottle(cfg.LoginThrottle, cfg.Now)
	s.userCodes = newUserCodeThrottle(cfg.UserCodeThrottle, cfg.Now)
	s.devicePolls = newDevicePolls(maxDevicePolls)
	s.hashSlots = make(chan struct{}, maxConcurrentHashes)
	s.dpop = &dpop.Verifier{Now: cfg.Now}
	s.assertions = newAssertionState(cfg.Store, cfg.Now, cfg.Logger)
	s.tokenURL, _ = url.Parse(s.url(PathToken))
	s.userinfoURL, _ = url.Parse(s.url(PathUserinfo))
	if s.tmpl, err = parseTemplates(); err != nil {
		return nil, err
	}
	if s.ciba, err = newCIBAState(s, cfg.CIBA, cfg.CookieSecrets); err != nil {
		return nil, err
	}
	s.RegisterGrant(GrantAuthorizationCode, authorizationCodeGrant{s})
	s.RegisterGrant(GrantRefreshToken, refreshTokenGrant{s})
	s.RegisterGrant(GrantClientCredentials, clientCredentialsGrant{s})
	s.RegisterGrant(GrantDeviceCode, deviceCodeGrant{s})
	s.RegisterGrant(GrantPassword, passwordGrant{s})
	s.RegisterGrant(GrantCIBA, cibaGrant{s})
	s.routes()
	s.refreshMetadata()
	return s, nil
}

// maxConcurrentHashes bounds password verifications in flight (argon2id
// with 64 MiB each): 256 MiB at most, the rest queue.
const maxConcurrentHashes = 4

func setDefaults(cfg *Config) {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.AccessTokenTTL, time.Hour)
	def(&cfg.IDTokenTTL, time.Hour)
	def(&cfg.RefreshTokenTTL, 30*24*time.Hour)
	def(&cfg.CodeTTL, time.Minute)
	def(&cfg.SessionTTL, 24*time.Hour)
	def(&cfg.DeviceCodeTTL, 10*time.Minute)
	def(&cfg.DevicePollInterval, 5*time.Second)
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Brand.Name == "" {
		cfg.Brand.Name = "Portcullis"
	}
}

// validateIssuer applies OIDC Discovery §3 / RFC 8414 §2: a URL with a
// scheme and host, no query or fragment; https unless on loopback.
func validateIssuer(issuer string) error {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("issuer %q must be an absolute http(s) URL such as https://auth.example.com", issuer)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("issuer %q must not have a query or fragment", issuer)
	}
	return nil
}

// Issuer returns the issuer identifier.
func (s *Server) Issuer() string { return s.issuer }

// Endpoint paths below the issuer.
const (
	PathDiscovery  = "/.well-known/openid-configuration"
	PathASMetadata = "/.well-known/oauth-authorization-server"
	PathJWKS       = "/.well-known/jwks.json"
	PathAuthorize  = "/authorize"
	PathLogin      = "/login"
	PathConsent    = "/consent"
	PathToken      = "/oauth/token"
	PathUserinfo   = "/userinfo"
	PathIntrospect = "/oauth/introspect"
	PathRevoke     = "/oauth/revoke"
	PathEndSession = "/logout"
	// PathPAR is the pushed authorization request endpoint (RFC 9126).
	PathPAR    = "/oauth/par"
	PathAssets = "/assets/"
)

// Device authorization paths (RFC 8628): the endpoint a device asks for a
// code, and the verification page the user types the code into.
const (
	PathDeviceAuthorization = "/oauth/device/code"
	PathDevice              = "/device"
)

func (s *Server) url(path string) string { return s.issuer + path }

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET "+PathDiscovery, s.serveDiscovery)
	m.HandleFunc("GET "+PathASMetadata, s.serveDiscovery)
	m.HandleFunc("GET "+PathJWKS, s.serveJWKS)
	m.HandleFunc(PathAuthorize, s.serveAuthorize)
	m.HandleFunc("POST "+PathLogin, s.serveLogin)
	m.HandleFunc("POST "+PathConsent, s.serveConsent)
	m.HandleFunc(PathToken, cors(s.serveToken))
	m.HandleFunc(PathUserinfo, cors(s.serveUserinfo))
	m.HandleFunc(PathIntrospect, s.serveIntrospect)
	m.HandleFunc(PathRevoke, cors(s.serveRevoke))
	m.HandleFunc(PathEndSession, s.serveEndSession)
	m.HandleFunc(PathPAR, cors(s.servePAR))
	m.HandleFunc(PathDeviceAuthorization, cors(s.serveDeviceAuthorization))
	m.HandleFunc(PathDevice, s.serveDevice)
	m.HandleFunc(PathBackchannelAuthentication, s.serveBackchannelAuthentication)
	m.HandleFunc(PathCIBA, s.serveCIBAPage)
	m.HandleFunc(PathCIBADecision, s.serveCIBADecision)
	m.Handle("GET "+PathAssets+"{file}", http.StripPrefix(PathAssets[:len(PathAssets)-1], assetHandler()))
	s.mux = m
}

// ServeHTTP serves the authorization server's endpoints. Requests outside
// the issuer's path get 404.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r, ok := s.below(r)
	if !ok {
		http.NotFound(w, r)
		return
	}
	defer func() {
		// A bug must not take the server down or leak a stack to a client.
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic serving request", zap.String("path", r.URL.Path), zap.Any("panic", v), zap.Stack("stack"))
			http.Error(w, "internal error", http.StatusInternalServerError)
		}
	}()
	s.mux.ServeHTTP(w, r)
}

// below returns r with the issuer's path removed, or false when r is not
// below the issuer.
func (s *Server) below(r *http.Request) (*http.Request, bool) {
	if s.pathPrefix == "" {
		return r, cleanPath(r.URL.Path)
	}
	rest, ok := strings.CutPrefix(r.URL.Path, s.pathPrefix)
	if !ok || rest == "" || rest[0] != '/' || !cleanPath(rest) {
		return r, false
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = rest
	r2.URL.RawPath = ""
	return r2, true
}

// cors lets browser apps (public clients: SPAs) call an endpoint from
// their own origin. No credentials (cookies) are ever allowed cross-origin:
// these endpoints authenticate with the request body or Authorization.
func cors(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") == "" {
			h(w, r)
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", "*")
		// RFC 9449 §7.1, §8: a browser app reads these only when exposed.
		w.Header().Set("Access-Control-Expose-Headers", "WWW-Authenticate, DPoP-Nonce")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			hdr := w.Header()
			hdr.Set("Access-Control-Allow-Methods", "GET, POST")
			hdr.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, DPoP")
			hdr.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h(w, r)
	}
}

// cleanPath reports whether p is already canonical: the mux would
// otherwise answer with a redirect that loses the issuer's path, so such
// paths get 404 instead.
func cleanPath(p string) bool {
	c := path.Clean(p)
	return p == c || p == c+"/"
}

// Handles reports whether r is for one of the server's endpoints, so the
// server can sit in front of other handlers on the same site.
func (s *Server) Handles(r *http.Request) bool {
	r, ok := s.below(r)
	if !ok {
		return false
	}
	switch r.URL.Path {
	case PathDiscovery, PathASMetadata, PathJWKS, PathAuthorize, PathLogin, PathConsent, PathToken,
		PathUserinfo, PathIntrospect, PathRevoke, PathEndSession, PathPAR, PathDeviceAuthorization, PathDevice,
		PathBackchannelAuthentication, PathCIBA, PathCIBADecision:
		return true
	}
	return strings.HasPrefix(r.URL.Path, PathAssets)
}

func (s *Server) logError(r *http.Request, oe *Error) {
	fields := []zap.Field{zap.String("path", r.URL.Path), zap.String("error", oe.Code), zap.String("description", oe.Description)}
	if oe.Cause != nil {
		fields = append(fields, zap.NamedError("cause", oe.Cause))
	}
	if oe.Status >= 500 {
		s.log.Error("request failed", fields...)
	} else {
		s.log.Debug("request refused", fields...)
	}
}

// Background runs the periodic work (store sweep, key refresh and
// rotation) until ctx is done. It also writes used client assertion ids to
// the store as they come, and the last queued ones before it returns, and
// delivers CIBA notifications (ping, push, webhook).
func (s *Server) Background(ctx context.Context, every time.Duration) {
	persisted := make(chan struct{})
	go func() {
		defer close(persisted)
		s.assertions.used.persist(ctx)
	}()
	defer func() { <-persisted }()
	notified := make(chan struct{})
	go func() {
		defer close(notified)
		s.ciba.notifier.run(ctx)
	}()
	defer func() { <-notified }()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := s.store.Sweep(ctx, s.now()); err != nil {
				s.log.Error("sweeping expired records", zap.Error(err))
			} else if n > 0 {
				s.log.Debug("swept expired records", zap.Int("count", n))
			}
			if err := s.keys.Refresh(ctx); err != nil {
				s.log.Error("refreshing signing keys", zap.Error(err))
			}
			s.throttle.prune()
			s.userCodes.prune()
			s.devicePolls.prune(s.now())
			s.ciba.polls.prune(s.now())
			s.ciba.limits.prune()
		}
	}
}
