package caddymodule

import (
	"encoding/json"
	"fmt"
	"regexp"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

// caddyfileDirectives are the Caddyfile unmarshalers FuzzCaddyfile picks
// from: each parses the tokens of its directive and returns what Caddy
// would put in the JSON config.
var caddyfileDirectives = []struct {
	name  string
	parse func(d *caddyfile.Dispenser) (any, error)
	// decode decodes the JSON of the result as Caddy loads it.
	decode func(raw []byte) error
}{
	{"portcullis", func(d *caddyfile.Dispenser) (any, error) {
		v, err := parseGlobalOption(d, nil)
		if err != nil {
			return nil, err
		}
		return v.(httpcaddyfile.App).Value, nil
	}, func(raw []byte) error {
		var app App
		if err := json.Unmarshal(raw, &app); err != nil {
			return err
		}
		app.Validate() // may refuse, must not panic
		return nil
	}},
	{"oidc_login", func(d *caddyfile.Dispenser) (any, error) {
		return parseOIDCLogin(httpcaddyfile.Helper{Dispenser: d})
	}, func(raw []byte) error { return json.Unmarshal(raw, new(OIDCLogin)) }},
	{"bearer_auth", func(d *caddyfile.Dispenser) (any, error) {
		return parseBearerAuth(httpcaddyfile.Helper{Dispenser: d})
	}, func(raw []byte) error { return json.Unmarshal(raw, new(BearerAuth)) }},
	{"oauth_server", func(d *caddyfile.Dispenser) (any, error) {
		return parseOAuthServer(httpcaddyfile.Helper{Dispenser: d})
	}, func(raw []byte) error {
		if string(raw) != "{}" { // the handler has no options
			return fmt.Errorf("oauth_server adapted to %s", raw)
		}
		return nil
	}},
}

// errorLine is how a Caddyfile error names where it is.
var errorLine = regexp.MustCompile(`Testfile:[0-9]+`)

// FuzzCaddyfile feeds arbitrary Caddyfile text, after the directive's
// name, to the unmarshaler of the `portcullis` global option or of the
// oidc_login, bearer_auth or oauth_server directive, the first byte
// picking which, as Caddy does: the tokens of the directive, first its
// name. The seeds are every option of each, and the mistakes the unit
// tests make. Property: never a panic; an error names the file and line
// it is about; a success is a config whose JSON decodes (and validates,
// for the app, without a panic). Run it with
//
//	go test ./caddymodule/ -run '^$' -fuzz '^FuzzCaddyfile$' -fuzztime 60s
func FuzzCaddyfile(f *testing.F) {
	const portcullis, oidcLogin, bearerAuth, oauthServer = 0, 1, 2, 3
	seeds := []struct {
		directive uint8
		text      string
	}{
		{portcullis, ` {
		storage bbolt /var/lib/portcullis.db
		issuer https://auth.example.com
		signing_alg EdDSA
		key_rotation 48h
		cookie_secret {env.COOKIE_SECRET}
		insecure_cookies
		access_token_ttl 15m
		id_token_ttl 10m
		refresh_token_ttl 720h
		code_ttl 30s
		session_ttl 8h
		device_code_ttl 15m
		device_poll_interval 3s
		login_throttle 5 20 1m
		ciba {
			request_ttl 10m
			poll_interval 2s
			max_pending_per_user 3
			rate_limit_per_client 50 1s
			rate_limit_per_user 5 1m
			webhook https://auth-app.example.com/hook
			insecure_notification_endpoints
		}
		brand {
			name "Acme Login"
			color "#ff6600"
			logo https://acme.example.com/logo.svg
		}
		user alice {
			password_hash "$argon2id$v=19$m=65536,t=3,p=2$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5"
			email alice@example.com
			email_verified false
			name "Alice Example"
			groups admins staff
			claim department engineering
		}
		client webapp {
			name "Web App"
			secret {env.WEBAPP_SECRET}
			token_endpoint_auth_method client_secret_post
			redirect_uris https://app.example.com/cb https://app.example.com/cb2
			post_logout_redirect_uris https://app.example.com/
			grant_types authorization_code refresh_token
			scopes openid profile read:items
			backchannel_logout_uri https://app.example.com/bcl
			require_pkce
			require_par
			first_party
			always_issue_refresh_token
		}
		client backend {
			secret s3cret
			api_access https://api.example.com read:items write:items
		}
		client kiosk {
			secret kiosk-secret-that-is-long-enough-for-hs256
			token_endpoint_auth_method client_secret_jwt
			token_endpoint_auth_signing_alg HS256
			grant_types ciba
			backchannel_token_delivery_mode ping
			backchannel_client_notification_endpoint https://kiosk.example.com/cb
			backchannel_authentication_request_signing_alg HS256
			backchannel_user_code_parameter
			logo_uri https://kiosk.example.com/logo.png
		}
		client signer {
			token_endpoint_auth_method private_key_jwt
			jwks_uri https://signer.example.com/jwks
			grant_types client_credentials
			api_access https://api.example.com read:items
		}
		client tv {
			public
			grant_types device_code refresh_token
		}
		api https://api.example.com {
			name "Items API"
			scopes read:items write:items
			token_format opaque
			access_token_ttl 5m
		}
	}`},
		{portcullis, "\n\tissuer https://a.example\n\tfrobnicate yes\n}"},
		{portcullis, " {\n\tuser alice {\n\t\tpassword x\n\t\tpassword_hash y\n\t}\n}"},
		{portcullis, " {\n\tclient web {\n\t\tpublic\n\t\tredirect_uris http://evil.example/cb#x\n\t}\n}"},
		{portcullis, " {\n\tclient {\n\t}\n\tciba {\n\t}\n\tciba\n}"},
		{portcullis, " {\n\tlogin_throttle 0 -1 soon\n\tstorage redis x\n}"},
		{portcullis, " extra {\n}"},
		{oidcLogin, ` {
		issuer https://login.example.com
		client_id webapp
		client_secret {env.WEBAPP_SECRET}
		scopes openid profile email groups
		flow hybrid
		no_pkce
		par
		jar false
		signing_key /etc/portcullis/gateway.pem
		jwks_path /.gateway/jwks
		identity_assertion X-App-Assertion
		identity_assertion_audience https://app.internal
		redirect_path /auth/callback
		logout_path /auth/logout
		post_logout_redirect https://www.example.com/
		cookie_name app_session
		cookie_secret {env.NEW_SECRET} {env.OLD_SECRET}
		insecure_cookies
		session_store server
		backchannel_logout_path /auth/backchannel
		session_lifetime 12h
		idle_timeout 30m
		header X-User sub
		pass_access_token
		pass_id_token X-Id-Token
		allow_emails a@example.com
		allow_domains example.com
		allow_groups admins
		require_claim tenant acme beta
		skip /health /static/*
	}`},
		{oidcLogin, " {\n\tissuer https://a.example\n\tflow implicit\n}"},
		{oidcLogin, " {\n\theader X-User\n\tredirect_path relative\n}"},
		{oidcLogin, " x"},
		{bearerAuth, ` read:items {
		issuer https://login.example.com
		jwks_uri https://login.example.com/keys
		audience https://api.example.com https://api2.example.com
		algorithms ES256 RS256
		require_at_jwt
		leeway 5s
		scopes write:items
		any_scope
		any_audience
		require_claim tenant acme
		header X-User sub
		forward_authorization
		allow_query_token
		introspection_endpoint https://login.example.com/introspect
		client_id api
		client_secret {env.API_SECRET}
		cache_ttl 30s
		negative_cache_ttl 2s
		cache_entries 500
		decryption_key /etc/keys/jwe.pem
		resource https://api.example.com
		resource_name "Items API"
		resource_metadata false
		require_dpop
		dpop_nonce
	}`},
		{bearerAuth, " {\n\tissuer https://a.example\n\taudience x\n\tcache_entries -1\n\tforward_authorization maybe\n}"},
		{bearerAuth, ""},
		{oauthServer, ""},
		{oauthServer, " {\n\tissuer x\n}"},
		{oauthServer, " extra"},
	}
	for _, s := range seeds {
		f.Add(s.directive, s.text)
	}
	f.Fuzz(func(t *testing.T, directive uint8, text string) {
		dir := caddyfileDirectives[int(directive)%len(caddyfileDirectives)]
		tokens, err := caddyfile.Tokenize([]byte(dir.name+text), "Testfile")
		if err != nil {
			return // the lexer's refusal: Caddy stops before any unmarshaler
		}
		v, err := dir.parse(caddyfile.NewDispenser(tokens))
		if err != nil {
			if !errorLine.MatchString(err.Error()) {
				t.Fatalf("%s: error %q does not say where", dir.name, err)
			}
			return
		}
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: the parsed config does not marshal: %v", dir.name, err)
		}
		if err := dir.decode(raw); err != nil {
			t.Fatalf("%s: the adapted JSON does not decode (%v): %s", dir.name, err, raw)
		}
	})
}
