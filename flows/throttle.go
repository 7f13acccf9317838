package flows

import (
	"crypto/sha256"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ThrottleConfig bounds failed sign-in attempts: each failure spends one
// token from the user's and the client IP's bucket; an empty bucket refuses
// attempts until it refills.
type ThrottleConfig struct {
	// PerUser is the burst of failures allowed per username. Default: 5.
	PerUser int
	// PerIP is the burst of failures allowed per client IP. Default: 20.
	PerIP int
	// Refill is how often one failure is forgiven. Default: 1 minute.
	Refill time.Duration
}

// maxThrottleEntries bounds memory under a spray of usernames or IPs: a
// map of buckets that reaches it is first swept of the buckets that have
// refilled completely (forgetting one loses nothing: a new bucket starts
// full), at most once per throttleSweepInterval; if it is still full, new
// keys share one overflow bucket of the same size.
const maxThrottleEntries = 100_000

// throttleSweepInterval is the least time between two sweeps of a full
// map, so that a flood does not pay for a sweep on every attempt.
const throttleSweepInterval = time.Second

// throttleKey is a bucket's key: a truncated SHA-256 of the kind and the
// username or IP, so an entry costs the same whatever the length of what
// was typed (the login page takes usernames of up to its 64 KiB form).
type throttleKey [16]byte

func newThrottleKey(kind byte, s string) throttleKey {
	h := sha256.New()
	h.Write([]byte{kind, 0})
	h.Write([]byte(s))
	var k throttleKey
	copy(k[:], h.Sum(nil))
	return k
}

type throttle struct {
	cfg ThrottleConfig
	now func() time.Time

	mu    sync.Mutex
	users map[throttleKey]*rate.Limiter
	ips   map[throttleKey]*rate.Limiter
	// overflowUser and overflowIP are shared by the usernames and IPs that
	// find their map full. Failing closed: a full map must not hand out
	// fresh buckets (every guess would pass), nor drop a bucket that still
	// counts failures (a spray would wipe a victim's count); the price is
	// that, while a flood lasts, users without a bucket of their own share
	// its limit.
	overflowUser, overflowIP *rate.Limiter
	// swept is when a full map was last swept.
	swept time.Time
	// inFlight counts attempts whose password is being checked, per
	// bucket: they hold a token until they succeed or fail, so concurrent
	// guesses cannot all pass the check before the first failure is
	// recorded.
	inFlight map[*rate.Limiter]int
}

func newThrottle(cfg ThrottleConfig, now func() time.Time) *throttle {
	if cfg.PerUser <= 0 {
		cfg.PerUser = 5
	}
	if cfg.PerIP <= 0 {
		cfg.PerIP = 20
	}
	if cfg.Refill <= 0 {
		cfg.Refill = time.Minute
	}
	return &throttle{cfg: cfg, now: now,
		users: map[throttleKey]*rate.Limiter{}, ips: map[throttleKey]*rate.Limiter{},
		overflowUser: rate.NewLimiter(rate.Every(cfg.Refill), cfg.PerUser),
		overflowIP:   rate.NewLimiter(rate.Every(cfg.Refill), cfg.PerIP),
		inFlight:     map[*rate.Limiter]int{}}
}

// limiter returns key's bucket in m, or overflow when m is full of
// buckets still counting failures. The caller holds mu.
func (t *throttle) limiter(m map[throttleKey]*rate.Limiter, key throttleKey, burst int, overflow *rate.Limiter, now time.Time) *rate.Limiter {
	if l, ok := m[key]; ok {
		return l
	}
	if len(m) >= maxThrottleEntries && now.Sub(t.swept) >= throttleSweepInterval {
		t.pruneLocked(now)
		t.swept = now
	}
	if len(m) >= maxThrottleEntries {
		return overflow
	}
	l := rate.NewLimiter(rate.Every(t.cfg.Refill), burst)
	m[key] = l
	return l
}

// Begin admits one sign-in attempt for username from ip, or says how long
// to wait. An admitted attempt holds one token of each bucket until done is
// called with its outcome: a failure spends the token, a success returns it.
func (t *throttle) Begin(username, ip string) (admitted bool, wait time.Duration, done func(success bool)) {
	userKey, ipKey := newThrottleKey('u', username), newThrottleKey('i', ip)
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	checks := [2]*rate.Limiter{
		t.limiter(t.users, userKey, t.cfg.PerUser, t.overflowUser, now),
		t.limiter(t.ips, ipKey, t.cfg.PerIP, t.overflowIP, now),
	}
	for _, l := range checks {
		if l.TokensAt(now)-float64(t.inFlight[l]) < 1 {
			r := l.ReserveN(now, t.inFlight[l]+1)
			if r.OK() {
				wait = max(wait, r.DelayFrom(now))
				r.CancelAt(now)
			} else {
				wait = max(wait, t.cfg.Refill)
			}
		}
	}
	if wait > 0 {
		return false, wait, func(bool) {}
	}
	for _, l := range checks {
		t.inFlight[l]++
	}
	return true, 0, func(success bool) {
		t.mu.Lock()
		defer t.mu.Unlock()
		for _, l := range checks {
			if t.inFlight[l]--; t.inFlight[l] <= 0 {
				delete(t.inFlight, l)
			}
			if !success {
				l.AllowN(t.now(), 1)
			}
		}
	}
}

// prune forgets buckets that have refilled completely.
func (t *throttle) prune() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pruneLocked(t.now())
}

func (t *throttle) pruneLocked(now time.Time) {
	for _, m := range []map[throttleKey]*rate.Limiter{t.users, t.ips} {
		for k, l := range m {
			if l.TokensAt(now) >= float64(l.Burst()) && t.inFlight[l] == 0 {
				delete(m, k)
			}
		}
	}
}
