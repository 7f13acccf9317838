package tests

import (
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// passwordCaddyfile is the embedded server with a trusted legacy client
// allowed the password grant (and refresh tokens), a public native app
// allowed it too, and a web app that is not.
const passwordCaddyfile = `{
	admin 127.0.0.1:{{.AdminPort}}
	portcullis {
		storage bbolt {{.Dir}}/portcullis.db
		issuer http://127.0.0.1:{{.Port}}
		insecure_cookies
		user alice {
			password alice-password
			email alice@example.com
			name "Alice Example"
		}
		client legacy {
			name "Legacy App"
			secret legacy-secret
			grant_types password refresh_token
		}
		client legacy-native {
			public
			grant_types password
		}
		client webapp {
			secret webapp-secret
			redirect_uris http://127.0.0.1:{{.Port}}/callback
		}
		api https://api.example.com {
			scopes read:items
		}
	}
}
http://127.0.0.1:{{.Port}} {
	bind 127.0.0.1
	oauth_server
}
`

const (
	legacyID     = "legacy"
	legacySecret = "legacy-secret"
)

func passwordForm(username, password, scope string) url.Values {
	return url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}, "scope": {scope}}
}

// TestPasswordGrantEndToEnd signs alice in with the password grant against
// the real binary: tokens with offline_access, a refresh, the ID token's
// claims, and the refusals (wrong client, wrong password, unknown user).
func TestPasswordGrantEndToEnd(t *testing.T) {
	t.Parallel()
	g := StartGateway(t, passwordCaddyfile)
	d := g.Discover(t)
	jwks := FetchJWKS(t, d.JWKSURI)

	form := passwordForm(aliceUsername, alicePassword, "openid email offline_access read:items")
	form.Set("audience", apiAudience)
	ts := TokenRequest(t, d, form, legacyID, legacySecret)
	if ts.RefreshToken == "" || ts.IDToken == "" {
		t.Fatalf("password grant lacks a refresh or ID token: %v", ts.Raw)
	}
	id, err := VerifyJWT(ts.IDToken, jwks)
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	if id.Claims["sub"] != aliceUsername || id.Claims["aud"] != legacyID || id.Claims["email"] != aliceEmail {
		t.Errorf("ID token claims: %v", id.Claims)
	}
	at, err := VerifyJWT(ts.AccessToken, jwks)
	if err != nil {
		t.Fatalf("access token: %v", err)
	}
	if !audContains(at.Claims["aud"], apiAudience) || at.Claims["scope"] != "openid email offline_access read:items" {
		t.Errorf("access token claims: %v", at.Claims)
	}
	refreshed := TokenRequest(t, d, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ts.RefreshToken}}, legacyID, legacySecret)
	if refreshed.RefreshToken == "" || refreshed.RefreshToken == ts.RefreshToken {
		t.Errorf("refresh did not rotate the refresh token: %v", refreshed.Raw)
	}

	// A public client allowed the grant authenticates with client_id only.
	pub := passwordForm(aliceUsername, alicePassword, "openid")
	pub.Set("client_id", "legacy-native")
	if resp, obj := PostForm(t, d.TokenEndpoint, pub, "", ""); resp.StatusCode != http.StatusOK || obj["access_token"] == nil {
		t.Errorf("public client password grant: %d %v", resp.StatusCode, obj)
	}

	refusals := []struct {
		name             string
		client, secret   string
		username, passwd string
		status           int
		code             string
	}{
		{"client without the grant", webappID, webappSecret, aliceUsername, alicePassword, 400, "unauthorized_client"},
		{"wrong client secret", legacyID, "wrong", aliceUsername, alicePassword, 401, "invalid_client"},
		{"wrong password", legacyID, legacySecret, aliceUsername, "wrong", 400, "invalid_grant"},
		{"unknown user", legacyID, legacySecret, "mallory", "wrong", 400, "invalid_grant"},
	}
	for _, tc := range refusals {
		resp, obj := PostForm(t, d.TokenEndpoint, passwordForm(tc.username, tc.passwd, "openid"), tc.client, tc.secret)
		if resp.StatusCode != tc.status || obj["error"] != tc.code {
			t.Errorf("%s: %d %v, want %d %s", tc.name, resp.StatusCode, obj, tc.status, tc.code)
		}
	}
}

// TestPasswordGrantLockoutEndToEnd: five wrong passwords lock the account
// for the password grant and the login page alike, with the same answer
// an unknown user gets after five failures.
func TestPasswordGrantLockoutEndToEnd(t *testing.T) {
	t.Parallel()
	g := StartGateway(t, passwordCaddyfile)
	d := g.Discover(t)
	var unknownAnswer, wrongAnswer string
	for i := 1; i <= 5; i++ {
		_, obj := PostForm(t, d.TokenEndpoint, passwordForm(aliceUsername, fmt.Sprintf("guess %d", i), "openid"), legacyID, legacySecret)
		wrongAnswer = fmt.Sprint(obj)
		_, obj = PostForm(t, d.TokenEndpoint, passwordForm("mallory", fmt.Sprintf("guess %d", i), "openid"), legacyID, legacySecret)
		unknownAnswer = fmt.Sprint(obj)
		if wrongAnswer != unknownAnswer {
			t.Fatalf("attempt %d: a wrong password and an unknown user are told apart:\n%s\n%s", i, wrongAnswer, unknownAnswer)
		}
	}
	resp, obj := PostForm(t, d.TokenEndpoint, passwordForm(aliceUsername, alicePassword, "openid"), legacyID, legacySecret)
	if resp.StatusCode != http.StatusBadRequest || obj["error"] != "invalid_grant" || !strings.Contains(fmt.Sprint(obj["error_description"]), "too many") {
		t.Fatalf("the right password after five failures: %d %v", resp.StatusCode, obj)
	}
	_, ghost := PostForm(t, d.TokenEndpoint, passwordForm("mallory", alicePassword, "openid"), legacyID, legacySecret)
	// The waits differ by the time between the two users' failures; the
	// answers must not differ otherwise.
	if withoutDigits(fmt.Sprint(ghost)) != withoutDigits(fmt.Sprint(obj)) {
		t.Errorf("locked-out answers differ for a real and an unknown user:\n%v\n%v", obj, ghost)
	}
	// The login page shares the lockout.
	q := url.Values{"client_id": {webappID}, "response_type": {"code"}, "scope": {"openid"},
		"redirect_uri": {g.URL("/callback")}, "state": {"s"}}
	browser := NewBrowser(t)
	_, page := doRequest(t, browser, http.MethodGet, d.AuthorizationEndpoint+"?"+q.Encode(), nil, nil)
	forms, err := ParseForms(mustParse(t, d.AuthorizationEndpoint), page)
	if err != nil || len(forms) == 0 {
		t.Fatalf("login page has no form: %v\n%s", err, page)
	}
	login := forms[0]
	login.Fields.Set("username", aliceUsername)
	login.Fields.Set("password", alicePassword)
	res, body := doRequest(t, browser, http.MethodPost, login.Action.String(), strings.NewReader(login.Fields.Encode()),
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	if res.StatusCode != http.StatusTooManyRequests {
		t.Errorf("login page after five password grant failures: %d %s", res.StatusCode, pageText(body))
	}
}

func mustParse(t testing.TB, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestOpenIDClientPasswordGrant runs tests/interop/password.mjs: the
// certified openid-client library makes a password grant request (its
// generic grant request), refreshes, reads userinfo, and sees a wrong
// password refused.
func TestOpenIDClientPasswordGrant(t *testing.T) {
	node := requireNode(t)
	dir, err := filepath.Abs(interopDir)
	if err != nil {
		t.Fatal(err)
	}
	ensureNodeModules(t, dir)
	g := StartGateway(t, passwordCaddyfile)
	runNodeScript(t, node, dir, "password.mjs",
		"ISSUER="+g.BaseURL,
		"USERNAME="+aliceUsername,
		"PASSWORD="+alicePassword,
		"EXPECTED_EMAIL="+aliceEmail,
		"CLIENT_ID="+legacyID,
		"CLIENT_SECRET="+legacySecret,
	)
}

// withoutDigits replaces every run of digits with #.
func withoutDigits(s string) string {
	return regexp.MustCompile(`[0-9]+`).ReplaceAllString(s, "#")
}

// TestLoginThrottleIsConfigurable: `login_throttle 2 20 1m` locks a user
// out after two failures instead of five.
func TestLoginThrottleIsConfigurable(t *testing.T) {
	t.Parallel()
	g := StartGateway(t, strings.Replace(passwordCaddyfile, "insecure_cookies", "insecure_cookies\n\t\tlogin_throttle 2 20 1m", 1))
	d := g.Discover(t)
	for i := 1; i <= 2; i++ {
		PostForm(t, d.TokenEndpoint, passwordForm(aliceUsername, fmt.Sprintf("guess %d", i), "openid"), legacyID, legacySecret)
	}
	resp, obj := PostForm(t, d.TokenEndpoint, passwordForm(aliceUsername, alicePassword, "openid"), legacyID, legacySecret)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(fmt.Sprint(obj["error_description"]), "too many") {
		t.Fatalf("the right password after two failures with login_throttle 2: %d %v", resp.StatusCode, obj)
	}
}
