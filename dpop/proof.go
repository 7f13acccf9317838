package dpop

import (
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
	"net/url"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
)

// NewProof builds a proof for a request (clients, tests, the end-to-end
// test client): jti random, iat now. url's query and fragment are dropped
// (htu has none); accessToken, when not empty, is bound by ath; nonce, when
// not empty, is the server's DPoP-Nonce. The algorithm follows the key:
// ES256/384/512 by curve, PS256 for RSA, EdDSA for Ed25519.
func NewProof(key crypto.Signer, method, url, accessToken, nonce string) (string, error) {
	return NewProofAt(key, method, url, accessToken, nonce, time.Now())
}

// proofClaims are the claims NewProofAt writes (RFC 9449 §4.2).
type proofClaims struct {
	JTI   string `json:"jti"`
	HTM   string `json:"htm"`
	HTU   string `json:"htu"`
	IAT   int64  `json:"iat"`
	ATH   string `json:"ath,omitempty"`
	Nonce string `json:"nonce,omitempty"`
}

// NewProofAt is NewProof with iat given, for clients with their own clock.
func NewProofAt(key crypto.Signer, method, rawURL, accessToken, nonce string, iat time.Time) (string, error) {
	if key == nil || method == "" {
		return "", errors.New("dpop: a key and a method are required")
	}
	u, err := url.Parse(rawURL)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return "", fmt.Errorf("dpop: %q is not an absolute URL", rawURL)
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	alg, signingKey, err := algFor(key)
	if err != nil {
		return "", err
	}
	jti := make([]byte, 16)
	rand.Read(jti) // never fails (crypto/rand, Go 1.24+)
	c := proofClaims{
		JTI: base64.RawURLEncoding.EncodeToString(jti), HTM: method, HTU: u.String(), IAT: iat.Unix(), Nonce: nonce,
	}
	if accessToken != "" {
		c.ATH = AccessTokenHash(accessToken)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	opts := (&jose.SignerOptions{EmbedJWK: true}).WithType(ProofType)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: signingKey}, opts)
	if err != nil {
		return "", fmt.Errorf("dpop: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("dpop: signing the proof: %w", err)
	}
	return jws.CompactSerialize()
}

// algFor picks the JWS algorithm for key and the form go-jose signs with:
// the key itself for the standard library's types, an opaque signer for
// any other crypto.Signer (an HSM, a KMS).
func algFor(key crypto.Signer) (jose.SignatureAlgorithm, any, error) {
	var alg jose.SignatureAlgorithm
	switch pub := key.Public().(type) {
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			alg = jose.ES256
		case elliptic.P384():
			alg = jose.ES384
		case elliptic.P521():
			alg = jose.ES512
		}
	case *rsa.PublicKey:
		alg = jose.PS256
	case ed25519.PublicKey:
		alg = jose.EdDSA
	}
	if alg == "" {
		return "", nil, fmt.Errorf("dpop: unsupported key type %T", key.Public())
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
		return alg, k, nil
	}
	return alg, cryptosigner.Opaque(key), nil
}
