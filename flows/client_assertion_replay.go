package flows

import (
	"container/heap"
	"context"
	"crypto/sha256"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis-gw/portcullis/store"
)

// Replay protection of client assertions (OIDC Core §9: "These tokens MUST
// only be used once"). The set of used (client, jti) pairs lives in memory
// and is authoritative within the process; it is also written to the store
// (store.RevokeJTI), off the request path, so that a restart does not
// reopen the window: a jti missing from memory is looked up in the store
// (a read, no fsync).
const (
	// defaultMaxUsedAssertions bounds the live jtis kept in memory (~60
	// bytes each, 16 MiB in all). An entry lives until its exp plus the
	// leeway, at most 6 minutes, so this allows ~700 new assertions per
	// second sustained (more when clients mint shorter-lived ones). When
	// every entry is live, new assertions are refused (fail closed).
	defaultMaxUsedAssertions = 1 << 18
	// usedAssertionQueue bounds the jtis waiting to be written. When the
	// store falls that far behind, writes are dropped (and logged): memory
	// still refuses the replay, only a restart in the next few minutes
	// would not.
	usedAssertionQueue = 8192
	// usedAssertionWriters write concurrently so that the store can batch
	// them into one transaction (boltstore uses bbolt's Batch).
	usedAssertionWriters = 8
	// usedAssertionFlushTimeout bounds the final write of queued jtis when
	// Background stops.
	usedAssertionFlushTimeout = 5 * time.Second
	// assertionJTIPrefix keeps assertion ids apart from the jtis of
	// revoked access tokens in the same store records.
	assertionJTIPrefix = "client_assertion:"
)

// usedAssertions is the set of client assertion ids seen until they
// expire.
type usedAssertions struct {
	store store.Store
	log   *zap.Logger
	now   func() time.Time
	limit int

	mu     sync.Mutex
	seen   map[usedKey]struct{}
	expiry expiryHeap

	queue   chan usedAssertion
	dropped atomic.Uint64 // writes given up because the queue was full
	refused atomic.Uint64 // assertions refused because memory was full
}

// usedKey is a truncated SHA-256 of the store key: fixed-size map keys
// whatever the client_id and jti lengths; 128 bits make a collision (a
// false replay) negligible.
type usedKey [16]byte

// usedAssertion is one jti waiting to be written to the store.
type usedAssertion struct {
	key   string
	until time.Time
}

func newUsedAssertions(st store.Store, now func() time.Time, log *zap.Logger) *usedAssertions {
	return &usedAssertions{
		store: st, log: log, now: now, limit: defaultMaxUsedAssertions,
		seen:  map[usedKey]struct{}{},
		queue: make(chan usedAssertion, usedAssertionQueue),
	}
}

var (
	errAssertionReplayed = errInvalidClient("client_assertion was already used: mint a new assertion with a fresh jti for every request")
	errAssertionsBusy    = &Error{Code: "temporarily_unavailable", Status: http.StatusServiceUnavailable,
		Description: "too many client assertions are live; retry in a few seconds"}
)

// use records the assertion jti of clientID as used until until, or
// reports that it was used before.
func (u *usedAssertions) use(ctx context.Context, clientID, jti string, until time.Time) *Error {
	key := assertionJTIPrefix + clientID + "\x00" + jti
	sum := sha256.Sum256([]byte(key))
	var k usedKey
	copy(k[:], sum[:])
	now := u.now()

	u.mu.Lock()
	u.expire(now)
	_, seen := u.seen[k]
	u.mu.Unlock()
	if seen {
		return errAssertionReplayed
	}
	// Not in memory: it may have been used before this process started.
	revoked, err := u.store.IsJTIRevoked(ctx, key)
	if err != nil {
		return errServer(err)
	}
	if revoked {
		return errAssertionReplayed
	}

	u.mu.Lock()
	if _, seen := u.seen[k]; seen {
		// The same assertion raced this one in and won.
		u.mu.Unlock()
		return errAssertionReplayed
	}
	if len(u.seen) >= u.limit {
		u.mu.Unlock()
		if n := u.refused.Add(1); n%1024 == 1 {
			u.log.Warn("the client assertion replay cache is full of live entries: refusing new assertions",
				zap.Int("limit", u.limit), zap.Uint64("refused", n))
		}
		return errAssertionsBusy
	}
	u.seen[k] = struct{}{}
	heap.Push(&u.expiry, expiringKey{key: k, until: until})
	u.mu.Unlock()

	select {
	case u.queue <- usedAssertion{key: key, until: until}:
	default:
		if n := u.dropped.Add(1); n%1024 == 1 {
			u.log.Warn("the store is behind: used client assertion ids are kept in memory only", zap.Uint64("dropped", n))
		}
	}
	return nil
}

// expire forgets the entries that are no longer live. The caller holds mu.
func (u *usedAssertions) expire(now time.Time) {
	for len(u.expiry) > 0 && !u.expiry[0].until.After(now) {
		e := heap.Pop(&u.expiry).(expiringKey)
		delete(u.seen, e.key)
	}
}

// persist writes used assertion ids to the store until ctx is done, then
// writes what is still queued (for at most usedAssertionFlushTimeout).
func (u *usedAssertions) persist(ctx context.Context) {
	var wg sync.WaitGroup
	for range usedAssertionWriters {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case a := <-u.queue:
					u.write(ctx, a)
				}
			}
		})
	}
	wg.Wait()
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), usedAssertionFlushTimeout)
	defer cancel()
	for flushCtx.Err() == nil {
		select {
		case a := <-u.queue:
			u.write(flushCtx, a)
		default:
			return
		}
	}
}

func (u *usedAssertions) write(ctx context.Context, a usedAssertion) {
	if !a.until.After(u.now()) {
		return // expired already: nothing left to refuse
	}
	if err := u.store.RevokeJTI(ctx, a.key, a.until); err != nil {
		u.log.Error("recording a used client assertion id", zap.Error(err))
	}
}

// expiringKey is one entry of the expiry heap.
type expiringKey struct {
	key   usedKey
	until time.Time
}

// expiryHeap orders entries by expiry, earliest first (container/heap).
type expiryHeap []expiringKey

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiringKey)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
