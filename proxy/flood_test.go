package proxy_test

// Floods of unique inputs into every in-memory structure a request to the
// API guard or the login gateway feeds: each must stay within its cap,
// and the live heap within floodtest.MaxGrowth (docs/security-floods.md).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

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
	const capacity, n = 1000, 3000
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
