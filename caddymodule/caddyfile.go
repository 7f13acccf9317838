package caddymodule

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/portcullis-gw/portcullis/flows"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("portcullis", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("oauth_server", parseOAuthServer)
	httpcaddyfile.RegisterDirectiveOrder("oauth_server", httpcaddyfile.Before, "reverse_proxy")
}

// parseGlobalOption sets up the portcullis app from the global options
// block:
//
//	portcullis {
//		storage bbolt <path>
//		issuer <url>
//		signing_alg ES256|RS256|PS256|EdDSA
//		key_rotation <duration>
//		cookie_secret <secret>
//		insecure_cookies
//		access_token_ttl|id_token_ttl|refresh_token_ttl|code_ttl|session_ttl <duration>
//		device_code_ttl|device_poll_interval <duration>
//		login_throttle <failures per user> <failures per IP> <refill duration>
//		ciba {
//			request_ttl <duration>
//			poll_interval <duration>
//			max_pending_per_user <n>
//			rate_limit_per_client <burst> <interval>
//			rate_limit_per_user <burst> <interval>
//			webhook <url>
//			insecure_notification_endpoints
//		}
//		brand {
//			name <text>
//			color <#rrggbb>
//			logo <url>
//		}
//		user <username> {
//			password <plaintext, demo only> | password_hash <argon2id PHC>
//			email <address>
//			email_verified true|false
//			name <display name>
//			groups <group...>
//			claim <name> <value>
//		}
//		client <client_id> {
//			name <text>
//			secret <secret> | public
//			token_endpoint_auth_method client_secret_basic|client_secret_post|client_secret_jwt|private_key_jwt
//			token_endpoint_auth_signing_alg <alg>
//			jwks_file <path to the client's public JWK Set> | jwks_uri <url>
//			redirect_uris <uri...>
//			post_logout_redirect_uris <uri...>
//			grant_types <type...>
//			scopes <scope...>
//			api_access <api identifier> <scope...>
//			backchannel_logout_uri <uri>
//			backchannel_token_delivery_mode poll|ping|push
//			backchannel_client_notification_endpoint <url>
//			backchannel_authentication_request_signing_alg <alg>
//			backchannel_user_code_parameter
//			logo_uri <url>
//			require_pkce
//			require_par
//			first_party
//			always_issue_refresh_token
//		}
//		api <identifier> {
//			name <text>
//			scopes <scope...>
//			token_format jwt|opaque
//			access_token_ttl <duration>
//		}
//	}
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("the portcullis global option may appear only once")
	}
	app := new(App)
	d.Next() // the option name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "storage":
			app.Storage, err = parseStorage(d)
		case "issuer":
			err = oneArg(d, &app.Issuer)
		case "signing_alg":
			if err = oneArg(d, &app.SigningAlg); err == nil && !validSigningAlg(app.SigningAlg) {
				err = d.Errf("signing_alg %q is not supported; use ES256, RS256, PS256 or EdDSA", app.SigningAlg)
			}
		case "key_rotation":
			err = durationArg(d, &app.KeyRotation)
		case "cookie_secret":
			err = oneArg(d, &app.CookieSecret)
		case "insecure_cookies":
			app.InsecureCookies = true
			err = noArgs(d)
		case "access_token_ttl":
			err = durationArg(d, &app.AccessTokenTTL)
		case "id_token_ttl":
			err = durationArg(d, &app.IDTokenTTL)
		case "refresh_token_ttl":
			err = durationArg(d, &app.RefreshTokenTTL)
		case "code_ttl":
			err = durationArg(d, &app.CodeTTL)
		case "session_ttl":
			err = durationArg(d, &app.SessionTTL)
		case "login_throttle":
			app.LoginThrottle, err = parseLoginThrottle(d)
		case "device_code_ttl":
			err = durationArg(d, &app.DeviceCodeTTL)
		case "device_poll_interval":
			err = durationArg(d, &app.DevicePollInterval)
		case "ciba":
			if app.CIBA != nil {
				return nil, d.Err("the ciba block may appear only once")
			}
			app.CIBA, err = parseCIBA(d)
		case "brand":
			app.Brand, err = parseBrand(d)
		case "user":
			var u UserConfig
			if err = checkNameFree(d, app); err == nil {
				u, err = parseUser(d)
				app.Users = append(app.Users, u)
			}
		case "client":
			var c ClientConfig
			if err = checkNameFree(d, app); err == nil {
				c, err = parseClient(d)
				app.Clients = append(app.Clients, c)
			}
		case "api":
			var a APIConfig
			if a, err = parseAPI(d); err == nil {
				app.APIs = append(app.APIs, a)
			}
		default:
			return nil, d.Errf("unrecognized portcullis option %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	return httpcaddyfile.App{Name: "portcullis", Value: caddyconfig.JSON(app, nil)}, nil
}

// parseLoginThrottle reads `login_throttle <per_user> <per_ip> <refill>`.
func parseLoginThrottle(d *caddyfile.Dispenser) (*LoginThrottleConfig, error) {
	args := d.RemainingArgs()
	if len(args) != 3 {
		return nil, d.Errf("usage: login_throttle <failures per user> <failures per IP> <refill duration>, e.g. login_throttle 5 20 1m")
	}
	perUser, err1 := strconv.Atoi(args[0])
	perIP, err2 := strconv.Atoi(args[1])
	if err1 != nil || err2 != nil || perUser < 1 || perIP < 1 {
		return nil, d.Errf("login_throttle: %q and %q must be positive whole numbers of failures", args[0], args[1])
	}
	refill, err := caddy.ParseDuration(args[2])
	if err != nil || refill <= 0 {
		return nil, d.Errf("login_throttle: %q must be a positive duration such as 1m", args[2])
	}
	return &LoginThrottleConfig{PerUser: perUser, PerIP: perIP, Refill: caddy.Duration(refill)}, nil
}

func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func pathArg(d *caddyfile.Dispenser, dst *string) error {
	if err := oneArg(d, dst); err != nil {
		return err
	}
	if !strings.HasPrefix(*dst, "/") {
		return d.Errf("path %q must start with /", *dst)
	}
	return nil
}

// headerClaimArg reads `header <Header-Name> <claim>` into headers.
func headerClaimArg(d *caddyfile.Dispenser, headers *map[string]string) error {
	args := d.RemainingArgs()
	if len(args) != 2 {
		return d.Errf("usage: header <Header-Name> <claim>")
	}
	if *headers == nil {
		*headers = map[string]string{}
	}
	(*headers)[args[0]] = args[1]
	return nil
}

// requireClaimArg reads `require_claim <claim> <value...>` into claims;
// repeated lines for one claim add values.
func requireClaimArg(d *caddyfile.Dispenser, claims *map[string][]string) error {
	args := d.RemainingArgs()
	if len(args) < 2 {
		return d.Errf("usage: require_claim <claim> <value...>")
	}
	if *claims == nil {
		*claims = map[string][]string{}
	}
	(*claims)[args[0]] = append((*claims)[args[0]], args[1:]...)
	return nil
}

func noArgs(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func durationArg(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("%s: invalid duration %q: %v", d.Val(), s, err)
	}
	if dur <= 0 {
		return d.Errf("duration %q must be positive", s)
	}
	*dst = caddy.Duration(dur)
	return nil
}

func boolArg(d *caddyfile.Dispenser, dst *bool) error {
	*dst = true
	if !d.NextArg() {
		return nil
	}
	v, err := strconv.ParseBool(d.Val())
	if err != nil {
		return d.Errf("expected true or false, got %q", d.Val())
	}
	*dst = v
	return noArgs(d)
}

func listArgs(d *caddyfile.Dispenser) ([]string, error) {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return nil, d.ArgErr()
	}
	return args, nil
}

func parseStorage(d *caddyfile.Dispenser) (*StorageConfig, error) {
	args := d.RemainingArgs()
	if len(args) != 2 || args[0] != "bbolt" {
		return nil, d.Errf("usage: storage bbolt <path>")
	}
	return &StorageConfig{Backend: "bbolt", Path: args[1]}, nil
}

func parseBrand(d *caddyfile.Dispenser) (*BrandConfig, error) {
	b := new(BrandConfig)
	if err := noArgs(d); err != nil {
		return nil, err
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "name":
			err = oneArg(d, &b.Name)
		case "color":
			err = oneArg(d, &b.Color)
		case "logo":
			err = oneArg(d, &b.LogoURL)
		default:
			err = d.Errf("unrecognized brand option %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}

func parseUser(d *caddyfile.Dispenser) (UserConfig, error) {
	var u UserConfig
	if err := oneArgBeforeBlock(d, &u.Username); err != nil {
		return u, err
	}
	if strings.HasSuffix(u.Username, flows.ClientSubjectSuffix) {
		return u, d.Errf("username %q ends in %s, which marks the subject of client tokens; choose another", u.Username, flows.ClientSubjectSuffix)
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "password":
			err = oneArg(d, &u.Password)
		case "password_hash":
			err = oneArg(d, &u.PasswordHash)
		case "email":
			err = oneArg(d, &u.Email)
		case "email_verified":
			v := false
			err = boolArg(d, &v)
			u.EmailVerified = &v
		case "name":
			err = oneArg(d, &u.Name)
		case "groups":
			u.Groups, err = listArgs(d)
		case "claim":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return u, d.Errf("usage: claim <name> <value...>")
			}
			if u.Claims == nil {
				u.Claims = map[string]any{}
			}
			if len(args) == 2 {
				u.Claims[args[0]] = args[1]
			} else {
				u.Claims[args[0]] = args[1:]
			}
		default:
			err = d.Errf("unrecognized user option %q", d.Val())
		}
		if err != nil {
			return u, err
		}
	}
	if u.Password != "" && u.PasswordHash != "" {
		return u, d.Errf("user %s: use password_hash or password, not both", u.Username)
	}
	if u.Password == "" && u.PasswordHash == "" {
		return u, d.Errf("user %s: password_hash is required (make one with: caddy hash-password --algorithm argon2id)", u.Username)
	}
	if _, err := u.UserRecord(""); err != nil {
		return u, d.Err(err.Error())
	}
	return u, nil
}

// oneArgBeforeBlock reads the single argument after a block directive's
// name (user alice {, client webapp {, api https://… {).
func oneArgBeforeBlock(d *caddyfile.Dispenser, dst *string) error {
	name := d.Val()
	if !d.NextArg() {
		return d.Errf("%s needs a name: %s <name> { … }", name, name)
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func parseClient(d *caddyfile.Dispenser) (ClientConfig, error) {
	var c ClientConfig
	if err := oneArgBeforeBlock(d, &c.ID); err != nil {
		return c, err
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "name":
			err = oneArg(d, &c.Name)
		case "secret":
			err = oneArg(d, &c.Secret)
		case "public":
			err = boolArg(d, &c.Public)
		case "token_endpoint_auth_method":
			err = firstErr(oneArg(d, &c.TokenEndpointAuthMethod), checkAuthMethod(d, c.TokenEndpointAuthMethod))
		case "token_endpoint_auth_signing_alg":
			err = firstErr(oneArg(d, &c.TokenEndpointAuthSigningAlg), checkAssertionAlg(d, c.TokenEndpointAuthSigningAlg))
		case "jwks_file":
			err = oneArg(d, &c.JWKSFile)
		case "jwks_uri":
			err = oneArg(d, &c.JWKSURI)
			if uriErr := flows.ValidateJWKSURI(c.JWKSURI); err == nil && uriErr != nil {
				err = d.Errf("%v", uriErr)
			}
		case "jwks":
			err = d.Errf("inline jwks is for the JSON config and the admin API; in a Caddyfile use jwks_file <path> or jwks_uri <url>")
		case "redirect_uris":
			c.RedirectURIs, err = listArgs(d)
			err = firstErr(err, checkEach(d, c.RedirectURIs))
		case "post_logout_redirect_uris":
			c.PostLogoutRedirectURIs, err = listArgs(d)
			err = firstErr(err, checkEach(d, c.PostLogoutRedirectURIs))
		case "grant_types":
			c.GrantTypes, err = listArgs(d)
		case "scopes":
			c.Scopes, err = listArgs(d)
		case "api_access":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return c, d.Errf("usage: api_access <api identifier> <scope...>")
			}
			if c.APIAccess == nil {
				c.APIAccess = map[string][]string{}
			}
			c.APIAccess[args[0]] = append(c.APIAccess[args[0]], args[1:]...)
		case "backchannel_logout_uri":
			err = oneArg(d, &c.BackchannelLogoutURI)
		case "backchannel_token_delivery_mode":
			err = oneArg(d, &c.BackchannelTokenDeliveryMode)
			if m := c.BackchannelTokenDeliveryMode; err == nil && m != "poll" && m != "ping" && m != "push" {
				err = d.Errf("backchannel_token_delivery_mode %q is not supported; use poll, ping or push", m)
			}
		case "backchannel_client_notification_endpoint":
			err = oneArg(d, &c.BackchannelClientNotificationEndpoint)
			if uriErr := flows.CheckNotificationURL(c.BackchannelClientNotificationEndpoint, true); err == nil && uriErr != nil {
				err = d.Errf("backchannel_client_notification_endpoint: %v", uriErr)
			}
		case "backchannel_authentication_request_signing_alg":
			err = oneArg(d, &c.BackchannelAuthenticationRequestSigningAlg)
		case "backchannel_user_code_parameter":
			err = boolArg(d, &c.BackchannelUserCodeParameter)
		case "logo_uri":
			err = oneArg(d, &c.LogoURI)
		case "require_pkce":
			err = boolArg(d, &c.RequirePKCE)
		case "require_par":
			err = boolArg(d, &c.RequirePAR)
		case "first_party":
			err = boolArg(d, &c.FirstParty)
		case "always_issue_refresh_token":
			err = boolArg(d, &c.AlwaysIssueRefreshToken)
		default:
			err = d.Errf("unrecognized client option %q", d.Val())
		}
		if err != nil {
			return c, err
		}
	}
	// Check what can be checked without placeholders expanded and files
	// read, here where the file and line are known. The stand-in secret is
	// long enough for any client_secret_jwt alg; the real one is checked
	// when the config is loaded.
	secret := c.Secret
	if strings.Contains(secret, "{") {
		secret = strings.Repeat("p", 64)
	}
	if _, err := c.clientRecord(secret, false); err != nil {
		return c, d.Err(err.Error())
	}
	return c, nil
}

// checkAuthMethod refuses an unknown token_endpoint_auth_method on its
// line; whether it fits the rest of the client is checked at the block's
// end.
func checkAuthMethod(d *caddyfile.Dispenser, m string) error {
	if m == "" || m == flows.AuthMethodPrivateKeyJWT || m == flows.AuthMethodNone || slices.Contains(secretAuthMethods, m) {
		return nil
	}
	return d.Errf("token_endpoint_auth_method %q is not supported; use %s or %s (or `public`)",
		m, strings.Join(secretAuthMethods, ", "), flows.AuthMethodPrivateKeyJWT)
}

// checkAssertionAlg refuses, on its line, a token_endpoint_auth_signing_alg
// that fits neither private_key_jwt nor client_secret_jwt.
func checkAssertionAlg(d *caddyfile.Dispenser, alg string) error {
	if flows.CheckAssertionSigningAlg(flows.AuthMethodPrivateKeyJWT, alg) == nil ||
		flows.CheckAssertionSigningAlg(flows.AuthMethodSecretJWT, alg) == nil {
		return nil
	}
	return d.Errf("token_endpoint_auth_signing_alg %q is not supported; use RS256, RS384, RS512, PS256, PS384, PS512, "+
		"ES256, ES384, ES512 or EdDSA (private_key_jwt), HS256, HS384 or HS512 (client_secret_jwt)", alg)
}

// checkNameFree refuses, on its line, a client or user block whose name
// (the next argument, left unread) an earlier client or user took.
func checkNameFree(d *caddyfile.Dispenser, app *App) error {
	if !d.NextArg() {
		return nil // the block's parser says what is missing
	}
	name := d.Val()
	defer d.Prev()
	for _, c := range app.Clients {
		if c.ID == name {
			return d.Errf("client %q is already defined (client ids and usernames must all differ)", name)
		}
	}
	for _, u := range app.Users {
		if u.Username == name {
			return d.Errf("user %q is already defined (client ids and usernames must all differ)", name)
		}
	}
	return nil
}

func checkEach(d *caddyfile.Dispenser, uris []string) error {
	for _, u := range uris {
		if err := flows.CheckRedirectURI(u); err != nil {
			return d.Err(err.Error())
		}
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// parseCIBA reads the ciba block of the global option.
func parseCIBA(d *caddyfile.Dispenser) (*CIBAConfig, error) {
	c := new(CIBAConfig)
	if err := noArgs(d); err != nil {
		return nil, err
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "request_ttl":
			if err = durationArg(d, &c.RequestTTL); err == nil && time.Duration(c.RequestTTL) > flows.MaxCIBARequestTTL {
				err = d.Errf("request_ttl %s is longer than the maximum %s", time.Duration(c.RequestTTL), flows.MaxCIBARequestTTL)
			}
		case "poll_interval":
			err = durationArg(d, &c.PollInterval)
		case "max_pending_per_user":
			var s string
			if err = oneArg(d, &s); err == nil {
				if c.MaxPendingPerUser, err = strconv.Atoi(s); err != nil || c.MaxPendingPerUser <= 0 {
					err = d.Errf("max_pending_per_user must be a positive integer, not %q", s)
				}
			}
		case "rate_limit_per_client":
			c.RateLimitPerClient, err = parseRateLimit(d)
		case "rate_limit_per_user":
			c.RateLimitPerUser, err = parseRateLimit(d)
		case "webhook":
			if err = oneArg(d, &c.Webhook); err == nil {
				if uriErr := flows.CheckNotificationURL(c.Webhook, true); uriErr != nil {
					err = d.Errf("webhook: %v", uriErr)
				}
			}
		case "insecure_notification_endpoints":
			c.InsecureNotificationEndpoints = true
			err = noArgs(d)
		default:
			err = d.Errf("unrecognized ciba option %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	if c.Webhook != "" {
		if err := flows.CheckNotificationURL(c.Webhook, c.InsecureNotificationEndpoints); err != nil {
			return nil, d.Errf("webhook: %v", err)
		}
	}
	return c, nil
}

// parseRateLimit reads `<burst> <interval>`.
func parseRateLimit(d *caddyfile.Dispenser) (*RateLimitConfig, error) {
	name, args := d.Val(), d.RemainingArgs()
	if len(args) != 2 {
		return nil, d.Errf("usage: %s <burst> <interval>, e.g. %s 10 1m", name, name)
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n <= 0 {
		return nil, d.Errf("%s: burst must be a positive integer, not %q", name, args[0])
	}
	dur, err := caddy.ParseDuration(args[1])
	if err != nil || dur <= 0 {
		return nil, d.Errf("%s: invalid interval %q", name, args[1])
	}
	return &RateLimitConfig{Burst: n, Interval: caddy.Duration(dur)}, nil
}

func parseAPI(d *caddyfile.Dispenser) (APIConfig, error) {
	var a APIConfig
	if err := oneArgBeforeBlock(d, &a.Identifier); err != nil {
		return a, err
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "name":
			err = oneArg(d, &a.Name)
		case "scopes":
			a.Scopes, err = listArgs(d)
		case "token_format":
			err = oneArg(d, &a.TokenFormat)
		case "access_token_ttl":
			err = durationArg(d, &a.AccessTokenTTL)
		default:
			err = d.Errf("unrecognized api option %q", d.Val())
		}
		if err != nil {
			return a, err
		}
	}
	if _, err := a.APIRecord(); err != nil {
		return a, d.Err(err.Error())
	}
	return a, nil
}

// parseOAuthServer sets up the oauth_server handler:
//
//	oauth_server
func parseOAuthServer(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	h.Next()
	if h.NextArg() {
		return nil, h.ArgErr()
	}
	if h.NextBlock(0) {
		return nil, h.Errf("oauth_server takes no options: configure the server in the portcullis global option")
	}
	return new(OAuthServer), nil
}
