package tests

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	_ "crypto/sha512" // SHA-384 and SHA-512 for ES384/ES512/RS384/RS512
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"testing"
)

// JWK is one key of a JSON Web Key Set, with the members the tests use.
type JWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	D   string `json:"d,omitempty"`
}

// JWKS is a JSON Web Key Set.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// Kids returns the key IDs of the set.
func (s *JWKS) Kids() []string {
	kids := make([]string, 0, len(s.Keys))
	for _, k := range s.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

// Key returns the key with ID kid.
func (s *JWKS) Key(kid string) (JWK, bool) {
	for _, k := range s.Keys {
		if k.Kid == kid {
			return k, true
		}
	}
	return JWK{}, false
}

// FetchJWKS GETs and decodes a JWKS, and checks that no key is private.
func FetchJWKS(t testing.TB, jwksURI string) *JWKS {
	t.Helper()
	resp, body := doRequest(t, &http.Client{Timeout: requestTimeout}, http.MethodGet, jwksURI, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", jwksURI, resp.StatusCode, body)
	}
	var set JWKS
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("decoding JWKS: %v: %s", err, body)
	}
	if len(set.Keys) == 0 {
		t.Fatalf("JWKS has no keys: %s", body)
	}
	for _, k := range set.Keys {
		if k.D != "" {
			t.Fatalf("JWKS publishes a private key (kid %q)", k.Kid)
		}
	}
	return &set
}

// JWT is a decoded, signature-checked JSON Web Token.
type JWT struct {
	Header map[string]any
	Claims map[string]any
}

// VerifyJWT checks the compact JWS token's signature against the key of set
// named by its kid header and returns its header and claims. It checks
// nothing else (not exp, iss, aud...): tests assert on the claims.
func VerifyJWT(token string, set *JWKS) (*JWT, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("not a compact JWS: %d parts", len(parts))
	}
	var out JWT
	if err := decodeSegment(parts[0], &out.Header); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if err := decodeSegment(parts[1], &out.Claims); err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	alg, _ := out.Header["alg"].(string)
	kid, _ := out.Header["kid"].(string)
	key, ok := set.Key(kid)
	if !ok {
		return nil, fmt.Errorf("kid %q not in JWKS %q", kid, set.Kids())
	}
	if key.Alg != "" && key.Alg != alg {
		return nil, fmt.Errorf("token alg %q but key %q has alg %q", alg, kid, key.Alg)
	}
	if err := verifySignature(alg, key, []byte(parts[0]+"."+parts[1]), sig); err != nil {
		return nil, fmt.Errorf("signature with key %q: %w", kid, err)
	}
	return &out, nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func verifySignature(alg string, key JWK, signed, sig []byte) error {
	hashFor := map[string]crypto.Hash{
		"ES256": crypto.SHA256, "ES384": crypto.SHA384, "ES512": crypto.SHA512,
		"RS256": crypto.SHA256, "RS384": crypto.SHA384, "RS512": crypto.SHA512,
		"PS256": crypto.SHA256, "PS384": crypto.SHA384, "PS512": crypto.SHA512,
	}
	switch {
	case alg == "EdDSA" || alg == "Ed25519":
		if key.Kty != "OKP" || key.Crv != "Ed25519" {
			return fmt.Errorf("alg %s with key kty %q crv %q", alg, key.Kty, key.Crv)
		}
		x, err := base64.RawURLEncoding.DecodeString(key.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return errors.New("bad Ed25519 key")
		}
		if !ed25519.Verify(ed25519.PublicKey(x), signed, sig) {
			return errors.New("invalid signature")
		}
		return nil
	case strings.HasPrefix(alg, "ES"):
		curves := map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}
		want := map[string]string{"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}[alg]
		if key.Kty != "EC" || key.Crv != want {
			return fmt.Errorf("alg %s with key kty %q crv %q", alg, key.Kty, key.Crv)
		}
		x, err1 := base64.RawURLEncoding.DecodeString(key.X)
		y, err2 := base64.RawURLEncoding.DecodeString(key.Y)
		if err1 != nil || err2 != nil {
			return errors.New("bad EC key coordinates")
		}
		pub := &ecdsa.PublicKey{Curve: curves[want], X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
		size := (pub.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return fmt.Errorf("ECDSA signature is %d bytes, want %d (JWS uses r||s, not DER)", len(sig), 2*size)
		}
		h := hashFor[alg].New()
		h.Write(signed)
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(pub, h.Sum(nil), r, s) {
			return errors.New("invalid signature")
		}
		return nil
	case strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS"):
		hash, ok := hashFor[alg]
		if !ok || key.Kty != "RSA" {
			return fmt.Errorf("alg %s with key kty %q", alg, key.Kty)
		}
		n, err1 := base64.RawURLEncoding.DecodeString(key.N)
		e, err2 := base64.RawURLEncoding.DecodeString(key.E)
		if err1 != nil || err2 != nil {
			return errors.New("bad RSA key")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		h := hash.New()
		h.Write(signed)
		if alg[0] == 'P' {
			return rsa.VerifyPSS(pub, hash, h.Sum(nil), sig, nil)
		}
		return rsa.VerifyPKCS1v15(pub, hash, h.Sum(nil), sig)
	}
	return fmt.Errorf("unsupported alg %q", alg)
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
