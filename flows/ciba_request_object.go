package flows

import (
	"context"
	"encoding/json"
	"math"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/portcullis-gw/portcullis/store"
)

// Signed CIBA request objects (CIBA Core §7.1.1), login_hint_token and
// id_token_hint.

const (
	// maxRequestObjectBytes bounds the request and login_hint_token
	// parameters.
	maxRequestObjectBytes = 16 << 10
	// maxRequestObjectLifetime is how far ahead a request object's exp may
	// be: its jti is remembered that long.
	maxRequestObjectLifetime = 10 * time.Minute
	// requestObjectJTIPrefix keeps request object ids apart from client
	// assertion ids in the shared replay set.
	requestObjectJTIPrefix = "ciba_request:"
)

// cibaClientAlgs is what a client may sign its request objects and
// login_hint_tokens with: asymmetric algorithms when it registered keys,
// HMAC algorithms its client_secret_jwt secret is long enough for; only
// its registered backchannel_authentication_request_signing_alg when it
// has one.
func cibaClientAlgs(c *store.Client) []jose.SignatureAlgorithm {
	var algs []jose.SignatureAlgorithm
	switch {
	case len(c.JWKS) > 0 || c.JWKSURI != "":
		algs = privateKeyJWTAlgs
	case c.HMACSecret != "":
		for _, a := range clientSecretJWTAlgs {
			if len(c.HMACSecret) >= MinHMACSecretBytes(string(a)) {
				algs = append(algs, a)
			}
		}
	}
	if pinned := jose.SignatureAlgorithm(c.BackchannelAuthenticationRequestSigningAlg); pinned != "" {
		if !slices.Contains(algs, pinned) {
			return nil
		}
		return []jose.SignatureAlgorithm{pinned}
	}
	return algs
}

// verifyClientJWT checks the signature of a JWT the client signed (a
// request object, a login_hint_token) with the client's registered keys or
// client_secret_jwt secret, and decodes its claims into both outs.
func (s *Server) verifyClientJWT(ctx context.Context, c *store.Client, raw, what string, outs ...any) *Error {
	if len(raw) > maxRequestObjectBytes {
		return errInvalidRequest("%s is larger than %d bytes", what, maxRequestObjectBytes)
	}
	tok, err := jwt.ParseSigned(raw, assertionAlgs)
	if err != nil {
		return errInvalidRequest("%s is not a signed JWT (compact JWS with one of %s): %v", what, algNames(assertionAlgs), err)
	}
	alg := jose.SignatureAlgorithm(tok.Headers[0].Algorithm)
	accepted := cibaClientAlgs(c)
	if !slices.Contains(accepted, alg) {
		if len(accepted) == 0 {
			return errInvalidRequest("client %s has no registered keys or client_secret_jwt secret to verify a signed %s", c.ID, what)
		}
		return errInvalidRequest("%s is signed with %s; client %s may use %s", what, alg, c.ID, algNames(accepted))
	}
	var key any
	if slices.Contains(clientSecretJWTAlgs, alg) {
		key = []byte(c.HMACSecret)
	} else {
		kid := tok.Headers[0].KeyID
		set, oe := s.clientKeySet(ctx, c, false)
		if oe != nil {
			return errInvalidRequest("%s", oe.Description)
		}
		candidates := candidateKeys(set, kid, string(alg))
		if len(candidates) == 0 && c.JWKSURI != "" {
			if set, oe = s.clientKeySet(ctx, c, true); oe != nil {
				return errInvalidRequest("%s", oe.Description)
			}
			candidates = candidateKeys(set, kid, string(alg))
		}
		if len(candidates) == 0 || (kid == "" && len(candidates) > maxKeysWithoutKID) {
			return errInvalidRequest("%s: client %s has no single registered %s key to verify it with (set kid)", what, c.ID, alg)
		}
		for _, k := range candidates {
			if tok.Claims(k.Key) == nil {
				key = k.Key
				break
			}
		}
		if key == nil {
			return errInvalidRequest("%s signature does not verify with the registered keys of client %s", what, c.ID)
		}
	}
	if err := tok.Claims(key, outs...); err != nil {
		return errInvalidRequest("%s signature or claims do not verify: %v", what, err)
	}
	return nil
}

// requestObjectParams verifies a signed authentication request (CIBA Core
// §7.1.1) and returns its claims as the request's parameters.
func (s *Server) requestObjectParams(ctx context.Context, c *store.Client, raw string) (url.Values, error) {
	var claims jwt.Claims
	var all map[string]json.RawMessage
	if oe := s.verifyClientJWT(ctx, c, raw, "the request object", &claims, &all); oe != nil {
		return nil, oe
	}
	now := s.now()
	// §7.1.1: "iss: The Issuer claim MUST be the client_id of the OAuth
	// Client."
	if claims.Issuer != c.ID {
		return nil, errInvalidRequest("the request object iss must be the client_id %s", c.ID)
	}
	// "aud: The Audience claim MUST contain the value of the Issuer
	// Identifier for the OP, which identifies the Authorization Server as
	// an intended audience."
	if !claims.Audience.Contains(s.issuer) {
		return nil, errInvalidRequest("the request object aud must contain the issuer %s", s.issuer)
	}
	// exp, iat, nbf and jti are each "REQUIRED".
	if claims.Expiry == nil || claims.IssuedAt == nil || claims.NotBefore == nil || claims.ID == "" {
		return nil, errInvalidRequest("the request object needs exp, iat, nbf and jti claims")
	}
	exp := claims.Expiry.Time()
	switch {
	case !now.Before(exp.Add(assertionLeeway)):
		return nil, errInvalidRequest("the request object expired at %s", exp.UTC().Format(time.RFC3339))
	case exp.After(now.Add(maxRequestObjectLifetime + assertionLeeway)):
		return nil, errInvalidRequest("the request object exp is more than %s ahead", maxRequestObjectLifetime)
	case claims.NotBefore.Time().After(now.Add(assertionLeeway)):
		return nil, errInvalidRequest("the request object is not valid before %s (nbf)", claims.NotBefore.Time().UTC().Format(time.RFC3339))
	case claims.IssuedAt.Time().After(now.Add(assertionLeeway)):
		return nil, errInvalidRequest("the request object iat is in the future; check the client's clock")
	case len(claims.ID) > maxAssertionJTIBytes:
		return nil, errInvalidRequest("the request object jti is longer than %d bytes", maxAssertionJTIBytes)
	}
	// A signed request is accepted once: its jti joins the used client
	// assertion ids until it expires.
	if oe := s.assertions.used.use(ctx, c.ID, requestObjectJTIPrefix+claims.ID, exp.Add(assertionLeeway)); oe != nil {
		if oe == errAssertionReplayed {
			return nil, errInvalidRequest("the request object was already used: sign every request with a fresh jti")
		}
		return nil, oe
	}
	params := url.Values{}
	for k, v := range all {
		switch k {
		case "iss", "aud", "exp", "iat", "nbf", "jti", "sub":
			continue
		}
		str, ok := claimString(v)
		if !ok {
			return nil, errInvalidRequest("the request object claim %s must be a string or an integer", clip(k))
		}
		params.Set(k, str)
	}
	return params, nil
}

// claimString reads a request object claim as a request parameter: a
// string as it is, an integer (requested_expiry) in decimal.
func claimString(raw json.RawMessage) (string, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var f float64
	if json.Unmarshal(raw, &f) == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.FormatInt(int64(f), 10), true
	}
	return "", false
}

// loginHintTokenSubject reads a login_hint_token. Portcullis accepts one
// form: a JWT signed by the client itself (as its request objects are),
// with iss the client_id, aud the issuer, an exp, and the user named by a
// subject identifier (RFC 9493) sub_id of format "username" or "opaque"
// ({"format":"username","username":"alice"}), or by sub.
func (s *Server) loginHintTokenSubject(ctx context.Context, c *store.Client, raw string) (string, error) {
	var claims jwt.Claims
	var extra struct {
		SubID struct {
			Format   string `json:"format"`
			Username string `json:"username"`
			ID       string `json:"id"`
		} `json:"sub_id"`
	}
	if oe := s.verifyClientJWT(ctx, c, raw, "login_hint_token", &claims, &extra); oe != nil {
		return "", oe
	}
	if claims.Issuer != c.ID || !claims.Audience.Contains(s.issuer) {
		return "", errInvalidRequest("login_hint_token must have iss %s and aud %s", c.ID, s.issuer)
	}
	if claims.Expiry == nil {
		return "", errInvalidRequest("login_hint_token needs an exp claim")
	}
	// CIBA Core §13: "expired_login_hint_token: The login_hint_token
	// provided in the authentication request is not valid because it has
	// expired."
	if !s.now().Before(claims.Expiry.Time().Add(assertionLeeway)) {
		return "", oauthErr("expired_login_hint_token", 400, "the login_hint_token expired at %s", claims.Expiry.Time().UTC().Format(time.RFC3339))
	}
	switch extra.SubID.Format {
	case "username":
		return extra.SubID.Username, nil
	case "opaque":
		return extra.SubID.ID, nil
	case "":
		if claims.Subject != "" {
			return claims.Subject, nil
		}
	}
	return "", errInvalidRequest("login_hint_token must name the user with sub_id (format username or opaque) or sub")
}

// idTokenHintSubject reads an id_token_hint: an ID token this server
// issued to the client. CIBA Core §7.1: the ID token is passed "as a hint
// about the end-user's current or past authenticated session", so its
// expiry is not checked, only its signature, issuer and audience.
func (s *Server) idTokenHintSubject(c *store.Client, hint string) (string, error) {
	if len(hint) > maxRequestObjectBytes {
		return "", errInvalidRequest("id_token_hint is larger than %d bytes", maxRequestObjectBytes)
	}
	var claims struct {
		Issuer   string   `json:"iss"`
		Subject  string   `json:"sub"`
		Audience audience `json:"aud"`
	}
	typ, err := s.keys.Verify(hint, &claims)
	if err != nil || typ != "JWT" || claims.Issuer != s.issuer || claims.Subject == "" {
		return "", errInvalidRequest("id_token_hint is not an ID token issued by this server").WithCause(err)
	}
	if !slices.Contains(claims.Audience, c.ID) {
		return "", errInvalidRequest("id_token_hint was not issued to client %s", c.ID)
	}
	return claims.Subject, nil
}
