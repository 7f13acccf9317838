package session

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Benchmarks of the per-request session decode of the login gateway. Run:
//
//	go test -run '^$' -bench . -benchmem ./session/
//
// BenchmarkCodecDecode is what securecookie itself costs for the same
// value; CookieStore.Load should cost little more.

// benchNow is the fixed clock of the benchmarks: sessions never go idle or
// stale mid-run.
var benchNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// benchJWT is a JWT-shaped string of about n characters (three base64url
// parts), standing in for an ES256 ID or access token.
func benchJWT(n int) string {
	part := func(k int) string {
		return base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("x", k*3/4)))
	}
	return part(36) + "." + part(n-36-86-2) + "." + part(86)
}

// benchSession is a typical gateway session as the embedded provider's
// sign-in leaves it (the ID token's user claims, the ID and access tokens,
// a refresh token). groups adds that many extra groups, to make the
// session need more than one cookie.
func benchSession(groups int) *Data {
	g := []any{"admins"}
	for i := range groups {
		g = append(g, fmt.Sprintf("engineering-team-%03d", i))
	}
	return &Data{
		Subject: "alice",
		Claims: map[string]any{
			"sub": "alice", "email": "alice@example.com", "email_verified": true,
			"name": "Alice Example", "preferred_username": "alice", "groups": g,
			"auth_time": float64(benchNow.Unix()), "sid": "Zq3h0Qy4b0mTQh0wVbW9Zg",
		},
		IDToken:      benchJWT(900),
		AccessToken:  benchJWT(750),
		RefreshToken: "rt_" + strings.Repeat("R", 43),
		TokenExpiry:  benchNow.Add(time.Hour),
		ProviderSID:  "Zq3h0Qy4b0mTQh0wVbW9Zg",
		CreatedAt:    benchNow.Add(-time.Hour),
		LastSeen:     benchNow.Add(-10 * time.Second),
	}
}

// benchRequest returns a request carrying the cookies that saving d wrote,
// plus an unrelated app cookie, as a browser sends them.
func benchRequest(tb testing.TB, s Store, d *Data) (*http.Request, int) {
	rec := httptest.NewRecorder()
	if err := s.Save(rec, httptest.NewRequest(http.MethodGet, "/", nil), d); err != nil {
		tb.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(&http.Cookie{Name: "app_pref", Value: "dark"})
	n := 0
	for _, c := range rec.Result().Cookies() {
		r.AddCookie(c)
		n++
	}
	return r, n
}

func benchCookieStore(tb testing.TB) *CookieStore {
	s, err := NewCookieStore(CookieOptions{Name: "portcullis_session", Secure: true, MaxAge: 24 * time.Hour}, 24*time.Hour, 8*time.Hour, secretA)
	if err != nil {
		tb.Fatal(err)
	}
	s.Now = func() time.Time { return benchNow }
	return s
}

// BenchmarkCookieStoreLoad loads a typical session from its cookie, and a
// large one from several: "decode" verifies and decrypts it every time,
// "remembered" is a browser's next requests with the same cookie value.
func BenchmarkCookieStoreLoad(b *testing.B) {
	for _, tc := range []struct {
		name       string
		groups     int
		chunks     int
		remembered bool
	}{{"unchunked/decode", 0, 1, false}, {"unchunked/remembered", 0, 1, true}, {"chunked/decode", 120, 2, false}, {"chunked/remembered", 120, 2, true}} {
		b.Run(tc.name, func(b *testing.B) {
			s := benchCookieStore(b)
			if !tc.remembered {
				s.decoded = nil
			}
			r, n := benchRequest(b, s, benchSession(tc.groups))
			if n < tc.chunks {
				b.Fatalf("the session took %d cookies, want at least %d", n, tc.chunks)
			}
			b.SetBytes(int64(len(r.Header.Get("Cookie"))))
			b.ReportAllocs()
			for b.Loop() {
				d, err := s.Load(r)
				if err != nil || d.Subject != "alice" {
					b.Fatal(d, err)
				}
			}
		})
	}
}

// BenchmarkCodecDecode is the securecookie part of CookieStore.Load alone:
// verify, decrypt and decode one session value, already reassembled.
func BenchmarkCodecDecode(b *testing.B) {
	for _, tc := range []struct {
		name   string
		groups int
	}{{"unchunked", 0}, {"chunked", 120}} {
		b.Run(tc.name, func(b *testing.B) {
			s := benchCookieStore(b)
			enc, err := s.codec.Encode(s.opts.Name, benchSession(tc.groups))
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				d := new(Data)
				if err := s.codec.Decode(s.opts.Name, enc, d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// jsonBackend keeps sessions as JSON, the way the portcullis app's store
// does (caddymodule.gatewaySessions), minus the bbolt read.
type jsonBackend map[string][]byte

func (m jsonBackend) SaveSession(_ context.Context, key string, d *Data, _ time.Time) error {
	raw, err := json.Marshal(d)
	m[key] = raw
	return err
}

func (m jsonBackend) LoadSession(_ context.Context, key string) (*Data, error) {
	raw, ok := m[key]
	if !ok {
		return nil, errors.New("no such session")
	}
	d := new(Data)
	return d, json.Unmarshal(raw, d)
}

func (m jsonBackend) DeleteSession(_ context.Context, key string) error {
	delete(m, key)
	return nil
}

func BenchmarkServerStoreLoad(b *testing.B) {
	s, err := NewServerStore(jsonBackend{}, CookieOptions{Name: "portcullis_session", Secure: true}, 24*time.Hour, 8*time.Hour, secretA)
	if err != nil {
		b.Fatal(err)
	}
	s.Now = func() time.Time { return benchNow }
	r, _ := benchRequest(b, s, benchSession(0))
	b.ReportAllocs()
	for b.Loop() {
		d, err := s.Load(r)
		if err != nil || d.Subject != "alice" {
			b.Fatal(d, err)
		}
	}
}

// BenchmarkReadChunked is the cookie parsing part of CookieStore.Load.
func BenchmarkReadChunked(b *testing.B) {
	for _, tc := range []struct {
		name   string
		groups int
	}{{"unchunked", 0}, {"chunked", 120}} {
		b.Run(tc.name, func(b *testing.B) {
			s := benchCookieStore(b)
			r, _ := benchRequest(b, s, benchSession(tc.groups))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ReadChunked(r, s.opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
