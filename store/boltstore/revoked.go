package boltstore

import (
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/portcullis-gw/portcullis/store"
)

// jtiSet is the in-memory copy of the revoked token ids (bucketJTI), so
// that IsJTIRevoked — asked by API guards on every request with a JWT — is
// a map look-up rather than a read transaction. Entries go at the expiry of
// the token they name, so the set is bounded by the tokens' lifetimes.
//
// An id is added before its transaction commits: a commit that fails
// leaves a token refused in this process that the caller meant to revoke
// anyway, never one accepted that was revoked.
type jtiSet struct {
	mu sync.RWMutex
	m  map[string]int64 // id → expiry in Unix seconds; 0: never expires
}

func newJTISet() *jtiSet { return &jtiSet{m: map[string]int64{}} }

func (j *jtiSet) add(jti string, exp time.Time) {
	var unix int64
	if !exp.IsZero() {
		unix = max(exp.Unix(), 1)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if e, ok := j.m[jti]; !ok || (e != 0 && (unix == 0 || unix > e)) {
		j.m[jti] = unix
	}
}

// liveUnix is store.Live for an expiry in Unix seconds.
func liveUnix(exp int64, now time.Time) bool {
	return exp == 0 || now.Before(time.Unix(exp, 0))
}

// has reports whether jti is revoked and its token not yet expired.
func (j *jtiSet) has(jti string, now time.Time) bool {
	j.mu.RLock()
	exp, ok := j.m[jti]
	j.mu.RUnlock()
	return ok && liveUnix(exp, now)
}

// sweep drops the ids whose tokens have expired.
func (j *jtiSet) sweep(now time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for jti, exp := range j.m {
		if !liveUnix(exp, now) {
			delete(j.m, jti)
		}
	}
}

// len is the number of ids held, expired or not.
func (j *jtiSet) len() int {
	j.mu.RLock()
	defer j.mu.RUnlock()
	return len(j.m)
}

// loadRevoked fills the copy from the file at open.
func (s *Store) loadRevoked() error {
	now := s.now()
	return s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJTI).ForEach(func(k, raw []byte) error {
			if exp := expiryOf(raw); store.Live(exp, now) {
				s.revoked.add(string(k), exp)
			}
			return nil
		})
	})
}
