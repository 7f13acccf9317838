package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// deviceBrowserVars are the variables device.mjs reads: never inherited
// from the environment of `go test`.
var deviceBrowserVars = []string{
	"START_URL", "USER_CODE", "USERNAME", "PASSWORD", "CLIENT_NAME", "ARTIFACT_DIR", "CHROMIUM_PATH", "FLOW_TIMEOUT_MS",
}

// DeviceBrowserSummary is the RESULT line of device.mjs.
type DeviceBrowserSummary struct {
	OK           bool   `json:"ok"`
	SawLogin     bool   `json:"sawLogin"`
	Confirmation string `json:"confirmation"`
	Final        string `json:"final"`
	Phone        *struct {
		Viewport    int `json:"viewport"`
		ScrollWidth int `json:"scrollWidth"`
	} `json:"phone"`
	Navigations   []string `json:"navigations"`
	Screenshots   []string `json:"screenshots"`
	ConsoleErrors []string `json:"consoleErrors"`
	DurationMs    int64    `json:"durationMs"`
	Error         string   `json:"error"`
}

// RunDeviceBrowser runs tests/browser/device.mjs in Chromium with env
// (START_URL, USER_CODE, USERNAME, PASSWORD, CLIENT_NAME: see device.mjs)
// and returns its summary. Screenshots go to tests/artifacts/<TestName>/.
// Skipped without /usr/bin/chromium or node, except under CI=true.
func RunDeviceBrowser(t *testing.T, env map[string]string) (*DeviceBrowserSummary, string) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (required under CI=true): install chromium: apt-get install -y chromium", chromiumPath)
		}
		t.Skipf("%s is missing (install chromium: apt-get install -y chromium): %v", chromiumPath, err)
	}
	node := requireNode(t)
	dir, err := filepath.Abs(browserDir)
	if err != nil {
		t.Fatal(err)
	}
	ensureBrowserModules(t, dir)
	artifacts := testArtifactDir(t)
	t.Logf("browser artifacts: %s", artifacts)
	vars := map[string]string{
		"CHROMIUM_PATH":   chromiumPath,
		"FLOW_TIMEOUT_MS": fmt.Sprint(browserFlowWatchdog.Milliseconds()),
		"ARTIFACT_DIR":    artifacts,
	}
	for k, v := range env {
		vars[k] = v
	}

	ctx, cancel := context.WithTimeout(context.Background(), browserFlowTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "device.mjs")
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		inherited := true
		for _, v := range deviceBrowserVars {
			inherited = inherited && name != v
		}
		if inherited {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "NO_COLOR=1")
	// On timeout, interrupt first: playwright-core then closes Chromium.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = browserStopDelay
	var stdout bytes.Buffer
	logw := &lineLogger{t: t, prefix: "browser: "}
	cmd.Stdout = &teeWriter{a: logw, b: &stdout}
	cmd.Stderr = logw
	err = cmd.Run()
	logw.Flush()
	if ctx.Err() != nil {
		t.Fatalf("device.mjs did not finish within %s", browserFlowTimeout)
	}
	line := resultLine(stdout.String())
	if err != nil {
		t.Fatalf("device browser flow failed (%v); screenshots in %s", err, artifacts)
	}
	var s DeviceBrowserSummary
	if err := json.Unmarshal([]byte(line), &s); err != nil {
		t.Fatalf("device.mjs RESULT: %v: %q", err, line)
	}
	return &s, artifacts
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

	if os.Getenv("UPDATE_DOCS") == "1" {
		png, err := os.ReadFile(filepath.Join(artifacts, "confirm.png"))
		if err != nil {
			t.Fatal(err)
		}
		root, err := repoRoot()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "docs", "device.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote docs/device.png")
	}
}
