package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/portcullis-gw/portcullis/store"
)

// --- backchannel authentication requests (CIBA) ---

// pendingKey is the per-subject index key of a pending request: ordered by
// subject, then creation, so a user's requests list oldest first.
func pendingKey(r *store.CIBARequest) []byte {
	k := make([]byte, 0, len(r.Subject)+1+8+len(r.ID))
	k = append(k, r.Subject...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint64(k, timeKey(r.CreatedAt))
	return append(k, r.ID...)
}

// timeKey orders instants as 8 big-endian bytes.
func timeKey(t time.Time) uint64 {
	if t.IsZero() || t.UnixNano() < 0 {
		return 0
	}
	return uint64(t.UnixNano())
}

func dueKey(n *store.CIBANotification) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(n.ID)), timeKey(n.NextAttemptAt))
	return append(k, n.ID...)
}

// putRaw stores an index entry with an expiry envelope.
func putRaw(tx *bolt.Tx, bucket, key []byte, v any, expiresAt time.Time) error {
	raw, err := encode(v, expiresAt)
	if err != nil {
		return err
	}
	return tx.Bucket(bucket).Put(key, raw)
}

// PutCIBARequest implements store.Store.
func (s *Store) PutCIBARequest(_ context.Context, r *store.CIBARequest, maxPending int, notes ...*store.CIBANotification) error {
	if r.Digest == "" || r.ID == "" || r.Subject == "" {
		return errors.New("store: a CIBA request needs a digest, an id and a subject")
	}
	if r.CodeExpiresAt.IsZero() || r.ExpiresAt.Before(r.CodeExpiresAt) {
		return errors.New("store: a CIBA request needs a CodeExpiresAt, and an ExpiresAt not before it")
	}
	for _, n := range notes {
		if n.ID == "" {
			return errors.New("store: a CIBA notification needs an id")
		}
	}
	return s.update(func(tx *bolt.Tx) error {
		now := s.now()
		if tx.Bucket(bucketCIBA).Get([]byte(r.Digest)) != nil || tx.Bucket(bucketCIBAIDs).Get([]byte(r.ID)) != nil {
			return store.ErrConflict
		}
		for _, n := range notes {
			if tx.Bucket(bucketCIBANotes).Get([]byte(n.ID)) != nil {
				return store.ErrConflict
			}
		}
		if maxPending > 0 {
			prefix := append([]byte(r.Subject), 0)
			c := tx.Bucket(bucketCIBAPending).Cursor()
			live := 0
			// Stops at the limit: the cost is bounded by maxPending, not by
			// how many requests the user has.
			for k, raw := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && live < maxPending; k, raw = c.Next() {
				if store.Live(expiryOf(raw), now) {
					live++
				}
			}
			if live >= maxPending {
				return store.ErrLimitReached
			}
		}
		if err := put(tx, bucketCIBA, r.Digest, r, r.ExpiresAt); err != nil {
			return err
		}
		if err := put(tx, bucketCIBAIDs, r.ID, r.Digest, r.ExpiresAt); err != nil {
			return err
		}
		if err := putRaw(tx, bucketCIBAPending, pendingKey(r), r.Digest, r.CodeExpiresAt); err != nil {
			return err
		}
		for _, n := range notes {
			if err := putNote(tx, n); err != nil {
				return err
			}
		}
		return nil
	})
}

// GetCIBARequest implements store.Store.
func (s *Store) GetCIBARequest(_ context.Context, digest string) (*store.CIBARequest, error) {
	return getOne[store.CIBARequest](s, bucketCIBA, digest)
}

// getByID reads the request with id in tx.
func getByID(tx *bolt.Tx, id string, now time.Time) (*store.CIBARequest, error) {
	var digest string
	if err := get(tx, bucketCIBAIDs, id, now, &digest); err != nil {
		return nil, err
	}
	r := new(store.CIBARequest)
	if err := get(tx, bucketCIBA, digest, now, r); err != nil {
		return nil, err
	}
	// Checked anyway, so that a damaged index never hands out another
	// request.
	if r.ID != id {
		return nil, store.ErrNotFound
	}
	return r, nil
}

// GetCIBARequestByID implements store.Store.
func (s *Store) GetCIBARequestByID(_ context.Context, id string) (*store.CIBARequest, error) {
	var out *store.CIBARequest
	err := s.view(func(tx *bolt.Tx) (err error) {
		out, err = getByID(tx, id, s.now())
		return err
	})
	return out, err
}

// ListCIBARequests implements store.Store.
func (s *Store) ListCIBARequests(_ context.Context, subject string) ([]*store.CIBARequest, error) {
	var out []*store.CIBARequest
	err := s.view(func(tx *bolt.Tx) error {
		out = nil
		now := s.now()
		var prefix []byte
		if subject != "" {
			prefix = append([]byte(subject), 0)
		}
		c := tx.Bucket(bucketCIBAPending).Cursor()
		for k, raw := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, raw = c.Next() {
			if !store.Live(expiryOf(raw), now) {
				continue
			}
			var digest string
			if err := decodeEnvelope(raw, &digest); err != nil {
				return err
			}
			r := new(store.CIBARequest)
			if err := get(tx, bucketCIBA, digest, now, r); errors.Is(err, store.ErrNotFound) {
				continue
			} else if err != nil {
				return err
			}
			if r.Status == store.CIBAPending && store.Live(r.CodeExpiresAt, now) && (subject == "" || r.Subject == subject) {
				out = append(out, r)
			}
		}
		return nil
	})
	if subject == "" {
		slices.SortStableFunc(out, func(a, b *store.CIBARequest) int { return a.CreatedAt.Compare(b.CreatedAt) })
	}
	return out, err
}

// DecideCIBARequest implements store.Store.
func (s *Store) DecideCIBARequest(_ context.Context, id string, dec store.CIBADecision, result *store.CIBANotification) (*store.CIBARequest, error) {
	return transitionOnce(s, func(tx *bolt.Tx, now time.Time) (*store.CIBARequest, error) {
		r, err := getByID(tx, id, now)
		if err != nil {
			return nil, err
		}
		if !store.Live(r.CodeExpiresAt, now) || r.Subject != dec.Subject {
			return nil, store.ErrNotFound
		}
		if r.Status != store.CIBAPending {
			return r, store.ErrAlreadyUsed
		}
		decided := *r
		decided.Status = store.CIBADenied
		if dec.Approved {
			decided.Status = store.CIBAApproved
		}
		decided.AuthTime, decided.SessionID, decided.DecidedVia, decided.DecidedAt = dec.AuthTime, dec.SessionID, dec.Via, dec.At
		return &decided, settleCIBA(tx, r, &decided, result)
	})
}

// settleCIBA writes a decided request, drops it from the pending index with
// its expiry notification, and queues the result notification if any.
func settleCIBA(tx *bolt.Tx, r, decided *store.CIBARequest, result *store.CIBANotification) error {
	if err := put(tx, bucketCIBA, r.Digest, decided, r.ExpiresAt); err != nil {
		return err
	}
	if err := tx.Bucket(bucketCIBAPending).Delete(pendingKey(r)); err != nil {
		return err
	}
	if r.ExpiryNotificationID != "" {
		if err := deleteNote(tx, r.ExpiryNotificationID); err != nil {
			return err
		}
	}
	if result == nil {
		return nil
	}
	if tx.Bucket(bucketCIBANotes).Get([]byte(result.ID)) != nil {
		return store.ErrConflict
	}
	return putNote(tx, result)
}

// TakeCIBARequest implements store.Store.
func (s *Store) TakeCIBARequest(_ context.Context, digest string) (*store.CIBARequest, error) {
	return takeApproved(s, bucketCIBA, digest, store.CIBAApproved, store.CIBAIssued,
		func(r *store.CIBARequest) (*string, time.Time, time.Time) {
			return &r.Status, r.CodeExpiresAt, r.ExpiresAt
		})
}

// --- the CIBA notification outbox ---

func putNote(tx *bolt.Tx, n *store.CIBANotification) error {
	if err := put(tx, bucketCIBANotes, n.ID, n, n.ExpiresAt); err != nil {
		return err
	}
	return putRaw(tx, bucketCIBADue, dueKey(n), n.ID, n.ExpiresAt)
}

// deleteNote removes a notification and its due entry, expired or not.
func deleteNote(tx *bolt.Tx, id string) error {
	raw := tx.Bucket(bucketCIBANotes).Get([]byte(id))
	if raw == nil {
		return nil
	}
	prev := new(store.CIBANotification)
	if err := decodeEnvelope(raw, prev); err != nil {
		return err
	}
	if err := tx.Bucket(bucketCIBADue).Delete(dueKey(prev)); err != nil {
		return err
	}
	return tx.Bucket(bucketCIBANotes).Delete([]byte(id))
}

func decodeEnvelope(raw []byte, v any) error {
	if len(raw) < 8 {
		return errors.New("store: truncated record")
	}
	return json.Unmarshal(raw[8:], v)
}

// GetCIBANotification implements store.Store.
func (s *Store) GetCIBANotification(_ context.Context, id string) (*store.CIBANotification, error) {
	return getOne[store.CIBANotification](s, bucketCIBANotes, id)
}

// ListDueCIBANotifications implements store.Store.
func (s *Store) ListDueCIBANotifications(_ context.Context, due time.Time, limit int) ([]*store.CIBANotification, error) {
	var out []*store.CIBANotification
	err := s.view(func(tx *bolt.Tx) error {
		out = nil
		now := s.now()
		until := timeKey(due)
		c := tx.Bucket(bucketCIBADue).Cursor()
		for k, raw := c.First(); k != nil && len(out) < limit; k, raw = c.Next() {
			if len(k) < 8 || binary.BigEndian.Uint64(k[:8]) > until {
				break
			}
			if !store.Live(expiryOf(raw), now) {
				continue
			}
			n := new(store.CIBANotification)
			if err := get(tx, bucketCIBANotes, string(k[8:]), now, n); errors.Is(err, store.ErrNotFound) {
				continue
			} else if err != nil {
				return err
			}
			out = append(out, n)
		}
		return nil
	})
	return out, err
}

// UpdateCIBANotification implements store.Store.
func (s *Store) UpdateCIBANotification(_ context.Context, n *store.CIBANotification) error {
	return s.update(func(tx *bolt.Tx) error {
		prev := new(store.CIBANotification)
		if err := get(tx, bucketCIBANotes, n.ID, s.now(), prev); err != nil {
			return err
		}
		if err := tx.Bucket(bucketCIBADue).Delete(dueKey(prev)); err != nil {
			return err
		}
		return putNote(tx, n)
	})
}

// DeleteCIBANotification implements store.Store.
func (s *Store) DeleteCIBANotification(_ context.Context, id string) error {
	return s.update(func(tx *bolt.Tx) error { return deleteNote(tx, id) })
}
