package flows

import (
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis-gw/portcullis/store"
)

// deviceCodeGrant is the token endpoint side of the Device Authorization
// Grant (RFC 8628 §3.4, §3.5): the device polls with its device_code until
// the user has decided at the verification page.
//
// A poll that finds the request still pending only reads the store (a
// read-only transaction) and the in-memory poll state: polls are most of
// this grant's traffic and write nothing. Only the redemption of an
// approved request writes, once.
type deviceCodeGrant struct{ s *Server }

// maxDeviceCodeLen bounds the device_code parameter: issued codes are 43
// characters.
const maxDeviceCodeLen = 256

// The RFC 8628 §3.5 error responses. All are "as described in Section 5.2
// of [RFC6749]", so 400.
func errAuthorizationPending() *Error {
	return oauthErr("authorization_pending", http.StatusBadRequest, "the user has not decided yet; poll again after the interval")
}

func errSlowDown(interval int64) *Error {
	return oauthErr("slow_down", http.StatusBadRequest, "polling too fast: wait at least %d seconds between requests", interval)
}

// errUserDenied is access_denied at the token endpoint: the user said no.
func errUserDenied() *Error {
	return oauthErr("access_denied", http.StatusBadRequest, "the user denied the request")
}

// pendingDevice is what the poll clock needs of a device request.
func pendingDevice(d *store.DeviceCode) pendingRequest {
	return pendingRequest{Digest: d.Digest, Interval: time.Duration(d.Interval) * time.Second, CreatedAt: d.CreatedAt, ExpiresAt: d.CodeExpiresAt}
}

func errExpiredToken() *Error {
	return oauthErr("expired_token", http.StatusBadRequest, "the device code has expired; start a new device authorization")
}

func (g deviceCodeGrant) Grant(req *TokenRequest) (*TokenResponse, error) {
	s, ctx := g.s, req.HTTP.Context()
	// RFC 8628 §3.4: "device_code REQUIRED. The device verification code,
	// "device_code" from the device authorization response".
	code := req.Form.Get("device_code")
	if code == "" {
		return nil, errInvalidRequest("device_code is required")
	}
	if len(code) > maxDeviceCodeLen {
		return nil, errInvalidGrant("the device code is invalid or expired")
	}
	dgst := digest(code)
	d, err := s.store.GetDeviceCode(ctx, dgst)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, errInvalidGrant("the device code is invalid or expired")
	case err != nil:
		return nil, errServer(err)
	}
	// As for authorization codes (RFC 6749 §4.1.3), the code must have
	// been issued to the client redeeming it.
	if d.ClientID != req.Client.ID {
		return nil, errInvalidGrant("the device code was issued to another client")
	}
	if d.Status == store.DeviceIssued {
		return nil, g.replayed(req, d)
	}
	now := s.now()
	// "expired_token: The "device_code" has expired, and the device
	// authorization session has concluded."
	if !store.Live(d.CodeExpiresAt, now) {
		s.devicePolls.forget(dgst)
		return nil, errExpiredToken()
	}
	switch d.Status {
	case store.DevicePending:
		// "slow_down: A variant of "authorization_pending", the
		// authorization request is still pending and polling should
		// continue, but the interval MUST be increased by 5 seconds for
		// this and all subsequent requests."
		if tooFast, interval := s.devicePolls.poll(pendingDevice(d), now); tooFast {
			return nil, errSlowDown(int64(interval.Seconds()))
		}
		return nil, errAuthorizationPending()
	case store.DeviceDenied:
		s.devicePolls.forget(dgst)
		// "access_denied: The authorization request was denied."
		return nil, errUserDenied()
	case store.DeviceApproved:
		s.devicePolls.forget(dgst)
		return g.redeem(req, dgst)
	}
	return nil, errServer(errors.New("device code in unknown state " + d.Status))
}

// redeem issues the tokens of an approved request, exactly once.
func (g deviceCodeGrant) redeem(req *TokenRequest, dgst string) (*TokenResponse, error) {
	s, ctx := g.s, req.HTTP.Context()
	d, err := s.store.TakeDeviceCode(ctx, dgst)
	switch {
	case errors.Is(err, store.ErrAlreadyUsed):
		// Another redemption won the race.
		return nil, g.replayed(req, d)
	case errors.Is(err, store.ErrNotFound):
		return nil, errExpiredToken() // expired since it was read
	case errors.Is(err, store.ErrNotApproved):
		return nil, errServer(errors.New("device code left the approved state"))
	case err != nil:
		return nil, errServer(err)
	}
	user, err := s.activeUser(ctx, d.Subject)
	if err != nil {
		return nil, err
	}
	api, err := s.apiOrNil(ctx, d.Audience)
	if err != nil {
		return nil, err
	}
	now := s.now()
	grant := &store.Grant{
		ID: d.GrantID, ClientID: d.ClientID, Subject: d.Subject, Scopes: d.Scopes, Audience: d.Audience,
		AuthTime: d.AuthTime, SessionID: d.SessionID, CreatedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTokenTTL),
	}
	p := issueParams{
		Client: req.Client, User: user, Scopes: d.Scopes, API: api, GrantID: d.GrantID,
		AuthTime: d.AuthTime, SessionID: d.SessionID,
		WithIDToken: hasScope(d.Scopes, "openid"), DPoPJKT: req.dpopJKT(),
	}
	s.log.Info("device authorization redeemed", zap.String("client", d.ClientID), zap.String("sub", d.Subject))
	return s.issue(ctx, p, grant, s.issuesRefresh(req.Client, d.Scopes), "")
}

// replayed answers a device code presented again after its tokens were
// issued. As for a replayed authorization code (RFC 9700 §4.5), the code
// may have leaked: every token it issued is revoked.
func (g deviceCodeGrant) replayed(req *TokenRequest, d *store.DeviceCode) error {
	s := g.s
	if err := s.store.RevokeGrant(req.HTTP.Context(), d.GrantID); err != nil {
		return errServer(err)
	}
	s.log.Warn("device code replayed; grant revoked", zap.String("client", req.Client.ID), zap.String("grant", d.GrantID))
	return errInvalidGrant("the device code was already used; the tokens it issued are revoked")
}
