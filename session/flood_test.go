package session

// Floods of unique cookies into the cookie store's cache of decoded
// sessions, the one structure of this package that requests feed: it must
// stay within its caps, and the live heap within floodtest.MaxGrowth
// (docs/security-floods.md).

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/floodtest"
)

// TestFloodGarbageSessionCookiesBounded: unique cookies the size of a real
// session that do not decode are never remembered.
func TestFloodGarbageSessionCookiesBounded(t *testing.T) {
	n := floodtest.N(50_000, 20_000)
	s := benchCookieStore(t)
	r, _ := benchRequest(t, s, benchSession(0))
	raw, _ := ReadChunked(r, s.opts)
	body := raw[:len(raw)-16]
	peak := floodtest.Measure(n, func(i int) {
		bad := httptest.NewRequest(http.MethodGet, "/", nil)
		bad.AddCookie(&http.Cookie{Name: s.opts.CookieName(), Value: fmt.Sprintf("%s%016x", body, i)})
		if _, err := s.Load(bad); err == nil {
			t.Fatalf("garbage cookie %d loaded", i)
		}
	})
	if n := len(s.decoded.entries); n != 0 {
		t.Errorf("%d garbage cookies remembered", n)
	}
	floodtest.Check(t, "the decoded-session cache (garbage cookies)", n, peak)
}

// TestFloodUniqueValidSessionCookiesBounded: unique cookies that do decode
// (every Save writes a new value: fresh IV and timestamp), of a typical
// session and of the largest one the store writes (ten chunks), each sent
// once. Both the count and the bytes remembered stay within their caps.
func TestFloodUniqueValidSessionCookiesBounded(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    *Data
		n    int
	}{
		{"typical", benchSession(0), floodtest.N(10_000, 2000)},
		{"largest", largestSession(t), floodtest.N(1500, 600)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := benchCookieStore(t)
			r, chunks := benchRequest(t, s, tc.d)
			raw, _ := ReadChunked(r, s.opts)
			peak := floodtest.Measure(tc.n, func(i int) {
				r, _ := benchRequest(t, s, tc.d)
				if _, err := s.Load(r); err != nil {
					t.Fatalf("session %d: %v", i, err)
				}
			})
			s.decoded.mu.Lock()
			entries, cost := len(s.decoded.entries), s.decoded.cost
			s.decoded.mu.Unlock()
			t.Logf("%d-byte cookie in %d chunks: %d sessions remembered (cap %d), cost %d bytes (cap %d)",
				len(raw), chunks, entries, maxDecoded, cost, maxDecodedCost)
			if entries > maxDecoded || cost > maxDecodedCost {
				t.Errorf("%d sessions remembered at a cost of %d bytes, past the caps %d and %d", entries, cost, maxDecoded, maxDecodedCost)
			}
			floodtest.Check(t, "the decoded-session cache ("+tc.name+" sessions)", tc.n, peak)
		})
	}
}

// largestSession is a session whose cookie takes all ten chunks the store
// writes: big tokens and claims, as a provider that puts a user's groups in
// the ID token hands out.
func largestSession(t *testing.T) *Data {
	s := benchCookieStore(t)
	d := benchSession(0)
	for groups := 0; ; groups += 20 {
		next := benchSession(groups)
		if err := s.Save(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), next); err != nil {
			if !strings.Contains(err.Error(), "more than") {
				t.Fatal(err)
			}
			return d
		}
		d = next
	}
}
