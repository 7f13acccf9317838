package session

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestCookieStoreHandsOutIndependentCopiesOfRememberedSessions(t *testing.T) {
	s := benchCookieStore(t)
	r, _ := benchRequest(t, s, benchSession(0))
	first, err := s.Load(r)
	if err != nil {
		t.Fatal(err)
	}
	want := viaJSON(t, first)
	// What a caller may do with a loaded session: the gateway moves the
	// idle timer and a refresh replaces tokens and claims.
	first.LastSeen = benchNow
	first.AccessToken = "changed"
	first.Claims["email"] = "mallory@example.com"
	first.Claims["groups"].([]any)[0] = "root"
	first.Claims["new"] = true
	for range 2 {
		again, err := s.Load(r)
		if err != nil {
			t.Fatal(err)
		}
		sameSession(t, again, want)
		again.Claims["groups"].([]any)[0] = "root"
	}
	if len(s.decoded.entries) != 1 {
		t.Fatalf("%d remembered values, want 1", len(s.decoded.entries))
	}
}

func TestCookieStoreChecksLifetimeAndIdleTimeoutOfRememberedSessions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		advance time.Duration
		ok      bool
	}{
		{"fresh", time.Minute, true},
		{"idle", 8*time.Hour + time.Second, false},
		{"past its lifetime", 24*time.Hour + time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := benchCookieStore(t)
			d := benchSession(0)
			d.CreatedAt, d.LastSeen = benchNow, benchNow
			r, _ := benchRequest(t, s, d)
			if _, err := s.Load(r); err != nil {
				t.Fatal(err)
			}
			now := benchNow.Add(tc.advance)
			if tc.advance > 8*time.Hour {
				// Keep the remembered entry alive to test the session
				// checks, not the cache's own expiry.
				for k, e := range s.decoded.entries {
					e.expires = now.Add(time.Minute)
					s.decoded.entries[k] = e
				}
			}
			s.Now = func() time.Time { return now }
			d, err := s.Load(r)
			if ok := err == nil; ok != tc.ok {
				t.Fatalf("Load after %s: %v", tc.advance, err)
			}
			if err != nil && d != nil {
				t.Fatal("Load returned a session with its error")
			}
			if err != nil && !errors.Is(err, ErrNoSession) {
				t.Fatalf("error %v does not wrap ErrNoSession", err)
			}
		})
	}
}

// Near the end of the lifetime, and once an entry expired, the value is
// decoded again rather than answered from memory.
func TestCookieStoreDecodesAgainNearTheEndOfTheLifetimeAndAfterTTL(t *testing.T) {
	for _, tc := range []struct {
		name         string
		planted, now time.Time // CreatedAt is benchNow - 1h
	}{
		{"last seconds of the lifetime", benchNow.Add(23*time.Hour - 10*time.Second), benchNow.Add(23*time.Hour - time.Second)},
		{"entry expired", benchNow, benchNow.Add(decodedTTL)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := benchCookieStore(t)
			d := benchSession(0)
			d.LastSeen = tc.now.Add(-time.Minute)
			r, _ := benchRequest(t, s, d)
			raw, _ := ReadChunked(r, s.opts)
			// A planted entry that a decode would not give.
			planted := d.clone()
			planted.Subject = "planted"
			s.decoded.put(raw, planted, tc.planted)
			s.Now = func() time.Time { return tc.now }
			got, err := s.Load(r)
			if err != nil {
				t.Fatal(err)
			}
			if got.Subject != "alice" {
				t.Fatalf("Load answered from memory: subject %q", got.Subject)
			}
		})
	}
}

func TestCookieStoreRemembersOnlyValuesThatDecoded(t *testing.T) {
	s := benchCookieStore(t)
	r, _ := benchRequest(t, s, benchSession(0))
	raw, _ := ReadChunked(r, s.opts)
	for _, v := range []string{raw[:len(raw)-4] + "AAAA", "garbage", raw[1:]} {
		bad := httptest.NewRequest(http.MethodGet, "/", nil)
		bad.AddCookie(&http.Cookie{Name: s.opts.CookieName(), Value: v})
		if _, err := s.Load(bad); err == nil {
			t.Fatalf("loaded a tampered value")
		}
	}
	if n := len(s.decoded.entries); n != 0 {
		t.Fatalf("%d values remembered that did not decode", n)
	}
}

func TestCookieStoreForgetsTheSessionItClears(t *testing.T) {
	s := benchCookieStore(t)
	r, _ := benchRequest(t, s, benchSession(0))
	if _, err := s.Load(r); err != nil {
		t.Fatal(err)
	}
	if err := s.Clear(httptest.NewRecorder(), r, nil); err != nil {
		t.Fatal(err)
	}
	if n := len(s.decoded.entries); n != 0 {
		t.Fatalf("%d values still remembered after Clear", n)
	}
}

func TestDecodedCookiesAreBounded(t *testing.T) {
	var c decodedCookies
	d := benchSession(0)
	for i := range maxDecoded + 50 {
		c.put(fmt.Sprint("value-", i), d, benchNow)
	}
	if n := len(c.entries); n > maxDecoded {
		t.Fatalf("%d entries, more than %d", n, maxDecoded)
	}
	c.put("late", d, benchNow.Add(decodedTTL))
	if n := len(c.entries); n != 1 {
		t.Fatalf("expired entries not collected first: %d left", n)
	}
}

// validCookieBytes reports whether r.Cookie accepts v as a value.
func validCookieBytes(v string) bool {
	for i := range len(v) {
		if b := v[i]; b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return false
		}
	}
	return true
}

// checkRawChunks checks what the remembered sessions rely on: where
// readRawChunks and ReadChunked disagree, the raw value has a byte that
// r.Cookie refuses, so it can never equal a remembered value.
func checkRawChunks(t *testing.T, o CookieOptions, header string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header["Cookie"] = []string{header}
	raw, rawOK := readRawChunks(r, o)
	v, err := ReadChunked(r, o)
	if rawOK && (err != nil || raw != v) && validCookieBytes(raw) {
		t.Fatalf("Cookie: %q: raw %q (valid bytes) but ReadChunked %q, %v", header, raw, v, err)
	}
	if !rawOK && err == nil {
		t.Fatalf("Cookie: %q: ReadChunked found %q, the raw read nothing", header, v)
	}
}

func TestRawChunksAgreeWithReadChunked(t *testing.T) {
	o := CookieOptions{Name: "s"}
	full := strings.Repeat("A", MaxChunk)
	for _, h := range []string{
		"s=abc",
		"a=1; s=abc; b=2",
		` s = abc ;`,
		`s="abc"`,
		`s="abc`,
		"s=a b",
		"s=a\\b; s=good",
		"s=a\x01b; s=good",
		`s="; s=good`,
		"x; s=abc",
		"s=" + full + "; s_1=tail",
		"s=" + full + "; s_1=ta\x7fil; s_1=tail",
		"s=" + full + "; s_2=skipped; s_1=" + full + "; s_2=end",
		"s_1=orphan",
		"",
		";;;",
	} {
		checkRawChunks(t, o, h)
	}
	many := strings.Repeat("x=1;", maxRawCookies) + "s=abc"
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Cookie", many)
	if _, ok := readRawChunks(r, o); ok {
		t.Error("read a cookie from a request with more cookies than net/http parses")
	}
}

func FuzzRawChunksAgreeWithReadChunked(f *testing.F) {
	f.Add("a=1; s=abc; b=2")
	f.Add(`s="x"; s=y`)
	f.Add("s=" + strings.Repeat("A", MaxChunk) + ";s_1=z")
	f.Fuzz(func(t *testing.T, header string) {
		checkRawChunks(t, CookieOptions{Name: "s"}, header)
	})
}

// A first session cookie with a byte net/http refuses is skipped, as
// r.Cookie does, whether or not the value after it is remembered.
func TestCookieStoreSkipsAnInvalidFirstCookieLikeRCookie(t *testing.T) {
	s := benchCookieStore(t)
	r, _ := benchRequest(t, s, benchSession(0))
	raw, _ := ReadChunked(r, s.opts)
	for range 2 { // decoded, then remembered
		bad := httptest.NewRequest(http.MethodGet, "/", nil)
		bad.Header.Set("Cookie", s.opts.CookieName()+"="+raw[:10]+"\\"+raw[10:]+"; "+s.opts.CookieName()+"="+raw)
		d, err := s.Load(bad)
		if err != nil || d.Subject != "alice" {
			t.Fatalf("Load: %v %v", d, err)
		}
	}
}
