package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// adminCall sends a JSON request to Caddy's admin API and decodes the
// answer.
func adminCall(t *testing.T, g *Gateway, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, g.AdminURL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: requestTimeout}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var obj map[string]any
	json.Unmarshal(raw, &obj)
	return resp.StatusCode, obj
}

// TestAdminAPIManagesClientsUsersAndAPIs creates an API, a client and a user
// at run time, uses them, shows they survive a restart, and deletes them.
func TestAdminAPIManagesClientsUsersAndAPIs(t *testing.T) {
	g := StartGateway(t, baseCaddyfile)
	d := g.Discover(t)

	status, api := adminCall(t, g, http.MethodPost, "/portcullis/apis", map[string]any{
		"identifier": "https://billing.example.com", "scopes": []string{"read:invoices"}})
	if status != http.StatusCreated || api["token_format"] != "jwt" {
		t.Fatalf("create api: %d %v", status, api)
	}
	status, created := adminCall(t, g, http.MethodPost, "/portcullis/clients", map[string]any{
		"client_id": "billing-job", "api_access": map[string][]string{"https://billing.example.com": {"read:invoices"}}})
	secret, _ := created["client_secret"].(string)
	if status != http.StatusCreated || len(secret) < 40 {
		t.Fatalf("create client: %d %v", status, created)
	}
	if _, leaked := created["secret_digest"]; leaked {
		t.Errorf("the admin API shows the secret digest: %v", created)
	}
	if status, _ := adminCall(t, g, http.MethodPost, "/portcullis/clients", map[string]any{"client_id": "billing-job"}); status != http.StatusConflict {
		t.Errorf("creating an existing client: status %d, want 409", status)
	}
	status, listed := adminCall(t, g, http.MethodGet, "/portcullis/clients/billing-job", nil)
	if status != http.StatusOK || listed["client_secret"] != nil {
		t.Errorf("get client: %d %v (the secret is shown only at creation)", status, listed)
	}

	cc := url.Values{"grant_type": {"client_credentials"}, "audience": {"https://billing.example.com"}}
	TokenRequest(t, d, cc, "billing-job", secret)

	status, user := adminCall(t, g, http.MethodPost, "/portcullis/users", map[string]any{
		"username": "bob", "password": "bob-password", "email": "bob@example.com"})
	if status != http.StatusCreated || user["password_hash"] != nil || user["password"] != nil {
		t.Fatalf("create user: %d %v", status, user)
	}

	g.Restart(t)
	d = g.Discover(t)
	TokenRequest(t, d, cc, "billing-job", secret)
	pkce := NewPKCE(t)
	q := url.Values{
		"client_id": {"spa"}, "response_type": {"code"}, "scope": {"openid email"}, "state": {"s1"},
		"redirect_uri": {g.BaseURL + "/spa-callback"}, "code_challenge": {pkce.Challenge}, "code_challenge_method": {"S256"},
	}
	res := AuthorizeFlow(t, NewBrowser(t), d.AuthorizationEndpoint+"?"+q.Encode(), "bob", "bob-password")
	if res.Callback.Query().Get("code") == "" {
		t.Fatalf("bob, created through the admin API, could not sign in after a restart: %v", res.Callback)
	}

	if status, _ := adminCall(t, g, http.MethodDelete, "/portcullis/clients/billing-job", nil); status != http.StatusNoContent {
		t.Fatalf("delete client: %d", status)
	}
	resp, obj := PostForm(t, d.TokenEndpoint, cc, "billing-job", secret)
	if resp.StatusCode != http.StatusUnauthorized || obj["error"] != "invalid_client" {
		t.Errorf("deleted client still gets tokens: %d %v", resp.StatusCode, obj)
	}
	if status, _ := adminCall(t, g, http.MethodGet, "/portcullis/clients/nope", nil); status != http.StatusNotFound {
		t.Errorf("unknown client: %d, want 404", status)
	}
	if status, _ := adminCall(t, g, http.MethodPost, "/portcullis/clients", map[string]any{"client_id": "x", "redirect_uris": []string{"http://evil.example/cb"}}); status != http.StatusBadRequest {
		t.Errorf("a plain-http non-loopback redirect URI was accepted: %d", status)
	}
}

// TestAdminAPIRotatesKeys rotates the signing key: the new kid signs, the
// old one stays published so its tokens still verify.
func TestAdminAPIRotatesKeys(t *testing.T) {
	g := StartGateway(t, baseCaddyfile)
	d := g.Discover(t)
	cc := url.Values{"grant_type": {"client_credentials"}, "audience": {"https://api.example.com"}}
	before := TokenRequest(t, d, cc, backendID, backendSecret)
	oldKid := FetchJWKS(t, d.JWKSURI).Kids()[0]

	status, obj := adminCall(t, g, http.MethodPost, "/portcullis/keys/rotate", nil)
	newKid, _ := obj["kid"].(string)
	if status != http.StatusOK || newKid == "" || newKid == oldKid {
		t.Fatalf("rotate: %d %v", status, obj)
	}
	after := TokenRequest(t, d, cc, backendID, backendSecret)
	set := FetchJWKS(t, d.JWKSURI)
	tok, err := VerifyJWT(after.AccessToken, set)
	if err != nil || tok.Header["kid"] != newKid {
		t.Fatalf("new token not signed by the new key %s: %v %v", newKid, err, tok)
	}
	if _, err := VerifyJWT(before.AccessToken, set); err != nil {
		t.Errorf("token of the previous key no longer verifies against the JWKS: %v", err)
	}
}

// TestAdminAPIRefusesUnsafeClientsAndNameCollisions tries, through the
// admin API, the registrations an attacker with a foothold (or a careless
// operator) would make: redirect URIs that run script or read files in the
// browser, and a client named like a user (whose client-credentials
// tokens an API could mistake for the user's).
func TestAdminAPIRefusesUnsafeClientsAndNameCollisions(t *testing.T) {
	g := StartGateway(t, baseCaddyfile)
	for _, uri := range []string{"javascript:alert(document.cookie)", "data:text/html,hi", "vbscript:msgbox(1)", "file:///etc/passwd", "mailto:a@example.com"} {
		status, body := adminCall(t, g, http.MethodPost, "/portcullis/clients", map[string]any{
			"client_id": "evil", "public": true, "redirect_uris": []string{"https://ok.example/cb", uri}})
		if msg, _ := body["error"].(string); status != http.StatusBadRequest || !strings.Contains(msg, uri) {
			t.Errorf("redirect URI %s: status %d %v, want 400 naming the URI", uri, status, body)
		}
	}
	if status, body := adminCall(t, g, http.MethodPost, "/portcullis/clients", map[string]any{
		"client_id": "x", "public": true, "redirect_uris": []string{"https://ok.example/cb"}, "post_logout_redirect_uris": []string{"javascript:alert(1)"}}); status != http.StatusBadRequest {
		t.Errorf("javascript: post-logout URI accepted: %d %v", status, body)
	}
	status, body := adminCall(t, g, http.MethodPost, "/portcullis/clients", map[string]any{
		"client_id": "alice", "api_access": map[string][]string{"https://api.example.com": {"read:items"}}})
	if status != http.StatusConflict || !strings.Contains(fmt.Sprint(body["error"]), "username") {
		t.Errorf("a client named like user alice: %d %v, want 409", status, body)
	}
	if status, body := adminCall(t, g, http.MethodPost, "/portcullis/users", map[string]any{"username": "backend", "password": "pw-backend"}); status != http.StatusConflict {
		t.Errorf("a user named like client backend: %d %v, want 409", status, body)
	}
	if status, body := adminCall(t, g, http.MethodPost, "/portcullis/users", map[string]any{"username": "svc@clients", "password": "pw"}); status != http.StatusBadRequest {
		t.Errorf("a username ending in @clients: %d %v, want 400", status, body)
	}
	// The machine token of backend says so in its subject.
	d := g.Discover(t)
	_, tok := PostForm(t, d.TokenEndpoint, url.Values{"grant_type": {"client_credentials"}, "audience": {"https://api.example.com"}}, "backend", "backend-secret")
	claims := opJWTClaims(t, tok["access_token"].(string))
	if claims["sub"] != "backend@clients" || claims["client_id"] != "backend" {
		t.Errorf("client-credentials claims %v, want sub backend@clients", claims)
	}
}
