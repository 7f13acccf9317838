package proxy

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis-gw/portcullis/session"
)

// Benchmarks of the gateway's per-request work for a signed-in browser:
// Serve (session decode, refresh check, policy) and Prepare (identity
// headers, stripping the gateway's cookies). Run:
//
//	go test -run '^$' -bench . -benchmem ./proxy/
//
// BenchmarkGatewayRequestCopy is the cost of copying the request each
// iteration, included in the others.

var benchGatewayNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func benchGatewayJWT(n int) string {
	part := func(k int) string {
		return base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("x", k*3/4)))
	}
	return part(36) + "." + part(n-36-86-2) + "." + part(86)
}

// benchGatewaySession is a typical session as a sign-in at the embedded
// provider leaves it.
func benchGatewaySession() *session.Data {
	return &session.Data{
		Subject: "alice",
		Claims: map[string]any{
			"sub": "alice", "email": "alice@example.com", "email_verified": true,
			"name": "Alice Example", "preferred_username": "alice", "groups": []any{"admins"},
			"auth_time": float64(benchGatewayNow.Unix()), "sid": "Zq3h0Qy4b0mTQh0wVbW9Zg",
		},
		IDToken:     benchGatewayJWT(900),
		AccessToken: benchGatewayJWT(750),
		TokenExpiry: benchGatewayNow.Add(time.Hour),
		ProviderSID: "Zq3h0Qy4b0mTQh0wVbW9Zg",
		CreatedAt:   benchGatewayNow.Add(-time.Hour),
		LastSeen:    benchGatewayNow.Add(-10 * time.Second),
	}
}

// benchGatewaySetup returns a gateway with cookie sessions and a signed-in
// browser navigation to it, as a browser sends one: the session cookie
// next to an app cookie, and a spoofed identity header.
func benchGatewaySetup(b *testing.B, policy Policy) (*Gateway, *http.Request) {
	secret := []byte(strings.Repeat("s", 32))
	store, err := session.NewCookieStore(session.CookieOptions{Name: "portcullis_session", Secure: true, MaxAge: 24 * time.Hour}, 24*time.Hour, 8*time.Hour, secret)
	if err != nil {
		b.Fatal(err)
	}
	store.Now = func() time.Time { return benchGatewayNow }
	logins, err := NewLoginCookies("portcullis_session_login", true, false, secret)
	if err != nil {
		b.Fatal(err)
	}
	// Discovery of this issuer fails (nothing listens there) and retries in
	// the background: signed-in requests never need the provider.
	g, err := New(Config{
		Issuer: "http://127.0.0.1:9", ClientID: "bench", ClientSecret: "bench-secret",
		Sessions: store, LoginCookies: logins, Policy: policy, Logger: zap.NewNop(),
		Now: func() time.Time { return benchGatewayNow },
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(g.Close)
	rec := httptest.NewRecorder()
	if err := store.Save(rec, httptest.NewRequest(http.MethodGet, "/", nil), benchGatewaySession()); err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "https://app.example.com/private/page?x=1", nil)
	for k, v := range map[string]string{
		"Accept":           "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
		"Accept-Language":  "en-GB,en;q=0.9",
		"Accept-Encoding":  "gzip, deflate, br",
		"User-Agent":       "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
		"Sec-Fetch-Mode":   "navigate",
		"X-Forwarded-User": "mallory",
	} {
		r.Header.Set(k, v)
	}
	r.AddCookie(&http.Cookie{Name: "app_pref", Value: "dark"})
	for _, c := range rec.Result().Cookies() {
		r.AddCookie(c)
	}
	return g, r
}

// benchGatewayRequest copies base the way each benchmark iteration needs:
// Prepare rewrites the headers.
func benchGatewayRequest(base *http.Request) *http.Request {
	r := *base
	r.Header = base.Header.Clone()
	return &r
}

// benchDiscard is a ResponseWriter for requests that write nothing.
type benchDiscard struct{ h http.Header }

func (w *benchDiscard) Header() http.Header         { return w.h }
func (w *benchDiscard) Write(p []byte) (int, error) { return len(p), nil }
func (w *benchDiscard) WriteHeader(int)             {}

func BenchmarkGatewayRequestCopy(b *testing.B) {
	_, base := benchGatewaySetup(b, Policy{})
	b.ReportAllocs()
	for b.Loop() {
		benchGatewayRequest(base)
	}
}

func BenchmarkGatewayServePrepare(b *testing.B) {
	for _, tc := range []struct {
		name   string
		policy Policy
	}{
		{"open", Policy{}},
		{"allow_groups", Policy{AllowGroups: []string{"staff", "admins"}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			g, base := benchGatewaySetup(b, tc.policy)
			w := &benchDiscard{h: http.Header{}}
			r := benchGatewayRequest(base)
			if id, done := g.Serve(w, r); done || id == nil || id.Subject != "alice" {
				b.Fatalf("the signed-in request did not pass: done %v, id %+v", done, id)
			}
			g.Prepare(r, nil)
			b.ReportAllocs()
			for b.Loop() {
				r := benchGatewayRequest(base)
				id, done := g.Serve(w, r)
				if done {
					b.Fatal("request answered by the gateway")
				}
				g.Prepare(r, id)
			}
			r = benchGatewayRequest(base)
			id, _ := g.Serve(w, r)
			g.Prepare(r, id)
			if got := r.Header.Get("X-Forwarded-User"); got != "alice" {
				b.Errorf("upstream X-Forwarded-User = %q", got)
			}
			if got := r.Header.Get("Cookie"); got != "app_pref=dark" {
				b.Errorf("upstream Cookie = %q, want only the app's cookie", got)
			}
			if len(w.h) != 0 {
				b.Errorf("the gateway wrote response headers for a signed-in request: %v", w.h)
			}
		})
	}
}

// BenchmarkGatewayPrepare is Prepare alone: the identity headers and the
// cookie stripping.
func BenchmarkGatewayPrepare(b *testing.B) {
	g, base := benchGatewaySetup(b, Policy{})
	id, done := g.Serve(&benchDiscard{h: http.Header{}}, benchGatewayRequest(base))
	if done {
		b.Fatal("request answered by the gateway")
	}
	b.ReportAllocs()
	for b.Loop() {
		g.Prepare(benchGatewayRequest(base), id)
	}
}
