package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/portcullis-gw/portcullis/flows"
	"github.com/portcullis-gw/portcullis/keys"
	"github.com/portcullis-gw/portcullis/store"
	"github.com/portcullis-gw/portcullis/store/boltstore"
)

// newAdminTestApp is a provisioned-enough App for the admin API: a store,
// keys and an authorization server, without Caddy.
func newAdminTestApp(tb testing.TB) *App {
	tb.Helper()
	st, err := boltstore.Open(filepath.Join(tb.TempDir(), "p.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	km, err := keys.New(context.Background(), st, keys.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := flows.New(flows.Config{Issuer: "https://auth.example.com", Store: st, Keys: km,
		CookieSecrets: [][]byte{[]byte(strings.Repeat("s", 32))}})
	if err != nil {
		tb.Fatal(err)
	}
	return &App{store: st, keys: km, server: srv, logger: zap.NewNop()}
}

// adminCall serves one admin request as Caddy's admin endpoint does: an
// http.ServeMux routes /portcullis/ to the app (redirecting a path with
// an empty, "." or ".." segment to the cleaned one), and a returned error
// is answered with its APIError status, 500 when it has none.
func adminCall(a *App, method, path, query, body string) (int, string) {
	r := httptest.NewRequest(method, "/", strings.NewReader(body))
	r.URL.Path, r.URL.RawQuery = path, query
	rec := httptest.NewRecorder()
	var err error
	mux := http.NewServeMux()
	mux.HandleFunc("/portcullis/", func(w http.ResponseWriter, r *http.Request) { err = a.routeAdmin(w, r) })
	mux.ServeHTTP(rec, r)
	if err == nil {
		return rec.Code, rec.Body.String()
	}
	if apiErr, ok := err.(caddy.APIError); ok && apiErr.HTTPStatus != 0 {
		return apiErr.HTTPStatus, err.Error()
	}
	return http.StatusInternalServerError, err.Error()
}

// adminSnapshot is every client, user and API in the store.
func adminSnapshot(t *testing.T, a *App) string {
	ctx := context.Background()
	clients, err1 := a.store.ListClients(ctx)
	users, err2 := a.store.ListUsers(ctx)
	apis, err3 := a.store.ListAPIs(ctx)
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal([]any{clients, users, apis})
	return string(raw)
}

// Admin resources FuzzAdminAPI picks from.
const (
	adminClientsRes = iota
	adminUsersRes
	adminAPIsRes
	adminUserCodeRes
	adminResources
)

var adminMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete}

// adminTarget is the path and query of resource, with id in its place.
func adminTarget(resource int, id string) (path, query string) {
	switch resource {
	case adminClientsRes, adminUsersRes:
		path = "/portcullis/" + [...]string{"clients", "users"}[resource]
		if id != "" {
			path += "/" + id
		}
	case adminAPIsRes:
		path = "/portcullis/apis"
		if id != "" {
			query = url.Values{"identifier": {id}}.Encode()
		}
	default:
		path = "/portcullis/users/" + id + "/user_code"
	}
	return path, query
}

// FuzzAdminAPI sends arbitrary JSON bodies to the admin API's client,
// user, API and user code routes, with any method and any id in the path
// (or, for APIs, the query), the first two bytes picking the method and
// the route. The seeds are valid records of every kind and broken ones.
// Property: never a panic; never a 5xx (a malformed body is the caller's
// mistake); a refused request leaves the store as it was; what a POST or
// PUT stores is valid by the rules the Caddyfile's records obey and can
// be read back at its own address.
func FuzzAdminAPI(f *testing.F) {
	a := newAdminTestApp(f)
	hash, err := flows.HashPassword("correct horse")
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range []struct{ method, path, query, body string }{
		{"POST", "/portcullis/apis", "", `{"identifier":"https://api.example.com","scopes":["read:items"]}`},
		{"POST", "/portcullis/users", "", `{"username":"alice","password_hash":"` + hash + `"}`},
		{"POST", "/portcullis/clients", "", `{"client_id":"web","redirect_uris":["https://app.example.com/cb"]}`},
	} {
		if status, body := adminCall(a, c.method, c.path, c.query, c.body); status >= 300 {
			f.Fatalf("%s %s: %d %s", c.method, c.path, status, body)
		}
	}
	get, post, put, del := uint8(0), uint8(1), uint8(2), uint8(3)
	jwks := `{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"k1"}]}`
	seeds := []struct {
		method, resource uint8
		id, body         string
	}{
		{post, adminClientsRes, "", `{"client_id":"spa","public":true,"redirect_uris":["https://spa.example.com/cb"],"post_logout_redirect_uris":["https://spa.example.com/"]}`},
		{post, adminClientsRes, "", `{"client_id":"backend","api_access":{"https://api.example.com":["read:items"]}}`},
		{post, adminClientsRes, "", `{"client_id":"signer","token_endpoint_auth_method":"private_key_jwt","jwks":` + jwks + `,"grant_types":["client_credentials"],"api_access":{"https://api.example.com":["read:items"]}}`},
		{post, adminClientsRes, "", `{"client_id":"kiosk","token_endpoint_auth_method":"client_secret_jwt","grant_types":["ciba"],"backchannel_token_delivery_mode":"ping","backchannel_client_notification_endpoint":"https://kiosk.example.com/cb","backchannel_authentication_request_signing_alg":"HS256","logo_uri":"https://kiosk.example.com/l.png"}`},
		{post, adminClientsRes, "", `{"client_id":"tv","public":true,"grant_types":["device_code","refresh_token"]}`},
		{put, adminClientsRes, "web", `{"redirect_uris":["https://app.example.com/cb2"],"first_party":true}`},
		{put, adminClientsRes, "web", `{"client_id":"other"}`},
		{post, adminClientsRes, "", `{"client_id":"bad","redirect_uris":["http://evil.example/cb#x"]}`},
		{post, adminClientsRes, "", `{"client_id":"bad","api_access":{"https://nowhere.example":["x"]}}`},
		{post, adminClientsRes, "", `{"client_id":"bad","public":true,"grant_types":["client_credentials"],"jwks_file":"/nonexistent"}`},
		{post, adminClientsRes, "", `{"client_id":"bad","unknown":1}`},
		{get, adminClientsRes, "web", ""},
		{del, adminClientsRes, "web", ""},
		{post, adminUsersRes, "", `{"username":"bob","password_hash":"` + hash + `","email":"bob@example.com","groups":["staff"],"claims":{"dept":"R&D"}}`},
		{post, adminUsersRes, "", `{"username":"carol","password":"x"}`},
		{put, adminUsersRes, "alice", `{"name":"Alice","email_verified":true}`},
		{post, adminUsersRes, "", `{"username":"dave","password_hash":"$argon2id$v=19$m=1,t=1,p=1$x$y"}`},
		{post, adminUsersRes, "", `{"username":"a/b","password_hash":"` + hash + `"}`},
		{post, adminUsersRes, "", `{"username":""}`},
		{post, adminUsersRes, "", `{"username":"..","password_hash":"` + hash + `"}`},
		{post, adminClientsRes, "", `{"client_id":"a//b","public":true,"redirect_uris":["https://a.example/cb"]}`},
		{post, adminClientsRes, "", `{"client_id":"tenant/app/","public":true,"redirect_uris":["https://a.example/cb"]}`},
		{del, adminUsersRes, "alice", ""},
		{put, adminUserCodeRes, "alice", `{"user_code":"4711"}`},
		{put, adminUserCodeRes, "alice", `{"user_code":""}`},
		{del, adminUserCodeRes, "alice", ""},
		{post, adminAPIsRes, "", `{"identifier":"https://opaque.example.com","token_format":"opaque","access_token_ttl":"5m"}`},
		{put, adminAPIsRes, "https://api.example.com", `{"name":"Items","scopes":["read:items","write:items"]}`},
		{post, adminAPIsRes, "", `{"identifier":"x","scopes":["a b"]}`},
		{post, adminAPIsRes, "", `{"identifier":"x","token_format":"paseto"}`},
		{del, adminAPIsRes, "https://api.example.com", ""},
		{post, adminClientsRes, "", `[]`},
		{post, adminUsersRes, "", `{"username":"x","password_hash":1}`},
		{post, adminAPIsRes, "", ``},
		{post, adminClientsRes, "", `{"client_id":"x","secret":"s"}{"client_id":"y"}`},
	}
	for _, s := range seeds {
		f.Add(s.method, s.resource, s.id, s.body)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, method, resource uint8, id, body string) {
		m := adminMethods[int(method)%len(adminMethods)]
		res := int(resource) % adminResources
		before := adminSnapshot(t, a)
		path, query := adminTarget(res, id)
		status, answer := adminCall(a, m, path, query, body)
		if status >= 500 {
			t.Fatalf("%s %s?%s %q: %d %s", m, path, query, body, status, answer)
		}
		if status >= 300 {
			if after := adminSnapshot(t, a); after != before {
				t.Fatalf("%s %s %q was refused (%d %s) but changed the store", m, path, body, status, answer)
			}
			return
		}
		if m != http.MethodPost && m != http.MethodPut {
			return
		}
		// What was written, read back at its own address.
		var written struct {
			ClientID   string `json:"client_id"`
			Username   string `json:"username"`
			Identifier string `json:"identifier"`
		}
		if err := json.Unmarshal([]byte(answer), &written); err != nil {
			t.Fatalf("%s %s: %d with %q", m, path, status, answer)
		}
		var readPath, readQuery, key string
		switch res {
		case adminClientsRes:
			key = written.ClientID
			readPath, readQuery = adminTarget(adminClientsRes, key)
		case adminUsersRes, adminUserCodeRes:
			key = written.Username
			readPath, readQuery = adminTarget(adminUsersRes, key)
		case adminAPIsRes:
			key = written.Identifier
			readPath, readQuery = adminTarget(adminAPIsRes, key)
		}
		if key == "" {
			t.Fatalf("%s %s stored a record without a name: %s", m, path, answer)
		}
		if st, got := adminCall(a, http.MethodGet, readPath, readQuery, ""); st != http.StatusOK || !bytes.Contains([]byte(got), []byte(mustJSON(key))) {
			t.Fatalf("%s %s stored %q, which GET %s?%s cannot read: %d %s", m, path, key, readPath, readQuery, st, got)
		}
		switch res {
		case adminClientsRes:
			c, err := a.store.GetClient(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if err := validStoredClient(ctx, a, c); err != nil {
				t.Fatalf("%s %s %q stored an invalid client: %v\n%+v", m, path, body, err, c)
			}
		case adminUsersRes, adminUserCodeRes:
			u, err := a.store.GetUser(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := flows.VerifyPassword(u.PasswordHash, ""); err != nil || u.ID != u.Username {
				t.Fatalf("%s %s %q stored an invalid user (%v): %+v", m, path, body, err, u)
			}
			if res == adminUserCodeRes {
				if _, err := flows.VerifyPassword(u.BackchannelUserCodeHash, ""); err != nil {
					t.Fatalf("user code hash %q: %v", u.BackchannelUserCodeHash, err)
				}
			}
		case adminAPIsRes:
			api, err := a.store.GetAPI(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if (api.TokenFormat != "jwt" && api.TokenFormat != "opaque") || slices.ContainsFunc(api.Scopes, func(s string) bool { return strings.ContainsAny(s, " \"\\") }) {
				t.Fatalf("%s %s %q stored an invalid API: %+v", m, path, body, api)
			}
		}
	})
}

func mustJSON(v any) string {
	raw, _ := json.Marshal(v)
	return string(raw)
}

// validStoredClient checks a stored client against the rules a client of
// the Caddyfile obeys.
func validStoredClient(ctx context.Context, a *App, c *store.Client) error {
	if c.ID == "" {
		return errors.New("no client_id")
	}
	if err := flows.ValidateAssertionClient(c); err != nil {
		return err
	}
	if err := a.checkCIBAEndpoint(c); err != nil {
		return err
	}
	switch c.TokenEndpointAuthMethod {
	case flows.AuthMethodNone:
		if c.SecretDigest != "" || c.HMACSecret != "" || slices.Contains(c.GrantTypes, flows.GrantClientCredentials) {
			return errors.New("a public client with a secret or client_credentials")
		}
	case flows.AuthMethodSecretBasic, flows.AuthMethodSecretPost:
		if c.SecretDigest == "" {
			return errors.New("a secret client without a secret")
		}
	case flows.AuthMethodSecretJWT:
		if c.HMACSecret == "" {
			return errors.New("a client_secret_jwt client without a secret")
		}
	case flows.AuthMethodPrivateKeyJWT:
		if len(c.JWKS) == 0 && c.JWKSURI == "" {
			return errors.New("a private_key_jwt client without keys")
		}
	default:
		return errors.New("unknown token_endpoint_auth_method " + c.TokenEndpointAuthMethod)
	}
	for _, g := range c.GrantTypes {
		if !slices.Contains(knownGrantTypes, g) {
			return errors.New("unknown grant type " + g)
		}
	}
	if slices.Contains(c.GrantTypes, flows.GrantAuthorizationCode) && len(c.RedirectURIs) == 0 {
		return errors.New("authorization_code without a redirect URI")
	}
	for _, u := range slices.Concat(c.RedirectURIs, c.PostLogoutRedirectURIs) {
		if err := flows.CheckRedirectURI(u); err != nil {
			return err
		}
	}
	for aud := range c.APIAccess {
		if _, err := a.store.GetAPI(ctx, aud); err != nil {
			return errors.New("api_access names the unknown API " + aud)
		}
	}
	return nil
}

// TestUnaddressableNamesAreRefused is what FuzzAdminAPI found: records
// the admin API could create but never read, change or delete. A user
// named a/b reads as the sub-resource b of user a; a user named .. and a
// client named a//b have paths Caddy's admin mux redirects elsewhere.
func TestUnaddressableNamesAreRefused(t *testing.T) {
	a := newAdminTestApp(t)
	hash, err := flows.HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, body string }{
		{"/portcullis/users", `{"username":"a/b","password_hash":"` + hash + `"}`},
		{"/portcullis/users", `{"username":"..","password_hash":"` + hash + `"}`},
		{"/portcullis/users", `{"username":".","password_hash":"` + hash + `"}`},
		{"/portcullis/clients", `{"client_id":"a//b","public":true,"redirect_uris":["https://a.example/cb"]}`},
		{"/portcullis/clients", `{"client_id":"x/../y","public":true,"redirect_uris":["https://a.example/cb"]}`},
		{"/portcullis/clients", `{"client_id":"./x","public":true,"redirect_uris":["https://a.example/cb"]}`},
	} {
		status, body := adminCall(a, http.MethodPost, c.path, "", c.body)
		if status != http.StatusBadRequest || !strings.Contains(body, "could not address") {
			t.Errorf("POST %s %s: %d %s", c.path, c.body, status, body)
		}
	}
	if snap := adminSnapshot(t, a); snap != "[null,null,null]" && snap != "[[],[],[]]" {
		t.Fatalf("stored %s", snap)
	}
	// Names with a slash that the admin API can address are kept.
	if status, body := adminCall(a, http.MethodPost, "/portcullis/clients", "", `{"client_id":"tenant/app/","public":true,"redirect_uris":["https://a.example/cb"]}`); status != http.StatusCreated {
		t.Fatalf("client tenant/app/: %d %s", status, body)
	}
	if status, body := adminCall(a, http.MethodGet, "/portcullis/clients/tenant/app/", "", ""); status != http.StatusOK {
		t.Fatalf("GET client tenant/app/: %d %s", status, body)
	}
	for _, input := range []string{
		"portcullis {\n\tuser a/b {\n\t\tpassword x\n\t}\n}",
		"portcullis {\n\tclient a//b {\n\t\tpublic\n\t\tredirect_uris https://a.example/cb\n\t}\n}",
	} {
		if _, err := parseOption(t, input); err == nil || !strings.Contains(err.Error(), "could not address") || !strings.Contains(err.Error(), "Testfile:") {
			t.Errorf("Caddyfile %q: %v", input, err)
		}
	}
}
