package flows

// Happy paths: what a well-behaved client and user get from every endpoint.

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDiscoveryDocument(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	for _, path := range []string{PathDiscovery, PathASMetadata} {
		t.Run(path, func(t *testing.T) {
			res := env.get(path, nil, nil)
			if res.Status != http.StatusOK {
				t.Fatalf("status %d", res.Status)
			}
			m := res.JSON(t)
			want := map[string]any{
				"issuer":                 testIssuer,
				"authorization_endpoint": testIssuer + PathAuthorize,
				"token_endpoint":         testIssuer + PathToken,
				"userinfo_endpoint":      testIssuer + PathUserinfo,
				"jwks_uri":               testIssuer + PathJWKS,
				"introspection_endpoint": testIssuer + PathIntrospect,
				"revocation_endpoint":    testIssuer + PathRevoke,
				"end_session_endpoint":   testIssuer + PathEndSession,
				"authorization_response_iss_parameter_supported": true,
			}
			for k, v := range want {
				if m[k] != v {
					t.Errorf("%s = %#v, want %#v", k, m[k], v)
				}
			}
			lists := map[string][]string{
				"code_challenge_methods_supported":      {"S256"},
				"response_types_supported":              {"code"},
				"grant_types_supported":                 {GrantAuthorizationCode, GrantClientCredentials, GrantPassword, GrantRefreshToken, GrantDeviceCode, GrantCIBA},
				"id_token_signing_alg_values_supported": {"ES256"},
				"subject_types_supported":               {"public"},
			}
			for k, v := range lists {
				if got := strings.Join(toStrings(m[k]), ","); got != strings.Join(v, ",") {
					t.Errorf("%s = %s, want %s", k, got, strings.Join(v, ","))
				}
			}
			for _, sc := range []string{"openid", "profile", "email", "offline_access"} {
				if !slices.Contains(toStrings(m["scopes_supported"]), sc) {
					t.Errorf("scopes_supported lacks %s", sc)
				}
			}
		})
	}
}

func toStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func TestJWKSPublishesOnlyPublicKeys(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	res := env.get(PathJWKS, nil, nil)
	if ct := res.Header.Get("Content-Type"); ct != "application/jwk-set+json" {
		t.Errorf("content type %q", ct)
	}
	set := env.jwks()
	if len(set.Keys) == 0 || len(set.Key(env.keys.CurrentKeyID())) != 1 {
		t.Fatalf("JWKS lacks the current key %s: %s", env.keys.CurrentKeyID(), res.Body)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			t.Errorf("JWKS publishes a private key %s", k.KeyID)
		}
	}
	if strings.Contains(res.Body, `"d"`) {
		t.Errorf("JWKS body contains a private exponent: %s", res.Body)
	}
}

// TestAuthorizationCodeFlowWithPKCE runs the code flow with S256 for a
// confidential client (both secret methods) and a public client, and checks
// the token response, the ID token and the RFC 9068 access token.
func TestAuthorizationCodeFlowWithPKCE(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	loginTime := env.clock.Now()
	cases := []struct {
		name        string
		client      clientCred
		redirect    string
		scope       string
		wantAud     string
		wantRefresh bool
		wantEmail   bool
		wantProfile bool
	}{
		{"confidential basic", webappBasic, webappRedirect, "openid profile email offline_access read:items", apiID1, true, true, true},
		{"confidential post", webappPost, webappRedirect, "openid email", testIssuer + PathUserinfo, false, true, false},
		{"public", spaPublic, spaRedirect, "openid profile offline_access", testIssuer + PathUserinfo, true, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newAuthRequest(tc.client.id, tc.redirect, tc.scope)
			code := b.obtainCode(p, "alice", alicePassword)
			res := env.redeem(tc.client, code, tc.redirect, p.Verifier)
			if res.Status != http.StatusOK {
				t.Fatalf("redeem: %d %s", res.Status, res.Body)
			}
			if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("token response Cache-Control %q, want no-store", cc)
			}
			m := res.JSON(t)
			if m["token_type"] != "Bearer" {
				t.Errorf("token_type %v", m["token_type"])
			}
			if m["expires_in"] != float64(3600) {
				t.Errorf("expires_in %v, want 3600", m["expires_in"])
			}
			if got := strings.Fields(m["scope"].(string)); !sameSet(got, strings.Fields(tc.scope)) {
				t.Errorf("scope %v, want %s", got, tc.scope)
			}
			if _, has := m["refresh_token"]; has != tc.wantRefresh {
				t.Errorf("refresh_token present = %v, want %v", has, tc.wantRefresh)
			}
			access, idToken := m["access_token"].(string), m["id_token"].(string)

			typ, id := env.verifyJWT(idToken)
			if typ != "JWT" {
				t.Errorf("ID token typ %q, want JWT", typ)
			}
			wantClaims := map[string]any{
				"iss": testIssuer, "sub": "alice", "aud": tc.client.id, "azp": tc.client.id,
				"nonce": p.Get("nonce"), "at_hash": atHash(access),
			}
			for k, v := range wantClaims {
				if id[k] != v {
					t.Errorf("ID token %s = %#v, want %#v", k, id[k], v)
				}
			}
			if got := claimInt(t, id, "auth_time"); got != loginTime.Unix() {
				t.Errorf("auth_time %d, want %d", got, loginTime.Unix())
			}
			if sid, _ := id["sid"].(string); sid == "" {
				t.Errorf("ID token has no sid")
			}
			if claimInt(t, id, "exp")-claimInt(t, id, "iat") != 3600 {
				t.Errorf("ID token lifetime is not 1h: %v", id)
			}
			if _, has := id["email"]; has != tc.wantEmail {
				t.Errorf("email released = %v, want %v (scope %s)", has, tc.wantEmail, tc.scope)
			}
			if tc.wantEmail && (id["email"] != "alice@example.com" || id["email_verified"] != true) {
				t.Errorf("email claims %v %v", id["email"], id["email_verified"])
			}
			if _, has := id["name"]; has != tc.wantProfile {
				t.Errorf("name released = %v, want %v (scope %s)", has, tc.wantProfile, tc.scope)
			}
			if tc.wantProfile {
				if id["name"] != "Alice Liddell" || id["preferred_username"] != "alice" || id["department"] != "R&D" {
					t.Errorf("profile claims: %v", id)
				}
			}
			if _, has := id["groups"]; has {
				t.Errorf("groups released without the groups scope")
			}

			typ, at := env.verifyJWT(access)
			if typ != "at+jwt" {
				t.Errorf("access token typ %q, want at+jwt (RFC 9068)", typ)
			}
			if at["iss"] != testIssuer || at["sub"] != "alice" || at["client_id"] != tc.client.id {
				t.Errorf("access token iss/sub/client_id: %v", at)
			}
			if aud := toStrings(at["aud"]); len(aud) != 1 || aud[0] != tc.wantAud {
				t.Errorf("access token aud %v, want [%s]", at["aud"], tc.wantAud)
			}
			if got := strings.Fields(at["scope"].(string)); !sameSet(got, strings.Fields(tc.scope)) {
				t.Errorf("access token scope %v", got)
			}
			if jti, _ := at["jti"].(string); jti == "" {
				t.Errorf("access token without jti")
			}
			if claimInt(t, at, "exp")-claimInt(t, at, "iat") != 3600 || claimInt(t, at, "iat") != env.clock.Now().Unix() {
				t.Errorf("access token iat/exp: %v", at)
			}
			if claimInt(t, at, "auth_time") != loginTime.Unix() {
				t.Errorf("access token auth_time %v", at["auth_time"])
			}
		})
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

func TestIDTokenCustomClaimsCannotOverrideRegisteredClaims(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	tr, _ := env.webappTokens(env.newBrowser(), "openid profile")
	_, id := env.verifyJWT(tr.IDToken)
	if id["iss"] != testIssuer {
		t.Fatalf("a user's custom claim replaced iss: %v", id["iss"])
	}
	ui := env.userinfo(tr.AccessToken).JSON(t)
	if _, has := ui["iss"]; has {
		t.Errorf("userinfo releases the reserved custom claim iss: %v", ui)
	}
}

func TestRefreshTokenRotation(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	first, _ := env.webappTokens(env.newBrowser(), "openid profile offline_access read:items")
	_, firstID := env.verifyJWT(first.IDToken)

	env.clock.Advance(10 * time.Minute)
	second := env.tokenOK(webappBasic, url.Values{"grant_type": {GrantRefreshToken}, "refresh_token": {first.RefreshToken}})
	if second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
		t.Fatalf("refresh token not rotated: %q", second.RefreshToken)
	}
	if second.AccessToken == first.AccessToken || second.TokenType != "Bearer" || second.ExpiresIn != 3600 {
		t.Fatalf("refreshed access token: %+v", second)
	}
	typ, at := env.verifyJWT(second.AccessToken)
	if typ != "at+jwt" || at["sub"] != "alice" || toStrings(at["aud"])[0] != apiID1 || claimInt(t, at, "iat") != env.clock.Now().Unix() {
		t.Errorf("refreshed access token claims: %s %v", typ, at)
	}
	_, id := env.verifyJWT(second.IDToken)
	if id["sid"] != firstID["sid"] || id["auth_time"] != firstID["auth_time"] || id["at_hash"] != atHash(second.AccessToken) {
		t.Errorf("refreshed ID token keeps neither sid/auth_time nor a matching at_hash: %v", id)
	}
	if !env.active(second.AccessToken) || !env.active(second.RefreshToken) {
		t.Errorf("refreshed tokens are not active")
	}
	if env.active(first.RefreshToken) {
		t.Errorf("the rotated refresh token still introspects active")
	}

	// Asking for fewer scopes is allowed (RFC 6749 §6).
	third := env.tokenOK(webappBasic, url.Values{"grant_type": {GrantRefreshToken}, "refresh_token": {second.RefreshToken}, "scope": {"openid read:items"}})
	if !sameSet(strings.Fields(third.Scope), []string{"openid", "read:items"}) {
		t.Errorf("down-scoped refresh returned scope %q", third.Scope)
	}
}

func TestClientCredentialsIssuesJWTForTheAPI(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	cases := []struct {
		name string
		form url.Values
	}{
		{"audience named", url.Values{"audience": {apiID1}}},
		{"resource named", url.Values{"resource": {apiID1}}},
		{"single API implied", url.Values{}},
		{"scope asked", url.Values{"audience": {apiID1}, "scope": {"read:items"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.form.Set("grant_type", GrantClientCredentials)
			tr := env.tokenOK(backendBasic, tc.form)
			if tr.RefreshToken != "" || tr.IDToken != "" {
				t.Errorf("client_credentials returned a refresh or ID token: %+v", tr)
			}
			if tr.Scope != "read:items" || tr.TokenType != "Bearer" || tr.ExpiresIn != 3600 {
				t.Errorf("response %+v", tr)
			}
			typ, at := env.verifyJWT(tr.AccessToken)
			if typ != "at+jwt" {
				t.Errorf("typ %q", typ)
			}
			if at["sub"] != backendID+ClientSubjectSuffix || at["client_id"] != backendID || at["scope"] != "read:items" || at["iss"] != testIssuer {
				t.Errorf("claims %v", at)
			}
			if aud := toStrings(at["aud"]); len(aud) != 1 || aud[0] != apiID1 {
				t.Errorf("aud %v", at["aud"])
			}
			if _, has := at["auth_time"]; has {
				t.Errorf("client token has auth_time")
			}
			if !env.active(tr.AccessToken) {
				t.Errorf("client_credentials token does not introspect active")
			}
		})
	}
}

func TestOpaqueAccessTokenForOpaqueAPI(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	p := newAuthRequest(webappID, webappRedirect, "openid read:opaque")
	p.Set("audience", opaqueAPI)
	code := b.obtainCode(p, "alice", alicePassword)
	tr := env.redeemOK(webappBasic, code, webappRedirect, p.Verifier)
	if strings.Contains(tr.AccessToken, ".") || len(tr.AccessToken) < 43 {
		t.Fatalf("access token for an opaque API is not opaque: %q", tr.AccessToken)
	}
	info := env.introspect(tr.AccessToken)
	want := map[string]any{"active": true, "client_id": webappID, "sub": "alice", "aud": opaqueAPI, "iss": testIssuer, "token_type": "Bearer"}
	for k, v := range want {
		if info[k] != v {
			t.Errorf("introspection %s = %#v, want %#v", k, info[k], v)
		}
	}
	if !sameSet(strings.Fields(info["scope"].(string)), []string{"openid", "read:opaque"}) {
		t.Errorf("introspected scope %v", info["scope"])
	}
	if res := env.userinfo(tr.AccessToken); res.Status != http.StatusOK || res.JSON(t)["sub"] != "alice" {
		t.Errorf("userinfo with the opaque token: %d %s", res.Status, res.Body)
	}
	// It expires with the server's access token lifetime.
	env.clock.Advance(time.Hour + time.Second)
	if env.active(tr.AccessToken) {
		t.Errorf("opaque token still active after its lifetime")
	}
}

func TestUserinfoReleasesClaimsPerScope(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	cases := []struct {
		scope   string
		want    map[string]any
		notWant []string
	}{
		{"openid", map[string]any{"sub": "alice"}, []string{"email", "name", "groups"}},
		{"openid email", map[string]any{"sub": "alice", "email": "alice@example.com", "email_verified": true}, []string{"name"}},
		{"openid profile groups", map[string]any{"sub": "alice", "name": "Alice Liddell", "preferred_username": "alice"}, []string{"email"}},
	}
	for _, tc := range cases {
		t.Run(tc.scope, func(t *testing.T) {
			tr, _ := env.webappTokens(b, tc.scope)
			for _, method := range []string{"GET header", "POST body"} {
				var res *response
				if method == "GET header" {
					res = env.userinfo(tr.AccessToken)
				} else {
					res = env.postForm(PathUserinfo, url.Values{"access_token": {tr.AccessToken}}, nil)
				}
				if res.Status != http.StatusOK {
					t.Fatalf("%s: %d %s", method, res.Status, res.Body)
				}
				m := res.JSON(t)
				for k, v := range tc.want {
					if m[k] != v {
						t.Errorf("%s: %s = %#v, want %#v", method, k, m[k], v)
					}
				}
				for _, k := range tc.notWant {
					if _, has := m[k]; has {
						t.Errorf("%s: %s released for scope %q", method, k, tc.scope)
					}
				}
			}
		})
	}
}

// TestSSOSecondAuthorizeSkipsLogin: once signed in, later authorization
// requests from the same browser need no password; a new browser does.
func TestSSOSecondAuthorizeSkipsLogin(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	b.obtainCode(newAuthRequest(webappID, webappRedirect, "openid"), "alice", alicePassword)

	// Another client: no login page, straight to consent.
	res := b.authorize(newAuthRequest(spaID, spaRedirect, "openid").Values)
	if res.isLoginPage() || !res.isConsentPage() {
		t.Fatalf("second authorize did not skip the login page: %d\n%s", res.Status, res.Body)
	}
	if !strings.Contains(res.Body, "Alice Liddell") {
		t.Errorf("consent page does not name the signed-in user")
	}
	// A first-party client: no login, no consent.
	p := newAuthRequest(firstPartyID, firstPartyRedirect, "openid profile")
	q := callback(t, b.authorize(p.Values))
	if q.Get("code") == "" {
		t.Fatalf("first-party SSO authorize gave no code: %v", q)
	}
	tr := env.redeemOK(firstPost, q.Get("code"), firstPartyRedirect, p.Verifier)
	if _, id := env.verifyJWT(tr.IDToken); id["sub"] != "alice" {
		t.Errorf("SSO code is for %v", id["sub"])
	}

	if res := env.newBrowser().authorize(newAuthRequest(webappID, webappRedirect, "openid").Values); !res.isLoginPage() {
		t.Errorf("a browser without the session was not asked to sign in")
	}
}

func TestConsentIsRememberedPerScope(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	b.obtainCode(newAuthRequest(webappID, webappRedirect, "openid profile"), "alice", alicePassword)

	// Same or fewer scopes: no consent page.
	for _, scope := range []string{"openid profile", "openid"} {
		res := b.authorize(newAuthRequest(webappID, webappRedirect, scope).Values)
		if q := callback(t, res); q.Get("code") == "" {
			t.Fatalf("scope %q: consent not remembered: %v", scope, q)
		}
	}
	// A new scope asks again, listing it.
	res := b.authorize(newAuthRequest(webappID, webappRedirect, "openid email").Values)
	if !res.isConsentPage() || !strings.Contains(res.Body, "email") {
		t.Fatalf("a new scope did not show the consent page:\n%s", res.Body)
	}
	if q := callback(t, b.submitConsent(res, "allow")); q.Get("code") == "" {
		t.Fatalf("consent allow gave no code: %v", q)
	}
	// Every scope consented so far is now covered.
	if q := callback(t, b.authorize(newAuthRequest(webappID, webappRedirect, "openid profile email").Values)); q.Get("code") == "" {
		t.Fatalf("merged consent not remembered: %v", q)
	}
	// prompt=consent shows the page even so.
	p := newAuthRequest(webappID, webappRedirect, "openid")
	p.Set("prompt", "consent")
	if res := b.authorize(p.Values); !res.isConsentPage() {
		t.Errorf("prompt=consent did not show the consent page")
	}
}

func TestConsentDeniedRedirectsAccessDenied(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	p := newAuthRequest(webappID, webappRedirect, "openid")
	res := b.submitLogin(b.authorize(p.Values), "alice", alicePassword)
	q := callback(t, b.submitConsent(res, "deny"))
	if q.Get("error") != "access_denied" || q.Get("state") != p.Get("state") || q.Get("iss") != testIssuer || q.Get("code") != "" {
		t.Errorf("deny: %v", q)
	}
}

var nonceAttrRE = regexp.MustCompile(`<script nonce="([^"]+)">`)

func TestResponseModeFormPost(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	p := newAuthRequest(webappID, webappRedirect, "openid")
	p.Set("response_mode", "form_post")
	res := b.signIn(p.Values, "alice", alicePassword)
	if res.Status != http.StatusOK || res.Header.Get("Location") != "" {
		t.Fatalf("form_post answered %d (Location %q)", res.Status, res.Header.Get("Location"))
	}
	action, fields := res.form(t)
	if action != webappRedirect {
		t.Errorf("form posts to %q, want %q", action, webappRedirect)
	}
	if fields.Get("code") == "" || fields.Get("state") != p.Get("state") || fields.Get("iss") != testIssuer {
		t.Errorf("form fields %v", fields)
	}
	m := nonceAttrRE.FindStringSubmatch(res.Body)
	if m == nil || !strings.Contains(res.Body, "submit()") {
		t.Fatalf("no auto-submitting script:\n%s", res.Body)
	}
	csp := res.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "'nonce-"+html.UnescapeString(m[1])+"'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q does not allow exactly the page's script nonce %s", csp, m[1])
	}
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("form_post page is cacheable")
	}
	env.redeemOK(webappBasic, fields.Get("code"), webappRedirect, p.Verifier)
}

func TestResponseModeFragment(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	p := newAuthRequest(spaID, spaRedirect, "openid")
	p.Set("response_mode", "fragment")
	res := b.signIn(p.Values, "alice", alicePassword)
	loc := res.Location(t)
	if res.Status != http.StatusSeeOther || loc.RawQuery != "" {
		t.Fatalf("fragment mode: %d %s", res.Status, loc)
	}
	frag, err := url.ParseQuery(loc.Fragment)
	if err != nil || frag.Get("code") == "" || frag.Get("state") != p.Get("state") || frag.Get("iss") != testIssuer {
		t.Fatalf("fragment %q: %v", loc.Fragment, err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != spaRedirect {
		t.Errorf("redirected to %s", got)
	}
	env.redeemOK(spaPublic, frag.Get("code"), spaRedirect, p.Verifier)
}

func TestPromptLoginAndMaxAgeForceReauthentication(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	b.obtainCode(newAuthRequest(firstPartyID, firstPartyRedirect, "openid"), "alice", alicePassword)

	p := newAuthRequest(firstPartyID, firstPartyRedirect, "openid")
	p.Set("prompt", "login")
	if res := b.authorize(p.Values); !res.isLoginPage() {
		t.Errorf("prompt=login did not show the login page")
	}

	env.clock.Advance(10 * time.Minute)
	p = newAuthRequest(firstPartyID, firstPartyRedirect, "openid")
	p.Set("max_age", "3600")
	if q := callback(t, b.authorize(p.Values)); q.Get("code") == "" {
		t.Errorf("max_age larger than the session age asked for a login: %v", q)
	}
	p = newAuthRequest(firstPartyID, firstPartyRedirect, "openid")
	p.Set("max_age", "60")
	res := b.authorize(p.Values)
	if !res.isLoginPage() {
		t.Fatalf("max_age smaller than the session age did not ask for a login")
	}
	// After signing in again the code carries the new auth_time.
	q := callback(t, b.submitLogin(res, "alice", alicePassword))
	tr := env.redeemOK(firstPost, q.Get("code"), firstPartyRedirect, p.Verifier)
	if _, id := env.verifyJWT(tr.IDToken); claimInt(t, id, "auth_time") != env.clock.Now().Unix() {
		t.Errorf("auth_time %v after re-authentication, want %d", id["auth_time"], env.clock.Now().Unix())
	}
}

func TestLogoutWithoutHintAsksForConfirmation(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	b.obtainCode(newAuthRequest(firstPartyID, firstPartyRedirect, "openid"), "alice", alicePassword)

	res := b.get(PathEndSession + "?client_id=webapp&post_logout_redirect_uri=" + url.QueryEscape(webappBye) + "&state=s1")
	if res.Status != http.StatusOK || !strings.Contains(res.Body, `name="confirm"`) {
		t.Fatalf("logout without id_token_hint did not ask for confirmation: %d\n%s", res.Status, res.Body)
	}
	// The session survives until the user confirms.
	if r := b.authorize(newAuthRequest(firstPartyID, firstPartyRedirect, "openid").Values); r.isLoginPage() {
		t.Fatalf("an unconfirmed logout ended the session")
	}
	action, fields := res.form(t)
	fields.Set("confirm", "yes")
	out := b.post(action, fields)
	loc := out.Location(t)
	if out.Status != http.StatusSeeOther || loc.Query().Get("state") != "s1" || !strings.HasPrefix(loc.String(), webappBye) {
		t.Fatalf("confirmed logout: %d %s", out.Status, loc)
	}
	if r := b.authorize(newAuthRequest(firstPartyID, firstPartyRedirect, "openid").Values); !r.isLoginPage() {
		t.Errorf("session still alive after a confirmed logout")
	}
}

// TestIssuerWithPathServesBelowIt checks an issuer with a path: endpoints
// live below it, and the login form posts back below it.
func TestIssuerWithPathServesBelowIt(t *testing.T) {
	t.Parallel()
	env := newTestServer(t, func(c *Config) { c.Issuer = "https://auth.example.com/tenant/" })
	env.issuer = "https://auth.example.com/tenant"
	if env.srv.Issuer() != env.issuer {
		t.Fatalf("issuer %q (trailing slash not trimmed)", env.srv.Issuer())
	}
	if m := env.get(PathDiscovery, nil, nil).JSON(t); m["token_endpoint"] != env.issuer+PathToken {
		t.Errorf("token_endpoint %v", m["token_endpoint"])
	}
	r := httptestRequest(http.MethodGet, "https://auth.example.com"+PathDiscovery)
	if res := env.serve(r); res.Status != http.StatusNotFound {
		t.Errorf("discovery outside the issuer path answered %d", res.Status)
	}
	r = httptestRequest(http.MethodGet, "https://auth.example.com/tenantX"+PathDiscovery)
	if res := env.serve(r); res.Status != http.StatusNotFound {
		t.Errorf("a sibling path of the issuer answered %d", res.Status)
	}
	b := env.newBrowser()
	p := newAuthRequest(webappID, webappRedirect, "openid")
	res := b.authorize(p.Values)
	if action, _ := res.form(t); action != "/tenant"+PathLogin {
		t.Errorf("login form posts to %q", action)
	}
	code := b.obtainCode(p, "alice", alicePassword)
	tr := env.redeemOK(webappBasic, code, webappRedirect, p.Verifier)
	if _, id := env.verifyJWT(tr.IDToken); id["iss"] != env.issuer {
		t.Errorf("ID token iss %v", id["iss"])
	}
}

// TestIssuerPathRedirectsStayBelowTheIssuer: when the issuer has a path,
// the ServeMux's path-cleaning redirects must not send the browser outside
// it (to another application on the same origin).
func TestIssuerPathRedirectsStayBelowTheIssuer(t *testing.T) {
	t.Parallel()
	env := newTestServer(t, func(c *Config) { c.Issuer = "https://auth.example.com/tenant" })
	for _, p := range []string{"/tenant", "/tenant//authorize", "/tenant/x/../authorize", "/tenant/assets"} {
		r := httptestRequest(http.MethodGet, "https://auth.example.com/")
		r.URL.Path = p
		res := env.serve(r)
		if loc := res.Header.Get("Location"); loc != "" && !strings.HasPrefix(loc, "/tenant/") && !strings.HasPrefix(loc, "https://auth.example.com/tenant/") {
			t.Errorf("%s redirected outside the issuer to %q (%d)", p, loc, res.Status)
		}
	}
}
