package tests

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// exampleAddrs are the fixed addresses Caddyfile.example listens on.
var exampleAddrs = []string{"127.0.0.1:9000", "127.0.0.1:8080", "127.0.0.1:8090", "127.0.0.1:2019"}

// TestCaddyfileExampleDemo runs the real binary on Caddyfile.example, as
// `./xcaddy.sh run` does, and walks the demo the README promises: open the
// app on :8080, sign in as alice/alice at the embedded provider on :9000,
// see the app with her name and identity headers, sign out.
func TestCaddyfileExampleDemo(t *testing.T) {
	for _, addr := range exampleAddrs {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			t.Skipf("%s is in use (a demo already running?): Caddyfile.example needs its fixed ports", addr)
		}
	}
	example, err := os.ReadFile(filepath.Join("..", "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	g := startFixedGateway(t, example, "http://localhost:9000", "http://localhost:2019")
	g.AppURL = "http://localhost:8080"

	browser := NewBrowser(t)
	signInThroughGateway(t, g, browser, g.AppURL+"/", "alice", "alice")
	resp, body := navigate(t, browser, g.AppURL+"/", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("demo app after sign-in: %d %s", resp.StatusCode, body)
	}
	for _, want := range []string{"Hello, alice!", "alice@example.com", "admins"} {
		if !strings.Contains(body, want) {
			t.Errorf("demo app page does not show %q:\n%s", want, body)
		}
	}
	if resp, body := navigate(t, NewBrowser(t), g.AppURL+"/health", nil); resp.StatusCode != 200 || body != "ok" {
		t.Errorf("/health (a skip path) without a session: %d %q", resp.StatusCode, body)
	}

	// The trusted legacy client signs alice in with the password grant.
	resp, tokens := PostForm(t, g.BaseURL+"/oauth/token", url.Values{"grant_type": {"password"},
		"username": {"alice"}, "password": {"alice"}, "scope": {"openid offline_access"}}, "demo-legacy", "demo-legacy-secret")
	if resp.StatusCode != 200 || tokens["id_token"] == nil || tokens["refresh_token"] == nil {
		t.Errorf("password grant for demo-legacy: %d %v", resp.StatusCode, tokens)
	}

	// The CLI gets a device code.
	resp, device := PostForm(t, g.BaseURL+"/oauth/device/code", url.Values{"client_id": {"demo-cli"}, "scope": {"openid offline_access"}}, "", "")
	if resp.StatusCode != 200 || device["user_code"] == nil || device["verification_uri"] != g.BaseURL+"/device" {
		t.Errorf("device code for demo-cli: %d %v", resp.StatusCode, device)
	}
	exampleCIBA(t, g)

	resp, _ = navigate(t, browser, g.AppURL+"/oauth2/logout", nil)
	endSession := resolve(t, g.AppURL, resp.Header.Get("Location"))
	if !strings.HasPrefix(endSession, g.BaseURL+"/logout?") {
		t.Fatalf("sign out: %d to %s, want the provider's logout", resp.StatusCode, endSession)
	}
	resp, _ = navigate(t, browser, endSession, nil)
	if back := resp.Header.Get("Location"); back != g.AppURL+"/" {
		t.Fatalf("provider logout: %d to %q, want back to the demo app", resp.StatusCode, back)
	}
	if resp, _ := navigate(t, browser, g.AppURL+"/", nil); resp.StatusCode != 302 {
		t.Errorf("after sign-out the demo app answers %d, want a redirect to sign in", resp.StatusCode)
	}
}

// startFixedGateway runs the binary on a Caddyfile with fixed addresses
// (no template), in a fresh directory that holds its bbolt file.
func startFixedGateway(t *testing.T, caddyfile []byte, baseURL, adminURL string) *Gateway {
	t.Helper()
	bin := requireBinary(t)
	dir := t.TempDir()
	for _, d := range []string{"home", "xdg-data", "xdg-config"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	configPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(configPath, caddyfile, 0o600); err != nil {
		t.Fatal(err)
	}
	g := &Gateway{BaseURL: baseURL, AdminURL: adminURL, Dir: dir, configPath: configPath, logs: &syncBuffer{}}
	t.Cleanup(func() {
		g.stop()
		if t.Failed() {
			t.Logf("gateway output:\n%s", g.logs.String())
		}
	})
	if err := g.start(bin); err != nil {
		t.Fatalf("starting gateway: %v", err)
	}
	if err := g.waitReady(); err != nil {
		t.Fatalf("gateway not ready: %v", err)
	}
	return g
}

// exampleCIBA starts a CIBA sign-in for alice as demo-ciba, approves it
// through the admin API as an operator would, and polls for the tokens.
func exampleCIBA(t *testing.T, g *Gateway) {
	t.Helper()
	resp, started := PostForm(t, g.BaseURL+"/bc-authorize", url.Values{"scope": {"openid"}, "login_hint": {"alice"},
		"binding_message": {"W4SCT"}}, "demo-ciba", "demo-ciba-secret")
	authReqID, _ := started["auth_req_id"].(string)
	if resp.StatusCode != 200 || authReqID == "" {
		t.Fatalf("bc-authorize for demo-ciba: %d %v", resp.StatusCode, started)
	}
	_, body := doRequest(t, &http.Client{Timeout: requestTimeout}, http.MethodGet, g.AdminURL+"/portcullis/ciba?user=alice", nil, nil)
	var pending []map[string]any
	if err := json.Unmarshal(body, &pending); err != nil || len(pending) != 1 || pending[0]["binding_message"] != "W4SCT" {
		t.Fatalf("pending CIBA requests of alice: %v %s", err, body)
	}
	approve, _ := doRequest(t, &http.Client{Timeout: requestTimeout}, http.MethodPost,
		g.AdminURL+"/portcullis/ciba/"+pending[0]["id"].(string)+"/approve", nil, nil)
	if approve.StatusCode != 200 {
		t.Fatalf("approving through the admin API: %d", approve.StatusCode)
	}
	resp, tokens := PostForm(t, g.BaseURL+"/oauth/token", url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"},
		"auth_req_id": {authReqID}}, "demo-ciba", "demo-ciba-secret")
	if resp.StatusCode != 200 || tokens["id_token"] == nil {
		t.Errorf("CIBA token for demo-ciba: %d %v", resp.StatusCode, tokens)
	}
}
