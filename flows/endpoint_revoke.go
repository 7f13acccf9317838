package flows

import (
	"errors"
	"net/http"

	"github.com/portcullis-gw/portcullis/store"
)

// serveRevoke is RFC 7009. Revoking a refresh token revokes its whole grant
// (§2.1: "SHOULD also invalidate all access tokens based on the same
// authorization grant"). Unknown tokens, and tokens of other clients, get
// 200 like revoked ones (§2.2), so the endpoint reveals nothing.
func (s *Server) serveRevoke(w http.ResponseWriter, r *http.Request) {
	if err := parsePostForm(w, r); err != nil {
		s.writeJSONError(w, r, err)
		return
	}
	client, err := s.authenticateClient(r)
	if err != nil {
		s.writeJSONError(w, r, err)
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		s.writeJSONError(w, r, errInvalidRequest("token is required"))
		return
	}
	switch hint := r.PostForm.Get("token_type_hint"); hint {
	case "", "access_token", "refresh_token":
	default:
		s.writeJSONError(w, r, oauthErr("unsupported_token_type", http.StatusBadRequest, "token_type_hint %q is not supported", hint))
		return
	}
	if err := s.revoke(r, client, tok); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.writeJSONError(w, r, errServer(err))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

func (s *Server) revoke(r *http.Request, client *store.Client, tok string) error {
	ctx := r.Context()
	if !looksLikeJWT(tok) {
		rt, err := s.store.GetRefreshToken(ctx, digest(tok))
		if err == nil || errors.Is(err, store.ErrAlreadyUsed) {
			if rt.ClientID != client.ID {
				return nil
			}
			return s.store.RevokeGrant(ctx, rt.GrantID)
		}
		at, err := s.store.GetAccessToken(ctx, digest(tok))
		if err != nil {
			return err
		}
		if at.ClientID != client.ID {
			return nil
		}
		return s.store.DeleteAccessToken(ctx, at.Digest)
	}
	info, err := s.lookupAccessToken(ctx, tok)
	if err != nil {
		return err
	}
	if info.ClientID != client.ID {
		return nil
	}
	return s.store.RevokeJTI(ctx, info.JTI, info.ExpiresAt)
}
