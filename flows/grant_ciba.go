package flows

import (
	"context"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis-gw/portcullis/store"
)

// cibaGrant is the token endpoint side of CIBA (CIBA Core §10.1, §11):
// poll-mode clients poll with their auth_req_id until the user decided;
// ping-mode clients redeem it once pinged (and may poll too). Push-mode
// clients get their tokens pushed and never come here.
//
// As for device codes, a poll that finds the request still pending only
// reads the store and the in-memory poll state: polls write nothing. Only
// the redemption of an approved request writes, once.
type cibaGrant struct{ s *Server }

// maxAuthReqIDLen bounds the auth_req_id parameter: issued ones are 43
// characters.
const maxAuthReqIDLen = 256

func (g cibaGrant) Grant(req *TokenRequest) (*TokenResponse, error) {
	s, ctx := g.s, req.HTTP.Context()
	// §10.1: "auth_req_id REQUIRED. It is the unique identifier to
	// identify the authentication request (transaction) made by the
	// Client."
	id := req.Form.Get("auth_req_id")
	if id == "" {
		return nil, errInvalidRequest("auth_req_id is required")
	}
	if len(id) > maxAuthReqIDLen {
		return nil, errInvalidGrant("the auth_req_id is invalid or expired")
	}
	dgst := digest(id)
	r, err := s.store.GetCIBARequest(ctx, dgst)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, errInvalidGrant("the auth_req_id is invalid or expired")
	case err != nil:
		return nil, errServer(err)
	}
	// §11: "invalid_grant: If the auth_req_id is invalid or was issued to
	// another Client."
	if r.ClientID != req.Client.ID {
		return nil, errInvalidGrant("the auth_req_id was issued to another client")
	}
	if r.DeliveryMode == store.CIBAModePush {
		return nil, errUnauthorizedClient("client %s is registered for push delivery: the tokens are sent to its notification endpoint", req.Client.ID)
	}
	if r.Status == store.CIBAIssued {
		return nil, g.replayed(req, r)
	}
	now := s.now()
	// §11: "expired_token: The auth_req_id has expired. The Client will
	// need to make a new Authentication Request."
	if !store.Live(r.CodeExpiresAt, now) {
		s.ciba.polls.forget(dgst)
		return nil, oauthErr("expired_token", http.StatusBadRequest, "the auth_req_id has expired; make a new backchannel authentication request")
	}
	switch r.Status {
	case store.CIBAPending:
		// §11: "slow_down: A variant of "authorization_pending", the
		// authorization request is still pending and polling should
		// continue, but the interval MUST be increased by at least 5
		// seconds for this and all subsequent requests."
		if tooFast, interval := s.ciba.polls.poll(pendingCIBA(r), now); tooFast {
			return nil, errSlowDown(int64(interval.Seconds()))
		}
		return nil, errAuthorizationPending()
	case store.CIBADenied:
		s.ciba.polls.forget(dgst)
		// §11: "access_denied: The end-user denied the authorization
		// request."
		return nil, errUserDenied()
	case store.CIBAApproved:
		s.ciba.polls.forget(dgst)
		return g.redeem(req, dgst)
	}
	return nil, errServer(errors.New("CIBA request in unknown state " + r.Status))
}

// pendingCIBA is what the poll clock (shared with the device flow) needs
// of a CIBA request.
func pendingCIBA(r *store.CIBARequest) pendingRequest {
	return pendingRequest{Digest: r.Digest, Interval: time.Duration(r.Interval) * time.Second, CreatedAt: r.CreatedAt, ExpiresAt: r.CodeExpiresAt}
}

// redeem issues the tokens of an approved request, exactly once.
func (g cibaGrant) redeem(req *TokenRequest, dgst string) (*TokenResponse, error) {
	s, ctx := g.s, req.HTTP.Context()
	r, err := s.store.TakeCIBARequest(ctx, dgst)
	switch {
	case errors.Is(err, store.ErrAlreadyUsed):
		return nil, g.replayed(req, r)
	case errors.Is(err, store.ErrNotFound):
		return nil, oauthErr("expired_token", http.StatusBadRequest, "the auth_req_id has expired; make a new backchannel authentication request")
	case errors.Is(err, store.ErrNotApproved):
		return nil, errServer(errors.New("CIBA request left the approved state"))
	case err != nil:
		return nil, errServer(err)
	}
	resp, err := s.issueCIBA(ctx, req.Client, r, req.dpopJKT(), false)
	if err == nil {
		s.log.Info("backchannel authentication redeemed", zap.String("request", r.ID), zap.String("client", r.ClientID), zap.String("sub", r.Subject))
	}
	return resp, err
}

// issueCIBA issues the tokens of a taken request. forPush adds the claims
// CIBA Core §10.3.1 requires in a pushed ID token.
func (s *Server) issueCIBA(ctx context.Context, client *store.Client, r *store.CIBARequest, dpopJKT string, forPush bool) (*TokenResponse, error) {
	user, err := s.activeUser(ctx, r.Subject)
	if err != nil {
		return nil, err
	}
	api, err := s.apiOrNil(ctx, r.Audience)
	if err != nil {
		return nil, err
	}
	now := s.now()
	grant := &store.Grant{
		ID: r.GrantID, ClientID: r.ClientID, Subject: r.Subject, Scopes: r.Scopes, Audience: r.Audience,
		AuthTime: r.AuthTime, SessionID: r.SessionID, CreatedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTokenTTL),
	}
	p := issueParams{
		Client: client, User: user, Scopes: r.Scopes, API: api, GrantID: r.GrantID,
		AuthTime: r.AuthTime, SessionID: r.SessionID, WithIDToken: true, DPoPJKT: dpopJKT,
	}
	if forPush {
		authReqID, err := s.unsealAuthReqID(r)
		if err != nil {
			return nil, errServer(err)
		}
		p.AuthReqID = authReqID
	}
	return s.issue(ctx, p, grant, s.issuesRefresh(client, r.Scopes), "")
}

// unsealAuthReqID recovers the auth_req_id of a ping or push request.
func (s *Server) unsealAuthReqID(r *store.CIBARequest) (string, error) {
	var id string
	if err := s.ciba.sealer.Decode(cibaAuthReqIDName, r.SealedAuthReqID, &id); err != nil {
		return "", err
	}
	if digest(id) != r.Digest {
		return "", errors.New("the sealed auth_req_id does not match its request")
	}
	return id, nil
}

// replayed answers an auth_req_id presented again after its tokens were
// issued: as for a replayed code, every token it issued is revoked.
func (g cibaGrant) replayed(req *TokenRequest, r *store.CIBARequest) error {
	s := g.s
	if err := s.store.RevokeGrant(req.HTTP.Context(), r.GrantID); err != nil {
		return errServer(err)
	}
	s.log.Warn("auth_req_id replayed; grant revoked", zap.String("client", req.Client.ID), zap.String("request", r.ID))
	return errInvalidGrant("the auth_req_id was already used; the tokens it issued are revoked")
}
