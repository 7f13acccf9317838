package proxy

import (
	"crypto/sha256"
	"net/http"
	"time"
)

// assertionTTL is the lifetime of an identity assertion: one request's
// worth, with room for clock skew between the gateway and the app.
const assertionTTL = 2 * time.Minute

// assertionClaims are the identity claims copied into an assertion when
// the session has them.
var assertionClaims = []string{"email", "email_verified", "name", "preferred_username", "groups"}

// identityAssertion is a short-lived JWT, signed with the gateway's key,
// that tells the upstream who the user is. Unlike plain identity headers
// it can be verified (against the gateway's JWKS), so an app reachable by
// other paths than the gateway need not trust the network.
//
// iss is the site the user reached (scheme://host), aud the configured
// audience (default: the same origin), sub the provider's subject.
//
// Signing is the costly part, so an assertion is reused for half its
// lifetime by the requests of the same session and site: the ID token
// fixes the claims (they are taken from it, and from UserInfo, at the same
// moment), the origin fixes iss and aud.
func (g *Gateway) identityAssertion(r *http.Request, id *Identity) (string, error) {
	now := g.now()
	origin := requestOrigin(r)
	var key [32]byte
	if id.idToken != "" {
		key = sha256.Sum256([]byte(origin + "\x00" + id.idToken))
		if jwt, ok := g.assertions.get(key, now); ok {
			return jwt, nil
		}
	}
	jwt, err := g.signAssertion(now, origin, id)
	if err == nil && id.idToken != "" {
		g.assertions.put(key, jwt, now.Add(assertionTTL/2), now)
	}
	return jwt, err
}

// maxCachedAssertions bounds the assertions kept for reuse.
const maxCachedAssertions = 10_000

// signAssertion signs a fresh assertion for id, issued at now.
func (g *Gateway) signAssertion(now time.Time, origin string, id *Identity) (string, error) {
	aud := g.cfg.AssertionAudience
	if aud == "" {
		aud = origin
	}
	claims := map[string]any{
		"iss": origin,
		"aud": aud,
		"sub": id.Subject,
		"iat": now.Unix(),
		"exp": now.Add(assertionTTL).Unix(),
	}
	if g.cfg.Issuer != "" {
		claims["idp"] = g.cfg.Issuer
	}
	for _, c := range assertionClaims {
		if v, ok := id.Claims[c]; ok && v != nil {
			claims[c] = v
		}
	}
	return g.cfg.Signer.sign(claims, "JWT")
}
