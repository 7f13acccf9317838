package proxy_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/proxy"
)

const idTokenHeader = "X-Forwarded-Id-Token"

// spoofed are identity headers a client may try to send.
var spoofed = map[string]string{
	"X-Forwarded-User":               "admin",
	"X-Forwarded-Email":              "admin@example.com",
	"X-Forwarded-Groups":             "admins,root",
	"X-Forwarded-Preferred-Username": "admin",
	"X-Forwarded-Access-Token":       "forged-access-token",
	idTokenHeader:                    "forged.id.token",
	"Authorization":                  "Bearer forged-access-token",
}

func spoofEnv(t *testing.T, opts ...envOption) *env {
	opts = append([]envOption{withConfig(func(c *proxy.Config) {
		c.PassAccessToken, c.IDTokenHeader = true, idTokenHeader
		c.Skip = []string{"/public/*", "/healthz"}
	})}, opts...)
	return newEnv(t, opts...)
}

func spoof(r *http.Request) *http.Request {
	for k, v := range spoofed {
		r.Header.Set(k, v)
	}
	return r
}

// checkNoSpoofedValue fails when the upstream saw any value the client
// sent in an identity header.
func checkNoSpoofedValue(t *testing.T, seen upstreamSeen) {
	t.Helper()
	for k, v := range spoofed {
		if got := seen.Header.Values(k); slices.Contains(got, v) || len(got) > 1 {
			t.Errorf("upstream saw the client's %s: %q", k, got)
		}
	}
}

func TestIdentityHeadersFromTheClientAreRemoved(t *testing.T) {
	cases := []struct {
		name   string
		claims map[string]any // nil: no sign-in, a skipped path
		target string
		want   map[string]string // "" means absent
	}{
		{"signed in with every claim", map[string]any{
			"sub": "alice", "email": "alice@example.com", "groups": []any{"dev"}, "preferred_username": "al",
		}, "/app", map[string]string{
			"X-Forwarded-User": "alice", "X-Forwarded-Email": "alice@example.com", "X-Forwarded-Groups": "dev",
			"X-Forwarded-Preferred-Username": "al", "X-Forwarded-Access-Token": "",
		}},
		{"signed in without email, groups or username claims", map[string]any{"sub": "bob"}, "/app", map[string]string{
			"X-Forwarded-User": "bob", "X-Forwarded-Email": "", "X-Forwarded-Groups": "", "X-Forwarded-Preferred-Username": "",
			"X-Forwarded-Access-Token": "",
		}},
		{"skipped path prefix", nil, "/public/logo.png", map[string]string{
			"X-Forwarded-User": "", "X-Forwarded-Email": "", "X-Forwarded-Groups": "", "X-Forwarded-Preferred-Username": "",
			"X-Forwarded-Access-Token": "", idTokenHeader: "", "Authorization": "",
		}},
		{"skipped exact path", nil, "/healthz", map[string]string{"X-Forwarded-User": "", idTokenHeader: "", "Authorization": ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := spoofEnv(t)
			b := e.browser()
			if tc.claims != nil {
				e.op.set(func(op *fakeOP) { op.claims = tc.claims })
				b.mustLogin(tc.target)
			}
			seen := upstreamOf(t, b.do(spoof(navigate(tc.target))))
			checkNoSpoofedValue(t, seen)
			for k, v := range tc.want {
				if got := seen.Header.Get(k); got != v {
					t.Errorf("upstream %s = %q, want %q", k, got, v)
				}
			}
			if tc.claims != nil {
				if at := seen.Header.Get("Authorization"); !strings.HasPrefix(at, "Bearer at-") {
					t.Errorf("upstream Authorization %q, want the session's access token", at)
				}
				if idt := seen.Header.Get(idTokenHeader); strings.Count(idt, ".") != 2 || idt == spoofed[idTokenHeader] {
					t.Errorf("upstream %s %q, want the session's ID token", idTokenHeader, idt)
				}
			}
		})
	}
}

func TestIdentityHeaderVariantsFromTheClientAreRemoved(t *testing.T) {
	// CGI and FastCGI upstreams (php_fastcgi, WSGI, Rack) see X_Forwarded_User
	// and X-Forwarded-User as the same HTTP_X_FORWARDED_USER variable.
	variants := []string{"X_Forwarded_User", "x_forwarded_email", "X-Forwarded_Groups", "X_FORWARDED_PREFERRED_USERNAME", "X_Forwarded_Id_Token", "X_Forwarded_Access_Token"}
	for _, signedIn := range []bool{true, false} {
		name := "skipped path"
		if signedIn {
			name = "signed in"
		}
		t.Run(name, func(t *testing.T) {
			e := spoofEnv(t)
			b := e.browser()
			target := "/public/x"
			if signedIn {
				target = "/app"
				b.mustLogin(target)
			}
			r := navigate(target)
			for _, v := range variants {
				r.Header[v] = []string{"admin"}
			}
			seen := upstreamOf(t, b.do(r))
			for k, vs := range seen.Header {
				if slices.Contains(vs, "admin") {
					t.Errorf("upstream saw the client's %s: %q", k, vs)
				}
			}
		})
	}
}

func TestAuthorizationHeaderIsKeptWithoutPassAccessToken(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.mustLogin("/")
	r := navigate("/")
	r.Header.Set("Authorization", "Basic YXBwOmFwcA==")
	seen := upstreamOf(t, b.do(r))
	if got := seen.Header.Get("Authorization"); got != "Basic YXBwOmFwcA==" {
		t.Fatalf("the app's own Authorization header became %q", got)
	}
}

func TestConfiguredHeadersReplaceTheDefaults(t *testing.T) {
	e := newEnv(t, withConfig(func(c *proxy.Config) {
		c.Headers = map[string]string{"Remote-User": "preferred_username", "Remote-Name": "name"}
	}))
	b := e.browser()
	b.mustLogin("/")
	r := navigate("/")
	r.Header.Set("Remote-User", "admin")
	r.Header.Set("Remote-Name", "Admin")
	seen := upstreamOf(t, b.do(r))
	if seen.Header.Get("Remote-User") != "alice" || seen.Header.Get("Remote-Name") != "Alice Example" {
		t.Fatalf("upstream Remote-User %q Remote-Name %q", seen.Header.Get("Remote-User"), seen.Header.Get("Remote-Name"))
	}
}

func TestClaimValuesCannotSmuggleHeaderLines(t *testing.T) {
	e := newEnv(t, withOP(func(op *fakeOP) {
		op.claims = map[string]any{
			"sub": "alice", "email": "alice@example.com\r\nX-Forwarded-User: admin",
			"groups": []any{"dev\nadmins", "ops"}, "preferred_username": "al\x00ice",
		}
	}))
	b := e.browser()
	b.mustLogin("/")
	seen := upstreamOf(t, b.get("/"))
	want := map[string]string{
		"X-Forwarded-User":               "alice",
		"X-Forwarded-Email":              "alice@example.comX-Forwarded-User: admin",
		"X-Forwarded-Groups":             "devadmins,ops",
		"X-Forwarded-Preferred-Username": "alice",
	}
	for k, v := range want {
		if got := seen.Header.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

func TestGatewayCookiesAreStrippedFromUpstreamRequests(t *testing.T) {
	e := newEnv(t, withOP(func(op *fakeOP) {
		// A large claim makes the session span several cookie chunks.
		op.claims["bio"] = strings.Repeat("long biography ", 200)
	}))
	b := e.browser()
	b.startLogin("/other-tab") // a login left pending in another tab
	b.mustLogin("/")
	var chunks, logins int
	for _, c := range b.cookies() {
		switch {
		case isLoginCookie(c.Name):
			logins++
		case strings.HasPrefix(c.Name, sessionCookieName):
			chunks++
		}
	}
	if chunks < 2 || logins != 1 {
		t.Fatalf("want a chunked session and a pending login; have %d session cookies and %d login cookies", chunks, logins)
	}
	r := navigate("/")
	r.AddCookie(&http.Cookie{Name: "theme", Value: "dark"})
	r.AddCookie(&http.Cookie{Name: "csrftoken", Value: "abc123"})
	r.AddCookie(&http.Cookie{Name: sessionCookieName + "_9", Value: "junk"}) // a chunk name, however it got there
	seen := upstreamOf(t, b.do(r))
	cookies := seen.Header.Values("Cookie")
	if len(cookies) != 1 || cookies[0] != "theme=dark; csrftoken=abc123" {
		t.Fatalf("upstream Cookie header %q, want only the app's cookies", cookies)
	}
}

func TestCookieHeaderIsDroppedWhenOnlyGatewayCookiesWereSent(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.mustLogin("/")
	seen := upstreamOf(t, b.get("/"))
	if got := seen.Header.Values("Cookie"); len(got) != 0 {
		t.Fatalf("upstream Cookie header %q, want none", got)
	}
}

func TestSkippedPathsPassWithoutSession(t *testing.T) {
	e := newEnv(t, withConfig(func(c *proxy.Config) { c.Skip = []string{"/static/*", "/healthz", "/img/*.png"} }))
	cases := []struct {
		target string
		pass   bool
	}{
		{"/static", true},
		{"/static/app.js", true},
		{"/static/css/site.css", true},
		{"/healthz", true},
		{"/img/logo.png", true},
		{"/staticx/app.js", false},
		{"/healthz/more", false},
		{"/img/logo.jpg", false},
		{"/img/a/logo.png", false},
		{"/", false},
	}
	for _, tc := range cases {
		t.Run(tc.target, func(t *testing.T) {
			resp := e.browser().get(tc.target)
			if passed := resp.StatusCode == http.StatusOK; passed != tc.pass {
				t.Fatalf("passed = %v (status %d), want %v", passed, resp.StatusCode, tc.pass)
			}
		})
	}
}

func TestSkipPatternsCannotBeReachedByPathTricks(t *testing.T) {
	// The upstream (or a proxy in between) normalises these paths to
	// protected ones; a skip rule must not let them through unauthenticated.
	e := newEnv(t, withConfig(func(c *proxy.Config) { c.Skip = []string{"/static/*", "/healthz"} }))
	targets := []string{
		"/static/../admin",
		"/static/%2e%2e/admin",
		"/static/%2E%2E/admin",
		"/static/..%2Fadmin",
		"/static%2F..%2Fadmin",
		"/static/./../admin",
		"/static//../admin",
		"/static/..%5Cadmin",
		"/static/..;/admin",
		"/healthz/..",
		"/healthz/../admin",
	}
	for _, target := range targets {
		t.Run(target, func(t *testing.T) {
			r := navigate(target)
			if r.URL.Path == "/admin" {
				t.Skip("the request parser already cleaned the path")
			}
			resp := e.browser().do(r)
			if resp.StatusCode == http.StatusOK {
				t.Fatalf("%s (path %q) reached the upstream without a session", target, r.URL.Path)
			}
			e.expectLoginRedirect(t, resp)
		})
	}
}

func TestCORSPreflightPassesWithoutSession(t *testing.T) {
	e := newEnv(t)
	r := newRequest(http.MethodOptions, "/api/items", nil)
	r.Header.Set("Origin", "https://other.example")
	r.Header.Set("Access-Control-Request-Method", "POST")
	upstreamOf(t, e.browser().do(r))
	// An OPTIONS request that is not a preflight needs a session.
	plain := newRequest(http.MethodOptions, "/api/items", nil)
	plain.Header.Set("Accept", "application/json")
	if resp := e.browser().do(plain); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("plain OPTIONS: status %d, want 401", resp.StatusCode)
	}
}
