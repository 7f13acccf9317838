package flows

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/portcullis-gw/portcullis/dpop"
	"github.com/portcullis-gw/portcullis/store"
)

// serveIntrospect is RFC 7662. Only authenticated confidential clients may
// introspect (§2.1: "the endpoint MUST also require some form of
// authorization"), so token scanning needs a client secret.
func (s *Server) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	if err := parsePostForm(w, r); err != nil {
		s.writeJSONError(w, r, err)
		return
	}
	client, err := s.authenticateClient(r)
	if err != nil {
		s.writeJSONError(w, r, err)
		return
	}
	if client.Public() {
		s.writeJSONError(w, r, errUnauthorizedClient("public clients cannot introspect tokens"))
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		s.writeJSONError(w, r, errInvalidRequest("token is required"))
		return
	}
	info, err := s.lookupAnyToken(r.Context(), tok, r.PostForm.Get("token_type_hint"))
	if errors.Is(err, store.ErrNotFound) {
		writeJSON(w, http.StatusOK, map[string]bool{"active": false})
		return
	}
	if err != nil {
		s.writeJSONError(w, r, errServer(err))
		return
	}
	writeJSON(w, http.StatusOK, s.introspectionResponse(info))
}

// IntrospectAccessToken is RFC 7662 introspection in process, for an API
// guard in the same Caddy: the response members for an access token this
// server issued and that is still valid, or {"active": false}. Refresh
// tokens are never active here: an API must not accept one as an access
// token.
func (s *Server) IntrospectAccessToken(ctx context.Context, tok string) (map[string]any, error) {
	info, err := s.lookupAccessToken(ctx, tok)
	if errors.Is(err, store.ErrNotFound) {
		return map[string]any{"active": false}, nil
	}
	if err != nil {
		return nil, err
	}
	return s.introspectionResponse(info), nil
}

// AccessTokenRevoked reports whether the JWT access token with this jti
// was revoked before it expired — with its grant (a replayed code, a
// reused refresh token, a deleted user or client) or on its own at the
// revocation endpoint. It is an API guard's per-request check: the store
// answers from memory.
func (s *Server) AccessTokenRevoked(ctx context.Context, jti string) (bool, error) {
	return s.store.IsJTIRevoked(ctx, jti)
}

// introspectionResponse is the RFC 7662 §2.2 response for a valid token.
func (s *Server) introspectionResponse(info *tokenInfo) map[string]any {
	resp := map[string]any{
		"active": true, "client_id": info.ClientID, "token_type": "Bearer", "iss": s.issuer,
		"exp": info.ExpiresAt.Unix(), "iat": info.IssuedAt.Unix(),
	}
	if info.Kind == "refresh_token" {
		resp["token_type"] = "refresh_token"
	}
	if len(info.Scopes) > 0 {
		resp["scope"] = strings.Join(info.Scopes, " ")
	}
	if info.Subject != "" {
		resp["sub"] = info.Subject
	}
	if len(info.Audience) == 1 {
		resp["aud"] = info.Audience[0]
	} else if len(info.Audience) > 1 {
		resp["aud"] = info.Audience
	}
	if info.JTI != "" {
		resp["jti"] = info.JTI
	}
	if !info.AuthTime.IsZero() {
		resp["auth_time"] = info.AuthTime.Unix()
	}
	if info.JKT != "" {
		// RFC 9449 §6.2: the key of a DPoP-bound token; "If the token_type
		// member is included in the introspection response, it MUST contain
		// the value DPoP."
		resp["cnf"] = map[string]any{"jkt": info.JKT}
		resp["token_type"] = dpop.Scheme
	}
	return resp
}

// lookupAnyToken finds an access or refresh token, trying the hinted kind
// first (RFC 7662 §2.1: the hint is only a hint).
func (s *Server) lookupAnyToken(ctx context.Context, tok, hint string) (*tokenInfo, error) {
	lookups := []func() (*tokenInfo, error){
		func() (*tokenInfo, error) { return s.lookupAccessToken(ctx, tok) },
		func() (*tokenInfo, error) { return s.lookupRefreshToken(ctx, tok) },
	}
	if hint == "refresh_token" {
		lookups[0], lookups[1] = lookups[1], lookups[0]
	}
	for _, lookup := range lookups {
		info, err := lookup()
		if err == nil || !errors.Is(err, store.ErrNotFound) {
			return info, err
		}
	}
	return nil, store.ErrNotFound
}

func (s *Server) lookupRefreshToken(ctx context.Context, tok string) (*tokenInfo, error) {
	if looksLikeJWT(tok) {
		return nil, store.ErrNotFound
	}
	rt, err := s.store.GetRefreshToken(ctx, digest(tok))
	if errors.Is(err, store.ErrAlreadyUsed) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	info := &tokenInfo{Kind: "refresh_token", ClientID: rt.ClientID, Subject: rt.Subject, Scopes: rt.Scopes,
		IssuedAt: rt.CreatedAt, ExpiresAt: rt.ExpiresAt}
	if rt.Audience != "" {
		info.Audience = []string{rt.Audience}
	}
	return info, nil
}
