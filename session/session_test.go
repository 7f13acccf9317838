package session

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var (
	secretA = []byte(strings.Repeat("a", 32))
	secretB = []byte(strings.Repeat("b", 32))
)

func TestCodecRoundTripAndRotation(t *testing.T) {
	old, _ := NewCodec("sso", time.Hour, secretA)
	rotated, _ := NewCodec("sso", time.Hour, secretB, secretA)
	enc, err := old.Encode("c", map[string]string{"sub": "alice"})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := rotated.Decode("c", enc, &got); err != nil || got["sub"] != "alice" {
		t.Fatalf("value from the previous secret must decode after rotation: %v %v", got, err)
	}
	fresh, _ := rotated.Encode("c", "x")
	var s string
	if err := old.Decode("c", fresh, &s); err == nil {
		t.Errorf("a codec without the new secret decoded a new value")
	}
}

func TestCodecRefusesTamperedForeignAndMisnamedValues(t *testing.T) {
	c, _ := NewCodec("sso", time.Hour, secretA)
	other, _ := NewCodec("sso", time.Hour, secretB)
	purpose, _ := NewCodec("authorize", time.Hour, secretA)
	enc, _ := c.Encode("c", "alice")
	foreign, _ := other.Encode("c", "alice")
	tampered := enc[:len(enc)-4] + "AAAA"
	cases := []struct {
		name, cookie, value string
		codec               *Codec
	}{
		{"tampered", "c", tampered, c},
		{"other site's secret", "c", foreign, c},
		{"other cookie name", "d", enc, c},
		{"other purpose", "c", enc, purpose},
		{"empty", "c", "", c},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var s string
			if err := tc.codec.Decode(tc.cookie, tc.value, &s); err == nil {
				t.Fatalf("decoded %q", s)
			}
		})
	}
}

func TestCodecRefusesExpiredValues(t *testing.T) {
	c, _ := NewCodec("sso", time.Second, secretA)
	enc, _ := c.Encode("c", "alice")
	time.Sleep(2100 * time.Millisecond) // securecookie timestamps have one-second resolution
	var s string
	if err := c.Decode("c", enc, &s); err == nil {
		t.Fatal("expired value decoded")
	}
}

func TestNewCodecRefusesShortSecrets(t *testing.T) {
	if _, err := NewCodec("sso", time.Hour, []byte("short")); err == nil {
		t.Fatal("accepted a 5-byte secret")
	}
	if _, err := NewCodec("sso", time.Hour); err == nil {
		t.Fatal("accepted no secret")
	}
}

func TestChunkedCookies(t *testing.T) {
	opts := CookieOptions{Name: "s", Secure: true}
	for _, size := range []int{10, MaxChunk - 1, MaxChunk, MaxChunk*3 + 17} {
		value := strings.Repeat("v", size)
		rec := httptest.NewRecorder()
		if err := WriteChunked(rec, httptest.NewRequest("GET", "/", nil), opts, value); err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("GET", "/", nil)
		for _, c := range rec.Result().Cookies() {
			if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || !strings.HasPrefix(c.Name, "__Host-") || c.Path != "/" {
				t.Errorf("cookie %s lacks the required attributes: %+v", c.Name, c)
			}
			if len(c.Value) > MaxChunk {
				t.Errorf("chunk %s is %d bytes", c.Name, len(c.Value))
			}
			req.AddCookie(c)
		}
		got, err := ReadChunked(req, opts)
		if err != nil || got != value {
			t.Errorf("size %d: read back %d bytes, err %v", size, len(got), err)
		}
	}
}

func TestWriteChunkedExpiresLeftoverChunks(t *testing.T) {
	opts := CookieOptions{Name: "s"}
	req := httptest.NewRequest("GET", "/", nil)
	for _, n := range []string{"s", "s_1", "s_2"} {
		req.AddCookie(&http.Cookie{Name: n, Value: "old"})
	}
	rec := httptest.NewRecorder()
	WriteChunked(rec, req, opts, "short")
	expired := map[string]bool{}
	for _, c := range rec.Result().Cookies() {
		if c.MaxAge < 0 {
			expired[c.Name] = true
		}
	}
	if !expired["s_1"] || !expired["s_2"] {
		t.Errorf("stale chunks not expired: %v", expired)
	}
}

func TestWriteChunkedRefusesOversizedValues(t *testing.T) {
	rec := httptest.NewRecorder()
	err := WriteChunked(rec, httptest.NewRequest("GET", "/", nil), CookieOptions{Name: "s"}, strings.Repeat("x", MaxChunk*maxChunks+1))
	if err == nil {
		t.Fatal("wrote a value larger than maxChunks cookies")
	}
}

func TestIsChunkOf(t *testing.T) {
	o := CookieOptions{Name: "s", Secure: true}
	for name, want := range map[string]bool{"__Host-s": true, "__Host-s_1": true, "__Host-s_x": false, "s": false, "__Host-sx": false} {
		if got := IsChunkOf(o, name); got != want {
			t.Errorf("IsChunkOf(%q) = %v", name, got)
		}
	}
}
