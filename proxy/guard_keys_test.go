package proxy_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// rotate makes the issuer sign with a new key and publish only it.
func (fi *fakeIssuer) rotate(kid string) {
	k := newECKey(fi.t, kid)
	fi.set(func(fi *fakeIssuer) {
		fi.key = k
		fi.published = []jose.JSONWebKey{k.public()}
	})
}

func TestGuardJWKSRefreshIsRateLimitedUnderRandomKidFlood(t *testing.T) {
	e := newGuardEnv(t)
	flood := func() {
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 25 {
					forged := e.iss.mint(jwtSpec{key: &signingKey{kid: randomID(), alg: jose.ES256, priv: attackerKey.priv}})
					resp := e.bearer("/", forged)
					if resp.StatusCode != http.StatusUnauthorized {
						t.Errorf("forged token: status %d", resp.StatusCode)
					}
				}
			}()
		}
		wg.Wait()
	}
	before := e.iss.jwksHits.Load()
	flood()
	if n := e.iss.jwksHits.Load() - before; n != 0 {
		t.Errorf("200 unknown kids right after the first fetch made %d JWKS fetches, want 0", n)
	}
	e.clock.Advance(5 * time.Second)
	flood()
	if n := e.iss.jwksHits.Load() - before; n != 1 {
		t.Errorf("200 unknown kids a refresh interval later made %d JWKS fetches, want 1", n)
	}
}

func TestGuardPicksUpRotatedKeysAndDropsWithdrawnOnes(t *testing.T) {
	e := newGuardEnv(t)
	oldKey := e.iss.key
	e.iss.rotate("k2")
	fresh := e.iss.mint(jwtSpec{})
	// Moments after the last fetch, an unknown kid does not make another.
	expectRefused(t, e.bearer("/", fresh), http.StatusUnauthorized, "Bearer", "invalid_token")
	e.clock.Advance(5 * time.Second)
	expectAllowed(t, e.bearer("/", fresh))
	// The withdrawn key is gone with the refresh: a token it signs (not
	// seen before) is refused.
	expectRefused(t, e.bearer("/", e.iss.mint(jwtSpec{key: oldKey})), http.StatusUnauthorized, "Bearer", "invalid_token")
}

func TestGuardKeepsKeysWhileTheIssuerIsDown(t *testing.T) {
	e := newGuardEnv(t)
	e.iss.Down.Store(true)
	e.clock.Advance(20 * time.Minute) // keys are stale: a refresh is tried, and fails
	expectAllowed(t, e.bearer("/", e.iss.mint(jwtSpec{})))
	e.clock.Advance(10 * time.Second)
	// An unknown kid makes a fetch, which fails: the token is refused as a
	// bad token, not as an outage, since the keys known do not verify it.
	forged := e.iss.mint(jwtSpec{key: &signingKey{kid: "unknown", alg: jose.ES256, priv: attackerKey.priv}})
	expectRefused(t, e.bearer("/", forged), http.StatusUnauthorized, "Bearer", "invalid_token")
	expectAllowed(t, e.bearer("/", e.iss.mint(jwtSpec{})))
}

func TestGuardWithoutAnyKeysAnswers503UntilTheJWKSIsBack(t *testing.T) {
	e := newGuardEnv(t, withIssuer(func(fi *fakeIssuer) { fi.published = nil }))
	tok := func() string { return e.iss.mint(jwtSpec{}) }
	expectRefused(t, e.bearer("/", tok()), http.StatusServiceUnavailable, "Bearer", "temporarily_unavailable")
	e.iss.set(func(fi *fakeIssuer) { fi.published = []jose.JSONWebKey{fi.key.public()} })
	e.clock.Advance(5 * time.Second)
	expectAllowed(t, e.bearer("/", tok()))
}

func TestGuardVerifiesEachTokenOnce(t *testing.T) {
	e := newGuardEnv(t)
	tok := e.iss.mint(jwtSpec{})
	for range 5 {
		expectAllowed(t, e.bearer("/", tok))
	}
	// A withdrawn key does not stop a token already verified until the
	// cache bound (5 minutes): then it is verified again, and refused.
	e.iss.rotate("k2")
	e.clock.Advance(4 * time.Minute)
	unknown := e.iss.mint(jwtSpec{key: &signingKey{kid: "k3", alg: jose.ES256, priv: attackerKey.priv}})
	expectRefused(t, e.bearer("/", unknown), http.StatusUnauthorized, "Bearer", "invalid_token") // refreshes the keys: k1 is gone
	expectAllowed(t, e.bearer("/", tok))
	e.clock.Advance(2 * time.Minute)
	expectRefused(t, e.bearer("/", tok), http.StatusUnauthorized, "Bearer", "invalid_token")
}
