package flows

import (
	"encoding/json"
	"net/http"
	"sort"
)

// metadata is the OpenID Provider Metadata (OIDC Discovery §3), which is
// also valid RFC 8414 authorization server metadata.
func (s *Server) metadata() map[string]any {
	grantTypes := make([]string, 0, len(s.grants))
	for gt := range s.grants {
		grantTypes = append(grantTypes, gt)
	}
	sort.Strings(grantTypes)
	authMethods := []string{AuthMethodSecretBasic, AuthMethodSecretPost, AuthMethodSecretJWT, AuthMethodPrivateKeyJWT, AuthMethodNone}
	return map[string]any{
		"issuer":                                        s.issuer,
		"authorization_endpoint":                        s.url(PathAuthorize),
		"token_endpoint":                                s.url(PathToken),
		"userinfo_endpoint":                             s.url(PathUserinfo),
		"jwks_uri":                                      s.url(PathJWKS),
		"introspection_endpoint":                        s.url(PathIntrospect),
		"revocation_endpoint":                           s.url(PathRevoke),
		"end_session_endpoint":                          s.url(PathEndSession),
		"device_authorization_endpoint":                 s.url(PathDeviceAuthorization),
		"pushed_authorization_request_endpoint":         s.url(PathPAR),
		"require_pushed_authorization_requests":         false,
		"scopes_supported":                              standardScopeNames(),
		"response_types_supported":                      []string{"code"},
		"response_modes_supported":                      []string{"query", "fragment", "form_post"},
		"grant_types_supported":                         grantTypes,
		"subject_types_supported":                       []string{"public"},
		"id_token_signing_alg_values_supported":         []string{s.keys.Alg()},
		"token_endpoint_auth_methods_supported":         authMethods,
		"introspection_endpoint_auth_methods_supported": authMethods[:4],
		"revocation_endpoint_auth_methods_supported":    authMethods,
		"code_challenge_methods_supported":              []string{"S256"},
		"dpop_signing_alg_values_supported":             s.dpop.SupportedAlgs(),
		"claims_supported": []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "azp", "at_hash", "sid",
			"name", "preferred_username", "email", "email_verified", "groups"},
		"prompt_values_supported":                        []string{"none", "login", "consent", "select_account"},
		"authorization_response_iss_parameter_supported": true,
		"claims_parameter_supported":                     false,
		"request_parameter_supported":                    false,
		"request_uri_parameter_supported":                false,
		"frontchannel_logout_supported":                  false,
		"backchannel_logout_supported":                   true,
		"backchannel_logout_session_supported":           true,

		// CIBA (OpenID CIBA Core 1.0 §4).
		"backchannel_authentication_endpoint":                             s.url(PathBackchannelAuthentication),
		"backchannel_token_delivery_modes_supported":                      []string{"poll", "ping", "push"},
		"backchannel_user_code_parameter_supported":                       true,
		"backchannel_authentication_request_signing_alg_values_supported": assertionSigningAlgs(),

		// Client assertions (RFC 7523 §2.2): private_key_jwt and
		// client_secret_jwt algorithms.
		"token_endpoint_auth_signing_alg_values_supported":         assertionSigningAlgs(),
		"introspection_endpoint_auth_signing_alg_values_supported": assertionSigningAlgs(),
		"revocation_endpoint_auth_signing_alg_values_supported":    assertionSigningAlgs(),
	}
}

// refreshMetadata re-renders the discovery document, served from memory.
func (s *Server) refreshMetadata() {
	body, err := json.Marshal(s.metadata())
	if err != nil {
		panic(err) // only plain strings and slices: cannot fail
	}
	s.discovery.Store(&body)
}

func (s *Server) serveDiscovery(w http.ResponseWriter, _ *http.Request) {
	body := *s.discovery.Load()
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("Access-Control-Allow-Origin", "*")
	w.Write(body)
}

func (s *Server) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/jwk-set+json")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("Access-Control-Allow-Origin", "*")
	w.Write(s.keys.JWKS())
}
