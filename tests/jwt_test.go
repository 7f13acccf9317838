package tests

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// JWKS is a JSON Web Key Set as published by the server.
type JWKS struct {
	jose.JSONWebKeySet
}

// Kids returns the key IDs of the set.
func (s *JWKS) Kids() []string {
	kids := make([]string, 0, len(s.Keys))
	for _, k := range s.Keys {
		kids = append(kids, k.KeyID)
	}
	return kids
}

// Key returns the key with ID kid.
func (s *JWKS) Key(kid string) (jose.JSONWebKey, bool) {
	keys := s.JSONWebKeySet.Key(kid)
	if len(keys) == 0 {
		return jose.JSONWebKey{}, false
	}
	return keys[0], true
}

// FetchJWKS GETs and decodes a JWKS, and checks that no key is private.
func FetchJWKS(t testing.TB, jwksURI string) *JWKS {
	t.Helper()
	resp, body := doRequest(t, &http.Client{Timeout: requestTimeout}, http.MethodGet, jwksURI, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", jwksURI, resp.StatusCode, body)
	}
	var set JWKS
	if err := json.Unmarshal(body, &set.JSONWebKeySet); err != nil {
		t.Fatalf("decoding JWKS: %v: %s", err, body)
	}
	if len(set.Keys) == 0 {
		t.Fatalf("JWKS has no keys: %s", body)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			t.Fatalf("JWKS publishes a private key (kid %q)", k.KeyID)
		}
	}
	return &set
}

// JWT is a decoded, signature-checked JSON Web Token.
type JWT struct {
	Header map[string]any
	Claims map[string]any
}

// publishedAlgs are the algorithms a server key may use; go-jose refuses
// anything else (none, HMAC) before looking at the signature.
var publishedAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.PS256, jose.EdDSA}

// VerifyJWT checks the compact JWS token's signature (go-jose) against the
// key of set named by its kid header and returns its header and claims. It
// checks nothing else (not exp, iss, aud...): tests assert on the claims.
func VerifyJWT(token string, set *JWKS) (*JWT, error) {
	parsed, err := jwt.ParseSigned(token, publishedAlgs)
	if err != nil {
		return nil, err
	}
	h := parsed.Headers[0]
	key, ok := set.Key(h.KeyID)
	if !ok {
		return nil, fmt.Errorf("kid %q not in JWKS %q", h.KeyID, set.Kids())
	}
	if key.Algorithm != "" && key.Algorithm != h.Algorithm {
		return nil, fmt.Errorf("token alg %q but key %q has alg %q", h.Algorithm, h.KeyID, key.Algorithm)
	}
	out := &JWT{Header: map[string]any{"alg": h.Algorithm, "kid": h.KeyID}}
	for k, v := range h.ExtraHeaders {
		out.Header[string(k)] = v
	}
	if err := parsed.Claims(key.Key, &out.Claims); err != nil {
		return nil, fmt.Errorf("signature with key %q: %w", h.KeyID, err)
	}
	return out, nil
}

// PKCE is a code verifier and its S256 challenge (RFC 7636).
type PKCE struct {
	Verifier, Challenge string
}

// NewPKCE returns a random 43-character verifier and its S256 challenge.
func NewPKCE(t testing.TB) PKCE {
	t.Helper()
	v := RandomString(t)
	sum := sha256.Sum256([]byte(v))
	return PKCE{Verifier: v, Challenge: base64.RawURLEncoding.EncodeToString(sum[:])}
}

// RandomString returns 32 random bytes, base64url-encoded, for states,
// nonces and verifiers.
func RandomString(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
