package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"
)

const (
	// keyRefreshInterval is the least time between two JWKS fetches: a
	// token naming an unknown kid triggers a fetch at most this often, so
	// a flood of random kids costs the issuer one request per interval.
	keyRefreshInterval = 5 * time.Second
	// keyMaxAge is how long keys are used before they are fetched again in
	// the background, so a key the issuer withdraws stops being trusted.
	keyMaxAge = 15 * time.Minute
)

// keySet is the issuer's JWKS, cached. Keys are kept when a fetch fails
// (the issuer briefly down); an unknown kid triggers a rate-limited fetch.
type keySet struct {
	g   *Guard
	uri string

	mu        sync.RWMutex
	keys      []jose.JSONWebKey
	fetched   time.Time     // last successful fetch
	attempted time.Time     // start of the last fetch
	inflight  chan struct{} // closed when the fetch under way ends
}

func newKeySet(g *Guard, uri string) *keySet { return &keySet{g: g, uri: uri} }

// find returns the key that verifies a token with header kid and alg.
func (ks *keySet) find(ctx context.Context, kid string, alg jose.SignatureAlgorithm) (*jose.JSONWebKey, *guardError) {
	k, stale, empty := ks.lookup(kid, alg)
	if k != nil {
		if stale {
			go ks.refresh(context.WithoutCancel(ctx))
		}
		return k, nil
	}
	// The issuer may have rotated its keys: fetch them again, unless that
	// was done moments ago.
	if ks.refresh(ctx) {
		k, _, empty = ks.lookup(kid, alg)
		if k != nil {
			return k, nil
		}
	}
	if empty {
		return nil, errUnavailable
	}
	if kid == "" {
		return nil, tokenError("the token names no key (kid) and the issuer has several", nil)
	}
	return nil, tokenError("the token's signing key (kid) is not one of the issuer's", nil)
}

// lookup finds the key for kid and alg. A token without kid is only
// accepted when exactly one of the issuer's keys fits its alg.
func (ks *keySet) lookup(kid string, alg jose.SignatureAlgorithm) (key *jose.JSONWebKey, stale, empty bool) {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	matches := 0
	for i := range ks.keys {
		k := &ks.keys[i]
		if (kid != "" && k.KeyID != kid) || !keyFitsAlg(k, alg) {
			continue
		}
		if kid != "" {
			key = k
			break
		}
		if matches++; matches > 1 {
			key = nil
			break
		}
		key = k
	}
	return key, ks.g.now().Sub(ks.fetched) > keyMaxAge, len(ks.keys) == 0
}

// refresh fetches the keys, unless a fetch started less than
// keyRefreshInterval ago. Callers arriving while a fetch is under way wait
// for it. It reports whether the keys may have changed.
func (ks *keySet) refresh(ctx context.Context) bool {
	now := ks.g.now()
	ks.mu.Lock()
	if wait := ks.inflight; wait != nil {
		ks.mu.Unlock()
		select {
		case <-wait:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if !ks.attempted.IsZero() && now.Sub(ks.attempted) < keyRefreshInterval && now.Sub(ks.attempted) >= 0 {
		ks.mu.Unlock()
		return false
	}
	ks.attempted = now
	done := make(chan struct{})
	ks.inflight = done
	ks.mu.Unlock()

	// The fetch serves every waiting request: it must not end because the
	// one that started it went away.
	keys, err := ks.fetch(context.WithoutCancel(ctx))
	ks.g.metrics.KeysFetched(err == nil)
	ks.mu.Lock()
	if err == nil {
		ks.keys = keys
		ks.fetched = ks.g.now()
	}
	ks.inflight = nil
	ks.mu.Unlock()
	close(done)
	if err != nil {
		ks.g.log.Warn("fetching the issuer's keys failed; keeping the keys known", zap.String("jwks_uri", ks.uri), zap.Error(err))
	}
	return err == nil
}

// fetch GETs the JWKS and keeps the keys that can verify tokens. Keys of
// unknown types are skipped rather than failing the set; a set without a
// single usable key is an error (the known keys are kept).
func (ks *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := ks.g.getJSON(ctx, ks.uri, "application/jwk-set+json, application/json", &raw); err != nil {
		return nil, err
	}
	var keys []jose.JSONWebKey
	for _, r := range raw.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(r); err != nil {
			continue
		}
		if !k.IsPublic() {
			k = k.Public() // a set that leaks private keys: use only the public half
		}
		if usableVerificationKey(&k) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("the JWKS has no usable signing key")
	}
	return keys, nil
}

// usableVerificationKey keeps public signature keys of the types the
// asymmetric algorithms use: never a symmetric key (HMAC alg confusion),
// never an RSA key under 2048 bits.
func usableVerificationKey(k *jose.JSONWebKey) bool {
	if !k.Valid() || (k.Use != "" && k.Use != "sig") {
		return false
	}
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		return pub.N.BitLen() >= 2048
	case *ecdsa.PublicKey, ed25519.PublicKey:
		return true
	}
	return false
}

// keyFitsAlg reports whether k may verify a signature made with alg: its
// type and curve match, and its alg, if it names one, is alg.
func keyFitsAlg(k *jose.JSONWebKey, alg jose.SignatureAlgorithm) bool {
	if k.Algorithm != "" && k.Algorithm != string(alg) {
		return false
	}
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		switch alg {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
			return true
		}
	case *ecdsa.PublicKey:
		switch alg {
		case jose.ES256:
			return pub.Curve == elliptic.P256()
		case jose.ES384:
			return pub.Curve == elliptic.P384()
		case jose.ES512:
			return pub.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == jose.EdDSA
	}
	return false
}
