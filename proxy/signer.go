package proxy

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"

	"github.com/go-jose/go-jose/v4"
)

// Signer is the gateway's own signing key. It signs JAR request objects
// (RFC 9101) sent to the provider and identity assertions sent to the
// upstream, and its public half is served as a JWKS so that both can
// verify them.
type Signer struct {
	// signers by typ header: "JWT" for assertions, requestObjectType for
	// request objects.
	signers map[string]jose.Signer
	alg     jose.SignatureAlgorithm
	kid     string
	jwks    []byte
}

// requestObjectType is the typ of a JAR request object (RFC 9101 §10.8).
const requestObjectType = "oauth-authz-req+jwt"

// NewSigner wraps a private key: *ecdsa.PrivateKey (P-256 → ES256, P-384 →
// ES384, P-521 → ES512), *rsa.PrivateKey (RS256, at least 2048 bits) or
// ed25519.PrivateKey (EdDSA). The key id is the RFC 7638 thumbprint of the
// public key, so it is stable across restarts.
func NewSigner(key crypto.Signer) (*Signer, error) {
	var alg jose.SignatureAlgorithm
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			alg = jose.ES256
		case elliptic.P384():
			alg = jose.ES384
		case elliptic.P521():
			alg = jose.ES512
		default:
			return nil, errors.New("unsupported elliptic curve; use P-256, P-384 or P-521")
		}
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits is too small; use 2048 bits or more", k.N.BitLen())
		}
		alg = jose.RS256
	case ed25519.PrivateKey:
		alg = jose.EdDSA
	default:
		return nil, fmt.Errorf("unsupported key type %T; use an EC, RSA or Ed25519 key", key)
	}
	pub := jose.JSONWebKey{Key: key.Public(), Algorithm: string(alg), Use: "sig"}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(thumb)
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	if err != nil {
		return nil, err
	}
	s := &Signer{signers: map[string]jose.Signer{}, alg: alg, kid: pub.KeyID, jwks: jwks}
	for _, typ := range []string{"JWT", requestObjectType} {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: pub.KeyID}},
			(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
		if err != nil {
			return nil, err
		}
		s.signers[typ] = signer
	}
	return s, nil
}

// GenerateSigningKey returns a new P-256 key (ES256), PEM-encoded (PKCS #8)
// for storage.
func GenerateSigningKey() ([]byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseSigningKey reads a PEM private key (PKCS #8, SEC 1 "EC PRIVATE KEY"
// or PKCS #1 "RSA PRIVATE KEY").
func ParseSigningKey(pemBytes []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block found; expected a PEM private key")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, err
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", key)
	}
	return s, nil
}

// Alg is the JWS algorithm of the key.
func (s *Signer) Alg() jose.SignatureAlgorithm { return s.alg }

// KeyID is the key's kid (its RFC 7638 thumbprint).
func (s *Signer) KeyID() string { return s.kid }

// JWKS is the public key as a JWK Set.
func (s *Signer) JWKS() []byte { return s.jwks }

// sign serializes claims as a compact JWS with the given typ header.
func (s *Signer) sign(claims any, typ string) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signer, ok := s.signers[typ]
	if !ok {
		return "", fmt.Errorf("no signer for typ %q", typ)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// serveJWKS answers GET/HEAD with the public key set.
func (s *Signer) serveJWKS(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "use GET", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/jwk-set+json")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("Access-Control-Allow-Origin", "*")
	w.Write(s.jwks)
}
