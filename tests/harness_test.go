// Package tests holds Portcullis' end-to-end tests: they build the real
// binary (Caddy with the Portcullis plugin), start it on loopback ports with a
// Caddyfile, and talk to it over HTTP as a browser and as OAuth clients would.
package tests

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"golang.org/x/net/html"
)

// baseCaddyfile is the standard test configuration: one user, a confidential
// web app, a public SPA, a machine-to-machine backend client and two APIs
// (one with JWT access tokens, one with opaque ones). It is a text/template
// with the fields of caddyfileData. The site binds to 127.0.0.1 only (Caddy
// would otherwise listen on every interface).
const baseCaddyfile = `{
	admin 127.0.0.1:{{.AdminPort}}
	portcullis {
		storage bbolt {{.Dir}}/portcullis.db
		issuer http://127.0.0.1:{{.Port}}
		signing_alg ES256
		insecure_cookies
		user alice {
			password alice-password
			email alice@example.com
			name "Alice Example"
			groups admins
		}
		client webapp {
			name "Demo Web App"
			secret webapp-secret
			redirect_uris http://127.0.0.1:{{.Port}}/callback
			post_logout_redirect_uris http://127.0.0.1:{{.Port}}/bye
			grant_types authorization_code refresh_token
			scopes openid profile email offline_access read:items
		}
		client spa {
			public
			redirect_uris http://127.0.0.1:{{.Port}}/spa-callback
			grant_types authorization_code refresh_token
		}
		client backend {
			secret backend-secret
			grant_types client_credentials
			api_access https://api.example.com read:items write:items
		}
		api https://api.example.com {
			name "Demo API"
			scopes read:items write:items
			token_format jwt
		}
		api https://opaque.example.com {
			scopes read:stuff
			token_format opaque
		}
	}
}
http://127.0.0.1:{{.Port}} {
	bind 127.0.0.1
	oauth_server
}
`

// Credentials and client settings of baseCaddyfile, shared by the tests.
const (
	aliceUsername  = "alice"
	alicePassword  = "alice-password"
	aliceEmail     = "alice@example.com"
	aliceName      = "Alice Example"
	webappID       = "webapp"
	webappSecret   = "webapp-secret"
	spaID          = "spa"
	backendID      = "backend"
	backendSecret  = "backend-secret"
	apiAudience    = "https://api.example.com"
	readinessPath  = "/.well-known/openid-configuration"
	readyTimeout   = 60 * time.Second
	stopTimeout    = 5 * time.Second
	requestTimeout = 15 * time.Second
)

// binaryPath is the Caddy+Portcullis binary TestMain built; buildErr and
// buildOutput say why there is none.
var (
	binaryPath  string
	buildErr    error
	buildOutput []byte
)

// TestMain builds the binary once for every test of the package, then runs
// them. A failed build does not stop the run: each test that needs the binary
// fails with the compiler's output in its own log (see requireBinary).
func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "portcullis-e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "creating build dir: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)

	root, err := repoRoot()
	if err != nil {
		buildErr = err
	} else {
		out := filepath.Join(dir, "caddy")
		if runtime.GOOS == "windows" {
			out += ".exe"
		}
		cmd := exec.Command("go", "build", "-o", out, "./cmd/portcullis")
		cmd.Dir = root
		buildOutput, buildErr = cmd.CombinedOutput()
		if buildErr == nil {
			binaryPath = out
		} else {
			fmt.Fprintf(os.Stderr, "go build ./cmd/portcullis failed: %v\n%s\n", buildErr, buildOutput)
		}
	}
	return m.Run()
}

// repoRoot returns the module root: the parent of this package's directory,
// which is the working directory of `go test`. It falls back on the location
// of this source file.
func repoRoot() (string, error) {
	var candidates []string
	if wd, err := os.Getwd(); err == nil {
		candidates = append(candidates, filepath.Dir(wd))
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		candidates = append(candidates, filepath.Dir(filepath.Dir(file)))
	}
	for _, c := range candidates {
		if _, err := os.Stat(filepath.Join(c, "cmd", "portcullis")); err == nil {
			return c, nil
		}
	}
	return "", fmt.Errorf("repository root with cmd/portcullis not found (tried %q)", candidates)
}

// requireBinary fails the test when TestMain could not build the binary.
func requireBinary(t testing.TB) string {
	t.Helper()
	if binaryPath == "" {
		t.Fatalf("the portcullis binary was not built: %v\n%s", buildErr, buildOutput)
	}
	return binaryPath
}

// caddyfileData is what a test Caddyfile template can refer to.
type caddyfileData struct {
	// Port is the HTTP port of the site.
	Port int
	// AdminPort is the port of Caddy's admin API.
	AdminPort int
	// Dir is the gateway's private temporary directory.
	Dir string
	// AppPort is a second free port, for a site protected by oidc_login.
	AppPort int
	// Vars are extra values a test passes to its template.
	Vars map[string]string
}

// Gateway is one running Caddy process with the Portcullis plugin, started
// by StartGateway and stopped when its test ends.
type Gateway struct {
	// BaseURL is the site's origin, e.g. http://127.0.0.1:41234 (no trailing
	// slash); it is also the configured issuer in baseCaddyfile.
	BaseURL string
	// AdminURL is the origin of Caddy's admin API.
	AdminURL string
	// AppURL is the origin of the second site ({{.AppPort}}), when used.
	AppURL string
	// Dir is the gateway's temporary directory: it holds the Caddyfile, the
	// bbolt database of baseCaddyfile, and HOME/XDG directories of the
	// process. It survives Restart.
	Dir string
	// Port and AdminPort are the two loopback ports in use.
	Port, AdminPort int

	configPath string
	logs       *syncBuffer

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has been reaped
	exitErr error         // valid once exited is closed
}

// StartGateway writes caddyfile (a text/template over {{.Port}},
// {{.AdminPort}} and {{.Dir}}) into a fresh temporary directory, starts the
// binary on free loopback ports, and waits until the discovery document
// answers 200. The process is stopped when the test ends, and its output is
// logged if the test failed.
func StartGateway(t *testing.T, caddyfile string) *Gateway {
	t.Helper()
	return StartGatewayVars(t, caddyfile, nil)
}

// StartGatewayVars is StartGateway with extra template values ({{.Vars.X}})
// and a second port ({{.AppPort}}, AppURL) for a protected app site.
func StartGatewayVars(t *testing.T, caddyfile string, vars map[string]string) *Gateway {
	t.Helper()
	bin := requireBinary(t)

	dir := t.TempDir()
	data := caddyfileData{Port: freePort(t), AdminPort: freePort(t), AppPort: freePort(t), Dir: dir, Vars: vars}
	if data.Vars == nil {
		data.Vars = map[string]string{}
	}
	for data.AdminPort == data.Port {
		data.AdminPort = freePort(t)
	}
	for data.AppPort == data.Port || data.AppPort == data.AdminPort {
		data.AppPort = freePort(t)
	}
	tmpl, err := template.New("Caddyfile").Option("missingkey=error").Parse(caddyfile)
	if err != nil {
		t.Fatalf("parsing Caddyfile template: %v", err)
	}
	var cf bytes.Buffer
	if err := tmpl.Execute(&cf, data); err != nil {
		t.Fatalf("executing Caddyfile template: %v", err)
	}
	configPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(configPath, cf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"home", "xdg-data", "xdg-config"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}

	g := &Gateway{
		BaseURL:    "http://127.0.0.1:" + strconv.Itoa(data.Port),
		AdminURL:   "http://127.0.0.1:" + strconv.Itoa(data.AdminPort),
		AppURL:     "http://127.0.0.1:" + strconv.Itoa(data.AppPort),
		Dir:        dir,
		Port:       data.Port,
		AdminPort:  data.AdminPort,
		configPath: configPath,
		logs:       &syncBuffer{},
	}
	t.Cleanup(func() {
		g.stop()
		if t.Failed() {
			t.Logf("gateway Caddyfile:\n%s", cf.String())
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

// Restart stops the gateway and starts it again with the same configuration,
// ports and directory (so its bbolt file persists), then waits until it is
// ready.
func (g *Gateway) Restart(t testing.TB) {
	t.Helper()
	g.stop()
	g.Start(t)
}

// Kill9 kills the gateway process with SIGKILL (on Unix; Process.Kill
// elsewhere): no shutdown runs, nothing queued in memory is written, as if
// the process had crashed. It returns once the process has been reaped, so
// its ports and the bbolt file lock are free. Start brings it back.
func (g *Gateway) Kill9(t testing.TB) {
	t.Helper()
	g.mu.Lock()
	cmd, exited := g.cmd, g.exited
	g.mu.Unlock()
	if cmd == nil {
		t.Fatal("Kill9: the gateway is not running")
	}
	fmt.Fprintf(g.logs, "\n----- SIGKILL at %s -----\n", time.Now().Format(time.RFC3339Nano))
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("Kill9: %v", err)
	}
	select {
	case <-exited:
	case <-time.After(stopTimeout):
		t.Fatalf("Kill9: the process did not exit within %s of SIGKILL", stopTimeout)
	}
	g.mu.Lock()
	g.cmd, g.exited = nil, nil
	g.mu.Unlock()
}

// Start starts a stopped or killed gateway again with the same
// configuration, ports and directory, and waits until it is ready.
func (g *Gateway) Start(t testing.TB) {
	t.Helper()
	bin := requireBinary(t)
	fmt.Fprintf(g.logs, "\n----- restart at %s -----\n", time.Now().Format(time.RFC3339Nano))
	if err := g.start(bin); err != nil {
		t.Fatalf("restarting gateway: %v", err)
	}
	if err := g.waitReady(); err != nil {
		t.Fatalf("gateway not ready after restart: %v", err)
	}
}

// PID returns the process id of the running gateway, 0 when it is not
// running.
func (g *Gateway) PID() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cmd == nil || g.cmd.Process == nil {
		return 0
	}
	return g.cmd.Process.Pid
}

// Logs returns what the process (or processes, across restarts) printed so far.
func (g *Gateway) Logs() string { return g.logs.String() }

// URL returns BaseURL joined with path, e.g. g.URL("/callback").
func (g *Gateway) URL(path string) string { return g.BaseURL + path }

func (g *Gateway) start(bin string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cmd != nil {
		return errors.New("gateway already running")
	}
	cmd := exec.Command(bin, "run", "--config", g.configPath, "--adapter", "caddyfile")
	cmd.Dir = g.Dir
	// Later entries win over inherited ones: Caddy writes nothing outside Dir.
	cmd.Env = append(os.Environ(),
		"HOME="+filepath.Join(g.Dir, "home"),
		"XDG_DATA_HOME="+filepath.Join(g.Dir, "xdg-data"),
		"XDG_CONFIG_HOME="+filepath.Join(g.Dir, "xdg-config"),
		"XDG_CACHE_HOME="+filepath.Join(g.Dir, "xdg-cache"),
	)
	cmd.Stdout = g.logs
	cmd.Stderr = g.logs
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	g.cmd, g.exited = cmd, exited
	go func() {
		err := cmd.Wait()
		g.mu.Lock()
		g.exitErr = err
		g.mu.Unlock()
		close(exited)
	}()
	return nil
}

// stop interrupts the process, waits up to stopTimeout for it to exit, then
// kills it. It is a no-op when the process is not running.
func (g *Gateway) stop() {
	g.mu.Lock()
	cmd, exited := g.cmd, g.exited
	g.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
	default:
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(stopTimeout):
			fmt.Fprintf(g.logs, "\n----- no exit %s after SIGINT: killing -----\n", stopTimeout)
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	g.mu.Lock()
	g.cmd, g.exited = nil, nil
	g.mu.Unlock()
}

// waitReady polls the discovery document until it answers 200, the process
// exits, or readyTimeout passes.
func (g *Gateway) waitReady() error {
	g.mu.Lock()
	exited := g.exited
	g.mu.Unlock()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(readyTimeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			g.mu.Lock()
			err := g.exitErr
			g.mu.Unlock()
			return fmt.Errorf("process exited before it was ready: %v", err)
		default:
		}
		resp, err := client.Get(g.BaseURL + readinessPath)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("status %d: %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("GET %s not 200 within %s; last: %s", g.BaseURL+readinessPath, readyTimeout, last)
}

// freePort asks the kernel for a free loopback port and releases it for reuse.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the buffer.
func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns the buffer's contents.
func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ---------------------------------------------------------------------------
// HTTP helpers

// NewBrowser returns an HTTP client with its own cookie jar that does not
// follow redirects, so a test sees every 3xx and its Location.
func NewBrowser(t testing.TB) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{
		Jar:     jar,
		Timeout: requestTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Discovery is the part of the OpenID Provider metadata the tests use; Raw
// holds the whole document.
type Discovery struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	UserinfoEndpoint      string   `json:"userinfo_endpoint"`
	IntrospectionEndpoint string   `json:"introspection_endpoint"`
	RevocationEndpoint    string   `json:"revocation_endpoint"`
	EndSessionEndpoint    string   `json:"end_session_endpoint"`
	JWKSURI               string   `json:"jwks_uri"`
	CodeChallengeMethods  []string `json:"code_challenge_methods_supported"`

	Raw map[string]any `json:"-"`
}

// Discover fetches and decodes the gateway's discovery document and checks
// that the endpoints the tests use are present.
func (g *Gateway) Discover(t testing.TB) *Discovery {
	t.Helper()
	resp, body := doRequest(t, &http.Client{Timeout: requestTimeout}, http.MethodGet, g.BaseURL+readinessPath, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET discovery: status %d: %s", resp.StatusCode, body)
	}
	var d Discovery
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatalf("decoding discovery: %v: %s", err, body)
	}
	if err := json.Unmarshal(body, &d.Raw); err != nil {
		t.Fatalf("decoding discovery: %v", err)
	}
	for name, v := range map[string]string{
		"issuer":                 d.Issuer,
		"authorization_endpoint": d.AuthorizationEndpoint,
		"token_endpoint":         d.TokenEndpoint,
		"jwks_uri":               d.JWKSURI,
	} {
		if v == "" {
			t.Fatalf("discovery lacks %s: %s", name, body)
		}
	}
	return &d
}

// doRequest sends one request and returns the response with its body read
// (and closed). header may be nil.
func doRequest(t testing.TB, c *http.Client, method, target string, body io.Reader, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, target, err)
	}
	return resp, b
}

// PostForm posts form to target, authenticated with HTTP Basic as
// clientID/secret unless clientID is empty, and returns the status and the
// JSON body decoded as an object (nil if the body is not a JSON object).
func PostForm(t testing.TB, target string, form url.Values, clientID, secret string) (*http.Response, map[string]any) {
	t.Helper()
	header := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Accept": {"application/json"}}
	if clientID != "" {
		// RFC 6749 section 2.3.1: both parts are form-urlencoded first.
		req := &http.Request{Header: http.Header{}}
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
		header.Set("Authorization", req.Header.Get("Authorization"))
	}
	resp, body := doRequest(t, &http.Client{Timeout: requestTimeout}, http.MethodPost, target, strings.NewReader(form.Encode()), header)
	var obj map[string]any
	if err := json.Unmarshal(body, &obj); err != nil {
		t.Logf("POST %s: status %d, body not a JSON object: %q", target, resp.StatusCode, body)
		return resp, nil
	}
	return resp, obj
}

// ---------------------------------------------------------------------------
// HTML forms

// FormButton is a named submit button (<button> or <input type=submit>).
type FormButton struct {
	Name, Value string
}

// Form is one <form> of a page: its action resolved against the page URL,
// its method in upper case (GET by default), the name/value pairs of its
// successful controls except submit buttons, and its named submit buttons.
type Form struct {
	Action  *url.URL
	Method  string
	Fields  url.Values
	Buttons []FormButton
}

// HasField reports whether the form has a control named name.
func (f *Form) HasField(name string) bool {
	_, ok := f.Fields[name]
	return ok
}

// Button returns the submit button named name with the given value, if any.
func (f *Form) Button(name, value string) (FormButton, bool) {
	for _, b := range f.Buttons {
		if b.Name == name && b.Value == value {
			return b, true
		}
	}
	return FormButton{}, false
}

// ParseForms returns the forms of an HTML page fetched from page.
func ParseForms(page *url.URL, body []byte) ([]*Form, error) {
	doc, err := html.Parse(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	var forms []*Form
	var walk func(n *html.Node, cur *Form)
	walk = func(n *html.Node, cur *Form) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "form":
				f := &Form{Method: strings.ToUpper(attr(n, "method")), Fields: url.Values{}}
				if f.Method == "" {
					f.Method = http.MethodGet
				}
				action, err := page.Parse(attr(n, "action"))
				if err != nil {
					action = page
				}
				f.Action = action
				forms = append(forms, f)
				cur = f
			case "input":
				if cur != nil {
					addInput(cur, n)
				}
			case "button":
				if cur != nil {
					if t := strings.ToLower(attr(n, "type")); (t == "" || t == "submit") && attr(n, "name") != "" {
						cur.Buttons = append(cur.Buttons, FormButton{Name: attr(n, "name"), Value: attr(n, "value")})
					}
				}
			case "textarea":
				if cur != nil && attr(n, "name") != "" {
					cur.Fields.Add(attr(n, "name"), textContent(n))
				}
			case "select":
				if cur != nil && attr(n, "name") != "" {
					cur.Fields.Add(attr(n, "name"), selectedOption(n))
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, cur)
		}
	}
	walk(doc, nil)
	return forms, nil
}

func addInput(f *Form, n *html.Node) {
	name := attr(n, "name")
	if name == "" {
		return
	}
	value := attr(n, "value")
	switch strings.ToLower(attr(n, "type")) {
	case "submit", "image":
		f.Buttons = append(f.Buttons, FormButton{Name: name, Value: value})
	case "button", "reset", "file":
	case "checkbox", "radio":
		if hasAttr(n, "checked") {
			if value == "" {
				value = "on"
			}
			f.Fields.Add(name, value)
		}
	default:
		f.Fields.Add(name, value)
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Namespace == "" && strings.EqualFold(a.Key, key) {
			return a.Val
		}
	}
	return ""
}

func hasAttr(n *html.Node, key string) bool {
	for _, a := range n.Attr {
		if a.Namespace == "" && strings.EqualFold(a.Key, key) {
			return true
		}
	}
	return false
}

func textContent(n *html.Node) string {
	var sb strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			sb.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return sb.String()
}

func selectedOption(sel *html.Node) string {
	var first, selected *html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "option" {
			if first == nil {
				first = n
			}
			if selected == nil && hasAttr(n, "selected") {
				selected = n
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(sel)
	if selected == nil {
		selected = first
	}
	if selected == nil {
		return ""
	}
	if hasAttr(selected, "value") {
		return attr(selected, "value")
	}
	return strings.TrimSpace(textContent(selected))
}

// pageText returns the visible text of an HTML page, whitespace collapsed,
// for error messages.
func pageText(body []byte) string {
	doc, err := html.Parse(bytes.NewReader(body))
	if err != nil {
		return string(body)
	}
	var sb strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && (n.Data == "script" || n.Data == "style" || n.Data == "head") {
			return
		}
		if n.Type == html.TextNode {
			sb.WriteString(n.Data)
			sb.WriteByte(' ')
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return strings.Join(strings.Fields(sb.String()), " ")
}

// ---------------------------------------------------------------------------
// Browser flow

// FlowResult is the outcome of AuthorizeFlow.
type FlowResult struct {
	// Callback is the final redirect to the client's redirect_uri, with its
	// query (code, state, iss, or error...).
	Callback *url.URL
	// SawLogin and SawConsent say whether the login and consent pages were
	// shown on the way.
	SawLogin, SawConsent bool
	// Steps lists the requests made, for failure messages.
	Steps []string
}

// maxFlowSteps bounds the requests of one AuthorizeFlow.
const maxFlowSteps = 12

// AuthorizeFlow drives the browser part of an authorization request with
// client (see NewBrowser): it GETs authorizeURL, submits the login form with
// username and password when it is shown, allows the consent form when it is
// shown, follows redirects within the server, and stops at the first redirect
// to the request's redirect_uri (or, when authorizeURL carries none, at the
// first redirect whose query has code or error). Any other page or status
// fails the test.
func AuthorizeFlow(t testing.TB, client *http.Client, authorizeURL, username, password string) *FlowResult {
	t.Helper()
	start, err := url.Parse(authorizeURL)
	if err != nil {
		t.Fatalf("authorize URL %q: %v", authorizeURL, err)
	}
	var redirectURI *url.URL
	if r := start.Query().Get("redirect_uri"); r != "" {
		if redirectURI, err = url.Parse(r); err != nil {
			t.Fatalf("redirect_uri %q: %v", r, err)
		}
	}
	isCallback := func(u *url.URL) bool {
		if redirectURI != nil {
			return u.Scheme == redirectURI.Scheme && u.Host == redirectURI.Host && u.Path == redirectURI.Path
		}
		q := u.Query()
		return q.Has("code") || q.Has("error")
	}

	res := &FlowResult{}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("authorization flow: %s\nsteps:\n  %s", fmt.Sprintf(format, args...), strings.Join(res.Steps, "\n  "))
	}

	method, target := http.MethodGet, start
	var form url.Values
	var referer string
	loginSubmitted := false
	for i := 0; i < maxFlowSteps; i++ {
		var body io.Reader
		header := http.Header{"Accept": {"text/html,application/xhtml+xml"}}
		if method == http.MethodPost {
			body = strings.NewReader(form.Encode())
			header.Set("Content-Type", "application/x-www-form-urlencoded")
			// What a browser sends with a same-origin form submission.
			header.Set("Origin", target.Scheme+"://"+target.Host)
			if referer != "" {
				header.Set("Referer", referer)
			}
		}
		resp, page := doRequest(t, client, method, target.String(), body, header)
		res.Steps = append(res.Steps, fmt.Sprintf("%s %s -> %d %s", method, target, resp.StatusCode, resp.Header.Get("Location")))

		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc := resp.Header.Get("Location")
			if loc == "" {
				fail("%d without Location", resp.StatusCode)
			}
			next, err := target.Parse(loc)
			if err != nil {
				fail("bad Location %q: %v", loc, err)
			}
			if isCallback(next) {
				res.Callback = next
				return res
			}
			method, target, form, referer = http.MethodGet, next, nil, ""
			continue
		case resp.StatusCode == http.StatusOK:
		default:
			fail("unexpected status %d: %s", resp.StatusCode, pageText(page))
		}

		forms, err := ParseForms(target, page)
		if err != nil {
			fail("parsing page: %v", err)
		}
		var chosen *Form
		for _, f := range forms {
			switch {
			case f.HasField("password"):
				if loginSubmitted {
					fail("login form shown again after submitting credentials: %s", pageText(page))
				}
				f.Fields.Set("username", username)
				f.Fields.Set("password", password)
				if b, ok := f.Button("action", "login"); ok {
					f.Fields.Set(b.Name, b.Value)
				}
				loginSubmitted, res.SawLogin = true, true
				chosen = f
			case hasButtonNamed(f, "decision"):
				b, ok := f.Button("decision", "allow")
				if !ok {
					fail("consent form without decision=allow button")
				}
				f.Fields.Set(b.Name, b.Value)
				res.SawConsent = true
				chosen = f
			}
			if chosen != nil {
				break
			}
		}
		if chosen == nil {
			fail("200 page with neither a login nor a consent form: %s", pageText(page))
		}
		if chosen.Method != http.MethodPost {
			fail("form method is %q, want POST", chosen.Method)
		}
		method, form, referer = chosen.Method, chosen.Fields, target.String()
		target = chosen.Action
	}
	fail("no redirect to the client after %d requests", maxFlowSteps)
	return nil
}

func hasButtonNamed(f *Form, name string) bool {
	for _, b := range f.Buttons {
		if b.Name == name {
			return true
		}
	}
	return false
}

// LoginAndConsent runs AuthorizeFlow and returns the final redirect to the
// client's redirect_uri.
func LoginAndConsent(t testing.TB, client *http.Client, authorizeURL, username, password string) *url.URL {
	t.Helper()
	return AuthorizeFlow(t, client, authorizeURL, username, password).Callback
}
