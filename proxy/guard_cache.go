package proxy

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"
	"unsafe"
)

// ttlCache is a bounded map from token hashes to answers that expire. It
// never grows past max entries: when full, an expired entry or else an
// arbitrary one is dropped (random eviction: O(1), and whoever fills the
// cache cannot choose what goes). Expired entries are never returned and
// are swept once a minute.
type ttlCache[V any] struct {
	mu  sync.RWMutex
	max int
	m   map[[32]byte]ttlEntry[V]
}

type ttlEntry[V any] struct {
	v   V
	exp time.Time
}

func newTTLCache[V any](max int) *ttlCache[V] {
	return &ttlCache[V]{max: max, m: make(map[[32]byte]ttlEntry[V])}
}

// tokenKey is the cache key of a token: caches never hold tokens, and
// lookups cost one hash. The token's bytes are hashed in place (Sum256
// only reads them), saving a copy of every token on every request.
func tokenKey(token string) [32]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

// get returns the live entry for k.
func (c *ttlCache[V]) get(k [32]byte, now time.Time) (V, bool) {
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if !ok || !now.Before(e.exp) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// put stores v for k until exp.
func (c *ttlCache[V]) put(k [32]byte, v V, exp, now time.Time) {
	if !now.Before(exp) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		c.evict(now)
	}
	c.m[k] = ttlEntry[V]{v: v, exp: exp}
}

// evict drops one entry: the first expired one among the few it looks at,
// else the first it saw. Map iteration starts at a random place.
func (c *ttlCache[V]) evict(now time.Time) {
	var victim [32]byte
	seen := 0
	for k, e := range c.m {
		if !now.Before(e.exp) {
			delete(c.m, k)
			return
		}
		if seen == 0 {
			victim = k
		}
		if seen++; seen == 8 {
			break
		}
	}
	delete(c.m, victim)
}

// sweepExpired drops every expired entry.
func (c *ttlCache[V]) sweepExpired(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		if !now.Before(e.exp) {
			delete(c.m, k)
		}
	}
}

func (c *ttlCache[V]) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// sweep collects expired cache entries in the background, so that memory
// held by answers nobody asks for again is given back.
func (g *Guard) sweep(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			now := g.now()
			g.verified.sweepExpired(now)
			g.introspected.sweepExpired(now)
			g.inactive.sweepExpired(now)
		}
	}
}
