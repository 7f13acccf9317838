package proxy_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/portcullis-gw/portcullis/proxy"
	"github.com/portcullis-gw/portcullis/session"
)

// This file holds the test harness: a fake OpenID Provider that signs its
// tokens with go-jose, a fake clock, counting metrics, and a "browser" that
// keeps cookies and drives the gateway through httptest.

const (
	appHost      = "app.example"
	appOrigin    = "https://" + appHost
	testClientID = "webapp"
	testSecret   = "webapp-secret"
	callbackPath = "/oauth2/callback"
)

var (
	cookieSecret      = []byte("0123456789abcdef0123456789abcdef")
	otherCookieSecret = []byte("fedcba9876543210fedcba9876543210")
)

// fakeClock is the gateway's, the session store's and the provider's clock.
// It starts at the real time because x/oauth2 computes token expiry from
// the real clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now().Truncate(time.Second)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// signingKey is one of the provider's keys.
type signingKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

func (k *signingKey) public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

func newECKey(t testing.TB, kid string) *signingKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &signingKey{kid: kid, alg: jose.ES256, priv: priv}
}

// rsaKey is generated once: RSA generation is slow under -race.
var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// sign makes a compact JWS of claims with key, through go-jose.
func sign(t testing.TB, key *signingKey, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: key.alg, Key: jose.JSONWebKey{Key: key.priv, KeyID: key.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// leftHalfHash is c_hash / at_hash for a SHA-256 algorithm (OIDC Core
// §3.3.2.11).
func leftHalfHash(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// authCode is what the provider remembers about one authorization.
type authCode struct {
	clientID, redirectURI, nonce, challenge, method string
	claims                                          map[string]any
}

// refreshGrant is one refresh token the provider issued.
type refreshGrant struct {
	claims map[string]any
	used   bool
}

// fakeOP is an OpenID Provider on loopback: discovery, JWKS, PAR and a
// token endpoint that checks client authentication, redirect_uri and PKCE,
// makes codes single-use and rotates refresh tokens with reuse detection.
// There is no /authorize: tests play the user agent and call Authorize.
type fakeOP struct {
	t      testing.TB
	srv    *httptest.Server
	issuer string
	clock  *fakeClock

	// Down makes discovery answer 503.
	Down atomic.Bool

	mu        sync.Mutex
	key       *signingKey
	published []jose.JSONWebKey
	codes     map[string]*authCode
	refresh   map[string]*refreshGrant
	pushed    map[string]url.Values
	lastPAR   url.Values
	// meta overrides discovery fields; a nil value removes the field.
	meta map[string]any
	// claims are the signed-in user's claims (sub included).
	claims map[string]any
	// tamperIDToken edits the token endpoint's ID token claims before
	// signing; signIDToken replaces the signing (both for attacks).
	tamperIDToken func(c map[string]any)
	signIDToken   func(c map[string]any) string
	// tamperAccessToken changes the access token after at_hash is computed.
	tamperAccessToken func(at string) string
	omitIDToken       bool
	expiresIn         int
	issueRefresh      bool
	reusableCodes     bool
	tokenError        string // the token endpoint answers this OAuth error
	refreshError      string // refresh_token grants answer this OAuth error
	parError          bool
	// refreshEntered and refreshRelease, when set, let a test hold a
	// refresh grant after the provider rotated the token and before it
	// answers.
	refreshEntered chan struct{}
	refreshRelease chan struct{}
	// refreshClaims, when set, are the claims of ID tokens issued on
	// refresh.
	refreshClaims map[string]any
	// userinfo, when set, is served at /userinfo (and advertised) to a
	// bearer of an issued access token; userinfoStatus, when set, is the
	// status it answers with instead.
	userinfo       map[string]any
	userinfoStatus int
	issuedAT       map[string]bool

	discoveryHits, jwksHits, codeExchanges, refreshes, parHits atomic.Int64
}

func newFakeOP(t testing.TB, clock *fakeClock) *fakeOP {
	op := &fakeOP{
		t: t, clock: clock, key: newECKey(t, "k1"),
		codes: map[string]*authCode{}, refresh: map[string]*refreshGrant{}, pushed: map[string]url.Values{},
		meta: map[string]any{}, expiresIn: 3600,
		claims: map[string]any{
			"sub": "alice", "email": "alice@example.com", "email_verified": true,
			"groups": []any{"admins", "dev"}, "preferred_username": "alice", "name": "Alice Example",
		},
	}
	rsaPub := jose.JSONWebKey{Key: rsaKey().Public(), KeyID: "r1", Algorithm: string(jose.RS256), Use: "sig"}
	op.published = []jose.JSONWebKey{op.key.public(), rsaPub}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", op.discovery)
	mux.HandleFunc("GET /jwks", op.jwks)
	mux.HandleFunc("POST /token", op.token)
	mux.HandleFunc("POST /par", op.par)
	mux.HandleFunc("GET /userinfo", op.serveUserinfo)
	op.srv = httptest.NewServer(mux)
	op.issuer = op.srv.URL
	t.Cleanup(op.srv.Close)
	return op
}

func (op *fakeOP) set(f func(op *fakeOP)) {
	op.mu.Lock()
	defer op.mu.Unlock()
	f(op)
}

// rotateKey makes the provider sign with a new key and publish only it.
func (op *fakeOP) rotateKey(kid string) {
	k := newECKey(op.t, kid)
	op.set(func(op *fakeOP) {
		op.key = k
		op.published = []jose.JSONWebKey{k.public()}
	})
}

func (op *fakeOP) discovery(w http.ResponseWriter, r *http.Request) {
	op.discoveryHits.Add(1)
	if op.Down.Load() {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	doc := map[string]any{
		"issuer":                                op.issuer,
		"authorization_endpoint":                op.issuer + "/authorize",
		"token_endpoint":                        op.issuer + "/token",
		"jwks_uri":                              op.issuer + "/jwks",
		"end_session_endpoint":                  op.issuer + "/logout",
		"pushed_authorization_request_endpoint": op.issuer + "/par",
		"response_types_supported":              []string{"code", "code id_token"},
		"response_modes_supported":              []string{"query", "form_post"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"ES256", "RS256"},
		"code_challenge_methods_supported":      []string{"S256"},
	}
	op.mu.Lock()
	if op.userinfo != nil {
		doc["userinfo_endpoint"] = op.issuer + "/userinfo"
	}
	overrideMeta(doc, op.meta)
	op.mu.Unlock()
	writeJSON(w, http.StatusOK, doc)
}

// overrideMeta applies a test's metadata overrides to doc: a nil value
// removes the field.
func overrideMeta(doc, meta map[string]any) {
	for k, v := range meta {
		if v == nil {
			delete(doc, k)
		} else {
			doc[k] = v
		}
	}
}

// serveUserinfo answers OIDC UserInfo requests with op.userinfo for the
// bearer of an access token the provider issued.
func (op *fakeOP) serveUserinfo(w http.ResponseWriter, r *http.Request) {
	op.mu.Lock()
	defer op.mu.Unlock()
	at, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !op.issuedAT[at] {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if op.userinfoStatus != 0 {
		w.WriteHeader(op.userinfoStatus)
		return
	}
	writeJSON(w, http.StatusOK, op.userinfo)
}

func (op *fakeOP) jwks(w http.ResponseWriter, r *http.Request) {
	op.jwksHits.Add(1)
	op.mu.Lock()
	set := jose.JSONWebKeySet{Keys: op.published}
	op.mu.Unlock()
	writeJSON(w, http.StatusOK, set)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func oauthError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"error": code})
}

// clientAuthenticated checks HTTP Basic (RFC 6749 §2.3.1, form-encoded id
// and secret) or client_secret_post.
func (op *fakeOP) clientAuthenticated(r *http.Request) bool {
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	return id == testClientID && subtle.ConstantTimeCompare([]byte(secret), []byte(testSecret)) == 1
}

func (op *fakeOP) par(w http.ResponseWriter, r *http.Request) {
	op.parHits.Add(1)
	r.ParseForm()
	if !op.clientAuthenticated(r) {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.parError {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	op.lastPAR = r.PostForm
	uri := "urn:ietf:params:oauth:request_uri:" + randomID()
	op.pushed[uri] = r.PostForm
	writeJSON(w, http.StatusCreated, map[string]any{"request_uri": uri, "expires_in": 60})
}

func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// authResponse is the provider's answer to one authorization request.
type authResponse struct {
	Code, State, Nonce, RedirectURI string
	// Request are the authorization request's parameters (resolved from
	// PAR when pushed).
	Request url.Values
}

// Authorize plays the user at the provider: it reads the authorization
// request from the gateway's redirect and issues a code for the current
// user.
func (op *fakeOP) Authorize(t testing.TB, location string) authResponse {
	t.Helper()
	u, err := url.Parse(location)
	if err != nil {
		t.Fatalf("authorize redirect %q: %v", location, err)
	}
	if got := u.Scheme + "://" + u.Host + u.Path; got != op.issuer+"/authorize" {
		t.Fatalf("login redirect goes to %q, not the provider's authorization endpoint", got)
	}
	q := u.Query()
	op.mu.Lock()
	defer op.mu.Unlock()
	if uri := q.Get("request_uri"); uri != "" {
		pushed, ok := op.pushed[uri]
		if !ok {
			t.Fatalf("unknown request_uri %q", uri)
		}
		delete(op.pushed, uri)
		q = pushed
	}
	if q.Get("client_id") != testClientID {
		t.Fatalf("authorization request for client %q", q.Get("client_id"))
	}
	code := randomID()
	op.codes[code] = &authCode{
		clientID: q.Get("client_id"), redirectURI: q.Get("redirect_uri"), nonce: q.Get("nonce"),
		challenge: q.Get("code_challenge"), method: q.Get("code_challenge_method"), claims: maps.Clone(op.claims),
	}
	return authResponse{Code: code, State: q.Get("state"), Nonce: q.Get("nonce"), RedirectURI: q.Get("redirect_uri"), Request: q}
}

// CallbackURL is the redirect back to the gateway (response_mode query),
// with iss (RFC 9207) unless extra says otherwise.
func (op *fakeOP) CallbackURL(t testing.TB, ar authResponse, extra url.Values) string {
	t.Helper()
	q := url.Values{"code": {ar.Code}, "state": {ar.State}, "iss": {op.issuer}}
	for k, v := range extra {
		if v == nil {
			delete(q, k)
		} else {
			q[k] = v
		}
	}
	u, err := url.Parse(ar.RedirectURI)
	if err != nil || u.Host != appHost {
		t.Fatalf("redirect_uri %q is not the app's", ar.RedirectURI)
	}
	return u.Path + "?" + q.Encode()
}

// FrontChannelIDToken is the hybrid flow's ID token for a code (with
// c_hash), edited by tamper.
func (op *fakeOP) FrontChannelIDToken(ar authResponse, tamper func(map[string]any)) string {
	op.mu.Lock()
	defer op.mu.Unlock()
	c := op.idTokenClaims(op.claims, ar.Nonce)
	c["c_hash"] = leftHalfHash(ar.Code)
	if tamper != nil {
		tamper(c)
	}
	return sign(op.t, op.key, c)
}

// idTokenClaims are the standard claims of an ID token for user. op.mu is
// held.
func (op *fakeOP) idTokenClaims(user map[string]any, nonce string) map[string]any {
	now := op.clock.Now()
	c := maps.Clone(user)
	c["iss"] = op.issuer
	c["aud"] = testClientID
	c["iat"] = now.Unix()
	c["exp"] = now.Add(time.Hour).Unix()
	if nonce != "" {
		c["nonce"] = nonce
	}
	return c
}

func (op *fakeOP) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if !op.clientAuthenticated(r) {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		op.codeGrant(w, r)
	case "refresh_token":
		op.refreshGrant(w, r)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
	}
}

func (op *fakeOP) codeGrant(w http.ResponseWriter, r *http.Request) {
	op.codeExchanges.Add(1)
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.tokenError != "" {
		oauthError(w, http.StatusBadRequest, op.tokenError)
		return
	}
	form := r.PostForm
	ac, ok := op.codes[form.Get("code")]
	if !ok {
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	if !op.reusableCodes {
		delete(op.codes, form.Get("code"))
	}
	if form.Get("redirect_uri") != ac.redirectURI {
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	verifier := form.Get("code_verifier")
	switch {
	case ac.challenge != "" && (ac.method != "S256" || verifier == "" ||
		base64.RawURLEncoding.EncodeToString(sha256Sum(verifier)) != ac.challenge):
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	case ac.challenge == "" && verifier != "":
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	op.issueTokens(w, ac.claims, ac.nonce)
}

func sha256Sum(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

func (op *fakeOP) refreshGrant(w http.ResponseWriter, r *http.Request) {
	op.refreshes.Add(1)
	op.mu.Lock()
	if op.refreshError != "" {
		op.mu.Unlock()
		oauthError(w, http.StatusBadRequest, op.refreshError)
		return
	}
	g, ok := op.refresh[r.PostForm.Get("refresh_token")]
	if !ok || g.used {
		op.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	g.used = true // rotation: the old refresh token is spent from here on
	entered, release := op.refreshEntered, op.refreshRelease
	op.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
		<-release
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	claims := g.claims
	if op.refreshClaims != nil {
		claims = op.refreshClaims
	}
	op.issueTokens(w, claims, "")
}

// issueTokens answers a token request. op.mu is held.
func (op *fakeOP) issueTokens(w http.ResponseWriter, user map[string]any, nonce string) {
	at := "at-" + randomID()
	if op.issuedAT == nil {
		op.issuedAT = map[string]bool{}
	}
	op.issuedAT[at] = true
	// x/oauth2 turns expires_in into an expiry on the real clock; shift it
	// so that the token expires op.expiresIn after the fake clock's now,
	// the clock the gateway compares it with.
	skew := int(time.Until(op.clock.Now()).Round(time.Second) / time.Second)
	resp := map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": op.expiresIn + skew}
	if !op.omitIDToken {
		c := op.idTokenClaims(user, nonce)
		c["at_hash"] = leftHalfHash(at)
		if op.tamperIDToken != nil {
			op.tamperIDToken(c)
		}
		if op.signIDToken != nil {
			resp["id_token"] = op.signIDToken(c)
		} else {
			resp["id_token"] = sign(op.t, op.key, c)
		}
	}
	if op.tamperAccessToken != nil {
		resp["access_token"] = op.tamperAccessToken(at)
	}
	if op.issueRefresh {
		rt := "rt-" + randomID()
		op.refresh[rt] = &refreshGrant{claims: maps.Clone(user)}
		resp["refresh_token"] = rt
	}
	writeJSON(w, http.StatusOK, resp)
}

// countingMetrics records the gateway's events.
type countingMetrics struct {
	mu                           sync.Mutex
	started, succeeded, rejected int
	refreshOK, refreshFailed     int
	failed                       map[string]int
}

func (m *countingMetrics) LoginStarted()   { m.mu.Lock(); m.started++; m.mu.Unlock() }
func (m *countingMetrics) LoginSucceeded() { m.mu.Lock(); m.succeeded++; m.mu.Unlock() }
func (m *countingMetrics) SessionRejected() {
	m.mu.Lock()
	m.rejected++
	m.mu.Unlock()
}

func (m *countingMetrics) LoginFailed(reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failed == nil {
		m.failed = map[string]int{}
	}
	m.failed[reason]++
}

func (m *countingMetrics) Refreshed(ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ok {
		m.refreshOK++
	} else {
		m.refreshFailed++
	}
}

func (m *countingMetrics) get(f func(m *countingMetrics) int) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return f(m)
}

// envSpec are the knobs of a test gateway.
type envSpec struct {
	edits      []func(c *proxy.Config)
	cookieName string
	secret     []byte
	insecure   bool
	lifetime   time.Duration
	idle       time.Duration
	beforeGW   func(op *fakeOP)
	op         *fakeOP // a provider shared with another env
}

type envOption func(*envSpec)

// withConfig edits the gateway's configuration; fields left zero get the
// test defaults (issuer, client, HTTP client).
func withConfig(f func(c *proxy.Config)) envOption {
	return func(s *envSpec) { s.edits = append(s.edits, f) }
}

// withSharedOP puts the gateway in front of another env's provider.
func withSharedOP(op *fakeOP) envOption {
	return func(s *envSpec) { s.op = op }
}

func withOP(f func(op *fakeOP)) envOption {
	return func(s *envSpec) { s.beforeGW = f }
}

// env is a gateway in front of a recording upstream, with its provider.
type env struct {
	t       *testing.T
	op      *fakeOP
	gw      *proxy.Gateway
	clock   *fakeClock
	metrics *countingMetrics
	store   *session.CookieStore
	cfg     proxy.Config
	handler http.Handler
}

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	spec := &envSpec{cookieName: "portcullis_session", secret: cookieSecret, lifetime: 24 * time.Hour, idle: 8 * time.Hour}
	for _, o := range opts {
		o(spec)
	}
	var clock *fakeClock
	op := spec.op
	if op == nil {
		clock = newFakeClock()
		op = newFakeOP(t, clock)
	} else {
		clock = op.clock
	}
	cfg := proxy.Config{Issuer: op.issuer, ClientID: testClientID, ClientSecret: testSecret, HTTPClient: op.srv.Client()}
	for _, edit := range spec.edits {
		edit(&cfg)
	}
	if spec.beforeGW != nil {
		spec.beforeGW(op)
	}
	store, err := session.NewCookieStore(session.CookieOptions{Name: spec.cookieName, Secure: !spec.insecure, MaxAge: spec.lifetime},
		spec.lifetime, spec.idle, spec.secret)
	if err != nil {
		t.Fatal(err)
	}
	store.Now = clock.Now
	if cfg.Sessions == nil {
		cfg.Sessions = store
	}
	if cfg.LoginCookies == nil {
		cfg.LoginCookies, err = proxy.NewLoginCookies(spec.cookieName+"_login", !spec.insecure, cfg.Flow == "hybrid", spec.secret)
		if err != nil {
			t.Fatal(err)
		}
	}
	metrics := &countingMetrics{}
	cfg.Metrics = metrics
	cfg.Now = clock.Now
	gw, err := proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	e := &env{t: t, op: op, gw: gw, clock: clock, metrics: metrics, store: store, cfg: cfg}
	e.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, done := gw.Serve(w, r)
		if done {
			return
		}
		gw.Prepare(r, id)
		upstream(w, r)
	})
	return e
}

// upstreamSeen is what the recording upstream received.
type upstreamSeen struct {
	Path   string      `json:"path"`
	Header http.Header `json:"header"`
}

// upstream answers 200 with the request it received, as JSON, so each
// response carries its own record (no shared state between goroutines).
func upstream(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Upstream", "yes")
	writeJSON(w, http.StatusOK, upstreamSeen{Path: r.URL.Path, Header: r.Header})
}

// browser keeps cookies for https://app.example and sends requests to the
// gateway in process.
type browser struct {
	t   *testing.T
	e   *env
	jar *cookiejar.Jar
}

var appURL = &url.URL{Scheme: "https", Host: appHost, Path: "/"}

func (e *env) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &browser{t: e.t, e: e, jar: jar}
}

// newRequest builds a request for target (origin-form, sent as is) to
// https://app.example.
func newRequest(method, target string, body io.Reader) *http.Request {
	r := httptest.NewRequest(method, target, body)
	r.Host = appHost
	r.TLS = &tls.ConnectionState{}
	return r
}

// navigate is a top-level browser navigation.
func navigate(target string) *http.Request {
	r := newRequest(http.MethodGet, target, nil)
	r.Header.Set("Accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8")
	r.Header.Set("Sec-Fetch-Mode", "navigate")
	return r
}

// do sends r with the jar's cookies and stores the cookies set.
func (b *browser) do(r *http.Request) *http.Response {
	b.t.Helper()
	for _, c := range b.jar.Cookies(appURL) {
		r.AddCookie(c)
	}
	return b.doBare(r)
}

// doBare sends r with only the cookies already on it.
func (b *browser) doBare(r *http.Request) *http.Response {
	b.t.Helper()
	rec := httptest.NewRecorder()
	b.e.handler.ServeHTTP(rec, r)
	resp := rec.Result()
	b.jar.SetCookies(appURL, resp.Cookies())
	return resp
}

func (b *browser) get(target string) *http.Response { return b.do(navigate(target)) }

// cookieHeader is the Cookie header the browser would send now.
func (b *browser) cookies() []*http.Cookie { return b.jar.Cookies(appURL) }

// startLogin navigates to target and expects the redirect to the provider.
func (b *browser) startLogin(target string) authResponse {
	b.t.Helper()
	resp := b.get(target)
	if resp.StatusCode != http.StatusFound {
		b.t.Fatalf("GET %s without a session: status %d, want 302 to the provider; body %s", target, resp.StatusCode, body(resp))
	}
	return b.e.op.Authorize(b.t, resp.Header.Get("Location"))
}

// login signs the browser in through target and returns the final
// callback response (303 to target when all is well).
func (b *browser) login(target string) *http.Response {
	b.t.Helper()
	ar := b.startLogin(target)
	return b.get(b.e.op.CallbackURL(b.t, ar, nil))
}

// mustLogin signs in and checks the callback's redirect back.
func (b *browser) mustLogin(target string) {
	b.t.Helper()
	resp := b.login(target)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != target {
		b.t.Fatalf("login via %s: status %d Location %q, want 303 to %s; body %s", target, resp.StatusCode,
			resp.Header.Get("Location"), target, body(resp))
	}
}

// upstreamOf decodes what the upstream saw, failing when the request did
// not reach it.
func upstreamOf(t testing.TB, resp *http.Response) upstreamSeen {
	t.Helper()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Upstream") != "yes" {
		t.Fatalf("request did not reach the upstream: status %d Location %q body %s", resp.StatusCode,
			resp.Header.Get("Location"), body(resp))
	}
	var seen upstreamSeen
	if err := json.NewDecoder(resp.Body).Decode(&seen); err != nil {
		t.Fatal(err)
	}
	return seen
}

func body(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return string(b)
}

// setCookie finds the Set-Cookie named name in resp.
func setCookie(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// sessionCookieName is the session cookie's name with the default (secure)
// options.
const sessionCookieName = "__Host-portcullis_session"

func isLoginCookie(name string) bool {
	return strings.HasPrefix(name, "__Host-portcullis_session_login_") || strings.HasPrefix(name, "portcullis_session_login_")
}

// expectLoginRedirect checks resp is a redirect to the provider.
func (e *env) expectLoginRedirect(t testing.TB, resp *http.Response) {
	t.Helper()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), e.op.issuer+"/authorize?") {
		t.Fatalf("status %d Location %q, want 302 to the provider; body %s", resp.StatusCode, resp.Header.Get("Location"), body(resp))
	}
}

// expectLoginFailed checks a callback was refused with a sign-in-again
// page for reason, and that no session was started.
func (e *env) expectLoginFailed(t testing.TB, resp *http.Response, status int, reason string) {
	t.Helper()
	text := body(resp)
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d (%s); body %s", resp.StatusCode, status, reason, text)
	}
	if !strings.Contains(text, "Reason: "+reason) || !strings.Contains(text, "Sign in again") {
		t.Fatalf("the page does not name reason %q or offer to sign in again: %s", reason, text)
	}
	if c := setCookie(resp, sessionCookieName); c != nil && c.MaxAge >= 0 {
		t.Fatalf("a refused callback set a session cookie: %v", c)
	}
	if n := e.metrics.get(func(m *countingMetrics) int { return m.failed[reason] }); n == 0 {
		t.Errorf("LoginFailed(%q) was not counted", reason)
	}
	if n := e.metrics.get(func(m *countingMetrics) int { return m.succeeded }); n != 0 {
		t.Errorf("LoginSucceeded counted %d times for a refused login", n)
	}
}
