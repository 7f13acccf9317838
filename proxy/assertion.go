package proxy

import (
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
func (g *Gateway) identityAssertion(r *http.Request, id *Identity) (string, error) {
	now := g.now()
	origin := requestOrigin(r)
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
