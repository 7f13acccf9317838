package caddymodule

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func parseBearerAuthBlock(t *testing.T, input string) (*BearerAuth, error) {
	t.Helper()
	m, err := parseBearerAuth(httpcaddyfile.Helper{Dispenser: caddyfile.NewTestDispenser(input)})
	if err != nil {
		return nil, err
	}
	return m.(*BearerAuth), nil
}

func TestBearerAuthCaddyfileParsesEveryOption(t *testing.T) {
	got, err := parseBearerAuthBlock(t, `bearer_auth read:items {
		issuer https://login.example.com
		jwks_uri https://login.example.com/keys
		audience https://api.example.com https://api2.example.com
		algorithms ES256 RS256
		require_at_jwt
		leeway 5s
		scopes write:items
		any_scope
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
		introspect_jwts
		decryption_key /etc/keys/jwe.pem
		resource https://api.example.com
		resource_name "Items API"
		resource_metadata false
		require_dpop
		dpop_nonce
	}`)
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	want := &BearerAuth{
		Issuer: "https://login.example.com", JWKSURI: "https://login.example.com/keys",
		Audiences:  []string{"https://api.example.com", "https://api2.example.com"},
		Algorithms: []string{"ES256", "RS256"}, RequireATJWT: true, Leeway: caddy.Duration(5 * time.Second),
		Scopes: []string{"read:items", "write:items"}, AnyScope: true,
		RequireClaims: map[string][]string{"tenant": {"acme"}}, Headers: map[string]string{"X-User": "sub"},
		ForwardAuthorization: &yes, AllowQueryToken: true,
		IntrospectionEndpoint: "https://login.example.com/introspect", ClientID: "api", ClientSecret: "{env.API_SECRET}",
		CacheTTL: caddy.Duration(30 * time.Second), NegativeCacheTTL: caddy.Duration(2 * time.Second), CacheEntries: 500,
		IntrospectJWTs: true, DecryptionKeys: []string{"/etc/keys/jwe.pem"}, Resource: "https://api.example.com", ResourceName: "Items API",
		DisableMetadata: true, RequireDPoP: true, DPoPNonce: true,
	}
	if !reflect.DeepEqual(got, want) {
		a, _ := json.MarshalIndent(got, "", " ")
		b, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("parsed\n%s\nwant\n%s", a, b)
	}
	raw, _ := json.Marshal(got)
	var back BearerAuth
	if err := json.Unmarshal(raw, &back); err != nil || !reflect.DeepEqual(&back, got) {
		t.Errorf("JSON round trip changed the config (%v):\n%s", err, raw)
	}
}

func TestBearerAuthCaddyfileErrorsNameFileAndLine(t *testing.T) {
	cases := []struct {
		name, input, want string
	}{
		{"unknown option", "bearer_auth {\n\tissuer https://a.example\n\taudience x\n\tfrobnicate\n}", `unrecognized bearer_auth option "frobnicate"`},
		{"no issuer", "bearer_auth {\n\taudience x\n}", "needs an issuer"},
		{"no audience", "bearer_auth {\n\tissuer https://a.example\n}", "needs an audience"},
		{"bad cache_entries", "bearer_auth {\n\tissuer https://a.example\n\taudience x\n\tcache_entries -1\n}", "positive number"},
		{"bad duration", "bearer_auth {\n\tissuer https://a.example\n\taudience x\n\tcache_ttl soon\n}", "duration"},
		{"header usage", "bearer_auth {\n\tissuer https://a.example\n\taudience x\n\theader X-User\n}", "usage: header"},
		{"require_claim usage", "bearer_auth {\n\tissuer https://a.example\n\taudience x\n\trequire_claim tenant\n}", "usage: require_claim"},
		{"bool value", "bearer_auth {\n\tissuer https://a.example\n\taudience x\n\tforward_authorization maybe\n}", "true or false"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseBearerAuthBlock(t, tc.input)
			if err == nil {
				t.Fatal("accepted invalid config")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "Testfile:") {
				t.Errorf("error %q: want it to mention %q with file and line", err, tc.want)
			}
		})
	}
}
