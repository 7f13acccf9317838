package tests

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// deviceCaddyfile is the configuration of the device flow tests: alice, a
// public device client `tv` allowed refresh tokens, an API, and a 1 s
// polling interval so the tests do not wait long.
const deviceCaddyfile = `{
	admin 127.0.0.1:{{.AdminPort}}
	portcullis {
		storage bbolt {{.Dir}}/portcullis.db
		issuer http://127.0.0.1:{{.Port}}
		signing_alg ES256
		insecure_cookies
		device_code_ttl 5m
		device_poll_interval 1s
		user alice {
			password alice-password
			email alice@example.com
			name "Alice Example"
			groups admins
		}
		client tv {
			name "Living Room TV"
			public
			grant_types device_code refresh_token
		}
		api https://api.example.com {
			name "Demo API"
			scopes read:items write:items
			token_format jwt
		}
	}
}
http://127.0.0.1:{{.Port}} {
	bind 127.0.0.1
	oauth_server
}
`

const (
	deviceClientID   = "tv"
	deviceClientName = "Living Room TV"
)

// DeviceAuthorization is a device authorization response (RFC 8628 §3.2).
type DeviceAuthorization struct {
	DeviceCode, UserCode, VerificationURI, VerificationURIComplete string
	ExpiresIn, Interval                                            int
}

// StartDeviceAuthorization asks the device authorization endpoint of d for
// a code as the public client clientID.
func StartDeviceAuthorization(t testing.TB, d *Discovery, clientID, scope string) *DeviceAuthorization {
	t.Helper()
	endpoint, _ := d.Raw["device_authorization_endpoint"].(string)
	if endpoint == "" {
		t.Fatalf("discovery lacks device_authorization_endpoint: %v", d.Raw)
	}
	resp, obj := PostForm(t, endpoint, url.Values{"client_id": {clientID}, "scope": {scope}}, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("device authorization: status %d: %v", resp.StatusCode, obj)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("device authorization response Cache-Control = %q, want no-store", cc)
	}
	str := func(k string) string { s, _ := obj[k].(string); return s }
	num := func(k string) int { f, _ := obj[k].(float64); return int(f) }
	da := &DeviceAuthorization{
		DeviceCode: str("device_code"), UserCode: str("user_code"), VerificationURI: str("verification_uri"),
		VerificationURIComplete: str("verification_uri_complete"), ExpiresIn: num("expires_in"), Interval: num("interval"),
	}
	if da.DeviceCode == "" || da.UserCode == "" || da.VerificationURI == "" || da.ExpiresIn <= 0 || da.Interval <= 0 {
		t.Fatalf("incomplete device authorization response: %v", obj)
	}
	return da
}

// PollDevice polls the token endpoint as the public client clientID until
// the answer is neither authorization_pending nor slow_down, waiting the
// interval between polls (and 5 s more after each slow_down, as RFC 8628
// §3.5 requires), and returns the final status and body.
func PollDevice(t testing.TB, d *Discovery, clientID string, da *DeviceAuthorization) (int, map[string]any) {
	t.Helper()
	interval := time.Duration(da.Interval) * time.Second
	deadline := time.Now().Add(time.Duration(da.ExpiresIn) * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(interval) // the protocol's wait, not a race with the server
		resp, obj := PostForm(t, d.TokenEndpoint, url.Values{
			"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {clientID},
		}, "", "")
		switch obj["error"] {
		case "authorization_pending":
		case "slow_down":
			interval += 5 * time.Second
		default:
			return resp.StatusCode, obj
		}
	}
	t.Fatalf("device code expired while polling")
	return 0, nil
}

// VerifyDevice drives the verification page as a browser would: it opens
// start (verification_uri or verification_uri_complete), enters userCode
// when the form is not pre-filled, signs in when asked, and submits the
// confirmation with decision (allow or deny). It returns the text of the
// confirmation page and of the final page.
func VerifyDevice(t testing.TB, browser *http.Client, start, userCode, username, password, decision string) (confirmation, final string) {
	t.Helper()
	target, err := url.Parse(start)
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("device verification: "+format+"\nsteps:\n  %s", append(args, strings.Join(steps, "\n  "))...)
	}
	resp, page := doRequest(t, browser, http.MethodGet, target.String(), nil, http.Header{"Accept": {"text/html"}})
	steps = append(steps, "GET "+target.String()+" -> "+resp.Status)
	for range 4 {
		if resp.StatusCode != http.StatusOK {
			fail("status %d: %s", resp.StatusCode, pageText(page))
		}
		forms, err := ParseForms(target, page)
		if err != nil || len(forms) != 1 {
			fail("want one form, got %d (%v): %s", len(forms), err, pageText(page))
		}
		f := forms[0]
		switch {
		case f.HasField("user_code"):
			if f.Fields.Get("user_code") == "" {
				f.Fields.Set("user_code", userCode)
			} else if f.Fields.Get("user_code") != userCode {
				fail("the form is pre-filled with %q, want %q", f.Fields.Get("user_code"), userCode)
			}
		case f.HasField("password"):
			f.Fields.Set("username", username)
			f.Fields.Set("password", password)
		case hasButtonNamed(f, "decision"):
			if _, ok := f.Button("decision", decision); !ok {
				fail("no decision=%s button", decision)
			}
			f.Fields.Set("decision", decision)
			confirmation = pageText(page)
		default:
			fail("unexpected page: %s", pageText(page))
		}
		if f.Method != http.MethodPost {
			fail("form method %q", f.Method)
		}
		target = f.Action
		resp, page = doRequest(t, browser, http.MethodPost, target.String(), strings.NewReader(f.Fields.Encode()), http.Header{
			"Content-Type": {"application/x-www-form-urlencoded"}, "Accept": {"text/html"},
			"Origin": {target.Scheme + "://" + target.Host},
		})
		steps = append(steps, "POST "+target.String()+" -> "+resp.Status)
		if confirmation != "" {
			if resp.StatusCode != http.StatusOK {
				fail("decision answered %d: %s", resp.StatusCode, pageText(page))
			}
			return confirmation, pageText(page)
		}
	}
	fail("no confirmation page")
	return "", ""
}

// TestDeviceFlowEndToEnd is a CLI-style device login against the real
// binary: a device code, the verification page driven over HTTP with a
// cookie jar (the pre-filled code confirmed, sign-in, approval), and the
// device's poll then gets tokens that verify and refresh.
func TestDeviceFlowEndToEnd(t *testing.T) {
	g := StartGateway(t, deviceCaddyfile)
	d := g.Discover(t)
	da := StartDeviceAuthorization(t, d, deviceClientID, "openid profile offline_access read:items")
	if da.VerificationURI != g.URL("/device") || da.VerificationURIComplete != da.VerificationURI+"?user_code="+da.UserCode {
		t.Errorf("verification_uri %q, verification_uri_complete %q", da.VerificationURI, da.VerificationURIComplete)
	}
	if da.ExpiresIn != 300 || da.Interval != 1 {
		t.Errorf("expires_in %d interval %d, want the configured 300 and 1", da.ExpiresIn, da.Interval)
	}
	// Before the user does anything, the device is told to wait.
	resp, obj := PostForm(t, d.TokenEndpoint, url.Values{
		"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {deviceClientID},
	}, "", "")
	if resp.StatusCode != http.StatusBadRequest || obj["error"] != "authorization_pending" {
		t.Fatalf("first poll: %d %v, want authorization_pending", resp.StatusCode, obj)
	}

	confirmation, final := VerifyDevice(t, NewBrowser(t), da.VerificationURIComplete, da.UserCode, aliceUsername, alicePassword, "allow")
	for _, want := range []string{deviceClientName, da.UserCode, "Demo API", "Alice Example"} {
		if !strings.Contains(confirmation, want) {
			t.Errorf("the confirmation page does not show %q: %s", want, confirmation)
		}
	}
	if !strings.Contains(final, "return to your device") {
		t.Errorf("final page: %s", final)
	}

	status, tok := PollDevice(t, d, deviceClientID, da)
	if status != http.StatusOK {
		t.Fatalf("poll after approval: %d %v", status, tok)
	}
	ts := tokenSetFrom(tok)
	set := FetchJWKS(t, d.JWKSURI)
	at, err := VerifyJWT(ts.AccessToken, set)
	if err != nil {
		t.Fatalf("access token: %v", err)
	}
	if at.Claims["sub"] != aliceUsername || at.Claims["client_id"] != deviceClientID || !audContains(at.Claims["aud"], apiAudience) {
		t.Errorf("access token claims %v", at.Claims)
	}
	id, err := VerifyJWT(ts.IDToken, set)
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	if id.Claims["sub"] != aliceUsername || !audContains(id.Claims["aud"], deviceClientID) || id.Claims["iss"] != d.Issuer {
		t.Errorf("ID token claims %v", id.Claims)
	}
	if ts.RefreshToken == "" {
		t.Fatalf("no refresh token for offline_access: %v", tok)
	}
	resp, obj = PostForm(t, d.TokenEndpoint, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ts.RefreshToken}, "client_id": {deviceClientID}}, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("refresh: %d %v", resp.StatusCode, obj)
	}
	// The device code is spent.
	resp, obj = PostForm(t, d.TokenEndpoint, url.Values{
		"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {deviceClientID},
	}, "", "")
	if resp.StatusCode != http.StatusBadRequest || obj["error"] != "invalid_grant" {
		t.Errorf("second redemption: %d %v, want invalid_grant", resp.StatusCode, obj)
	}
}

// TestDeviceFlowDeniedEndToEnd: the user denies on the verification page
// (typing the code at verification_uri, in lower case) and the device is
// told access_denied.
func TestDeviceFlowDeniedEndToEnd(t *testing.T) {
	g := StartGateway(t, deviceCaddyfile)
	d := g.Discover(t)
	da := StartDeviceAuthorization(t, d, deviceClientID, "openid")
	_, final := VerifyDevice(t, NewBrowser(t), da.VerificationURI, strings.ToLower(da.UserCode), aliceUsername, alicePassword, "deny")
	if !strings.Contains(final, "denied") {
		t.Errorf("final page: %s", final)
	}
	status, obj := PollDevice(t, d, deviceClientID, da)
	if status != http.StatusBadRequest || obj["error"] != "access_denied" {
		t.Fatalf("poll after denial: %d %v, want access_denied", status, obj)
	}
}
