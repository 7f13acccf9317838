package flows

// Test harness shared by every test of the package: a Server over a fresh
// boltstore with seeded clients, users and APIs, a controllable clock, an
// in-process "browser" that keeps cookies and walks the login and consent
// pages, and helpers for the back-channel endpoints and for JWTs.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/portcullis-gw/portcullis/keys"
	"github.com/portcullis-gw/portcullis/store"
	"github.com/portcullis-gw/portcullis/store/boltstore"
)

// Fixed identities of the seeded test world.
const (
	testIssuer = "https://auth.example.com"

	webappID       = "webapp"
	webappSecret   = "webapp-secret"
	webappRedirect = "https://app.example.com/cb"
	webappBye      = "https://app.example.com/bye"

	// otherID is a second confidential client with the same grants as
	// webapp, used to present another client's codes and tokens.
	otherID       = "other"
	otherSecret   = "other-secret"
	otherRedirect = "https://other.example.com/cb"

	spaID       = "spa"
	spaRedirect = "https://spa.example.com/callback"

	// firstPartyID skips the consent page.
	firstPartyID       = "first"
	firstPartySecret   = "first-secret"
	firstPartyRedirect = "https://first.example.com/cb"

	backendID     = "backend"
	backendSecret = "backend-secret"

	// misconfiguredPublicID is a public client that was (wrongly) allowed
	// client_credentials: the grant must still refuse it.
	misconfiguredPublicID = "public-cc"

	apiID1    = "https://api.example.com"
	opaqueAPI = "https://opaque.example.com"

	alicePassword = "correct horse battery staple"
	bobPassword   = "bob's 2nd password"
)

var (
	// passwordHashes are computed once per test binary: argon2id with
	// 64 MiB and 3 passes costs ~100 ms (several times that under -race).
	hashOnce              sync.Once
	aliceHash, bobHash    string
	testCookieSecret      = bytes.Repeat([]byte("portcullis-test-cookie-secret!!!"), 2)
	defaultTestRemoteAddr = "192.0.2.10:40000"
)

func passwordHashes(tb testing.TB) (string, string) {
	tb.Helper()
	hashOnce.Do(func() {
		var err error
		if aliceHash, err = HashPassword(alicePassword); err != nil {
			panic(err)
		}
		if bobHash, err = HashPassword(bobPassword); err != nil {
			panic(err)
		}
	})
	return aliceHash, bobHash
}

// testClock is the controllable clock shared by the Server, the store and
// the key manager.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testEnv is one authorization server with its store, clock and keys.
type testEnv struct {
	tb     testing.TB
	srv    *Server
	store  *boltstore.Store
	keys   *keys.Manager
	clock  *testClock
	issuer string
	// handler is what requests are served by; normally srv, but tests may
	// put a wrapper in front.
	handler http.Handler
	// allow500 turns off the "no response is a 500" check for tests that
	// cause one on purpose.
	allow500 atomic.Bool
}

// envOption adjusts the Config (and optionally wraps the store) before the
// Server is built.
type envOption func(*Config)

// newTestServer builds a Server over a fresh boltstore in tb.TempDir() with
// the seeded clients, users and APIs, and a clock frozen at a whole second
// until a test advances it.
func newTestServer(tb testing.TB, opts ...envOption) *testEnv {
	tb.Helper()
	ctx := context.Background()
	st, err := boltstore.Open(filepath.Join(tb.TempDir(), "portcullis.db"))
	if err != nil {
		tb.Fatalf("opening store: %v", err)
	}
	tb.Cleanup(func() { st.Close() })
	clock := &testClock{t: time.Now().Truncate(time.Second).UTC()}
	st.SetClock(clock.Now)
	km, err := keys.New(ctx, st, keys.Options{Now: clock.Now})
	if err != nil {
		tb.Fatalf("keys.New: %v", err)
	}
	seed(tb, st)
	cfg := Config{
		Issuer:        testIssuer,
		Store:         st,
		Keys:          km,
		CookieSecrets: [][]byte{testCookieSecret},
		Now:           clock.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		tb.Fatalf("flows.New: %v", err)
	}
	return &testEnv{tb: tb, srv: srv, store: st, keys: km, clock: clock, issuer: srv.Issuer(), handler: srv}
}

// seed registers the clients, users and APIs every test relies on.
func seed(tb testing.TB, st store.Store) {
	tb.Helper()
	ctx := context.Background()
	aliceHash, bobHash := passwordHashes(tb)
	clients := []*store.Client{
		{
			ID: webappID, Name: "Web App", SecretDigest: DigestSecret(webappSecret),
			TokenEndpointAuthMethod: AuthMethodSecretBasic,
			RedirectURIs:            []string{webappRedirect}, PostLogoutRedirectURIs: []string{webappBye},
			GrantTypes: []string{GrantAuthorizationCode, GrantRefreshToken},
		},
		{
			ID: otherID, Name: "Other App", SecretDigest: DigestSecret(otherSecret),
			TokenEndpointAuthMethod: AuthMethodSecretBasic,
			RedirectURIs:            []string{otherRedirect, webappRedirect},
			GrantTypes:              []string{GrantAuthorizationCode, GrantRefreshToken},
		},
		{
			ID: spaID, Name: "Single Page App", TokenEndpointAuthMethod: AuthMethodNone,
			RedirectURIs: []string{spaRedirect}, PostLogoutRedirectURIs: []string{"https://spa.example.com/"},
			GrantTypes: []string{GrantAuthorizationCode, GrantRefreshToken},
		},
		{
			ID: firstPartyID, Name: "First Party", SecretDigest: DigestSecret(firstPartySecret),
			TokenEndpointAuthMethod: AuthMethodSecretPost, FirstParty: true,
			RedirectURIs: []string{firstPartyRedirect},
			GrantTypes:   []string{GrantAuthorizationCode, GrantRefreshToken},
		},
		{
			ID: backendID, Name: "Backend", SecretDigest: DigestSecret(backendSecret),
			TokenEndpointAuthMethod: AuthMethodSecretBasic,
			GrantTypes:              []string{GrantClientCredentials},
			APIAccess:               map[string][]string{apiID1: {"read:items"}},
		},
		{
			ID: misconfiguredPublicID, TokenEndpointAuthMethod: AuthMethodNone,
			GrantTypes: []string{GrantClientCredentials},
			APIAccess:  map[string][]string{apiID1: {"read:items"}},
		},
	}
	for _, c := range clients {
		if err := st.PutClient(ctx, c); err != nil {
			tb.Fatal(err)
		}
	}
	users := []*store.User{
		{
			ID: "alice", Username: "alice", PasswordHash: aliceHash, Email: "alice@example.com", EmailVerified: true,
			Name: "Alice Liddell", Groups: []string{"admins", "staff"}, Claims: map[string]any{"department": "R&D", "iss": "https://evil.example"},
		},
		{ID: "bob", Username: "bob", PasswordHash: bobHash, Email: "bob@example.com", Name: "Bob"},
		{ID: "disabled", Username: "disabled", PasswordHash: aliceHash, Disabled: true},
	}
	for _, u := range users {
		if err := st.PutUser(ctx, u); err != nil {
			tb.Fatal(err)
		}
	}
	apis := []*store.API{
		{Identifier: apiID1, Name: "Items API", Scopes: []string{"read:items", "write:items"}, TokenFormat: "jwt"},
		{Identifier: opaqueAPI, Name: "Opaque API", Scopes: []string{"read:opaque"}, TokenFormat: "opaque"},
	}
	for _, a := range apis {
		if err := st.PutAPI(ctx, a); err != nil {
			tb.Fatal(err)
		}
	}
}

// checkStatus fails the test on a 500 unless the test caused it on purpose.
func (e *testEnv) checkStatus(method, target string, status int) {
	if status >= 500 && !e.allow500.Load() {
		e.tb.Errorf("%s %s answered %d: no request may cause a server error", method, target, status)
	}
}

// serve runs one request through the handler in-process.
func (e *testEnv) serve(r *http.Request) *response {
	e.tb.Helper()
	if r.RemoteAddr == "" || r.RemoteAddr == "192.0.2.1:1234" {
		r.RemoteAddr = defaultTestRemoteAddr
	}
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, r)
	res := rec.Result()
	e.checkStatus(r.Method, r.URL.Path, res.StatusCode)
	body, _ := io.ReadAll(res.Body)
	return &response{Status: res.StatusCode, Header: res.Header, Body: string(body), Cookies: res.Cookies()}
}

// response is a fully read HTTP response.
type response struct {
	Status  int
	Header  http.Header
	Body    string
	Cookies []*http.Cookie
}

// JSON decodes the body as a JSON object.
func (r *response) JSON(tb testing.TB) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
		tb.Fatalf("response %d is not a JSON object: %v\n%s", r.Status, err, r.Body)
	}
	return m
}

// Location parses the Location header.
func (r *response) Location(tb testing.TB) *url.URL {
	tb.Helper()
	loc := r.Header.Get("Location")
	if loc == "" {
		tb.Fatalf("response %d has no Location header; body:\n%s", r.Status, r.Body)
	}
	u, err := url.Parse(loc)
	if err != nil {
		tb.Fatalf("bad Location %q: %v", loc, err)
	}
	return u
}

// Page kinds, recognised by their form fields.
func (r *response) isLoginPage() bool   { return strings.Contains(r.Body, `name="password"`) }
func (r *response) isConsentPage() bool { return strings.Contains(r.Body, `name="decision"`) }

var (
	formActionRE  = regexp.MustCompile(`<form method="post" action="([^"]*)"`)
	hiddenInputRE = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)
)

// form returns the action and hidden fields of the page's form.
func (r *response) form(tb testing.TB) (string, url.Values) {
	tb.Helper()
	m := formActionRE.FindStringSubmatch(r.Body)
	if m == nil {
		tb.Fatalf("page %d has no form:\n%s", r.Status, r.Body)
	}
	fields := url.Values{}
	for _, h := range hiddenInputRE.FindAllStringSubmatch(r.Body, -1) {
		fields.Add(html.UnescapeString(h[1]), html.UnescapeString(h[2]))
	}
	return html.UnescapeString(m[1]), fields
}

// --- requests against the environment ---

func httptestRequest(method, target string) *http.Request {
	return httptest.NewRequest(method, target, nil)
}

func httptestRequestBody(method, target, body string) *http.Request {
	return httptest.NewRequest(method, target, strings.NewReader(body))
}

func (e *testEnv) url(path string) string { return e.issuer + path }

// get serves GET path (with an optional query).
func (e *testEnv) get(path string, query url.Values, header http.Header) *response {
	e.tb.Helper()
	target := e.url(path)
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for k, v := range header {
		r.Header[k] = v
	}
	return e.serve(r)
}

// postForm serves a form POST to path, with optional extra headers.
func (e *testEnv) postForm(path string, form url.Values, header http.Header) *response {
	e.tb.Helper()
	return e.postRaw(path, "application/x-www-form-urlencoded", form.Encode(), header)
}

func (e *testEnv) postRaw(path, contentType, body string, header http.Header) *response {
	e.tb.Helper()
	r := httptest.NewRequest(http.MethodPost, e.url(path), strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		r.Header[k] = v
	}
	return e.serve(r)
}

// clientCred is how a client authenticates at the back-channel endpoints.
type clientCred struct {
	id, secret string
	// method is "basic", "post" or "none".
	method string
}

var (
	webappBasic  = clientCred{webappID, webappSecret, "basic"}
	webappPost   = clientCred{webappID, webappSecret, "post"}
	otherBasic   = clientCred{otherID, otherSecret, "basic"}
	spaPublic    = clientCred{spaID, "", "none"}
	backendBasic = clientCred{backendID, backendSecret, "basic"}
	firstPost    = clientCred{firstPartyID, firstPartySecret, "post"}
	noClientAuth = clientCred{}
)

// apply adds the credentials to form and returns the headers to send.
func (c clientCred) apply(form url.Values) http.Header {
	h := http.Header{}
	switch c.method {
	case "basic":
		r := &http.Request{Header: h}
		r.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
	case "post":
		form.Set("client_id", c.id)
		form.Set("client_secret", c.secret)
	case "none":
		form.Set("client_id", c.id)
	}
	return h
}

// backChannel posts form to path authenticated as c.
func (e *testEnv) backChannel(path string, c clientCred, form url.Values) *response {
	e.tb.Helper()
	f := url.Values{}
	for k, v := range form {
		f[k] = append([]string(nil), v...)
	}
	return e.postForm(path, f, c.apply(f))
}

// token posts to the token endpoint.
func (e *testEnv) token(c clientCred, form url.Values) *response {
	e.tb.Helper()
	return e.backChannel(PathToken, c, form)
}

// tokenOK posts to the token endpoint and requires a 200.
func (e *testEnv) tokenOK(c clientCred, form url.Values) *tokenResult {
	e.tb.Helper()
	res := e.token(c, form)
	if res.Status != http.StatusOK {
		e.tb.Fatalf("token request %v as %s: %d %s", form, c.id, res.Status, res.Body)
	}
	var tr tokenResult
	if err := json.Unmarshal([]byte(res.Body), &tr); err != nil {
		e.tb.Fatalf("token response: %v\n%s", err, res.Body)
	}
	tr.raw = res
	return &tr
}

// tokenResult is a successful token response.
type tokenResult struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	raw          *response
}

// wantOAuthError checks an RFC 6749 §5.2 JSON error response.
func wantOAuthError(tb testing.TB, res *response, status int, code string) {
	tb.Helper()
	if res.Status != status {
		tb.Fatalf("status %d, want %d; body %s", res.Status, status, res.Body)
	}
	m := res.JSON(tb)
	if m["error"] != code {
		tb.Fatalf("error %v, want %s; body %s", m["error"], code, res.Body)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		tb.Errorf("error content type %q", ct)
	}
}

// redeem exchanges a code at the token endpoint.
func (e *testEnv) redeem(c clientCred, code, redirectURI, verifier string) *response {
	e.tb.Helper()
	form := url.Values{"grant_type": {GrantAuthorizationCode}, "code": {code}}
	if redirectURI != "" {
		form.Set("redirect_uri", redirectURI)
	}
	if verifier != "" {
		form.Set("code_verifier", verifier)
	}
	return e.token(c, form)
}

func (e *testEnv) redeemOK(c clientCred, code, redirectURI, verifier string) *tokenResult {
	e.tb.Helper()
	form := url.Values{"grant_type": {GrantAuthorizationCode}, "code": {code}}
	if redirectURI != "" {
		form.Set("redirect_uri", redirectURI)
	}
	if verifier != "" {
		form.Set("code_verifier", verifier)
	}
	return e.tokenOK(c, form)
}

func (e *testEnv) refresh(c clientCred, refreshToken string) *response {
	e.tb.Helper()
	return e.token(c, url.Values{"grant_type": {GrantRefreshToken}, "refresh_token": {refreshToken}})
}

// introspect asks about tok as the confidential backend client.
func (e *testEnv) introspect(tok string) map[string]any {
	e.tb.Helper()
	res := e.backChannel(PathIntrospect, backendBasic, url.Values{"token": {tok}})
	if res.Status != http.StatusOK {
		e.tb.Fatalf("introspection: %d %s", res.Status, res.Body)
	}
	return res.JSON(e.tb)
}

func (e *testEnv) active(tok string) bool {
	e.tb.Helper()
	return e.introspect(tok)["active"] == true
}

// userinfo calls the userinfo endpoint with tok as a Bearer token.
func (e *testEnv) userinfo(tok string) *response {
	e.tb.Helper()
	h := http.Header{}
	if tok != "" {
		h.Set("Authorization", "Bearer "+tok)
	}
	return e.get(PathUserinfo, nil, h)
}

// --- PKCE and authorization parameters ---

// newPKCE returns a fresh verifier and its S256 challenge.
func newPKCE() (verifier, challenge string) {
	b := make([]byte, 32)
	rand.Read(b)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

func randomString() string {
	b := make([]byte, 12)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// authRequestParams are the parameters of one authorization request and
// the PKCE verifier that goes with them.
type authRequestParams struct {
	url.Values
	Verifier string
}

// newAuthRequest builds a code + PKCE (S256) request for client with a
// fresh state and nonce.
func newAuthRequest(clientID, redirectURI, scope string) authRequestParams {
	verifier, challenge := newPKCE()
	v := url.Values{
		"response_type":         {"code"},
		"client_id":             {clientID},
		"redirect_uri":          {redirectURI},
		"scope":                 {scope},
		"state":                 {"st-" + randomString()},
		"nonce":                 {"n-" + randomString()},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
	}
	return authRequestParams{Values: v, Verifier: verifier}
}

// --- the browser ---

// browser is a user agent with a cookie jar that does not follow
// redirects, talking to the Server in-process over "https".
type browser struct {
	env    *testEnv
	client *http.Client
	jar    http.CookieJar
}

// handlerTransport serves client requests with the environment's handler,
// as if over the network.
type handlerTransport struct {
	env        *testEnv
	remoteAddr string
}

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	sr := req.Clone(req.Context())
	if sr.Body == nil {
		sr.Body = http.NoBody
	}
	sr.RemoteAddr = t.remoteAddr
	sr.RequestURI = req.URL.RequestURI()
	sr.Host = req.URL.Host
	rec := httptest.NewRecorder()
	t.env.handler.ServeHTTP(rec, sr)
	res := rec.Result()
	res.Request = req
	t.env.checkStatus(req.Method, req.URL.Path, res.StatusCode)
	return res, nil
}

// newBrowser returns a browser with an empty cookie jar, coming from
// remoteAddr (default 192.0.2.10).
func (e *testEnv) newBrowser(remoteAddr ...string) *browser {
	jar, _ := cookiejar.New(nil)
	addr := defaultTestRemoteAddr
	if len(remoteAddr) > 0 {
		addr = remoteAddr[0]
	}
	c := &http.Client{
		Jar:       jar,
		Transport: handlerTransport{env: e, remoteAddr: addr},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return &browser{env: e, client: c, jar: jar}
}

func (b *browser) do(req *http.Request) *response {
	b.env.tb.Helper()
	res, err := b.client.Do(req)
	if err != nil {
		b.env.tb.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return &response{Status: res.StatusCode, Header: res.Header, Body: string(body), Cookies: res.Cookies()}
}

// resolve makes target absolute: endpoint paths (PathLogin, …) are below
// the issuer; anything else is resolved like a browser resolves a link on
// one of the server's pages.
func (b *browser) resolve(target string) string {
	if strings.HasPrefix(target, "/") && !strings.HasPrefix(target, b.env.srv.pathPrefix+"/") {
		return b.env.url(target)
	}
	base, _ := url.Parse(b.env.issuer + "/")
	ref, err := url.Parse(target)
	if err != nil {
		b.env.tb.Fatalf("bad link %q: %v", target, err)
	}
	return base.ResolveReference(ref).String()
}

// get fetches an absolute URL or a path below the issuer.
func (b *browser) get(target string) *response {
	b.env.tb.Helper()
	target = b.resolve(target)
	req, _ := http.NewRequest(http.MethodGet, target, nil)
	return b.do(req)
}

// post submits a form to an absolute URL or a path below the issuer.
func (b *browser) post(target string, form url.Values) *response {
	b.env.tb.Helper()
	target = b.resolve(target)
	req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// authorize sends the browser to the authorization endpoint.
func (b *browser) authorize(params url.Values) *response {
	b.env.tb.Helper()
	return b.get(b.env.url(PathAuthorize) + "?" + params.Encode())
}

// submitLogin fills in and posts the login form of page.
func (b *browser) submitLogin(page *response, username, password string) *response {
	b.env.tb.Helper()
	if !page.isLoginPage() {
		b.env.tb.Fatalf("expected the login page, got %d:\n%s", page.Status, page.Body)
	}
	action, fields := page.form(b.env.tb)
	fields.Set("username", username)
	fields.Set("password", password)
	return b.post(action, fields)
}

// submitConsent posts the consent form of page with decision.
func (b *browser) submitConsent(page *response, decision string) *response {
	b.env.tb.Helper()
	if !page.isConsentPage() {
		b.env.tb.Fatalf("expected the consent page, got %d:\n%s", page.Status, page.Body)
	}
	action, fields := page.form(b.env.tb)
	fields.Set("decision", decision)
	return b.post(action, fields)
}

// signIn walks authorize → login (when shown) → consent allow (when
// shown) and returns the final response, normally the 303 to the client.
func (b *browser) signIn(params url.Values, username, password string) *response {
	b.env.tb.Helper()
	res := b.authorize(params)
	if res.isLoginPage() {
		res = b.submitLogin(res, username, password)
	}
	if res.isConsentPage() {
		res = b.submitConsent(res, "allow")
	}
	return res
}

// callback returns the authorization response parameters of a 303 to the
// client (query response mode).
func callback(tb testing.TB, res *response) url.Values {
	tb.Helper()
	if res.Status != http.StatusSeeOther {
		tb.Fatalf("expected a 303 to the client, got %d:\n%s", res.Status, res.Body)
	}
	return res.Location(tb).Query()
}

// obtainCode signs alice in (as needed) and returns the code for params,
// checking state and iss on the way.
func (b *browser) obtainCode(p authRequestParams, username, password string) string {
	b.env.tb.Helper()
	res := b.signIn(p.Values, username, password)
	q := callback(b.env.tb, res)
	if q.Get("error") != "" {
		b.env.tb.Fatalf("authorization failed: %s: %s", q.Get("error"), q.Get("error_description"))
	}
	if q.Get("state") != p.Get("state") || q.Get("iss") != b.env.issuer {
		b.env.tb.Fatalf("callback state/iss = %q/%q, want %q/%q", q.Get("state"), q.Get("iss"), p.Get("state"), b.env.issuer)
	}
	if q.Get("code") == "" {
		b.env.tb.Fatalf("callback without code: %v", q)
	}
	return q.Get("code")
}

// webappTokens runs the whole code flow for webapp as alice with scope and
// returns the tokens.
func (e *testEnv) webappTokens(b *browser, scope string) (*tokenResult, authRequestParams) {
	e.tb.Helper()
	p := newAuthRequest(webappID, webappRedirect, scope)
	code := b.obtainCode(p, "alice", alicePassword)
	return e.redeemOK(webappBasic, code, webappRedirect, p.Verifier), p
}

// --- JWTs ---

// jwks fetches the published key set.
func (e *testEnv) jwks() jose.JSONWebKeySet {
	e.tb.Helper()
	res := e.get(PathJWKS, nil, nil)
	if res.Status != http.StatusOK {
		e.tb.Fatalf("JWKS: %d", res.Status)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(res.Body), &set); err != nil {
		e.tb.Fatalf("JWKS: %v", err)
	}
	return set
}

// verifyJWT checks tok's signature against the published JWKS (as a
// relying party would, with go-jose) and returns its typ header and claims.
func (e *testEnv) verifyJWT(tok string) (string, map[string]any) {
	e.tb.Helper()
	set := e.jwks()
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.PS256, jose.EdDSA})
	if err != nil {
		e.tb.Fatalf("parsing JWT: %v", err)
	}
	if len(parsed.Headers) != 1 {
		e.tb.Fatalf("JWT with %d signatures", len(parsed.Headers))
	}
	h := parsed.Headers[0]
	ks := set.Key(h.KeyID)
	if len(ks) != 1 {
		e.tb.Fatalf("kid %q is not in the JWKS", h.KeyID)
	}
	if ks[0].Algorithm != h.Algorithm {
		e.tb.Fatalf("JWT alg %s, key alg %s", h.Algorithm, ks[0].Algorithm)
	}
	var claims map[string]any
	if err := parsed.Claims(ks[0].Key, &claims); err != nil {
		e.tb.Fatalf("JWT signature does not verify with the JWKS: %v", err)
	}
	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	return typ, claims
}

// claimInt reads a numeric claim.
func claimInt(tb testing.TB, claims map[string]any, name string) int64 {
	tb.Helper()
	f, ok := claims[name].(float64)
	if !ok {
		tb.Fatalf("claim %s = %#v, want a number", name, claims[name])
	}
	return int64(f)
}

// atHash is OIDC Core §3.1.3.6 for ES256.
func atHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}
