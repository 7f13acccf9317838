package store

import "time"

// CIBA request states (OpenID CIBA Core 1.0): a request is pending until
// the user it names decides, then approved or denied; an approved request
// becomes issued when its tokens are redeemed (poll, ping) or pushed,
// exactly once.
const (
	CIBAPending  = "pending"
	CIBAApproved = "approved"
	CIBADenied   = "denied"
	CIBAIssued   = "issued"
)

// CIBA token delivery modes (CIBA Core §5), registered per client.
const (
	CIBAModePoll = "poll"
	CIBAModePing = "ping"
	CIBAModePush = "push"
)

// CIBARequest is a backchannel authentication request, kept under the
// digest of its auth_req_id, with an index by its opaque request ID (what
// the admin API, the approval page and the webhook name it by) and, while
// it is pending, an index by the user it names. As for DeviceCode, the
// record outlives the auth_req_id (ExpiresAt is later than CodeExpiresAt)
// so that a late poll is told expired_token and a replayed redemption is
// still recognised.
type CIBARequest struct {
	// Digest is the digest of the auth_req_id.
	Digest string `json:"digest"`
	// ID is the opaque request id. It is not the auth_req_id and cannot be
	// redeemed.
	ID       string   `json:"id"`
	ClientID string   `json:"client_id"`
	Scopes   []string `json:"scopes,omitempty"`
	Audience string   `json:"aud,omitempty"`
	// Subject is the user the request names (from its hint): only that
	// user may decide it.
	Subject string `json:"sub"`
	// BindingMessage is shown to the user as sent (escaped when rendered).
	BindingMessage string `json:"binding_message,omitempty"`
	// ACRValues are the requested authentication context classes, as sent.
	ACRValues string `json:"acr_values,omitempty"`
	// DeliveryMode is the client's mode when the request was made: poll,
	// ping or push.
	DeliveryMode string `json:"delivery_mode"`
	// NotificationToken is the client_notification_token (ping and push):
	// a bearer credential of the client, sent back in notifications and
	// never logged.
	NotificationToken string `json:"notification_token,omitempty"`
	// SealedAuthReqID is the auth_req_id encrypted under the server's key
	// (ping and push, whose notifications carry it); empty for poll.
	SealedAuthReqID string `json:"sealed_auth_req_id,omitempty"`
	// ExpiryNotificationID names the notification queued for the
	// request's expiry, which a decision removes.
	ExpiryNotificationID string `json:"expiry_notification_id,omitempty"`
	// Interval is the polling interval announced, in seconds.
	Interval int64 `json:"interval"`
	// Status is CIBAPending, CIBAApproved, CIBADenied or CIBAIssued.
	Status string `json:"status"`
	// GrantID is the grant the tokens are issued under, so that a replayed
	// redemption revokes them.
	GrantID string `json:"grant_id"`
	// AuthTime, SessionID, DecidedVia and DecidedAt describe the decision.
	AuthTime   time.Time `json:"auth_time"`
	SessionID  string    `json:"sid,omitempty"`
	DecidedVia string    `json:"decided_via,omitempty"`
	DecidedAt  time.Time `json:"decided_at"`
	CreatedAt  time.Time `json:"created_at"`
	// CodeExpiresAt ends the validity of the auth_req_id: no decision and
	// no redemption after it.
	CodeExpiresAt time.Time `json:"code_expires_at"`
	// ExpiresAt is when the record itself goes, after CodeExpiresAt.
	ExpiresAt time.Time `json:"expires_at"`
}

// CIBADecision is a user's answer to a backchannel authentication request.
type CIBADecision struct {
	// Approved is true to approve, false to deny.
	Approved bool
	// Subject is the user deciding: it must be the user the request names.
	Subject string
	// AuthTime and SessionID describe the user's sign-in, when known.
	AuthTime  time.Time
	SessionID string
	// Via says where the decision was taken: page, admin or webhook.
	Via string
	// At is when the decision was taken.
	At time.Time
}

// Kinds of CIBA notifications.
const (
	// CIBANotifyResult tells the client of a decision (ping, push).
	CIBANotifyResult = "result"
	// CIBANotifyExpiry tells the client that a request expired undecided
	// (ping, push). It is due at the request's CodeExpiresAt.
	CIBANotifyExpiry = "expiry"
	// CIBANotifyWebhook tells the deployment's authenticator app of a new
	// request.
	CIBANotifyWebhook = "webhook"
)

// CIBANotification is an outbound notification waiting to be delivered:
// the outbox of ping and push delivery and of the authenticator webhook.
// It is queued in the same transaction as what causes it, so it survives a
// restart, and it is retried until it is delivered, its attempts are spent
// or it expires.
type CIBANotification struct {
	// ID is unique among notifications.
	ID string `json:"id"`
	// Kind is CIBANotifyResult, CIBANotifyExpiry or CIBANotifyWebhook.
	Kind string `json:"kind"`
	// RequestDigest names the CIBARequest it is about.
	RequestDigest string `json:"request_digest"`
	ClientID      string `json:"client_id"`
	// Attempts counts the failed deliveries so far.
	Attempts int `json:"attempts"`
	// NextAttemptAt is when it is due.
	NextAttemptAt time.Time `json:"next_attempt_at"`
	// Payload, when set, is the sealed body to send again (a push of
	// tokens already issued).
	Payload   string    `json:"payload,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is when delivery is given up.
	ExpiresAt time.Time `json:"expires_at"`
}
