package proxy_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/proxy"
)

// sessionIDToken is the ID token the upstream receives for b's session.
func sessionIDToken(t *testing.T, b *browser) string {
	t.Helper()
	return upstreamOf(t, b.get("/")).Header.Get(idTokenHeader)
}

func expectSessionCleared(t *testing.T, resp *http.Response) {
	t.Helper()
	c := setCookie(resp, sessionCookieName)
	if c == nil || c.MaxAge >= 0 || c.Value != "" {
		t.Fatalf("logout did not clear the session cookie: %v", resp.Header["Set-Cookie"])
	}
}

func TestLogoutEndsTheSessionAtTheProvider(t *testing.T) {
	e := newEnv(t, withConfig(func(c *proxy.Config) { c.IDTokenHeader = idTokenHeader }))
	b := e.browser()
	b.mustLogin("/")
	idt := sessionIDToken(t, b)
	resp := b.get("/oauth2/logout")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout status %d", resp.StatusCode)
	}
	expectSessionCleared(t, resp)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Scheme+"://"+loc.Host+loc.Path != e.op.issuer+"/logout" {
		t.Fatalf("logout redirects to %q, want the end_session_endpoint", resp.Header.Get("Location"))
	}
	q := loc.Query()
	if q.Get("id_token_hint") != idt || q.Get("post_logout_redirect_uri") != appOrigin+"/" || q.Get("client_id") != testClientID {
		t.Fatalf("end_session parameters %v", q)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Error("logout response may be cached")
	}
	e.expectLoginRedirect(t, b.get("/"))
}

func TestLogoutClearsEverySessionChunk(t *testing.T) {
	e := newEnv(t, withOP(func(op *fakeOP) { op.claims["bio"] = strings.Repeat("x", 4000) }))
	b := e.browser()
	b.mustLogin("/")
	var names []string
	for _, c := range b.cookies() {
		if strings.HasPrefix(c.Name, sessionCookieName) {
			names = append(names, c.Name)
		}
	}
	if len(names) < 2 {
		t.Fatalf("session not chunked: %v", names)
	}
	resp := b.get("/oauth2/logout")
	for _, name := range names {
		if c := setCookie(resp, name); c == nil || c.MaxAge >= 0 {
			t.Errorf("logout left chunk %s", name)
		}
	}
	if left := b.cookies(); len(left) != 0 {
		t.Errorf("cookies left after logout: %v", left)
	}
}

func TestLogoutWithoutEndSessionEndpointIsLocal(t *testing.T) {
	e := newEnv(t, withOP(func(op *fakeOP) { op.meta["end_session_endpoint"] = nil }))
	b := e.browser()
	b.mustLogin("/")
	resp := b.get("/oauth2/logout")
	expectSessionCleared(t, resp)
	if loc := resp.Header.Get("Location"); loc != appOrigin+"/" {
		t.Fatalf("local logout redirects to %q, want %s/", loc, appOrigin)
	}
}

func TestLogoutWithoutSessionDoesNotGoToTheProvider(t *testing.T) {
	e := newEnv(t)
	e.expectLoginRedirect(t, e.browser().get("/")) // discovery done
	resp := e.browser().get("/oauth2/logout")
	if loc := resp.Header.Get("Location"); loc != appOrigin+"/" {
		t.Fatalf("logout without a session redirects to %q", loc)
	}
}

func TestLogoutTargetIsOnlyTheConfiguredOne(t *testing.T) {
	cases := []struct {
		name, configured, want string
	}{
		{"default is the site root", "", appOrigin + "/"},
		{"configured path", "/goodbye", appOrigin + "/goodbye"},
		{"configured absolute URL", "https://www.example.com/bye", "https://www.example.com/bye"},
		{"protocol-relative path is refused", "//evil.example", appOrigin + "/"},
		{"backslash path is refused", "/\\evil.example", appOrigin + "/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, withConfig(func(c *proxy.Config) { c.PostLogoutRedirect = tc.configured }))
			b := e.browser()
			b.mustLogin("/")
			// Whatever the request asks for is ignored.
			resp := b.get("/oauth2/logout?post_logout_redirect_uri=https://evil.example&rd=https://evil.example&redirect=//evil.example")
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if got := loc.Query().Get("post_logout_redirect_uri"); got != tc.want {
				t.Fatalf("post_logout_redirect_uri %q, want %q", got, tc.want)
			}
			if strings.Contains(loc.Host, "evil") {
				t.Fatalf("logout redirects to %q", loc)
			}
		})
	}
}

// logoutToken is a Back-Channel Logout token (OIDC Back-Channel Logout 1.0
// §2.4) signed by the provider's current key.
func logoutToken(e *env, edit func(c map[string]any)) string {
	now := e.clock.Now()
	c := map[string]any{
		"iss": e.op.issuer, "aud": testClientID, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": randomID(), "sub": "alice", "sid": "sid-1",
		"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}},
	}
	if edit != nil {
		edit(c)
	}
	e.op.mu.Lock()
	key := e.op.key
	e.op.mu.Unlock()
	return sign(e.t, key, c)
}

type endedSessions struct {
	mu    sync.Mutex
	calls [][2]string
}

func (s *endedSessions) end(_ context.Context, sub, sid string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, [2]string{sub, sid})
	return 1, nil
}

func postLogoutToken(b *browser, token string) *http.Response {
	r := newRequest(http.MethodPost, "/oauth2/backchannel-logout", strings.NewReader(url.Values{"logout_token": {token}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.doBare(r)
}

func backchannelEnv(t *testing.T) (*env, *endedSessions) {
	ended := &endedSessions{}
	e := newEnv(t, withConfig(func(c *proxy.Config) { c.EndSessions = ended.end }))
	e.expectLoginRedirect(t, e.browser().get("/")) // discovery done
	return e, ended
}

func TestBackchannelLogoutEndsSessions(t *testing.T) {
	e, ended := backchannelEnv(t)
	resp := postLogoutToken(e.browser(), logoutToken(e, nil))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d; body %s", resp.StatusCode, body(resp))
	}
	if len(ended.calls) != 1 || ended.calls[0] != [2]string{"alice", "sid-1"} {
		t.Fatalf("EndSessions calls %v", ended.calls)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Error("logout response may be cached")
	}
}

func TestBackchannelLogoutRefusesBadTokens(t *testing.T) {
	cases := []struct {
		name  string
		token func(e *env) string
	}{
		{"signed by another key", func(e *env) string {
			return sign(e.t, newECKey(e.t, "k1"), map[string]any{"iss": e.op.issuer, "aud": testClientID, "jti": "x", "sub": "alice",
				"iat": e.clock.Now().Unix(), "exp": e.clock.Now().Add(time.Minute).Unix(),
				"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}}})
		}},
		{"an ID token (nonce, no event)", func(e *env) string {
			return logoutToken(e, func(c map[string]any) { delete(c, "events"); c["nonce"] = "n" })
		}},
		{"with a nonce", func(e *env) string { return logoutToken(e, func(c map[string]any) { c["nonce"] = "n" }) }},
		{"without the logout event", func(e *env) string { return logoutToken(e, func(c map[string]any) { delete(c, "events") }) }},
		{"another audience", func(e *env) string { return logoutToken(e, func(c map[string]any) { c["aud"] = "other-client" }) }},
		{"another issuer", func(e *env) string {
			return logoutToken(e, func(c map[string]any) { c["iss"] = "https://evil.example" })
		}},
		{"expired", func(e *env) string {
			return logoutToken(e, func(c map[string]any) { c["exp"] = e.clock.Now().Add(-time.Minute).Unix() })
		}},
		{"without jti", func(e *env) string { return logoutToken(e, func(c map[string]any) { delete(c, "jti") }) }},
		{"without sub or sid", func(e *env) string {
			return logoutToken(e, func(c map[string]any) { delete(c, "sub"); delete(c, "sid") })
		}},
		{"alg none", func(e *env) string { return unsignedToken(e.t, logoutToken(e, nil)) }},
		{"empty", func(*env) string { return "" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, ended := backchannelEnv(t)
			resp := postLogoutToken(e.browser(), tc.token(e))
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", resp.StatusCode)
			}
			var out map[string]string
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out["error"] == "" {
				t.Fatalf("error body %v (%v)", out, err)
			}
			if len(ended.calls) != 0 {
				t.Fatalf("sessions ended for a refused token: %v", ended.calls)
			}
		})
	}
}

func TestBackchannelLogoutTokenReplayIsRefused(t *testing.T) {
	e, ended := backchannelEnv(t)
	token := logoutToken(e, nil)
	if resp := postLogoutToken(e.browser(), token); resp.StatusCode != http.StatusOK {
		t.Fatalf("first delivery: status %d", resp.StatusCode)
	}
	if resp := postLogoutToken(e.browser(), token); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("replay: status %d, want 400", resp.StatusCode)
	}
	if len(ended.calls) != 1 {
		t.Fatalf("EndSessions called %d times", len(ended.calls))
	}
}

func TestBackchannelLogoutNeedsPOSTAndServerSessions(t *testing.T) {
	e, _ := backchannelEnv(t)
	if resp := e.browser().get("/oauth2/backchannel-logout"); resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
		t.Fatalf("GET: status %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	cookieOnly := newEnv(t)
	cookieOnly.expectLoginRedirect(t, cookieOnly.browser().get("/"))
	if resp := postLogoutToken(cookieOnly.browser(), logoutToken(cookieOnly, nil)); resp.StatusCode != http.StatusNotImplemented {
		t.Fatalf("cookie sessions: status %d, want 501", resp.StatusCode)
	}
}
