// Package dpop implements OAuth 2.0 Demonstrating Proof of Possession
// (RFC 9449) for both sides Portcullis plays: the embedded authorization
// server, which binds tokens to the key of a proof, and the API guard,
// which checks that a bound token comes with a proof by that key.
//
// A resource server uses it like this:
//
//	proof, err := dpop.FromHeader(r.Header) // refuses two DPoP headers
//	p, err := verifier.Verify(proof, r.Method, publicURL, accessToken)
//	if p.JKT != cnfJKT { /* 401 DPoP error="invalid_token" */ }
//
// Every JOSE operation is go-jose's; this package only decides what a
// valid proof is.
package dpop

import (
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Names from RFC 9449.
const (
	// HeaderName is the request header carrying a proof (§4.1).
	HeaderName = "DPoP"
	// NonceHeaderName is the response header carrying a server nonce (§8).
	NonceHeaderName = "DPoP-Nonce"
	// Scheme is the Authorization scheme of a bound access token (§7.1),
	// and the token_type of a bound token response (§5).
	Scheme = "DPoP"
	// ProofType is the typ header of a proof (§4.2).
	ProofType = "dpop+jwt"
	// CodeInvalidProof is the error code for a proof that fails a check.
	CodeInvalidProof = "invalid_dpop_proof"
	// CodeUseNonce is the error code asking for a (new) server nonce.
	CodeUseNonce = "use_dpop_nonce"
)

// MaxProofBytes bounds a proof. A P-256 proof is about 600 bytes and one
// with an RSA 4096 key about 1.5 KiB; anything past 8 KiB is an attack
// on the parser, refused before any decoding.
const MaxProofBytes = 8 << 10

// Error is a DPoP failure with its RFC 9449 error code: "invalid_dpop_proof"
// or "use_dpop_nonce". Error() gives the description, which never repeats
// what the proof said and so is safe in a WWW-Authenticate header.
type Error struct {
	Code, Description string

	cause error // for errors.Is (ErrReplayCacheFull); never shown
}

func (e *Error) Error() string { return e.Description }

// Unwrap returns the condition behind the failure, when there is one that
// a caller may want to tell apart (ErrReplayCacheFull).
func (e *Error) Unwrap() error { return e.cause }

func invalid(description string) *Error {
	return &Error{Code: CodeInvalidProof, Description: description}
}

// ErrNoProof is returned by FromHeader when the request has no DPoP header:
// not a failure at a token endpoint (the client asked for a Bearer token),
// but one at a resource for a bound token.
var ErrNoProof = errors.New("dpop: the request has no DPoP header")

// FromHeader returns the one DPoP proof of a request. RFC 9449 §4.3 point 1:
// "There is not more than one DPoP HTTP request header field." Two or more
// fields, or one with a comma (two fields joined by a proxy), are an
// *Error; none is ErrNoProof. The header name is matched case-insensitively
// even in an http.Header built by hand.
func FromHeader(h http.Header) (string, error) {
	var values []string
	for k, v := range h {
		if strings.EqualFold(k, HeaderName) {
			values = append(values, v...)
		}
	}
	switch {
	case len(values) == 0:
		return "", ErrNoProof
	case len(values) > 1 || strings.Contains(values[0], ","):
		return "", invalid("the request has more than one DPoP header")
	case strings.TrimSpace(values[0]) == "":
		return "", invalid("the DPoP header is empty")
	}
	return strings.TrimSpace(values[0]), nil
}

// Thumbprint is the RFC 7638 JWK SHA-256 thumbprint of key's public part,
// base64url without padding: the jkt of RFC 9449 §6.1.
func Thumbprint(key jose.JSONWebKey) (string, error) {
	sum, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// AccessTokenHash is the ath claim for token (RFC 9449 §4.2): "the
// base64url encoding ... [of] the SHA-256 hash of the ASCII encoding of the
// associated access token's value".
func AccessTokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Defaults of a zero Verifier.
const (
	// DefaultMaxAge is how old a proof may be. RFC 9449 §11.1 asks for "a
	// relatively brief period on the order of seconds or minutes"; five
	// minutes tolerates clients whose clock is a few minutes slow, and the
	// replay cache remembers every jti for that long.
	DefaultMaxAge = 5 * time.Minute
	// DefaultLeeway is how far in the future a proof's iat may be (§11.1:
	// "the server MAY accept DPoP proofs that carry an iat time in the
	// reasonably near future"). Thirty seconds is within FAPI 2.0's bounds
	// (accept 10 s, refuse past 60 s).
	DefaultLeeway = 30 * time.Second
)

// DefaultAlgs are the proof algorithms a Verifier accepts when Algs is
// empty: every registered asymmetric JWS algorithm go-jose implements.
var DefaultAlgs = []jose.SignatureAlgorithm{
	jose.ES256, jose.ES384, jose.ES512,
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.EdDSA,
}

// asymmetric is the set an alg must be in whatever Algs says: RFC 9449
// §4.2, alg "MUST NOT be none or an identifier for a symmetric algorithm".
var asymmetric = func() map[jose.SignatureAlgorithm]bool {
	m := map[jose.SignatureAlgorithm]bool{}
	for _, a := range DefaultAlgs {
		m[a] = true
	}
	return m
}()
