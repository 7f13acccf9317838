package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// verifyJWT returns the verified token for a JWT access token (a JWS, or
// with encrypted a JWS nested in a JWE). A verified token is cached by its
// hash until its exp (or verifiedJWTMaxAge), so that a client's requests
// cost one signature check per token, not one per request.
func (g *Guard) verifyJWT(ctx context.Context, iss *guardIssuer, raw string, key [32]byte, encrypted bool) (*Token, *guardError) {
	now := g.now()
	if tok, ok := g.verified.get(key, now); ok {
		return tok, nil
	}
	tok, gerr := g.verifyJWTUncached(ctx, iss, raw, encrypted, now)
	if gerr != nil {
		return nil, gerr
	}
	until := now.Add(verifiedJWTMaxAge)
	if exp := tok.Expiry.Add(g.cfg.Leeway); exp.Before(until) {
		until = exp
	}
	g.verified.put(key, tok, until, now)
	return tok, nil
}

func (g *Guard) verifyJWTUncached(ctx context.Context, iss *guardIssuer, raw string, encrypted bool, now time.Time) (*Token, *guardError) {
	if iss.keys == nil {
		return nil, tokenError("JWT access tokens cannot be verified: the issuer publishes no keys", nil)
	}
	jws := raw
	if encrypted {
		var gerr *guardError
		if jws, gerr = g.decryptJWE(raw); gerr != nil {
			return nil, gerr
		}
	}
	// go-jose refuses any alg outside iss.algs (asymmetric ones only: never
	// none, never HMAC).
	parsed, err := jwt.ParseSigned(jws, iss.algs)
	if err != nil {
		return nil, tokenError("the token is not a JWT signed with an accepted algorithm", err)
	}
	h := parsed.Headers[0]
	if gerr := checkJOSEHeader(h); gerr != nil {
		return nil, gerr
	}
	if g.cfg.RequireATJWT {
		// RFC 9068 §4: "Resource servers receiving a JWT access token MUST
		// validate it in the following manner: ... verify that the "typ"
		// header value is "at+jwt" or "application/at+jwt" and reject
		// tokens carrying any other type value."
		typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
		if !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
			return nil, tokenError("the token is not an RFC 9068 access token (typ at+jwt)", nil)
		}
	}
	k, gerr := iss.keys.find(ctx, h.KeyID, jose.SignatureAlgorithm(h.Algorithm))
	if gerr != nil {
		return nil, gerr
	}
	var std jwt.Claims
	claims := map[string]any{}
	if err := parsed.Claims(k.Key, &std, &claims); err != nil {
		return nil, tokenError("the token's signature or claims are invalid", err)
	}
	// RFC 9068 §2.2: exp is REQUIRED; a token that never expires is refused.
	if std.Expiry == nil {
		return nil, tokenError("the token has no expiry (exp)", nil)
	}
	expected := jwt.Expected{Issuer: g.cfg.Issuer, Time: now}
	if !g.cfg.AnyAudience {
		expected.AnyAudience = g.cfg.Audiences
	}
	if err := std.ValidateWithLeeway(expected, g.cfg.Leeway); err != nil {
		return nil, claimsError(err)
	}
	return newToken(claims, std.Expiry.Time(), false)
}

// claimsError names what the claims validation refused.
func claimsError(err error) *guardError {
	switch {
	case errors.Is(err, jwt.ErrExpired):
		return tokenError("the token has expired", err)
	case errors.Is(err, jwt.ErrNotValidYet):
		return tokenError("the token is not valid yet (nbf)", err)
	case errors.Is(err, jwt.ErrIssuedInTheFuture):
		return tokenError("the token is issued in the future (iat)", err)
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return tokenError("the token is not from the expected issuer", err)
	case errors.Is(err, jwt.ErrInvalidAudience):
		return tokenError("the token is not meant for this resource (aud)", err)
	}
	return tokenError("the token's claims are invalid", err)
}

// noRoots makes an x5c chain fail verification at once, without loading
// the system roots: x5c is refused anyway.
var noRoots = x509.NewCertPool()

// checkJOSEHeader refuses headers that would let the token choose its own
// verification key (jwk, jku, x5u, x5c: RFC 8725 §3.10 — the key must come
// from the issuer's JWKS) and extensions a JWT must not use.
func checkJOSEHeader(h jose.Header) *guardError {
	if h.JSONWebKey != nil {
		return tokenError("tokens that carry their own key (jwk header) are refused", nil)
	}
	for _, name := range []jose.HeaderKey{"jku", "x5u", "crit", "b64"} {
		if _, ok := h.ExtraHeaders[name]; ok {
			return tokenError("tokens with the "+string(name)+" header are refused", nil)
		}
	}
	if _, err := h.Certificates(x509.VerifyOptions{Roots: noRoots}); !errors.Is(err, jose.ErrMissingX5cHeader) {
		return tokenError("tokens with the x5c header are refused", nil)
	}
	return nil
}

// decryptionKey is one of the API's JWE keys and the key-management
// algorithms it is used with.
type decryptionKey struct {
	key  jose.JSONWebKey
	algs []jose.KeyAlgorithm
}

var (
	// jweRSAAlgs and jweECAlgs are the key-management algorithms accepted:
	// no RSA1_5 (padding oracle), no PBES2 (cost set by the attacker), no
	// dir or key wrap (a shared secret would let its holders forge tokens).
	jweRSAAlgs = []jose.KeyAlgorithm{jose.RSA_OAEP_256, jose.RSA_OAEP}
	jweECAlgs  = []jose.KeyAlgorithm{jose.ECDH_ES, jose.ECDH_ES_A128KW, jose.ECDH_ES_A192KW, jose.ECDH_ES_A256KW}
	// jweContentAlgs are the content encryptions accepted.
	jweContentAlgs = []jose.ContentEncryption{
		jose.A128GCM, jose.A192GCM, jose.A256GCM, jose.A128CBC_HS256, jose.A192CBC_HS384, jose.A256CBC_HS512,
	}
)

// decryptionKeys checks the configured JWE keys: private RSA (2048 bits
// or more) or EC keys, each with the algorithms it may be used with.
func decryptionKeys(keys []jose.JSONWebKey) ([]decryptionKey, []jose.KeyAlgorithm, error) {
	var out []decryptionKey
	var all []jose.KeyAlgorithm
	for i, k := range keys {
		var algs []jose.KeyAlgorithm
		switch priv := k.Key.(type) {
		case *rsa.PrivateKey:
			if priv.N.BitLen() < 2048 {
				return nil, nil, fmt.Errorf("decryption key %d: RSA key of %d bits is too small", i, priv.N.BitLen())
			}
			algs = jweRSAAlgs
		case *ecdsa.PrivateKey:
			algs = jweECAlgs
		default:
			return nil, nil, fmt.Errorf("decryption key %d: %T is not an RSA or EC private key", i, k.Key)
		}
		if k.Use != "" && k.Use != "enc" {
			return nil, nil, fmt.Errorf("decryption key %d: use is %q, not enc", i, k.Use)
		}
		if k.Algorithm != "" {
			alg := jose.KeyAlgorithm(k.Algorithm)
			if !slices.Contains(algs, alg) {
				return nil, nil, fmt.Errorf("decryption key %d: algorithm %q is not accepted; use one of %v", i, k.Algorithm, algs)
			}
			algs = []jose.KeyAlgorithm{alg}
		}
		out = append(out, decryptionKey{key: k, algs: algs})
		for _, a := range algs {
			if !slices.Contains(all, a) {
				all = append(all, a)
			}
		}
	}
	return out, all, nil
}

// decryptJWE decrypts an encrypted access token and returns the JWS inside.
// The JWS is what proves the token comes from the issuer: with public-key
// encryption anyone can make a JWE for this API, so a JWE that does not
// hold a signed JWT is refused.
func (g *Guard) decryptJWE(raw string) (string, *guardError) {
	if len(g.decrypt) == 0 {
		return "", tokenError("encrypted access tokens are not accepted here", nil)
	}
	enc, err := jose.ParseEncryptedCompact(raw, g.jweAlgs, jweContentAlgs)
	if err != nil {
		return "", tokenError("the token is not a JWE encrypted with an accepted algorithm", err)
	}
	if gerr := checkJOSEHeader(enc.Header); gerr != nil {
		return "", gerr
	}
	// RFC 7519 §5.2: cty "JWT" marks a nested JWT.
	if cty, ok := enc.Header.ExtraHeaders[jose.HeaderContentType].(string); ok && !strings.EqualFold(cty, "JWT") {
		return "", tokenError("the encrypted token does not hold a JWT (cty)", nil)
	}
	alg := jose.KeyAlgorithm(enc.Header.Algorithm)
	for _, dk := range g.decrypt {
		if (enc.Header.KeyID != "" && dk.key.KeyID != "" && dk.key.KeyID != enc.Header.KeyID) || !slices.Contains(dk.algs, alg) {
			continue
		}
		plain, err := enc.Decrypt(dk.key.Key)
		if err != nil {
			continue
		}
		jws := string(plain)
		if strings.Count(jws, ".") != 2 {
			return "", tokenError("the encrypted token does not hold a signed JWT", nil)
		}
		return jws, nil
	}
	return "", tokenError("the token cannot be decrypted with this API's keys", nil)
}
