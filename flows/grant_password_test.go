package flows

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/store"
)

// Clients of the password grant tests, registered by withPasswordClients.
const (
	legacyID     = "legacy"
	legacySecret = "legacy-secret"
	// legacyPublicID is a public client (a trusted native app) allowed
	// the password grant.
	legacyPublicID = "legacy-native"
)

var legacyBasic = clientCred{legacyID, legacySecret, "basic"}

// withPasswordClients adds the clients allowed the password grant.
func withPasswordClients(tb testing.TB, e *testEnv) *testEnv {
	tb.Helper()
	for _, c := range []*store.Client{
		{
			ID: legacyID, Name: "Legacy App", SecretDigest: DigestSecret(legacySecret),
			TokenEndpointAuthMethod: AuthMethodSecretBasic,
			GrantTypes:              []string{GrantPassword, GrantRefreshToken},
		},
		{
			ID: legacyPublicID, Name: "Legacy Native", TokenEndpointAuthMethod: AuthMethodNone,
			GrantTypes: []string{GrantPassword},
		},
	} {
		if err := e.store.PutClient(context.Background(), c); err != nil {
			tb.Fatal(err)
		}
	}
	return e
}

// passwordFrom posts a password grant request as c from the client
// address ip (the throttle keys on it).
func (e *testEnv) passwordFrom(ip string, c clientCred, username, password, scope string, extra url.Values) *response {
	e.tb.Helper()
	form := url.Values{"grant_type": {GrantPassword}, "username": {username}, "password": {password}}
	if scope != "" {
		form.Set("scope", scope)
	}
	for k, v := range extra {
		form[k] = v
	}
	h := c.apply(form)
	r := httptest.NewRequest(http.MethodPost, e.url(PathToken), strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range h {
		r.Header[k] = v
	}
	r.RemoteAddr = ip
	return e.serve(r)
}

func (e *testEnv) password(c clientCred, username, password, scope string) *response {
	e.tb.Helper()
	return e.passwordFrom(defaultTestRemoteAddr, c, username, password, scope, nil)
}

func TestPasswordGrantIssuesTokens(t *testing.T) {
	t.Parallel()
	env := withPasswordClients(t, newTestServer(t))
	res := env.passwordFrom(defaultTestRemoteAddr, legacyBasic, "alice", alicePassword,
		"openid profile email offline_access read:items", url.Values{"audience": {apiID1}})
	if res.Status != http.StatusOK {
		t.Fatalf("password grant: %d %s", res.Status, res.Body)
	}
	tr := res.JSON(t)
	if tr["token_type"] != "Bearer" || tr["refresh_token"] == nil || tr["id_token"] == nil {
		t.Fatalf("response lacks tokens: %s", res.Body)
	}
	_, at := env.verifyJWT(tr["access_token"].(string))
	if at["sub"] != "alice" || at["client_id"] != legacyID || at["scope"] != "openid profile email offline_access read:items" {
		t.Errorf("access token claims: %v", at)
	}
	if aud, _ := at["aud"].([]any); len(aud) != 1 || aud[0] != apiID1 {
		t.Errorf("access token aud %v, want [%s]", at["aud"], apiID1)
	}
	_, id := env.verifyJWT(tr["id_token"].(string))
	if id["sub"] != "alice" || id["aud"] != legacyID || id["email"] != "alice@example.com" || id["at_hash"] != atHash(tr["access_token"].(string)) {
		t.Errorf("ID token claims: %v", id)
	}
	if claimInt(t, id, "auth_time") != env.clock.Now().Unix() {
		t.Errorf("auth_time %v, want now", id["auth_time"])
	}
	// The refresh token works (offline_access) and rotates.
	ref := env.refresh(legacyBasic, tr["refresh_token"].(string))
	if ref.Status != http.StatusOK {
		t.Fatalf("refresh: %d %s", ref.Status, ref.Body)
	}
	if !env.active(ref.JSON(t)["access_token"].(string)) {
		t.Errorf("refreshed access token is not active")
	}
}

func TestPasswordGrantRefreshTokenOnlyWithOfflineAccess(t *testing.T) {
	t.Parallel()
	env := withPasswordClients(t, newTestServer(t))
	res := env.password(legacyBasic, "alice", alicePassword, "openid")
	if res.Status != http.StatusOK {
		t.Fatalf("password grant: %d %s", res.Status, res.Body)
	}
	if _, ok := res.JSON(t)["refresh_token"]; ok {
		t.Errorf("refresh token issued without offline_access: %s", res.Body)
	}
	// A public client allowed the password grant but not refresh_token
	// gets no refresh token even when it asks for offline_access.
	res = env.password(clientCred{legacyPublicID, "", "none"}, "bob", bobPassword, "openid offline_access")
	if res.Status != http.StatusOK {
		t.Fatalf("public client password grant: %d %s", res.Status, res.Body)
	}
	if _, ok := res.JSON(t)["refresh_token"]; ok {
		t.Errorf("refresh token issued to a client without the refresh_token grant: %s", res.Body)
	}
}

func TestPasswordGrantRefusedForClientsWithoutIt(t *testing.T) {
	t.Parallel()
	env := withPasswordClients(t, newTestServer(t))
	for _, c := range []clientCred{webappBasic, spaPublic, backendBasic} {
		res := env.password(c, "alice", alicePassword, "openid")
		wantOAuthError(t, res, http.StatusBadRequest, "unauthorized_client")
	}
}

// TestPasswordGrantSameAnswerForUnknownUsers: a wrong password, an unknown
// user and a disabled user get byte-identical answers.
func TestPasswordGrantSameAnswerForUnknownUsers(t *testing.T) {
	t.Parallel()
	env := withPasswordClients(t, newTestServer(t))
	var bodies []string
	for i, tc := range []struct{ username, password string }{
		{"alice", "wrong password"},
		{"nobody-" + randomString(), "wrong password"},
		{"disabled", alicePassword},
	} {
		res := env.passwordFrom(fmt.Sprintf("198.51.100.%d:1000", i+1), legacyBasic, tc.username, tc.password, "openid", nil)
		wantOAuthError(t, res, http.StatusBadRequest, "invalid_grant")
		bodies = append(bodies, res.Body)
	}
	for _, b := range bodies[1:] {
		if b != bodies[0] {
			t.Errorf("answers differ, revealing which users exist:\n%s\n%s", bodies[0], b)
		}
	}
}

// TestPasswordGrantLocksOutAfterFailures: after five failures the right
// password is refused too, for an unknown user in the same words, until
// the bucket refills.
func TestPasswordGrantLocksOutAfterFailures(t *testing.T) {
	t.Parallel()
	env := withPasswordClients(t, newTestServer(t))
	ghost := "nobody-" + randomString()
	for i := 1; i <= 5; i++ {
		for _, u := range []string{"alice", ghost} {
			res := env.passwordFrom(fmt.Sprintf("198.51.100.%d:1000", i), legacyBasic, u, fmt.Sprintf("guess %d", i), "openid", nil)
			wantOAuthError(t, res, http.StatusBadRequest, "invalid_grant")
		}
	}
	locked := env.passwordFrom("203.0.113.9:2000", legacyBasic, "alice", alicePassword, "openid", nil)
	wantOAuthError(t, locked, http.StatusBadRequest, "invalid_grant")
	if !strings.Contains(locked.Body, "too many") {
		t.Errorf("locked-out answer does not say why: %s", locked.Body)
	}
	lockedGhost := env.passwordFrom("203.0.113.9:2000", legacyBasic, ghost, alicePassword, "openid", nil)
	if lockedGhost.Body != locked.Body {
		t.Errorf("lockout answers differ for a real and an unknown user:\n%s\n%s", locked.Body, lockedGhost.Body)
	}
	// Another user is not affected.
	if res := env.password(legacyBasic, "bob", bobPassword, "openid"); res.Status != http.StatusOK {
		t.Errorf("bob was locked out with alice: %d %s", res.Status, res.Body)
	}
	env.clock.Advance(61 * time.Second)
	if res := env.password(legacyBasic, "alice", alicePassword, "openid"); res.Status != http.StatusOK {
		t.Errorf("the right password after the refill: %d %s", res.Status, res.Body)
	}
}

// TestPasswordGrantSharesThrottleWithLoginPage: failures at the grant lock
// the login page and failures at the login page lock the grant.
func TestPasswordGrantSharesThrottleWithLoginPage(t *testing.T) {
	t.Parallel()
	env := withPasswordClients(t, newTestServer(t))
	for i := 1; i <= 5; i++ {
		env.passwordFrom(fmt.Sprintf("198.51.100.%d:1000", i), legacyBasic, "alice", "guess", "openid", nil)
	}
	b := env.newBrowser("203.0.113.9:2000")
	if res := b.submitLogin(openLoginPage(t, b), "alice", alicePassword); res.Status != http.StatusTooManyRequests {
		t.Errorf("login page after five password grant failures: %d", res.Status)
	}
	for i := 1; i <= 5; i++ {
		b := env.newBrowser(fmt.Sprintf("198.51.100.%d:1000", i))
		b.submitLogin(openLoginPage(t, b), "bob", "guess")
	}
	res := env.passwordFrom("203.0.113.9:2000", legacyBasic, "bob", bobPassword, "openid", nil)
	wantOAuthError(t, res, http.StatusBadRequest, "invalid_grant")
	if !strings.Contains(res.Body, "too many") {
		t.Errorf("password grant after five login page failures: %s", res.Body)
	}
}

func TestPasswordGrantThrottlesPerIP(t *testing.T) {
	t.Parallel()
	env := withPasswordClients(t, newTestServer(t, func(c *Config) { c.LoginThrottle = ThrottleConfig{PerIP: 3} }))
	const attacker = "198.51.100.7:1000"
	for i := 0; i < 3; i++ { // spraying: one guess per user
		env.passwordFrom(attacker, legacyBasic, fmt.Sprintf("user%d", i), "Spring2024!", "openid", nil)
	}
	res := env.passwordFrom(attacker, legacyBasic, "alice", alicePassword, "openid", nil)
	if res.Status == http.StatusOK || !strings.Contains(res.Body, "too many") {
		t.Errorf("fourth attempt from a spraying IP: %d %s", res.Status, res.Body)
	}
	if res := env.passwordFrom("203.0.113.9:2000", legacyBasic, "alice", alicePassword, "openid", nil); res.Status != http.StatusOK {
		t.Errorf("another IP was throttled: %d %s", res.Status, res.Body)
	}
}

func TestPasswordGrantRequestErrors(t *testing.T) {
	t.Parallel()
	env := withPasswordClients(t, newTestServer(t))
	long := strings.Repeat("x", maxCredentialLen+1)
	for _, tc := range []struct {
		name, username, password, scope string
		extra                           url.Values
		code                            string
	}{
		{"missing username", "", alicePassword, "openid", nil, "invalid_request"},
		{"missing password", "alice", "", "openid", nil, "invalid_request"},
		{"oversized password", "alice", long, "openid", nil, "invalid_request"},
		{"unknown scope", "alice", alicePassword, "openid launch:missiles", nil, "invalid_scope"},
		{"unknown audience", "alice", alicePassword, "openid", url.Values{"audience": {"https://nowhere.example"}}, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := env.passwordFrom(defaultTestRemoteAddr, legacyBasic, tc.username, tc.password, tc.scope, tc.extra)
			wantOAuthError(t, res, http.StatusBadRequest, tc.code)
		})
	}
	// A wrong client secret is invalid_client before any password is
	// checked (and spends nothing of the user's throttle).
	res := env.password(clientCred{legacyID, "wrong", "basic"}, "alice", alicePassword, "openid")
	wantOAuthError(t, res, http.StatusUnauthorized, "invalid_client")
}

func TestPasswordGrantInDiscovery(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	res := env.get(PathDiscovery, nil, nil)
	grants, _ := res.JSON(t)["grant_types_supported"].([]any)
	found := false
	for _, g := range grants {
		found = found || g == GrantPassword
	}
	if !found {
		t.Errorf("grant_types_supported %v lacks password", grants)
	}
}
