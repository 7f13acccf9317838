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
type decodedCookies struct {
	mu      sync.Mutex
	entries map[string]decodedCookie
}

type decodedCookie struct {
	d       *Data // a private copy: Load hands out copies of it
	expires time.Time
}

const (
	// decodedTTL bounds how long a decrypted session stays in memory
	// after its last decode.
	decodedTTL = time.Minute
	// maxDecoded bounds the memory: each entry holds the cookie value and
	// the session, a few kilobytes.
	maxDecoded = 1024
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
	e := decodedCookie{d: d.clone(), expires: now.Add(decodedTTL)}
	raw = strings.Clone(raw) // not a slice of the request's Cookie header
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]decodedCookie{}
	}
	if len(c.entries) >= maxDecoded {
		for k, old := range c.entries {
			if !now.Before(old.expires) {
				delete(c.entries, k)
			}
		}
		// Still full of live entries: forget some (map order is random).
		for k := range c.entries {
			if len(c.entries) < maxDecoded {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[raw] = e
}

// forget drops what raw decoded to.
func (c *decodedCookies) forget(raw string) {
	c.mu.Lock()
	delete(c.entries, raw)
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
