// Package keys owns the authorization server's signing keys: it generates
// them on first start, keeps them in the store, rotates them on a schedule,
// signs JWTs with the current one and publishes every key that may still
// have live tokens in the JWKS. All JOSE work goes through go-jose v4.
package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/portcullis-gw/portcullis/store"
)

// SupportedAlgs are the signing algorithms a key can be generated for.
var SupportedAlgs = []string{"ES256", "RS256", "PS256", "EdDSA"}

// Options configure a Manager.
type Options struct {
	// Alg is the algorithm new keys are generated for. Default: ES256.
	Alg string
	// RotateEvery is how long a key signs before a new one takes over.
	// Default: 30 days.
	RotateEvery time.Duration
	// RetainFor is how long a retired key stays in the JWKS after it stops
	// signing: at least the longest lifetime of a token it signed.
	// Default: 24 hours.
	RetainFor time.Duration
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Manager signs tokens and serves the key set. It is safe for concurrent
// use; the hot paths (Sign, JWKS, Verify) only take a read lock.
type Manager struct {
	store store.Store
	opts  Options

	mu      sync.RWMutex
	current *signingKey
	public  jose.JSONWebKeySet
	jwks    []byte
	algs    []jose.SignatureAlgorithm
}

type signingKey struct {
	record  *store.Key
	jwk     jose.JSONWebKey
	signers sync.Map // typ -> jose.Signer
}

// New loads the keys from the store, generating the first one when there
// is none usable for opts.Alg.
func New(ctx context.Context, st store.Store, opts Options) (*Manager, error) {
	if opts.Alg == "" {
		opts.Alg = "ES256"
	}
	if !validAlg(opts.Alg) {
		return nil, fmt.Errorf("signing algorithm %q is not supported: use one of %v", opts.Alg, SupportedAlgs)
	}
	if opts.RotateEvery <= 0 {
		opts.RotateEvery = 30 * 24 * time.Hour
	}
	if opts.RetainFor <= 0 {
		opts.RetainFor = 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Manager{store: st, opts: opts}
	if err := m.Refresh(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

func validAlg(alg string) bool {
	for _, a := range SupportedAlgs {
		if a == alg {
			return true
		}
	}
	return false
}

// Refresh reloads the keys from the store and generates a new signing key
// when none of the configured algorithm is active any more. Call it on a
// schedule; it is cheap when nothing changed.
func (m *Manager) Refresh(ctx context.Context) error {
	records, err := m.store.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("loading signing keys: %w", err)
	}
	now := m.opts.Now()
	var active *store.Key
	for _, k := range records {
		if k.Alg == m.opts.Alg && now.Before(k.ActiveUntil) && (active == nil || k.CreatedAt.After(active.CreatedAt)) {
			active = k
		}
	}
	if active == nil {
		k, err := m.generate(now)
		if err != nil {
			return err
		}
		if err := m.store.PutKey(ctx, k); err != nil {
			return fmt.Errorf("storing new signing key: %w", err)
		}
		records = append(records, k)
		active = k
	}
	return m.install(records, active)
}

// Rotate retires the current key now (it stays published for RetainFor)
// and makes a fresh one current.
func (m *Manager) Rotate(ctx context.Context) (kid string, err error) {
	now := m.opts.Now()
	m.mu.RLock()
	cur := m.current
	m.mu.RUnlock()
	if cur != nil {
		retired := *cur.record
		retired.ActiveUntil = now
		retired.ExpiresAt = now.Add(m.opts.RetainFor)
		if err := m.store.PutKey(ctx, &retired); err != nil {
			return "", fmt.Errorf("retiring key %s: %w", retired.ID, err)
		}
	}
	if err := m.Refresh(ctx); err != nil {
		return "", err
	}
	return m.CurrentKeyID(), nil
}

func (m *Manager) generate(now time.Time) (*store.Key, error) {
	var priv crypto.Signer
	var err error
	switch m.opts.Alg {
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "RS256", "PS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		return nil, fmt.Errorf("generating %s key: %w", m.opts.Alg, err)
	}
	jwk := jose.JSONWebKey{Key: priv, Algorithm: m.opts.Alg, Use: "sig"}
	pub := jwk.Public()
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("computing key id: %w", err)
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(thumb)
	raw, err := jwk.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encoding key: %w", err)
	}
	active := now.Add(m.opts.RotateEvery)
	return &store.Key{
		ID: jwk.KeyID, Alg: m.opts.Alg, PrivateJWK: raw, CreatedAt: now,
		ActiveUntil: active, ExpiresAt: active.Add(m.opts.RetainFor),
	}, nil
}

func (m *Manager) install(records []*store.Key, active *store.Key) error {
	sort.Slice(records, func(i, j int) bool { return records[i].CreatedAt.After(records[j].CreatedAt) })
	var set jose.JSONWebKeySet
	var current *signingKey
	algSeen := map[string]bool{}
	var algs []jose.SignatureAlgorithm
	for _, rec := range records {
		var jwk jose.JSONWebKey
		if err := json.Unmarshal(rec.PrivateJWK, &jwk); err != nil {
			return fmt.Errorf("decoding stored key %s: %w", rec.ID, err)
		}
		set.Keys = append(set.Keys, jwk.Public())
		if !algSeen[rec.Alg] {
			algSeen[rec.Alg] = true
			algs = append(algs, jose.SignatureAlgorithm(rec.Alg))
		}
		if rec.ID == active.ID {
			current = &signingKey{record: rec, jwk: jwk}
		}
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.current != nil && m.current.record.ID == current.record.ID {
		current = m.current // keep the cached signers
		current.record = active
	}
	m.current, m.public, m.jwks, m.algs = current, set, jwks, algs
	return nil
}

// CurrentKeyID returns the kid new tokens are signed with.
func (m *Manager) CurrentKeyID() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.current.record.ID
}

// Alg returns the algorithm new tokens are signed with.
func (m *Manager) Alg() string { return m.opts.Alg }

// Algs returns every algorithm a published key uses.
func (m *Manager) Algs() []jose.SignatureAlgorithm {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.algs
}

// JWKS returns the published key set as JSON. The slice is shared: do not
// modify it.
func (m *Manager) JWKS() []byte {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.jwks
}

// Sign serialises claims as a compact JWS with the current key, with the
// given typ header ("JWT", "at+jwt", "logout+jwt").
func (m *Manager) Sign(claims any, typ string) (string, error) {
	m.mu.RLock()
	cur := m.current
	m.mu.RUnlock()
	s, ok := cur.signers.Load(typ)
	if !ok {
		opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ))
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(cur.record.Alg), Key: cur.jwk}, opts)
		if err != nil {
			return "", fmt.Errorf("building signer: %w", err)
		}
		s, _ = cur.signers.LoadOrStore(typ, signer)
	}
	// The claims are marshalled once, with encoding/json, and signed by
	// go-jose as a plain JWS payload: go-jose's jwt builder would marshal
	// them, decode them into a map and marshal the map again — a fifth of
	// a token's cost at the token endpoint, for the same bytes.
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encoding claims: %w", err)
	}
	obj, err := s.(jose.Signer).Sign(payload)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

// ErrUnknownKey means a token names a kid that is not (or no longer) in
// the key set.
var ErrUnknownKey = errors.New("token signed by an unknown key")

// Verify checks a compact JWS signed by one of our keys and returns the
// parsed token and its typ header. Only the algorithms of published keys
// are accepted (never "none", never HMAC). Claims are not validated here.
func (m *Manager) Verify(token string, out any) (typ string, err error) {
	m.mu.RLock()
	algs, set := m.algs, m.public
	m.mu.RUnlock()
	parsed, err := jwt.ParseSigned(token, algs)
	if err != nil {
		return "", fmt.Errorf("malformed token: %w", err)
	}
	if len(parsed.Headers) != 1 {
		return "", errors.New("token must have exactly one signature")
	}
	h := parsed.Headers[0]
	keys := set.Key(h.KeyID)
	if len(keys) == 0 {
		return "", ErrUnknownKey
	}
	if keys[0].Algorithm != h.Algorithm {
		return "", fmt.Errorf("token alg %s does not match key %s", h.Algorithm, h.KeyID)
	}
	if err := parsed.Claims(keys[0].Key, out); err != nil {
		return "", fmt.Errorf("bad signature: %w", err)
	}
	t, _ := h.ExtraHeaders[jose.HeaderType].(string)
	return t, nil
}
