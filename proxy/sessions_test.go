package proxy_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/session"
)

// sessionValue is the browser's session cookie value (one chunk).
func (b *browser) sessionValue() string {
	for _, c := range b.cookies() {
		if c.Name == sessionCookieName {
			return c.Value
		}
	}
	b.t.Fatal("the browser has no session cookie")
	return ""
}

// withSession sends r with only the given session cookie value.
func withSession(r *http.Request, name, value string) *http.Request {
	r.AddCookie(&http.Cookie{Name: name, Value: value})
	return r
}

func TestRefusedSessionCookieStartsANewLogin(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.mustLogin("/")
	good := b.sessionValue()

	// A session minted by another gateway: other secret, same name.
	otherSecret := newEnv(t, func(s *envSpec) { s.secret = otherCookieSecret })
	ob := otherSecret.browser()
	ob.mustLogin("/")
	foreign := ob.sessionValue()

	// A session minted by another gateway with the same secret and another
	// cookie name, renamed to ours.
	otherName := newEnv(t, func(s *envSpec) { s.cookieName = "other_site" })
	nb := otherName.browser()
	nb.mustLogin("/")
	var renamed string
	for _, c := range nb.cookies() {
		if c.Name == "__Host-other_site" {
			renamed = c.Value
		}
	}
	if renamed == "" {
		t.Fatal("no session cookie from the other-name gateway")
	}

	// This gateway's own login cookie value presented as a session.
	lb := e.browser()
	lb.startLogin("/")
	var loginValue string
	for _, c := range lb.cookies() {
		if isLoginCookie(c.Name) {
			loginValue = c.Value
		}
	}

	flip := func(s string, i int) string {
		c := byte('A')
		if s[i] == 'A' {
			c = 'B'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	cases := []struct {
		name, value string
	}{
		{"a flipped byte at the start", flip(good, 0)},
		{"a flipped byte in the middle", flip(good, len(good)/2)},
		{"a flipped byte at the end", flip(good, len(good)-2)},
		{"truncated", good[:len(good)-10]},
		{"extended", good + "AAAA"},
		{"garbage", "not-a-session"},
		{"another gateway's secret", foreign},
		{"another gateway's cookie name", renamed},
		{"a login cookie's value", loginValue},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.browser().doBare(withSession(navigate("/"), sessionCookieName, tc.value))
			e.expectLoginRedirect(t, resp)
			if n := e.metrics.get(func(m *countingMetrics) int { return m.rejected }); n != i+1 {
				t.Fatalf("SessionRejected counted %d times after %d refused cookies", n, i+1)
			}
		})
	}
	// The genuine cookie still works, alone.
	upstreamOf(t, e.browser().doBare(withSession(navigate("/"), sessionCookieName, good)))
}

func TestRefusedSessionCookieGets401ForScripts(t *testing.T) {
	e := newEnv(t)
	r := withSession(newRequest(http.MethodGet, "/api", nil), sessionCookieName, "tampered")
	r.Header.Set("Accept", "application/json")
	if resp := e.browser().doBare(r); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", resp.StatusCode)
	}
}

func TestNoSessionCookieIsNotCountedAsRejected(t *testing.T) {
	e := newEnv(t)
	e.expectLoginRedirect(t, e.browser().get("/"))
	if n := e.metrics.get(func(m *countingMetrics) int { return m.rejected }); n != 0 {
		t.Fatalf("SessionRejected counted %d times for a first visit", n)
	}
}

func TestSessionEndsAfterAbsoluteLifetime(t *testing.T) {
	e := newEnv(t, func(s *envSpec) { s.lifetime, s.idle = 4*time.Hour, time.Hour })
	b := e.browser()
	b.mustLogin("/")
	// Stay active: the idle timer is reset, the absolute lifetime is not.
	for elapsed := time.Duration(0); elapsed < 4*time.Hour-30*time.Minute; elapsed += 30 * time.Minute {
		e.clock.Advance(30 * time.Minute)
		upstreamOf(t, b.get("/"))
	}
	e.clock.Advance(31 * time.Minute) // 4h01m after signing in
	e.expectLoginRedirect(t, b.get("/"))
}

func TestSessionEndsAfterIdleTimeout(t *testing.T) {
	e := newEnv(t, func(s *envSpec) { s.lifetime, s.idle = 24*time.Hour, time.Hour })
	b := e.browser()
	b.mustLogin("/")
	e.clock.Advance(59 * time.Minute)
	upstreamOf(t, b.get("/")) // activity: the idle timer restarts here
	e.clock.Advance(59 * time.Minute)
	upstreamOf(t, b.get("/")) // 1h58m after signing in, 59m idle
	e.clock.Advance(61 * time.Minute)
	e.expectLoginRedirect(t, b.get("/"))
}

func TestIdleTimerIsNotRewrittenOnEveryRequest(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.mustLogin("/")
	if c := setCookie(b.get("/"), sessionCookieName); c != nil {
		t.Fatal("the session cookie was rewritten right after signing in")
	}
	e.clock.Advance(2 * time.Minute)
	if c := setCookie(b.get("/"), sessionCookieName); c == nil {
		t.Fatal("the session cookie was not rewritten to record activity")
	}
}

func TestSessionCookieStoreOptions(t *testing.T) {
	// The default options the gateway is built with: the __Host- prefix
	// that only browsers enforce comes with Secure.
	opts := session.CookieOptions{Name: "portcullis_session", Secure: true}
	if got := opts.CookieName(); got != sessionCookieName {
		t.Fatalf("cookie name %q", got)
	}
	insecure := session.CookieOptions{Name: "portcullis_session"}
	if got := insecure.CookieName(); strings.HasPrefix(got, "__Host-") {
		t.Fatalf("a non-Secure cookie is named %q: browsers refuse __Host- without Secure", got)
	}
}

func TestLargeSessionIsChunkedAndReassembled(t *testing.T) {
	e := newEnv(t, withOP(func(op *fakeOP) { op.claims["bio"] = strings.Repeat("x", 4000) }))
	b := e.browser()
	resp := b.login("/")
	var chunks []string
	for _, c := range resp.Cookies() {
		if strings.HasPrefix(c.Name, sessionCookieName) && c.MaxAge >= 0 {
			chunks = append(chunks, c.Name)
			if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode {
				t.Errorf("chunk %s lacks HttpOnly/Secure/Lax", c.Name)
			}
			if len(c.Value) > session.MaxChunk {
				t.Errorf("chunk %s is %d bytes", c.Name, len(c.Value))
			}
		}
	}
	if len(chunks) < 3 {
		t.Fatalf("session in %d cookies %v; want chunks", len(chunks), chunks)
	}
	upstreamOf(t, b.get("/"))
	// Dropping one chunk breaks the session; it is not misread.
	var partial []*http.Cookie
	for _, c := range b.cookies() {
		if c.Name != sessionCookieName+"_1" {
			partial = append(partial, c)
		}
	}
	r := navigate("/")
	for _, c := range partial {
		r.AddCookie(c)
	}
	e.expectLoginRedirect(t, e.browser().doBare(r))
}
