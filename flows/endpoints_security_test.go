package flows

// Attacks on introspection, revocation and userinfo, and forged tokens.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// forgedTokens are access tokens an attacker can make: unsigned, signed
// with their own key under our kid, or with the claims of a real token
// edited.
func forgedTokens(t *testing.T, env *testEnv, real string) map[string]string {
	t.Helper()
	now := env.clock.Now()
	claims := map[string]any{
		"iss": testIssuer, "sub": "alice", "aud": []string{apiID1}, "client_id": webappID, "scope": "openid profile email",
		"jti": "forged-jti", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
	payload, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	out := map[string]string{
		"alg none": enc([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + enc(payload) + ".",
		"alg none with kid": enc([]byte(`{"alg":"none","typ":"at+jwt","kid":"`+env.keys.CurrentKeyID()+`"}`)) +
			"." + enc(payload) + ".",
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: env.keys.CurrentKeyID()}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	out["own key under our kid"], _ = jwt.Signed(signer).Claims(claims).Serialize()
	hmac, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(env.jwksBody())},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", env.keys.CurrentKeyID()))
	if err != nil {
		t.Fatal(err)
	}
	out["HS256 keyed with the JWKS"], _ = jwt.Signed(hmac).Claims(claims).Serialize()
	parts := strings.Split(real, ".")
	out["real signature, edited claims"] = parts[0] + "." + enc(payload) + "." + parts[2]
	return out
}

func (e *testEnv) jwksBody() string { return e.get(PathJWKS, nil, nil).Body }

func TestIntrospectionRequiresAConfidentialClient(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	tok := env.tokenOK(backendBasic, url.Values{"grant_type": {GrantClientCredentials}}).AccessToken
	cases := []struct {
		name   string
		as     clientCred
		status int
		code   string
	}{
		{"no client authentication", noClientAuth, 401, "invalid_client"},
		{"wrong secret", clientCred{backendID, "wrong", "basic"}, 401, "invalid_client"},
		{"public client", spaPublic, 400, "unauthorized_client"},
		{"client_id of a confidential client without secret", clientCred{backendID, "", "none"}, 401, "invalid_client"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := env.backChannel(PathIntrospect, tc.as, url.Values{"token": {tok}})
			wantOAuthError(t, res, tc.status, tc.code)
			if strings.Contains(res.Body, "active") {
				t.Errorf("refused introspection reveals the token state: %s", res.Body)
			}
		})
	}
	t.Run("GET", func(t *testing.T) {
		res := env.get(PathIntrospect, url.Values{"token": {tok}}, webappBasic.apply(url.Values{}))
		wantOAuthError(t, res, http.StatusMethodNotAllowed, "invalid_request")
	})
	t.Run("missing token", func(t *testing.T) {
		wantOAuthError(t, env.backChannel(PathIntrospect, backendBasic, url.Values{}), 400, "invalid_request")
	})
}

func TestIntrospectionReportsInvalidTokensInactive(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	tr, _ := env.webappTokens(env.newBrowser(), "openid offline_access read:items")
	tokens := forgedTokens(t, env, tr.AccessToken)
	tokens["garbage"] = "garbage"
	tokens["ID token"] = tr.IDToken
	// A character that differs from the one it replaces: replacing an x
	// by an x would leave the token valid (and the test flaky, 1 in 64).
	changed := byte('x')
	if tr.RefreshToken[10] == changed {
		changed = 'y'
	}
	tokens["refresh token with a changed character"] = tr.RefreshToken[:10] + string(changed) + tr.RefreshToken[11:]
	tokens["access token digest"] = DigestSecret(tr.RefreshToken)
	for name, tok := range tokens {
		t.Run(name, func(t *testing.T) {
			m := env.introspect(tok)
			if m["active"] != false || len(m) != 1 {
				t.Errorf("introspection of %s: %v", name, m)
			}
		})
	}
	t.Run("expired access token", func(t *testing.T) {
		env.clock.Advance(time.Hour + time.Second)
		if env.active(tr.AccessToken) {
			t.Errorf("expired access token introspects active")
		}
		if !env.active(tr.RefreshToken) {
			t.Errorf("refresh token inactive while its grant lives")
		}
	})
}

func TestIntrospectionOfARefreshToken(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	tr, _ := env.webappTokens(env.newBrowser(), "openid offline_access")
	for _, hint := range []string{"", "refresh_token", "access_token"} {
		res := env.backChannel(PathIntrospect, backendBasic, url.Values{"token": {tr.RefreshToken}, "token_type_hint": {hint}})
		m := res.JSON(t)
		if m["active"] != true || m["client_id"] != webappID || m["sub"] != "alice" || m["token_type"] != "refresh_token" {
			t.Errorf("hint %q: %v", hint, m)
		}
	}
}

// TestRevokingARefreshTokenRevokesItsAccessTokens: RFC 7009 §2.1.
func TestRevokingARefreshTokenRevokesItsAccessTokens(t *testing.T) {
	t.Parallel()
	for _, hint := range []string{"", "refresh_token", "access_token"} {
		t.Run("hint="+hint, func(t *testing.T) {
			env := newTestServer(t)
			tr, _ := env.webappTokens(env.newBrowser(), "openid offline_access read:items")
			res := env.backChannel(PathRevoke, webappBasic, url.Values{"token": {tr.RefreshToken}, "token_type_hint": {hint}})
			if res.Status != http.StatusOK {
				t.Fatalf("revoke: %d %s", res.Status, res.Body)
			}
			if env.active(tr.RefreshToken) || env.active(tr.AccessToken) {
				t.Errorf("tokens active after revoking the refresh token")
			}
			wantOAuthError(t, env.refresh(webappBasic, tr.RefreshToken), http.StatusBadRequest, "invalid_grant")
			if res := env.userinfo(tr.AccessToken); res.Status != http.StatusUnauthorized {
				t.Errorf("userinfo with a revoked access token: %d", res.Status)
			}
			// Revoking again is still 200.
			if res := env.backChannel(PathRevoke, webappBasic, url.Values{"token": {tr.RefreshToken}}); res.Status != http.StatusOK {
				t.Errorf("second revocation: %d", res.Status)
			}
		})
	}
}

func TestRevokingAccessTokens(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	t.Run("client_credentials JWT", func(t *testing.T) {
		tok := env.tokenOK(backendBasic, url.Values{"grant_type": {GrantClientCredentials}}).AccessToken
		if res := env.backChannel(PathRevoke, backendBasic, url.Values{"token": {tok}}); res.Status != http.StatusOK {
			t.Fatalf("revoke: %d", res.Status)
		}
		if env.active(tok) {
			t.Errorf("revoked JWT access token still active")
		}
	})
	t.Run("opaque", func(t *testing.T) {
		b := env.newBrowser()
		p := newAuthRequest(webappID, webappRedirect, "openid read:opaque")
		p.Set("audience", opaqueAPI)
		tr := env.redeemOK(webappBasic, b.obtainCode(p, "alice", alicePassword), webappRedirect, p.Verifier)
		if res := env.backChannel(PathRevoke, webappBasic, url.Values{"token": {tr.AccessToken}, "token_type_hint": {"access_token"}}); res.Status != http.StatusOK {
			t.Fatalf("revoke: %d", res.Status)
		}
		if env.active(tr.AccessToken) {
			t.Errorf("revoked opaque access token still active")
		}
	})
}

// TestRevokingAnotherClientsTokenHasNoEffect: RFC 7009 §2.2 — 200, but the
// token stays valid.
func TestRevokingAnotherClientsTokenHasNoEffect(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	tr, _ := env.webappTokens(env.newBrowser(), "openid offline_access read:items")
	cc := env.tokenOK(backendBasic, url.Values{"grant_type": {GrantClientCredentials}}).AccessToken
	for _, as := range []clientCred{otherBasic, spaPublic, backendBasic} {
		for name, tok := range map[string]string{"refresh": tr.RefreshToken, "access": tr.AccessToken} {
			if res := env.backChannel(PathRevoke, as, url.Values{"token": {tok}}); res.Status != http.StatusOK || res.Body != "" {
				t.Errorf("%s revoking webapp's %s token: %d %q", as.id, name, res.Status, res.Body)
			}
		}
	}
	if res := env.backChannel(PathRevoke, webappBasic, url.Values{"token": {cc}}); res.Status != http.StatusOK {
		t.Errorf("webapp revoking backend's token: %d", res.Status)
	}
	if !env.active(tr.RefreshToken) || !env.active(tr.AccessToken) || !env.active(cc) {
		t.Fatalf("another client's revocation took effect")
	}
	env.tokenOK(webappBasic, url.Values{"grant_type": {GrantRefreshToken}, "refresh_token": {tr.RefreshToken}})
}

func TestRevocationRequestValidation(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	wantOAuthError(t, env.backChannel(PathRevoke, noClientAuth, url.Values{"token": {"x"}}), 401, "invalid_client")
	wantOAuthError(t, env.backChannel(PathRevoke, clientCred{webappID, "wrong", "basic"}, url.Values{"token": {"x"}}), 401, "invalid_client")
	wantOAuthError(t, env.backChannel(PathRevoke, webappBasic, url.Values{}), 400, "invalid_request")
	wantOAuthError(t, env.backChannel(PathRevoke, webappBasic, url.Values{"token": {"x"}, "token_type_hint": {"id_token"}}), 400, "unsupported_token_type")
	if res := env.backChannel(PathRevoke, webappBasic, url.Values{"token": {"unknown"}}); res.Status != http.StatusOK {
		t.Errorf("revoking an unknown token: %d", res.Status)
	}
}

func TestUserinfoRequiresAUserAccessToken(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	tr, _ := env.webappTokens(b, "openid offline_access")
	ccToken := env.tokenOK(backendBasic, url.Values{"grant_type": {GrantClientCredentials}}).AccessToken
	// A user token without the openid scope.
	p := newAuthRequest(webappID, webappRedirect, "read:items")
	noOpenID := env.redeemOK(webappBasic, b.obtainCode(p, "alice", alicePassword), webappRedirect, p.Verifier).AccessToken

	t.Run("no token", func(t *testing.T) {
		res := env.userinfo("")
		if res.Status != http.StatusUnauthorized {
			t.Fatalf("status %d", res.Status)
		}
		chal := res.Header.Get("WWW-Authenticate")
		if !strings.HasPrefix(chal, "Bearer ") || !strings.Contains(chal, `realm="`+testIssuer+`"`) || strings.Contains(chal, "error=") {
			t.Errorf("WWW-Authenticate %q (RFC 6750 §3.1: no error code without a token)", chal)
		}
	})
	cases := []struct {
		name, token string
		status      int
		code        string
	}{
		{"garbage", "garbage", 401, "invalid_token"},
		{"ID token (typ JWT, not at+jwt)", tr.IDToken, 401, "invalid_token"},
		{"refresh token", tr.RefreshToken, 401, "invalid_token"},
		{"client_credentials token", ccToken, 403, "insufficient_scope"},
		{"user token without openid", noOpenID, 403, "insufficient_scope"},
	}
	for name, tok := range forgedTokens(t, env, tr.AccessToken) {
		cases = append(cases, struct {
			name, token string
			status      int
			code        string
		}{"forged: " + name, tok, 401, "invalid_token"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := env.userinfo(tc.token)
			wantOAuthError(t, res, tc.status, tc.code)
			chal := res.Header.Get("WWW-Authenticate")
			if !strings.HasPrefix(chal, "Bearer ") || !strings.Contains(chal, `error="`+tc.code+`"`) {
				t.Errorf("WWW-Authenticate %q", chal)
			}
			if strings.Contains(res.Body, "alice@example.com") {
				t.Errorf("refused request leaks claims")
			}
		})
	}
	t.Run("malformed Authorization header", func(t *testing.T) {
		for _, h := range []string{"Basic " + base64.StdEncoding.EncodeToString([]byte("a:b")), "Bearer", "Bearer ", tr.AccessToken} {
			res := env.get(PathUserinfo, nil, http.Header{"Authorization": {h}})
			if res.Status != http.StatusBadRequest && res.Status != http.StatusUnauthorized {
				t.Errorf("Authorization %.20q: %d", h, res.Status)
			}
		}
	})
	t.Run("token in the query string is not accepted", func(t *testing.T) {
		res := env.get(PathUserinfo, url.Values{"access_token": {tr.AccessToken}}, nil)
		if res.Status != http.StatusUnauthorized {
			t.Errorf("status %d", res.Status)
		}
	})
	t.Run("DELETE", func(t *testing.T) {
		r := httptestRequest(http.MethodDelete, testIssuer+PathUserinfo)
		r.Header.Set("Authorization", "Bearer "+tr.AccessToken)
		if res := env.serve(r); res.Status != http.StatusMethodNotAllowed {
			t.Errorf("status %d", res.Status)
		}
	})
	t.Run("expired", func(t *testing.T) {
		env.clock.Advance(time.Hour + time.Second)
		wantOAuthError(t, env.userinfo(tr.AccessToken), 401, "invalid_token")
	})
}

// TestTokensOfAnotherIssuerAreRefused: a token signed by this server's key
// for another issuer (another tenant sharing the key store) is no token
// here.
func TestTokensOfAnotherIssuerAreRefused(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	now := env.clock.Now()
	tok, err := env.keys.Sign(accessClaims{
		Issuer: "https://other-tenant.example.com", Subject: "alice", Audience: []string{apiID1}, ClientID: webappID,
		Scope: "openid email", JTI: "j1", IssuedAt: now.Unix(), Expiry: now.Add(time.Hour).Unix(),
	}, "at+jwt")
	if err != nil {
		t.Fatal(err)
	}
	wantOAuthError(t, env.userinfo(tok), 401, "invalid_token")
	if env.active(tok) {
		t.Errorf("another issuer's token introspects active")
	}
}

// TestHugeFormBodiesAreRefusedNot500: every endpoint that parses a form
// bounds it and answers 4xx.
func TestHugeFormBodiesAreRefusedNot500(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	body := "a=" + strings.Repeat("b", 1<<20)
	for path, want := range map[string]int{
		PathToken: 400, PathIntrospect: 400, PathRevoke: 400, PathAuthorize: 400,
		PathLogin: 400, PathConsent: 400, PathEndSession: 400, PathUserinfo: 400,
	} {
		t.Run(path, func(t *testing.T) {
			res := env.postRaw(path, "application/x-www-form-urlencoded", body, nil)
			if res.Status != want {
				t.Errorf("status %d, want %d", res.Status, want)
			}
		})
	}
}
