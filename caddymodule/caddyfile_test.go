package caddymodule

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func parseOption(t *testing.T, input string) (*App, error) {
	t.Helper()
	d := caddyfile.NewTestDispenser(input)
	v, err := parseGlobalOption(d, nil)
	if err != nil {
		return nil, err
	}
	app := new(App)
	if err := json.Unmarshal(v.(httpcaddyfile.App).Value, app); err != nil {
		t.Fatalf("adapted JSON does not decode: %v", err)
	}
	return app, nil
}

func TestCaddyfileParsesEveryOption(t *testing.T) {
	app, err := parseOption(t, `portcullis {
		storage bbolt /var/lib/portcullis.db
		issuer https://auth.example.com
		signing_alg EdDSA
		key_rotation 48h
		cookie_secret {env.COOKIE_SECRET}
		access_token_ttl 15m
		id_token_ttl 10m
		refresh_token_ttl 720h
		code_ttl 30s
		session_ttl 8h
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
			require_pkce
			first_party
			always_issue_refresh_token
		}
		client backend {
			secret s3cret
			api_access https://api.example.com read:items write:items
		}
		api https://api.example.com {
			name "Items API"
			scopes read:items write:items
			token_format opaque
			access_token_ttl 5m
		}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	if app.Issuer != "https://auth.example.com" || app.SigningAlg != "EdDSA" || app.Storage.Path != "/var/lib/portcullis.db" {
		t.Errorf("top-level options wrong: %+v", app)
	}
	if app.Brand == nil || app.Brand.Name != "Acme Login" || app.Brand.Color != "#ff6600" {
		t.Errorf("brand = %+v", app.Brand)
	}
	if len(app.Users) != 1 || app.Users[0].Claims["department"] != "engineering" || *app.Users[0].EmailVerified {
		t.Errorf("user = %+v", app.Users)
	}
	c := app.Clients[0]
	if !c.RequirePKCE || !c.FirstParty || !c.AlwaysIssueRefreshToken || len(c.RedirectURIs) != 2 || c.Secret != "{env.WEBAPP_SECRET}" {
		t.Errorf("client = %+v", c)
	}
	if got := app.Clients[1].APIAccess["https://api.example.com"]; !reflect.DeepEqual(got, []string{"read:items", "write:items"}) {
		t.Errorf("api_access = %v", got)
	}
	if app.APIs[0].TokenFormat != "opaque" {
		t.Errorf("api = %+v", app.APIs[0])
	}
}

// TestCaddyfileJSONRoundTrip checks the adapted JSON decodes and encodes
// back to the same document, so JSON configs work as well as Caddyfiles.
func TestCaddyfileJSONRoundTrip(t *testing.T) {
	d := caddyfile.NewTestDispenser(`portcullis {
		issuer https://auth.example.com
		user bob {
			password demo
		}
		client spa {
			public
			redirect_uris http://localhost:3000/cb
		}
	}`)
	v, err := parseGlobalOption(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw := v.(httpcaddyfile.App).Value
	var app App
	if err := json.Unmarshal(raw, &app); err != nil {
		t.Fatal(err)
	}
	again, err := json.Marshal(&app)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	json.Unmarshal(raw, &a)
	json.Unmarshal(again, &b)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("round trip changed the config:\n%s\n%s", raw, again)
	}
}

func TestCaddyfileErrorsNameFileAndLine(t *testing.T) {
	cases := []struct {
		name, input, want string
	}{
		{"unknown option", "portcullis {\n\tissuer https://a.example\n\tfrobnicate yes\n}", "unrecognized portcullis option"},
		{"issuer without value", "portcullis {\n\tissuer\n}", "wrong argument count"},
		{"bad duration", "portcullis {\n\tcode_ttl soon\n}", "invalid duration"},
		{"bad signing alg", "portcullis {\n\tsigning_alg HS256\n}", "not supported"},
		{"user without password", "portcullis {\n\tuser alice {\n\t\temail a@example.com\n\t}\n}", "password_hash is required"},
		{"user with both passwords", "portcullis {\n\tuser alice {\n\t\tpassword x\n\t\tpassword_hash y\n\t}\n}", "not both"},
		{"client without secret", "portcullis {\n\tclient web {\n\t\tredirect_uris https://a.example/cb\n\t}\n}", "set a secret, or mark it public"},
		{"public client with secret", "portcullis {\n\tclient web {\n\t\tpublic\n\t\tsecret x\n\t\tredirect_uris https://a.example/cb\n\t}\n}", "public client has no secret"},
		{"http redirect on public host", "portcullis {\n\tclient web {\n\t\tpublic\n\t\tredirect_uris http://evil.example/cb\n\t}\n}", "plain http"},
		{"javascript redirect", "portcullis {\n\tclient web {\n\t\tpublic\n\t\tredirect_uris https://a.example/cb javascript:alert(1)\n\t}\n}", `"javascript:alert(1)"`},
		{"data redirect", "portcullis {\n\tclient web {\n\t\tpublic\n\t\tredirect_uris data:text/html,hi\n\t}\n}", "not allowed"},
		{"file post-logout redirect", "portcullis {\n\tclient web {\n\t\tpublic\n\t\tredirect_uris https://a.example/cb\n\t\tpost_logout_redirect_uris file:///etc/passwd\n\t}\n}", "Testfile:5"},
		{"vbscript redirect", "portcullis {\n\tclient web {\n\t\tpublic\n\t\tredirect_uris vbscript:msgbox(1)\n\t}\n}", "Testfile:4"},
		{"client named like a user", "portcullis {\n\tuser alice {\n\t\tpassword x\n\t}\n\tclient alice {\n\t\tsecret s\n\t}\n}", "Testfile:5"},
		{"user named like a client", "portcullis {\n\tclient svc {\n\t\tsecret s\n\t}\n\tuser svc {\n\t\tpassword x\n\t}\n}", "must all differ"},
		{"client defined twice", "portcullis {\n\tclient svc {\n\t\tsecret s\n\t}\n\tclient svc {\n\t\tsecret t\n\t}\n}", "Testfile:5"},
		{"username with the client suffix", "portcullis {\n\tuser svc@clients {\n\t\tpassword x\n\t}\n}", "@clients"},
		{"redirect with fragment", "portcullis {\n\tclient web {\n\t\tpublic\n\t\tredirect_uris https://a.example/cb#x\n\t}\n}", "fragment"},
		{"unknown grant type", "portcullis {\n\tclient web {\n\t\tsecret x\n\t\tgrant_types magic\n\t}\n}", "not supported"},
		{"public client credentials", "portcullis {\n\tclient web {\n\t\tpublic\n\t\tgrant_types client_credentials\n\t}\n}", "cannot use client_credentials"},
		{"bad token format", "portcullis {\n\tapi https://api.example {\n\t\ttoken_format paseto\n\t}\n}", "token_format"},
		{"storage backend", "portcullis {\n\tstorage redis x\n}", "storage bbolt <path>"},
		{"client without name", "portcullis {\n\tclient {\n\t}\n}", "needs a name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseOption(t, tc.input)
			if err == nil {
				t.Fatalf("accepted invalid config")
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

func TestClientDefaults(t *testing.T) {
	cases := []struct {
		name       string
		cfg        ClientConfig
		secret     string
		wantGrants []string
		wantMethod string
	}{
		{"web app", ClientConfig{ID: "w", RedirectURIs: []string{"https://a.example/cb"}}, "s", []string{"authorization_code", "refresh_token"}, "client_secret_basic"},
		{"public", ClientConfig{ID: "p", Public: true, RedirectURIs: []string{"http://127.0.0.1:8400/cb"}}, "", []string{"authorization_code", "refresh_token"}, "none"},
		{"service", ClientConfig{ID: "s", APIAccess: map[string][]string{"https://api.example": {"r"}}}, "s", []string{"client_credentials"}, "client_secret_basic"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := tc.cfg.ClientRecord(tc.secret)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rec.GrantTypes, tc.wantGrants) || rec.TokenEndpointAuthMethod != tc.wantMethod {
				t.Errorf("grants %v method %s", rec.GrantTypes, rec.TokenEndpointAuthMethod)
			}
			if tc.secret != "" && (rec.SecretDigest == "" || rec.SecretDigest == tc.secret) {
				t.Errorf("secret must be stored as a digest, got %q", rec.SecretDigest)
			}
		})
	}
}
