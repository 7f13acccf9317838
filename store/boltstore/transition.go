package boltstore

import (
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/portcullis-gw/portcullis/store"
)

// --- decide once, take once ---

// transitionOnce runs step, which reads a record and writes its next state,
// in one write transaction, so the move happens at most once however many
// callers race for it. step returns the record as it now stands. The caller
// gets it beside store.ErrAlreadyUsed or store.ErrNotApproved (the flows
// answer from the record: who decided, which client asked) and nil beside
// any other error.
func transitionOnce[T any](s *Store, step func(tx *bolt.Tx, now time.Time) (*T, error)) (*T, error) {
	var out *T
	err := s.update(func(tx *bolt.Tx) (err error) {
		out, err = step(tx, s.now())
		return err
	})
	if err != nil && !errors.Is(err, store.ErrAlreadyUsed) && !errors.Is(err, store.ErrNotApproved) {
		return nil, err
	}
	return out, err
}

// takeApproved moves the approved request under digest to issued, once: the
// take-once step that device codes and CIBA requests share. fields points
// at the record's status and gives its two expiries. An issued request is
// store.ErrAlreadyUsed for as long as the record lives, past its code's
// expiry, so a replay is told apart from a late poll; an undecided or
// denied one is store.ErrNotApproved.
func takeApproved[T any](s *Store, bucket []byte, digest, approved, issued string,
	fields func(*T) (status *string, codeExpiresAt, expiresAt time.Time)) (*T, error) {
	return transitionOnce(s, func(tx *bolt.Tx, now time.Time) (*T, error) {
		r := new(T)
		if err := get(tx, bucket, digest, now, r); err != nil {
			return nil, err
		}
		status, codeExpiresAt, expiresAt := fields(r)
		switch {
		case *status == issued:
			return r, store.ErrAlreadyUsed
		case !store.Live(codeExpiresAt, now):
			return nil, store.ErrNotFound
		case *status != approved:
			return r, store.ErrNotApproved
		}
		next := *r
		status, _, _ = fields(&next)
		*status = issued
		return &next, put(tx, bucket, digest, &next, expiresAt)
	})
}
