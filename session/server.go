package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"time"
)

// Backend keeps server-side sessions. Keys are digests of the ids in the
// cookies, so a copy of the database does not let anyone ride a session.
type Backend interface {
	SaveSession(ctx context.Context, key string, d *Data, expiresAt time.Time) error
	// LoadSession returns the session, or an error when there is none
	// (never a stale one).
	LoadSession(ctx context.Context, key string) (*Data, error)
	DeleteSession(ctx context.Context, key string) error
}

// ServerStore keeps sessions in a Backend and only an encrypted, random id
// in the cookie: sessions can be listed and revoked (back-channel logout),
// and big tokens do not bloat cookies. Nothing is cached: a revoked
// session is refused on the very next request.
type ServerStore struct {
	backend Backend
	codec   *Codec
	opts    CookieOptions
	// Lifetime and IdleTimeout bound a session; zero disables the bound.
	Lifetime, IdleTimeout time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// NewServerStore returns a server-side session store over backend.
func NewServerStore(backend Backend, opts CookieOptions, lifetime, idle time.Duration, secrets ...[]byte) (*ServerStore, error) {
	codec, err := NewCodec("gateway session id "+opts.Name, lifetime, secrets...)
	if err != nil {
		return nil, err
	}
	return &ServerStore{backend: backend, codec: codec, opts: opts, Lifetime: lifetime, IdleTimeout: idle, Now: time.Now}, nil
}

// Key is the backend key for a session id: its SHA-256, hex.
func Key(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// Load implements Store.
func (s *ServerStore) Load(r *http.Request) (*Data, error) {
	raw, err := ReadChunked(r, s.opts)
	if err != nil {
		return nil, ErrNoSession
	}
	var id string
	if err := s.codec.Decode(s.opts.Name, raw, &id); err != nil || id == "" {
		return nil, errors.Join(ErrNoSession, err)
	}
	d, err := s.backend.LoadSession(r.Context(), Key(id))
	if err != nil {
		return nil, errors.Join(ErrNoSession, err)
	}
	now := s.Now()
	if (s.Lifetime > 0 && now.Sub(d.CreatedAt) > s.Lifetime) || (s.IdleTimeout > 0 && now.Sub(d.LastSeen) > s.IdleTimeout) {
		return nil, ErrNoSession
	}
	d.ID = id
	return d, nil
}

// Save implements Store.
func (s *ServerStore) Save(w http.ResponseWriter, r *http.Request, d *Data) error {
	id := d.ID
	if id == "" {
		b := make([]byte, 32)
		rand.Read(b)
		id = base64.RawURLEncoding.EncodeToString(b)
	}
	stored := *d
	stored.ID = "" // the raw id never reaches the backend
	exp := d.CreatedAt.Add(s.Lifetime)
	if s.Lifetime <= 0 {
		exp = time.Time{}
	}
	if err := s.backend.SaveSession(r.Context(), Key(id), &stored, exp); err != nil {
		return err
	}
	if d.ID == id {
		return nil // the cookie already names this session
	}
	enc, err := s.codec.Encode(s.opts.Name, id)
	if err != nil {
		return err
	}
	d.ID = id
	return WriteChunked(w, r, s.opts, enc)
}

// Clear implements Store.
func (s *ServerStore) Clear(w http.ResponseWriter, r *http.Request, d *Data) error {
	Clear(w, r, s.opts)
	if d == nil || d.ID == "" {
		return nil
	}
	return s.backend.DeleteSession(r.Context(), Key(d.ID))
}

// Owns implements Store.
func (s *ServerStore) Owns(cookieName string) bool { return IsChunkOf(s.opts, cookieName) }

// Interface guard
var _ Store = (*ServerStore)(nil)
