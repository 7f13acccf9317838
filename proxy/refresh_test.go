package proxy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/proxy"
)

// refreshEnv issues short-lived access tokens (2 minutes, refreshed one
// minute before expiry) with rotating refresh tokens, and passes the access
// token upstream so tests can see which one a request carried.
func refreshEnv(t *testing.T, opts ...envOption) *env {
	opts = append([]envOption{
		withOP(func(op *fakeOP) { op.issueRefresh, op.expiresIn = true, 120 }),
		withConfig(func(c *proxy.Config) { c.PassAccessToken = true }),
	}, opts...)
	return newEnv(t, opts...)
}

func accessToken(t *testing.T, resp *http.Response) string {
	t.Helper()
	return upstreamOf(t, resp).Header.Get("Authorization")
}

func TestAccessTokenIsRefreshedBeforeItExpires(t *testing.T) {
	e := refreshEnv(t)
	b := e.browser()
	b.mustLogin("/")
	first := accessToken(t, b.get("/"))
	if n := e.op.refreshes.Load(); n != 0 {
		t.Fatalf("%d refreshes for a fresh token", n)
	}
	e.clock.Advance(90 * time.Second) // 30 s before expiry
	resp := b.get("/")
	if c := setCookie(resp, sessionCookieName); c == nil {
		t.Fatal("the refreshed session was not written back")
	}
	second := accessToken(t, resp)
	if second == first || e.op.refreshes.Load() != 1 {
		t.Fatalf("access token %q → %q after %d refreshes; want a new one after exactly 1", first, second, e.op.refreshes.Load())
	}
	if third := accessToken(t, b.get("/")); third != second || e.op.refreshes.Load() != 1 {
		t.Fatalf("the refreshed session refreshed again (%d) or lost its token", e.op.refreshes.Load())
	}
	if n := e.metrics.get(func(m *countingMetrics) int { return m.refreshOK }); n != 1 {
		t.Errorf("Refreshed(true) counted %d times", n)
	}
}

func TestConcurrentRequestsOfOneSessionRefreshOnce(t *testing.T) {
	const n = 24
	e := refreshEnv(t)
	b := e.browser()
	b.mustLogin("/")
	cookies := b.cookies()
	e.clock.Advance(90 * time.Second)

	var wg sync.WaitGroup
	results := make(chan *http.Response, n)
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := navigate("/")
			for _, c := range cookies {
				r.AddCookie(c)
			}
			<-start
			rec := httptest.NewRecorder()
			e.handler.ServeHTTP(rec, r)
			results <- rec.Result()
		}()
	}
	close(start)
	wg.Wait()
	close(results)
	tokens := map[string]int{}
	for resp := range results {
		tokens[accessToken(t, resp)]++
	}
	if got := e.op.refreshes.Load(); got != 1 {
		t.Fatalf("%d concurrent requests made %d refresh calls; want exactly 1", n, got)
	}
	if len(tokens) != 1 {
		t.Fatalf("concurrent requests went upstream with different tokens: %v", tokens)
	}
}

func TestLateRequestWithTheOldCookieReusesTheRefresh(t *testing.T) {
	// A request sent before the refreshed cookie arrived still carries the
	// old refresh token; presenting it again would trip the provider's
	// reuse detection.
	e := refreshEnv(t)
	b := e.browser()
	b.mustLogin("/")
	old := b.cookies()
	e.clock.Advance(90 * time.Second)
	fresh := accessToken(t, b.get("/"))
	r := navigate("/")
	for _, c := range old {
		r.AddCookie(c)
	}
	if late := accessToken(t, e.browser().doBare(r)); late != fresh {
		t.Fatalf("late request went upstream with %q, want the refreshed %q", late, fresh)
	}
	if n := e.op.refreshes.Load(); n != 1 {
		t.Fatalf("%d refresh calls; want 1", n)
	}
}

func TestFailedRefreshEndsTheSessionCleanly(t *testing.T) {
	cases := []struct {
		name   string
		accept string
		want   int
	}{
		{"browser is sent to sign in again", "text/html", http.StatusFound},
		{"script gets 401", "application/json", http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := refreshEnv(t)
			b := e.browser()
			b.mustLogin("/")
			e.op.set(func(op *fakeOP) { op.refreshError = "invalid_grant" })
			e.clock.Advance(90 * time.Second)
			r := newRequest(http.MethodGet, "/", nil)
			r.Header.Set("Accept", tc.accept)
			resp := b.do(r)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.want, body(resp))
			}
			if tc.want == http.StatusFound {
				e.expectLoginRedirect(t, resp)
			}
			c := setCookie(resp, sessionCookieName)
			if c == nil || c.MaxAge >= 0 {
				t.Fatalf("the session cookie was not cleared: %v", resp.Header["Set-Cookie"])
			}
			if n := e.metrics.get(func(m *countingMetrics) int { return m.refreshFailed }); n != 1 {
				t.Errorf("Refreshed(false) counted %d times", n)
			}
		})
	}
}

func TestRefreshRefusesIDTokenOfAnotherSubject(t *testing.T) {
	e := refreshEnv(t)
	b := e.browser()
	b.mustLogin("/")
	e.op.set(func(op *fakeOP) { op.refreshClaims = map[string]any{"sub": "mallory", "email": "mallory@example.com"} })
	e.clock.Advance(90 * time.Second)
	e.expectLoginRedirect(t, b.get("/"))
}

func TestRefreshIsNotAbortedByTheClientGoingAway(t *testing.T) {
	// The first request of a session to need a refresh is cancelled (the
	// user navigated away) while the provider is rotating the refresh
	// token. The refresh must still complete: otherwise the rotated token
	// is lost and the session's next request presents a spent one.
	e := refreshEnv(t)
	b := e.browser()
	b.mustLogin("/")
	cookies := b.cookies()
	entered, release := make(chan struct{}), make(chan struct{})
	e.op.set(func(op *fakeOP) { op.refreshEntered, op.refreshRelease = entered, release })
	e.clock.Advance(90 * time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := navigate("/").WithContext(ctx)
		for _, c := range cookies {
			r.AddCookie(c)
		}
		e.handler.ServeHTTP(httptest.NewRecorder(), r)
	}()
	<-entered // the provider has rotated the refresh token
	cancel()
	close(release)
	<-done

	e.op.set(func(op *fakeOP) { op.refreshEntered, op.refreshRelease = nil, nil })
	r := navigate("/")
	for _, c := range cookies {
		r.AddCookie(c)
	}
	resp := e.browser().doBare(r)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the session's next request: status %d (Location %q); want it to pass with the refreshed token",
			resp.StatusCode, resp.Header.Get("Location"))
	}
	if n := e.op.refreshes.Load(); n != 1 {
		t.Fatalf("%d refresh calls; want 1", n)
	}
}
