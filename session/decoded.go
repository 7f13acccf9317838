package session

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// decodedCookies remembers the sessions a CookieStore verified and
// decrypted recently, keyed by the exact cookie value. A browser sends the
// same value on every request until the store rewrites it (at most once a
// minute, for the idle timer), and securecookie's verify + decrypt of a
// kilobytes-long value is most of what a signed-in request costs the
// gateway.
//
// Only cookie sessions are remembered. The cookie is the whole session:
// there is nothing on the server to revoke, so a value that decoded once
// decodes the same way until it expires, and the store checks the
// lifetime and idle timeout on every hit as it does after a decode.
// Server-side sessions are never cached: a revoked one is refused on the
// very next request.
//
// Forgetting an entry only costs a decode, so when the cache is full it
// drops expired entries first and then arbitrary ones.
type decodedCookies struct {
	mu      sync.Mutex
	entries map[string]decodedCookie
	cost    int // the sum of the entries' costs
}

type decodedCookie struct {
	d       *Data // a private copy: Load hands out copies of it
	expires time.Time
	cost    int
}

const (
	// decodedTTL bounds how long a decrypted session stays in memory
	// after its last decode.
	decodedTTL = time.Minute
	// maxDecoded bounds the entries: a typical session, a 3.6 KB cookie,
	// holds about 11 KiB with its value, so 11 MiB for them all.
	maxDecoded = 1024
	// maxDecodedCost bounds the memory when the sessions are large: one
	// whose cookie fills all ten chunks (38 KB) holds about 130 KiB, and a
	// flood of such cookies (every rewrite of a session's cookie is a new
	// value) kept 127 MiB under maxDecoded alone.
	maxDecodedCost = 32 << 20
	// decodedCostPerByte is an entry's cost per byte of its cookie value:
	// the value itself, the decoded session and its copy, measured at about
	// 3.5 for large sessions (TestFloodUniqueValidSessionCookiesBounded).
	decodedCostPerByte = 4
)

// get returns a copy of the session raw decoded to, if it is remembered.
func (c *decodedCookies) get(raw string, now time.Time) (*Data, bool) {
	c.mu.Lock()
	e, ok := c.entries[raw]
	c.mu.Unlock()
	if !ok || !now.Before(e.expires) {
		return nil, false
	}
	return e.d.clone(), true
}

// put remembers that raw decoded to d.
func (c *decodedCookies) put(raw string, d *Data, now time.Time) {
	cost := decodedCostPerByte * len(raw) // at most 150 KB: the store writes ten chunks at most
	e := decodedCookie{d: d.clone(), expires: now.Add(decodedTTL), cost: cost}
	raw = strings.Clone(raw) // not a slice of the request's Cookie header
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]decodedCookie{}
	}
	c.removeLocked(raw)
	full := func() bool { return len(c.entries) >= maxDecoded || c.cost+cost > maxDecodedCost }
	if full() {
		for k, old := range c.entries {
			if !now.Before(old.expires) {
				c.removeLocked(k)
			}
		}
		// Still full of live entries: forget some (map order is random).
		for k := range c.entries {
			if !full() {
				break
			}
			c.removeLocked(k)
		}
	}
	c.entries[raw] = e
	c.cost += cost
}

// removeLocked drops raw's entry, if any. The caller holds mu.
func (c *decodedCookies) removeLocked(raw string) {
	if e, ok := c.entries[raw]; ok {
		c.cost -= e.cost
		delete(c.entries, raw)
	}
}

// forget drops what raw decoded to.
func (c *decodedCookies) forget(raw string) {
	c.mu.Lock()
	c.removeLocked(raw)
	c.mu.Unlock()
}

// clone copies d deeply enough that the copy can be changed, claims
// included, without changing d.
func (d *Data) clone() *Data {
	c := *d
	if d.Claims != nil {
		c.Claims = cloneJSON(d.Claims).(map[string]any)
	}
	return &c
}

// cloneJSON copies the containers of a decoded JSON value; strings,
// numbers, booleans and nil are immutable and shared.
func cloneJSON(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = cloneJSON(e)
		}
		return m
	case []any:
		s := make([]any, len(t))
		for i, e := range t {
			s[i] = cloneJSON(e)
		}
		return s
	case []string:
		return slices.Clone(t)
	default:
		return v
	}
}
