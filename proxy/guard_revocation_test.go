package proxy_test

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/proxy"
)

// revocationList is an in-process issuer's list of revoked JWT ids.
type revocationList struct {
	mu      sync.Mutex
	revoked map[string]bool
	err     error
	asked   int
}

func (l *revocationList) AccessTokenRevoked(_ context.Context, jti string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.asked++
	return l.revoked[jti], l.err
}

func (l *revocationList) revoke(jti string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.revoked[jti] = true
}

// TestGuardRefusesARevokedJWTAtOnce: a JWT the in-process issuer revoked
// is refused by the next request, although its signature was verified and
// cached before.
func TestGuardRefusesARevokedJWTAtOnce(t *testing.T) {
	list := &revocationList{revoked: map[string]bool{}}
	e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) { c.Revocations = list }))
	tok := e.iss.mint(jwtSpec{edit: func(c map[string]any) { c["jti"] = "jti-1" }})
	other := e.iss.mint(jwtSpec{edit: func(c map[string]any) { c["jti"] = "jti-2" }})
	expectAllowed(t, e.bearer("/", tok))
	expectAllowed(t, e.bearer("/", tok)) // now from the verified cache
	list.revoke("jti-1")
	resp := e.bearer("/", tok)
	expectRefused(t, resp, http.StatusUnauthorized, "Bearer", "invalid_token")
	if c := challengeOf(resp, "Bearer"); !strings.Contains(c, "revoked") {
		t.Errorf("challenge %q does not say the token was revoked", c)
	}
	expectAllowed(t, e.bearer("/", other))

	t.Run("a failing list is 503, not a pass", func(t *testing.T) {
		list.mu.Lock()
		list.err = errors.New("store down")
		list.mu.Unlock()
		expectRefused(t, e.bearer("/", other), http.StatusServiceUnavailable, "Bearer", "temporarily_unavailable")
	})
}

// TestGuardIntrospectsJWTsWhenAsked: with IntrospectJWTs, a JWT the remote
// issuer revoked is refused once the cached answer ages out (CacheTTL),
// and never before the signature check passed.
func TestGuardIntrospectsJWTsWhenAsked(t *testing.T) {
	e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) {
		c.IntrospectJWTs = true
		c.CacheTTL = 30 * time.Second
	}))
	claims := map[string]any{}
	tok := e.iss.mint(jwtSpec{edit: func(c map[string]any) { maps.Copy(claims, c) }})
	e.iss.set(func(fi *fakeIssuer) { fi.opaque[tok] = claims })
	expectAllowed(t, e.bearer("/", tok))
	calls := e.iss.introspections.Load()
	expectAllowed(t, e.bearer("/", tok))
	if got := e.iss.introspections.Load(); got != calls {
		t.Errorf("a second request introspected again (%d calls, want %d): the cache was not used", got, calls)
	}
	e.iss.revoke(tok)
	e.clock.Advance(31 * time.Second)
	expectRefused(t, e.bearer("/", tok), http.StatusUnauthorized, "Bearer", "invalid_token")

	t.Run("a JWT the issuer never heard of", func(t *testing.T) {
		expectRefused(t, e.bearer("/", e.iss.mint(jwtSpec{})), http.StatusUnauthorized, "Bearer", "invalid_token")
	})
	t.Run("a forged JWT is not sent to introspection", func(t *testing.T) {
		before := e.iss.introspections.Load()
		forged := e.iss.mint(jwtSpec{key: attackerKey})
		expectRefused(t, e.bearer("/", forged), http.StatusUnauthorized, "Bearer", "invalid_token")
		if e.iss.introspections.Load() != before {
			t.Error("a JWT with a bad signature was introspected")
		}
	})
}

func TestGuardIntrospectJWTsNeedsAClient(t *testing.T) {
	_, err := proxy.NewGuard(proxy.GuardConfig{Issuer: "https://issuer.example", Audiences: []string{apiAudience}, IntrospectJWTs: true})
	if err == nil || !strings.Contains(err.Error(), "client_id") {
		t.Fatalf("NewGuard = %v, want an error naming client_id", err)
	}
}
