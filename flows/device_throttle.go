package flows

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// UserCodeThrottleConfig bounds wrong user codes entered on the device
// verification page. RFC 8628 §5.1: "it is recommended that the server
// rate-limit user code attempts." Each code that is not found spends one
// token from the client IP's bucket and one from the bucket all IPs share;
// an empty bucket refuses entries until it refills. Correct codes cost
// nothing.
//
// With the defaults, an attacker spread over many IPs gets at most about
// 86,400 guesses a day against a space of 20^8 ≈ 2.6·10^10 codes: with 100
// live codes at any time, one hit in about 3,000 days; against one given
// code, about 700 guesses in its 10 minutes, a chance of 2^-25. (§5.1's
// worked example allows 5 attempts per code lifetime for 2^-32; tighten
// Global and GlobalRefill for that.) The price of the shared bucket is that
// such an attack makes everyone wait a second or so per entry while it
// lasts.
type UserCodeThrottleConfig struct {
	// PerIP is the burst of wrong codes allowed per client IP. Default: 10.
	PerIP int
	// PerIPRefill is how often one wrong code of an IP is forgiven.
	// Default: 1 minute.
	PerIPRefill time.Duration
	// Global is the burst of wrong codes allowed from all IPs together.
	// Default: 100.
	Global int
	// GlobalRefill is how often one wrong code is forgiven globally.
	// Default: 1 second.
	GlobalRefill time.Duration
}

// userCodeThrottle enforces a UserCodeThrottleConfig. Like the login
// throttle, an admitted entry holds a token of each bucket while the code
// is looked up, so concurrent guesses cannot all pass before the first
// failure is recorded.
type userCodeThrottle struct {
	cfg UserCodeThrottleConfig
	now func() time.Time

	mu     sync.Mutex
	global *rate.Limiter
	ips    map[string]*rate.Limiter
	// inFlight counts admitted entries per IP, and under globalKey for all.
	inFlight map[string]int
}

// globalKey is the inFlight key of the shared bucket: no IP is empty.
const globalKey = ""

func newUserCodeThrottle(cfg UserCodeThrottleConfig, now func() time.Time) *userCodeThrottle {
	if cfg.PerIP <= 0 {
		cfg.PerIP = 10
	}
	if cfg.PerIPRefill <= 0 {
		cfg.PerIPRefill = time.Minute
	}
	if cfg.Global <= 0 {
		cfg.Global = 100
	}
	if cfg.GlobalRefill <= 0 {
		cfg.GlobalRefill = time.Second
	}
	return &userCodeThrottle{
		cfg: cfg, now: now,
		global:   rate.NewLimiter(rate.Every(cfg.GlobalRefill), cfg.Global),
		ips:      map[string]*rate.Limiter{},
		inFlight: map[string]int{},
	}
}

// ipLimiter returns ip's bucket, or nil past maxThrottleEntries: under a
// flood of addresses new ones are held by the global bucket alone.
func (t *userCodeThrottle) ipLimiter(ip string) *rate.Limiter {
	l, ok := t.ips[ip]
	if !ok {
		if len(t.ips) >= maxThrottleEntries {
			return nil
		}
		l = rate.NewLimiter(rate.Every(t.cfg.PerIPRefill), t.cfg.PerIP)
		t.ips[ip] = l
	}
	return l
}

// bucket is one limiter an entry is checked against.
type bucket struct {
	l      *rate.Limiter
	key    string
	refill time.Duration
}

// Begin admits one user code entry from ip, or says how long to wait. An
// admitted entry must call done with whether the code was found: a wrong
// code spends its tokens, a right one gives them back.
func (t *userCodeThrottle) Begin(ip string) (admitted bool, wait time.Duration, done func(found bool)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	checks := []bucket{{t.global, globalKey, t.cfg.GlobalRefill}}
	if l := t.ipLimiter(ip); l != nil {
		checks = append(checks, bucket{l, ip, t.cfg.PerIPRefill})
	}
	for _, c := range checks {
		held := t.inFlight[c.key]
		if c.l.TokensAt(now)-float64(held) >= 1 {
			continue
		}
		if r := c.l.ReserveN(now, held+1); r.OK() {
			wait = max(wait, r.DelayFrom(now))
			r.CancelAt(now)
		} else {
			wait = max(wait, c.refill) // more in flight than the burst
		}
		wait = max(wait, time.Millisecond) // refused: never "try again in 0s"
	}
	if wait > 0 {
		return false, wait, func(bool) {}
	}
	for _, c := range checks {
		t.inFlight[c.key]++
	}
	return true, 0, func(found bool) {
		t.mu.Lock()
		defer t.mu.Unlock()
		for _, c := range checks {
			if t.inFlight[c.key]--; t.inFlight[c.key] <= 0 {
				delete(t.inFlight, c.key)
			}
			if !found {
				c.l.AllowN(t.now(), 1)
			}
		}
	}
}

// prune forgets IP buckets that have refilled completely.
func (t *userCodeThrottle) prune() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for ip, l := range t.ips {
		if l.TokensAt(now) >= float64(l.Burst()) && t.inFlight[ip] == 0 {
			delete(t.ips, ip)
		}
	}
}
