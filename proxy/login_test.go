package proxy_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/proxy"
)

func TestLoginSignsInAndReturnsToTheRequestedPage(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.mustLogin("/reports?q=1&x=2")
	seen := upstreamOf(t, b.get("/reports?q=1"))
	if seen.Path != "/reports" || seen.Header.Get("X-Forwarded-User") != "alice" {
		t.Fatalf("upstream saw path %q user %q", seen.Path, seen.Header.Get("X-Forwarded-User"))
	}
	started := e.metrics.get(func(m *countingMetrics) int { return m.started })
	succeeded := e.metrics.get(func(m *countingMetrics) int { return m.succeeded })
	if started != 1 || succeeded != 1 {
		t.Errorf("metrics: started %d succeeded %d, want 1 and 1", started, succeeded)
	}
}

func TestAuthorizationRequestCarriesStateNonceAndPKCE(t *testing.T) {
	e := newEnv(t)
	resp := e.browser().get("/")
	e.expectLoginRedirect(t, resp)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	q := loc.Query()
	want := map[string]string{
		"response_type": "code", "client_id": testClientID, "redirect_uri": appOrigin + callbackPath,
		"code_challenge_method": "S256",
	}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, q.Get(k), v)
		}
	}
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if len(q.Get(k)) < 32 {
			t.Errorf("%s = %q: want a long random value", k, q.Get(k))
		}
	}
	if q.Get("state") == q.Get("nonce") {
		t.Error("state and nonce are the same value")
	}
	if scopes := strings.Fields(q.Get("scope")); !slices.Contains(scopes, "openid") {
		t.Errorf("scope %q lacks openid", q.Get("scope"))
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("login redirect Cache-Control %q, want no-store", cc)
	}
}

func TestEachLoginGetsFreshStateAndNonce(t *testing.T) {
	e := newEnv(t)
	seen := map[string]bool{}
	for range 5 {
		ar := e.browser().startLogin("/")
		for _, v := range []string{ar.State, ar.Nonce, ar.Request.Get("code_challenge")} {
			if seen[v] {
				t.Fatalf("value %q reused across logins", v)
			}
			seen[v] = true
		}
	}
}

func TestPKCE(t *testing.T) {
	cases := []struct {
		name          string
		secret        string
		disable       bool
		wantChallenge bool
	}{
		{"confidential client uses PKCE by default", testSecret, false, true},
		{"confidential client may turn PKCE off", testSecret, true, false},
		{"public client keeps PKCE even when turned off", "", true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, withConfig(func(c *proxy.Config) { c.ClientSecret, c.DisablePKCE = tc.secret, tc.disable }))
			b := e.browser()
			ar := b.startLogin("/")
			if got := ar.Request.Get("code_challenge") != ""; got != tc.wantChallenge {
				t.Fatalf("code_challenge present = %v, want %v", got, tc.wantChallenge)
			}
			if tc.secret == "" {
				return // the fake provider only registers the confidential client
			}
			// The provider checks the verifier against the challenge.
			resp := b.get(e.op.CallbackURL(t, ar, nil))
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("callback status %d; body %s", resp.StatusCode, body(resp))
			}
		})
	}
}

func TestLoginCookieAttributes(t *testing.T) {
	cases := []struct {
		name     string
		flow     string
		insecure bool
		prefix   string
		sameSite http.SameSite
	}{
		{"code flow: SameSite=Lax, __Host-", "code", false, "__Host-portcullis_session_login_", http.SameSiteLaxMode},
		{"form_post: SameSite=None; Secure", "hybrid", false, "__Host-portcullis_session_login_", http.SameSiteNoneMode},
		{"form_post on plain-HTTP development is still Secure", "hybrid", true, "portcullis_session_login_", http.SameSiteNoneMode},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, withConfig(func(c *proxy.Config) { c.Flow = tc.flow }), func(s *envSpec) { s.insecure = tc.insecure })
			resp := e.browser().get("/")
			e.expectLoginRedirect(t, resp)
			var lc *http.Cookie
			for _, c := range resp.Cookies() {
				if strings.HasPrefix(c.Name, tc.prefix) {
					lc = c
				}
			}
			if lc == nil {
				t.Fatalf("no login cookie with prefix %s in %v", tc.prefix, resp.Header["Set-Cookie"])
			}
			if lc.SameSite != tc.sameSite || !lc.HttpOnly || lc.Path != "/" || lc.Domain != "" {
				t.Errorf("login cookie %s: SameSite %v HttpOnly %v Path %q Domain %q", lc.Name, lc.SameSite, lc.HttpOnly, lc.Path, lc.Domain)
			}
			if wantSecure := !tc.insecure || tc.sameSite == http.SameSiteNoneMode; lc.Secure != wantSecure {
				t.Errorf("login cookie Secure = %v, want %v", lc.Secure, wantSecure)
			}
			if lc.MaxAge <= 0 || lc.MaxAge > int((15*time.Minute)/time.Second) {
				t.Errorf("login cookie Max-Age %d: want short-lived (at most 15 minutes)", lc.MaxAge)
			}
		})
	}
}

func TestSessionCookieAttributesByDefault(t *testing.T) {
	e := newEnv(t)
	resp := e.browser().login("/")
	c := setCookie(resp, sessionCookieName)
	if c == nil {
		t.Fatalf("no %s cookie set by the callback: %v", sessionCookieName, resp.Header["Set-Cookie"])
	}
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
		t.Errorf("session cookie: HttpOnly %v Secure %v SameSite %v Path %q Domain %q; want HttpOnly, Secure, Lax, /, no Domain",
			c.HttpOnly, c.Secure, c.SameSite, c.Path, c.Domain)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Error("the callback's redirect may be cached")
	}
	if len(c.Value) < 100 || strings.Contains(c.Value, "alice") {
		t.Errorf("session cookie value does not look encrypted: %q", c.Value)
	}
	// The callback expires the login cookie it consumed.
	for _, sc := range resp.Cookies() {
		if isLoginCookie(sc.Name) && sc.MaxAge >= 0 {
			t.Errorf("login cookie %s not expired by the callback", sc.Name)
		}
	}
}

func TestParallelLoginsInSeveralTabsAllComplete(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	targets := []string{"/a", "/b?x=1", "/c"}
	var logins []authResponse
	for _, target := range targets {
		logins = append(logins, b.startLogin(target))
		e.clock.Advance(time.Second)
	}
	// Finish them in another order than they were started.
	for _, i := range []int{2, 0, 1} {
		resp := b.get(e.op.CallbackURL(t, logins[i], nil))
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != targets[i] {
			t.Fatalf("tab %d: status %d Location %q, want 303 to %s; body %s", i, resp.StatusCode, resp.Header.Get("Location"), targets[i], body(resp))
		}
	}
	upstreamOf(t, b.get("/a"))
}

func TestAbandonedLoginsDoNotPileUp(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	var logins []authResponse
	for range 12 {
		logins = append(logins, b.startLogin("/"))
		e.clock.Advance(time.Second)
		n := 0
		for _, c := range b.cookies() {
			if isLoginCookie(c.Name) {
				n++
			}
		}
		if n > 5 {
			t.Fatalf("%d login cookies pending after %d logins; want at most 5", n, len(logins))
		}
	}
	// The newest logins still complete; the oldest were dropped.
	if resp := b.get(e.op.CallbackURL(t, logins[0], nil)); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("the oldest abandoned login: status %d, want 400", resp.StatusCode)
	}
	if resp := b.get(e.op.CallbackURL(t, logins[len(logins)-1], nil)); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the newest login: status %d, want 303; body %s", resp.StatusCode, body(resp))
	}
}

// browserLocation resolves a Location header the way a browser's URL parser
// does (WHATWG: backslash is a slash in special URLs, tab and newline are
// dropped) against the page's URL.
func browserLocation(t testing.TB, loc string) *url.URL {
	t.Helper()
	cleaned := strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\n', '\r':
			return -1
		case '\\':
			return '/'
		}
		return r
	}, strings.TrimSpace(loc))
	u, err := url.Parse(cleaned)
	if err != nil {
		t.Fatalf("Location %q does not parse: %v", loc, err)
	}
	return (&url.URL{Scheme: "https", Host: appHost, Path: "/"}).ResolveReference(u)
}

func TestReturnURLCannotRedirectToAnotherSite(t *testing.T) {
	targets := []string{
		"//evil.example",
		"//evil.example/path",
		"///evil.example",
		"/\\evil.example",
		"/\\/evil.example",
		"/%2F%2Fevil.example",
		"/%2f%2fevil.example",
		"/%5C%5Cevil.example",
		"/%5C/evil.example",
		"/.//evil.example",
		"/..//evil.example",
		"/./%2F/evil.example",
		"/%09/evil.example",
		"/%0d%0aLocation:%20https://evil.example",
		"/x%0d%0aSet-Cookie:%20a=b",
		"/?next=https://evil.example",
		"https://evil.example/",
		"http://evil.example//evil.example",
	}
	for _, target := range targets {
		t.Run(target, func(t *testing.T) {
			e := newEnv(t)
			b := e.browser()
			ar := b.startLogin(target)
			resp := b.get(e.op.CallbackURL(t, ar, nil))
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("status %d, want 303; body %s", resp.StatusCode, body(resp))
			}
			loc := resp.Header.Get("Location")
			t.Logf("Location %q", loc)
			if u := browserLocation(t, loc); u.Host != appHost {
				t.Fatalf("after signing in via %q the browser is sent to host %q (Location %q)", target, u.Host, loc)
			}
			if strings.ContainsAny(loc, "\r\n") {
				t.Fatalf("Location %q carries a line break", loc)
			}
		})
	}
}

func TestReturnURLAfterNonGETIsTheSiteRoot(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	r := newRequest(http.MethodPost, "/form?id=1", strings.NewReader("a=b"))
	r.Header.Set("Accept", "text/html")
	resp := b.do(r)
	e.expectLoginRedirect(t, resp)
	ar := e.op.Authorize(t, resp.Header.Get("Location"))
	if resp := b.get(e.op.CallbackURL(t, ar, nil)); resp.Header.Get("Location") != "/" {
		t.Fatalf("after a POST the login returns to %q, want /", resp.Header.Get("Location"))
	}
}

func TestScriptRequestsGet401NotARedirect(t *testing.T) {
	cases := []struct {
		name    string
		headers map[string]string
		want    int
	}{
		{"Accept: application/json", map[string]string{"Accept": "application/json"}, http.StatusUnauthorized},
		{"no Accept header", map[string]string{}, http.StatusUnauthorized},
		{"Accept: */*", map[string]string{"Accept": "*/*"}, http.StatusUnauthorized},
		{"X-Requested-With", map[string]string{"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"}, http.StatusUnauthorized},
		{"fetch with Sec-Fetch-Mode: cors", map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "cors"}, http.StatusUnauthorized},
		{"Sec-Fetch-Mode: no-cors", map[string]string{"Accept": "text/html,*/*", "Sec-Fetch-Mode": "no-cors"}, http.StatusUnauthorized},
		{"browser navigation", map[string]string{"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Mode": "navigate"}, http.StatusFound},
		{"old browser without Sec-Fetch", map[string]string{"Accept": "text/html"}, http.StatusFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := newRequest(http.MethodGet, "/api/items", nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			resp := e.browser().do(r)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want != http.StatusUnauthorized {
				return
			}
			if resp.Header.Get("Location") != "" {
				t.Errorf("a 401 carries Location %q", resp.Header.Get("Location"))
			}
			if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
			for _, c := range resp.Cookies() {
				if isLoginCookie(c.Name) {
					t.Errorf("a 401 started a login (cookie %s)", c.Name)
				}
			}
			if n := e.metrics.get(func(m *countingMetrics) int { return m.started }); n != 0 {
				t.Errorf("LoginStarted counted %d times for script requests", n)
			}
		})
	}
}

func TestProviderDownAtStartGives503ThenLoginsWork(t *testing.T) {
	e := newEnv(t, withOP(func(op *fakeOP) { op.Down.Store(true) }))
	b := e.browser()
	start := time.Now()
	resp := b.get("/")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("login while the provider is down: status %d, want 503; body %s", resp.StatusCode, body(resp))
	}
	if elapsed := time.Since(start); elapsed > 6*time.Second {
		t.Fatalf("the 503 took %v; want a few seconds at most", elapsed)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if !strings.Contains(body(resp), "Try again") {
		t.Error("503 page has no way to try again")
	}
	// API clients are told to authenticate without waiting for the provider.
	r := newRequest(http.MethodGet, "/api", nil)
	r.Header.Set("Accept", "application/json")
	if resp := b.do(r); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("API request while the provider is down: status %d, want 401", resp.StatusCode)
	}

	e.op.Down.Store(false)
	// Each attempt waits for discovery to finish (up to 3 s), so this loop
	// is paced by the gateway's back-off, not by sleeps.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp := b.get("/")
		if resp.StatusCode == http.StatusFound {
			break
		}
		if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("after the provider came back: status %d; body %s", resp.StatusCode, body(resp))
		}
	}
	if hits := e.op.discoveryHits.Load(); hits < 2 {
		t.Fatalf("discovery fetched %d times; want retries", hits)
	}
	b.mustLogin("/after")
}

func TestPushedAuthorizationRequest(t *testing.T) {
	cases := []struct {
		name string
		opts []envOption
	}{
		{"configured with UsePAR", []envOption{withConfig(func(c *proxy.Config) { c.UsePAR = true })}},
		{"required by the provider", []envOption{withOP(func(op *fakeOP) { op.meta["require_pushed_authorization_requests"] = true })}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts...)
			b := e.browser()
			resp := b.get("/pushed")
			e.expectLoginRedirect(t, resp)
			loc, _ := url.Parse(resp.Header.Get("Location"))
			q := loc.Query()
			if len(q) != 2 || q.Get("client_id") != testClientID || !strings.HasPrefix(q.Get("request_uri"), "urn:ietf:params:oauth:request_uri:") {
				t.Fatalf("authorize redirect after PAR carries %v; want only client_id and request_uri", q)
			}
			e.op.mu.Lock()
			pushed := e.op.lastPAR
			e.op.mu.Unlock()
			if pushed.Get("code_challenge") == "" || pushed.Get("code_challenge_method") != "S256" ||
				pushed.Get("state") == "" || pushed.Get("nonce") == "" || pushed.Get("redirect_uri") != appOrigin+callbackPath {
				t.Fatalf("pushed request %v lacks PKCE, state, nonce or redirect_uri", pushed)
			}
			ar := e.op.Authorize(t, resp.Header.Get("Location"))
			if resp := b.get(e.op.CallbackURL(t, ar, nil)); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/pushed" {
				t.Fatalf("callback after PAR: status %d Location %q; body %s", resp.StatusCode, resp.Header.Get("Location"), body(resp))
			}
		})
	}
}

func TestPushedAuthorizationRequestNotUsedUnlessAskedFor(t *testing.T) {
	e := newEnv(t)
	ar := e.browser().startLogin("/")
	if ar.Request.Get("request_uri") != "" || e.op.parHits.Load() != 0 {
		t.Fatalf("PAR used without UsePAR or a provider requirement")
	}
}

func TestPushedAuthorizationRequestFailureIsABadGatewayPage(t *testing.T) {
	cases := []struct {
		name string
		opts []envOption
	}{
		{"the provider refuses the pushed request", []envOption{withConfig(func(c *proxy.Config) { c.UsePAR = true }), withOP(func(op *fakeOP) { op.parError = true })}},
		{"the provider has no PAR endpoint", []envOption{withConfig(func(c *proxy.Config) { c.UsePAR = true }),
			withOP(func(op *fakeOP) { op.meta["pushed_authorization_request_endpoint"] = nil })}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts...)
			resp := e.browser().get("/")
			if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Location") != "" {
				t.Fatalf("status %d Location %q, want a 502 page", resp.StatusCode, resp.Header.Get("Location"))
			}
			if !strings.Contains(body(resp), "Sign in again") {
				t.Error("the page offers no way to sign in again")
			}
		})
	}
}

func TestNewRefusesUnusableConfig(t *testing.T) {
	e := newEnv(t)
	base := e.cfg
	cases := []struct {
		name string
		edit func(c *proxy.Config)
	}{
		{"no issuer", func(c *proxy.Config) { c.Issuer = "" }},
		{"relative issuer", func(c *proxy.Config) { c.Issuer = "/issuer" }},
		{"issuer with another scheme", func(c *proxy.Config) { c.Issuer = "ftp://op.example" }},
		{"no client id", func(c *proxy.Config) { c.ClientID = "" }},
		{"no session store", func(c *proxy.Config) { c.Sessions = nil }},
		{"no login cookies", func(c *proxy.Config) { c.LoginCookies = nil }},
		{"unknown flow", func(c *proxy.Config) { c.Flow = "implicit" }},
		{"relative callback path", func(c *proxy.Config) { c.RedirectPath = "oauth2/callback" }},
		{"bad skip pattern", func(c *proxy.Config) { c.Skip = []string{"/[a"} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.edit(&cfg)
			if gw, err := proxy.New(cfg); err == nil {
				gw.Close()
				t.Fatal("New accepted the config")
			}
		})
	}
}
