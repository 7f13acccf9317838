package proxy

import (
	"net/url"
	"time"
)

// requestObjectTTL bounds how long a signed request object is valid: long
// enough for a redirect, short enough that a leaked one is useless.
const requestObjectTTL = 5 * time.Minute

// requestObject turns authorization request parameters into a signed
// request object (JAR, RFC 9101) for the provider at audience.
//
// RFC 9101 §4: "The Request Object MAY be sent by value ... or by
// reference"; we send it by value (or push it, with PAR). §10.8: the typ
// header is "oauth-authz-req+jwt". The iss claim is the client_id and aud
// the authorization server's issuer identifier (§4).
func (g *Gateway) requestObject(params url.Values, audience string) (string, error) {
	now := g.now()
	claims := make(map[string]any, len(params)+6)
	for k, v := range params {
		if len(v) > 0 {
			claims[k] = v[0]
		}
	}
	claims["iss"] = g.cfg.ClientID
	claims["aud"] = audience
	claims["iat"] = now.Unix()
	claims["nbf"] = now.Unix()
	claims["exp"] = now.Add(requestObjectTTL).Unix()
	claims["jti"] = randomString()
	return g.cfg.Signer.sign(claims, requestObjectType)
}

// jarParams replaces params by a signed request object. OIDC Core §6.1
// wants client_id, response_type and scope as plain parameters too, so
// that a provider can tell an OpenID request before it decodes the object;
// RFC 9101 §5 says the provider uses only the object's values.
func (g *Gateway) jarParams(params url.Values, audience string) (url.Values, error) {
	ro, err := g.requestObject(params, audience)
	if err != nil {
		return nil, err
	}
	return url.Values{
		"client_id":     {g.cfg.ClientID},
		"response_type": {params.Get("response_type")},
		"scope":         {params.Get("scope")},
		"request":       {ro},
	}, nil
}
