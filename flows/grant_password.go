package flows

import (
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/portcullis-gw/portcullis/store"
)

// passwordGrant is the Resource Owner Password Credentials grant (RFC 6749
// §4.3): a trusted client collects the user's username and password itself
// and trades them for tokens. RFC 9700 §2.4 says it "MUST NOT be used", so
// only clients registered with the password grant type get here (the token
// endpoint checks that), for legacy applications that cannot redirect.
//
// It shares the login page's throttle: a failure at either counts against
// the same per-user and per-IP buckets, so switching between the form and
// the grant does not buy an attacker more guesses.
type passwordGrant struct{ s *Server }

// maxCredentialLen bounds the username and password a request may carry.
const maxCredentialLen = 1024

func (g passwordGrant) Grant(req *TokenRequest) (*TokenResponse, error) {
	s, ctx := g.s, req.HTTP.Context()
	// RFC 6749 §4.3.2: "username REQUIRED ... password REQUIRED".
	username, password := req.Form.Get("username"), req.Form.Get("password")
	if username == "" || password == "" {
		return nil, errInvalidRequest("username and password are required")
	}
	if len(username) > maxCredentialLen || len(password) > maxCredentialLen {
		return nil, errInvalidRequest("username and password must be at most %d bytes", maxCredentialLen)
	}
	scopes, err := parseScope(req.Form.Get("scope"))
	if err != nil {
		return nil, err
	}
	audience := req.Form.Get("audience")
	if audience == "" {
		audience = req.Form.Get("resource") // RFC 8707
	}
	api, err := s.resolveAudience(ctx, audience, scopes)
	if err != nil {
		return nil, err
	}
	if err := checkUserScopes(req.Client, api, scopes); err != nil {
		return nil, err
	}
	user, err := g.checkCredentials(req, username, password)
	if err != nil {
		return nil, err
	}
	now := s.now()
	grant := &store.Grant{
		ID: randomToken()[:22], ClientID: req.Client.ID, Subject: user.ID, Scopes: scopes, Audience: apiID(api),
		AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTokenTTL),
	}
	p := issueParams{
		Client: req.Client, User: user, Scopes: scopes, API: api, GrantID: grant.ID, AuthTime: now,
		WithIDToken: hasScope(scopes, "openid"), DPoPJKT: req.dpopJKT(),
	}
	s.log.Info("signed in with the password grant", zap.String("sub", user.ID), zap.String("client", req.Client.ID))
	return s.issue(ctx, p, grant, s.issuesRefresh(req.Client, scopes), "")
}

// checkCredentials verifies the password under the login throttle. Every
// refusal reads the same whether the user exists or not: RFC 6749 §10.10
// asks to protect the credentials against guessing, and the answer must not
// tell an attacker which usernames are real.
func (g passwordGrant) checkCredentials(req *TokenRequest, username, password string) (*store.User, error) {
	s := g.s
	ip := clientIP(req.HTTP)
	admitted, wait, done := s.throttle.Begin(username, ip)
	if !admitted {
		s.log.Warn("password grant throttled", zap.String("username", username), zap.String("ip", ip), zap.String("client", req.Client.ID))
		return nil, errInvalidGrant("too many failed sign-in attempts; try again in %s", roundUp(wait))
	}
	user, err := s.CheckPassword(req.HTTP, username, password)
	done(err == nil)
	switch {
	case errors.Is(err, ErrBadCredentials):
		s.log.Info("password grant refused", zap.String("username", username), zap.String("ip", ip), zap.String("client", req.Client.ID))
		return nil, errInvalidGrant("the username or password is incorrect")
	case err != nil:
		return nil, errServer(fmt.Errorf("checking a password: %w", err))
	}
	return user, nil
}
