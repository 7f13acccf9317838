package flows

import (
	"errors"
	"slices"

	"github.com/portcullis-gw/portcullis/store"
)

// clientCredentialsGrant issues a token to a client for itself (RFC 6749
// §4.4) for one API, limited to the scopes the client was granted for it.
type clientCredentialsGrant struct{ s *Server }

func (g clientCredentialsGrant) Grant(req *TokenRequest) (*TokenResponse, error) {
	s, ctx := g.s, req.HTTP.Context()
	// RFC 6749 §4.4: "The client credentials grant type MUST only be used
	// by confidential clients."
	if req.Client.Public() {
		return nil, errUnauthorizedClient("public clients cannot use client_credentials")
	}
	audience := req.Form.Get("audience")
	if audience == "" {
		audience = req.Form.Get("resource") // RFC 8707
	}
	if audience == "" {
		if len(req.Client.APIAccess) != 1 {
			return nil, errInvalidRequest("audience is required: name the API the token is for")
		}
		for aud := range req.Client.APIAccess {
			audience = aud
		}
	}
	allowed, ok := req.Client.APIAccess[audience]
	if !ok {
		// RFC 8707 §2: invalid_target for a resource the client may not use.
		return nil, oauthErr("invalid_target", 400, "client %s has no access to API %s", req.Client.ID, audience)
	}
	api, err := s.store.GetAPI(ctx, audience)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errInvalidRequest("audience %q is not a known API", audience)
	}
	if err != nil {
		return nil, errServer(err)
	}
	scopes := allowed
	if param := req.Form.Get("scope"); param != "" {
		asked, err := parseScope(param)
		if err != nil {
			return nil, err
		}
		for _, sc := range asked {
			if !slices.Contains(allowed, sc) || !slices.Contains(api.Scopes, sc) {
				return nil, errInvalidScope("client %s is not granted scope %q for %s", req.Client.ID, sc, audience)
			}
		}
		scopes = asked
	}
	return s.issue(ctx, issueParams{Client: req.Client, Scopes: scopes, API: api, DPoPJKT: req.dpopJKT()}, nil, false, "")
}
