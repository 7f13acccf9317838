package tests

import (
	"net/http"
	"net/url"
	"testing"
)

// revocationCaddyfile: the embedded server and an API guarded by
// bearer_auth in the same Caddy, JWT access tokens.
const revocationCaddyfile = `{
	admin 127.0.0.1:{{.AdminPort}}
	portcullis {
		storage bbolt {{.Dir}}/portcullis.db
		issuer http://127.0.0.1:{{.Port}}
		insecure_cookies
		user alice {
			password alice-password
		}
		client webapp {
			secret webapp-secret
			redirect_uris http://127.0.0.1:{{.Port}}/callback
			grant_types authorization_code refresh_token
		}
		client backend {
			secret backend-secret
			grant_types client_credentials
			api_access https://api.example.com read:items
		}
		api https://api.example.com {
			scopes read:items
			token_format jwt
		}
	}
}
http://127.0.0.1:{{.Port}} {
	bind 127.0.0.1
	oauth_server
}
http://127.0.0.1:{{.AppPort}} {
	bind 127.0.0.1
	bearer_auth read:items {
		issuer http://127.0.0.1:{{.Port}}
		audience https://api.example.com
	}
	respond "items for {portcullis.token.sub}"
}
`

// TestRevocationReachesTheGuardAtOnce tries the three ways a JWT access
// token is revoked before it expires — a replayed authorization code, a
// reused refresh token and the revocation endpoint — and requires the API
// guard of the same Caddy to refuse the token on the very next request,
// and still after a restart.
func TestRevocationReachesTheGuardAtOnce(t *testing.T) {
	g := StartGateway(t, revocationCaddyfile)
	d := g.Discover(t)
	api := g.AppURL + "/items"
	waitAppListeningAt(t, api)
	wantAPI := func(t *testing.T, tok string, status int) {
		t.Helper()
		if resp, body := callAPI(t, http.MethodGet, api, "Bearer "+tok, ""); resp.StatusCode != status {
			t.Fatalf("API with the token: %d %s, want %d", resp.StatusCode, body, status)
		}
	}
	signIn := func(t *testing.T) (code string, pkce PKCE) {
		t.Helper()
		pkce = NewPKCE(t)
		authz := d.AuthorizationEndpoint + "?" + url.Values{
			"response_type": {"code"}, "client_id": {"webapp"}, "redirect_uri": {g.URL("/callback")},
			"scope": {"openid offline_access read:items"}, "audience": {"https://api.example.com"},
			"state": {RandomString(t)}, "code_challenge": {pkce.Challenge}, "code_challenge_method": {"S256"},
			"prompt": {"consent"},
		}.Encode()
		cb := LoginAndConsent(t, NewBrowser(t), authz, "alice", "alice-password")
		if cb.Query().Get("code") == "" {
			t.Fatalf("no code: %s", cb)
		}
		return cb.Query().Get("code"), pkce
	}
	redeem := func(code string, pkce PKCE) url.Values {
		return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {g.URL("/callback")}, "code_verifier": {pkce.Verifier}}
	}
	var revoked []string

	t.Run("replayed code", func(t *testing.T) {
		code, pkce := signIn(t)
		tokens := TokenRequest(t, d, redeem(code, pkce), "webapp", "webapp-secret")
		wantAPI(t, tokens.AccessToken, http.StatusOK)
		resp, body := PostForm(t, d.TokenEndpoint, redeem(code, pkce), "webapp", "webapp-secret")
		if resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Fatalf("code replay: %d %v", resp.StatusCode, body)
		}
		wantAPI(t, tokens.AccessToken, http.StatusUnauthorized)
		revoked = append(revoked, tokens.AccessToken)
	})
	t.Run("reused refresh token", func(t *testing.T) {
		code, pkce := signIn(t)
		first := TokenRequest(t, d, redeem(code, pkce), "webapp", "webapp-secret")
		refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}}
		second := TokenRequest(t, d, refresh, "webapp", "webapp-secret")
		wantAPI(t, second.AccessToken, http.StatusOK)
		if resp, body := PostForm(t, d.TokenEndpoint, refresh, "webapp", "webapp-secret"); body["error"] != "invalid_grant" {
			t.Fatalf("refresh reuse: %d %v", resp.StatusCode, body)
		}
		wantAPI(t, first.AccessToken, http.StatusUnauthorized)
		wantAPI(t, second.AccessToken, http.StatusUnauthorized)
		revoked = append(revoked, first.AccessToken, second.AccessToken)
	})
	t.Run("revocation endpoint", func(t *testing.T) {
		tok := clientCredentials(t, g, "backend", "backend-secret", "https://api.example.com", "read:items", nil)["access_token"].(string)
		wantAPI(t, tok, http.StatusOK)
		if resp, body := PostForm(t, d.RevocationEndpoint, url.Values{"token": {tok}}, "backend", "backend-secret"); resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke: %d %v", resp.StatusCode, body)
		}
		wantAPI(t, tok, http.StatusUnauthorized)
		revoked = append(revoked, tok)
	})
	t.Run("after a restart", func(t *testing.T) {
		if len(revoked) != 4 {
			t.Fatalf("only %d revoked tokens to check: an earlier subtest failed", len(revoked))
		}
		g.Restart(t)
		waitAppListeningAt(t, api)
		for _, tok := range revoked {
			wantAPI(t, tok, http.StatusUnauthorized)
		}
	})
}
