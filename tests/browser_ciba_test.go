package tests

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// CIBABrowserSummary is the RESULT line of ciba.mjs.
type CIBABrowserSummary struct {
	browserResult
	SawLogin      bool                `json:"sawLogin"`
	Card          string              `json:"card"`
	BindingText   string              `json:"bindingText"`
	BindingMarkup int                 `json:"bindingMarkup"`
	Final         string              `json:"final"`
	Heading       string              `json:"heading"`
	Phone         *browserPhoneLayout `json:"phone"`
}

// RunCIBABrowser runs tests/browser/ciba.mjs in Chromium with env
// (START_URL, USERNAME, PASSWORD, CLIENT_NAME, BINDING_MESSAGE,
// EXPECT_TEXT: see ciba.mjs) and returns its summary and the directory of
// its screenshots, tests/artifacts/<TestName>/. See runBrowserScript.
func RunCIBABrowser(t *testing.T, env map[string]string) (*CIBABrowserSummary, string) {
	t.Helper()
	return runBrowserSummary[CIBABrowserSummary](t, "ciba.mjs", env)
}

// peerPollCIBA polls the token endpoint for authReqID as clientID/secret
// until the answer is neither authorization_pending nor slow_down, waiting
// the interval before each poll (and 5 s more after a slow_down, CIBA
// §7.3), and returns the final status and body.
func peerPollCIBA(t *testing.T, d *Discovery, authReqID, clientID, secret string, interval time.Duration) (int, map[string]any) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		time.Sleep(interval) // the protocol's wait, not a race with the server
		status, obj := peerCIBARedeem(t, d, authReqID, clientID, secret)
		switch obj["error"] {
		case "authorization_pending":
		case "slow_down":
			interval += 5 * time.Second
		default:
			return status, obj
		}
	}
	t.Fatalf("auth_req_id still pending after a minute of polling")
	return 0, nil
}

// TestBrowserApprovesACIBARequest: a kiosk (the Go side) starts a CIBA
// request for alice whose binding message holds markup; Chromium, at phone
// size, opens /ciba, signs in as alice, finds the request's card naming the
// client, the scopes in words and the binding message shown verbatim as
// text (not rendered), checks that the page fits the phone and is free of
// console (CSP) errors, and approves; then the kiosk's poll gets tokens.
// The approval page's screenshot is in
// tests/artifacts/TestBrowserApprovesACIBARequest/approve.png; with
// UPDATE_DOCS=1 it is also copied to docs/ciba.png for the README.
func TestBrowserApprovesACIBARequest(t *testing.T) {
	g := startPeerCIBAGateway(t)
	d := g.Discover(t)
	endpoint := peerCIBAEndpoint(t, d)
	const msg = "<b>Order 42</b> & 12.50 EUR"
	authReqID, ack := peerCIBAInitiate(t, endpoint, url.Values{
		"scope": {"openid email offline_access"}, "login_hint": {aliceUsername}, "binding_message": {msg},
	}, peerKioskID, peerKioskSecret)
	if status, obj := peerCIBARedeem(t, d, authReqID, peerKioskID, peerKioskSecret); status != http.StatusBadRequest || obj["error"] != "authorization_pending" {
		t.Fatalf("poll before the user acted: %d %v, want 400 authorization_pending", status, obj)
	}
	if req := peerCIBAPending(t, g.Gateway, aliceUsername, msg); req.BindingMessage != msg {
		t.Fatalf("admin API binding message %q, want %q", req.BindingMessage, msg)
	}

	start := time.Now()
	s, artifacts := RunCIBABrowser(t, map[string]string{
		"START_URL":       g.URL("/ciba"),
		"USERNAME":        aliceUsername,
		"PASSWORD":        alicePassword,
		"CLIENT_NAME":     peerKioskName,
		"BINDING_MESSAGE": msg,
		"EXPECT_TEXT":     `["See your email address", "Stay connected when you are not using it"]`,
	})
	t.Logf("browser flow: %d ms (%s with start-up); navigations:\n  %s", s.DurationMs, time.Since(start).Round(time.Millisecond), strings.Join(s.Navigations, "\n  "))
	if !s.OK || !s.SawLogin {
		t.Fatalf("ciba.mjs: ok=%v login=%v error=%s", s.OK, s.SawLogin, s.Error)
	}
	if strings.TrimSpace(s.BindingText) != msg || s.BindingMarkup != 0 {
		t.Errorf("binding message shown as %q with %d elements inside, want the text %q", s.BindingText, s.BindingMarkup, msg)
	}
	if s.Phone == nil || s.Phone.Viewport != 390 || s.Phone.ScrollWidth > s.Phone.Viewport {
		t.Errorf("phone layout: %+v", s.Phone)
	}
	if len(s.ConsoleErrors) > 0 {
		t.Errorf("console errors: %q", s.ConsoleErrors)
	}

	interval := time.Second
	if iv, _ := ack["interval"].(float64); iv > 0 {
		interval = time.Duration(iv) * time.Second
	}
	status, tok := peerPollCIBA(t, d, authReqID, peerKioskID, peerKioskSecret, interval)
	if status != http.StatusOK {
		t.Fatalf("the kiosk's poll after approval in the browser: %d %v", status, tok)
	}
	ts := tokenSetFrom(tok)
	jwks := FetchJWKS(t, d.JWKSURI)
	c := peerCheckIDToken(t, ts.IDToken, jwks, d.Issuer, peerKioskID)
	if c["email"] != aliceEmail || c["at_hash"] != peerHalfHash(ts.AccessToken) || ts.RefreshToken == "" {
		t.Errorf("tokens: ID token claims %v, refresh token %t", c, ts.RefreshToken != "")
	}
	if _, ok := c["auth_time"]; !ok {
		t.Errorf("ID token lacks auth_time although alice signed in on the page: %v", c)
	}

	updateDocsScreenshot(t, artifacts, "approve.png", "ciba.png")
}
