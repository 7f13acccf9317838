package tests

// An external OpenID Provider for the end-to-end tests: panva's certified
// oidc-provider (npm, v9), run by tests/oidcprovider/server.mjs, for the
// tests of Portcullis' login gateway (oidc_login), which signs browsers in
// against an upstream provider, and of the API guard (bearer_auth), which
// accepts the access tokens it issues (guard_external_test.go).
//
//	op := StartOIDCProvider(t, []map[string]any{{
//		"client_id": "portcullis", "client_secret": "s3cret",
//		"redirect_uris": []string{gw.URL("/callback")}, // the gateway's redirect URI
//	}}, map[string]map[string]any{
//		"alice": {"email": "alice@example.com", "groups": []string{"admins"}},
//	})
//	res := OPSignIn(t, NewBrowser(t), gw.URL("/private"), "alice")
//	// res.FinalURL is the protected page, res.Body its content.
//
// The provider's login page (devInteractions) accepts any login and any
// password; the login typed selects the account of the accounts map (an
// unknown login signs in a user with only a sub). Consent is given on the
// user's behalf (no consent page) unless the request says prompt=consent;
// OPSignIn submits the consent page when it is shown.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/html"
)

const (
	// opDir is the node project, relative to this package's directory (the
	// working directory of go test).
	opDir = "oidcprovider"
	// opReadyTimeout bounds the wait for server.mjs's READY line.
	opReadyTimeout = 30 * time.Second
	// opStopTimeout is how long server.mjs has to exit after SIGTERM.
	opStopTimeout = 5 * time.Second
	// opNPMTimeout bounds `npm ci`.
	opNPMTimeout = 5 * time.Minute
	// opSignInMaxSteps bounds the requests of one OPSignIn.
	opSignInMaxSteps = 20
)

// ExternalOP is a running oidc-provider (see StartOIDCProvider).
type ExternalOP struct {
	// Issuer is http://127.0.0.1:Port, the provider's issuer identifier and
	// base URL; its discovery document is at
	// Issuer + "/.well-known/openid-configuration".
	Issuer string
	Port   int
	// Clients and Accounts are what it was started with.
	Clients  []map[string]any
	Accounts map[string]map[string]any

	cmd     *exec.Cmd
	logs    *syncBuffer
	done    chan struct{} // closed once the process has exited
	waitErr error         // the process's exit status, once done is closed
}

// Logs returns what the provider printed so far (stdout and stderr).
func (op *ExternalOP) Logs() string { return op.logs.String() }

// URL returns the provider's URL for path.
func (op *ExternalOP) URL(path string) string { return op.Issuer + path }

// Discover fetches the provider's discovery document.
func (op *ExternalOP) Discover(t testing.TB) *Discovery {
	t.Helper()
	resp, body := doRequest(t, &http.Client{Timeout: requestTimeout}, http.MethodGet, op.URL("/.well-known/openid-configuration"), nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("oidc-provider discovery: status %d: %s", resp.StatusCode, body)
	}
	var d Discovery
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatalf("decoding oidc-provider discovery: %v: %s", err, body)
	}
	if err := json.Unmarshal(body, &d.Raw); err != nil {
		t.Fatalf("decoding oidc-provider discovery: %v", err)
	}
	return &d
}

// AddClient registers more clients with the running provider (POST
// /test/clients, a test-only endpoint of server.mjs), for a relying party
// whose redirect URIs are only known after the provider started: start the
// provider, put its Issuer in the gateway's Caddyfile, start the gateway,
// then add the gateway as a client. A client_id already known is replaced.
func (op *ExternalOP) AddClient(t testing.TB, clients ...map[string]any) {
	t.Helper()
	b, err := json.Marshal(clients)
	if err != nil {
		t.Fatalf("encoding clients: %v", err)
	}
	resp, body := doRequest(t, &http.Client{Timeout: requestTimeout}, http.MethodPost, op.URL("/test/clients"),
		strings.NewReader(string(b)), http.Header{"Content-Type": {"application/json"}})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("oidc-provider rejected the clients: status %d: %s", resp.StatusCode, body)
	}
	op.Clients = append(op.Clients, clients...)
}

// StartOIDCProvider starts oidc-provider on a free 127.0.0.1 port with the
// given clients (oidc-provider client metadata, snake_case, passed through
// unchanged: client_id, client_secret, redirect_uris,
// post_logout_redirect_uris, response_types, grant_types,
// token_endpoint_auth_method, backchannel_logout_uri,
// backchannel_logout_session_required...) and accounts (login id -> claims:
// sub, email, email_verified, name, preferred_username, groups; sub defaults
// to the login id). It is stopped when the test ends; its output is logged
// if the test failed.
//
// It runs `npm ci` in tests/oidcprovider first when its node_modules is
// missing. Without node on PATH the test is skipped, except under CI=true
// where that is a failure.
func StartOIDCProvider(t *testing.T, clients []map[string]any, accounts map[string]map[string]any) *ExternalOP {
	t.Helper()
	return StartOIDCProviderWithEnv(t, clients, accounts, nil)
}

// StartOIDCProviderWithEnv is StartOIDCProvider with extra environment
// variables for server.mjs (see its header): ACCESS_TOKEN_TTL=<seconds>,
// ROTATE_REFRESH_TOKENS=true, ISS_WITH_ID_TOKEN=true (iss in
// authorization responses with an ID token too), REQUIRE_PAR=true (pushed
// authorization requests required of every client) or
// CONFORM_ID_TOKEN_CLAIMS=true (scope claims only in userinfo when an
// access token is issued); for APIs, RESOURCE_SERVERS_JSON (resource
// indicator -> scope, jwt or opaque format, signing alg),
// CLIENT_CREDENTIALS=true and REVOCATION=true. The same variables in go
// test's own environment are ignored.
func StartOIDCProviderWithEnv(t *testing.T, clients []map[string]any, accounts map[string]map[string]any, env map[string]string) *ExternalOP {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node is not on PATH (required under CI=true): %v", err)
		}
		t.Skipf("node is not on PATH: %v", err)
	}
	dir, err := filepath.Abs(opDir)
	if err != nil {
		t.Fatal(err)
	}
	ensureOPDeps(t, dir)

	if clients == nil {
		clients = []map[string]any{}
	}
	if accounts == nil {
		accounts = map[string]map[string]any{}
	}
	clientsJSON, err := json.Marshal(clients)
	if err != nil {
		t.Fatalf("encoding clients: %v", err)
	}
	accountsJSON, err := json.Marshal(accounts)
	if err != nil {
		t.Fatalf("encoding accounts: %v", err)
	}

	// freePort releases the port before node binds it: retry if another
	// process took it meanwhile.
	var lastLogs string
	for attempt := 0; attempt < 3; attempt++ {
		port := freePort(t)
		op := &ExternalOP{
			Issuer:   fmt.Sprintf("http://127.0.0.1:%d", port),
			Port:     port,
			Clients:  clients,
			Accounts: accounts,
			logs:     &syncBuffer{},
			done:     make(chan struct{}),
		}
		vars := []string{
			fmt.Sprintf("PORT=%d", port),
			"ISSUER=" + op.Issuer,
			"CLIENTS_JSON=" + string(clientsJSON),
			"ACCOUNTS_JSON=" + string(accountsJSON),
			"NO_COLOR=1",
		}
		for k, v := range env {
			vars = append(vars, k+"="+v)
		}
		err := op.start(node, dir, vars)
		if err == nil {
			t.Cleanup(func() {
				op.stop()
				if t.Failed() {
					t.Logf("oidc-provider (%s) output:\n%s", op.Issuer, op.Logs())
				}
			})
			return op
		}
		lastLogs = op.Logs()
		// Another process may take the port between freePort and node's
		// bind; and on a loaded machine node has been seen to stall at
		// start-up once in a long while: both are worth another try.
		if !strings.Contains(lastLogs, "EADDRINUSE") && !errors.Is(err, errOPNotReady) {
			t.Fatalf("starting oidc-provider: %v\noutput:\n%s", err, lastLogs)
		}
		t.Logf("starting oidc-provider, attempt %d: %v; retrying", attempt+1, err)
	}
	t.Fatalf("starting oidc-provider: not ready after 3 attempts\noutput:\n%s", lastLogs)
	return nil
}

// errOPNotReady is start's error when server.mjs did not say READY in time.
var errOPNotReady = errors.New("oidc-provider did not become ready")

// start runs server.mjs and waits for its READY line.
func (op *ExternalOP) start(node, dir string, env []string) error {
	cmd := exec.Command(node, "server.mjs")
	cmd.Dir = dir
	cmd.Env = append(opInheritedEnv(), env...)
	cmd.Stderr = op.logs
	cmd.WaitDelay = opStopTimeout
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	op.cmd = cmd

	ready := make(chan struct{})
	want := "READY " + op.Issuer
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(op.logs, line)
			if !signalled && strings.TrimSpace(line) == want {
				signalled = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		op.waitErr = cmd.Wait()
		close(op.done)
	}()

	timer := time.NewTimer(opReadyTimeout)
	defer timer.Stop()
	select {
	case <-ready:
		return nil
	case <-op.done:
		return fmt.Errorf("node server.mjs exited before it was ready: %v", op.waitErr)
	case <-timer.C:
		op.stop()
		return fmt.Errorf("%w: no %q line within %s", errOPNotReady, want, opReadyTimeout)
	}
}

// opServerVars are server.mjs's settings: a test sets them, the
// environment of go test never does.
var opServerVars = []string{
	"PORT", "ISSUER", "CLIENTS_JSON", "ACCOUNTS_JSON", "ACCESS_TOKEN_TTL", "ROTATE_REFRESH_TOKENS",
	"ISS_WITH_ID_TOKEN", "REQUIRE_PAR", "CONFORM_ID_TOKEN_CLAIMS",
	"RESOURCE_SERVERS_JSON", "CLIENT_CREDENTIALS", "REVOCATION", "LOG_GRANTS",
}

// opInheritedEnv is the environment of go test without opServerVars.
func opInheritedEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.Contains(opServerVars, name)
	})
}

// stop sends SIGTERM, waits opStopTimeout, then kills.
func (op *ExternalOP) stop() {
	if op.cmd == nil || op.cmd.Process == nil {
		return
	}
	select {
	case <-op.done:
		return
	default:
	}
	if err := op.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		_ = op.cmd.Process.Kill()
	}
	select {
	case <-op.done:
	case <-time.After(opStopTimeout):
		_ = op.cmd.Process.Kill()
		<-op.done
	}
}

// opDeps installs tests/oidcprovider's dependencies once per test binary.
var opDeps struct {
	once sync.Once
	err  error
	out  string
}

// ensureOPDeps runs `npm ci` in dir when node_modules lacks oidc-provider.
// Every caller waits for the one install; a failed install fails each of
// them.
func ensureOPDeps(t *testing.T, dir string) {
	t.Helper()
	opDeps.once.Do(func() {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider", "package.json")); err == nil {
			return
		}
		npm, err := exec.LookPath("npm")
		if err != nil {
			opDeps.err = fmt.Errorf("node_modules missing in %s and npm is not on PATH: %w", dir, err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), opNPMTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = dir
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		opDeps.out = string(out)
		if err != nil {
			opDeps.err = fmt.Errorf("npm ci in %s: %w", dir, err)
		}
	})
	if opDeps.err != nil {
		t.Fatalf("%v\n%s", opDeps.err, opDeps.out)
	}
}

// ---------------------------------------------------------------------------
// Browser flow through the provider

// OPSignInResult is where OPSignIn stopped.
type OPSignInResult struct {
	// FinalURL is the URL of the last response: the first that is neither a
	// redirect, nor one of the provider's pages, nor an auto-submitting
	// form_post page.
	FinalURL *url.URL
	// Status and Body are that response's.
	Status int
	Body   string
	// Steps lists the requests made, for failure messages.
	Steps []string
}

// OPSignIn drives a browser through a sign-in at an oidc-provider started by
// StartOIDCProvider: with client (see NewBrowser: a cookie jar, no redirect
// following) it GETs startURL, which may be any URL whose redirects lead to
// the provider's authorization endpoint (a page behind Portcullis' login
// gateway, say), and then
//   - follows redirects (relative or absolute Location; 307/308 repeat the
//     method and form, others GET);
//   - submits the provider's login form with login and a password;
//   - submits its consent form, and its logout confirmation (confirming the
//     sign-out), when they are shown;
//   - POSTs auto-submitting pages (response_mode=form_post: a page whose
//     POST form has only hidden inputs and an action on another origin) as a
//     browser's script would, with the page's origin as Origin;
//
// and it stops at the first response that is none of those, which it
// returns. More than opSignInMaxSteps requests fail the test.
func OPSignIn(t testing.TB, client *http.Client, startURL, login string) *OPSignInResult {
	t.Helper()
	target, err := url.Parse(startURL)
	if err != nil {
		t.Fatalf("OPSignIn: start URL %q: %v", startURL, err)
	}
	res := &OPSignInResult{}
	method := http.MethodGet
	var form url.Values
	var origin, referer string
	for i := 0; i < opSignInMaxSteps; i++ {
		header := http.Header{"Accept": {"text/html,application/xhtml+xml,*/*;q=0.8"}}
		var body io.Reader
		if method == http.MethodPost {
			body = strings.NewReader(form.Encode())
			header.Set("Content-Type", "application/x-www-form-urlencoded")
			if origin != "" {
				header.Set("Origin", origin)
			}
			if referer != "" {
				header.Set("Referer", referer)
			}
		}
		resp, page := doRequest(t, client, method, target.String(), body, header)
		step := fmt.Sprintf("%s %s -> %d", method, target.Redacted(), resp.StatusCode)

		if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode < 400 && loc != "" {
			next, err := target.Parse(loc)
			if err != nil {
				res.Steps = append(res.Steps, step+" "+loc)
				t.Fatalf("OPSignIn: bad Location %q: %v\nsteps:\n  %s", loc, err, strings.Join(res.Steps, "\n  "))
			}
			res.Steps = append(res.Steps, step+" "+next.Redacted())
			if resp.StatusCode != http.StatusTemporaryRedirect && resp.StatusCode != http.StatusPermanentRedirect {
				method, form = http.MethodGet, nil
			}
			origin, referer = "", ""
			target = next
			continue
		}

		if f, kind := opPageForm(target, page, login); f != nil {
			res.Steps = append(res.Steps, step+" ("+kind+")")
			if kind == "login form" && login == "" {
				t.Fatalf("OPSignIn: the provider asks for a login and none was given\nsteps:\n  %s", strings.Join(res.Steps, "\n  "))
			}
			if kind == "form_post" {
				origin, referer = opOrigin(target), ""
			} else {
				origin, referer = opOrigin(target), target.String()
			}
			method, form, target = http.MethodPost, f.Fields, f.Action
			continue
		}

		res.Steps = append(res.Steps, step)
		res.FinalURL, res.Status, res.Body = target, resp.StatusCode, string(page)
		return res
	}
	t.Fatalf("OPSignIn: still going after %d requests (a loop?)\nsteps:\n  %s", opSignInMaxSteps, strings.Join(res.Steps, "\n  "))
	return nil
}

// opPageForm returns the form OPSignIn submits on page, filled in, and what
// it is: oidc-provider's dev login form ("login form"), its consent form
// ("consent form"), its logout confirmation ("logout form"), or an
// auto-submitting cross-origin POST ("form_post"). It returns nil for any
// other page.
func opPageForm(page *url.URL, body []byte, login string) (*Form, string) {
	forms, err := ParseForms(page, body)
	if err != nil {
		return nil, ""
	}
	for _, f := range forms {
		if f.Method != http.MethodPost {
			continue
		}
		switch {
		case f.Fields.Get("prompt") == "login" && f.HasField("login") && f.HasField("password"):
			f.Fields.Set("login", login)
			f.Fields.Set("password", "any-password")
			return f, "login form"
		case f.Fields.Get("prompt") == "consent":
			return f, "consent form"
		case f.HasField("xsrf") && strings.HasSuffix(f.Action.Path, "/session/end/confirm"):
			// The "Yes, sign me out" button is outside the form.
			f.Fields.Set("logout", "yes")
			return f, "logout form"
		}
	}
	if f := opAutoPostForm(page, body); f != nil {
		return f, "form_post"
	}
	return nil, ""
}

// opAutoPostForm returns the page's auto-submitting form_post form: a POST
// form whose action is on another origin and whose inputs are all hidden
// (at least one). Its buttons, if any, are not submitted.
func opAutoPostForm(page *url.URL, body []byte) *Form {
	doc, err := html.Parse(strings.NewReader(string(body)))
	if err != nil {
		return nil
	}
	var found *Form
	var visit func(n *html.Node)
	visit = func(n *html.Node) {
		if found != nil {
			return
		}
		if n.Type == html.ElementNode && n.Data == "form" && strings.EqualFold(attr(n, "method"), "post") {
			action, err := page.Parse(attr(n, "action"))
			if err != nil || opOrigin(action) == opOrigin(page) {
				return
			}
			f := &Form{Action: action, Method: http.MethodPost, Fields: url.Values{}}
			onlyHidden := true
			var inputs func(c *html.Node)
			inputs = func(c *html.Node) {
				if c.Type == html.ElementNode {
					switch c.Data {
					case "input":
						if strings.EqualFold(attr(c, "type"), "hidden") {
							if name := attr(c, "name"); name != "" {
								f.Fields.Add(name, attr(c, "value"))
							}
						} else if t := strings.ToLower(attr(c, "type")); t != "submit" && t != "button" && t != "image" {
							onlyHidden = false
						}
					case "textarea", "select":
						onlyHidden = false
					}
				}
				for k := c.FirstChild; k != nil; k = k.NextSibling {
					inputs(k)
				}
			}
			inputs(n)
			if onlyHidden && len(f.Fields) > 0 {
				found = f
			}
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			visit(c)
		}
	}
	visit(doc)
	return found
}

// opOrigin returns the scheme://host of u.
func opOrigin(u *url.URL) string { return strings.ToLower(u.Scheme + "://" + u.Host) }

// ---------------------------------------------------------------------------
// Small helpers of the self-test

// opRandom returns 32 random bytes, base64url-encoded.
func opRandom(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// opJWTClaims decodes a JWT's payload without verifying anything.
func opJWTClaims(t testing.TB, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS compact serialization: %q", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatalf("JWT payload: %v: %s", err, raw)
	}
	return claims
}

// opCallbackServer is a relying party's endpoints for the self-test: /cb
// (redirect_uri), /bye (post_logout_redirect_uri) and /backchannel
// (backchannel_logout_uri). It records the forms POSTed to it.
type opCallbackServer struct {
	*httptest.Server
	mu          sync.Mutex
	posts       []url.Values // POSTs to /cb
	backchannel []url.Values // POSTs to /backchannel
}

func newOPCallbackServer(t *testing.T) *opCallbackServer {
	s := &opCallbackServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/cb":
			if r.Method == http.MethodPost {
				if err := r.ParseForm(); err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				s.mu.Lock()
				s.posts = append(s.posts, r.PostForm)
				s.mu.Unlock()
			}
			fmt.Fprint(w, "callback ok")
		case "/bye":
			fmt.Fprint(w, "signed out")
		case "/backchannel":
			if err := r.ParseForm(); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			s.mu.Lock()
			s.backchannel = append(s.backchannel, r.PostForm)
			s.mu.Unlock()
			w.WriteHeader(http.StatusOK)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *opCallbackServer) recorded() (posts, backchannel []url.Values) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.posts), slices.Clone(s.backchannel)
}

func stepsContain(steps []string, sub string) bool {
	return slices.ContainsFunc(steps, func(s string) bool { return strings.Contains(s, sub) })
}

// ---------------------------------------------------------------------------
// Self-test

// TestOIDCProviderHarness checks the external provider and OPSignIn:
// discovery, code + PKCE with a refresh token for offline_access, the ID
// token's claims, userinfo, refresh, introspection, clients added at run
// time, the hybrid response type with form_post, PAR (offline_access kept
// with and without prompt=consent), single sign-on, and RP-initiated logout
// with back-channel logout.
func TestOIDCProviderHarness(t *testing.T) {
	rp := newOPCallbackServer(t)
	const (
		clientID     = "rp"
		clientSecret = "rp-secret"
		aliceSub     = "alice-0001"
	)
	redirectURI := rp.URL + "/cb"
	op := StartOIDCProvider(t, []map[string]any{{
		"client_id":                           clientID,
		"client_secret":                       clientSecret,
		"redirect_uris":                       []string{redirectURI},
		"post_logout_redirect_uris":           []string{rp.URL + "/bye"},
		"response_types":                      []string{"code", "code id_token"},
		"grant_types":                         []string{"authorization_code", "refresh_token", "implicit"},
		"token_endpoint_auth_method":          "client_secret_basic",
		"backchannel_logout_uri":              rp.URL + "/backchannel",
		"backchannel_logout_session_required": true,
	}}, map[string]map[string]any{
		"alice": {
			"sub":                aliceSub,
			"email":              "alice@example.com",
			"email_verified":     true,
			"name":               "Alice Example",
			"preferred_username": "alice",
			"groups":             []string{"admins", "devs"},
		},
	})

	// Discovery.
	d := op.Discover(t)
	if d.Issuer != op.Issuer {
		t.Fatalf("issuer %q, want %q", d.Issuer, op.Issuer)
	}
	for _, k := range []string{"pushed_authorization_request_endpoint", "end_session_endpoint", "introspection_endpoint", "userinfo_endpoint"} {
		if s, _ := d.Raw[k].(string); !strings.HasPrefix(s, op.Issuer+"/") {
			t.Errorf("discovery %s = %v", k, d.Raw[k])
		}
	}
	for _, k := range []string{"backchannel_logout_supported", "backchannel_logout_session_supported", "authorization_response_iss_parameter_supported", "claims_parameter_supported"} {
		if d.Raw[k] != true {
			t.Errorf("discovery %s = %v, want true", k, d.Raw[k])
		}
	}
	if !slices.Contains(d.CodeChallengeMethods, "S256") {
		t.Errorf("code_challenge_methods_supported = %v, want S256", d.CodeChallengeMethods)
	}
	if t.Failed() {
		t.FailNow()
	}

	// Authorization code + PKCE, offline_access without prompt=consent.
	browser := NewBrowser(t)
	verifier, state, nonce := opRandom(t), opRandom(t), opRandom(t)
	challenge := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {clientID},
		"redirect_uri":          {redirectURI},
		"scope":                 {"openid profile email groups offline_access"},
		"state":                 {state},
		"nonce":                 {nonce},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(challenge[:])},
		"code_challenge_method": {"S256"},
	}
	res := OPSignIn(t, browser, d.AuthorizationEndpoint+"?"+q.Encode(), "alice")
	t.Logf("code flow:\n  %s", strings.Join(res.Steps, "\n  "))
	if res.FinalURL.Path != "/cb" || res.Status != http.StatusOK || res.Body != "callback ok" {
		t.Fatalf("code flow ended at %s: %d %q", res.FinalURL, res.Status, res.Body)
	}
	if !stepsContain(res.Steps, "(login form)") || stepsContain(res.Steps, "(consent form)") {
		t.Errorf("want the login form and no consent form, steps:\n  %s", strings.Join(res.Steps, "\n  "))
	}
	cbq := res.FinalURL.Query()
	if cbq.Get("state") != state || cbq.Get("code") == "" {
		t.Fatalf("callback query %v: want code and state %q", cbq, state)
	}
	if cbq.Get("iss") != op.Issuer {
		t.Errorf("callback iss = %q, want %q (RFC 9207)", cbq.Get("iss"), op.Issuer)
	}

	resp, tok := PostForm(t, d.TokenEndpoint, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {cbq.Get("code")},
		"redirect_uri":  {redirectURI},
		"code_verifier": {verifier},
	}, clientID, clientSecret)
	if resp.StatusCode != http.StatusOK || tok == nil {
		t.Fatalf("token endpoint: status %d: %v", resp.StatusCode, tok)
	}
	accessToken, _ := tok["access_token"].(string)
	refreshToken, _ := tok["refresh_token"].(string)
	idToken, _ := tok["id_token"].(string)
	if accessToken == "" || refreshToken == "" || idToken == "" {
		t.Fatalf("token response lacks access_token, refresh_token or id_token: %v", tok)
	}
	if !strings.Contains(" "+tok["scope"].(string)+" ", " offline_access ") {
		t.Errorf("token response scope %q lacks offline_access", tok["scope"])
	}
	claims := opJWTClaims(t, idToken)
	for k, want := range map[string]any{
		"iss": op.Issuer, "aud": clientID, "sub": aliceSub, "nonce": nonce,
		"email": "alice@example.com", "email_verified": true, "name": "Alice Example",
	} {
		if claims[k] != want {
			t.Errorf("ID token %s = %v, want %v", k, claims[k], want)
		}
	}
	if groups, _ := claims["groups"].([]any); !slices.Contains(groups, any("admins")) {
		t.Errorf("ID token groups = %v, want admins among them", claims["groups"])
	}
	if sid, _ := claims["sid"].(string); sid == "" {
		t.Errorf("ID token has no sid: %v", claims)
	}

	// Userinfo with the access token.
	resp, body := doRequest(t, &http.Client{Timeout: requestTimeout}, http.MethodGet, d.UserinfoEndpoint, nil,
		http.Header{"Authorization": {"Bearer " + accessToken}})
	var userinfo map[string]any
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &userinfo) != nil || userinfo["sub"] != aliceSub || userinfo["email"] != "alice@example.com" {
		t.Errorf("userinfo: %d %s", resp.StatusCode, body)
	}

	// Refresh and introspection.
	resp, refreshed := PostForm(t, d.TokenEndpoint, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}, clientID, clientSecret)
	if resp.StatusCode != http.StatusOK || refreshed["access_token"] == nil || refreshed["id_token"] == nil {
		t.Errorf("refresh: status %d: %v", resp.StatusCode, refreshed)
	}
	resp, intro := PostForm(t, d.IntrospectionEndpoint, url.Values{"token": {accessToken}}, clientID, clientSecret)
	if resp.StatusCode != http.StatusOK || intro["active"] != true || intro["sub"] != aliceSub {
		t.Errorf("introspection: status %d: %v", resp.StatusCode, intro)
	}

	// Single sign-on: the same browser is not asked to log in again.
	q.Set("state", opRandom(t))
	sso := OPSignIn(t, browser, d.AuthorizationEndpoint+"?"+q.Encode(), "alice")
	if sso.FinalURL.Path != "/cb" || sso.FinalURL.Query().Get("code") == "" || stepsContain(sso.Steps, "(login form)") {
		t.Errorf("single sign-on: want a code without the login form, steps:\n  %s", strings.Join(sso.Steps, "\n  "))
	}

	// A pushed authorization request without prompt=consent keeps
	// offline_access too (the login gateway's `par` option with a refresh
	// token): server.mjs reads the scope from the pushed request.
	ssoVerifier := opRandom(t)
	ssoChallenge := sha256.Sum256([]byte(ssoVerifier))
	resp, pushed := PostForm(t, d.Raw["pushed_authorization_request_endpoint"].(string), url.Values{
		"client_id":             {clientID},
		"response_type":         {"code"},
		"redirect_uri":          {redirectURI},
		"scope":                 {"openid offline_access"},
		"state":                 {"pushed-sso"},
		"nonce":                 {opRandom(t)},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(ssoChallenge[:])},
		"code_challenge_method": {"S256"},
	}, clientID, clientSecret)
	if resp.StatusCode != http.StatusCreated || pushed["request_uri"] == nil {
		t.Fatalf("PAR: status %d: %v", resp.StatusCode, pushed)
	}
	pushedSSO := OPSignIn(t, browser, d.AuthorizationEndpoint+"?"+url.Values{"client_id": {clientID}, "request_uri": {pushed["request_uri"].(string)}}.Encode(), "alice")
	if pushedSSO.FinalURL.Path != "/cb" || pushedSSO.FinalURL.Query().Get("state") != "pushed-sso" || stepsContain(pushedSSO.Steps, "(consent form)") {
		t.Fatalf("PAR without prompt: want the callback without a consent page, steps:\n  %s", strings.Join(pushedSSO.Steps, "\n  "))
	}
	if resp, tok := PostForm(t, d.TokenEndpoint, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {pushedSSO.FinalURL.Query().Get("code")},
		"redirect_uri":  {redirectURI},
		"code_verifier": {ssoVerifier},
	}, clientID, clientSecret); resp.StatusCode != http.StatusOK || tok["refresh_token"] == nil {
		t.Errorf("PAR without prompt: status %d: %v, want a refresh token", resp.StatusCode, tok)
	}

	// Hybrid response type with response_mode=form_post, in a new browser.
	state2, nonce2 := opRandom(t), opRandom(t)
	// The form_post flow is a client added after the start.
	op.AddClient(t, map[string]any{
		"client_id":      "late-rp",
		"client_secret":  "late-secret",
		"redirect_uris":  []string{redirectURI},
		"response_types": []string{"code id_token"},
		"grant_types":    []string{"authorization_code", "implicit"},
	})
	q2 := url.Values{
		"response_type": {"code id_token"},
		"response_mode": {"form_post"},
		"client_id":     {"late-rp"},
		"redirect_uri":  {redirectURI},
		"scope":         {"openid email"},
		"state":         {state2},
		"nonce":         {nonce2},
	}
	res2 := OPSignIn(t, NewBrowser(t), d.AuthorizationEndpoint+"?"+q2.Encode(), "alice")
	t.Logf("form_post flow:\n  %s", strings.Join(res2.Steps, "\n  "))
	if res2.FinalURL.String() != redirectURI || res2.Status != http.StatusOK || res2.Body != "callback ok" {
		t.Fatalf("form_post flow ended at %s: %d %q", res2.FinalURL, res2.Status, res2.Body)
	}
	if last := res2.Steps[len(res2.Steps)-1]; !strings.HasPrefix(last, "POST "+redirectURI) {
		t.Errorf("last step %q: want the form_post POST to the callback", last)
	}
	posts, _ := rp.recorded()
	if len(posts) != 1 {
		t.Fatalf("callback server got %d POSTs, want 1", len(posts))
	}
	post := posts[0]
	if post.Get("code") == "" || post.Get("id_token") == "" || post.Get("state") != state2 {
		t.Fatalf("form_post fields %v: want code, id_token and state %q", post, state2)
	}
	if c := opJWTClaims(t, post.Get("id_token")); c["sub"] != aliceSub || c["nonce"] != nonce2 || c["c_hash"] == nil || c["aud"] != "late-rp" {
		t.Errorf("form_post ID token claims %v: want sub %q, aud late-rp, nonce and c_hash", c, aliceSub)
	}
	if resp, tok2 := PostForm(t, d.TokenEndpoint, url.Values{
		"grant_type":   {"authorization_code"},
		"code":         {post.Get("code")},
		"redirect_uri": {redirectURI},
	}, "late-rp", "late-secret"); resp.StatusCode != http.StatusOK || tok2["id_token"] == nil {
		t.Errorf("late-rp token response: status %d: %v", resp.StatusCode, tok2)
	}

	// prompt=consent shows the consent page, which OPSignIn submits; a
	// pushed authorization request (PAR) with offline_access gets a refresh
	// token; an unknown login signs in a user with only a sub.
	parVerifier := opRandom(t)
	parChallenge := sha256.Sum256([]byte(parVerifier))
	resp, par := PostForm(t, d.Raw["pushed_authorization_request_endpoint"].(string), url.Values{
		"client_id":             {clientID}, // an authorization request parameter, even with Basic auth
		"response_type":         {"code"},
		"redirect_uri":          {redirectURI},
		"scope":                 {"openid email offline_access"},
		"prompt":                {"consent"},
		"state":                 {"par-state"},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(parChallenge[:])},
		"code_challenge_method": {"S256"},
	}, clientID, clientSecret)
	requestURI, _ := par["request_uri"].(string)
	if resp.StatusCode != http.StatusCreated || requestURI == "" {
		t.Fatalf("PAR: status %d: %v", resp.StatusCode, par)
	}
	res3 := OPSignIn(t, NewBrowser(t), d.AuthorizationEndpoint+"?"+url.Values{"client_id": {clientID}, "request_uri": {requestURI}}.Encode(), "bob")
	if !stepsContain(res3.Steps, "(login form)") || !stepsContain(res3.Steps, "(consent form)") || res3.FinalURL.Query().Get("state") != "par-state" {
		t.Fatalf("PAR + prompt=consent: want the login and consent forms, then the callback; steps:\n  %s", strings.Join(res3.Steps, "\n  "))
	}
	resp, tok3 := PostForm(t, d.TokenEndpoint, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {res3.FinalURL.Query().Get("code")},
		"redirect_uri":  {redirectURI},
		"code_verifier": {parVerifier},
	}, clientID, clientSecret)
	if resp.StatusCode != http.StatusOK || tok3["refresh_token"] == nil {
		t.Errorf("PAR token response: status %d: %v, want a refresh token", resp.StatusCode, tok3)
	} else if c := opJWTClaims(t, tok3["id_token"].(string)); c["sub"] != "bob" || c["email"] != nil {
		t.Errorf("unknown login's ID token claims %v: want sub bob and no email", c)
	}

	// RP-initiated logout from the first browser: the confirmation page, a
	// back-channel logout token to the client, then post_logout_redirect_uri.
	logoutState := opRandom(t)
	lq := url.Values{
		"id_token_hint":            {idToken},
		"post_logout_redirect_uri": {rp.URL + "/bye"},
		"state":                    {logoutState},
	}
	out := OPSignIn(t, browser, d.EndSessionEndpoint+"?"+lq.Encode(), "")
	t.Logf("logout:\n  %s", strings.Join(out.Steps, "\n  "))
	if out.FinalURL.Path != "/bye" || out.FinalURL.Query().Get("state") != logoutState || out.Body != "signed out" {
		t.Fatalf("logout ended at %s: %d %q", out.FinalURL, out.Status, out.Body)
	}
	_, bc := rp.recorded()
	if len(bc) != 1 || bc[0].Get("logout_token") == "" {
		t.Fatalf("back-channel logout requests %v, want one with a logout_token", bc)
	}
	lt := opJWTClaims(t, bc[0].Get("logout_token"))
	events, _ := lt["events"].(map[string]any)
	if lt["sub"] != aliceSub || lt["sid"] != claims["sid"] || lt["aud"] != clientID || events["http://schemas.openid.net/event/backchannel-logout"] == nil {
		t.Errorf("logout token claims %v: want sub %q, sid %v and the back-channel logout event", lt, aliceSub, claims["sid"])
	}

	// Signed out: the next authorization request shows the login form again.
	q.Set("state", opRandom(t))
	again := OPSignIn(t, browser, d.AuthorizationEndpoint+"?"+q.Encode(), "alice")
	if !stepsContain(again.Steps, "(login form)") {
		t.Errorf("after logout: want the login form, steps:\n  %s", strings.Join(again.Steps, "\n  "))
	}
}
