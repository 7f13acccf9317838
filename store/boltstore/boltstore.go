// Package boltstore is the embedded Store backend: one bbolt file, typed
// methods, every write one transaction. Callers never see a bucket or a
// transaction; only the store.Store contract leaves this package.
package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/portcullis-gw/portcullis/store"
)

// Bucket names. Each value is an envelope: 8 bytes of big-endian expiry
// (Unix seconds, at least 1; 0 for none) followed by the record's JSON, so
// Sweep can collect without decoding.
var (
	bucketClients  = []byte("clients")
	bucketUsers    = []byte("users")
	bucketAPIs     = []byte("apis")
	bucketCodes    = []byte("codes")
	bucketGrants   = []byte("grants")
	bucketGrantIdx = []byte("grant_tokens") // grantID \x00 kind digest -> expiry
	bucketRefresh  = []byte("refresh_tokens")
	bucketAccess   = []byte("access_tokens")
	bucketJTI      = []byte("revoked_jti")
	bucketConsents = []byte("consents")
	bucketSessions = []byte("sessions")
	bucketKeys     = []byte("keys")
	bucketSecrets  = []byte("secrets")
	bucketRevoked  = []byte("revoked_grants") // tombstones, see RevokeGrant
	bucketGWSess   = []byte("gateway_sessions")
	bucketDevice   = []byte("device_codes")
	bucketUserCode = []byte("device_user_codes") // user code -> device code digest, until the code expires
	bucketPushed   = []byte("pushed_requests")
	// CIBA: requests by auth_req_id digest; request id -> digest; pending
	// requests by subject \x00 created \x00 id -> digest, until the code
	// expires; the notification outbox by id; and its due index, next
	// attempt (8 bytes) + id -> id.
	bucketCIBA        = []byte("ciba_requests")
	bucketCIBAIDs     = []byte("ciba_request_ids")
	bucketCIBAPending = []byte("ciba_pending")
	bucketCIBANotes   = []byte("ciba_notifications")
	bucketCIBADue     = []byte("ciba_notifications_due")

	allBuckets = [][]byte{bucketClients, bucketUsers, bucketAPIs, bucketCodes,
		bucketGrants, bucketGrantIdx, bucketRefresh, bucketAccess, bucketJTI,
		bucketConsents, bucketSessions, bucketKeys, bucketSecrets, bucketRevoked, bucketGWSess,
		bucketDevice, bucketUserCode, bucketPushed,
		bucketCIBA, bucketCIBAIDs, bucketCIBAPending, bucketCIBANotes, bucketCIBADue}

	// indexBuckets hold index entries, not records: Sweep does not count
	// them.
	indexBuckets = [][]byte{bucketGrantIdx, bucketRevoked, bucketUserCode, bucketCIBAIDs, bucketCIBAPending, bucketCIBADue}
)

const (
	idxRefresh = 'r'
	idxAccess  = 'a'
)

// Store is a store.Store backed by a bbolt file.
type Store struct {
	db  *bolt.DB
	now func() time.Time
	// revoked mirrors bucketJTI: one process owns the file, so every
	// revocation passes through this Store and the copy stays exact.
	revoked *jtiSet
	// clients and apis keep decoded records for the token endpoint.
	clients *recordCache[store.Client]
	apis    *recordCache[store.API]
}

// Open opens (creating when needed) the database at path. The file is
// created 0600: it holds private signing keys and password hashes.
func Open(path string) (*Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating directory for %s: %w", path, err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 10 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("opening bbolt store %s: %w (is another process using it?)", path, err)
	}
	// Concurrent writers (many token requests at once) share one fsync.
	db.MaxBatchDelay = 2 * time.Millisecond
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialising bbolt store %s: %w", path, err)
	}
	s := &Store{db: db, now: time.Now, revoked: newJTISet(),
		clients: newRecordCache((*store.Client).Clone), apis: newRecordCache((*store.API).Clone)}
	if err := s.loadRevoked(); err != nil {
		db.Close()
		return nil, fmt.Errorf("reading revoked token ids from %s: %w", path, err)
	}
	return s, nil
}

// PageWrites reports how many pages write transactions have committed to
// the file so far: a test that an operation did not write to disk reads it
// before and after.
func (s *Store) PageWrites() int64 {
	st := s.db.Stats()
	return st.TxStats.GetWrite()
}

// SetClock replaces the clock used for expiry checks (tests only).
func (s *Store) SetClock(now func() time.Time) { s.now = now }

// Close closes the database file.
func (s *Store) Close() error { return s.db.Close() }

// --- envelope helpers ---

func encode(v any, expiresAt time.Time) ([]byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 8, 8+len(body))
	if !expiresAt.IsZero() {
		// Seconds, not nanoseconds: UnixNano overflows after 2262. Anything
		// at or before the epoch is stored as 1, already expired.
		binary.BigEndian.PutUint64(out, uint64(max(expiresAt.Unix(), 1)))
	}
	return append(out, body...), nil
}

func expiryOf(raw []byte) time.Time {
	if len(raw) < 8 {
		return time.Time{}
	}
	n := binary.BigEndian.Uint64(raw[:8])
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(int64(n), 0)
}

func put(tx *bolt.Tx, bucket []byte, key string, v any, expiresAt time.Time) error {
	raw, err := encode(v, expiresAt)
	if err != nil {
		return err
	}
	return tx.Bucket(bucket).Put([]byte(key), raw)
}

// get decodes the live record under key into v. Expired records are
// ErrNotFound even before Sweep collects them.
func get(tx *bolt.Tx, bucket []byte, key string, now time.Time, v any) error {
	raw := tx.Bucket(bucket).Get([]byte(key))
	if raw == nil || !store.Live(expiryOf(raw), now) {
		return store.ErrNotFound
	}
	return json.Unmarshal(raw[8:], v)
}

func list[T any](tx *bolt.Tx, bucket []byte, now time.Time) ([]*T, error) {
	var out []*T
	err := tx.Bucket(bucket).ForEach(func(_, raw []byte) error {
		if !store.Live(expiryOf(raw), now) {
			return nil
		}
		v := new(T)
		if err := json.Unmarshal(raw[8:], v); err != nil {
			return err
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

func del(tx *bolt.Tx, bucket []byte, key string) error {
	return tx.Bucket(bucket).Delete([]byte(key))
}

func (s *Store) view(fn func(tx *bolt.Tx) error) error { return s.db.View(fn) }

// update runs fn in a write transaction batched with concurrent writers. fn
// may run more than once, so it must only set results, never accumulate.
func (s *Store) update(fn func(tx *bolt.Tx) error) error { return s.db.Batch(fn) }

func getOne[T any](s *Store, bucket []byte, key string) (*T, error) {
	v := new(T)
	err := s.view(func(tx *bolt.Tx) error { return get(tx, bucket, key, s.now(), v) })
	if err != nil {
		return nil, err
	}
	return v, nil
}

// getCached is getOne through a record cache.
func getCached[T any](s *Store, c *recordCache[T], bucket []byte, key string) (*T, error) {
	v, gen, ok := c.get(key)
	if ok {
		return v, nil
	}
	v, err := getOne[T](s, bucket, key)
	if err != nil {
		return nil, err
	}
	c.add(key, v, gen)
	return v, nil
}

func listAll[T any](s *Store, bucket []byte) ([]*T, error) {
	var out []*T
	err := s.view(func(tx *bolt.Tx) (err error) {
		out, err = list[T](tx, bucket, s.now())
		return err
	})
	return out, err
}

func (s *Store) putOne(bucket []byte, key string, v any, exp time.Time) error {
	if key == "" {
		return errors.New("store: empty key")
	}
	return s.update(func(tx *bolt.Tx) error { return put(tx, bucket, key, v, exp) })
}

func (s *Store) delOne(bucket []byte, key string) error {
	return s.update(func(tx *bolt.Tx) error { return del(tx, bucket, key) })
}

// --- clients, users, APIs ---

// PutClient implements store.Store.
func (s *Store) PutClient(_ context.Context, c *store.Client) error {
	defer s.clients.changed(c.ID)
	return s.putOne(bucketClients, c.ID, c, time.Time{})
}

// GetClient implements store.Store.
func (s *Store) GetClient(_ context.Context, id string) (*store.Client, error) {
	return getCached(s, s.clients, bucketClients, id)
}

// ListClients implements store.Store.
func (s *Store) ListClients(context.Context) ([]*store.Client, error) {
	return listAll[store.Client](s, bucketClients)
}

// DeleteClient implements store.Store.
func (s *Store) DeleteClient(_ context.Context, id string) error {
	defer s.clients.changed(id)
	return s.update(func(tx *bolt.Tx) error {
		if err := del(tx, bucketClients, id); err != nil {
			return err
		}
		return s.revokeGrantsWhere(tx, s.now(), func(g *store.Grant) bool { return g.ClientID == id })
	})
}

// PutUser implements store.Store.
func (s *Store) PutUser(_ context.Context, u *store.User) error {
	if u.ID == "" {
		u.ID = u.Username
	}
	if u.ID != u.Username {
		return fmt.Errorf("store: user id %q must equal the username %q (the subject is the username)", u.ID, u.Username)
	}
	return s.putOne(bucketUsers, u.Username, u, time.Time{})
}

// GetUser implements store.Store.
func (s *Store) GetUser(_ context.Context, username string) (*store.User, error) {
	return getOne[store.User](s, bucketUsers, username)
}

// ListUsers implements store.Store.
func (s *Store) ListUsers(context.Context) ([]*store.User, error) {
	return listAll[store.User](s, bucketUsers)
}

// DeleteUser implements store.Store.
func (s *Store) DeleteUser(_ context.Context, username string) error {
	return s.delOne(bucketUsers, username)
}

// PutAPI implements store.Store.
func (s *Store) PutAPI(_ context.Context, a *store.API) error {
	defer s.apis.changed(a.Identifier)
	return s.putOne(bucketAPIs, a.Identifier, a, time.Time{})
}

// GetAPI implements store.Store.
func (s *Store) GetAPI(_ context.Context, identifier string) (*store.API, error) {
	return getCached(s, s.apis, bucketAPIs, identifier)
}

// ListAPIs implements store.Store.
func (s *Store) ListAPIs(context.Context) ([]*store.API, error) {
	return listAll[store.API](s, bucketAPIs)
}

// DeleteAPI implements store.Store.
func (s *Store) DeleteAPI(_ context.Context, identifier string) error {
	defer s.apis.changed(identifier)
	return s.delOne(bucketAPIs, identifier)
}

// --- codes ---

// PutCode implements store.Store.
func (s *Store) PutCode(_ context.Context, c *store.AuthCode) error {
	return s.update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketCodes).Get([]byte(c.Digest)) != nil {
			return store.ErrConflict
		}
		return put(tx, bucketCodes, c.Digest, c, c.ExpiresAt)
	})
}

// TakeCode implements store.Store.
func (s *Store) TakeCode(_ context.Context, digest string) (*store.AuthCode, error) {
	return transitionOnce(s, func(tx *bolt.Tx, now time.Time) (*store.AuthCode, error) {
		c := new(store.AuthCode)
		if err := get(tx, bucketCodes, digest, now, c); err != nil {
			return nil, err
		}
		if c.Used {
			return c, store.ErrAlreadyUsed
		}
		used := *c
		used.Used = true
		// The caller gets the code as it was read, Used false.
		return c, put(tx, bucketCodes, digest, &used, c.ExpiresAt)
	})
}

// --- device authorization requests ---

// PutDeviceCode implements store.Store.
func (s *Store) PutDeviceCode(_ context.Context, d *store.DeviceCode) error {
	if d.Digest == "" || d.UserCode == "" {
		return errors.New("store: a device code needs a digest and a user code")
	}
	if d.CodeExpiresAt.IsZero() || d.ExpiresAt.Before(d.CodeExpiresAt) {
		return errors.New("store: a device code needs a CodeExpiresAt, and an ExpiresAt not before it")
	}
	return s.update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketDevice).Get([]byte(d.Digest)) != nil {
			return store.ErrConflict
		}
		if raw := tx.Bucket(bucketUserCode).Get([]byte(d.UserCode)); raw != nil && store.Live(expiryOf(raw), s.now()) {
			return store.ErrConflict
		}
		if err := put(tx, bucketDevice, d.Digest, d, d.ExpiresAt); err != nil {
			return err
		}
		return put(tx, bucketUserCode, d.UserCode, d.Digest, d.CodeExpiresAt)
	})
}

// GetDeviceCode implements store.Store.
func (s *Store) GetDeviceCode(_ context.Context, digest string) (*store.DeviceCode, error) {
	return getOne[store.DeviceCode](s, bucketDevice, digest)
}

// GetDeviceCodeByUserCode implements store.Store.
func (s *Store) GetDeviceCodeByUserCode(_ context.Context, userCode string) (*store.DeviceCode, error) {
	d := new(store.DeviceCode)
	err := s.view(func(tx *bolt.Tx) error {
		now := s.now()
		var digest string
		if err := get(tx, bucketUserCode, userCode, now, &digest); err != nil {
			return err
		}
		if err := get(tx, bucketDevice, digest, now, d); err != nil {
			return err
		}
		// The index entry and the record are written together and the entry
		// expires with the code; check both anyway, so that a damaged index
		// can never hand out another request.
		if d.UserCode != userCode || !store.Live(d.CodeExpiresAt, now) {
			return store.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// DecideDeviceCode implements store.Store.
func (s *Store) DecideDeviceCode(_ context.Context, digest string, dec store.DeviceDecision) (*store.DeviceCode, error) {
	return transitionOnce(s, func(tx *bolt.Tx, now time.Time) (*store.DeviceCode, error) {
		d := new(store.DeviceCode)
		if err := get(tx, bucketDevice, digest, now, d); err != nil {
			return nil, err
		}
		if !store.Live(d.CodeExpiresAt, now) {
			return nil, store.ErrNotFound
		}
		if d.Status != store.DevicePending {
			return d, store.ErrAlreadyUsed
		}
		decided := *d
		decided.Status = store.DeviceDenied
		if dec.Approved {
			decided.Status = store.DeviceApproved
		}
		decided.Subject, decided.AuthTime, decided.SessionID, decided.DecidedAt = dec.Subject, dec.AuthTime, dec.SessionID, dec.At
		return &decided, put(tx, bucketDevice, digest, &decided, d.ExpiresAt)
	})
}

// TakeDeviceCode implements store.Store.
func (s *Store) TakeDeviceCode(_ context.Context, digest string) (*store.DeviceCode, error) {
	return takeApproved(s, bucketDevice, digest, store.DeviceApproved, store.DeviceIssued,
		func(d *store.DeviceCode) (*string, time.Time, time.Time) {
			return &d.Status, d.CodeExpiresAt, d.ExpiresAt
		})
}

// --- pushed authorization requests ---

// PutPushedRequest implements store.Store.
func (s *Store) PutPushedRequest(_ context.Context, p *store.PushedRequest) error {
	return s.update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketPushed).Get([]byte(p.Digest)) != nil {
			return store.ErrConflict
		}
		return put(tx, bucketPushed, p.Digest, p, p.ExpiresAt)
	})
}

// TakePushedRequest implements store.Store.
func (s *Store) TakePushedRequest(_ context.Context, digest string) (*store.PushedRequest, error) {
	var out *store.PushedRequest
	err := s.update(func(tx *bolt.Tx) error {
		p := new(store.PushedRequest)
		out = nil
		if err := get(tx, bucketPushed, digest, s.now(), p); err != nil {
			return err
		}
		out = p
		return del(tx, bucketPushed, digest)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// --- grants and the tokens that hang off them ---

func idxKey(grantID string, kind byte, digest string) []byte {
	k := make([]byte, 0, len(grantID)+2+len(digest))
	k = append(k, grantID...)
	k = append(k, 0, kind)
	return append(k, digest...)
}

func putRefresh(tx *bolt.Tx, rt *store.RefreshToken) error {
	if err := put(tx, bucketRefresh, rt.Digest, rt, rt.ExpiresAt); err != nil {
		return err
	}
	return putIdx(tx, rt.GrantID, idxRefresh, rt.Digest, rt.ExpiresAt)
}

func putAccess(tx *bolt.Tx, at *store.AccessToken) error {
	if err := put(tx, bucketAccess, at.Digest, at, at.ExpiresAt); err != nil {
		return err
	}
	return putIdx(tx, at.GrantID, idxAccess, at.Digest, at.ExpiresAt)
}

func putIdx(tx *bolt.Tx, grantID string, kind byte, digest string, exp time.Time) error {
	if grantID == "" {
		return nil
	}
	raw, _ := encode(struct{}{}, exp)
	return tx.Bucket(bucketGrantIdx).Put(idxKey(grantID, kind, digest), raw)
}

// grantLive reports whether the grant exists and has not expired.
func grantLive(tx *bolt.Tx, id string, now time.Time) bool {
	raw := tx.Bucket(bucketGrants).Get([]byte(id))
	return raw != nil && store.Live(expiryOf(raw), now)
}

// PutGrant implements store.Store.
func (s *Store) PutGrant(_ context.Context, g *store.Grant) error {
	return s.putOne(bucketGrants, g.ID, g, g.ExpiresAt)
}

// GetGrant implements store.Store.
func (s *Store) GetGrant(_ context.Context, id string) (*store.Grant, error) {
	return getOne[store.Grant](s, bucketGrants, id)
}

// IssueGrant implements store.Store.
func (s *Store) IssueGrant(_ context.Context, g *store.Grant, rt *store.RefreshToken, at *store.AccessToken) error {
	return s.update(func(tx *bolt.Tx) error {
		if raw := tx.Bucket(bucketRevoked).Get([]byte(g.ID)); raw != nil && store.Live(expiryOf(raw), s.now()) {
			return store.ErrRevoked
		}
		if err := put(tx, bucketGrants, g.ID, g, g.ExpiresAt); err != nil {
			return err
		}
		if rt != nil {
			if err := putRefresh(tx, rt); err != nil {
				return err
			}
		}
		if at != nil {
			return putAccess(tx, at)
		}
		return nil
	})
}

// tombstoneTTL is how long a revoked grant id stays refused when the grant
// itself was not stored yet: far longer than any code redemption takes.
const tombstoneTTL = time.Hour

func (s *Store) revokeGrant(tx *bolt.Tx, id string, now time.Time) error {
	exp := now.Add(tombstoneTTL)
	if raw := tx.Bucket(bucketGrants).Get([]byte(id)); raw != nil {
		if ge := expiryOf(raw); ge.After(exp) {
			exp = ge
		}
	}
	if err := put(tx, bucketRevoked, id, struct{}{}, exp); err != nil {
		return err
	}
	if err := del(tx, bucketGrants, id); err != nil {
		return err
	}
	prefix := append([]byte(id), 0)
	c := tx.Bucket(bucketGrantIdx).Cursor()
	var keys [][]byte
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, k := range keys {
		kind, digest := k[len(prefix)], k[len(prefix)+1:]
		bucket := bucketRefresh
		if kind == idxAccess {
			bucket = bucketAccess
			if jti, ok := bytes.CutPrefix(digest, []byte(store.SelfContainedPrefix)); ok {
				// A JWT cannot be deleted: remember its jti as revoked
				// until it would have expired.
				if raw := tx.Bucket(bucketAccess).Get(digest); raw != nil {
					exp := expiryOf(raw)
					mark, _ := encode(struct{}{}, exp)
					if err := tx.Bucket(bucketJTI).Put(append([]byte(nil), jti...), mark); err != nil {
						return err
					}
					s.revoked.add(string(jti), exp)
				}
			}
		}
		if err := tx.Bucket(bucket).Delete(digest); err != nil {
			return err
		}
		if err := tx.Bucket(bucketGrantIdx).Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// RevokeGrant implements store.Store.
func (s *Store) RevokeGrant(_ context.Context, id string) error {
	if id == "" {
		return nil
	}
	return s.update(func(tx *bolt.Tx) error { return s.revokeGrant(tx, id, s.now()) })
}

// RevokeGrantsOfSubject implements store.Store.
func (s *Store) RevokeGrantsOfSubject(_ context.Context, subject, clientID string) (int, error) {
	var n int
	err := s.update(func(tx *bolt.Tx) error {
		n = 0
		return s.revokeGrantsWhere(tx, s.now(), func(g *store.Grant) bool {
			match := g.Subject == subject && (clientID == "" || g.ClientID == clientID)
			if match {
				n++
			}
			return match
		})
	})
	return n, err
}

// revokeGrantsWhere revokes every live grant that match selects.
func (s *Store) revokeGrantsWhere(tx *bolt.Tx, now time.Time, match func(*store.Grant) bool) error {
	grants, err := list[store.Grant](tx, bucketGrants, now)
	if err != nil {
		return err
	}
	for _, g := range grants {
		if !match(g) {
			continue
		}
		if err := s.revokeGrant(tx, g.ID, now); err != nil {
			return err
		}
	}
	return nil
}

// GetRefreshToken implements store.Store.
func (s *Store) GetRefreshToken(_ context.Context, digest string) (*store.RefreshToken, error) {
	rt := new(store.RefreshToken)
	err := s.view(func(tx *bolt.Tx) error {
		now := s.now()
		if err := get(tx, bucketRefresh, digest, now, rt); err != nil {
			return err
		}
		if !grantLive(tx, rt.GrantID, now) {
			return store.ErrNotFound
		}
		if rt.Used {
			return store.ErrAlreadyUsed
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, store.ErrAlreadyUsed) {
			return rt, err
		}
		return nil, err
	}
	return rt, nil
}

// RotateRefreshToken implements store.Store.
func (s *Store) RotateRefreshToken(_ context.Context, oldDigest string, next *store.RefreshToken, at *store.AccessToken) (*store.RefreshToken, error) {
	var old *store.RefreshToken
	err := s.update(func(tx *bolt.Tx) error {
		now := s.now()
		rt := new(store.RefreshToken)
		old = nil
		if err := get(tx, bucketRefresh, oldDigest, now, rt); err != nil {
			return err
		}
		if !grantLive(tx, rt.GrantID, now) {
			return store.ErrNotFound
		}
		old = rt
		if rt.Used {
			return store.ErrAlreadyUsed
		}
		used := *rt
		used.Used = true
		if err := put(tx, bucketRefresh, oldDigest, &used, rt.ExpiresAt); err != nil {
			return err
		}
		if err := putRefresh(tx, next); err != nil {
			return err
		}
		if at != nil {
			return putAccess(tx, at)
		}
		return nil
	})
	switch {
	case errors.Is(err, store.ErrAlreadyUsed):
		return old, err
	case err != nil:
		return nil, err
	}
	return old, nil
}

// PutAccessToken implements store.Store.
func (s *Store) PutAccessToken(_ context.Context, t *store.AccessToken) error {
	return s.update(func(tx *bolt.Tx) error { return putAccess(tx, t) })
}

// GetAccessToken implements store.Store.
func (s *Store) GetAccessToken(_ context.Context, digest string) (*store.AccessToken, error) {
	at := new(store.AccessToken)
	err := s.view(func(tx *bolt.Tx) error {
		now := s.now()
		if err := get(tx, bucketAccess, digest, now, at); err != nil {
			return err
		}
		if at.GrantID != "" && !grantLive(tx, at.GrantID, now) {
			return store.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return at, nil
}

// DeleteAccessToken implements store.Store.
func (s *Store) DeleteAccessToken(_ context.Context, digest string) error {
	return s.delOne(bucketAccess, digest)
}

// RevokeJTI implements store.Store.
func (s *Store) RevokeJTI(_ context.Context, jti string, expiresAt time.Time) error {
	if jti == "" {
		return errors.New("boltstore: empty jti")
	}
	s.revoked.add(jti, expiresAt)
	return s.putOne(bucketJTI, jti, struct{}{}, expiresAt)
}

// IsJTIRevoked implements store.Store. It reads the in-memory copy of the
// revoked ids, not the file: API guards ask it on every request.
func (s *Store) IsJTIRevoked(_ context.Context, jti string) (bool, error) {
	return s.revoked.has(jti, s.now()), nil
}

// --- consents, sessions, keys, secrets ---

func consentKey(subject, clientID string) string { return subject + "\x00" + clientID }

// PutConsent implements store.Store.
func (s *Store) PutConsent(_ context.Context, c *store.Consent) error {
	return s.putOne(bucketConsents, consentKey(c.Subject, c.ClientID), c, c.ExpiresAt)
}

// GetConsent implements store.Store.
func (s *Store) GetConsent(_ context.Context, subject, clientID string) (*store.Consent, error) {
	return getOne[store.Consent](s, bucketConsents, consentKey(subject, clientID))
}

// DeleteConsent implements store.Store.
func (s *Store) DeleteConsent(_ context.Context, subject, clientID string) error {
	return s.delOne(bucketConsents, consentKey(subject, clientID))
}

// PutSession implements store.Store.
func (s *Store) PutSession(_ context.Context, sess *store.Session) error {
	return s.putOne(bucketSessions, sess.ID, sess, sess.ExpiresAt)
}

// GetSession implements store.Store.
func (s *Store) GetSession(_ context.Context, id string) (*store.Session, error) {
	return getOne[store.Session](s, bucketSessions, id)
}

// DeleteSession implements store.Store.
func (s *Store) DeleteSession(_ context.Context, id string) error {
	return s.delOne(bucketSessions, id)
}

// ListGrants implements store.Store.
func (s *Store) ListGrants(_ context.Context, subject string) ([]*store.Grant, error) {
	all, err := listAll[store.Grant](s, bucketGrants)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, g := range all {
		if g.Subject == subject {
			out = append(out, g)
		}
	}
	return out, nil
}

// PutGatewaySession implements store.Store.
func (s *Store) PutGatewaySession(_ context.Context, gs *store.GatewaySession) error {
	return s.putOne(bucketGWSess, gs.ID, gs, gs.ExpiresAt)
}

// GetGatewaySession implements store.Store.
func (s *Store) GetGatewaySession(_ context.Context, id string) (*store.GatewaySession, error) {
	return getOne[store.GatewaySession](s, bucketGWSess, id)
}

// DeleteGatewaySession implements store.Store.
func (s *Store) DeleteGatewaySession(_ context.Context, id string) error {
	return s.delOne(bucketGWSess, id)
}

// ListGatewaySessions implements store.Store.
func (s *Store) ListGatewaySessions(_ context.Context, subject string) ([]*store.GatewaySession, error) {
	all, err := listAll[store.GatewaySession](s, bucketGWSess)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, gs := range all {
		if subject == "" || gs.Subject == subject {
			out = append(out, gs)
		}
	}
	return out, nil
}

// DeleteGatewaySessions implements store.Store.
func (s *Store) DeleteGatewaySessions(_ context.Context, issuer, subject, sid string) (int, error) {
	if subject == "" && sid == "" {
		return 0, errors.New("store: a subject or a sid is required")
	}
	var n int
	err := s.update(func(tx *bolt.Tx) error {
		n = 0
		sessions, err := list[store.GatewaySession](tx, bucketGWSess, s.now())
		if err != nil {
			return err
		}
		for _, gs := range sessions {
			if (issuer != "" && gs.Issuer != issuer) || (subject != "" && gs.Subject != subject) || (sid != "" && gs.SID != sid) {
				continue
			}
			if err := del(tx, bucketGWSess, gs.ID); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// PutKey implements store.Store.
func (s *Store) PutKey(_ context.Context, k *store.Key) error {
	return s.putOne(bucketKeys, k.ID, k, k.ExpiresAt)
}

// ListKeys implements store.Store.
func (s *Store) ListKeys(context.Context) ([]*store.Key, error) {
	return listAll[store.Key](s, bucketKeys)
}

// DeleteKey implements store.Store.
func (s *Store) DeleteKey(_ context.Context, id string) error {
	return s.delOne(bucketKeys, id)
}

// GetOrCreateSecret implements store.Store.
func (s *Store) GetOrCreateSecret(_ context.Context, name string, create func() ([]byte, error)) ([]byte, error) {
	var secret []byte
	err := s.view(func(tx *bolt.Tx) error {
		if raw := tx.Bucket(bucketSecrets).Get([]byte(name)); raw != nil {
			secret = append([]byte(nil), raw...)
		}
		return nil
	})
	if err != nil || secret != nil {
		return secret, err
	}
	fresh, err := create()
	if err != nil {
		return nil, err
	}
	// Update, not Batch: the first writer wins and everyone reads its value.
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSecrets)
		if raw := b.Get([]byte(name)); raw != nil {
			secret = append([]byte(nil), raw...)
			return nil
		}
		secret = fresh
		return b.Put([]byte(name), fresh)
	})
	return secret, err
}

// Sweep implements store.Store.
func (s *Store) Sweep(_ context.Context, now time.Time) (int, error) {
	removed := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		removed = 0
		for _, name := range allBuckets {
			b := tx.Bucket(name)
			var dead [][]byte
			err := b.ForEach(func(k, raw []byte) error {
				if bytes.Equal(name, bucketSecrets) {
					return nil
				}
				if !store.Live(expiryOf(raw), now) {
					dead = append(dead, append([]byte(nil), k...))
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, k := range dead {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			if !slices.ContainsFunc(indexBuckets, func(b []byte) bool { return bytes.Equal(b, name) }) {
				removed += len(dead) // index entries are not records
			}
		}
		return nil
	})
	s.revoked.sweep(now)
	return removed, err
}

// Interface guard.
var _ store.Store = (*Store)(nil)
