package session

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzSessionCookies sends arbitrary Cookie headers (any cookies, any
// chunk sets, quoted or not) to the two session stores, a cookie store and
// a server-side one, each loaded twice so that the cookie store's second
// load can answer from what it remembered, and feeds every cookie value
// to the codec directly. The seeds are real cookies both stores wrote for
// a small and a chunked session, cookies another secret wrote, and
// broken chunk sets. Property: never a panic; a load either fails with
// ErrNoSession and no session, or yields exactly a session the store
// itself saved, and the second load agrees with the first. Run it with
//
//	go test ./session/ -run '^$' -fuzz '^FuzzSessionCookies$' -fuzztime 60s
func FuzzSessionCookies(f *testing.F) {
	opts := CookieOptions{Name: "portcullis_session", Secure: true}
	cs := benchCookieStore(f)
	ss, err := NewServerStore(jsonBackend{}, CookieOptions{Name: "portcullis_sid", Secure: true}, 24*time.Hour, 8*time.Hour, secretA)
	if err != nil {
		f.Fatal(err)
	}
	ss.Now = cs.Now
	foreign, err := NewCookieStore(opts, 24*time.Hour, 8*time.Hour, secretB)
	if err != nil {
		f.Fatal(err)
	}
	foreign.Now = cs.Now
	expired := func() *Data {
		d := benchSession(0)
		d.CreatedAt = benchNow.Add(-25 * time.Hour)
		return d
	}

	// known are the sessions each store saved, as a load returns them.
	known := map[Store][]string{}
	var headers []string
	for _, s := range []Store{cs, ss, foreign} {
		for _, d := range []*Data{benchSession(0), benchSession(200), expired()} {
			r, _ := benchRequest(f, s, d)
			h := r.Header.Get("Cookie")
			headers = append(headers, h)
			if got, err := s.Load(r); err == nil {
				raw, _ := json.Marshal(got)
				known[s] = append(known[s], string(raw))
			}
		}
	}
	if len(known[cs]) != 2 || len(known[ss]) != 2 {
		f.Fatalf("the seeds do not load: %d cookie and %d server sessions", len(known[cs]), len(known[ss]))
	}
	for _, h := range headers {
		f.Add(h)
		parts := strings.Split(h, "; ")
		if len(parts) > 2 {
			// A chunk set missing its middle, and one in reverse.
			f.Add(strings.Join(slices.Delete(slices.Clone(parts), 2, 3), "; "))
			slices.Reverse(parts)
			f.Add(strings.Join(parts, "; "))
		}
	}
	big := cs.opts.CookieName()
	f.Add(big + `="` + strings.Repeat("A", MaxChunk) + `"; ` + big + "_1=x")
	f.Add(big + "=" + strings.Repeat("A", MaxChunk) + "; " + big + "_1=" + strings.Repeat("B", MaxChunk) + "; " + big + "_2=")
	f.Add(big + "=; " + big + "=x")
	f.Add("")

	// The codec alone checks no lifetime: it decodes the expired session
	// too.
	codec, err := NewCodec("gateway session "+opts.Name, 24*time.Hour, secretA)
	if err != nil {
		f.Fatal(err)
	}
	var encoded []string
	for _, d := range []*Data{benchSession(0), benchSession(200), expired()} {
		var got Data
		if v, err := codec.Encode(opts.Name, d); err != nil || codec.Decode(opts.Name, v, &got) != nil {
			f.Fatal("the codec does not round-trip a session")
		}
		raw, _ := json.Marshal(&got)
		encoded = append(encoded, string(raw))
	}
	f.Fuzz(func(t *testing.T, header string) {
		for _, s := range []Store{cs, ss} {
			var first string
			for i := range 2 {
				r := httptest.NewRequest(http.MethodGet, "/", nil)
				r.Header.Set("Cookie", header)
				d, err := s.Load(r)
				got := ""
				if err != nil {
					if d != nil || !errors.Is(err, ErrNoSession) {
						t.Fatalf("Load returned %v with %v", d, err)
					}
				} else {
					raw, _ := json.Marshal(d)
					got = string(raw)
					if !slices.Contains(known[s], got) {
						t.Fatalf("Load yielded a session the store never saved: %s", got)
					}
				}
				if i == 1 && got != first {
					t.Fatalf("a second load gave %q after %q", got, first)
				}
				first = got
			}
		}
		// The codec on each value alone, into each kind of destination.
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Cookie", header)
		for _, c := range r.Cookies() {
			var d Data
			var id string
			var m map[string]any
			if codec.Decode(opts.Name, c.Value, &d) == nil {
				raw, _ := json.Marshal(&d)
				if !slices.Contains(encoded, string(raw)) {
					t.Fatalf("the codec decoded a session the store never saved: %s", raw)
				}
			}
			codec.Decode(opts.Name, c.Value, &id)
			codec.Decode(c.Name, c.Value, &m)
		}
	})
}
