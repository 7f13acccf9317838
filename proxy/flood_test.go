package proxy_test

// Floods of unique inputs into every in-memory structure a request to the
// API guard or the login gateway feeds: each must stay within its cap,
// and the live heap within floodtest.MaxGrowth (docs/security-floods.md).

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/dpop"
	"github.com/portcullis-gw/portcullis/internal/floodtest"
	"github.com/portcullis-gw/portcullis/proxy"
)

// TestFloodUniqueDPoPProofsAtTheGuard: unique proofs, each valid for a
// bound token, past the guard's replay cache. The cache stays at its cap;
// what does not fit is refused with 503 temporarily_unavailable and
// Retry-After rather than a 401 (the token is good: the client must not
// drop it), a replay of a remembered proof is still refused as one, and
// room comes back as the window passes. The default cache's memory under
// a million proofs is dpop's TestFloodUniqueProofsBounded.
func TestFloodUniqueDPoPProofsAtTheGuard(t *testing.T) {
	const capacity = 1000
	n := floodtest.N(3000, 1500)
	cache := dpop.NewReplayCache(capacity)
	e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) {
		c.DPoP = &dpop.Verifier{Now: c.Now, Replay: cache} // c.Now is the test clock
	}))
	client := newDPoPClient(t)
	tok := e.iss.mint(boundTo(client))
	const target = apiOrigin + "/items"
	send := func(proof string) *http.Response {
		r := apiRequest(http.MethodGet, "/items", "DPoP "+tok)
		r.Header.Set("DPoP", proof)
		return e.do(r)
	}
	var first string
	counts := map[string]int{}
	peak := floodtest.Measure(n, func(i int) {
		proof := client.proof(t, http.MethodGet, target, tok, "", e.clock.Now())
		if first == "" {
			first = proof
		}
		resp := send(proof)
		var b struct {
			Error string `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&b)
		if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
			t.Fatalf("proof %d: 503 without Retry-After", i)
		}
		counts[fmt.Sprint(resp.StatusCode, " ", b.Error)]++
	})
	t.Logf("answers: %v", counts)
	if live := cache.Len(e.clock.Now()); live != capacity {
		t.Errorf("%d proofs remembered, want the cap %d", live, capacity)
	}
	if counts["200 "] != capacity || counts["503 temporarily_unavailable"] != n-capacity {
		t.Errorf("answers %v, want %d allowed and the rest 503 temporarily_unavailable", counts, capacity)
	}
	expectRefused(t, send(first), http.StatusUnauthorized, "DPoP", "invalid_dpop_proof")
	floodtest.Check(t, "the guard's DPoP replay cache", n, peak)

	e.clock.Advance(dpop.DefaultMaxAge)
	expectAllowed(t, send(client.proof(t, http.MethodGet, target, tok, "", e.clock.Now())))
}

// inactiveIntrospector answers every token inactive, in process.
type inactiveIntrospector struct{ calls atomic.Int64 }

func (i *inactiveIntrospector) Introspect(context.Context, string) (map[string]any, error) {
	i.calls.Add(1)
	return map[string]any{"active": false}, nil
}

// TestFloodGarbageTokensAtTheGuard: unique garbage in three shapes — opaque
// tokens the issuer calls inactive, malformed JWTs, and well-formed JWTs
// naming an unknown kid — with the clock moving 1 ms a request. Only
// inactive answers are cached, in their own cache of CacheEntries/4;
// nothing reaches the verified-JWT and introspection caches; the unknown
// kids cost one JWKS fetch per keyRefreshInterval (5 s) at most.
func TestFloodGarbageTokensAtTheGuard(t *testing.T) {
	n := floodtest.N(120_000, 30_000)
	const entries = 10_000 // the default CacheEntries
	intro := &inactiveIntrospector{}
	e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) { c.Introspector = intro }))
	b64 := base64.RawURLEncoding.EncodeToString
	payload := b64(fmt.Appendf(nil, `{"iss":%q,"aud":%q,"sub":"x","exp":%d}`, e.iss.issuer, apiAudience, e.clock.Now().Add(time.Hour).Unix()))
	sig := b64(make([]byte, 64))
	fetchesBefore := e.iss.jwksHits.Load()
	start := e.clock.Now()
	peak := floodtest.Measure(n, func(i int) {
		var tok string
		switch i % 3 {
		case 0:
			tok = fmt.Sprintf("garbage-%08d", i)
		case 1:
			tok = b64(fmt.Appendf(nil, "not json %d", i)) + "." + payload + "." + sig
		case 2:
			tok = b64(fmt.Appendf(nil, `{"alg":"ES256","typ":"at+jwt","kid":"unknown-%d"}`, i)) + "." + payload + "." + sig
		}
		resp := e.bearer("/items", tok)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("garbage token %d (%s) answered %d", i, tok, resp.StatusCode)
		}
		e.clock.Advance(time.Millisecond)
	})
	verified, introspected, inactive := e.g.CacheLens()
	elapsed := e.clock.Now().Sub(start)
	fetches := e.iss.jwksHits.Load() - fetchesBefore
	t.Logf("caches: %d verified, %d introspected, %d inactive (cap %d); %d introspection calls; %d JWKS fetches in %v",
		verified, introspected, inactive, entries/4, intro.calls.Load(), fetches, elapsed)
	if verified != 0 || introspected != 0 || inactive > entries/4 {
		t.Errorf("garbage cached: %d verified, %d introspected, %d inactive (cap %d)", verified, introspected, inactive, entries/4)
	}
	if maxFetches := int64(elapsed/(5*time.Second)) + 1; fetches > maxFetches {
		t.Errorf("%d JWKS fetches for %d unknown kids in %v, want at most %d", fetches, n/3, elapsed, maxFetches)
	}
	floodtest.Check(t, "the guard's token caches", n, peak)
}

// TestFloodUniqueValidJWTsAtTheGuard: unique JWTs, each genuinely signed
// by the issuer, past the verified-JWT cache (CacheEntries 1,000 here):
// it stays at its cap, evicting at random, which costs a signature check
// again and nothing else.
func TestFloodUniqueValidJWTsAtTheGuard(t *testing.T) {
	const entries = 1000
	n := floodtest.N(10_000, 3000)
	e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) { c.CacheEntries = entries }))
	peak := floodtest.Measure(n, func(i int) {
		expectAllowed(t, e.bearer("/items", e.iss.mint(jwtSpec{})))
	})
	verified, _, _ := e.g.CacheLens()
	t.Logf("%d verified tokens cached (cap %d)", verified, entries)
	if verified != entries {
		t.Errorf("%d verified tokens cached, want the cap %d", verified, entries)
	}
	floodtest.Check(t, "the guard's verified-JWT cache", n, peak)
}
