package flows

// Attacks on the token endpoint: code and refresh token theft and replay,
// PKCE downgrades, client impersonation and malformed requests.

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/store"
)

// codeEnv is an environment with alice signed in and consent given to
// webapp, so codes are cheap to mint.
type codeEnv struct {
	*testEnv
	b *browser
}

func newCodeEnv(t *testing.T) *codeEnv {
	t.Helper()
	env := newTestServer(t)
	b := env.newBrowser()
	b.obtainCode(newAuthRequest(webappID, webappRedirect, "openid profile offline_access read:items"), "alice", alicePassword)
	return &codeEnv{env, b}
}

// code mints a webapp code with PKCE for scope.
func (e *codeEnv) code(scope string) (string, authRequestParams) {
	e.tb.Helper()
	p := newAuthRequest(webappID, webappRedirect, scope)
	return e.b.obtainCode(p, "alice", alicePassword), p
}

// codeWithoutPKCE mints a webapp code without a code_challenge.
func (e *codeEnv) codeWithoutPKCE(scope string) string {
	e.tb.Helper()
	p := newAuthRequest(webappID, webappRedirect, scope)
	p.Del("code_challenge")
	p.Del("code_challenge_method")
	return e.b.obtainCode(p, "alice", alicePassword)
}

func TestTokenEndpointEnforcesPKCE(t *testing.T) {
	t.Parallel()
	env := newCodeEnv(t)
	otherVerifier, _ := newPKCE()
	cases := []struct {
		name     string
		withPKCE bool
		verifier func(right string) string
	}{
		{"missing verifier", true, func(string) string { return "" }},
		{"wrong verifier", true, func(string) string { return otherVerifier }},
		{"verifier is the challenge", true, func(string) string { return "" }}, // replaced below
		{"truncated verifier", true, func(right string) string { return right[:42] }},
		{"verifier with an extra character", true, func(right string) string { return right + "a" }},
		{"verifier too long", true, func(string) string { return strings.Repeat("a", 129) }},
		{"verifier with forbidden characters", true, func(right string) string { return right[:42] + "+" }},
		{"verifier without challenge (downgrade)", false, func(string) string { return otherVerifier }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var code, verifier string
			if tc.withPKCE {
				var p authRequestParams
				code, p = env.code("openid")
				verifier = tc.verifier(p.Verifier)
				if tc.name == "verifier is the challenge" {
					verifier = p.Get("code_challenge")
				}
			} else {
				code = env.codeWithoutPKCE("openid")
				verifier = tc.verifier("")
			}
			wantOAuthError(t, env.redeem(webappBasic, code, webappRedirect, verifier), http.StatusBadRequest, "invalid_grant")
		})
	}
	t.Run("confidential client without PKCE at all", func(t *testing.T) {
		env.redeemOK(webappBasic, env.codeWithoutPKCE("openid"), webappRedirect, "")
	})
}

// TestCodeReplayRevokesTheTokensItIssued: RFC 6749 §4.1.2 / RFC 9700
// §4.5 — a code used twice revokes everything the first redemption issued,
// including tokens refreshed since.
func TestCodeReplayRevokesTheTokensItIssued(t *testing.T) {
	t.Parallel()
	env := newCodeEnv(t)
	code, p := env.code("openid profile offline_access read:items")
	first := env.redeemOK(webappBasic, code, webappRedirect, p.Verifier)
	refreshed := env.tokenOK(webappBasic, url.Values{"grant_type": {GrantRefreshToken}, "refresh_token": {first.RefreshToken}})
	for _, tok := range []string{refreshed.AccessToken, refreshed.RefreshToken, first.AccessToken} {
		if !env.active(tok) {
			t.Fatalf("token inactive before the replay")
		}
	}

	wantOAuthError(t, env.redeem(webappBasic, code, webappRedirect, p.Verifier), http.StatusBadRequest, "invalid_grant")

	for name, tok := range map[string]string{
		"first access token": first.AccessToken, "first refresh token": first.RefreshToken,
		"refreshed access token": refreshed.AccessToken, "refreshed refresh token": refreshed.RefreshToken,
	} {
		if env.active(tok) {
			t.Errorf("%s still introspects active after the code replay", name)
		}
	}
	wantOAuthError(t, env.refresh(webappBasic, refreshed.RefreshToken), http.StatusBadRequest, "invalid_grant")
	if res := env.userinfo(refreshed.AccessToken); res.Status != http.StatusUnauthorized {
		t.Errorf("userinfo accepts an access token of the revoked grant: %d", res.Status)
	}
	// Other grants of the same user are untouched.
	other, p2 := env.code("openid")
	if tr := env.redeemOK(webappBasic, other, webappRedirect, p2.Verifier); !env.active(tr.AccessToken) {
		t.Errorf("an unrelated grant was revoked")
	}
}

func TestCodeIsBoundToTheClientItWasIssuedTo(t *testing.T) {
	t.Parallel()
	env := newCodeEnv(t)
	cases := []struct {
		name string
		as   clientCred
	}{
		{"another confidential client", otherBasic},
		{"a public client", spaPublic},
		{"a first-party client", firstPost},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, p := env.code("openid")
			// Everything else is right: same redirect URI (other registered
			// it too) and the right verifier.
			wantOAuthError(t, env.redeem(tc.as, code, webappRedirect, p.Verifier), http.StatusBadRequest, "invalid_grant")
		})
	}
	t.Run("client_id in the body naming the owner", func(t *testing.T) {
		code, p := env.code("openid")
		form := url.Values{"grant_type": {GrantAuthorizationCode}, "code": {code}, "redirect_uri": {webappRedirect},
			"code_verifier": {p.Verifier}, "client_id": {webappID}}
		wantOAuthError(t, env.token(otherBasic, form), http.StatusBadRequest, "invalid_request")
	})
}

func TestCodeRedirectURIMustMatchAtTheTokenEndpoint(t *testing.T) {
	t.Parallel()
	env := newCodeEnv(t)
	for _, redirect := range []string{"", webappRedirect + "/", "https://app.example.com/CB", otherRedirect, "https://evil.com/cb"} {
		t.Run("redirect_uri="+redirect, func(t *testing.T) {
			code, p := env.code("openid")
			wantOAuthError(t, env.redeem(webappBasic, code, redirect, p.Verifier), http.StatusBadRequest, "invalid_grant")
		})
	}
}

func TestExpiredCodeIsRefused(t *testing.T) {
	t.Parallel()
	env := newCodeEnv(t)
	code, p := env.code("openid")
	env.clock.Advance(61 * time.Second)
	wantOAuthError(t, env.redeem(webappBasic, code, webappRedirect, p.Verifier), http.StatusBadRequest, "invalid_grant")

	code, p = env.code("openid")
	env.clock.Advance(59 * time.Second)
	env.redeemOK(webappBasic, code, webappRedirect, p.Verifier)
}

func TestUnknownOrMalformedCodeIsRefused(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	for _, code := range []string{"nope", strings.Repeat("A", 43), "a.b.c", "%00", strings.Repeat("x", 10000)} {
		wantOAuthError(t, env.redeem(webappBasic, code, webappRedirect, ""), http.StatusBadRequest, "invalid_grant")
	}
	wantOAuthError(t, env.token(webappBasic, url.Values{"grant_type": {GrantAuthorizationCode}}), http.StatusBadRequest, "invalid_request")
}

// TestRefreshTokenReuseRevokesTheFamily: RFC 9700 §4.14.2 — presenting a
// rotated refresh token again revokes every token of the grant, including
// the newest refresh token the legitimate client holds.
func TestRefreshTokenReuseRevokesTheFamily(t *testing.T) {
	t.Parallel()
	env := newCodeEnv(t)
	code, p := env.code("openid offline_access read:items")
	t1 := env.redeemOK(webappBasic, code, webappRedirect, p.Verifier)
	t2 := env.tokenOK(webappBasic, url.Values{"grant_type": {GrantRefreshToken}, "refresh_token": {t1.RefreshToken}})
	t3 := env.tokenOK(webappBasic, url.Values{"grant_type": {GrantRefreshToken}, "refresh_token": {t2.RefreshToken}})

	// The attacker replays the first refresh token.
	wantOAuthError(t, env.refresh(webappBasic, t1.RefreshToken), http.StatusBadRequest, "invalid_grant")

	wantOAuthError(t, env.refresh(webappBasic, t3.RefreshToken), http.StatusBadRequest, "invalid_grant")
	for name, tok := range map[string]string{"newest refresh token": t3.RefreshToken, "newest access token": t3.AccessToken,
		"older access token": t2.AccessToken, "first access token": t1.AccessToken} {
		if env.active(tok) {
			t.Errorf("%s still active after refresh token reuse", name)
		}
	}
}

func TestRefreshTokenIsBoundToItsClient(t *testing.T) {
	t.Parallel()
	env := newCodeEnv(t)
	code, p := env.code("openid offline_access")
	tr := env.redeemOK(webappBasic, code, webappRedirect, p.Verifier)
	for _, as := range []clientCred{otherBasic, spaPublic, firstPost} {
		wantOAuthError(t, env.refresh(as, tr.RefreshToken), http.StatusBadRequest, "invalid_grant")
	}
	// The failed attempts neither rotated nor revoked the owner's token.
	env.tokenOK(webappBasic, url.Values{"grant_type": {GrantRefreshToken}, "refresh_token": {tr.RefreshToken}})
}

func TestRefreshCannotWidenScope(t *testing.T) {
	t.Parallel()
	env := newCodeEnv(t)
	code, p := env.code("openid offline_access")
	tr := env.redeemOK(webappBasic, code, webappRedirect, p.Verifier)
	for _, scope := range []string{"openid profile", "openid offline_access read:items", "email"} {
		res := env.token(webappBasic, url.Values{"grant_type": {GrantRefreshToken}, "refresh_token": {tr.RefreshToken}, "scope": {scope}})
		wantOAuthError(t, res, http.StatusBadRequest, "invalid_scope")
	}
}

func TestRefreshStopsWorkingForDisabledUserAndAfterExpiry(t *testing.T) {
	t.Parallel()
	t.Run("disabled user", func(t *testing.T) {
		env := newCodeEnv(t)
		code, p := env.code("openid offline_access")
		tr := env.redeemOK(webappBasic, code, webappRedirect, p.Verifier)
		u, _ := env.store.GetUser(t.Context(), "alice")
		u.Disabled = true
		if err := env.store.PutUser(t.Context(), u); err != nil {
			t.Fatal(err)
		}
		wantOAuthError(t, env.refresh(webappBasic, tr.RefreshToken), http.StatusBadRequest, "invalid_grant")
		if res := env.userinfo(tr.AccessToken); res.Status != http.StatusUnauthorized {
			t.Errorf("userinfo for a disabled user: %d", res.Status)
		}
	})
	t.Run("grant lifetime", func(t *testing.T) {
		env := newCodeEnv(t)
		code, p := env.code("openid offline_access")
		tr := env.redeemOK(webappBasic, code, webappRedirect, p.Verifier)
		env.clock.Advance(30*24*time.Hour + time.Second)
		wantOAuthError(t, env.refresh(webappBasic, tr.RefreshToken), http.StatusBadRequest, "invalid_grant")
	})
}

// TestRefreshTokenScopeIsKeptAfterDownscopedRefresh: RFC 6749 §6 — "If a
// new refresh token is issued, the refresh token scope MUST be identical
// to that of the refresh token included by the client in the request."
// Asking for a narrower access token must not narrow the grant.
func TestRefreshTokenScopeIsKeptAfterDownscopedRefresh(t *testing.T) {
	t.Parallel()
	env := newCodeEnv(t)
	code, p := env.code("openid profile offline_access read:items")
	tr := env.redeemOK(webappBasic, code, webappRedirect, p.Verifier)
	narrow := env.tokenOK(webappBasic, url.Values{"grant_type": {GrantRefreshToken}, "refresh_token": {tr.RefreshToken}, "scope": {"openid"}})
	if narrow.Scope != "openid" {
		t.Fatalf("down-scoped access token has scope %q", narrow.Scope)
	}
	if info := env.introspect(narrow.RefreshToken); !sameSet(strings.Fields(info["scope"].(string)), []string{"openid", "profile", "offline_access", "read:items"}) {
		t.Errorf("the rotated refresh token's scope is %v, want the original grant", info["scope"])
	}
	full := env.tokenOK(webappBasic, url.Values{"grant_type": {GrantRefreshToken}, "refresh_token": {narrow.RefreshToken}})
	if !sameSet(strings.Fields(full.Scope), []string{"openid", "profile", "offline_access", "read:items"}) {
		t.Errorf("refresh without scope after a down-scoped one returned %q, want the original scope", full.Scope)
	}
}

// TestTokenEndpointClientAuthentication: every way of presenting the
// wrong credentials, or more than one method.
func TestTokenEndpointClientAuthentication(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	// A bogus code: if authentication passes, the answer is invalid_grant.
	grant := func() url.Values {
		return url.Values{"grant_type": {GrantAuthorizationCode}, "code": {"bogus"}, "redirect_uri": {webappRedirect}}
	}
	basic := func(id, secret string) http.Header {
		h := http.Header{}
		(&http.Request{Header: h}).SetBasicAuth(id, secret)
		return h
	}
	cases := []struct {
		name          string
		header        http.Header
		form          url.Values
		status        int
		code          string
		wantBasicChal bool
	}{
		{"wrong secret (basic)", basic(webappID, "wrong"), url.Values{}, 401, "invalid_client", true},
		{"empty secret (basic)", basic(webappID, ""), url.Values{}, 401, "invalid_client", true},
		{"secret of another client (basic)", basic(webappID, otherSecret), url.Values{}, 401, "invalid_client", true},
		{"unknown client (basic)", basic("nobody", "x"), url.Values{}, 401, "invalid_client", true},
		{"malformed basic encoding", basic(webappID, "%zz"), url.Values{}, 401, "invalid_client", true},
		{"wrong secret (post)", nil, url.Values{"client_id": {webappID}, "client_secret": {"wrong"}}, 401, "invalid_client", false},
		{"confidential client without secret", nil, url.Values{"client_id": {webappID}}, 401, "invalid_client", false},
		{"no client at all", nil, url.Values{}, 401, "invalid_client", false},
		{"both basic and client_secret", basic(webappID, webappSecret), url.Values{"client_secret": {webappSecret}}, 400, "invalid_request", false},
		{"basic and a different client_id", basic(webappID, webappSecret), url.Values{"client_id": {otherID}}, 400, "invalid_request", false},
		{"public client sending a secret (post)", nil, url.Values{"client_id": {spaID}, "client_secret": {"anything"}}, 401, "invalid_client", false},
		{"public client sending a secret (basic)", basic(spaID, "anything"), url.Values{}, 401, "invalid_client", true},
		{"secret in the query string", nil, url.Values{"client_id": {webappID}}, 401, "invalid_client", false},
		// Controls: the right credentials get past authentication.
		{"right secret (basic)", basic(webappID, webappSecret), url.Values{}, 400, "invalid_grant", false},
		{"right secret (post)", nil, url.Values{"client_id": {webappID}, "client_secret": {webappSecret}}, 400, "invalid_grant", false},
		{"basic with matching client_id", basic(webappID, webappSecret), url.Values{"client_id": {webappID}}, 400, "invalid_grant", false},
		{"public client", nil, url.Values{"client_id": {spaID}}, 400, "invalid_grant", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			form := grant()
			for k, v := range tc.form {
				form[k] = v
			}
			path := PathToken
			if tc.name == "secret in the query string" {
				path += "?client_secret=" + webappSecret
			}
			res := env.postForm(path, form, tc.header)
			wantOAuthError(t, res, tc.status, tc.code)
			chal := res.Header.Get("WWW-Authenticate")
			if tc.wantBasicChal && !strings.HasPrefix(chal, "Basic ") {
				t.Errorf("401 after HTTP Basic without a Basic challenge: %q", chal)
			}
			if strings.Contains(res.Body, webappSecret) || strings.Contains(res.Body, "wrong") {
				t.Errorf("error echoes a secret: %s", res.Body)
			}
		})
	}
}

func TestClientCredentialsRestrictions(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	cc := func(extra url.Values) url.Values {
		v := url.Values{"grant_type": {GrantClientCredentials}}
		for k, x := range extra {
			v[k] = x
		}
		return v
	}
	cases := []struct {
		name   string
		as     clientCred
		form   url.Values
		status int
		code   string
	}{
		{"public client", spaPublic, cc(nil), 400, "unauthorized_client"},
		{"public client registered for client_credentials", clientCred{misconfiguredPublicID, "", "none"}, cc(nil), 400, "unauthorized_client"},
		{"client not registered for client_credentials", webappBasic, cc(url.Values{"audience": {apiID1}}), 400, "unauthorized_client"},
		{"API not granted", backendBasic, cc(url.Values{"audience": {opaqueAPI}}), 400, "invalid_target"},
		{"unknown API", backendBasic, cc(url.Values{"audience": {"https://evil.example.com"}}), 400, "invalid_target"},
		{"API not granted (resource)", backendBasic, cc(url.Values{"resource": {opaqueAPI}}), 400, "invalid_target"},
		{"scope not granted", backendBasic, cc(url.Values{"audience": {apiID1}, "scope": {"write:items"}}), 400, "invalid_scope"},
		{"granted and ungranted scope", backendBasic, cc(url.Values{"scope": {"read:items write:items"}}), 400, "invalid_scope"},
		{"openid scope", backendBasic, cc(url.Values{"scope": {"openid"}}), 400, "invalid_scope"},
		{"scope of another API", backendBasic, cc(url.Values{"scope": {"read:opaque"}}), 400, "invalid_scope"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantOAuthError(t, env.token(tc.as, tc.form), tc.status, tc.code)
		})
	}
}

func TestTokenEndpointRequestHygiene(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	basicHdr := webappBasic.apply(url.Values{})
	cc := "grant_type=client_credentials"
	cases := []struct {
		name        string
		method      string
		contentType string
		body        string
		header      http.Header
		status      int
		code        string
	}{
		{"repeated grant_type", "POST", "application/x-www-form-urlencoded", cc + "&grant_type=authorization_code", basicHdr, 400, "invalid_request"},
		{"repeated code", "POST", "application/x-www-form-urlencoded", "grant_type=authorization_code&code=a&code=b", basicHdr, 400, "invalid_request"},
		{"repeated client_id", "POST", "application/x-www-form-urlencoded", cc + "&client_id=spa&client_id=webapp", nil, 400, "invalid_request"},
		{"repeated client_secret", "POST", "application/x-www-form-urlencoded", cc + "&client_id=backend&client_secret=backend-secret&client_secret=x", nil, 400, "invalid_request"},
		{"JSON body", "POST", "application/json", `{"grant_type":"client_credentials"}`, basicHdr, 400, "invalid_request"},
		{"multipart body", "POST", "multipart/form-data; boundary=x", "--x--", basicHdr, 400, "invalid_request"},
		{"no content type", "POST", "", cc, basicHdr, 400, "invalid_request"},
		{"malformed form", "POST", "application/x-www-form-urlencoded", "grant_type=%zz", basicHdr, 400, "invalid_request"},
		{"huge body", "POST", "application/x-www-form-urlencoded", cc + "&pad=" + strings.Repeat("a", 1<<20), basicHdr, 400, "invalid_request"},
		{"missing grant_type", "POST", "application/x-www-form-urlencoded", "", basicHdr, 400, "invalid_request"},
		{"unknown grant_type", "POST", "application/x-www-form-urlencoded", "grant_type=urn:example:grant-type:unknown", basicHdr, 400, "unsupported_grant_type"},
		{"implicit grant_type", "POST", "application/x-www-form-urlencoded", "grant_type=implicit", basicHdr, 400, "unsupported_grant_type"},
		{"GET", "GET", "", "", basicHdr, 405, "invalid_request"},
		{"PUT", "PUT", "application/x-www-form-urlencoded", cc, basicHdr, 405, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptestRequest(tc.method, testIssuer+PathToken)
			if tc.body != "" {
				r = httptestRequestBody(tc.method, testIssuer+PathToken, tc.body)
			}
			if tc.contentType != "" {
				r.Header.Set("Content-Type", tc.contentType)
			}
			for k, v := range tc.header {
				r.Header[k] = v
			}
			res := env.serve(r)
			wantOAuthError(t, res, tc.status, tc.code)
			if tc.status == 405 && res.Header.Get("Allow") != http.MethodPost {
				t.Errorf("405 with Allow %q", res.Header.Get("Allow"))
			}
		})
	}
	t.Run("GET with parameters in the query issues nothing", func(t *testing.T) {
		res := env.get(PathToken, url.Values{"grant_type": {GrantClientCredentials}, "client_id": {backendID}, "client_secret": {backendSecret}}, nil)
		wantOAuthError(t, res, http.StatusMethodNotAllowed, "invalid_request")
	})
	t.Run("parameters in the query of a POST are ignored", func(t *testing.T) {
		res := env.postForm(PathToken+"?grant_type=client_credentials&client_id=backend&client_secret=backend-secret", url.Values{}, nil)
		wantOAuthError(t, res, http.StatusUnauthorized, "invalid_client")
	})
}

// TestStoreFailureIsAGenericServerError closes the store under the server:
// the answer is a 500 server_error that says nothing about the cause.
func TestStoreFailureIsAGenericServerError(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	env.allow500.Store(true)
	env.store.Close()
	res := env.token(backendBasic, url.Values{"grant_type": {GrantClientCredentials}})
	wantOAuthError(t, res, http.StatusInternalServerError, "server_error")
	if strings.Contains(strings.ToLower(res.Body), "bolt") || strings.Contains(res.Body, "database") {
		t.Errorf("server error leaks its cause: %s", res.Body)
	}
}

// holdStore parks the next GetUser (the grant handler's user lookup, which
// comes after the code is taken and before the grant is stored) until
// released.
type holdStore struct {
	store.Store
	armed   atomic.Bool
	reached chan struct{}
	release chan struct{}
}

func (h *holdStore) GetUser(ctx context.Context, username string) (*store.User, error) {
	if h.armed.CompareAndSwap(true, false) {
		close(h.reached)
		<-h.release
	}
	return h.Store.GetUser(ctx, username)
}

// TestCodeReplayDuringTheFirstRedemptionRevokesItsTokens: a stolen code
// redeemed by the attacker and the client at the same time. The replay is
// detected while the first redemption is still in flight; the tokens that
// redemption then issues must not stay valid.
func TestCodeReplayDuringTheFirstRedemptionRevokesItsTokens(t *testing.T) {
	t.Parallel()
	hold := &holdStore{reached: make(chan struct{}), release: make(chan struct{})}
	env := newTestServer(t, func(c *Config) {
		hold.Store = c.Store
		c.Store = hold
	})
	b := env.newBrowser()
	p := newAuthRequest(webappID, webappRedirect, "openid offline_access read:items")
	code := b.obtainCode(p, "alice", alicePassword)

	hold.armed.Store(true)
	var first *response
	done := make(chan struct{})
	go func() {
		defer close(done)
		first = env.redeem(webappBasic, code, webappRedirect, p.Verifier)
	}()
	<-hold.reached
	wantOAuthError(t, env.redeem(webappBasic, code, webappRedirect, p.Verifier), http.StatusBadRequest, "invalid_grant")
	close(hold.release)
	<-done

	if first.Status != http.StatusOK {
		wantOAuthError(t, first, http.StatusBadRequest, "invalid_grant")
		return
	}
	m := first.JSON(t)
	for _, name := range []string{"access_token", "refresh_token"} {
		if tok, _ := m[name].(string); env.active(tok) {
			t.Errorf("%s issued for a replayed code is still active", name)
		}
	}
}
