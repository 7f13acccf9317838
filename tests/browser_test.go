package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The real-browser harness: the scripts of tests/browser (flow.mjs, device.mjs,
// ciba.mjs, on the skeleton of runner.mjs) drive Chromium (Debian's package,
// through playwright-core, which never downloads a browser) through the
// login, consent, logout, device and CIBA pages. See runBrowserScript.
const (
	browserDir         = "browser"
	artifactsDir       = "artifacts"
	chromiumPath       = "/usr/bin/chromium"
	browserFlowTimeout = 90 * time.Second
	// browserFlowWatchdog is a script's own deadline: shorter than
	// browserFlowTimeout, so a hung step ends with its message and a closed
	// browser rather than a kill.
	browserFlowWatchdog = 75 * time.Second
	// browserStopDelay is how long a script has to close Chromium after an
	// interrupt before it is killed.
	browserStopDelay  = 10 * time.Second
	browserNPMTimeout = 3 * time.Minute
)

// browserVars are the variables the scripts of tests/browser read: they are
// never inherited from the environment of `go test`, only set by
// runBrowserScript.
var browserVars = []string{
	"START_URL", "USERNAME", "PASSWORD", "EXPECT_URL_PREFIX", "EXPECT_TEXT",
	"ARTIFACT_DIR", "LOGOUT_URL", "CHROMIUM_PATH", "FLOW_TIMEOUT_MS",
	"SEL_USERNAME", "SEL_PASSWORD", "SEL_LOGIN", "SEL_ALLOW", "SEL_CONFIRM",
	"USER_CODE", "CLIENT_NAME", "BINDING_MESSAGE",
}

// browserModules is the one `npm ci` of tests/browser per test binary.
var browserModules struct {
	once sync.Once
	ran  bool // npm ci ran (node_modules was missing or stale)
	took time.Duration
	out  []byte
	err  error
}

// BrowserSummary is the RESULT line of flow.mjs.
type BrowserSummary struct {
	browserResult
	StartURL   string   `json:"startUrl"`
	FinalURL   string   `json:"finalUrl"`
	SawLogin   bool     `json:"sawLogin"`
	SawConsent bool     `json:"sawConsent"`
	LoggedOut  *bool    `json:"loggedOut"`
	Visited    []string `json:"visited"`
	Titles     []struct {
		Step, URL, Title string
	} `json:"titles"`
	FailedRequests []string `json:"failedRequests"`
}

// ParseBrowserSummary decodes what RunBrowserFlow returned.
func ParseBrowserSummary(t testing.TB, summary string) *BrowserSummary {
	t.Helper()
	var s BrowserSummary
	if err := json.Unmarshal([]byte(summary), &s); err != nil {
		t.Fatalf("decoding the browser flow's RESULT: %v: %s", err, summary)
	}
	return &s
}

// RunBrowserFlow runs tests/browser/flow.mjs in Chromium with env (START_URL,
// USERNAME, PASSWORD, EXPECT_URL_PREFIX, and optionally EXPECT_TEXT and
// LOGOUT_URL: see flow.mjs) and returns its JSON summary (the RESULT line;
// decode it with ParseBrowserSummary). See runBrowserScript.
func RunBrowserFlow(t *testing.T, env map[string]string) (summary string) {
	t.Helper()
	summary, _ = runBrowserScript(t, "flow.mjs", env)
	return summary
}

// runBrowserScript runs tests/browser/<script> in Chromium with env (the
// script's variables) and returns its JSON summary (the RESULT line) and the
// directory of its screenshots: tests/artifacts/<TestName>/ unless env sets
// ARTIFACT_DIR. The output of the script streams into the test log; a failed
// run fails the test.
//
// Without /usr/bin/chromium or node the test is skipped, except under
// CI=true where that is a failure. node_modules is installed with `npm ci`
// once per run when it is missing or does not match package-lock.json.
func runBrowserScript(t *testing.T, script string, env map[string]string) (summary, artifacts string) {
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

	vars := map[string]string{
		"CHROMIUM_PATH":   chromiumPath,
		"FLOW_TIMEOUT_MS": fmt.Sprint(browserFlowWatchdog.Milliseconds()),
	}
	for k, v := range env {
		vars[k] = v
	}
	if vars["ARTIFACT_DIR"] == "" {
		vars["ARTIFACT_DIR"] = testArtifactDir(t)
	}
	artifacts = vars["ARTIFACT_DIR"]
	t.Logf("browser artifacts: %s", artifacts)

	ctx, cancel := context.WithTimeout(context.Background(), browserFlowTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = dir
	cmd.Env = browserEnv(vars)
	// On timeout, interrupt first: playwright-core then closes Chromium.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = browserStopDelay
	var stdout bytes.Buffer
	logw := &lineLogger{t: t, prefix: "browser: "}
	cmd.Stdout = &teeWriter{a: logw, b: &stdout}
	cmd.Stderr = logw
	start := time.Now()
	err = cmd.Run()
	logw.Flush()
	t.Logf("%s took %s", script, time.Since(start).Round(time.Millisecond))

	summary = resultLine(stdout.String())
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within %s", script, browserFlowTimeout)
	}
	if err != nil {
		t.Fatalf("%s failed (%v); screenshots in %s", script, err, artifacts)
	}
	if summary == "" {
		t.Fatalf("%s printed no RESULT line", script)
	}
	return summary, artifacts
}

// runBrowserSummary runs script like runBrowserScript and decodes its RESULT
// line into an S.
func runBrowserSummary[S any](t *testing.T, script string, env map[string]string) (*S, string) {
	t.Helper()
	line, artifacts := runBrowserScript(t, script, env)
	var s S
	if err := json.Unmarshal([]byte(line), &s); err != nil {
		t.Fatalf("%s RESULT: %v: %q", script, err, line)
	}
	return &s, artifacts
}

// browserEnv is the environment of `go test` without any of the scripts'
// variables, plus vars.
func browserEnv(vars map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		inherited := true
		for _, v := range browserVars {
			if name == v {
				inherited = false
			}
		}
		if inherited {
			out = append(out, kv)
		}
	}
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	return append(out, "NO_COLOR=1")
}

// browserResult is the part of a RESULT line that every script of
// tests/browser has (runner.mjs fills it in).
type browserResult struct {
	OK            bool     `json:"ok"`
	Navigations   []string `json:"navigations"` // main-frame responses: "GET url -> status"
	Screenshots   []string `json:"screenshots"`
	ConsoleErrors []string `json:"consoleErrors"`
	DurationMs    int64    `json:"durationMs"`
	Error         string   `json:"error"`
}

// browserPhoneLayout is what the device and CIBA scripts measured of their
// page at phone size.
type browserPhoneLayout struct {
	Viewport    int `json:"viewport"`
	ScrollWidth int `json:"scrollWidth"`
}

// updateDocsScreenshot copies the screenshot artifacts/name to docs/doc
// (a picture in the README) when UPDATE_DOCS=1.
func updateDocsScreenshot(t *testing.T, artifacts, name, doc string) {
	t.Helper()
	if os.Getenv("UPDATE_DOCS") != "1" {
		return
	}
	png, err := os.ReadFile(filepath.Join(artifacts, name))
	if err != nil {
		t.Fatal(err)
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "docs", doc), png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote docs/%s", doc)
}

// testArtifactDir returns tests/artifacts/<TestName>/, emptied.
func testArtifactDir(t *testing.T) string {
	t.Helper()
	name := strings.NewReplacer("/", "_", "\\", "_", ":", "_", " ", "_").Replace(t.Name())
	dir, err := filepath.Abs(filepath.Join(artifactsDir, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// resultLine returns the JSON of the last "RESULT {...}" line of out.
func resultLine(out string) string {
	lines := strings.Split(out, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(lines[i]), "RESULT "); ok {
			return rest
		}
	}
	return ""
}

// teeWriter writes to a, then to b.
type teeWriter struct {
	a, b io.Writer
}

func (w *teeWriter) Write(p []byte) (int, error) {
	if _, err := w.a.Write(p); err != nil {
		return 0, err
	}
	return w.b.Write(p)
}

// ensureBrowserModules runs `npm ci` in dir, once per test binary, when its
// node_modules is missing or does not match package-lock.json.
func ensureBrowserModules(t *testing.T, dir string) {
	t.Helper()
	m := &browserModules
	m.once.Do(func() {
		stale := modulesMatchLock(dir)
		if stale == nil {
			return
		}
		m.out = []byte("npm ci needed: " + stale.Error() + "\n")
		npm, err := exec.LookPath("npm")
		if err != nil {
			m.err = fmt.Errorf("npm is not on PATH: %w", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), browserNPMTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		// playwright-core downloads nothing; say so anyway.
		cmd.Env = append(os.Environ(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1")
		cmd.WaitDelay = 5 * time.Second
		start := time.Now()
		out, err := cmd.CombinedOutput()
		m.ran, m.took, m.out = true, time.Since(start), append(m.out, out...)
		if err != nil {
			m.err = fmt.Errorf("npm ci in %s: %w", dir, err)
			return
		}
		m.err = modulesMatchLock(dir)
	})
	if m.err != nil {
		t.Fatalf("%v\n%s", m.err, m.out)
	}
	if m.ran {
		t.Logf("npm ci (tests/browser) took %s", m.took.Round(time.Millisecond))
	}
}

// modulesMatchLock checks that every package of dir/package-lock.json is
// installed in dir/node_modules at the locked version.
func modulesMatchLock(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return err
	}
	var lock struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		return fmt.Errorf("package-lock.json: %w", err)
	}
	n := 0
	for key, p := range lock.Packages {
		if !strings.HasPrefix(key, "node_modules/") {
			continue
		}
		n++
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(key), "package.json"))
		if err != nil {
			return err
		}
		var installed struct {
			Version string `json:"version"`
		}
		if err := json.Unmarshal(b, &installed); err != nil {
			return fmt.Errorf("%s/package.json: %w", key, err)
		}
		if installed.Version != p.Version {
			return fmt.Errorf("%s is %s, package-lock.json wants %s", key, installed.Version, p.Version)
		}
	}
	if n == 0 {
		return errors.New("package-lock.json lists no packages")
	}
	return nil
}

// TestBrowserSignsInAtTheEmbeddedServer signs alice in with Chromium at the
// embedded authorization server: authorization code with PKCE S256 for the
// webapp client, through the real login and consent pages, to its
// redirect_uri (a path the test site does not serve: the browser shows a 404,
// the URL is what counts). Then it signs out at the end_session_endpoint
// (no id_token_hint, so through the CSRF-protected confirmation page) and
// checks that the same authorization request asks for the password again.
func TestBrowserSignsInAtTheEmbeddedServer(t *testing.T) {
	g := StartGateway(t, baseCaddyfile)
	d := g.Discover(t)
	if d.EndSessionEndpoint == "" {
		t.Fatalf("discovery lacks end_session_endpoint: %v", d.Raw)
	}

	pkce := NewPKCE(t)
	state, nonce := RandomString(t), RandomString(t)
	callback := g.URL("/callback")
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {webappID},
		"redirect_uri":          {callback},
		"scope":                 {"openid profile"},
		"state":                 {state},
		"nonce":                 {nonce},
		"code_challenge":        {pkce.Challenge},
		"code_challenge_method": {"S256"},
	}
	authorizeURL := d.AuthorizationEndpoint + "?" + q.Encode()

	res := ParseBrowserSummary(t, RunBrowserFlow(t, map[string]string{
		"START_URL":         authorizeURL,
		"USERNAME":          aliceUsername,
		"PASSWORD":          alicePassword,
		"EXPECT_URL_PREFIX": callback,
		"LOGOUT_URL":        d.EndSessionEndpoint,
	}))
	t.Logf("login page: %v, consent page: %v, flow: %d ms", res.SawLogin, res.SawConsent, res.DurationMs)

	if !res.OK {
		t.Fatalf("flow.mjs exited 0 with ok=false: %s", res.Error)
	}
	if !res.SawLogin {
		t.Errorf("the browser was never shown the login page")
	}
	if res.LoggedOut == nil || !*res.LoggedOut {
		t.Errorf("the login page was not shown again after signing out")
	}

	final, err := url.Parse(res.FinalURL)
	if err != nil {
		t.Fatalf("final URL %q: %v", res.FinalURL, err)
	}
	if got := final.Scheme + "://" + final.Host + final.Path; got != callback {
		t.Fatalf("final URL %s is not the redirect_uri %s", res.FinalURL, callback)
	}
	fq := final.Query()
	if e := fq.Get("error"); e != "" {
		t.Fatalf("the server redirected with error=%s (%s)", e, fq.Get("error_description"))
	}
	code := fq.Get("code")
	if code == "" {
		t.Errorf("the callback %s carries no code", res.FinalURL)
	}
	if got := fq.Get("state"); got != state {
		t.Errorf("callback state = %q, want %q", got, state)
	}
	if got := fq.Get("iss"); got != d.Issuer {
		t.Errorf("callback iss = %q, want the issuer %q (RFC 9207)", got, d.Issuer)
	}
	if t.Failed() || code == "" {
		return
	}

	// The code the browser carried is a real one: it redeems (once, with the
	// PKCE verifier) for an ID token about alice with our nonce.
	resp, tok := PostForm(t, d.TokenEndpoint, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {callback},
		"code_verifier": {pkce.Verifier},
	}, webappID, webappSecret)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("redeeming the browser's code (after logout, %d ms after it was issued at most): status %d: %v", res.DurationMs, resp.StatusCode, tok)
	}
	idToken, _ := tok["id_token"].(string)
	if idToken == "" {
		t.Fatalf("token response without id_token: %v", tok)
	}
	idt, err := VerifyJWT(idToken, FetchJWKS(t, d.JWKSURI))
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	if got := idt.Claims["nonce"]; got != nonce {
		t.Errorf("ID token nonce = %v, want %q", got, nonce)
	}
	if got := idt.Claims["iss"]; got != d.Issuer {
		t.Errorf("ID token iss = %v, want %q", got, d.Issuer)
	}
}
