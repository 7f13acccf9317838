package flows

import (
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

// maxThrottleEntries bounds memory under a spray of usernames or IPs: past
// it, the fullest (least suspicious) buckets are dropped first by prune and
// new keys start limited.
const maxThrottleEntries = 100_000

type throttle struct {
	cfg ThrottleConfig
	now func() time.Time

	mu    sync.Mutex
	users map[string]*rate.Limiter
	ips   map[string]*rate.Limiter
	// inFlight counts attempts whose password is being checked, per key:
	// they hold a token until they succeed or fail, so concurrent guesses
	// cannot all pass the check before the first failure is recorded.
	inFlight map[string]int
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
	return &throttle{cfg: cfg, now: now, users: map[string]*rate.Limiter{}, ips: map[string]*rate.Limiter{}, inFlight: map[string]int{}}
}

func (t *throttle) limiter(m map[string]*rate.Limiter, key string, burst int) *rate.Limiter {
	l, ok := m[key]
	if !ok {
		if len(m) >= maxThrottleEntries {
			// Under a flood, unknown keys share the strictest treatment.
			return rate.NewLimiter(rate.Every(t.cfg.Refill), 1)
		}
		l = rate.NewLimiter(rate.Every(t.cfg.Refill), burst)
		m[key] = l
	}
	return l
}

// Begin admits one sign-in attempt for username from ip, or says how long
// to wait. An admitted attempt holds one token of each bucket until done is
// called with its outcome: a failure spends the token, a success returns it.
func (t *throttle) Begin(username, ip string) (admitted bool, wait time.Duration, done func(success bool)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	userKey, ipKey := "u\x00"+username, "i\x00"+ip
	checks := []struct {
		l   *rate.Limiter
		key string
	}{{t.limiter(t.users, username, t.cfg.PerUser), userKey}, {t.limiter(t.ips, ip, t.cfg.PerIP), ipKey}}
	for _, c := range checks {
		if c.l.TokensAt(now)-float64(t.inFlight[c.key]) < 1 {
			r := c.l.ReserveN(now, t.inFlight[c.key]+1)
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
	t.inFlight[userKey]++
	t.inFlight[ipKey]++
	return true, 0, func(success bool) {
		t.mu.Lock()
		defer t.mu.Unlock()
		for _, c := range checks {
			if t.inFlight[c.key]--; t.inFlight[c.key] <= 0 {
				delete(t.inFlight, c.key)
			}
			if !success {
				c.l.AllowN(t.now(), 1)
			}
		}
	}
}

// prune forgets buckets that have refilled completely.
func (t *throttle) prune() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for _, m := range []map[string]*rate.Limiter{t.users, t.ips} {
		for k, l := range m {
			if l.TokensAt(now) >= float64(l.Burst()) && t.inFlight["u\x00"+k] == 0 && t.inFlight["i\x00"+k] == 0 {
				delete(m, k)
			}
		}
	}
}
