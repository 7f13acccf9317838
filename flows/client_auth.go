package flows

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/portcullis-gw/portcullis/store"
)

// Client authentication methods (RFC 6749 §2.3, OIDC Core §9).
const (
	AuthMethodSecretBasic = "client_secret_basic"
	AuthMethodSecretPost  = "client_secret_post"
	// AuthMethodSecretJWT is client_secret_jwt: a JWT assertion (RFC 7523
	// §2.2) with an HMAC (HS256/384/512) keyed with the client secret.
	AuthMethodSecretJWT = "client_secret_jwt"
	// AuthMethodPrivateKeyJWT is private_key_jwt: a JWT assertion signed
	// with a private key whose public key the client registered (jwks or
	// jwks_uri).
	AuthMethodPrivateKeyJWT = "private_key_jwt"
	AuthMethodNone          = "none"
)

// authenticateClient identifies and authenticates the client of a
// back-channel request (token, introspection, revocation, device
// authorization) from the parsed form. A client may use exactly one method
// per request (RFC 6749 §2.3), and the method it registered decides which:
// client_secret_basic and client_secret_post clients may use either secret
// method, private_key_jwt and client_secret_jwt clients only their JWT
// assertion.
func (s *Server) authenticateClient(r *http.Request) (*store.Client, error) {
	basicID, basicSecret, hasBasic := r.BasicAuth()
	formID, formSecret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if r.PostForm.Has("client_assertion") || r.PostForm.Has("client_assertion_type") {
		// RFC 6749 §2.3: "The client MUST NOT use more than one
		// authentication method in each request."
		if hasBasic || formSecret != "" {
			return nil, errInvalidRequest("use one client authentication method: a client_assertion, without HTTP Basic or client_secret")
		}
		return s.authenticateAssertion(r)
	}
	if hasBasic && formSecret != "" {
		return nil, errInvalidRequest("use one client authentication method, not both HTTP Basic and client_secret")
	}
	var id, secret, method string
	switch {
	case hasBasic:
		// RFC 6749 §2.3.1: the id and secret are form-urlencoded before
		// being put in the Basic header.
		var err1, err2 error
		id, err1 = url.QueryUnescape(basicID)
		secret, err2 = url.QueryUnescape(basicSecret)
		if err1 != nil || err2 != nil {
			return nil, errInvalidClient("malformed HTTP Basic credentials")
		}
		method = AuthMethodSecretBasic
		if formID != "" && formID != id {
			return nil, errInvalidRequest("client_id in the body does not match the authenticated client")
		}
	case formSecret != "":
		id, secret, method = formID, formSecret, AuthMethodSecretPost
	default:
		id, method = formID, AuthMethodNone
	}
	if id == "" {
		return nil, errInvalidClient("client authentication is required: send client_id (and the secret by HTTP Basic or client_secret, or a client_assertion)")
	}
	client, err := s.store.GetClient(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		// Spend the same time as a real comparison.
		equalDigest(secret, digest("unknown-client"))
		return nil, errInvalidClient("client authentication failed")
	}
	if err != nil {
		return nil, errServer(err)
	}
	registered := client.TokenEndpointAuthMethod
	if registered == "" {
		registered = AuthMethodSecretBasic
	}
	switch {
	case registered == AuthMethodNone && method == AuthMethodNone:
		return client, nil
	case registered == AuthMethodNone:
		return nil, errInvalidClient("client %s is public and must not send a secret", id)
	case method == AuthMethodNone:
		return nil, errInvalidClient("client %s must authenticate (registered method %s)", id, registered)
	case registered == AuthMethodPrivateKeyJWT || registered == AuthMethodSecretJWT:
		// The registered method decides: a client_secret_jwt secret sent
		// as is would be exposed to whatever sees the request.
		return nil, errInvalidClient("client %s is registered for %s: authenticate with a signed client_assertion (RFC 7523), not a secret", id, registered)
	}
	// A confidential client registered for basic may also use post and vice
	// versa: both prove the same secret over TLS.
	if client.SecretDigest == "" || !equalDigest(secret, client.SecretDigest) {
		return nil, errInvalidClient("client authentication failed")
	}
	return client, nil
}
