package flows

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"regexp"

	"go.uber.org/zap"

	"github.com/portcullis-gw/portcullis/store"
)

// authorizationCodeGrant redeems an authorization code (RFC 6749 §4.1.3).
type authorizationCodeGrant struct{ s *Server }

// pkceVerifier is RFC 7636 §4.1: code-verifier = 43*128unreserved.
var pkceVerifier = regexp.MustCompile(`^[A-Za-z0-9\-._~]{43,128}$`)

func (g authorizationCodeGrant) Grant(req *TokenRequest) (*TokenResponse, error) {
	s, ctx := g.s, req.HTTP.Context()
	codeParam := req.Form.Get("code")
	if codeParam == "" {
		return nil, errInvalidRequest("code is required")
	}
	code, err := s.store.TakeCode(ctx, digest(codeParam))
	switch {
	case errors.Is(err, store.ErrAlreadyUsed):
		// RFC 6749 §4.1.2 / RFC 9700 §4.5: a replayed code revokes every
		// token it issued.
		if rerr := s.store.RevokeGrant(ctx, code.GrantID); rerr != nil {
			return nil, errServer(rerr)
		}
		s.log.Warn("authorization code replayed; grant revoked", zap.String("client", req.Client.ID), zap.String("grant", code.GrantID))
		return nil, errInvalidGrant("the authorization code was already used; the tokens it issued are revoked")
	case errors.Is(err, store.ErrNotFound):
		return nil, errInvalidGrant("the authorization code is invalid or expired")
	case err != nil:
		return nil, errServer(err)
	}
	// RFC 6749 §4.1.3: "ensure that the authorization code was issued to the
	// authenticated confidential client, or ... public client".
	if code.ClientID != req.Client.ID {
		return nil, errInvalidGrant("the authorization code was issued to another client")
	}
	// "ensure that the redirect_uri parameter is present if [it] was
	// included in the initial authorization request ... and if included
	// ensure that their values are identical."
	if redirect := req.Form.Get("redirect_uri"); redirect != code.RedirectURI && (redirect != "" || code.RedirectURI != "") {
		return nil, errInvalidGrant("redirect_uri does not match the authorization request")
	}
	if err := checkPKCE(code, req.Form.Get("code_verifier")); err != nil {
		return nil, err
	}
	user, err := s.activeUser(ctx, code.Subject)
	if err != nil {
		return nil, err
	}
	api, err := s.apiOrNil(ctx, code.Audience)
	if err != nil {
		return nil, err
	}
	grant := &store.Grant{
		ID: code.GrantID, ClientID: code.ClientID, Subject: code.Subject, Scopes: code.Scopes,
		Audience: code.Audience, AuthTime: code.AuthTime, SessionID: code.SessionID,
		CreatedAt: s.now(), ExpiresAt: s.now().Add(s.cfg.RefreshTokenTTL),
	}
	p := issueParams{
		Client: req.Client, User: user, Scopes: code.Scopes, API: api, GrantID: code.GrantID,
		AuthTime: code.AuthTime, SessionID: code.SessionID, Nonce: code.Nonce,
		WithIDToken: hasScope(code.Scopes, "openid"), DPoPJKT: req.dpopJKT(),
	}
	return s.issue(ctx, p, grant, s.issuesRefresh(req.Client, code.Scopes), "")
}

// checkPKCE applies RFC 7636 §4.6 and the downgrade rule of RFC 9700
// §2.1.1: a verifier without a challenge is refused, as is a challenge
// without a verifier.
func checkPKCE(code *store.AuthCode, verifier string) error {
	if code.CodeChallenge == "" {
		if verifier != "" {
			return errInvalidGrant("code_verifier sent but the authorization request had no code_challenge")
		}
		return nil
	}
	if verifier == "" {
		return errInvalidGrant("code_verifier is required: the authorization request used PKCE")
	}
	if !pkceVerifier.MatchString(verifier) {
		return errInvalidGrant("code_verifier must be 43 to 128 unreserved characters")
	}
	sum := sha256.Sum256([]byte(verifier))
	computed := base64.RawURLEncoding.EncodeToString(sum[:])
	if subtle.ConstantTimeCompare([]byte(computed), []byte(code.CodeChallenge)) != 1 {
		return errInvalidGrant("code_verifier does not match the code_challenge")
	}
	return nil
}

// issuesRefresh decides whether a grant yields a refresh token: only for
// clients allowed the refresh_token grant, and only with offline_access
// unless the client always gets one.
func (s *Server) issuesRefresh(c *store.Client, scopes []string) bool {
	return c.HasGrantType(GrantRefreshToken) && (hasScope(scopes, "offline_access") || c.AlwaysIssueRefreshToken)
}

// activeUser loads the user a grant is for, refusing deleted or disabled
// users.
func (s *Server) activeUser(ctx context.Context, subject string) (*store.User, error) {
	u, err := s.store.GetUser(ctx, subject)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.Disabled) {
		return nil, errInvalidGrant("the user of this grant no longer exists or is disabled")
	}
	if err != nil {
		return nil, errServer(err)
	}
	return u, nil
}

func (s *Server) apiOrNil(ctx context.Context, identifier string) (*store.API, error) {
	if identifier == "" {
		return nil, nil
	}
	api, err := s.store.GetAPI(ctx, identifier)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errInvalidGrant("the API %s of this grant no longer exists", identifier)
	}
	if err != nil {
		return nil, errServer(err)
	}
	return api, nil
}
