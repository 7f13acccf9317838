package flows

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// cibaLimits are the rate limits of the backchannel authentication
// endpoint: one token bucket per client (a misbehaving client cannot flood
// the server) and one per user, shared by every client (no one can
// push-bomb a user with approval requests). Buckets live in bounded maps;
// when one is full, new keys share a single bucket of the same size, so
// memory stays bounded and a flood of keys is still limited as a whole.
type cibaLimits struct {
	client, user RateLimit
	now          func() time.Time

	mu       sync.Mutex
	clients  map[string]*rate.Limiter
	users    map[string]*rate.Limiter
	overflow map[bool]*rate.Limiter // by "is a user bucket"
}

func newCIBALimits(client, user RateLimit, now func() time.Time) *cibaLimits {
	return &cibaLimits{client: client, user: user, now: now,
		clients: map[string]*rate.Limiter{}, users: map[string]*rate.Limiter{}, overflow: map[bool]*rate.Limiter{}}
}

func newBucket(l RateLimit) *rate.Limiter {
	return rate.NewLimiter(rate.Every(l.Interval/time.Duration(l.Burst)), l.Burst)
}

// allow spends one token of key's bucket, or says how long until one is
// available.
func (c *cibaLimits) allow(isUser bool, key string) (bool, time.Duration) {
	m, cfg := c.clients, c.client
	if isUser {
		m, cfg = c.users, c.user
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := m[key]
	if !ok {
		if len(m) >= maxThrottleEntries {
			if l = c.overflow[isUser]; l == nil {
				l = newBucket(cfg)
				c.overflow[isUser] = l
			}
		} else {
			l = newBucket(cfg)
			m[key] = l
		}
	}
	now := c.now()
	r := l.ReserveN(now, 1)
	if !r.OK() {
		return false, cfg.Interval
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// allowClient spends one request of client id.
func (c *cibaLimits) allowClient(id string) (bool, time.Duration) { return c.allow(false, id) }

// allowUser spends one request for user subject.
func (c *cibaLimits) allowUser(subject string) (bool, time.Duration) { return c.allow(true, subject) }

// prune forgets buckets that have refilled completely.
func (c *cibaLimits) prune() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for _, m := range []map[string]*rate.Limiter{c.clients, c.users} {
		for k, l := range m {
			if l.TokensAt(now) >= float64(l.Burst()) {
				delete(m, k)
			}
		}
	}
}
