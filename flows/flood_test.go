package flows

// Floods of unique inputs into every in-memory structure a request of the
// authorization server feeds: each must stay within its cap, and the live
// heap within floodtest.MaxGrowth (docs/security-floods.md).

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/dpop"
	"github.com/portcullis-gw/portcullis/internal/floodtest"
)

// floodIP is a unique IPv6 address for i: a /64 gives an attacker more
// than any flood needs.
func floodIP(i int) string { return fmt.Sprintf("2001:db8::%x:%x", i>>16, i&0xffff) }

// TestFloodFailedLoginsBounded: failed sign-ins with unique usernames (of
// 1 KiB each, as long as the password grant takes; the login page takes
// up to its 64 KiB form) from unique IPs. The throttle, shared by the
// login page, the device and CIBA sign-in pages and the password grant,
// keeps at most maxThrottleEntries buckets per kind, each keyed by a
// fixed-size digest whatever the username's length. Keyed by the
// username itself, the map held 123 MiB at its cap.
func TestFloodFailedLoginsBounded(t *testing.T) {
	n := floodtest.N(300_000, 150_000)
	clock := &testClock{t: time.Unix(2_000_000_000, 0)}
	th := newThrottle(ThrottleConfig{}, clock.Now)
	pad := strings.Repeat("x", maxCredentialLen-16)
	peak := floodtest.Measure(n, func(i int) {
		if ok, _, done := th.Begin(fmt.Sprintf("%s%016x", pad, i), floodIP(i)); ok {
			done(false)
		}
	})
	th.mu.Lock()
	users, ips, inFlight := len(th.users), len(th.ips), len(th.inFlight)
	th.mu.Unlock()
	t.Logf("%d user buckets, %d IP buckets (cap %d each), %d in flight", users, ips, maxThrottleEntries, inFlight)
	if users > maxThrottleEntries || ips > maxThrottleEntries || inFlight != 0 {
		t.Errorf("past the cap: %d user buckets, %d IP buckets, %d in flight", users, ips, inFlight)
	}
	floodtest.Check(t, "the login throttle", n, peak)
}

// TestFloodFailedLoginsStillLimitsAVictim: once a flood has filled both
// bucket maps, guesses at a username that has none (from addresses that
// have none) must still be limited. Each new key used to get a fresh,
// forgotten bucket, so every guess passed.
func TestFloodFailedLoginsStillLimitsAVictim(t *testing.T) {
	clock := &testClock{t: time.Unix(2_000_000_000, 0)}
	th := newThrottle(ThrottleConfig{}, clock.Now)
	for i := range maxThrottleEntries {
		if ok, _, done := th.Begin(fmt.Sprint("spray", i), floodIP(i)); ok {
			done(false)
		}
	}
	admitted := 0
	for i := range 100 {
		if ok, _, done := th.Begin("victim", floodIP(maxThrottleEntries+i)); ok {
			admitted++
			done(false)
		}
	}
	if admitted > th.cfg.PerUser {
		t.Errorf("%d of 100 guesses at a username without a bucket admitted from fresh IPs after the flood, want at most %d",
			admitted, th.cfg.PerUser)
	}
	// Once the flood's buckets have refilled, the next new key sweeps them
	// away and gets a bucket of its own again.
	clock.Advance(time.Duration(th.cfg.PerIP) * th.cfg.Refill)
	if ok, _, done := th.Begin("carol", "192.0.2.7"); !ok {
		t.Fatal("a new user is refused once the flood's buckets have refilled")
	} else {
		done(true)
	}
	th.mu.Lock()
	defer th.mu.Unlock()
	if len(th.users) != 1 || len(th.ips) != 1 {
		t.Errorf("after the sweep: %d user and %d IP buckets, want carol's alone", len(th.users), len(th.ips))
	}
}

// TestFloodUniqueDPoPProofsAtTokenEndpointAndUserinfo: unique proofs, each
// valid, at the token endpoint and at userinfo, past the replay cache's
// size. The cache stays at its cap; what does not fit is refused with 503
// temporarily_unavailable and Retry-After (the proof may be good: not
// invalid_dpop_proof), a replay of a remembered proof is still refused as
// one, and room comes back as the window passes. The cache's memory at
// its default size under a million proofs is dpop's
// TestFloodUniqueProofsBounded.
func TestFloodUniqueDPoPProofsAtTokenEndpointAndUserinfo(t *testing.T) {
	env := newTestServer(t)
	env.allow500.Store(true) // 503 on purpose
	const capacity = 1000
	n := floodtest.N(3000, 1500)
	cache := dpop.NewReplayCache(capacity)
	env.srv.dpop = &dpop.Verifier{Now: env.clock.Now, Replay: cache}
	key := env.newDPoPKey()
	p := newAuthRequest(webappID, webappRedirect, "openid email")
	tok := env.dpopTokenOK(webappBasic, codeForm(env.newBrowser().obtainCode(p, "alice", alicePassword), webappRedirect, p.Verifier),
		key.tokenProof()).AccessToken
	// A client_credentials request for a scope the client lacks: the proof
	// is checked and remembered, then the grant fails without a token.
	cc := url.Values{"grant_type": {GrantClientCredentials}, "scope": {"write:items"}}

	var first string
	counts := map[string]int{}
	peak := floodtest.Measure(n, func(i int) {
		var res *response
		if i%2 == 0 {
			proof := key.tokenProof()
			if first == "" {
				first = proof
			}
			res = env.dpopToken(backendBasic, cc, proof)
		} else {
			res = env.userinfoWith(http.MethodGet, "DPoP "+tok, key.proof(http.MethodGet, PathUserinfo, tok))
		}
		code, _ := res.JSON(t)["error"].(string)
		if res.Status == http.StatusServiceUnavailable && res.Header.Get("Retry-After") == "" {
			t.Fatalf("request %d: 503 without Retry-After", i)
		}
		counts[fmt.Sprint(res.Status, " ", code)]++
	})
	t.Logf("answers: %v", counts)
	if live := cache.Len(env.clock.Now()); live != capacity {
		t.Errorf("%d proofs remembered, want the cap %d", live, capacity)
	}
	if got := counts["503 temporarily_unavailable"]; got != n-(capacity-1) {
		t.Errorf("%d proofs refused as the cache is full, want %d", got, n-(capacity-1))
	}
	if len(counts) != 3 {
		t.Errorf("unexpected answers: %v", counts)
	}
	// Full, yet a replay is recognised as one.
	wantOAuthError(t, env.dpopToken(backendBasic, cc, first), http.StatusBadRequest, "invalid_dpop_proof")
	floodtest.Check(t, "the token endpoint's and userinfo's DPoP replay cache", n, peak)

	env.clock.Advance(dpop.DefaultMaxAge)
	if res := env.userinfoWith(http.MethodGet, "DPoP "+tok, key.proof(http.MethodGet, PathUserinfo, tok)); res.Status != http.StatusOK {
		t.Errorf("after the window: %d %s", res.Status, res.Body)
	}
}

// TestFloodUniqueClientAssertionJTIsBounded: unique assertion ids, past the
// used-jti set's cap, with the store writer stopped (the worst case for
// its queue). The set keeps defaultMaxUsedAssertions live ids and refuses
// the rest (503 temporarily_unavailable: forgetting a live id would reopen
// its replay); the write queue stays at its capacity, dropping writes
// (memory still refuses the replays); a remembered id is refused as
// replayed while the set is full; expiry makes room again.
func TestFloodUniqueClientAssertionJTIsBounded(t *testing.T) {
	n := floodtest.N(400_000, 300_000)
	env := newTestServer(t)
	u := env.srv.assertions.used
	ctx := t.Context()
	until := env.clock.Now().Add(time.Minute + assertionLeeway)
	var accepted, busy int
	peak := floodtest.Measure(n, func(i int) {
		switch oe := u.use(ctx, backendID, fmt.Sprintf("jti-%d", i), until); oe {
		case nil:
			accepted++
		case errAssertionsBusy:
			busy++
		default:
			t.Fatalf("assertion %d: %v", i, oe)
		}
	})
	u.mu.Lock()
	seen, heapLen := len(u.seen), len(u.expiry)
	u.mu.Unlock()
	t.Logf("%d ids remembered (cap %d), %d refused; write queue %d (cap %d), %d writes dropped",
		seen, u.limit, busy, len(u.queue), cap(u.queue), u.dropped.Load())
	if seen != defaultMaxUsedAssertions || heapLen != seen || accepted != seen || busy != n-seen {
		t.Errorf("%d ids remembered (%d in the expiry heap), %d accepted, %d refused; want the cap %d and the rest refused",
			seen, heapLen, accepted, busy, defaultMaxUsedAssertions)
	}
	if len(u.queue) > usedAssertionQueue || u.dropped.Load() != uint64(accepted-usedAssertionQueue) {
		t.Errorf("write queue %d (cap %d), %d dropped", len(u.queue), usedAssertionQueue, u.dropped.Load())
	}
	if oe := u.use(ctx, backendID, "jti-0", until); oe != errAssertionReplayed {
		t.Errorf("a remembered id used again while the set is full: %v, want a replay", oe)
	}
	floodtest.Check(t, "the used client assertion ids", n, peak)

	env.clock.Advance(time.Minute + assertionLeeway)
	if oe := u.use(ctx, backendID, "after", env.clock.Now().Add(time.Minute)); oe != nil {
		t.Errorf("after the flood's ids expired: %v", oe)
	}
}

// TestFloodWrongUserCodesFromManyIPsBounded: wrong user codes on the device
// verification page from a million addresses. At most maxThrottleEntries
// IP buckets are kept; past them an address is held by the global bucket
// alone, which every entry pays into anyway, so the guessing rate stays
// bounded.
func TestFloodWrongUserCodesFromManyIPsBounded(t *testing.T) {
	n := floodtest.N(1_000_000, 200_000)
	clock := &testClock{t: time.Unix(2_000_000_000, 0)}
	th := newUserCodeThrottle(UserCodeThrottleConfig{}, clock.Now)
	admitted := 0
	peak := floodtest.Measure(n, func(i int) {
		if ok, _, done := th.Begin(floodIP(i)); ok {
			admitted++
			done(false)
		}
		if i%10 == 0 {
			clock.Advance(time.Millisecond) // 100,000 entries a second
		}
	})
	th.mu.Lock()
	ips, inFlight := len(th.ips), len(th.inFlight)
	th.mu.Unlock()
	elapsed := time.Duration(n/10) * time.Millisecond
	maxAdmitted := th.cfg.Global + int(elapsed/th.cfg.GlobalRefill) + 1
	t.Logf("%d IP buckets (cap %d), %d in flight; %d of %d wrong codes admitted in %v", ips, maxThrottleEntries, inFlight, admitted, n, elapsed)
	if ips > maxThrottleEntries || inFlight != 0 {
		t.Errorf("%d IP buckets (cap %d), %d in flight", ips, maxThrottleEntries, inFlight)
	}
	if admitted > maxAdmitted {
		t.Errorf("%d wrong codes admitted in %v, past the global bucket's %d", admitted, elapsed, maxAdmitted)
	}
	floodtest.Check(t, "the user code throttle", n, peak)
}

// TestFloodDevicePollClockBounded: polls of a million distinct pending
// requests (device and CIBA share the clock). At most maxDevicePolls
// states are kept: expired ones are swept first, then an arbitrary live
// one is forgotten, which only lets that client start again at the
// announced interval.
func TestFloodDevicePollClockBounded(t *testing.T) {
	n := floodtest.N(1_000_000, 200_000)
	now := time.Unix(2_000_000_000, 0)
	p := newDevicePolls(maxDevicePolls)
	// 100,000 polls a second of requests that live 1.5 s: both expired
	// and live states must go.
	peak := floodtest.Measure(n, func(i int) {
		at := now.Add(time.Duration(i) * 10 * time.Microsecond)
		p.poll(pendingRequest{Digest: fmt.Sprintf("%064x", i), Interval: time.Second, CreatedAt: at, ExpiresAt: at.Add(1500 * time.Millisecond)}, at)
		if got := p.len(); got > maxDevicePolls {
			t.Fatalf("%d poll states after %d polls, past the cap %d", got, i+1, maxDevicePolls)
		}
	})
	t.Logf("%d poll states (cap %d)", p.len(), maxDevicePolls)
	floodtest.Check(t, "the device and CIBA poll clock", n, peak)
}

// TestFloodCIBALimitsBounded: backchannel authentication requests from a
// million client ids for a million users. Each bucket map keeps at most
// maxThrottleEntries; past them new keys share one overflow bucket, so
// the flood as a whole is still limited.
func TestFloodCIBALimitsBounded(t *testing.T) {
	n := floodtest.N(1_000_000, 250_000)
	clock := &testClock{t: time.Unix(2_000_000_000, 0)}
	user := RateLimit{Burst: 10, Interval: time.Minute}
	l := newCIBALimits(RateLimit{Burst: 100, Interval: time.Second}, user, clock.Now)
	admitted := 0
	peak := floodtest.Measure(n, func(i int) {
		if ok, _ := l.allowClient(fmt.Sprint("client-", i)); ok {
			if ok, _ := l.allowUser(fmt.Sprint("user-", i)); ok {
				admitted++
			}
		}
	})
	l.mu.Lock()
	clients, users := len(l.clients), len(l.users)
	l.mu.Unlock()
	t.Logf("%d client and %d user buckets (cap %d each); %d of %d requests admitted", clients, users, maxThrottleEntries, admitted, n)
	if clients > maxThrottleEntries || users > maxThrottleEntries {
		t.Errorf("%d client and %d user buckets, past the cap %d", clients, users, maxThrottleEntries)
	}
	if want := maxThrottleEntries + user.Burst; admitted != want {
		t.Errorf("%d requests admitted, want one per user bucket and the overflow bucket's burst, %d", admitted, want)
	}
	floodtest.Check(t, "the CIBA rate limits", n, peak)
}
