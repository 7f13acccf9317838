package tests

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// gatewayCaddyfile runs the embedded provider on {{.Port}} and an app on
// {{.AppPort}} protected by oidc_login against it, proxied to the test's
// recording upstream ({{.Vars.Upstream}}). {{.Vars.Policy}} adds policy
// lines to oidc_login.
const gatewayCaddyfile = `{
	admin 127.0.0.1:{{.AdminPort}}
	portcullis {
		storage bbolt {{.Dir}}/portcullis.db
		issuer http://127.0.0.1:{{.Port}}
		insecure_cookies
		user alice {
			password alice-password
			email alice@example.com
			name "Alice Example"
			groups admins
		}
		user bob {
			password bob-password
			email bob@other.example
			groups staff
		}
		client gateway {
			name "Protected App"
			secret gateway-secret
			redirect_uris http://127.0.0.1:{{.AppPort}}/oauth2/callback
			post_logout_redirect_uris http://127.0.0.1:{{.AppPort}}/
			scopes openid profile email groups offline_access
		}
	}
}
http://127.0.0.1:{{.Port}} {
	bind 127.0.0.1
	oauth_server
}
http://127.0.0.1:{{.AppPort}} {
	bind 127.0.0.1
	oidc_login {
		issuer http://127.0.0.1:{{.Port}}
		client_id gateway
		client_secret gateway-secret
		scopes openid profile email groups offline_access
		insecure_cookies
		skip /public/*
		{{index .Vars "Policy"}}
	}
	request_header X-Placeholder-Email {portcullis.user.email}
	reverse_proxy {{.Vars.Upstream}}
}
`

// recordingUpstream is a legacy app that records what it received.
type recordingUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	last *http.Request
}

func newRecordingUpstream(t *testing.T) *recordingUpstream {
	u := &recordingUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.last = r.Clone(r.Context())
		u.mu.Unlock()
		io.WriteString(w, "hello "+r.Header.Get("X-Forwarded-User"))
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *recordingUpstream) lastRequest() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
}

// navigate GETs target as a browser navigation (Accept: text/html).
func navigate(t *testing.T, c *http.Client, target string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func resolve(t *testing.T, base, loc string) string {
	t.Helper()
	b, _ := url.Parse(base)
	u, err := b.Parse(loc)
	if err != nil {
		t.Fatalf("bad Location %q: %v", loc, err)
	}
	return u.String()
}

// signInThroughGateway opens target, signs in at the embedded provider and
// returns once the browser is back on target with a session.
func signInThroughGateway(t *testing.T, g *Gateway, browser *http.Client, target, username, password string) {
	t.Helper()
	resp, _ := navigate(t, browser, target, nil)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("unauthenticated navigation: status %d, want a redirect to sign in", resp.StatusCode)
	}
	authorize := resolve(t, target, resp.Header.Get("Location"))
	if !strings.HasPrefix(authorize, g.BaseURL+"/authorize?") {
		t.Fatalf("redirected to %s, want the provider's authorization endpoint", authorize)
	}
	res := AuthorizeFlow(t, browser, authorize, username, password)
	resp, body := navigate(t, browser, res.Callback.String(), nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback: status %d: %s", resp.StatusCode, body)
	}
	if back := resolve(t, res.Callback.String(), resp.Header.Get("Location")); back != target {
		t.Fatalf("after the callback the browser goes to %s, want %s", back, target)
	}
}

func TestGatewaySignsInAndProxiesWithIdentityHeaders(t *testing.T) {
	up := newRecordingUpstream(t)
	g := StartGatewayVars(t, gatewayCaddyfile, map[string]string{"Upstream": up.Listener.Addr().String()})
	browser := NewBrowser(t)
	target := g.AppURL + "/private/page?x=1"
	signInThroughGateway(t, g, browser, target, "alice", "alice-password")

	spoofed := http.Header{
		"X-Forwarded-User":  {"mallory"},
		"X-Forwarded-Email": {"mallory@evil.example"},
		"Cookie":            {"app_pref=dark"},
	}
	resp, body := navigate(t, browser, target, spoofed)
	if resp.StatusCode != http.StatusOK || body != "hello alice" {
		t.Fatalf("signed-in request: %d %q", resp.StatusCode, body)
	}
	got := up.lastRequest()
	want := map[string]string{
		"X-Forwarded-User": "alice", "X-Forwarded-Email": "alice@example.com", "X-Forwarded-Groups": "admins",
		"X-Forwarded-Preferred-Username": "alice", "X-Placeholder-Email": "alice@example.com",
	}
	for h, v := range want {
		if vals := got.Header.Values(h); len(vals) != 1 || vals[0] != v {
			t.Errorf("upstream header %s = %q, want exactly %q", h, vals, v)
		}
	}
	for _, c := range got.Cookies() {
		if strings.HasPrefix(c.Name, "portcullis_session") {
			t.Errorf("the upstream received the gateway's cookie %s", c.Name)
		}
	}
	if c, err := got.Cookie("app_pref"); err != nil || c.Value != "dark" {
		t.Errorf("the app's own cookie did not reach the upstream: %v", got.Header.Get("Cookie"))
	}

	t.Run("scripts get 401, not a redirect", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, target, nil)
		req.Header.Set("Accept", "application/json")
		resp, err := NewBrowser(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("XHR without session: %d %v", resp.StatusCode, resp.Header)
		}
	})
	t.Run("skip paths pass without a session, spoofed headers stripped", func(t *testing.T) {
		resp, body := navigate(t, NewBrowser(t), g.AppURL+"/public/health", spoofed)
		if resp.StatusCode != http.StatusOK || body != "hello " {
			t.Errorf("skipped path: %d %q (the spoofed X-Forwarded-User must not arrive)", resp.StatusCode, body)
		}
	})
	t.Run("the session survives a restart", func(t *testing.T) {
		g.Restart(t)
		resp, body := navigate(t, browser, target, nil)
		if resp.StatusCode != http.StatusOK || body != "hello alice" {
			t.Errorf("after restart: %d %q", resp.StatusCode, body)
		}
	})
	t.Run("logout ends the session here and at the provider", func(t *testing.T) {
		resp, _ := navigate(t, browser, g.AppURL+"/oauth2/logout", nil)
		endSession := resolve(t, g.AppURL, resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(endSession, g.BaseURL+"/logout?") ||
			!strings.Contains(endSession, "id_token_hint=") {
			t.Fatalf("logout: %d to %s, want RP-initiated logout at the provider", resp.StatusCode, endSession)
		}
		resp, _ = navigate(t, browser, endSession, nil)
		if back := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || back != g.AppURL+"/" {
			t.Fatalf("provider logout: %d to %q, want %s/", resp.StatusCode, back, g.AppURL)
		}
		resp, _ = navigate(t, browser, target, nil)
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("after logout the app still answers %d", resp.StatusCode)
		}
		resp, body := navigate(t, browser, resolve(t, target, resp.Header.Get("Location")), nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="password"`) {
			t.Errorf("after logout the provider did not ask for a password again (status %d)", resp.StatusCode)
		}
	})
}

func TestGatewayPolicyDenialIsForbiddenNotALoop(t *testing.T) {
	up := newRecordingUpstream(t)
	g := StartGatewayVars(t, gatewayCaddyfile, map[string]string{
		"Upstream": up.Listener.Addr().String(), "Policy": "allow_groups admins",
	})
	target := g.AppURL + "/"
	alice := NewBrowser(t)
	signInThroughGateway(t, g, alice, target, "alice", "alice-password")
	if resp, body := navigate(t, alice, target, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("alice (admins) refused: %d %s", resp.StatusCode, body)
	}
	bob := NewBrowser(t)
	signInThroughGateway(t, g, bob, target, "bob", "bob-password")
	for i := 0; i < 2; i++ {
		resp, body := navigate(t, bob, target, nil)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Access denied") {
			t.Fatalf("bob (not in admins): %d %q, want the 403 page", resp.StatusCode, body)
		}
	}
}
