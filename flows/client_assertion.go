package flows

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"go.uber.org/zap"

	"github.com/portcullis-gw/portcullis/store"
)

// ClientAssertionType is the client_assertion_type of JWT client
// authentication (RFC 7523 §2.2), used by private_key_jwt and
// client_secret_jwt (OIDC Core §9).
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Limits on client assertions.
const (
	// maxAssertionBytes bounds the client_assertion parameter.
	maxAssertionBytes = 8 << 10
	// assertionLeeway is the clock skew allowed on exp, nbf and iat.
	assertionLeeway = 30 * time.Second
	// maxAssertionLifetime is how far ahead exp may be (RFC 7523 §3 lets
	// the server refuse an exp "unreasonably far in the future"). It also
	// bounds how long a used jti must be remembered.
	maxAssertionLifetime = 5 * time.Minute
	// maxAssertionJTIBytes bounds the jti, which is remembered.
	maxAssertionJTIBytes = 256
	// maxKeysWithoutKID bounds the signature checks of an assertion
	// without a kid: each candidate key costs one.
	maxKeysWithoutKID = 4
)

// assertionState is what client assertion authentication keeps between
// requests: the used jtis and the clients' keys.
type assertionState struct {
	used   *usedAssertions
	inline inlineKeySets
	remote *remoteKeySets
}

func newAssertionState(st store.Store, now func() time.Time, log *zap.Logger) *assertionState {
	return &assertionState{used: newUsedAssertions(st, now, log), remote: newRemoteKeySets(now, log)}
}

// authenticateAssertion authenticates a client by a JWT client assertion
// (RFC 7523 §2.2): private_key_jwt or client_secret_jwt, whichever the
// client is registered for.
func (s *Server) authenticateAssertion(r *http.Request) (*store.Client, error) {
	form := r.PostForm
	typ, raw := form.Get("client_assertion_type"), form.Get("client_assertion")
	// RFC 7521 §4.2: client_assertion_type and client_assertion are both
	// "REQUIRED".
	if typ == "" || raw == "" {
		return nil, errInvalidRequest("send client_assertion_type and client_assertion together")
	}
	// RFC 7523 §2.2: "The value of the "client_assertion_type" is
	// "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"."
	if typ != ClientAssertionType {
		return nil, errInvalidClient("client_assertion_type must be %s", ClientAssertionType)
	}
	if len(raw) > maxAssertionBytes {
		return nil, errInvalidClient("client_assertion is larger than %d bytes", maxAssertionBytes)
	}
	// RFC 7523 §2.2: "The value of the "client_assertion" parameter
	// contains a single JWT. It MUST NOT contain more than one JWT." The
	// compact serialization carries exactly one signature; "none" and
	// algorithms outside the list are parse errors.
	tok, err := jwt.ParseSigned(raw, assertionAlgs)
	if err != nil {
		return nil, errInvalidClient("client_assertion is not a signed JWT (compact JWS with one of %s): %v", algNames(assertionAlgs), err)
	}
	// The client is the client_id parameter or, without one, the
	// assertion's sub (RFC 7523 §3 (2.B)), read before the signature is
	// checked only to find the key; the verified claims are checked below.
	id := form.Get("client_id")
	if id == "" {
		var unverified jwt.Claims
		if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
			return nil, errInvalidClient("client_assertion claims are malformed: %v", err)
		}
		id = unverified.Subject
	}
	if id == "" {
		return nil, errInvalidClient("client_assertion has no sub claim: set iss and sub to the client_id")
	}
	alg := tok.Headers[0].Algorithm
	client, err := s.store.GetClient(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		spendVerification(tok, jose.SignatureAlgorithm(alg))
		return nil, errInvalidClient("client authentication failed")
	}
	if err != nil {
		return nil, errServer(err)
	}
	claims, oe := s.verifyAssertion(r.Context(), client, tok, alg)
	if oe != nil {
		return nil, oe
	}
	if oe := s.checkAssertionClaims(r, client.ID, claims); oe != nil {
		return nil, oe
	}
	until := claims.Expiry.Time().Add(assertionLeeway)
	if oe := s.assertions.used.use(r.Context(), client.ID, claims.ID, until); oe != nil {
		return nil, oe
	}
	return client, nil
}

// acceptedAssertionAlgs is what the client may sign its assertions with:
// its method's algorithms (for client_secret_jwt, those its secret is long
// enough for), narrowed to its registered signing alg when it has one.
func acceptedAssertionAlgs(c *store.Client) []jose.SignatureAlgorithm {
	var algs []jose.SignatureAlgorithm
	switch c.TokenEndpointAuthMethod {
	case AuthMethodPrivateKeyJWT:
		algs = privateKeyJWTAlgs
	case AuthMethodSecretJWT:
		for _, a := range clientSecretJWTAlgs {
			if len(c.HMACSecret) >= MinHMACSecretBytes(string(a)) {
				algs = append(algs, a)
			}
		}
	}
	if pinned := jose.SignatureAlgorithm(c.TokenEndpointAuthSigningAlg); pinned != "" {
		if !slices.Contains(algs, pinned) {
			return nil
		}
		return []jose.SignatureAlgorithm{pinned}
	}
	return algs
}

// verifyAssertion checks the assertion's signature with the client's key
// or secret and returns its verified claims.
func (s *Server) verifyAssertion(ctx context.Context, c *store.Client, tok *jwt.JSONWebToken, alg string) (*jwt.Claims, *Error) {
	method := c.TokenEndpointAuthMethod
	if method != AuthMethodPrivateKeyJWT && method != AuthMethodSecretJWT {
		if method == "" {
			method = AuthMethodSecretBasic
		}
		return nil, errInvalidClient("client %s is registered for %s: authenticate with that method, not a client_assertion", c.ID, method)
	}
	accepted := acceptedAssertionAlgs(c)
	if !slices.Contains(accepted, jose.SignatureAlgorithm(alg)) {
		if len(accepted) == 0 {
			return nil, errInvalidClient("client %s cannot use %s: its registration has no usable signing algorithm", c.ID, method)
		}
		return nil, errInvalidClient("client_assertion is signed with %s; client %s (%s) accepts %s", alg, c.ID, method, algNames(accepted))
	}
	var claims jwt.Claims
	// RFC 7523 §3 (9): "The JWT MUST be digitally signed or have a Message
	// Authentication Code (MAC) applied by the issuer. The authorization
	// server MUST reject JWTs with an invalid signature or MAC."
	if method == AuthMethodSecretJWT {
		if err := tok.Claims([]byte(c.HMACSecret), &claims); err != nil {
			return nil, errInvalidClient("client_assertion MAC does not verify with the secret of client %s", c.ID).WithCause(err)
		}
		return &claims, nil
	}
	kid := tok.Headers[0].KeyID
	set, oe := s.clientKeySet(ctx, c, false)
	if oe != nil {
		return nil, oe
	}
	candidates := candidateKeys(set, kid, alg)
	if len(candidates) == 0 && c.JWKSURI != "" {
		// An unknown kid may be a key the client has just rotated in.
		if set, oe = s.clientKeySet(ctx, c, true); oe != nil {
			return nil, oe
		}
		candidates = candidateKeys(set, kid, alg)
	}
	if len(candidates) == 0 {
		if kid != "" {
			return nil, errInvalidClient("client %s has no registered %s key with kid %q", c.ID, alg, clip(kid))
		}
		return nil, errInvalidClient("client %s has no registered key for %s", c.ID, alg)
	}
	if kid == "" && len(candidates) > maxKeysWithoutKID {
		return nil, errInvalidClient("client %s has %d %s keys: name the signing key with kid in the assertion header", c.ID, len(candidates), alg)
	}
	for _, k := range candidates {
		if err := tok.Claims(k.Key, &claims); err == nil {
			return &claims, nil
		}
	}
	return nil, errInvalidClient("client_assertion signature does not verify with the registered keys of client %s", c.ID)
}

// clientKeySet returns the public keys of a private_key_jwt client: its
// registered JWKS, or the set at its jwks_uri (refetched when refresh is
// set and the last fetch is old enough).
func (s *Server) clientKeySet(ctx context.Context, c *store.Client, refresh bool) (*jose.JSONWebKeySet, *Error) {
	switch {
	case len(c.JWKS) > 0:
		set, err := s.assertions.inline.get(c)
		if err != nil {
			return nil, errInvalidClient("the registered jwks of client %s is unusable: %v", c.ID, err)
		}
		return set, nil
	case c.JWKSURI != "":
		set, _, err := s.assertions.remote.get(ctx, c.ID, c.JWKSURI, refresh)
		if err != nil {
			return nil, errInvalidClient("the keys of client %s could not be fetched from its jwks_uri; retry later", c.ID).WithCause(err)
		}
		return set, nil
	}
	return nil, errInvalidClient("client %s has no registered keys: register jwks or jwks_uri", c.ID)
}

// checkAssertionClaims applies RFC 7523 §3 and OIDC Core §9 to the
// verified claims of an assertion presented at the endpoint of r.
func (s *Server) checkAssertionClaims(r *http.Request, clientID string, c *jwt.Claims) *Error {
	now := s.now()
	// RFC 7523 §3 (1): "The JWT MUST contain an "iss" (issuer) claim that
	// contains a unique identifier for the entity that issued the JWT."
	// OIDC Core §9: "iss REQUIRED. Issuer. This MUST contain the client_id
	// of the OAuth Client."
	if c.Issuer != clientID {
		return errInvalidClient("client_assertion iss must be the client_id %s", clientID)
	}
	// RFC 7523 §3 (2.B): "For client authentication, the subject MUST be
	// the "client_id" of the OAuth client."
	if c.Subject != clientID {
		return errInvalidClient("client_assertion sub must be the client_id %s", clientID)
	}
	// RFC 7523 §3 (3): "The JWT MUST contain an "aud" (audience) claim
	// containing a value that identifies the authorization server as an
	// intended audience. The token endpoint URL of the authorization
	// server MAY be used as a value for an "aud" element [...]. The
	// authorization server MUST reject any JWT that does not contain its
	// own identity as the intended audience." Its identity is the issuer,
	// the token endpoint, or the endpoint called (built from the issuer,
	// never from the Host header).
	if !c.Audience.Contains(s.issuer) && !c.Audience.Contains(s.url(PathToken)) && !c.Audience.Contains(s.url(r.URL.Path)) {
		return errInvalidClient("client_assertion aud must contain the issuer %s or the token endpoint %s", s.issuer, s.url(PathToken))
	}
	// RFC 7523 §3 (4): "The JWT MUST contain an "exp" (expiration time)
	// claim that limits the time window during which the JWT can be used."
	if c.Expiry == nil {
		return errInvalidClient("client_assertion has no exp claim")
	}
	exp := c.Expiry.Time()
	// "The authorization server MUST reject any JWT with an expiration
	// time that has passed, subject to allowable clock skew between
	// systems."
	if !now.Before(exp.Add(assertionLeeway)) {
		return errInvalidClient("client_assertion expired at %s", exp.UTC().Format(time.RFC3339))
	}
	// "Note that the authorization server may reject JWTs with an "exp"
	// claim value that is unreasonably far in the future." Used jtis are
	// remembered until exp, so exp is kept short.
	if exp.After(now.Add(maxAssertionLifetime + assertionLeeway)) {
		return errInvalidClient("client_assertion exp is more than %s ahead; mint short-lived assertions", maxAssertionLifetime)
	}
	// RFC 7523 §3 (5): "The JWT MAY contain an "nbf" (not before) claim
	// that identifies the time before which the token MUST NOT be accepted
	// for processing."
	if c.NotBefore != nil && c.NotBefore.Time().After(now.Add(assertionLeeway)) {
		return errInvalidClient("client_assertion is not valid before %s (nbf)", c.NotBefore.Time().UTC().Format(time.RFC3339))
	}
	// RFC 7523 §3 (6): "The JWT MAY contain an "iat" (issued at) claim that
	// identifies the time at which the JWT was issued." One issued in the
	// future is not valid (RFC 7523 §3 (10)).
	if c.IssuedAt != nil && c.IssuedAt.Time().After(now.Add(assertionLeeway)) {
		return errInvalidClient("client_assertion iat is in the future; check the client's clock")
	}
	// OIDC Core §9: "jti REQUIRED. JWT ID. A unique identifier for the
	// token, which can be used to prevent reuse of the token. These tokens
	// MUST only be used once". The replay check itself runs last, so only
	// valid assertions use up their jti.
	if c.ID == "" {
		return errInvalidClient("client_assertion has no jti claim: give every assertion a unique jti")
	}
	if len(c.ID) > maxAssertionJTIBytes {
		return errInvalidClient("client_assertion jti is longer than %d bytes", maxAssertionJTIBytes)
	}
	return nil
}

// clip shortens a value from the request before it is put in an error
// description.
func clip(v string) string {
	const limit = 64
	if len(v) <= limit {
		return v
	}
	return v[:limit] + "…"
}

// spendVerification verifies tok with a throwaway key of alg's family, so
// that an unknown client_id costs about as much time as a known one.
func spendVerification(tok *jwt.JSONWebToken, alg jose.SignatureAlgorithm) {
	if key := dummyVerificationKey(alg); key != nil {
		_ = tok.Claims(key, &jwt.Claims{})
	}
}

func dummyVerificationKey(alg jose.SignatureAlgorithm) any {
	switch alg {
	case jose.ES256:
		return dummyECKey(elliptic.P256())
	case jose.ES384:
		return dummyECKey(elliptic.P384())
	case jose.ES512:
		return dummyECKey(elliptic.P521())
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		return dummyRSAKey()
	case jose.EdDSA:
		return dummyEdKey()
	case jose.HS256, jose.HS384, jose.HS512:
		return dummyHMACKey()
	}
	return nil
}

var (
	dummyECKeys = sync.OnceValue(func() map[elliptic.Curve]*ecdsa.PublicKey {
		m := map[elliptic.Curve]*ecdsa.PublicKey{}
		for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
			if k, err := ecdsa.GenerateKey(c, rand.Reader); err == nil {
				m[c] = &k.PublicKey
			}
		}
		return m
	})
	dummyRSAKey = sync.OnceValue(func() any {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil
		}
		return &k.PublicKey
	})
	dummyEdKey = sync.OnceValue(func() any {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil
		}
		return pub
	})
	dummyHMACKey = sync.OnceValue(func() any { return randomBytes(64) })
)

func dummyECKey(c elliptic.Curve) any {
	if k := dummyECKeys()[c]; k != nil {
		return k
	}
	return nil
}
