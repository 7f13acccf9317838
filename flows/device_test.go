package flows

// The Device Authorization Grant (RFC 8628): the device authorization
// endpoint, the verification page and the token endpoint's polling, each
// security rule in a test of its own that tries the attack.

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/store"
)

// The device clients the tests add to the seeded world.
const (
	// tvID is a public client with the device grant and refresh tokens.
	tvID = "tv"
	// consoleID is a second public device client, to present tv's codes.
	consoleID = "console"
	// cliID is a confidential device client.
	cliID     = "cli"
	cliSecret = "cli-secret"
)

var (
	tvPublic      = clientCred{tvID, "", "none"}
	consolePublic = clientCred{consoleID, "", "none"}
	cliBasic      = clientCred{cliID, cliSecret, "basic"}
)

// newDeviceServer is newTestServer with the device clients registered.
func newDeviceServer(tb testing.TB, opts ...envOption) *testEnv {
	tb.Helper()
	env := newTestServer(tb, opts...)
	addDeviceClients(tb, env.store)
	return env
}

func addDeviceClients(tb testing.TB, st store.Store) {
	tb.Helper()
	for _, c := range []*store.Client{
		{ID: tvID, Name: "Living Room TV", TokenEndpointAuthMethod: AuthMethodNone,
			GrantTypes: []string{GrantDeviceCode, GrantRefreshToken}},
		{ID: consoleID, Name: "Game Console", TokenEndpointAuthMethod: AuthMethodNone,
			GrantTypes: []string{GrantDeviceCode}},
		{ID: cliID, Name: "Deploy CLI", SecretDigest: DigestSecret(cliSecret), TokenEndpointAuthMethod: AuthMethodSecretBasic,
			GrantTypes: []string{GrantDeviceCode}},
	} {
		if err := st.PutClient(context.Background(), c); err != nil {
			tb.Fatal(err)
		}
	}
}

// deviceAuth is a device authorization response (RFC 8628 §3.2).
type deviceAuth struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int64  `json:"expires_in"`
	Interval                int64  `json:"interval"`
	raw                     *response
}

// deviceAuthorize asks the device authorization endpoint for a code as c.
func (e *testEnv) deviceAuthorize(c clientCred, form url.Values) *response {
	e.tb.Helper()
	return e.backChannel(PathDeviceAuthorization, c, form)
}

// deviceCode asks for a code for scope as c and requires success.
func (e *testEnv) deviceCode(c clientCred, scope string) *deviceAuth {
	e.tb.Helper()
	res := e.deviceAuthorize(c, url.Values{"scope": {scope}})
	if res.Status != http.StatusOK {
		e.tb.Fatalf("device authorization as %s: %d %s", c.id, res.Status, res.Body)
	}
	da := &deviceAuth{raw: res}
	if err := json.Unmarshal([]byte(res.Body), da); err != nil {
		e.tb.Fatalf("device authorization response: %v\n%s", err, res.Body)
	}
	return da
}

func deviceForm(deviceCode string) url.Values {
	return url.Values{"grant_type": {GrantDeviceCode}, "device_code": {deviceCode}}
}

// poll polls the token endpoint with deviceCode as c.
func (e *testEnv) poll(c clientCred, deviceCode string) *response {
	e.tb.Helper()
	return e.token(c, deviceForm(deviceCode))
}

// pollAfterInterval waits (on the test clock) for the device's interval,
// then polls.
func (e *testEnv) pollAfterInterval(c clientCred, da *deviceAuth) *response {
	e.tb.Helper()
	e.clock.Advance(time.Duration(da.Interval) * time.Second)
	return e.poll(c, da.DeviceCode)
}

// Device verification page kinds, recognised by their form fields.
func (r *response) isDeviceCodePage() bool { return strings.Contains(r.Body, `name="user_code"`) }
func (r *response) isDeviceConfirmPage() bool {
	return strings.Contains(r.Body, `name="step" value="confirm"`)
}

// openDevice opens the verification page, as verification_uri_complete
// when userCode is set.
func (b *browser) openDevice(userCode string) *response {
	b.env.tb.Helper()
	target := b.env.url(PathDevice)
	if userCode != "" {
		target += "?" + url.Values{"user_code": {userCode}}.Encode()
	}
	res := b.get(target)
	if res.Status != http.StatusOK || !res.isDeviceCodePage() {
		b.env.tb.Fatalf("GET %s: %d, not the code form:\n%s", target, res.Status, res.Body)
	}
	return res
}

// enterCode submits userCode on the code form of page.
func (b *browser) enterCode(page *response, userCode string) *response {
	b.env.tb.Helper()
	if !page.isDeviceCodePage() {
		b.env.tb.Fatalf("expected the code form, got %d:\n%s", page.Status, page.Body)
	}
	action, fields := page.form(b.env.tb)
	fields.Set("user_code", userCode)
	return b.post(action, fields)
}

// decide posts the confirmation form of page with decision.
func (b *browser) decide(page *response, decision string) *response {
	b.env.tb.Helper()
	if !page.isDeviceConfirmPage() {
		b.env.tb.Fatalf("expected the confirmation page, got %d:\n%s", page.Status, page.Body)
	}
	action, fields := page.form(b.env.tb)
	fields.Set("decision", decision)
	return b.post(action, fields)
}

// confirmPage walks the verification page to the confirmation page:
// enter userCode, sign in as username when asked.
func (b *browser) confirmPage(userCode, username, password string) *response {
	b.env.tb.Helper()
	res := b.enterCode(b.openDevice(""), userCode)
	if res.isLoginPage() {
		res = b.submitLogin(res, username, password)
	}
	if !res.isDeviceConfirmPage() {
		b.env.tb.Fatalf("expected the confirmation page, got %d:\n%s", res.Status, res.Body)
	}
	return res
}

// approve walks the verification page and allows or denies.
func (b *browser) approve(userCode, username, password, decision string) *response {
	b.env.tb.Helper()
	res := b.decide(b.confirmPage(userCode, username, password), decision)
	if res.Status != http.StatusOK {
		b.env.tb.Fatalf("decision %s: %d\n%s", decision, res.Status, res.Body)
	}
	return res
}

// tokenResultOf decodes a successful token response.
func tokenResultOf(tb testing.TB, res *response) *tokenResult {
	tb.Helper()
	if res.Status != http.StatusOK {
		tb.Fatalf("token response %d %s", res.Status, res.Body)
	}
	tr := &tokenResult{raw: res}
	if err := json.Unmarshal([]byte(res.Body), tr); err != nil {
		tb.Fatalf("token response: %v\n%s", err, res.Body)
	}
	return tr
}

// TestDeviceFlowWithApproval is the whole story: a TV asks for a code, the
// user opens verification_uri_complete, confirms the code, signs in,
// approves, and the TV's next poll gets an access token for the API, an
// ID token and a refresh token that works.
func TestDeviceFlowWithApproval(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t)
	da := env.deviceCode(tvPublic, "openid profile offline_access read:items")

	if cc := da.raw.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("device authorization response Cache-Control %q, want no-store", cc)
	}
	if len(da.DeviceCode) < 43 {
		t.Errorf("device_code %q is short", da.DeviceCode)
	}
	if len(da.UserCode) != 9 || da.UserCode[4] != '-' {
		t.Errorf("user_code %q is not XXXX-XXXX", da.UserCode)
	}
	for _, c := range strings.ReplaceAll(da.UserCode, "-", "") {
		if !strings.ContainsRune(userCodeAlphabet, c) {
			t.Errorf("user_code %q has %q, outside the RFC 8628 §6.1 alphabet", da.UserCode, c)
		}
	}
	if da.VerificationURI != testIssuer+PathDevice {
		t.Errorf("verification_uri %q", da.VerificationURI)
	}
	if want := testIssuer + PathDevice + "?user_code=" + da.UserCode; da.VerificationURIComplete != want {
		t.Errorf("verification_uri_complete %q, want %q", da.VerificationURIComplete, want)
	}
	if da.ExpiresIn != 600 || da.Interval != 5 {
		t.Errorf("expires_in %d, interval %d; want 600 and 5", da.ExpiresIn, da.Interval)
	}
	wantOAuthError(t, env.poll(tvPublic, da.DeviceCode), http.StatusBadRequest, "authorization_pending")

	b := env.newBrowser()
	form := b.get(da.VerificationURIComplete)
	if !form.isDeviceCodePage() || !strings.Contains(form.Body, `value="`+da.UserCode+`"`) {
		t.Fatalf("verification_uri_complete does not show the code form pre-filled:\n%s", form.Body)
	}
	action, fields := form.form(t)
	fields.Set("user_code", da.UserCode) // the pre-filled code, confirmed as it is
	login := b.post(action, fields)
	if !login.isLoginPage() || !strings.Contains(login.Body, "Living Room TV") {
		t.Fatalf("after the code: %d, not the sign-in form naming the client:\n%s", login.Status, login.Body)
	}
	confirm := b.submitLogin(login, "alice", alicePassword)
	if !confirm.isDeviceConfirmPage() {
		t.Fatalf("after signing in: %d, not the confirmation page:\n%s", confirm.Status, confirm.Body)
	}
	for _, want := range []string{"Living Room TV", da.UserCode, "Items API", "Sign you in", "See your name and username",
		"Stay connected when you are not using it", "Alice Liddell", `value="allow"`, `value="deny"`} {
		if !strings.Contains(confirm.Body, want) {
			t.Errorf("the confirmation page does not show %q", want)
		}
	}
	done := b.decide(confirm, "allow")
	if done.Status != http.StatusOK || !strings.Contains(done.Body, "return to your device") {
		t.Fatalf("after approving: %d\n%s", done.Status, done.Body)
	}

	tr := tokenResultOf(t, env.pollAfterInterval(tvPublic, da))
	if tr.TokenType != "Bearer" || tr.Scope != "openid profile offline_access read:items" {
		t.Errorf("token_type %q scope %q", tr.TokenType, tr.Scope)
	}
	typ, at := env.verifyJWT(tr.AccessToken)
	if typ != "at+jwt" || at["sub"] != "alice" || at["client_id"] != tvID || toStrings(at["aud"])[0] != apiID1 {
		t.Errorf("access token typ %q claims %v", typ, at)
	}
	_, id := env.verifyJWT(tr.IDToken)
	if id["sub"] != "alice" || id["aud"] != tvID || id["preferred_username"] != "alice" || id["sid"] == nil || id["auth_time"] == nil {
		t.Errorf("ID token claims %v", id)
	}
	if tr.RefreshToken == "" {
		t.Fatal("no refresh token for offline_access")
	}
	refreshed := env.refresh(tvPublic, tr.RefreshToken)
	if refreshed.Status != http.StatusOK {
		t.Errorf("refreshing the device's token: %d %s", refreshed.Status, refreshed.Body)
	}
}

// TestDeviceFlowReusesTheSSOSession: a browser already signed in goes from
// the code straight to the confirmation page.
func TestDeviceFlowReusesTheSSOSession(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t)
	b := env.newBrowser()
	env.webappTokens(b, "openid") // signs alice in
	da := env.deviceCode(tvPublic, "openid")
	res := b.enterCode(b.openDevice(""), strings.ToLower(strings.ReplaceAll(da.UserCode, "-", " ")))
	if !res.isDeviceConfirmPage() {
		t.Fatalf("signed-in browser after the code (typed in lower case, with a space): %d\n%s", res.Status, res.Body)
	}
	b.decide(res, "allow")
	tokenResultOf(t, env.pollAfterInterval(tvPublic, da))
}

// TestDeviceFlowForAConfidentialClient: a device client with a secret
// authenticates at both endpoints.
func TestDeviceFlowForAConfidentialClient(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t)
	wantOAuthError(t, env.deviceAuthorize(clientCred{cliID, "wrong", "basic"}, url.Values{"scope": {"openid"}}), http.StatusUnauthorized, "invalid_client")
	wantOAuthError(t, env.deviceAuthorize(clientCred{cliID, "", "none"}, url.Values{"scope": {"openid"}}), http.StatusUnauthorized, "invalid_client")
	da := env.deviceCode(cliBasic, "openid")
	env.newBrowser().approve(da.UserCode, "alice", alicePassword, "allow")
	wantOAuthError(t, env.poll(clientCred{cliID, "", "none"}, da.DeviceCode), http.StatusUnauthorized, "invalid_client")
	tr := tokenResultOf(t, env.pollAfterInterval(cliBasic, da))
	if tr.RefreshToken != "" {
		t.Errorf("a refresh token for a client without the refresh_token grant")
	}
}

// TestDeviceGrantBindsTokensToTheDPoPKey: RFC 9449 §5 applies to the
// device grant as to the others.
func TestDeviceGrantBindsTokensToTheDPoPKey(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t)
	key := env.newDPoPKey()
	da := env.deviceCode(tvPublic, "openid offline_access")
	env.newBrowser().approve(da.UserCode, "alice", alicePassword, "allow")
	env.clock.Advance(5 * time.Second)
	tr := env.dpopTokenOK(tvPublic, deviceForm(da.DeviceCode), key.tokenProof())
	if tr.TokenType != "DPoP" {
		t.Errorf("token_type %q, want DPoP", tr.TokenType)
	}
	if _, claims := env.verifyJWT(tr.AccessToken); cnfJKT(claims) != key.jkt {
		t.Errorf("access token cnf %v, want jkt %s", claims["cnf"], key.jkt)
	}
	// A public client's refresh token is bound too: without the key it fails.
	if res := env.refresh(tvPublic, tr.RefreshToken); res.Status == http.StatusOK {
		t.Errorf("the DPoP-bound refresh token was refreshed without a proof")
	}
}

// TestDeviceAuthorizationRequestValidation: client mistakes get RFC 6749
// §5.2 errors, never a 500.
func TestDeviceAuthorizationRequestValidation(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t)
	cases := []struct {
		name   string
		c      clientCred
		form   url.Values
		status int
		code   string
	}{
		{"no client", noClientAuth, url.Values{"scope": {"openid"}}, 401, "invalid_client"},
		{"unknown client", clientCred{"nobody", "", "none"}, url.Values{"scope": {"openid"}}, 401, "invalid_client"},
		{"unknown scope", tvPublic, url.Values{"scope": {"openid launch:missiles"}}, 400, "invalid_scope"},
		{"bad scope syntax", tvPublic, url.Values{"scope": {"open\"id"}}, 400, "invalid_scope"},
		{"unknown audience", tvPublic, url.Values{"scope": {"openid"}, "audience": {"https://nope.example"}}, 400, "invalid_request"},
		{"unknown resource", tvPublic, url.Values{"scope": {"openid"}, "resource": {"https://nope.example"}}, 400, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantOAuthError(t, env.deviceAuthorize(tc.c, tc.form), tc.status, tc.code)
		})
	}
	t.Run("GET", func(t *testing.T) {
		res := env.get(PathDeviceAuthorization, url.Values{"client_id": {tvID}}, nil)
		wantOAuthError(t, res, http.StatusMethodNotAllowed, "invalid_request")
	})
	t.Run("JSON body", func(t *testing.T) {
		wantOAuthError(t, env.postRaw(PathDeviceAuthorization, "application/json", `{"client_id":"tv"}`, nil), 400, "invalid_request")
	})
	t.Run("repeated scope", func(t *testing.T) {
		res := env.postRaw(PathDeviceAuthorization, "application/x-www-form-urlencoded", "client_id=tv&scope=openid&scope=profile", nil)
		wantOAuthError(t, res, 400, "invalid_request")
	})
	t.Run("audience by resource", func(t *testing.T) {
		res := env.deviceAuthorize(tvPublic, url.Values{"scope": {"read:items"}, "resource": {apiID1}})
		if res.Status != http.StatusOK {
			t.Fatalf("resource=%s: %d %s", apiID1, res.Status, res.Body)
		}
	})
	t.Run("discovery", func(t *testing.T) {
		m := env.get(PathDiscovery, nil, nil).JSON(t)
		if m["device_authorization_endpoint"] != testIssuer+PathDeviceAuthorization {
			t.Errorf("device_authorization_endpoint = %v", m["device_authorization_endpoint"])
		}
		found := false
		for _, gt := range toStrings(m["grant_types_supported"]) {
			found = found || gt == GrantDeviceCode
		}
		if !found {
			t.Errorf("grant_types_supported lacks %s", GrantDeviceCode)
		}
	})
}

// TestClientWithoutTheDeviceGrantIsUnauthorizedClient: neither endpoint
// serves a client that was not registered for the grant.
func TestClientWithoutTheDeviceGrantIsUnauthorizedClient(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t)
	wantOAuthError(t, env.deviceAuthorize(webappBasic, url.Values{"scope": {"openid"}}), http.StatusBadRequest, "unauthorized_client")
	wantOAuthError(t, env.deviceAuthorize(spaPublic, url.Values{"scope": {"openid"}}), http.StatusBadRequest, "unauthorized_client")
	// Nor may it redeem a device code it got hold of.
	da := env.deviceCode(tvPublic, "openid")
	env.newBrowser().approve(da.UserCode, "alice", alicePassword, "allow")
	env.clock.Advance(5 * time.Second)
	wantOAuthError(t, env.poll(webappBasic, da.DeviceCode), http.StatusBadRequest, "unauthorized_client")
	tokenResultOf(t, env.poll(tvPublic, da.DeviceCode)) // the code is still good for its client
}

// TestAnotherClientsDeviceCodeIsInvalidGrant: a device code redeems only
// for the client it was issued to, pending or approved, and the attempt
// does not spend it.
func TestAnotherClientsDeviceCodeIsInvalidGrant(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t)
	da := env.deviceCode(tvPublic, "openid")
	wantOAuthError(t, env.poll(consolePublic, da.DeviceCode), http.StatusBadRequest, "invalid_grant")
	env.newBrowser().approve(da.UserCode, "alice", alicePassword, "allow")
	env.clock.Advance(5 * time.Second)
	wantOAuthError(t, env.poll(consolePublic, da.DeviceCode), http.StatusBadRequest, "invalid_grant")
	tokenResultOf(t, env.poll(tvPublic, da.DeviceCode))
}

// TestUnknownOrMalformedDeviceCodeIsInvalidGrant.
func TestUnknownOrMalformedDeviceCodeIsInvalidGrant(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t)
	wantOAuthError(t, env.poll(tvPublic, randomToken()), http.StatusBadRequest, "invalid_grant")
	wantOAuthError(t, env.poll(tvPublic, strings.Repeat("x", 10_000)), http.StatusBadRequest, "invalid_grant")
	wantOAuthError(t, env.token(tvPublic, url.Values{"grant_type": {GrantDeviceCode}}), http.StatusBadRequest, "invalid_request")
}

// TestDeviceCodeRedeemedTwiceIsRefused: tokens exactly once; a second
// redemption is invalid_grant and revokes what the first issued, as a
// replayed authorization code does.
func TestDeviceCodeRedeemedTwiceIsRefused(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t)
	da := env.deviceCode(tvPublic, "openid offline_access read:items")
	env.newBrowser().approve(da.UserCode, "alice", alicePassword, "allow")
	tr := tokenResultOf(t, env.pollAfterInterval(tvPublic, da))
	if !env.active(tr.AccessToken) || !env.active(tr.RefreshToken) {
		t.Fatal("fresh tokens are not active")
	}
	wantOAuthError(t, env.pollAfterInterval(tvPublic, da), http.StatusBadRequest, "invalid_grant")
	for name, tok := range map[string]string{"access token": tr.AccessToken, "refresh token": tr.RefreshToken} {
		if env.active(tok) {
			t.Errorf("the %s of a replayed device code is still active", name)
		}
	}
	// Even after the code itself expired, the replay is still recognised.
	env.clock.Advance(11 * time.Minute)
	wantOAuthError(t, env.poll(tvPublic, da.DeviceCode), http.StatusBadRequest, "invalid_grant")
}

// TestConcurrentRedemptionsAreReplays: redemptions racing on an approved
// code get tokens once at most, and since every other one is a replay,
// whatever was issued is revoked — as for a replayed authorization code
// still being redeemed. A device polls one request at a time.
func TestConcurrentRedemptionsAreReplays(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t)
	da := env.deviceCode(tvPublic, "openid offline_access")
	env.newBrowser().approve(da.UserCode, "alice", alicePassword, "allow")
	env.clock.Advance(5 * time.Second)
	const n = 8
	results := make([]*response, n)
	done := make(chan struct{})
	for i := range n {
		go func() {
			defer func() { done <- struct{}{} }()
			results[i] = env.poll(tvPublic, da.DeviceCode)
		}()
	}
	for range n {
		<-done
	}
	var issued []*tokenResult
	for _, res := range results {
		if res.Status == http.StatusOK {
			issued = append(issued, tokenResultOf(t, res))
			continue
		}
		wantOAuthError(t, res, http.StatusBadRequest, "invalid_grant")
	}
	if len(issued) > 1 {
		t.Fatalf("%d of %d concurrent redemptions got tokens", len(issued), n)
	}
	for _, tr := range issued {
		if env.active(tr.AccessToken) || env.active(tr.RefreshToken) {
			t.Errorf("tokens issued while the device code was replayed are still active")
		}
	}
}

// TestPollingFasterThanTheIntervalGetsSlowDown: RFC 8628 §3.5 — a poll
// sooner than the interval is slow_down, and the interval really grows by
// 5 seconds each time: waiting the old interval is still too soon.
func TestPollingFasterThanTheIntervalGetsSlowDown(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t)
	da := env.deviceCode(tvPublic, "openid")
	wantOAuthError(t, env.poll(tvPublic, da.DeviceCode), http.StatusBadRequest, "authorization_pending")
	res := env.poll(tvPublic, da.DeviceCode)
	wantOAuthError(t, res, http.StatusBadRequest, "slow_down")
	if !strings.Contains(res.JSON(t)["error_description"].(string), "10 seconds") {
		t.Errorf("slow_down does not say the new interval: %s", res.Body)
	}
	// 6 s later: more than the announced 5 s, less than the 10 s in force.
	env.clock.Advance(6 * time.Second)
	res = env.poll(tvPublic, da.DeviceCode)
	wantOAuthError(t, res, http.StatusBadRequest, "slow_down")
	if !strings.Contains(res.JSON(t)["error_description"].(string), "15 seconds") {
		t.Errorf("second slow_down does not say 15 seconds: %s", res.Body)
	}
	// A client that now waits the raised interval is on time again.
	env.clock.Advance(15 * time.Second)
	wantOAuthError(t, env.poll(tvPublic, da.DeviceCode), http.StatusBadRequest, "authorization_pending")
	env.clock.Advance(15 * time.Second)
	wantOAuthError(t, env.poll(tvPublic, da.DeviceCode), http.StatusBadRequest, "authorization_pending")

	// Another device's interval is its own.
	other := env.deviceCode(tvPublic, "openid")
	wantOAuthError(t, env.poll(tvPublic, other.DeviceCode), http.StatusBadRequest, "authorization_pending")
	wantOAuthError(t, env.pollAfterInterval(tvPublic, other), http.StatusBadRequest, "authorization_pending")
}

// TestDeniedDeviceRequestIsAccessDenied: the user's "no" reaches the
// device as access_denied, for good.
func TestDeniedDeviceRequestIsAccessDenied(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t)
	da := env.deviceCode(tvPublic, "openid")
	done := env.newBrowser().approve(da.UserCode, "alice", alicePassword, "deny")
	if !strings.Contains(done.Body, "Request denied") {
		t.Errorf("after denying:\n%s", done.Body)
	}
	wantOAuthError(t, env.pollAfterInterval(tvPublic, da), http.StatusBadRequest, "access_denied")
	wantOAuthError(t, env.pollAfterInterval(tvPublic, da), http.StatusBadRequest, "access_denied")
}

// TestExpiredDeviceCodeIsExpiredToken: past its lifetime the code is
// expired_token, whatever its state, and the user can no longer enter it;
// once the record is gone too, it is unknown.
func TestExpiredDeviceCodeIsExpiredToken(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t)
	pending := env.deviceCode(tvPublic, "openid")
	approved := env.deviceCode(tvPublic, "openid")
	b := env.newBrowser()
	b.approve(approved.UserCode, "alice", alicePassword, "allow")
	late := b.confirmPage(env.deviceCode(tvPublic, "openid").UserCode, "alice", alicePassword)

	env.clock.Advance(10 * time.Minute)
	wantOAuthError(t, env.poll(tvPublic, pending.DeviceCode), http.StatusBadRequest, "expired_token")
	wantOAuthError(t, env.poll(tvPublic, approved.DeviceCode), http.StatusBadRequest, "expired_token")
	if res := b.enterCode(b.openDevice(""), pending.UserCode); res.Status != http.StatusBadRequest || !strings.Contains(res.Body, "expired") {
		t.Errorf("entering an expired code: %d\n%s", res.Status, res.Body)
	}
	if res := b.decide(late, "allow"); res.Status != http.StatusBadRequest || !strings.Contains(res.Body, "expired") {
		t.Errorf("approving after the code expired: %d\n%s", res.Status, res.Body)
	}
	env.clock.Advance(deviceRecordGrace)
	wantOAuthError(t, env.poll(tvPublic, pending.DeviceCode), http.StatusBadRequest, "invalid_grant")
}

// TestUserCodeBruteForceIsThrottledPerIP: RFC 8628 §5.1 — after PerIP
// wrong codes an IP is refused, even with a right code, with a 429 page
// that says when to retry; other IPs are not affected.
func TestUserCodeBruteForceIsThrottledPerIP(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t, func(c *Config) { c.UserCodeThrottle = UserCodeThrottleConfig{PerIP: 3} })
	da := env.deviceCode(tvPublic, "openid")
	attacker := env.newBrowser("198.51.100.7:1000")
	for i := range 3 {
		res := attacker.enterCode(attacker.openDevice(""), newUserCode())
		if res.Status != http.StatusBadRequest {
			t.Fatalf("wrong code %d: %d, want 400", i, res.Status)
		}
	}
	res := attacker.enterCode(attacker.openDevice(""), da.UserCode)
	if res.Status != http.StatusTooManyRequests || !strings.Contains(res.Body, "Too many attempts. Try again in") {
		t.Fatalf("fourth entry from the guessing IP: %d, want a 429 that says when to retry:\n%s", res.Status, res.Body)
	}
	other := env.newBrowser("203.0.113.9:2000")
	if res := other.enterCode(other.openDevice(""), da.UserCode); res.Status != http.StatusOK || !res.isLoginPage() {
		t.Errorf("another IP was throttled: %d", res.Status)
	}
	// One failure is forgiven per minute.
	env.clock.Advance(time.Minute)
	if res := attacker.enterCode(attacker.openDevice(""), da.UserCode); res.Status != http.StatusOK {
		t.Errorf("a minute later: %d", res.Status)
	}
}

// TestUserCodeBruteForceIsThrottledGlobally: guesses spread over many IPs
// hit the shared limit, which then holds for everyone until it refills.
func TestUserCodeBruteForceIsThrottledGlobally(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t, func(c *Config) {
		c.UserCodeThrottle = UserCodeThrottleConfig{PerIP: 100, Global: 5, GlobalRefill: 10 * time.Second}
	})
	da := env.deviceCode(tvPublic, "openid")
	for i := range 5 {
		b := env.newBrowser(fmt.Sprintf("198.51.100.%d:1000", i+1))
		if res := b.enterCode(b.openDevice(""), newUserCode()); res.Status != http.StatusBadRequest {
			t.Fatalf("wrong code from IP %d: %d", i, res.Status)
		}
	}
	fresh := env.newBrowser("203.0.113.50:1000")
	res := fresh.enterCode(fresh.openDevice(""), da.UserCode)
	if res.Status != http.StatusTooManyRequests || !strings.Contains(res.Body, "Try again in") {
		t.Fatalf("entry from a new IP once the global limit is spent: %d\n%s", res.Status, res.Body)
	}
	env.clock.Advance(10 * time.Second)
	if res := fresh.enterCode(fresh.openDevice(""), da.UserCode); res.Status != http.StatusOK {
		t.Errorf("after the refill: %d", res.Status)
	}
}

// TestUserCodeThrottleHoldsUnderConcurrentGuesses: guesses sent at once
// cannot all pass before the first failure is counted.
func TestUserCodeThrottleHoldsUnderConcurrentGuesses(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t, func(c *Config) { c.UserCodeThrottle = UserCodeThrottleConfig{PerIP: 3} })
	b := env.newBrowser("198.51.100.7:1000")
	action, fields := b.openDevice("").form(t)
	const n = 20
	statuses := make(chan int, n)
	for range n {
		go func() {
			f := url.Values{}
			for k, v := range fields {
				f[k] = v
			}
			f.Set("user_code", newUserCode())
			statuses <- b.post(action, f).Status
		}()
	}
	looked := 0
	for range n {
		if <-statuses == http.StatusBadRequest {
			looked++
		}
	}
	if looked > 3 {
		t.Fatalf("%d concurrent guesses were looked up, want at most 3", looked)
	}
}

// TestMalformedUserCodesAreRefusedWithoutALookUp: input that cannot be a
// code is answered at once and costs the user no attempt.
func TestMalformedUserCodesAreRefusedWithoutALookUp(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t, func(c *Config) { c.UserCodeThrottle = UserCodeThrottleConfig{PerIP: 1} })
	b := env.newBrowser()
	for _, bad := range []string{"", "BCDF-GHJ", "BCDF-GHJKL", "ABCD-EFGH", "BCDF-GHJ0", "<script>", strings.Repeat("B", 100)} {
		res := b.enterCode(b.openDevice(""), bad)
		if res.Status != http.StatusBadRequest || !strings.Contains(res.Body, "8 letters") {
			t.Errorf("%q: %d\n%s", bad, res.Status, res.Body)
		}
		if strings.Contains(res.Body, "<script>") {
			t.Errorf("%q is reflected unescaped", bad)
		}
	}
	da := env.deviceCode(tvPublic, "openid")
	if res := b.enterCode(b.openDevice(""), da.UserCode); !res.isLoginPage() {
		t.Errorf("the malformed entries spent the IP's attempts: %d", res.Status)
	}
}

// TestUserCodes: RFC 8628 §6.1 — eight characters of the base-20
// alphabet, uniformly drawn; typed case, dashes and spaces do not matter.
func TestUserCodes(t *testing.T) {
	t.Parallel()
	counts := map[rune]int{}
	const draws = 20_000
	for range draws {
		c := newUserCode()
		if len(c) != userCodeLen {
			t.Fatalf("user code %q", c)
		}
		for _, r := range c {
			counts[r]++
		}
	}
	if len(counts) != len(userCodeAlphabet) {
		t.Fatalf("user codes use %d characters, want the %d of the alphabet: %v", len(counts), len(userCodeAlphabet), counts)
	}
	// Chi-square over 20 characters (19 degrees of freedom): 43.8 is the
	// 0.1% critical value.
	expected := float64(draws*userCodeLen) / float64(len(userCodeAlphabet))
	chi := 0.0
	for _, r := range userCodeAlphabet {
		d := float64(counts[r]) - expected
		chi += d * d / expected
	}
	if chi > 43.8 || math.IsNaN(chi) {
		t.Errorf("character distribution is not uniform: chi-square %.1f, counts %v", chi, counts)
	}
	for in, want := range map[string]string{
		"BCDF-GHJK": "BCDFGHJK", "bcdf-ghjk": "BCDFGHJK", " BCDF GHJK ": "BCDFGHJK", "bcdfghjk": "BCDFGHJK", "BC.DF-GH_JK": "BCDFGHJK",
	} {
		if got, ok := normalizeUserCode(in); !ok || got != want {
			t.Errorf("normalizeUserCode(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "BCDFGHJ", "BCDFGHJKL", "ACDFGHJK", "BCDFGHJ1", "ＢＣＤＦＧＨＪＫ", "BCDFGHJK\x00"} {
		if got, ok := normalizeUserCode(in); ok {
			t.Errorf("normalizeUserCode(%q) = %q, want refused", in, got)
		}
	}
}

// TestDeviceDecisionRequiresCSRF: a decision posted without the CSRF token
// (a cross-site form) is refused and changes nothing.
func TestDeviceDecisionRequiresCSRF(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t)
	da := env.deviceCode(tvPublic, "openid")
	b := env.newBrowser()
	confirm := b.confirmPage(da.UserCode, "alice", alicePassword)
	action, fields := confirm.form(t)
	fields.Set("decision", "allow")
	for name, tok := range map[string]string{"missing": "", "wrong": randomToken()} {
		f := url.Values{}
		for k, v := range fields {
			f[k] = v
		}
		if tok == "" {
			f.Del("csrf_token")
		} else {
			f.Set("csrf_token", tok)
		}
		if res := b.post(action, f); res.Status != http.StatusForbidden {
			t.Errorf("%s CSRF token: %d, want 403", name, res.Status)
		}
	}
	// The code step and the sign-in step are protected too.
	f := url.Values{"step": {"code"}, "user_code": {da.UserCode}}
	if res := env.newBrowser().post(PathDevice, f); res.Status != http.StatusForbidden {
		t.Errorf("code step without CSRF token: %d", res.Status)
	}
	wantOAuthError(t, env.pollAfterInterval(tvPublic, da), http.StatusBadRequest, "authorization_pending")
}

// TestDeviceDecisionUnderAnotherUsersSessionIsRefused: the confirmation
// shown to alice cannot be approved from bob's session (nor from none).
func TestDeviceDecisionUnderAnotherUsersSessionIsRefused(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t)
	da := env.deviceCode(tvPublic, "openid")
	alice := env.newBrowser()
	confirm := alice.confirmPage(da.UserCode, "alice", alicePassword)
	_, aliceFields := confirm.form(t)

	bob := env.newBrowser()
	bobConfirm := bob.confirmPage(env.deviceCode(tvPublic, "openid").UserCode, "bob", bobPassword)
	action, bobFields := bobConfirm.form(t)
	forged := url.Values{"csrf_token": bobFields["csrf_token"], "step": {"confirm"}, "device_request": aliceFields["device_request"], "decision": {"allow"}}
	if res := bob.post(action, forged); res.Status != http.StatusForbidden {
		t.Errorf("alice's decision form under bob's session: %d, want 403\n%s", res.Status, res.Body)
	}
	anon := env.newBrowser()
	_, anonFields := anon.openDevice("").form(t)
	forged.Set("csrf_token", anonFields.Get("csrf_token"))
	if res := anon.post(action, forged); res.Status != http.StatusForbidden {
		t.Errorf("alice's decision form without a session: %d, want 403", res.Status)
	}
	wantOAuthError(t, env.pollAfterInterval(tvPublic, da), http.StatusBadRequest, "authorization_pending")
	// alice herself still can.
	alice.decide(confirm, "allow")
	tokenResultOf(t, env.pollAfterInterval(tvPublic, da))
}

// TestDeviceDecisionIsTakenOnce: a second decision on the same request
// (the form posted again, or from a second tab) is refused and the first
// stands.
func TestDeviceDecisionIsTakenOnce(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t)
	da := env.deviceCode(tvPublic, "openid")
	b := env.newBrowser()
	first := b.confirmPage(da.UserCode, "alice", alicePassword)
	second := b.confirmPage(da.UserCode, "alice", alicePassword) // another tab
	if res := b.decide(first, "allow"); res.Status != http.StatusOK {
		t.Fatalf("first decision: %d", res.Status)
	}
	if res := b.decide(second, "deny"); res.Status != http.StatusConflict || !strings.Contains(res.Body, "already been answered") {
		t.Errorf("second decision: %d, want 409\n%s", res.Status, res.Body)
	}
	if res := b.decide(first, "deny"); res.Status != http.StatusConflict {
		t.Errorf("the first form posted again: %d, want 409", res.Status)
	}
	if res := b.enterCode(b.openDevice(""), da.UserCode); res.Status != http.StatusConflict {
		t.Errorf("entering the decided code again: %d, want 409", res.Status)
	}
	tokenResultOf(t, env.pollAfterInterval(tvPublic, da))
}

// TestDeviceDecisionFormRejectsUnknownDecisionAndTampering.
func TestDeviceDecisionFormRejectsUnknownDecisionAndTampering(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t)
	da := env.deviceCode(tvPublic, "openid")
	b := env.newBrowser()
	confirm := b.confirmPage(da.UserCode, "alice", alicePassword)
	action, fields := confirm.form(t)
	// An authorization request sealed by the same server is not a device
	// request: the seal names its purpose.
	_, consent := b.authorize(newAuthRequest(webappID, webappRedirect, "openid").Values).form(t)
	authRequest := consent.Get("auth_request")
	if authRequest == "" {
		t.Fatal("no auth_request on the consent page")
	}
	for name, mutate := range map[string]func(url.Values){
		"unknown decision": func(f url.Values) { f.Set("decision", "maybe") },
		"tampered request": func(f url.Values) { f.Set("decision", "allow"); f.Set("device_request", "x"+f.Get("device_request")) },
		"no request":       func(f url.Values) { f.Set("decision", "allow"); f.Del("device_request") },
		"an auth_request":  func(f url.Values) { f.Set("decision", "allow"); f.Set("device_request", authRequest) },
		"unknown step":     func(f url.Values) { f.Set("decision", "allow"); f.Set("step", "approve-all") },
	} {
		f := url.Values{}
		for k, v := range fields {
			f[k] = v
		}
		mutate(f)
		if res := b.post(action, f); res.Status != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", name, res.Status)
		}
	}
	res := b.do(mustRequest(t, http.MethodPut, env.url(PathDevice)))
	if res.Status != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d", res.Status)
	}
	wantOAuthError(t, env.pollAfterInterval(tvPublic, da), http.StatusBadRequest, "authorization_pending")
}

func mustRequest(tb testing.TB, method, target string) *http.Request {
	tb.Helper()
	r, err := http.NewRequest(method, target, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// TestDeviceClientNameIsRenderedInert: RFC 8628 §5.4 has the client named
// on the page; a hostile name is text, not markup.
func TestDeviceClientNameIsRenderedInert(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t)
	evil := `<script>alert(1)</script><img src=x onerror=alert(2)>"'`
	if err := env.store.PutClient(context.Background(), &store.Client{ID: "evil", Name: evil, TokenEndpointAuthMethod: AuthMethodNone,
		GrantTypes: []string{GrantDeviceCode}}); err != nil {
		t.Fatal(err)
	}
	da := env.deviceCode(clientCred{"evil", "", "none"}, "openid")
	b := env.newBrowser()
	login := b.enterCode(b.openDevice(""), da.UserCode)
	confirm := b.submitLogin(login, "alice", alicePassword)
	done := b.decide(confirm, "allow")
	for name, page := range map[string]*response{"sign-in": login, "confirmation": confirm, "done": done} {
		if strings.Contains(page.Body, "<script>alert") || strings.Contains(page.Body, "<img src=x") {
			t.Errorf("the %s page renders the client name as markup:\n%s", name, page.Body)
		}
		if !strings.Contains(page.Body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("the %s page does not show the client name as text", name)
		}
		if csp := page.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'nonce-") {
			t.Errorf("the %s page has CSP %q", name, csp)
		}
	}
}

// TestDeviceVerificationPageEscapesThePrefill: verification_uri_complete
// is a link anyone can craft.
func TestDeviceVerificationPageEscapesThePrefill(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t)
	res := env.newBrowser().get(env.url(PathDevice) + "?user_code=" + url.QueryEscape(`"><script>alert(1)</script>`))
	if res.Status != http.StatusOK || strings.Contains(res.Body, "<script>alert") {
		t.Fatalf("prefill reflected as markup: %d\n%s", res.Status, res.Body)
	}
	if h := res.Header.Get("X-Frame-Options"); h != "DENY" {
		t.Errorf("X-Frame-Options %q", h)
	}
}

// TestDeviceSignInSharesTheLoginThrottle: wrong passwords on the device
// page count against the same per-user limit as the login page.
func TestDeviceSignInSharesTheLoginThrottle(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t)
	da := env.deviceCode(tvPublic, "openid")
	b := env.newBrowser()
	login := b.enterCode(b.openDevice(""), da.UserCode)
	for i := range 5 {
		res := b.submitLogin(login, "alice", "wrong password")
		if res.Status != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d", i, res.Status)
		}
		login = res
	}
	if res := b.submitLogin(login, "alice", alicePassword); res.Status != http.StatusTooManyRequests {
		t.Errorf("sixth attempt on the device page: %d, want 429", res.Status)
	}
	other := env.newBrowser("203.0.113.9:2000")
	if res := other.authorize(newAuthRequest(webappID, webappRedirect, "openid").Values); !res.isLoginPage() {
		t.Fatalf("login page: %d", res.Status)
	} else if res := other.submitLogin(res, "alice", alicePassword); res.Status != http.StatusTooManyRequests {
		t.Errorf("the login page after five failures on the device page: %d, want 429", res.Status)
	}
}

// TestDeviceCodeTTLAndIntervalAreConfigurable.
func TestDeviceCodeTTLAndIntervalAreConfigurable(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t, func(c *Config) {
		c.DeviceCodeTTL = 2 * time.Minute
		c.DevicePollInterval = 1500 * time.Millisecond
	})
	da := env.deviceCode(tvPublic, "openid")
	if da.ExpiresIn != 120 || da.Interval != 2 {
		t.Errorf("expires_in %d interval %d, want 120 and 2 (rounded up)", da.ExpiresIn, da.Interval)
	}
	env.clock.Advance(2 * time.Minute)
	wantOAuthError(t, env.poll(tvPublic, da.DeviceCode), http.StatusBadRequest, "expired_token")
}

// collidingStore answers PutDeviceCode with ErrConflict a given number of
// times first, as if the user codes drawn were in use, and counts the
// calls.
type collidingStore struct {
	store.Store
	puts     atomic.Int64
	conflict atomic.Int64
}

func (c *collidingStore) PutDeviceCode(ctx context.Context, d *store.DeviceCode) error {
	c.puts.Add(1)
	if c.conflict.Add(-1) >= 0 {
		return store.ErrConflict
	}
	return c.Store.PutDeviceCode(ctx, d)
}

// newCollidingServer is a device server whose store collides on demand.
func newCollidingServer(tb testing.TB) (*testEnv, *collidingStore) {
	tb.Helper()
	cs := &collidingStore{}
	env := newDeviceServer(tb, func(c *Config) {
		cs.Store = c.Store
		c.Store = cs
	})
	return env, cs
}

// TestPendingPollWritesNothing: the polls that find nothing changed (the
// bulk of the traffic) only read: pending, slow_down and denied answers
// commit no page to the database file; issuance does.
func TestPendingPollWritesNothing(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t)
	before := env.store.PageWrites()
	da := env.deviceCode(tvPublic, "openid read:items")
	if env.store.PageWrites() == before {
		t.Fatalf("issuing a device code wrote nothing: the write counter does not count")
	}
	before = env.store.PageWrites()
	for range 3 {
		wantOAuthError(t, env.pollAfterInterval(tvPublic, da), http.StatusBadRequest, "authorization_pending")
		wantOAuthError(t, env.poll(tvPublic, da.DeviceCode), http.StatusBadRequest, "slow_down")
		env.clock.Advance(time.Minute)
	}
	wantOAuthError(t, env.poll(consolePublic, da.DeviceCode), http.StatusBadRequest, "invalid_grant")
	wantOAuthError(t, env.poll(tvPublic, randomToken()), http.StatusBadRequest, "invalid_grant")
	if n := env.store.PageWrites() - before; n != 0 {
		t.Errorf("pending polls wrote %d pages to the database, want 0", n)
	}
	env.newBrowser().approve(da.UserCode, "alice", alicePassword, "deny")
	before = env.store.PageWrites()
	for range 3 {
		wantOAuthError(t, env.pollAfterInterval(tvPublic, da), http.StatusBadRequest, "access_denied")
	}
	if n := env.store.PageWrites() - before; n != 0 {
		t.Errorf("polls of a denied request wrote %d pages, want 0", n)
	}
}

// TestDeviceAuthorizationDrawsAgainOnAUserCodeCollision: a user code
// already in use is not handed out; another is drawn.
func TestDeviceAuthorizationDrawsAgainOnAUserCodeCollision(t *testing.T) {
	t.Parallel()
	env, cs := newCollidingServer(t)
	cs.conflict.Store(3)
	da := env.deviceCode(tvPublic, "openid")
	if n := cs.puts.Load(); n != 4 {
		t.Errorf("%d PutDeviceCode calls, want 4 (3 collisions)", n)
	}
	env.newBrowser().approve(da.UserCode, "alice", alicePassword, "allow")
	tokenResultOf(t, env.pollAfterInterval(tvPublic, da))

	cs.conflict.Store(userCodeDraws)
	env.allow500.Store(true)
	wantOAuthError(t, env.deviceAuthorize(tvPublic, url.Values{"scope": {"openid"}}), http.StatusInternalServerError, "server_error")
}

// TestPollStatesAreBoundedAndForgotten: the in-memory poll states go when
// the request is decided or expires, and never exceed their bound.
func TestPollStatesAreBoundedAndForgotten(t *testing.T) {
	t.Parallel()
	env := newDeviceServer(t)
	da := env.deviceCode(tvPublic, "openid")
	other := env.deviceCode(tvPublic, "openid")
	env.poll(tvPublic, da.DeviceCode)
	env.poll(tvPublic, other.DeviceCode)
	if n := env.srv.devicePolls.len(); n != 2 {
		t.Fatalf("%d poll states, want 2", n)
	}
	env.newBrowser().approve(da.UserCode, "alice", alicePassword, "allow")
	tokenResultOf(t, env.pollAfterInterval(tvPublic, da))
	if n := env.srv.devicePolls.len(); n != 1 {
		t.Errorf("%d poll states after a redemption, want 1", n)
	}
	env.clock.Advance(10 * time.Minute)
	env.srv.devicePolls.prune(env.clock.Now())
	if n := env.srv.devicePolls.len(); n != 0 {
		t.Errorf("%d poll states after the codes expired, want 0", n)
	}

	p := newDevicePolls(3)
	now := env.clock.Now()
	for i := range 10 {
		p.poll(pendingRequest{Digest: fmt.Sprint(i), Interval: 5 * time.Second, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, now)
	}
	if n := p.len(); n != 3 {
		t.Errorf("%d poll states kept, want the bound 3", n)
	}
}
