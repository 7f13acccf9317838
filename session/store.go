package session

import (
	"errors"
	"net/http"
	"time"
)

// Data is what the login gateway keeps about one signed-in browser.
type Data struct {
	// ID identifies a server-side session; empty for cookie sessions.
	ID string `json:"id,omitempty"`
	// Subject is the provider's sub claim.
	Subject string `json:"sub"`
	// Claims are the ID token's claims (profile, email, groups, custom).
	Claims map[string]any `json:"claims,omitempty"`
	// IDToken, AccessToken and RefreshToken are the provider's tokens.
	IDToken      string `json:"idt,omitempty"`
	AccessToken  string `json:"at,omitempty"`
	RefreshToken string `json:"rt,omitempty"`
	// TokenExpiry is when AccessToken expires; zero when unknown.
	TokenExpiry time.Time `json:"exp,omitempty"`
	// ProviderSID is the provider's session id (sid claim), for back-channel
	// logout.
	ProviderSID string `json:"psid,omitempty"`
	// CreatedAt is when the user signed in; the session ends at
	// CreatedAt + lifetime whatever happens.
	CreatedAt time.Time `json:"iat"`
	// LastSeen is the last request time, refreshed at most once a minute,
	// for the idle timeout.
	LastSeen time.Time `json:"seen"`
}

// ErrNoSession means the request carries no usable session: none at all,
// or one that is tampered, foreign, expired or idle.
var ErrNoSession = errors.New("session: no valid session")

// Store loads and saves gateway sessions. The cookie store keeps the whole
// session in encrypted cookies; a server-side store keeps only an id there.
type Store interface {
	// Load returns the request's session or an error wrapping ErrNoSession.
	Load(r *http.Request) (*Data, error)
	// Save writes the session (a new cookie value) to the response.
	Save(w http.ResponseWriter, r *http.Request, d *Data) error
	// Clear ends the session and expires its cookies.
	Clear(w http.ResponseWriter, r *http.Request, d *Data) error
	// Owns reports whether cookieName is one of the store's cookies, so the
	// gateway can strip them from upstream requests.
	Owns(cookieName string) bool
}

// CookieStore keeps the whole session in encrypted, authenticated cookies,
// chunked when large.
type CookieStore struct {
	codec *Codec
	opts  CookieOptions
	// Lifetime and IdleTimeout bound a session; zero disables the bound.
	Lifetime, IdleTimeout time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time

	decoded *decodedCookies // nil: decode every time
}

// NewCookieStore returns a cookie session store. The codec's own max age
// is the lifetime, so an old cookie is refused by its timestamp too.
func NewCookieStore(opts CookieOptions, lifetime, idle time.Duration, secrets ...[]byte) (*CookieStore, error) {
	codec, err := NewCodec("gateway session "+opts.Name, lifetime, secrets...)
	if err != nil {
		return nil, err
	}
	return &CookieStore{codec: codec, opts: opts, Lifetime: lifetime, IdleTimeout: idle, Now: time.Now, decoded: &decodedCookies{}}, nil
}

// decodedMargin keeps a remembered session from answering in the last
// moments of its lifetime: there the codec's own check of the cookie's
// timestamp (whole seconds, taken when the cookie was written) might
// refuse a value that live still accepts, so those requests decode.
const decodedMargin = 2 * time.Second

// Load implements Store. A cookie value it decoded within the last minute
// is not decrypted again (see decodedCookies); lifetime and idle timeout
// are checked on every request.
func (s *CookieStore) Load(r *http.Request) (*Data, error) {
	now := s.Now()
	if s.decoded != nil {
		// Remembered values came from ReadChunked: one the request spells
		// out as it is needs no check of its bytes (see readRawChunks).
		if raw, ok := readRawChunks(r, s.opts); ok {
			if d, ok := s.remembered(raw, now); ok {
				return s.ifLive(d, now)
			}
		}
	}
	raw, err := ReadChunked(r, s.opts)
	if err != nil {
		return nil, ErrNoSession
	}
	if s.decoded != nil {
		if d, ok := s.remembered(raw, now); ok {
			return s.ifLive(d, now)
		}
	}
	d := new(Data)
	if err := s.codec.Decode(s.opts.Name, raw, d); err != nil {
		return nil, errors.Join(ErrNoSession, err)
	}
	if !s.live(d, now) {
		return nil, ErrNoSession
	}
	if s.decoded != nil {
		s.decoded.put(raw, d, now)
	}
	return d, nil
}

// remembered returns the session raw decoded to within the last minute,
// unless its lifetime is about to end.
func (s *CookieStore) remembered(raw string, now time.Time) (*Data, bool) {
	d, ok := s.decoded.get(raw, now)
	if !ok || (s.Lifetime > 0 && now.Sub(d.CreatedAt) > s.Lifetime-decodedMargin) {
		return nil, false
	}
	return d, true
}

func (s *CookieStore) ifLive(d *Data, now time.Time) (*Data, error) {
	if !s.live(d, now) {
		return nil, ErrNoSession
	}
	return d, nil
}

func (s *CookieStore) live(d *Data, now time.Time) bool {
	if s.Lifetime > 0 && now.Sub(d.CreatedAt) > s.Lifetime {
		return false
	}
	if s.IdleTimeout > 0 && now.Sub(d.LastSeen) > s.IdleTimeout {
		return false
	}
	return true
}

// Save implements Store.
func (s *CookieStore) Save(w http.ResponseWriter, r *http.Request, d *Data) error {
	enc, err := s.codec.Encode(s.opts.Name, d)
	if err != nil {
		return err
	}
	return WriteChunked(w, r, s.opts, enc)
}

// Clear implements Store.
func (s *CookieStore) Clear(w http.ResponseWriter, r *http.Request, _ *Data) error {
	if raw, err := ReadChunked(r, s.opts); err == nil && s.decoded != nil {
		s.decoded.forget(raw) // signed out: no need to keep its tokens in memory
	}
	Clear(w, r, s.opts)
	return nil
}

// Owns implements Store.
func (s *CookieStore) Owns(cookieName string) bool { return IsChunkOf(s.opts, cookieName) }

// Interface guard
var _ Store = (*CookieStore)(nil)
