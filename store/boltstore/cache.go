package boltstore

import "sync"

// maxCachedRecords bounds each record cache; past it, records are read
// from the file as before.
const maxCachedRecords = 10_000

// recordCache keeps decoded clients and APIs, which every token request
// reads and few requests write: a map look-up and a copy instead of a read
// transaction and a JSON decode. One process owns the file and every write
// passes through this Store, so the cache is exact: a write drops the
// entry after it commits, and a reader that raced the write does not put
// back what it read before (gen).
type recordCache[T any] struct {
	clone func(*T) *T
	mu    sync.RWMutex
	m     map[string]*T
	gen   uint64 // bumped by every write
}

func newRecordCache[T any](clone func(*T) *T) *recordCache[T] {
	return &recordCache[T]{clone: clone, m: map[string]*T{}}
}

// get returns the caller's own copy of the record under key, or the
// generation to hand to add after reading the file.
func (c *recordCache[T]) get(key string) (*T, uint64, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if v, ok := c.m[key]; ok {
		return c.clone(v), 0, true
	}
	return nil, c.gen, false
}

// add keeps a copy of v, read from the file at generation gen, unless a
// write came in between.
func (c *recordCache[T]) add(key string, v *T, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen && len(c.m) < maxCachedRecords {
		c.m[key] = c.clone(v)
	}
}

// changed forgets key after a write to it committed (or failed).
func (c *recordCache[T]) changed(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key)
	c.gen++
}
