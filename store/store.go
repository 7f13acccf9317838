// Package store defines the persistence contract of Portcullis: the records the
// authorization server keeps (clients, users, APIs, grants, codes, device
// authorization requests, tokens, consents, SSO sessions, signing keys) and
// the one interface every backend implements. The embedded default is
// boltstore; the contract tests in storetest run against any backend, so a
// shared SQL backend for several Caddy instances can be added without
// touching the flows.
//
// Rules every backend follows:
//   - a record past its ExpiresAt is never returned (ErrNotFound), whether or
//     not the background Sweep has collected it yet;
//   - "take once" operations (TakeCode, RotateRefreshToken, DecideDeviceCode,
//     TakeDeviceCode, DecideCIBARequest, TakeCIBARequest) are atomic: under any concurrency exactly one caller
//     succeeds;
//   - every write is a transaction: a crash leaves the old or the new state,
//     never half of a grant.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors returned by every backend. Callers compare with errors.Is.
var (
	// ErrNotFound means no live record exists under that key (it never
	// existed, was deleted, or has expired).
	ErrNotFound = errors.New("store: not found")
	// ErrAlreadyUsed means a single-use record (authorization code, refresh
	// token) was presented a second time. The record is returned alongside so
	// the caller can revoke the grant it belongs to.
	ErrAlreadyUsed = errors.New("store: already used")
	// ErrRevoked means a grant was revoked (for example by the replay of
	// the code that was creating it) and cannot be issued any more.
	ErrRevoked = errors.New("store: grant revoked")
	// ErrConflict means a record with that key already exists where a new one
	// was required.
	ErrConflict = errors.New("store: already exists")
	// ErrNotApproved means a device authorization request cannot be redeemed
	// because the user has not approved it: it is still pending, or denied.
	// The record is returned alongside.
	ErrNotApproved = errors.New("store: not approved")
	// ErrLimitReached means a new record was refused because a limit on
	// live records (the pending CIBA requests of a user) is reached.
	ErrLimitReached = errors.New("store: limit reached")
)

// Store is the persistence contract. Methods take a context for backends that
// talk to a server; the embedded bbolt backend ignores cancellation once a
// transaction has started.
type Store interface {
	// Clients registered with the authorization server.
	PutClient(ctx context.Context, c *Client) error
	GetClient(ctx context.Context, id string) (*Client, error)
	ListClients(ctx context.Context) ([]*Client, error)
	// DeleteClient removes the client and, in the same step, revokes every
	// grant issued to it (RevokeGrant): a client recreated later under the
	// same id inherits no refresh token.
	DeleteClient(ctx context.Context, id string) error

	// Users who can sign in, keyed by username.
	PutUser(ctx context.Context, u *User) error
	GetUser(ctx context.Context, username string) (*User, error)
	ListUsers(ctx context.Context) ([]*User, error)
	DeleteUser(ctx context.Context, username string) error

	// APIs (resource servers) keyed by their identifier (the audience).
	PutAPI(ctx context.Context, a *API) error
	GetAPI(ctx context.Context, identifier string) (*API, error)
	ListAPIs(ctx context.Context) ([]*API, error)
	DeleteAPI(ctx context.Context, identifier string) error

	// PutCode stores a new authorization code under its digest.
	PutCode(ctx context.Context, c *AuthCode) error
	// TakeCode marks the code used and returns it, in one atomic step. A
	// second take returns the record with ErrAlreadyUsed.
	TakeCode(ctx context.Context, digest string) (*AuthCode, error)

	// Device authorization requests (RFC 8628), keyed by the digest of the
	// device_code, with an index by user code. Past its CodeExpiresAt a
	// request can no longer be found by user code, decided or redeemed,
	// but GetDeviceCode still returns it until its ExpiresAt.
	//
	// PutDeviceCode stores a new request. It returns ErrConflict when the
	// digest exists or the user code belongs to a request whose code has
	// not expired; the caller draws another code.
	PutDeviceCode(ctx context.Context, d *DeviceCode) error
	// GetDeviceCode returns the request under digest. It only reads: the
	// device's polls must not write.
	GetDeviceCode(ctx context.Context, digest string) (*DeviceCode, error)
	// GetDeviceCodeByUserCode returns the request whose normalised user
	// code is userCode and whose code has not expired.
	GetDeviceCodeByUserCode(ctx context.Context, userCode string) (*DeviceCode, error)
	// DecideDeviceCode records the user's decision on a pending request and
	// returns the updated record, in one atomic step. A request already
	// decided (or issued) is returned unchanged with ErrAlreadyUsed; one
	// whose code expired is ErrNotFound.
	DecideDeviceCode(ctx context.Context, digest string, d DeviceDecision) (*DeviceCode, error)
	// TakeDeviceCode marks an approved request issued and returns it, in
	// one atomic step. A request already issued is returned with
	// ErrAlreadyUsed, even after its code expired (the caller revokes its
	// grant); otherwise one whose code expired is ErrNotFound, and a pending
	// or denied one is returned with ErrNotApproved.
	TakeDeviceCode(ctx context.Context, digest string) (*DeviceCode, error)

	// PutPushedRequest stores a pushed authorization request (RFC 9126)
	// under the digest of its request_uri reference; ErrConflict when one
	// exists.
	PutPushedRequest(ctx context.Context, p *PushedRequest) error
	// TakePushedRequest removes the pushed request under digest and
	// returns it, in one atomic step: a request_uri is used once.
	TakePushedRequest(ctx context.Context, digest string) (*PushedRequest, error)

	// PutGrant stores a grant, the family every refresh token, opaque access
	// token and code replay check of one authorization hangs off.
	PutGrant(ctx context.Context, g *Grant) error
	GetGrant(ctx context.Context, id string) (*Grant, error)
	// RevokeGrant deletes the grant and every refresh and opaque access
	// token issued under it, and remembers the id so that a grant still
	// being created under it (a code redemption racing its own replay) is
	// refused. Revoking an unknown grant is not an error.
	RevokeGrant(ctx context.Context, id string) error
	// RevokeGrantsOfSubject revokes every grant a user holds with a client
	// (all clients when clientID is empty) and returns how many.
	RevokeGrantsOfSubject(ctx context.Context, subject, clientID string) (int, error)

	// IssueGrant stores a new grant with its first refresh token and opaque
	// access token (either may be nil) in one transaction. It returns
	// ErrRevoked when the grant id was revoked before it was issued.
	IssueGrant(ctx context.Context, g *Grant, rt *RefreshToken, at *AccessToken) error

	// GetRefreshToken returns a live, unused refresh token whose grant is
	// still live.
	GetRefreshToken(ctx context.Context, digest string) (*RefreshToken, error)
	// RotateRefreshToken marks old used and stores next (and the opaque
	// access token issued with it, when not nil) in one atomic step. If old
	// was already used it returns the old record with ErrAlreadyUsed and
	// stores nothing: the caller revokes the family.
	RotateRefreshToken(ctx context.Context, oldDigest string, next *RefreshToken, at *AccessToken) (*RefreshToken, error)

	// Opaque access tokens, keyed by digest. GetAccessToken also checks the
	// grant (when the token has one) is still live.
	PutAccessToken(ctx context.Context, t *AccessToken) error
	GetAccessToken(ctx context.Context, digest string) (*AccessToken, error)
	DeleteAccessToken(ctx context.Context, digest string) error

	// RevokeJTI records that a self-contained (JWT) token is revoked until
	// it would have expired anyway.
	RevokeJTI(ctx context.Context, jti string, expiresAt time.Time) error
	IsJTIRevoked(ctx context.Context, jti string) (bool, error)

	// Consents a user gave a client, keyed by (subject, client).
	PutConsent(ctx context.Context, c *Consent) error
	GetConsent(ctx context.Context, subject, clientID string) (*Consent, error)
	DeleteConsent(ctx context.Context, subject, clientID string) error

	// SSO sessions of the authorization server's own login.
	PutSession(ctx context.Context, s *Session) error
	GetSession(ctx context.Context, id string) (*Session, error)
	DeleteSession(ctx context.Context, id string) error

	// ListGrants returns the live grants of a subject.
	ListGrants(ctx context.Context, subject string) ([]*Grant, error)

	// Login gateway sessions kept server-side, keyed by the digest of the
	// id in the browser's cookie.
	PutGatewaySession(ctx context.Context, s *GatewaySession) error
	GetGatewaySession(ctx context.Context, id string) (*GatewaySession, error)
	DeleteGatewaySession(ctx context.Context, id string) error
	// ListGatewaySessions returns the live sessions of a subject (all
	// subjects when empty).
	ListGatewaySessions(ctx context.Context, subject string) ([]*GatewaySession, error)
	// DeleteGatewaySessions ends the sessions at issuer matching subject
	// and sid (an empty value matches any; subject and sid not both empty)
	// and reports how many: back-channel logout.
	DeleteGatewaySessions(ctx context.Context, issuer, subject, sid string) (int, error)

	// Signing keys, including retired ones still published in the JWKS.
	PutKey(ctx context.Context, k *Key) error
	ListKeys(ctx context.Context) ([]*Key, error)
	DeleteKey(ctx context.Context, id string) error

	// GetOrCreateSecret returns the secret stored under name, storing
	// create()'s result first when there is none. Used for cookie keys that
	// must survive restarts and be shared by every instance.
	GetOrCreateSecret(ctx context.Context, name string, create func() ([]byte, error)) ([]byte, error)

	// Backchannel authentication requests (OpenID CIBA Core 1.0), keyed
	// by the digest of the auth_req_id, with an index by request ID and,
	// while pending, by subject. Past its CodeExpiresAt a request can no
	// longer be listed, decided or redeemed, but GetCIBARequest and
	// GetCIBARequestByID still return it until its ExpiresAt.
	//
	// PutCIBARequest stores a new pending request together with the
	// notifications it queues (its expiry notice, the webhook call), in
	// one transaction. It returns ErrConflict when the digest or the ID
	// exists, and ErrLimitReached when maxPending > 0 and the subject
	// already has that many pending requests whose code has not expired.
	PutCIBARequest(ctx context.Context, r *CIBARequest, maxPending int, notes ...*CIBANotification) error
	// GetCIBARequest returns the request under digest. It only reads: the
	// client's polls must not write.
	GetCIBARequest(ctx context.Context, digest string) (*CIBARequest, error)
	// GetCIBARequestByID returns the request with that request ID.
	GetCIBARequestByID(ctx context.Context, id string) (*CIBARequest, error)
	// ListCIBARequests returns the pending requests whose code has not
	// expired, of subject (of every subject when empty), oldest first.
	ListCIBARequests(ctx context.Context, subject string) ([]*CIBARequest, error)
	// DecideCIBARequest records the decision on the pending request with
	// that ID, removes its expiry notification and queues result (when not
	// nil), in one atomic step, and returns the updated record. A request
	// that is unknown, whose code expired, or that names another subject
	// than d.Subject is ErrNotFound; one already decided (or issued) is
	// returned unchanged with ErrAlreadyUsed.
	DecideCIBARequest(ctx context.Context, id string, d CIBADecision, result *CIBANotification) (*CIBARequest, error)
	// TakeCIBARequest marks an approved request issued and returns it, in
	// one atomic step, with the same outcomes as TakeDeviceCode: a request
	// already issued is returned with ErrAlreadyUsed, even after its code
	// expired; otherwise one whose code expired is ErrNotFound, and a
	// pending or denied one is returned with ErrNotApproved.
	TakeCIBARequest(ctx context.Context, digest string) (*CIBARequest, error)

	// The CIBA notification outbox. GetCIBANotification returns a queued
	// notification; ListDueCIBANotifications returns at most limit of
	// those due at or before due, earliest first; UpdateCIBANotification
	// replaces a queued one (ErrNotFound when it is gone: delivered by
	// someone else); DeleteCIBANotification removes one (no error when
	// it is gone).
	GetCIBANotification(ctx context.Context, id string) (*CIBANotification, error)
	ListDueCIBANotifications(ctx context.Context, due time.Time, limit int) ([]*CIBANotification, error)
	UpdateCIBANotification(ctx context.Context, n *CIBANotification) error
	DeleteCIBANotification(ctx context.Context, id string) error

	// Sweep deletes every record that expired before now and reports how
	// many it removed.
	Sweep(ctx context.Context, now time.Time) (int, error)

	// Close releases the backend. The store is unusable afterwards.
	Close() error
}

// Live reports whether a record with that expiry is still valid at now. A
// zero expiry never expires.
func Live(expiresAt, now time.Time) bool {
	return expiresAt.IsZero() || now.Before(expiresAt)
}
