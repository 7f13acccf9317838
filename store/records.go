package store

import (
	"encoding/json"
	"time"
)

// Client is an application registered with the authorization server.
type Client struct {
	// ID is the client_id.
	ID string `json:"client_id"`
	// Name is shown on the consent page.
	Name string `json:"client_name,omitempty"`
	// SecretDigest is the hex SHA-256 of the client secret. Client secrets
	// are high-entropy (generated ones are 256 bits), so a fast digest loses
	// nothing against a slow KDF and keeps the token endpoint fast.
	SecretDigest string `json:"secret_digest,omitempty"`
	// TokenEndpointAuthMethod is client_secret_basic, client_secret_post,
	// client_secret_jwt, private_key_jwt (RFC 7523) or none (a public
	// client).
	TokenEndpointAuthMethod string `json:"token_endpoint_auth_method"`
	// TokenEndpointAuthSigningAlg, when set, is the only JWS algorithm
	// accepted on the client's assertions (client_secret_jwt,
	// private_key_jwt).
	TokenEndpointAuthSigningAlg string `json:"token_endpoint_auth_signing_alg,omitempty"`
	// JWKS is the client's public JWK Set (RFC 7517 JSON), against which
	// private_key_jwt assertions are verified.
	JWKS json.RawMessage `json:"jwks,omitempty"`
	// JWKSURI is where the client publishes its JWK Set, fetched (and
	// cached) to verify private_key_jwt assertions when JWKS is empty.
	JWKSURI string `json:"jwks_uri,omitempty"`
	// HMACSecret is the client secret itself, kept only for
	// client_secret_jwt: verifying an HMAC needs the key, not a digest.
	// Never shown by the admin API.
	HMACSecret string `json:"hmac_secret,omitempty"`
	// RedirectURIs are matched exactly (RFC 9700 §4.1.3).
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	// PostLogoutRedirectURIs are matched exactly on RP-initiated logout.
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`
	// GrantTypes the client may use at the token endpoint.
	GrantTypes []string `json:"grant_types,omitempty"`
	// ResponseTypes the client may use at the authorization endpoint.
	ResponseTypes []string `json:"response_types,omitempty"`
	// Scopes the client may request from users. Empty means every scope the
	// server and its APIs define.
	Scopes []string `json:"scopes,omitempty"`
	// APIAccess lists, per API identifier, the scopes the client may obtain
	// for itself with client_credentials.
	APIAccess map[string][]string `json:"api_access,omitempty"`
	// BackchannelLogoutURI receives OIDC Back-Channel Logout tokens when
	// the user's session at the server ends.
	BackchannelLogoutURI string `json:"backchannel_logout_uri,omitempty"`
	// RequirePKCE demands PKCE even from a confidential client. Public
	// clients always need it.
	RequirePKCE bool `json:"require_pkce,omitempty"`
	// RequirePushedAuthorizationRequests refuses authorization requests
	// that were not pushed to the PAR endpoint first (RFC 9126 §5).
	RequirePushedAuthorizationRequests bool `json:"require_pushed_authorization_requests,omitempty"`
	// FirstParty clients skip the consent page.
	FirstParty bool `json:"first_party,omitempty"`
	// AlwaysIssueRefreshToken issues refresh tokens even when offline_access
	// was not requested.
	AlwaysIssueRefreshToken bool `json:"always_issue_refresh_token,omitempty"`
	// BackchannelTokenDeliveryMode is how the client gets the result of a
	// CIBA request: poll, ping or push (CIBA Core §5). Empty means poll.
	BackchannelTokenDeliveryMode string `json:"backchannel_token_delivery_mode,omitempty"`
	// BackchannelClientNotificationEndpoint receives ping and push
	// notifications; only this registered endpoint is ever called.
	BackchannelClientNotificationEndpoint string `json:"backchannel_client_notification_endpoint,omitempty"`
	// BackchannelAuthenticationRequestSigningAlg, when set, requires the
	// client to send its CIBA requests as a signed request object with
	// this JWS algorithm.
	BackchannelAuthenticationRequestSigningAlg string `json:"backchannel_authentication_request_signing_alg,omitempty"`
	// BackchannelUserCodeParameter says the client sends the user's
	// user_code with CIBA requests, checked against the user's code.
	BackchannelUserCodeParameter bool `json:"backchannel_user_code_parameter,omitempty"`
	// LogoURI is shown on the CIBA approval page.
	LogoURI string `json:"logo_uri,omitempty"`
	// Source says who owns the record: "config" (the Caddyfile; replaced on
	// every load) or "admin" (the admin API; kept across reloads).
	Source string `json:"source,omitempty"`
	// CreatedAt is when the record was first stored.
	CreatedAt time.Time `json:"created_at"`
}

// Public reports whether the client cannot keep a secret.
func (c *Client) Public() bool { return c.TokenEndpointAuthMethod == "none" }

// HasGrantType reports whether the client may use grant type gt.
func (c *Client) HasGrantType(gt string) bool { return contains(c.GrantTypes, gt) }

// User is someone who can sign in.
type User struct {
	// ID is the subject identifier (sub claim). It equals Username: users
	// are looked up by subject, so a backend refuses a user whose ID
	// differs (an empty ID is set to the username).
	ID string `json:"id"`
	// Username is what the user types on the login page.
	Username string `json:"username"`
	// PasswordHash is an argon2id PHC string.
	PasswordHash string `json:"password_hash,omitempty"`
	// Email, EmailVerified and Name feed the email and profile scopes.
	Email         string `json:"email,omitempty"`
	EmailVerified bool   `json:"email_verified,omitempty"`
	Name          string `json:"name,omitempty"`
	// Groups are released in the groups claim.
	Groups []string `json:"groups,omitempty"`
	// Claims are extra claims released in ID tokens and userinfo.
	Claims map[string]any `json:"claims,omitempty"`
	// Disabled users cannot sign in and their grants stop working.
	Disabled bool `json:"disabled,omitempty"`
	// BackchannelUserCodeHash is the argon2id hash of the user's CIBA
	// user_code, which clients registered for it must send.
	BackchannelUserCodeHash string `json:"backchannel_user_code_hash,omitempty"`
	// Source is "config" or "admin", as for clients.
	Source string `json:"source,omitempty"`
	// CreatedAt is when the record was first stored.
	CreatedAt time.Time `json:"created_at"`
}

// API is a resource server tokens can be issued for.
type API struct {
	// Identifier is the audience (aud) of tokens for this API.
	Identifier string `json:"identifier"`
	// Name is shown on the consent page.
	Name string `json:"name,omitempty"`
	// Scopes the API defines.
	Scopes []string `json:"scopes,omitempty"`
	// TokenFormat is "jwt" (RFC 9068) or "opaque" (introspect to use).
	TokenFormat string `json:"token_format,omitempty"`
	// AccessTokenLifetime in seconds; 0 means the server default.
	AccessTokenLifetime int64 `json:"access_token_lifetime,omitempty"`
	// Source is "config" or "admin", as for clients.
	Source string `json:"source,omitempty"`
	// CreatedAt is when the record was first stored.
	CreatedAt time.Time `json:"created_at"`
}

// Grant is one authorization: what a user (or a client for itself) allowed a
// client, and the family every token issued from it belongs to.
type Grant struct {
	ID        string    `json:"id"`
	ClientID  string    `json:"client_id"`
	Subject   string    `json:"sub,omitempty"`
	Scopes    []string  `json:"scopes,omitempty"`
	Audience  string    `json:"aud,omitempty"`
	AuthTime  time.Time `json:"auth_time"`
	SessionID string    `json:"sid,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// AuthCode is an authorization code, kept under its digest until it expires
// so that a replay is recognised (and the grant it issued revoked).
type AuthCode struct {
	Digest              string    `json:"digest"`
	ClientID            string    `json:"client_id"`
	RedirectURI         string    `json:"redirect_uri"`
	CodeChallenge       string    `json:"code_challenge,omitempty"`
	CodeChallengeMethod string    `json:"code_challenge_method,omitempty"`
	GrantID             string    `json:"grant_id"`
	Subject             string    `json:"sub"`
	Scopes              []string  `json:"scopes,omitempty"`
	Audience            string    `json:"aud,omitempty"`
	Nonce               string    `json:"nonce,omitempty"`
	AuthTime            time.Time `json:"auth_time"`
	SessionID           string    `json:"sid,omitempty"`
	Used                bool      `json:"used,omitempty"`
	CreatedAt           time.Time `json:"created_at"`
	ExpiresAt           time.Time `json:"expires_at"`
}

// RefreshToken is a refresh token, kept under its digest. Rotated tokens are
// kept (Used) until they expire so that reuse is detected.
type RefreshToken struct {
	Digest    string    `json:"digest"`
	GrantID   string    `json:"grant_id"`
	ClientID  string    `json:"client_id"`
	Subject   string    `json:"sub,omitempty"`
	Scopes    []string  `json:"scopes,omitempty"`
	Audience  string    `json:"aud,omitempty"`
	Used      bool      `json:"used,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`

	// JKT, when set, binds the token to a DPoP key (RFC 9449 §5: refresh
	// tokens of public clients): the RFC 7638 thumbprint the proof of every
	// refresh request must match.
	JKT string `json:"jkt,omitempty"`
}

// SelfContainedPrefix marks an AccessToken record that tracks a JWT access
// token (Digest is SelfContainedPrefix + jti) so that revoking its grant
// also revokes the jti.
const SelfContainedPrefix = "jti:"

// AccessToken is an opaque access token, kept under its digest, or the
// tracking record of a JWT access token issued under a grant.
type AccessToken struct {
	Digest    string    `json:"digest"`
	GrantID   string    `json:"grant_id,omitempty"`
	ClientID  string    `json:"client_id"`
	Subject   string    `json:"sub,omitempty"`
	Scopes    []string  `json:"scopes,omitempty"`
	Audience  string    `json:"aud,omitempty"`
	JTI       string    `json:"jti"`
	IssuedAt  time.Time `json:"iat"`
	ExpiresAt time.Time `json:"expires_at"`

	// JKT, when set, binds the token to a DPoP key (RFC 9449 §6): the
	// RFC 7638 thumbprint introspection reports as cnf.jkt.
	JKT string `json:"jkt,omitempty"`
}

// Consent records the scopes a user allowed a client.
type Consent struct {
	Subject   string    `json:"sub"`
	ClientID  string    `json:"client_id"`
	Scopes    []string  `json:"scopes"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitempty"`
}

// Covers reports whether the consent includes every scope in scopes.
func (c *Consent) Covers(scopes []string) bool {
	for _, s := range scopes {
		if !contains(c.Scopes, s) {
			return false
		}
	}
	return true
}

// Session is a signed-in browser session at the authorization server (SSO).
type Session struct {
	ID        string    `json:"id"`
	Subject   string    `json:"sub"`
	AuthTime  time.Time `json:"auth_time"`
	AMR       []string  `json:"amr,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// GatewaySession is a login gateway session kept server-side: only an
// opaque id is in the browser's cookie, so sessions can be listed and
// revoked, and large tokens do not bloat cookies.
type GatewaySession struct {
	// ID is the digest of the id in the cookie.
	ID string `json:"id"`
	// Issuer, Subject and SID identify the user at the provider, for
	// back-channel logout.
	Issuer  string `json:"iss"`
	Subject string `json:"sub"`
	SID     string `json:"sid,omitempty"`
	// Data is the gateway's session (tokens and claims), opaque here.
	Data      json.RawMessage `json:"data"`
	CreatedAt time.Time       `json:"created_at"`
	ExpiresAt time.Time       `json:"expires_at"`
}

// Key is a signing key. It signs until ActiveUntil and is published in the
// JWKS until ExpiresAt, when every token it signed has expired.
type Key struct {
	ID          string          `json:"kid"`
	Alg         string          `json:"alg"`
	PrivateJWK  json.RawMessage `json:"private_jwk"`
	CreatedAt   time.Time       `json:"created_at"`
	ActiveUntil time.Time       `json:"active_until"`
	ExpiresAt   time.Time       `json:"expires_at"`
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

// Device authorization states (RFC 8628 §3.5): a request is pending until
// the user decides, then approved or denied; an approved request becomes
// issued when the device's poll redeems it, exactly once.
const (
	DevicePending  = "pending"
	DeviceApproved = "approved"
	DeviceDenied   = "denied"
	DeviceIssued   = "issued"
)

// DeviceCode is a device authorization request (RFC 8628), kept under the
// digest of its device_code. The record outlives the code (ExpiresAt is
// later than CodeExpiresAt) so that a poll after the code expired is told
// expired_token rather than that the code is unknown, and a redemption
// replayed later is still recognised.
type DeviceCode struct {
	// Digest is the digest of the device_code.
	Digest string `json:"digest"`
	// UserCode is the code the user types, normalised: upper case, no
	// separator. It is unique among codes that have not expired.
	UserCode string   `json:"user_code"`
	ClientID string   `json:"client_id"`
	Scopes   []string `json:"scopes,omitempty"`
	Audience string   `json:"aud,omitempty"`
	// Interval is the polling interval announced to the device, in seconds.
	Interval int64 `json:"interval"`
	// Status is DevicePending, DeviceApproved, DeviceDenied or DeviceIssued.
	Status string `json:"status"`
	// GrantID is the grant the tokens are issued under, so that a replayed
	// redemption revokes them.
	GrantID string `json:"grant_id"`
	// Subject, AuthTime and SessionID are the user who decided and their
	// sign-in, set with the decision.
	Subject   string    `json:"sub,omitempty"`
	AuthTime  time.Time `json:"auth_time"`
	SessionID string    `json:"sid,omitempty"`
	DecidedAt time.Time `json:"decided_at"`
	CreatedAt time.Time `json:"created_at"`
	// CodeExpiresAt ends the validity of the device_code and user_code: no
	// decision and no redemption after it, and its user code is free again.
	CodeExpiresAt time.Time `json:"code_expires_at"`
	// ExpiresAt is when the record itself goes, after CodeExpiresAt.
	ExpiresAt time.Time `json:"expires_at"`
}

// DeviceDecision is a user's answer to a device authorization request.
type DeviceDecision struct {
	// Approved is true to approve, false to deny.
	Approved bool
	// Subject, AuthTime and SessionID identify the user who decided and
	// their sign-in.
	Subject   string
	AuthTime  time.Time
	SessionID string
	// At is when the decision was taken.
	At time.Time
}

// PushedRequest is a pushed authorization request (RFC 9126): the
// parameters a client sent to the PAR endpoint, kept under the digest of
// the request_uri reference it got back until the browser brings that
// request_uri to the authorization endpoint, once.
type PushedRequest struct {
	Digest   string `json:"digest"`
	ClientID string `json:"client_id"`
	// Params are the authorization request parameters, form-encoded.
	Params    string    `json:"params"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}
