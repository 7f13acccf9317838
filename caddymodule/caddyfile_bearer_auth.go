package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("bearer_auth", parseBearerAuth)
	// An authentication directive, like basic_auth and oidc_login: before
	// request_header, respond, reverse_proxy and file_server.
	httpcaddyfile.RegisterDirectiveOrder("bearer_auth", httpcaddyfile.After, "basic_auth")
}

// parseBearerAuth sets up the API guard:
//
//	bearer_auth [<scope...>] {
//		issuer <url>
//		jwks_uri <url>
//		audience <aud...>
//		any_audience
//		algorithms <alg...>
//		require_at_jwt
//		leeway <duration>
//		scopes <scope...>
//		any_scope
//		require_claim <claim> <value...>
//		header <Header-Name> <claim>
//		forward_authorization [true|false]
//		allow_query_token
//		introspection_endpoint <url>
//		client_id <id>
//		client_secret <secret>
//		cache_ttl <duration>
//		negative_cache_ttl <duration>
//		cache_entries <n>
//		introspect_jwts
//		decryption_key <pem file>
//		resource <uri>
//		resource_name <name>
//		resource_metadata [true|false]
//		require_dpop
//		dpop_nonce
//	}
//
// Scopes given on the directive line are required like `scopes`.
func parseBearerAuth(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	h.Next()
	m := new(BearerAuth)
	m.Scopes = h.RemainingArgs()
	d := h.Dispenser
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "issuer":
			err = oneArg(d, &m.Issuer)
		case "jwks_uri":
			err = oneArg(d, &m.JWKSURI)
		case "audience", "audiences":
			var more []string
			more, err = listArgs(d)
			m.Audiences = append(m.Audiences, more...)
		case "any_audience":
			m.AnyAudience = true
			err = noArgs(d)
		case "algorithms":
			m.Algorithms, err = listArgs(d)
		case "require_at_jwt":
			m.RequireATJWT = true
			err = noArgs(d)
		case "leeway":
			err = durationArg(d, &m.Leeway)
		case "scopes":
			var more []string
			more, err = listArgs(d)
			m.Scopes = append(m.Scopes, more...)
		case "any_scope":
			m.AnyScope = true
			err = noArgs(d)
		case "require_claim":
			err = requireClaimArg(d, &m.RequireClaims)
		case "header":
			err = headerClaimArg(d, &m.Headers)
		case "forward_authorization":
			var v bool
			err = boolArg(d, &v)
			m.ForwardAuthorization = &v
		case "allow_query_token":
			m.AllowQueryToken = true
			err = noArgs(d)
		case "introspection_endpoint":
			err = oneArg(d, &m.IntrospectionEndpoint)
		case "client_id":
			err = oneArg(d, &m.ClientID)
		case "client_secret":
			err = oneArg(d, &m.ClientSecret)
		case "cache_ttl":
			err = durationArg(d, &m.CacheTTL)
		case "negative_cache_ttl":
			err = durationArg(d, &m.NegativeCacheTTL)
		case "cache_entries":
			var s string
			if err = oneArg(d, &s); err == nil {
				if m.CacheEntries, err = strconv.Atoi(s); err != nil || m.CacheEntries <= 0 {
					err = d.Errf("cache_entries must be a positive number, got %q", s)
				}
			}
		case "decryption_key":
			var path string
			err = oneArg(d, &path)
			m.DecryptionKeys = append(m.DecryptionKeys, path)
		case "resource":
			err = oneArg(d, &m.Resource)
		case "resource_name":
			err = oneArg(d, &m.ResourceName)
		case "resource_metadata":
			v := true
			err = boolArg(d, &v)
			m.DisableMetadata = !v
		case "require_dpop":
			m.RequireDPoP = true
			err = noArgs(d)
		case "dpop_nonce":
			m.DPoPNonce = true
			err = noArgs(d)
		case "introspect_jwts":
			m.IntrospectJWTs = true
			err = noArgs(d)
		default:
			err = d.Errf("unrecognized bearer_auth option %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	if m.Issuer == "" {
		return nil, d.Err("bearer_auth needs an issuer")
	}
	if len(m.Audiences) == 0 && !m.AnyAudience {
		return nil, d.Err("bearer_auth needs an audience (the API identifier tokens are issued for), or any_audience")
	}
	return m, nil
}
