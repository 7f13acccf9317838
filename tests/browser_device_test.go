package tests

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// DeviceBrowserSummary is the RESULT line of device.mjs.
type DeviceBrowserSummary struct {
	browserResult
	SawLogin     bool                `json:"sawLogin"`
	Confirmation string              `json:"confirmation"`
	Final        string              `json:"final"`
	Phone        *browserPhoneLayout `json:"phone"`
}

// RunDeviceBrowser runs tests/browser/device.mjs in Chromium with env
// (START_URL, USER_CODE, USERNAME, PASSWORD, CLIENT_NAME: see device.mjs)
// and returns its summary and the directory of its screenshots,
// tests/artifacts/<TestName>/. See runBrowserScript.
func RunDeviceBrowser(t *testing.T, env map[string]string) (*DeviceBrowserSummary, string) {
	t.Helper()
	return runBrowserSummary[DeviceBrowserSummary](t, "device.mjs", env)
}

// TestBrowserApprovesADeviceLogin: a device (the Go side) asks for a code;
// Chromium opens verification_uri_complete, continues with the pre-filled
// code, signs in as alice and approves on the confirmation page, which is
// checked at desktop and phone size and free of console (CSP) errors; then
// the device's poll gets tokens. The confirmation page's screenshot is in
// tests/artifacts/TestBrowserApprovesADeviceLogin/confirm.png; with
// UPDATE_DOCS=1 it is also copied to docs/device.png for the README.
func TestBrowserApprovesADeviceLogin(t *testing.T) {
	g := StartGateway(t, deviceCaddyfile)
	d := g.Discover(t)
	da := StartDeviceAuthorization(t, d, deviceClientID, "openid profile offline_access read:items")
	resp, obj := PostForm(t, d.TokenEndpoint, url.Values{
		"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {deviceClientID},
	}, "", "")
	if resp.StatusCode != http.StatusBadRequest || obj["error"] != "authorization_pending" {
		t.Fatalf("poll before the user acted: %d %v", resp.StatusCode, obj)
	}

	start := time.Now()
	s, artifacts := RunDeviceBrowser(t, map[string]string{
		"START_URL":   da.VerificationURIComplete,
		"USER_CODE":   da.UserCode,
		"USERNAME":    aliceUsername,
		"PASSWORD":    alicePassword,
		"CLIENT_NAME": deviceClientName,
	})
	t.Logf("browser flow: %d ms (%s with start-up); navigations:\n  %s", s.DurationMs, time.Since(start).Round(time.Millisecond), strings.Join(s.Navigations, "\n  "))
	if !s.OK || !s.SawLogin {
		t.Fatalf("device.mjs: ok=%v login=%v error=%s", s.OK, s.SawLogin, s.Error)
	}
	if s.Phone == nil || s.Phone.ScrollWidth > s.Phone.Viewport {
		t.Errorf("phone layout: %+v", s.Phone)
	}
	if !strings.Contains(s.Confirmation, "Demo API") {
		t.Errorf("the confirmation page does not name the API: %s", s.Confirmation)
	}

	status, tok := PollDevice(t, d, deviceClientID, da)
	if status != http.StatusOK {
		t.Fatalf("the device's poll after approval in the browser: %d %v", status, tok)
	}
	ts := tokenSetFrom(tok)
	at, err := VerifyJWT(ts.AccessToken, FetchJWKS(t, d.JWKSURI))
	if err != nil {
		t.Fatalf("access token: %v", err)
	}
	if at.Claims["sub"] != aliceUsername || !audContains(at.Claims["aud"], apiAudience) || ts.RefreshToken == "" || ts.IDToken == "" {
		t.Errorf("tokens: access token claims %v, refresh token %t, ID token %t", at.Claims, ts.RefreshToken != "", ts.IDToken != "")
	}

	updateDocsScreenshot(t, artifacts, "confirm.png", "device.png")
}
