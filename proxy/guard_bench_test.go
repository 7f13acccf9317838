package proxy_test

import (
	"net/http"
	"testing"

	"github.com/portcullis-gw/portcullis/proxy"
)

// Benchmarks of the guard's per-request work. Run:
//
//	go test -run '^$' -bench Guard -benchmem ./proxy/

// nopWriter is a ResponseWriter that keeps nothing.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

func benchServe(b *testing.B, e *guardEnv, tokens ...string) {
	b.Helper()
	w := &nopWriter{h: http.Header{}}
	reqs := make([]*http.Request, len(tokens))
	for i, tok := range tokens {
		reqs[i] = apiRequest(http.MethodGet, "/items", "Bearer "+tok)
		if _, done := e.g.Serve(w, reqs[i]); done {
			b.Fatal("the token was refused")
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, done := e.g.Serve(w, reqs[i%len(reqs)]); done {
			b.Fatal("the token was refused")
		}
		i++
	}
}

// BenchmarkGuardServeCachedJWT is a JWT verified before: a hash and a
// cache look-up, then the scope check.
func BenchmarkGuardServeCachedJWT(b *testing.B) {
	e := newGuardEnv(b, withGuardConfig(func(c *proxy.GuardConfig) { c.Scopes = []string{"read:items"} }))
	benchServe(b, e, e.iss.mint(jwtSpec{}))
}

// BenchmarkGuardServeColdJWT verifies the signature (ES256) every time:
// the cache holds one entry and two tokens take turns.
func BenchmarkGuardServeColdJWT(b *testing.B) {
	e := newGuardEnv(b, withGuardConfig(func(c *proxy.GuardConfig) {
		c.Scopes = []string{"read:items"}
		c.CacheEntries = 1
	}))
	benchServe(b, e, e.iss.mint(jwtSpec{}), e.iss.mint(jwtSpec{}))
}

// BenchmarkGuardServeWarmIntrospection is an opaque token whose
// introspection answer is cached.
func BenchmarkGuardServeWarmIntrospection(b *testing.B) {
	e := newGuardEnv(b, withGuardConfig(func(c *proxy.GuardConfig) { c.Scopes = []string{"read:items"} }))
	benchServe(b, e, e.iss.issueOpaque(nil))
}

// BenchmarkGuardPrepare strips spoofed headers, sets the default identity
// headers and removes the Authorization header.
func BenchmarkGuardPrepare(b *testing.B) {
	e := newGuardEnv(b)
	auth := []string{"Bearer " + e.iss.mint(jwtSpec{})}
	r := apiRequest(http.MethodGet, "/items", "")
	r.Header.Set("Accept", "application/json")
	r.Header.Set("User-Agent", "bench")
	r.Header.Set("X-Forwarded-User", "mallory")
	r.Header["Authorization"] = auth
	tok, done := e.g.Serve(&nopWriter{h: http.Header{}}, r)
	if done {
		b.Fatal("the token was refused")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.Header["Authorization"] = auth
		e.g.Prepare(r, tok)
	}
}
