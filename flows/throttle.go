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
	return &throttle{cfg: cfg, now: now, users: map[string]*rate.Limiter{}, ips: map[string]*rate.Limiter{}}
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

// Blocked reports whether attempts for username from ip must be refused
// now, and for how long.
func (t *throttle) Blocked(username, ip string) (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var wait time.Duration
	for _, l := range []*rate.Limiter{t.limiter(t.users, username, t.cfg.PerUser), t.limiter(t.ips, ip, t.cfg.PerIP)} {
		if l.TokensAt(now) < 1 {
			r := l.ReserveN(now, 1)
			wait = max(wait, r.DelayFrom(now))
			r.CancelAt(now)
		}
	}
	return wait > 0, wait
}

// Failed records a failed attempt.
func (t *throttle) Failed(username, ip string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.limiter(t.users, username, t.cfg.PerUser).AllowN(now, 1)
	t.limiter(t.ips, ip, t.cfg.PerIP).AllowN(now, 1)
}

// prune forgets buckets that have refilled completely.
func (t *throttle) prune() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for _, m := range []map[string]*rate.Limiter{t.users, t.ips} {
		for k, l := range m {
			if l.TokensAt(now) >= float64(l.Burst()) {
				delete(m, k)
			}
		}
	}
}
