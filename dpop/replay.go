package dpop

import (
	"container/heap"
	"errors"
	"sync"
	"time"
)

// DefaultReplayEntries is the size of a Verifier's private replay cache:
// about 330 proofs a second sustained over the default five-minute window,
// some 10 MiB when full.
const DefaultReplayEntries = 100_000

// Replay cache outcomes.
var (
	// ErrReplayed means the key was recorded before and is still live.
	ErrReplayed = errors.New("dpop: proof already used")
	// ErrReplayCacheFull means every slot holds a live entry, so the cache
	// cannot promise to recognise a replay of a new proof: it refuses it.
	ErrReplayCacheFull = errors.New("dpop: replay cache full")
)

// ReplayCache remembers keys (hashed proof jti values) until a given time.
// It is bounded and safe for concurrent use; expiry is enforced on every
// read, and expired entries are collected as new ones arrive.
//
// When it is full of live entries it fails closed: new proofs are refused
// (ErrReplayCacheFull) until the oldest expire. Evicting a live entry
// instead would let an attacker flood the cache to push out a proof it
// captured and then replay it. Size it for the peak number of proofs per
// MaxAge window; a flood then costs availability, never a replay, and is
// for a rate limiter in front to absorb.
type ReplayCache struct {
	mu      sync.Mutex
	max     int
	until   map[string]int64 // key → expiry, Unix nanoseconds
	expires expiryHeap
}

// NewReplayCache returns a cache of at most maxEntries live keys
// (DefaultReplayEntries when maxEntries <= 0).
func NewReplayCache(maxEntries int) *ReplayCache {
	if maxEntries <= 0 {
		maxEntries = DefaultReplayEntries
	}
	return &ReplayCache{max: maxEntries, until: map[string]int64{}}
}

// Seen records key as live until until and reports whether it was already
// there and not expired. It also reports true, refusing the proof, when the
// cache is full of live entries.
func (c *ReplayCache) Seen(key string, until, now time.Time) bool {
	return c.Record(key, until, now) != nil
}

// Record is Seen with the reason: nil when key is new and now recorded,
// ErrReplayed when it is already there, ErrReplayCacheFull when there is
// no room. A key whose until is not after now is not kept: it could not
// pass any check it guards anyway.
func (c *ReplayCache) Record(key string, until, now time.Time) error {
	u, n := until.UnixNano(), now.UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.collect(n)
	if _, ok := c.until[key]; ok {
		return ErrReplayed
	}
	if u <= n {
		return nil
	}
	if len(c.until) >= c.max {
		return ErrReplayCacheFull
	}
	c.until[key] = u
	heap.Push(&c.expires, replayEntry{until: u, key: key})
	return nil
}

// Len is the number of live entries at now.
func (c *ReplayCache) Len(now time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.collect(now.UnixNano())
	return len(c.until)
}

// collect drops every entry that expired at or before now. After it, every
// key left in the map is live.
func (c *ReplayCache) collect(now int64) {
	for len(c.expires) > 0 && c.expires[0].until <= now {
		e := heap.Pop(&c.expires).(replayEntry)
		delete(c.until, e.key)
	}
}

type replayEntry struct {
	until int64
	key   string
}

// expiryHeap orders entries by expiry, soonest first.
type expiryHeap []replayEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].until < h[j].until }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(replayEntry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = replayEntry{}
	*h = old[:len(old)-1]
	return e
}
