package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/portcullis-gw/portcullis/flows"
	"github.com/portcullis-gw/portcullis/keys"
	"github.com/portcullis-gw/portcullis/store"
)

// UserConfig is a user defined in the config.
type UserConfig struct {
	// Username is what the user types to sign in; it is also the subject
	// (sub claim).
	Username string `json:"username"`
	// PasswordHash is an argon2id PHC string, as printed by
	// `caddy hash-password --algorithm argon2id`. Placeholders are expanded.
	PasswordHash string `json:"password_hash,omitempty"`
	// Password is a plaintext password, hashed at start. For demos only:
	// a warning is logged.
	Password string `json:"password,omitempty"`
	// Email is released with the email scope.
	Email string `json:"email,omitempty"`
	// EmailVerified marks the email as verified. Default: true when an
	// email is configured.
	EmailVerified *bool `json:"email_verified,omitempty"`
	// Name is released with the profile scope.
	Name string `json:"name,omitempty"`
	// Groups are released with the groups scope.
	Groups []string `json:"groups,omitempty"`
	// Claims are extra claims released with the profile scope.
	Claims map[string]any `json:"claims,omitempty"`
}

// ClientConfig is a client application defined in the config.
type ClientConfig struct {
	// ID is the client_id.
	ID string `json:"client_id"`
	// Name is shown on the consent page.
	Name string `json:"name,omitempty"`
	// Secret is the client secret (placeholders such as {env.X} and
	// {file./path} are expanded). Stored only as a SHA-256 digest, except
	// for client_secret_jwt clients, whose secret is the HMAC key and so is
	// stored as is (never shown by the admin API).
	Secret string `json:"secret,omitempty"`
	// Public marks a client that cannot keep a secret (SPA, native, CLI):
	// token_endpoint_auth_method none, PKCE required.
	Public bool `json:"public,omitempty"`
	// TokenEndpointAuthMethod is how the client authenticates at the
	// token, introspection and revocation endpoints: client_secret_basic or
	// client_secret_post (the secret itself; either is accepted from such a
	// client), client_secret_jwt (a JWT assertion with an HS256/384/512
	// MAC keyed with the secret, which must be at least 32 bytes) or
	// private_key_jwt (a JWT assertion signed with a key of jwks, jwks_file
	// or jwks_uri; no secret). Assertions (RFC 7523) must have iss and sub
	// equal to the client_id, aud naming the issuer or the endpoint, exp
	// at most 5 minutes ahead, and a jti that is used only once.
	// Default: client_secret_basic (none for public clients).
	TokenEndpointAuthMethod string `json:"token_endpoint_auth_method,omitempty"`
	// TokenEndpointAuthSigningAlg, when set, is the only JWS algorithm
	// accepted on the client's assertions: RS256, RS384, RS512, PS256,
	// PS384, PS512, ES256, ES384, ES512 or EdDSA for private_key_jwt,
	// HS256, HS384 or HS512 for client_secret_jwt (HS384 needs a 48-byte
	// secret, HS512 a 64-byte one). Default: any that fits the method.
	TokenEndpointAuthSigningAlg string `json:"token_endpoint_auth_signing_alg,omitempty"`
	// JWKS is the client's public JWK Set (RFC 7517), inline as a JSON
	// object, for private_key_jwt. Private key material is refused.
	JWKS json.RawMessage `json:"jwks,omitempty"`
	// JWKSFile is the path of a file holding the client's public JWK Set
	// (JSON), for private_key_jwt; it is read when the config is loaded.
	JWKSFile string `json:"jwks_file,omitempty"`
	// JWKSURI is where the client publishes its public JWK Set, for
	// private_key_jwt: https (http only on a loopback host). It is fetched
	// with a 5 s timeout and a 256 KiB limit, cached for 5 minutes, and
	// refetched when an assertion names an unknown kid, at most every 10 s.
	// Set exactly one of jwks, jwks_file and jwks_uri.
	JWKSURI string `json:"jwks_uri,omitempty"`
	// RedirectURIs are matched exactly.
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	// PostLogoutRedirectURIs are matched exactly on logout.
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`
	// GrantTypes the client may use. Default: authorization_code and
	// refresh_token when it has redirect URIs, client_credentials when it
	// has api_access.
	GrantTypes []string `json:"grant_types,omitempty"`
	// Scopes the client may request from users. Default: any.
	Scopes []string `json:"scopes,omitempty"`
	// APIAccess maps API identifiers to the scopes the client may get for
	// itself with client_credentials.
	APIAccess map[string][]string `json:"api_access,omitempty"`
	// BackchannelLogoutURI receives OIDC Back-Channel Logout tokens when
	// a user's session at the server ends (https, or http on loopback).
	BackchannelLogoutURI string `json:"backchannel_logout_uri,omitempty"`
	// RequirePKCE demands PKCE from this confidential client too.
	RequirePKCE bool `json:"require_pkce,omitempty"`
	// RequirePAR refuses authorization requests that were not pushed to
	// the PAR endpoint first (RFC 9126).
	RequirePAR bool `json:"require_pushed_authorization_requests,omitempty"`
	// FirstParty skips the consent page.
	FirstParty bool `json:"first_party,omitempty"`
	// AlwaysIssueRefreshToken issues refresh tokens without offline_access.
	AlwaysIssueRefreshToken bool `json:"always_issue_refresh_token,omitempty"`
	// BackchannelTokenDeliveryMode is how a client with the ciba grant
	// gets the result of its CIBA requests: poll (the token endpoint),
	// ping (a POST of the auth_req_id to its notification endpoint, then
	// the token endpoint) or push (the tokens POSTed to its notification
	// endpoint). Default: poll.
	BackchannelTokenDeliveryMode string `json:"backchannel_token_delivery_mode,omitempty"`
	// BackchannelClientNotificationEndpoint receives ping and push
	// notifications: https, or http on loopback with the ciba block's
	// insecure_notification_endpoints. Required for ping and push, refused
	// for poll.
	BackchannelClientNotificationEndpoint string `json:"backchannel_client_notification_endpoint,omitempty"`
	// BackchannelAuthenticationRequestSigningAlg, when set, requires the
	// client's CIBA requests to come as a request object signed with this
	// algorithm: an asymmetric one with the client's jwks (private_key_jwt),
	// HS256/384/512 with its client_secret_jwt secret.
	BackchannelAuthenticationRequestSigningAlg string `json:"backchannel_authentication_request_signing_alg,omitempty"`
	// BackchannelUserCodeParameter makes the client send the user's
	// user_code with CIBA requests, checked against the code set for the
	// user through the admin API.
	BackchannelUserCodeParameter bool `json:"backchannel_user_code_parameter,omitempty"`
	// LogoURI is an image shown for the client on the CIBA approval page.
	LogoURI string `json:"logo_uri,omitempty"`
}

// APIConfig is an API (resource server) defined in the config.
type APIConfig struct {
	// Identifier is the audience of its tokens, e.g. https://api.example.com.
	Identifier string `json:"identifier"`
	// Name is shown on the consent page.
	Name string `json:"name,omitempty"`
	// Scopes the API defines.
	Scopes []string `json:"scopes,omitempty"`
	// TokenFormat is jwt (RFC 9068, default) or opaque.
	TokenFormat string `json:"token_format,omitempty"`
	// AccessTokenTTL overrides the server's access token lifetime.
	AccessTokenTTL caddy.Duration `json:"access_token_ttl,omitempty"`
}

// secretAuthMethods are the token_endpoint_auth_methods of clients with a
// secret.
var secretAuthMethods = []string{flows.AuthMethodSecretBasic, flows.AuthMethodSecretPost, flows.AuthMethodSecretJWT}

var knownGrantTypes = []string{flows.GrantAuthorizationCode, flows.GrantRefreshToken, flows.GrantClientCredentials,
	flows.GrantDeviceCode, flows.GrantPassword, flows.GrantCIBA}

// grantTypeAliases are short names accepted in the config for grant types
// whose registered name is a URN.
var grantTypeAliases = map[string]string{"device_code": flows.GrantDeviceCode, "ciba": flows.GrantCIBA}

// ClientRecord validates c and converts it to its store record; secret is
// the expanded secret. A jwks_file is read here.
func (c ClientConfig) ClientRecord(secret string) (*store.Client, error) {
	return c.clientRecord(secret, true)
}

// clientRecord is ClientRecord; with readFiles false (Caddyfile parsing,
// where the file need not exist yet) a jwks_file is neither read nor
// checked.
func (c ClientConfig) clientRecord(secret string, readFiles bool) (*store.Client, error) {
	if c.ID == "" {
		return nil, errors.New("client_id is required")
	}
	if !adminAddressable(c.ID) {
		return nil, fmt.Errorf("client_id %q has an empty, . or .. part between slashes: the admin API could not address the client", c.ID)
	}
	rec := &store.Client{
		ID: c.ID, Name: c.Name, RedirectURIs: c.RedirectURIs, PostLogoutRedirectURIs: c.PostLogoutRedirectURIs,
		GrantTypes: slices.Clone(c.GrantTypes), Scopes: c.Scopes, APIAccess: c.APIAccess, RequirePKCE: c.RequirePKCE,
		FirstParty: c.FirstParty, AlwaysIssueRefreshToken: c.AlwaysIssueRefreshToken, RequirePushedAuthorizationRequests: c.RequirePAR,
		TokenEndpointAuthMethod: c.TokenEndpointAuthMethod, BackchannelLogoutURI: c.BackchannelLogoutURI,
		TokenEndpointAuthSigningAlg: c.TokenEndpointAuthSigningAlg, JWKS: c.JWKS, JWKSURI: c.JWKSURI,
		BackchannelTokenDeliveryMode:               c.BackchannelTokenDeliveryMode,
		BackchannelClientNotificationEndpoint:      c.BackchannelClientNotificationEndpoint,
		BackchannelAuthenticationRequestSigningAlg: c.BackchannelAuthenticationRequestSigningAlg,
		BackchannelUserCodeParameter:               c.BackchannelUserCodeParameter,
		LogoURI:                                    c.LogoURI,
	}
	keySources := 0
	for _, set := range []bool{len(c.JWKS) > 0, c.JWKSFile != "", c.JWKSURI != ""} {
		if set {
			keySources++
		}
	}
	switch {
	case c.Public && secret != "":
		return nil, fmt.Errorf("client %s: a public client has no secret; remove `secret` or `public`", c.ID)
	case c.Public:
		rec.TokenEndpointAuthMethod = flows.AuthMethodNone
	case rec.TokenEndpointAuthMethod == flows.AuthMethodPrivateKeyJWT:
		if secret != "" {
			return nil, fmt.Errorf("client %s: a private_key_jwt client authenticates with its key; remove `secret`", c.ID)
		}
		if keySources != 1 {
			return nil, fmt.Errorf("client %s: private_key_jwt needs exactly one of jwks, jwks_file and jwks_uri (the client's public keys)", c.ID)
		}
	case secret == "":
		return nil, fmt.Errorf("client %s: set a secret, or mark it public", c.ID)
	default:
		if rec.TokenEndpointAuthMethod == "" {
			rec.TokenEndpointAuthMethod = flows.AuthMethodSecretBasic
		}
		if !slices.Contains(secretAuthMethods, rec.TokenEndpointAuthMethod) {
			return nil, fmt.Errorf("client %s: token_endpoint_auth_method %q is not supported; use %s or %s",
				c.ID, rec.TokenEndpointAuthMethod, strings.Join(secretAuthMethods, ", "), flows.AuthMethodPrivateKeyJWT)
		}
		rec.SecretDigest = flows.DigestSecret(secret)
		if rec.TokenEndpointAuthMethod == flows.AuthMethodSecretJWT {
			// Verifying an HMAC needs the key itself, not a digest.
			rec.HMACSecret = secret
		}
	}
	if keySources > 0 && rec.TokenEndpointAuthMethod != flows.AuthMethodPrivateKeyJWT {
		return nil, fmt.Errorf("client %s: jwks, jwks_file and jwks_uri are for private_key_jwt clients; set token_endpoint_auth_method private_key_jwt", c.ID)
	}
	if c.JWKSFile != "" && !readFiles {
		// Only what does not depend on the file's content.
		if err := flows.CheckAssertionSigningAlg(rec.TokenEndpointAuthMethod, rec.TokenEndpointAuthSigningAlg); err != nil {
			return nil, fmt.Errorf("client %s: %w", c.ID, err)
		}
	} else {
		if c.JWKSFile != "" {
			raw, err := os.ReadFile(c.JWKSFile)
			if err != nil {
				return nil, fmt.Errorf("client %s: jwks_file: %w", c.ID, err)
			}
			rec.JWKS = raw
		}
		if err := flows.ValidateAssertionClient(rec); err != nil {
			if c.JWKSFile != "" {
				return nil, fmt.Errorf("client %s: jwks_file %s: %w", c.ID, c.JWKSFile, err)
			}
			return nil, fmt.Errorf("client %s: %w", c.ID, err)
		}
	}
	if len(rec.GrantTypes) == 0 {
		if len(rec.RedirectURIs) > 0 {
			rec.GrantTypes = []string{flows.GrantAuthorizationCode, flows.GrantRefreshToken}
		}
		if len(rec.APIAccess) > 0 && !c.Public {
			rec.GrantTypes = append(rec.GrantTypes, flows.GrantClientCredentials)
		}
	}
	for i, gt := range rec.GrantTypes {
		if full, ok := grantTypeAliases[gt]; ok {
			rec.GrantTypes[i], gt = full, full
		}
		if !slices.Contains(knownGrantTypes, gt) {
			return nil, fmt.Errorf("client %s: grant type %q is not supported; use one of %s", c.ID, gt, strings.Join(knownGrantTypes, ", "))
		}
	}
	if c.Public && slices.Contains(rec.GrantTypes, flows.GrantClientCredentials) {
		return nil, fmt.Errorf("client %s: a public client cannot use client_credentials", c.ID)
	}
	// Whether plain http is allowed depends on the app's ciba block; it is
	// checked again with it when the client is stored (checkCIBAEndpoint).
	if err := flows.ValidateCIBAClient(rec, true); err != nil {
		return nil, fmt.Errorf("client %s: %w", c.ID, err)
	}
	if c.LogoURI != "" {
		if u, err := url.Parse(c.LogoURI); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("client %s: logo_uri %q must be an absolute http(s) URL", c.ID, c.LogoURI)
		}
	}
	if slices.Contains(rec.GrantTypes, flows.GrantAuthorizationCode) && len(rec.RedirectURIs) == 0 {
		return nil, fmt.Errorf("client %s: the authorization_code grant needs at least one redirect_uris entry", c.ID)
	}
	if rec.BackchannelLogoutURI != "" {
		if err := flows.CheckEndpointURI(rec.BackchannelLogoutURI); err != nil {
			return nil, fmt.Errorf("client %s: backchannel_logout_uri: %w", c.ID, err)
		}
	}
	for _, list := range [][]string{rec.RedirectURIs, rec.PostLogoutRedirectURIs} {
		for _, u := range list {
			if err := flows.CheckRedirectURI(u); err != nil {
				return nil, fmt.Errorf("client %s: %w", c.ID, err)
			}
		}
	}
	rec.ResponseTypes = []string{"code"}
	return rec, nil
}

// errNameCollision refuses a client id that is also a username. Tokens a
// client gets for itself carry the subject <client_id>@clients, never a
// username; one name for both would still confuse people reading logs,
// consents and admin listings, and an API that looks at client_id alone
// (RFC 9068 §5).
func errNameCollision(name string) error {
	return fmt.Errorf("%q is both a client id and a username; give the client another id (client and user names must differ)", name)
}

// adminAddressable reports whether name can end an admin API path,
// /portcullis/{clients,users}/{name}: Caddy's admin endpoint (an
// http.ServeMux) redirects a path with an empty, "." or ".." segment to the
// cleaned one, so a record with such a name could be created but never
// read, changed or deleted there.
func adminAddressable(name string) bool {
	p := "/" + name
	c := path.Clean(p)
	return c == p || c+"/" == p
}

// UserRecord validates u and converts it to its store record; hash is the
// argon2id hash to store.
func (u UserConfig) UserRecord(hash string) (*store.User, error) {
	if u.Username == "" {
		return nil, errors.New("username is required")
	}
	if strings.HasSuffix(u.Username, flows.ClientSubjectSuffix) {
		return nil, fmt.Errorf("username %q ends in %s, which marks the subject of client tokens; choose another", u.Username, flows.ClientSubjectSuffix)
	}
	// The admin API addresses a user as /portcullis/users/{username}[/user_code].
	if strings.Contains(u.Username, "/") || !adminAddressable(u.Username) {
		return nil, fmt.Errorf("username %q must not contain a slash or be . or ..: the admin API could not address the user", u.Username)
	}
	verified := u.Email != ""
	if u.EmailVerified != nil {
		verified = *u.EmailVerified
	}
	return &store.User{ID: u.Username, Username: u.Username, PasswordHash: hash, Email: u.Email, EmailVerified: verified,
		Name: u.Name, Groups: u.Groups, Claims: u.Claims}, nil
}

// APIRecord validates a and converts it to its store record.
func (a APIConfig) APIRecord() (*store.API, error) {
	if a.Identifier == "" {
		return nil, errors.New("api identifier is required")
	}
	switch a.TokenFormat {
	case "":
		a.TokenFormat = "jwt"
	case "jwt", "opaque":
	default:
		return nil, fmt.Errorf("api %s: token_format %q is not supported; use jwt or opaque", a.Identifier, a.TokenFormat)
	}
	for _, s := range a.Scopes {
		if strings.ContainsAny(s, " \"\\") {
			return nil, fmt.Errorf("api %s: scope %q contains a space, quote or backslash", a.Identifier, s)
		}
	}
	return &store.API{Identifier: a.Identifier, Name: a.Name, Scopes: a.Scopes, TokenFormat: a.TokenFormat,
		AccessTokenLifetime: int64(time.Duration(a.AccessTokenTTL) / time.Second)}, nil
}

// seed writes the configured users, clients and APIs to the store and
// removes config-owned records no longer in the config. Records created
// through the admin API are left alone.
func (a *App) seed(ctx context.Context, repl *caddy.Replacer) error {
	now := time.Now()
	apis := map[string]bool{}
	for _, ac := range a.APIs {
		rec, err := ac.APIRecord()
		if err != nil {
			return err
		}
		rec.Source, rec.CreatedAt = "config", now
		if err := a.store.PutAPI(ctx, rec); err != nil {
			return err
		}
		apis[rec.Identifier] = true
	}
	clients := map[string]bool{}
	for _, cc := range a.Clients {
		rec, err := cc.ClientRecord(repl.ReplaceKnown(cc.Secret, ""))
		if err != nil {
			return err
		}
		for aud := range rec.APIAccess {
			if _, err := a.store.GetAPI(ctx, aud); err != nil {
				return fmt.Errorf("client %s: api_access names %s, which is not a defined api", rec.ID, aud)
			}
		}
		if err := a.checkCIBAEndpoint(rec); err != nil {
			return err
		}
		rec.Source, rec.CreatedAt = "config", now
		if err := a.store.PutClient(ctx, rec); err != nil {
			return err
		}
		clients[rec.ID] = true
	}
	users := map[string]bool{}
	for _, uc := range a.Users {
		hash, err := a.userHash(ctx, uc, repl)
		if err != nil {
			return err
		}
		rec, err := uc.UserRecord(hash)
		if err != nil {
			return err
		}
		if prev, err := a.store.GetUser(ctx, rec.Username); err == nil {
			// Set through the admin API: kept across reloads.
			rec.BackchannelUserCodeHash = prev.BackchannelUserCodeHash
		}
		rec.Source, rec.CreatedAt = "config", now
		if err := a.store.PutUser(ctx, rec); err != nil {
			return err
		}
		users[rec.Username] = true
	}
	if err := a.pruneConfigRecords(ctx, apis, clients, users); err != nil {
		return err
	}
	return a.checkNameCollisions(ctx)
}

// checkNameCollisions refuses a store where a client id equals a username:
// one side from the config, the other from the admin API (the config
// alone is checked by Validate).
func (a *App) checkNameCollisions(ctx context.Context) error {
	users, err := a.store.ListUsers(ctx)
	if err != nil {
		return err
	}
	for _, u := range users {
		if _, err := a.store.GetClient(ctx, u.Username); err == nil {
			return errNameCollision(u.Username)
		}
	}
	return nil
}

// userHash returns the argon2id hash for a configured user, reusing the
// stored hash when the plaintext demo password has not changed (hashing is
// deliberately slow).
func (a *App) userHash(ctx context.Context, uc UserConfig, repl *caddy.Replacer) (string, error) {
	if h := repl.ReplaceKnown(uc.PasswordHash, ""); h != "" {
		if _, err := flows.VerifyPassword(h, ""); err != nil {
			return "", fmt.Errorf("user %s: password_hash: %w (make one with: caddy hash-password --algorithm argon2id)", uc.Username, err)
		}
		return h, nil
	}
	pw := repl.ReplaceKnown(uc.Password, "")
	if pw == "" {
		return "", fmt.Errorf("user %s: set password_hash (or password, for demos)", uc.Username)
	}
	a.logger.Warn("user has a plaintext password in the config; use password_hash outside demos", zap.String("user", uc.Username))
	if prev, err := a.store.GetUser(ctx, uc.Username); err == nil && prev.PasswordHash != "" {
		if ok, _ := flows.VerifyPassword(prev.PasswordHash, pw); ok {
			return prev.PasswordHash, nil
		}
	}
	return flows.HashPassword(pw)
}

func (a *App) pruneConfigRecords(ctx context.Context, apis, clients, users map[string]bool) error {
	storedClients, err := a.store.ListClients(ctx)
	if err != nil {
		return err
	}
	for _, c := range storedClients {
		if c.Source == "config" && !clients[c.ID] {
			if err := a.store.DeleteClient(ctx, c.ID); err != nil {
				return err
			}
		}
	}
	storedUsers, err := a.store.ListUsers(ctx)
	if err != nil {
		return err
	}
	for _, u := range storedUsers {
		if u.Source == "config" && !users[u.Username] {
			if err := a.store.DeleteUser(ctx, u.Username); err != nil {
				return err
			}
		}
	}
	storedAPIs, err := a.store.ListAPIs(ctx)
	if err != nil {
		return err
	}
	for _, api := range storedAPIs {
		if api.Source == "config" && !apis[api.Identifier] {
			if err := a.store.DeleteAPI(ctx, api.Identifier); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkCIBAEndpoint checks a client's CIBA notification endpoint against
// the app's insecure_notification_endpoints switch.
func (a *App) checkCIBAEndpoint(rec *store.Client) error {
	insecure := a.CIBA != nil && a.CIBA.InsecureNotificationEndpoints
	if err := flows.ValidateCIBAClient(rec, insecure); err != nil {
		return fmt.Errorf("client %s: %w", rec.ID, err)
	}
	return nil
}

// validSigningAlg reports whether alg can be configured.
func validSigningAlg(alg string) bool { return alg == "" || slices.Contains(keys.SupportedAlgs, alg) }
