package caddymodule

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func parseOIDCLoginBlock(t *testing.T, input string) (*OIDCLogin, error) {
	t.Helper()
	h := httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser(input)}
	m, err := parseOIDCLogin(h)
	if err != nil {
		return nil, err
	}
	return m.(*OIDCLogin), nil
}

func TestOIDCLoginCaddyfileParsesEveryOption(t *testing.T) {
	got, err := parseOIDCLoginBlock(t, `oidc_login {
		issuer https://login.example.com
		client_id webapp
		client_secret {env.WEBAPP_SECRET}
		scopes openid profile email groups
		flow hybrid
		no_pkce
		par
		jar
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
		header X-Mail email
		pass_access_token
		pass_id_token X-Id-Token
		allow_emails alice@example.com bob@example.com
		allow_domains example.com
		allow_groups admins
		require_claim department engineering sales
		skip /health /static/*
		skip /favicon.ico
	}`)
	if err != nil {
		t.Fatal(err)
	}
	want := &OIDCLogin{
		Issuer: "https://login.example.com", ClientID: "webapp", ClientSecret: "{env.WEBAPP_SECRET}",
		Scopes: []string{"openid", "profile", "email", "groups"}, Flow: "hybrid", DisablePKCE: true, UsePAR: true,
		UseJAR: true, SigningKey: "/etc/portcullis/gateway.pem", JWKSPath: "/.gateway/jwks",
		AssertionHeader: "X-App-Assertion", AssertionAudience: "https://app.internal",
		RedirectPath: "/auth/callback", LogoutPath: "/auth/logout", PostLogoutRedirect: "https://www.example.com/",
		CookieName: "app_session", CookieSecrets: []string{"{env.NEW_SECRET}", "{env.OLD_SECRET}"}, InsecureCookies: true,
		SessionStore: "server", BackchannelLogoutPath: "/auth/backchannel",
		SessionLifetime: 12 * 3600 * 1e9, IdleTimeout: 30 * 60 * 1e9,
		Headers:         map[string]string{"X-User": "sub", "X-Mail": "email"},
		PassAccessToken: true, IDTokenHeader: "X-Id-Token",
		AllowEmails: []string{"alice@example.com", "bob@example.com"}, AllowDomains: []string{"example.com"},
		AllowGroups: []string{"admins"}, RequireClaims: map[string][]string{"department": {"engineering", "sales"}},
		Skip: []string{"/health", "/static/*", "/favicon.ico"},
	}
	if !reflect.DeepEqual(got, want) {
		a, _ := json.MarshalIndent(got, "", " ")
		b, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("parsed\n%s\nwant\n%s", a, b)
	}
}

func TestOIDCLoginCaddyfileDefaults(t *testing.T) {
	got, err := parseOIDCLoginBlock(t, "oidc_login {\n\tissuer https://a.example\n\tclient_id app\n\tidentity_assertion\n\tpass_id_token\n}")
	if err != nil {
		t.Fatal(err)
	}
	if got.AssertionHeader != "X-Portcullis-Assertion" || got.IDTokenHeader != "X-Forwarded-Id-Token" {
		t.Errorf("default header names: assertion %q, id token %q", got.AssertionHeader, got.IDTokenHeader)
	}
}

func TestOIDCLoginCaddyfileJSONRoundTrip(t *testing.T) {
	m, err := parseOIDCLoginBlock(t, "oidc_login {\n\tissuer https://a.example\n\tclient_id app\n\tjar\n\tidentity_assertion\n\tallow_groups admins\n\tidle_timeout 1h\n}")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back OIDCLogin
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, m) {
		t.Errorf("JSON round trip changed the config:\n%s\n%+v", raw, back)
	}
}

func TestOIDCLoginCaddyfileErrorsNameFileAndLine(t *testing.T) {
	cases := []struct {
		name, input, want string
	}{
		{"unknown option", "oidc_login {\n\tissuer https://a.example\n\tclient_id app\n\tfrobnicate\n}", `unrecognized oidc_login option "frobnicate"`},
		{"missing client_id", "oidc_login {\n\tissuer https://a.example\n}", "needs issuer and client_id"},
		{"inline argument", "oidc_login https://a.example {\n}", "wrong argument count"},
		{"bad flow", "oidc_login {\n\tissuer https://a.example\n\tclient_id app\n\tflow implicit\n}", "use code or hybrid"},
		{"bad session store", "oidc_login {\n\tissuer https://a.example\n\tclient_id app\n\tsession_store redis\n}", "use cookie or server"},
		{"bad duration", "oidc_login {\n\tissuer https://a.example\n\tclient_id app\n\tidle_timeout later\n}", "duration"},
		{"header usage", "oidc_login {\n\tissuer https://a.example\n\tclient_id app\n\theader X-User\n}", "usage: header"},
		{"require_claim usage", "oidc_login {\n\tissuer https://a.example\n\tclient_id app\n\trequire_claim dept\n}", "usage: require_claim"},
		{"relative path", "oidc_login {\n\tissuer https://a.example\n\tclient_id app\n\tjwks_path jwks\n}", "must start with /"},
		{"jar with a value", "oidc_login {\n\tissuer https://a.example\n\tclient_id app\n\tjar maybe\n}", "true or false"},
		{"assertion with two headers", "oidc_login {\n\tissuer https://a.example\n\tclient_id app\n\tidentity_assertion A B\n}", "wrong argument count"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseOIDCLoginBlock(t, tc.input)
			if err == nil {
				t.Fatal("accepted invalid config")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "Testfile:") {
				t.Errorf("error %q does not name the file and line", err)
			}
		})
	}
}
