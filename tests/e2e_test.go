package tests

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TokenSet is the part of a token endpoint response the tests use.
type TokenSet struct {
	AccessToken, IDToken, RefreshToken, TokenType, Scope string
	ExpiresIn                                            float64
	Raw                                                  map[string]any
}

func tokenSetFrom(obj map[string]any) TokenSet {
	str := func(k string) string { s, _ := obj[k].(string); return s }
	exp, _ := obj["expires_in"].(float64)
	return TokenSet{
		AccessToken: str("access_token"), IDToken: str("id_token"), RefreshToken: str("refresh_token"),
		TokenType: str("token_type"), Scope: str("scope"), ExpiresIn: exp, Raw: obj,
	}
}

// TokenRequest posts a grant to the token endpoint with client_secret_basic
// and requires a 200 JSON answer with no-store caching and a Bearer access
// token.
func TokenRequest(t testing.TB, d *Discovery, form url.Values, clientID, secret string) TokenSet {
	t.Helper()
	resp, obj := PostForm(t, d.TokenEndpoint, form, clientID, secret)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token request %s: status %d: %v", form.Get("grant_type"), resp.StatusCode, obj)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("token response Cache-Control = %q, want no-store (RFC 6749 section 5.1)", cc)
	}
	ts := tokenSetFrom(obj)
	if ts.AccessToken == "" || !strings.EqualFold(ts.TokenType, "Bearer") || ts.ExpiresIn <= 0 {
		t.Fatalf("token response lacks a Bearer access token with expires_in: %v", obj)
	}
	return ts
}

// Introspect asks the introspection endpoint about token as webapp.
func Introspect(t testing.TB, d *Discovery, token, hint string) map[string]any {
	t.Helper()
	if d.IntrospectionEndpoint == "" {
		t.Fatal("discovery has no introspection_endpoint")
	}
	form := url.Values{"token": {token}}
	if hint != "" {
		form.Set("token_type_hint", hint)
	}
	resp, obj := PostForm(t, d.IntrospectionEndpoint, form, webappID, webappSecret)
	if resp.StatusCode != http.StatusOK || obj == nil {
		t.Fatalf("introspection: status %d: %v", resp.StatusCode, obj)
	}
	return obj
}

// checkIDToken verifies an ID token's signature against set and its
// standard claims for webapp.
func checkIDToken(t testing.TB, raw string, set *JWKS, issuer, nonce string) *JWT {
	t.Helper()
	tok, err := VerifyJWT(raw, set)
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	c := tok.Claims
	now := float64(time.Now().Unix())
	exp, _ := c["exp"].(float64)
	iat, _ := c["iat"].(float64)
	checks := []struct {
		name string
		ok   bool
	}{
		{"alg is ES256", tok.Header["alg"] == "ES256"},
		{"iss is the issuer", c["iss"] == issuer},
		{"aud contains webapp", audContains(c["aud"], webappID)},
		{"sub is set", c["sub"] != nil && c["sub"] != ""},
		{"exp is in the future", exp > now},
		{"iat is not in the future", iat > 0 && iat <= now+60},
		{"nonce matches", nonce == "" || c["nonce"] == nonce},
	}
	for _, ck := range checks {
		if !ck.ok {
			t.Errorf("ID token: not %s: header %v claims %v", ck.name, tok.Header, c)
		}
	}
	return tok
}

func audContains(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		return slices.Contains(a, any(want))
	}
	return false
}

// TestAuthorizationCodeFlowSurvivesRestart runs a code+PKCE flow for webapp,
// restarts the gateway on the same bbolt file, and checks that refresh
// tokens, signing keys and access tokens outlive the restart.
func TestAuthorizationCodeFlowSurvivesRestart(t *testing.T) {
	g := StartGateway(t, baseCaddyfile)
	d := g.Discover(t)
	if d.Issuer != g.BaseURL {
		t.Errorf("discovery issuer = %q, want %q", d.Issuer, g.BaseURL)
	}
	if !slices.Contains(d.CodeChallengeMethods, "S256") {
		t.Errorf("code_challenge_methods_supported = %q, want S256 in it", d.CodeChallengeMethods)
	}

	// Authorization request.
	pkce, state, nonce := NewPKCE(t), RandomString(t), RandomString(t)
	redirectURI := g.URL("/callback")
	authz := d.AuthorizationEndpoint + "?" + url.Values{
		"response_type":         {"code"},
		"client_id":             {webappID},
		"redirect_uri":          {redirectURI},
		"scope":                 {"openid profile email offline_access"},
		"state":                 {state},
		"nonce":                 {nonce},
		"code_challenge":        {pkce.Challenge},
		"code_challenge_method": {"S256"},
		// OIDC Core section 11: offline_access is granted with prompt=consent.
		"prompt": {"consent"},
	}.Encode()
	cb := LoginAndConsent(t, NewBrowser(t), authz, aliceUsername, alicePassword)
	q := cb.Query()
	if q.Get("error") != "" {
		t.Fatalf("authorization error: %s", cb)
	}
	if q.Get("code") == "" || q.Get("state") != state || q.Get("iss") != d.Issuer {
		t.Fatalf("callback %s: want code, state %q and iss %q", cb, state, d.Issuer)
	}

	// Code exchange.
	tokens := TokenRequest(t, d, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {q.Get("code")},
		"redirect_uri":  {redirectURI},
		"code_verifier": {pkce.Verifier},
	}, webappID, webappSecret)
	if tokens.IDToken == "" || tokens.RefreshToken == "" {
		t.Fatalf("code exchange lacks id_token or refresh_token: %v", tokens.Raw)
	}
	jwksBefore := FetchJWKS(t, d.JWKSURI)
	idTok := checkIDToken(t, tokens.IDToken, jwksBefore, d.Issuer, nonce)
	signingKid, _ := idTok.Header["kid"].(string)
	if in := Introspect(t, d, tokens.AccessToken, "access_token"); in["active"] != true {
		t.Fatalf("access token inactive before restart: %v", in)
	}

	if _, err := os.Stat(filepath.Join(g.Dir, "portcullis.db")); err != nil {
		t.Errorf("the configured bbolt file is missing: %v", err)
	}

	g.Restart(t)

	// Each check reads only the state above, so their order does not matter;
	// the rotation check runs last since it spends the refresh token.
	checks := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"discovery unchanged", func(t *testing.T) {
			if after := g.Discover(t); after.Issuer != d.Issuer || after.JWKSURI != d.JWKSURI || after.TokenEndpoint != d.TokenEndpoint {
				t.Errorf("discovery changed across restart: %+v -> %+v", d, after)
			}
		}},
		{"JWKS keeps the old kids", func(t *testing.T) {
			after := FetchJWKS(t, d.JWKSURI)
			for _, kid := range jwksBefore.Kids() {
				if _, ok := after.Key(kid); !ok {
					t.Errorf("kid %q gone after restart: before %q, after %q", kid, jwksBefore.Kids(), after.Kids())
				}
			}
			if _, err := VerifyJWT(tokens.IDToken, after); err != nil {
				t.Errorf("pre-restart ID token (kid %q) no longer verifies: %v", signingKid, err)
			}
		}},
		{"old access token introspects active", func(t *testing.T) {
			in := Introspect(t, d, tokens.AccessToken, "access_token")
			if in["active"] != true {
				t.Fatalf("introspection after restart: %v", in)
			}
			if cid, ok := in["client_id"]; ok && cid != webappID {
				t.Errorf("introspection client_id = %v, want %q", cid, webappID)
			}
			if sub, ok := in["sub"]; ok && sub != idTok.Claims["sub"] {
				t.Errorf("introspection sub = %v, want %v", sub, idTok.Claims["sub"])
			}
		}},
		{"refresh token rotates", func(t *testing.T) {
			refreshed := TokenRequest(t, d, url.Values{
				"grant_type":    {"refresh_token"},
				"refresh_token": {tokens.RefreshToken},
			}, webappID, webappSecret)
			if refreshed.RefreshToken == "" || refreshed.RefreshToken == tokens.RefreshToken {
				t.Fatalf("refresh did not rotate the refresh token: %v", refreshed.Raw)
			}
			if refreshed.AccessToken == tokens.AccessToken {
				t.Errorf("refresh returned the same access token")
			}
			if refreshed.IDToken != "" {
				re := checkIDToken(t, refreshed.IDToken, FetchJWKS(t, d.JWKSURI), d.Issuer, "")
				if re.Claims["sub"] != idTok.Claims["sub"] {
					t.Errorf("refreshed ID token sub = %v, want %v", re.Claims["sub"], idTok.Claims["sub"])
				}
			}
			if in := Introspect(t, d, refreshed.AccessToken, "access_token"); in["active"] != true {
				t.Errorf("new access token inactive: %v", in)
			}
			// The rotated-out refresh token is spent.
			resp, obj := PostForm(t, d.TokenEndpoint, url.Values{
				"grant_type":    {"refresh_token"},
				"refresh_token": {tokens.RefreshToken},
			}, webappID, webappSecret)
			if resp.StatusCode != http.StatusBadRequest || obj["error"] != "invalid_grant" {
				t.Errorf("reusing the old refresh token: status %d %v, want 400 invalid_grant", resp.StatusCode, obj)
			}
		}},
	}
	for _, c := range checks {
		t.Run(c.name, c.run)
	}
}
