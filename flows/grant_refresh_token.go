package flows

import (
	"errors"
	"slices"
	"strings"

	"github.com/portcullis-gw/portcullis/store"
)

// refreshTokenGrant rotates a refresh token (RFC 6749 §6, RFC 9700 §4.14).
type refreshTokenGrant struct{ s *Server }

func (g refreshTokenGrant) Grant(req *TokenRequest) (*TokenResponse, error) {
	s, ctx := g.s, req.HTTP.Context()
	presented := req.Form.Get("refresh_token")
	if presented == "" {
		return nil, errInvalidRequest("refresh_token is required")
	}
	old, err := s.store.GetRefreshToken(ctx, digest(presented))
	switch {
	case errors.Is(err, store.ErrAlreadyUsed):
		if old.ClientID != req.Client.ID {
			return nil, errInvalidGrant("the refresh token was issued to another client")
		}
		return nil, s.refreshRotationError(ctx, old.GrantID, err)
	case errors.Is(err, store.ErrNotFound):
		return nil, errInvalidGrant("the refresh token is invalid, expired or revoked")
	case err != nil:
		return nil, errServer(err)
	}
	// RFC 6749 §6: "validate the refresh token ... was issued to the
	// authenticated client".
	if old.ClientID != req.Client.ID {
		return nil, errInvalidGrant("the refresh token was issued to another client")
	}
	// RFC 9449 §5: "The binding MUST be validated when the refresh token is
	// later presented to get new access tokens. As a result, such a client
	// MUST present a DPoP proof for the same key that was used to obtain
	// the refresh token".
	if old.JKT != "" && req.dpopJKT() != old.JKT {
		return nil, errInvalidGrant("the refresh token is bound to a DPoP key: send a DPoP proof signed with that key")
	}
	user, err := s.activeUser(ctx, old.Subject)
	if err != nil {
		return nil, err
	}
	api, err := s.apiOrNil(ctx, old.Audience)
	if err != nil {
		return nil, err
	}
	// What the client, the API and the user allow may have narrowed since
	// the grant was made (an admin cut the client's scopes, the API dropped
	// one): what is no longer allowed is dropped from this token and from
	// the grant's later refresh tokens, as /authorize would refuse it today.
	granted := allowedUserScopes(req.Client, api, old.Scopes)
	if len(granted) == 0 && len(old.Scopes) > 0 {
		return nil, errInvalidGrant("none of the scopes of this grant (%s) is still allowed for client %s", strings.Join(old.Scopes, " "), req.Client.ID)
	}
	// RFC 6749 §6: "The requested scope MUST NOT include any scope not
	// originally granted by the resource owner".
	scopes := granted
	if param := req.Form.Get("scope"); param != "" {
		asked, err := parseScope(param)
		if err != nil {
			return nil, err
		}
		for _, sc := range asked {
			if !slices.Contains(old.Scopes, sc) {
				return nil, errInvalidScope("scope %q was not granted originally", sc)
			}
			if !slices.Contains(granted, sc) {
				return nil, errInvalidScope("scope %q is no longer allowed for client %s", sc, req.Client.ID)
			}
		}
		scopes = asked
	}
	grant, err := s.store.GetGrant(ctx, old.GrantID)
	if err != nil {
		return nil, errInvalidGrant("the grant of this refresh token is revoked or expired")
	}
	p := issueParams{
		Client: req.Client, User: user, Scopes: scopes, GrantedScopes: granted, API: api, GrantID: old.GrantID,
		AuthTime: grant.AuthTime, SessionID: grant.SessionID, WithIDToken: hasScope(scopes, "openid"),
		DPoPJKT: req.dpopJKT(),
	}
	resp, err := s.issue(ctx, p, grant, true, old.Digest)
	if err != nil {
		return nil, err
	}
	return resp, nil
}
