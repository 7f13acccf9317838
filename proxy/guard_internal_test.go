package proxy

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/floodtest"
)

func FuzzParseAuthorization(f *testing.F) {
	for _, seed := range []string{
		"Bearer eyJhbGciOiJFUzI1NiJ9.e30.c2ln", "bearer abc", "DPoP abc.def.ghi", "Bearer", "Bearer ", "Bearer  abc",
		"Bearer a b", "Bearer tökén", "Bearer abc==", "Bearer ==", "Bearer a=b", "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
		"Bearer\tabc", "Negotiate", "", " ", "Bearer " + strings.Repeat("A", maxTokenLength+1),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		scheme, token, gerr := parseAuthorization(v)
		if gerr != nil {
			if gerr.status != http.StatusBadRequest || gerr.code != "invalid_request" {
				t.Fatalf("%q: refused with %d %s, want 400 invalid_request", v, gerr.status, gerr.code)
			}
			if token != "" {
				t.Fatalf("%q: a refusal returned a token", v)
			}
			return
		}
		if scheme == schemeNone {
			if token != "" {
				t.Fatalf("%q: another scheme returned a token", v)
			}
			return
		}
		name := map[authScheme]string{schemeBearer: "Bearer", schemeDPoP: "DPoP"}[scheme]
		if !strings.EqualFold(v, name+" "+token) {
			t.Fatalf("%q parsed as %s %q", v, name, token)
		}
		if token == "" || len(token) > maxTokenLength || !validToken(token) || strings.ContainsAny(token, " \t\r\n\"\\,") {
			t.Fatalf("%q: accepted token %q is not a b64token", v, token)
		}
	})
}

func TestTTLCacheStaysWithinItsBound(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := newTTLCache[int](100)
	for i := range 10_000 {
		c.put(sha256.Sum256([]byte{byte(i), byte(i >> 8)}), i, now.Add(time.Hour), now)
		if n := c.len(); n > 100 {
			t.Fatalf("%d entries after %d puts, bound 100", n, i+1)
		}
	}
	// Expired entries go first when there is no room.
	c = newTTLCache[int](2)
	k := func(s string) [32]byte { return sha256.Sum256([]byte(s)) }
	c.put(k("old"), 1, now.Add(time.Second), now)
	c.put(k("live"), 2, now.Add(time.Hour), now)
	later := now.Add(time.Minute)
	c.put(k("new"), 3, later.Add(time.Hour), later)
	if _, ok := c.get(k("live"), later); !ok {
		t.Error("a live entry was evicted while an expired one was there")
	}
	if _, ok := c.get(k("new"), later); !ok {
		t.Error("the new entry is missing")
	}
}

func TestTTLCacheNeverReturnsExpiredEntries(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := newTTLCache[string](10)
	key := sha256.Sum256([]byte("t"))
	c.put(key, "v", now.Add(time.Second), now)
	if _, ok := c.get(key, now.Add(999*time.Millisecond)); !ok {
		t.Error("entry missing before its expiry")
	}
	if _, ok := c.get(key, now.Add(time.Second)); ok {
		t.Error("entry returned at its expiry")
	}
	c.put(sha256.Sum256([]byte("past")), "v", now, now)
	c.sweepExpired(now.Add(time.Second))
	if n := c.len(); n != 0 {
		t.Errorf("%d entries after the sweep, want 0", n)
	}
}

func TestNumericDateReadsEveryNumberForm(t *testing.T) {
	want := time.Unix(1_700_000_000, 0)
	for _, v := range []any{float64(1_700_000_000), int64(1_700_000_000), 1_700_000_000, json.Number("1700000000")} {
		if got, ok := numericDate(v); !ok || !got.Equal(want) {
			t.Errorf("numericDate(%T %v) = %v %v", v, v, got, ok)
		}
	}
	for _, v := range []any{"1700000000", -1.0, 1e300, nil, json.Number("x")} {
		if _, ok := numericDate(v); ok {
			t.Errorf("numericDate(%T %v) accepted", v, v)
		}
	}
}

// TestFloodGuardCacheBounded: 200,000 unique tokens, each with its own
// verified answer, into a cache of the default size.
// It stays at its cap, evicting at random: an evicted answer costs a
// signature check or an introspection again, never a wrong answer.
func TestFloodGuardCacheBounded(t *testing.T) {
	n := floodtest.N(200_000, 50_000)
	now := time.Unix(1_700_000_000, 0)
	c := newTTLCache[*Token](defaultCacheEntries)
	peak := floodtest.Measure(n, func(i int) {
		claims := map[string]any{"iss": "https://issuer.example", "sub": fmt.Sprint("user-", i), "aud": "https://api.example.com",
			"client_id": "cli", "scope": "read:items write:items", "jti": fmt.Sprintf("%022d", i),
			"iat": float64(now.Unix()), "exp": float64(now.Add(time.Hour).Unix())}
		tok, gerr := newToken(claims, now.Add(time.Hour), false)
		if gerr != nil {
			t.Fatal(gerr.description)
		}
		c.put(tokenKey(fmt.Sprintf("token-%d", i)), tok, now.Add(time.Hour), now)
	})
	if got := c.len(); got != defaultCacheEntries {
		t.Errorf("%d entries after %d unique tokens, want the cap %d", got, n, defaultCacheEntries)
	}
	floodtest.Check(t, "a guard token cache", n, peak)
}
