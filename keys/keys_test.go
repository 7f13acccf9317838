package keys

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/store/boltstore"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newManager(t *testing.T, alg string) (*Manager, *boltstore.Store, *clock) {
	t.Helper()
	st, err := boltstore.Open(t.TempDir() + "/keys.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	st.SetClock(c.Now)
	m, err := New(context.Background(), st, Options{Alg: alg, RotateEvery: 24 * time.Hour, RetainFor: time.Hour, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return m, st, c
}

func TestSignVerifyEveryAlgorithm(t *testing.T) {
	for _, alg := range SupportedAlgs {
		t.Run(alg, func(t *testing.T) {
			m, _, _ := newManager(t, alg)
			tok, err := m.Sign(map[string]any{"sub": "alice"}, "at+jwt")
			if err != nil {
				t.Fatal(err)
			}
			var claims map[string]any
			typ, err := m.Verify(tok, &claims)
			if err != nil || typ != "at+jwt" || claims["sub"] != "alice" {
				t.Fatalf("verify: typ=%q claims=%v err=%v", typ, claims, err)
			}
			header := decodeHeader(t, tok)
			if header["kid"] != m.CurrentKeyID() || header["alg"] != alg {
				t.Errorf("header %v lacks kid %s / alg %s", header, m.CurrentKeyID(), alg)
			}
		})
	}
}

func decodeHeader(t *testing.T, tok string) map[string]any {
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	json.Unmarshal(raw, &h)
	return h
}

func TestKeysSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	st, _ := boltstore.Open(dir + "/k.db")
	m1, err := New(context.Background(), st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	kid := m1.CurrentKeyID()
	tok, _ := m1.Sign(map[string]any{"sub": "x"}, "JWT")
	st.Close()
	st2, _ := boltstore.Open(dir + "/k.db")
	defer st2.Close()
	m2, err := New(context.Background(), st2, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m2.CurrentKeyID() != kid {
		t.Errorf("a restart generated a new key %s instead of reusing %s", m2.CurrentKeyID(), kid)
	}
	var c map[string]string
	if _, err := m2.Verify(tok, &c); err != nil {
		t.Errorf("token signed before restart no longer verifies: %v", err)
	}
}

func TestRotationKeepsOldKeyUntilItsTokensExpire(t *testing.T) {
	m, _, c := newManager(t, "ES256")
	ctx := context.Background()
	oldKid := m.CurrentKeyID()
	oldTok, _ := m.Sign(map[string]any{"sub": "x"}, "JWT")
	newKid, err := m.Rotate(ctx)
	if err != nil || newKid == oldKid {
		t.Fatalf("rotate: %s %v", newKid, err)
	}
	if !strings.Contains(string(m.JWKS()), oldKid) || !strings.Contains(string(m.JWKS()), newKid) {
		t.Fatalf("JWKS must publish both keys after rotation: %s", m.JWKS())
	}
	var claims map[string]string
	if _, err := m.Verify(oldTok, &claims); err != nil {
		t.Errorf("token of the retired key must still verify: %v", err)
	}
	c.Add(2 * time.Hour) // past RetainFor
	if err := m.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(m.JWKS()), oldKid) {
		t.Errorf("retired key still published after its retention: %s", m.JWKS())
	}
	if _, err := m.Verify(oldTok, &claims); err == nil {
		t.Errorf("token of a removed key still verifies")
	}
}

func TestScheduledRotation(t *testing.T) {
	m, _, c := newManager(t, "ES256")
	first := m.CurrentKeyID()
	c.Add(24*time.Hour + 30*time.Minute) // past RotateEvery, within RetainFor
	if err := m.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m.CurrentKeyID() == first {
		t.Errorf("key not rotated after RotateEvery")
	}
	if !strings.Contains(string(m.JWKS()), first) {
		t.Errorf("previous key must stay published for RetainFor")
	}
}

func TestVerifyRefusesForgedTokens(t *testing.T) {
	m, _, _ := newManager(t, "ES256")
	good, err := m.Sign(map[string]any{"sub": "alice"}, "JWT")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	payload := b64(`{"sub":"mallory"}`)
	hsHeader := b64(`{"alg":"HS256","kid":"` + m.CurrentKeyID() + `"}`)
	mac := hmac.New(sha256.New, m.JWKS()) // the classic confusion: HMAC keyed with public material
	mac.Write([]byte(hsHeader + "." + payload))
	cases := map[string]string{
		"alg none":        b64(`{"alg":"none","kid":"`+m.CurrentKeyID()+`"}`) + "." + payload + ".",
		"HS256 confusion": hsHeader + "." + payload + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)),
		"swapped payload": parts[0] + "." + payload + "." + parts[2],
		"unknown kid":     b64(`{"alg":"ES256","kid":"nope"}`) + "." + parts[1] + "." + parts[2],
		"garbage":         "not-a-jwt",
		"embedded jwk":    b64(`{"alg":"ES256","jwk":{"kty":"EC"}}`) + "." + parts[1] + "." + parts[2],
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			var claims map[string]string
			if _, err := m.Verify(tok, &claims); err == nil {
				t.Fatalf("forged token accepted: %v", claims)
			}
		})
	}
}

func TestChangingAlgorithmPublishesBothKeys(t *testing.T) {
	dir := t.TempDir()
	st, _ := boltstore.Open(dir + "/k.db")
	defer st.Close()
	m1, _ := New(context.Background(), st, Options{Alg: "ES256"})
	tok, _ := m1.Sign(map[string]any{"sub": "x"}, "JWT")
	m2, err := New(context.Background(), st, Options{Alg: "RS256"})
	if err != nil {
		t.Fatal(err)
	}
	if m2.Alg() != "RS256" || decodeHeaderAlg(m2) != "RS256" {
		t.Errorf("new key is not RS256")
	}
	var c map[string]string
	if _, err := m2.Verify(tok, &c); err != nil {
		t.Errorf("ES256 token must still verify after switching to RS256: %v", err)
	}
}

func decodeHeaderAlg(m *Manager) string {
	tok, _ := m.Sign(map[string]any{}, "JWT")
	raw, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	var h map[string]any
	json.Unmarshal(raw, &h)
	s, _ := h["alg"].(string)
	return s
}
