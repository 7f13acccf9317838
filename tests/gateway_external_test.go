package tests

// The login gateway (oidc_login) in the real binary against an external
// OpenID Provider, panva's oidc-provider (see oidcprovider_test.go): a
// browser opens a protected page, OPSignIn follows the gateway's redirect to
// the provider, signs in there and comes back through the callback, and the
// recording upstream shows what the gateway passed on.

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// externalGatewayCaddyfile protects the site on {{.AppPort}} with
// oidc_login against the provider at {{.Vars.Issuer}}, proxied to the
// test's recording upstream ({{.Vars.Upstream}}). {{.Vars.Options}} adds
// oidc_login lines; {{.Vars.ServerSessions}} keeps the sessions in a bbolt
// store. The site on {{.Port}} only answers StartGateway's readiness probe:
// this gateway has no discovery document of its own.
const externalGatewayCaddyfile = `{
	admin 127.0.0.1:{{.AdminPort}}
{{- if index .Vars "ServerSessions"}}
	portcullis {
		storage bbolt {{.Dir}}/portcullis.db
	}
{{- end}}
}
http://127.0.0.1:{{.Port}} {
	bind 127.0.0.1
	respond /.well-known/openid-configuration 200
}
http://{{or (index .Vars "AppHost") "127.0.0.1"}}:{{.AppPort}} {
	bind 127.0.0.1
	oidc_login {
		issuer {{.Vars.Issuer}}
		client_id ` + extClientID + `
		client_secret ` + extClientSecret + `
		scopes openid profile email groups offline_access
		insecure_cookies
		post_logout_redirect /public/signed-out
		skip /public/*
{{- if index .Vars "ServerSessions"}}
		session_store server
{{- end}}
		{{index .Vars "Options"}}
	}
	reverse_proxy {{.Vars.Upstream}}
}
`

// The gateway's registration at the provider, and the provider's users.
// Their subjects are not their logins, so that X-Forwarded-User shows it
// carries sub.
const (
	extClientID     = "gateway"
	extClientSecret = "gateway-secret"
	extAliceSub     = "alice-7f3c"
	extBobSub       = "bob-19ae"
	extTargetPath   = "/private/page?x=1"
	extSignedOut    = "/public/signed-out"
)

var externalAccounts = map[string]map[string]any{
	"alice": {
		"sub": extAliceSub, "email": "alice@example.com", "email_verified": true,
		"name": "Alice Example", "preferred_username": "alice", "groups": []string{"admins", "devs"},
	},
	"bob": {
		"sub": extBobSub, "email": "bob@other.example", "email_verified": true,
		"name": "Bob Other", "preferred_username": "bob", "groups": []string{"staff"},
	},
}

// extAliceHeaders are the identity headers the upstream must receive for alice.
var extAliceHeaders = map[string]string{
	"X-Forwarded-User":               extAliceSub,
	"X-Forwarded-Email":              "alice@example.com",
	"X-Forwarded-Groups":             "admins,devs",
	"X-Forwarded-Preferred-Username": "alice",
}

// externalConfig varies one gateway + provider pair.
type externalConfig struct {
	// Options are extra oidc_login lines.
	Options string
	// ServerSessions selects session_store server (with a bbolt store).
	ServerSessions bool
	// Client returns metadata merged into the gateway's registration at the
	// provider, given the app's origin.
	Client func(appURL string) map[string]any
	// Env is passed to server.mjs (ACCESS_TOKEN_TTL, REQUIRE_PAR...).
	Env map[string]string
	// AppHost is the app site's host name. Default: 127.0.0.1, the
	// provider's; "localhost" makes the provider another site, so its
	// form_post to the gateway is a cross-site POST.
	AppHost string
}

// externalEnv is a running provider, a gateway registered with it as a
// confidential client (client_secret_basic), and the app behind the gateway.
type externalEnv struct {
	OP        *ExternalOP
	Discovery *Discovery
	Gateway   *Gateway
	Upstream  *recordingUpstream
	// Target is a protected page of the app.
	Target string
}

// startExternal starts the provider first (its issuer goes into the
// Caddyfile), then the gateway, then registers the gateway with the
// provider now that its redirect URI is known.
func startExternal(t *testing.T, cfg externalConfig) *externalEnv {
	t.Helper()
	op := StartOIDCProviderWithEnv(t, nil, externalAccounts, cfg.Env)
	up := newRecordingUpstream(t)
	vars := map[string]string{"Issuer": op.Issuer, "Upstream": up.Listener.Addr().String(), "Options": cfg.Options, "AppHost": cfg.AppHost}
	if cfg.ServerSessions {
		vars["ServerSessions"] = "true"
	}
	g := StartGatewayVars(t, externalGatewayCaddyfile, vars)
	waitAppListening(t, g)

	client := map[string]any{
		"client_id":                  extClientID,
		"client_secret":              extClientSecret,
		"redirect_uris":              []string{g.AppURL + "/oauth2/callback"},
		"post_logout_redirect_uris":  []string{g.AppURL + extSignedOut},
		"response_types":             []string{"code"},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"token_endpoint_auth_method": "client_secret_basic",
	}
	if cfg.Client != nil {
		for k, v := range cfg.Client(g.AppURL) {
			client[k] = v
		}
	}
	op.AddClient(t, client)
	return &externalEnv{OP: op, Discovery: op.Discover(t), Gateway: g, Upstream: up, Target: g.AppURL + extTargetPath}
}

// waitAppListening waits until the app site answers: StartGateway's probe
// only covers the other site, which Caddy may have started first.
func waitAppListening(t *testing.T, g *Gateway) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(readyTimeout)
	for {
		// The back-channel logout endpoint answers a GET with 405: no
		// login cookie, nothing upstream.
		resp, err := c.Get(g.AppURL + "/oauth2/backchannel-logout")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the app site %s does not answer: %v", g.AppURL, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startSignIn opens the protected page without a session and returns the
// provider authorization request the gateway redirected to.
func (e *externalEnv) startSignIn(t *testing.T, browser *http.Client) *url.URL {
	t.Helper()
	resp, body := navigate(t, browser, e.Target, nil)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("unauthenticated navigation: %d %q, want a redirect to sign in", resp.StatusCode, body)
	}
	loc := resolve(t, e.Target, resp.Header.Get("Location"))
	if !strings.HasPrefix(loc, e.Discovery.AuthorizationEndpoint+"?") {
		t.Fatalf("redirected to %s, want the provider's authorization endpoint %s", loc, e.Discovery.AuthorizationEndpoint)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// signIn signs browser in as login from the protected page and checks it is
// back on that page, served by the upstream with its identity. It returns
// the authorization request and the steps taken.
func (e *externalEnv) signIn(t *testing.T, browser *http.Client, login string) (*url.URL, *OPSignInResult) {
	t.Helper()
	authorize := e.startSignIn(t, browser)
	res := OPSignIn(t, browser, authorize.String(), login)
	sub, _ := externalAccounts[login]["sub"].(string)
	if res.FinalURL.String() != e.Target || res.Status != http.StatusOK || res.Body != "hello "+sub {
		t.Fatalf("sign-in as %s ended at %s: %d %q, want %s: hello %s\nsteps:\n  %s",
			login, res.FinalURL, res.Status, res.Body, e.Target, sub, strings.Join(res.Steps, "\n  "))
	}
	return authorize, res
}

// checkIdentity makes a signed-in request carrying forged identity headers
// and an app cookie, and checks that the upstream received exactly the
// gateway's identity headers, the app cookie and none of the gateway's
// cookies. It returns the upstream's request.
func (e *externalEnv) checkIdentity(t *testing.T, browser *http.Client, want map[string]string) *http.Request {
	t.Helper()
	forged := http.Header{
		"X-Forwarded-User":               {"mallory"},
		"X-Forwarded-Email":              {"mallory@evil.example"},
		"X-Forwarded-Groups":             {"admins"},
		"X-Forwarded-Preferred-Username": {"mallory"},
		"Authorization":                  {"Bearer forged"},
		"Cookie":                         {"app_pref=dark"},
	}
	resp, body := navigate(t, browser, e.Target, forged)
	if resp.StatusCode != http.StatusOK || body != "hello "+want["X-Forwarded-User"] {
		t.Fatalf("signed-in request: %d %q", resp.StatusCode, body)
	}
	got := e.Upstream.lastRequest()
	for h, v := range want {
		if vals := got.Header.Values(h); len(vals) != 1 || vals[0] != v {
			t.Errorf("upstream header %s = %q, want exactly %q", h, vals, v)
		}
	}
	for _, c := range got.Cookies() {
		if strings.HasPrefix(c.Name, "portcullis_session") {
			t.Errorf("the upstream received the gateway's cookie %s", c.Name)
		}
	}
	if c, err := got.Cookie("app_pref"); err != nil || c.Value != "dark" {
		t.Errorf("the app's own cookie did not reach the upstream: %q", got.Header.Get("Cookie"))
	}
	return got
}

// upstreamBearer returns the access token the upstream received (pass_access_token).
func upstreamBearer(t *testing.T, r *http.Request) string {
	t.Helper()
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" || tok == "forged" {
		t.Fatalf("upstream Authorization = %q, want the gateway's access token", r.Header.Get("Authorization"))
	}
	return tok
}

// introspect checks at the provider that token is an active access token
// of alice issued to the gateway.
func (e *externalEnv) introspect(t *testing.T, token string) {
	t.Helper()
	resp, intro := PostForm(t, e.Discovery.IntrospectionEndpoint, url.Values{"token": {token}}, extClientID, extClientSecret)
	if resp.StatusCode != http.StatusOK || intro["active"] != true || intro["sub"] != extAliceSub || intro["client_id"] != extClientID {
		t.Errorf("introspection of the upstream's access token: %d %v, want active, sub %s, client_id %s", resp.StatusCode, intro, extAliceSub, extClientID)
	}
}

// apiStatus reports the status of an API request (no text/html) with
// browser's cookies: 200 with a session, 401 without, and no side effects.
func apiStatus(t *testing.T, browser *http.Client, target string) int {
	t.Helper()
	resp, _ := doRequest(t, browser, http.MethodGet, target, nil, http.Header{"Accept": {"application/json"}})
	return resp.StatusCode
}

func requireOPSteps(t *testing.T, res *OPSignInResult, want ...string) {
	t.Helper()
	for _, w := range want {
		if !stepsContain(res.Steps, w) {
			t.Errorf("no step %q; steps:\n  %s", w, strings.Join(res.Steps, "\n  "))
		}
	}
}

func TestExternalOPCodeFlowWithPKCE(t *testing.T) {
	e := startExternal(t, externalConfig{Options: "pass_access_token"})
	browser := NewBrowser(t)
	authorize, res := e.signIn(t, browser, "alice")

	q := authorize.Query()
	for k, v := range map[string]string{
		"response_type": "code", "client_id": extClientID, "redirect_uri": e.Gateway.AppURL + "/oauth2/callback",
		"code_challenge_method": "S256", "scope": "openid profile email groups offline_access",
	} {
		if q.Get(k) != v {
			t.Errorf("authorization request %s = %q, want %q", k, q.Get(k), v)
		}
	}
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if len(q.Get(k)) < 43 {
			t.Errorf("authorization request %s = %q, want a random value of 256 bits", k, q.Get(k))
		}
	}
	if q.Has("response_mode") || q.Has("request_uri") {
		t.Errorf("authorization request %v: want a plain query (no response_mode, no PAR)", q)
	}
	requireOPSteps(t, res, "(login form)", "GET "+e.Gateway.AppURL+"/oauth2/callback?")

	got := e.checkIdentity(t, browser, extAliceHeaders)
	token := upstreamBearer(t, got)
	e.introspect(t, token)
	// The token lives an hour: the next request keeps it.
	if _, body := navigate(t, browser, e.Target, nil); body != "hello "+extAliceSub {
		t.Fatalf("second request: %q", body)
	}
	if again := upstreamBearer(t, e.Upstream.lastRequest()); again != token {
		t.Errorf("the access token changed between two requests although it is far from expiry")
	}

	t.Run("scripts without a session get 401", func(t *testing.T) {
		if status := apiStatus(t, NewBrowser(t), e.Target); status != http.StatusUnauthorized {
			t.Errorf("API request without a session: %d, want 401", status)
		}
	})
}

func TestExternalOPHybridFlowWithFormPost(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{name: "provider sends iss with the ID token", env: map[string]string{"ISS_WITH_ID_TOKEN": "true"}},
		{name: "provider leaves iss out of a response with an ID token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startExternal(t, externalConfig{
				Options: "flow hybrid",
				Env:     tc.env,
				Client: func(string) map[string]any {
					return map[string]any{
						"response_types": []string{"code id_token"},
						"grant_types":    []string{"authorization_code", "implicit", "refresh_token"},
					}
				},
			})
			browser := NewBrowser(t)
			authorize, res := e.signIn(t, browser, "alice")

			q := authorize.Query()
			if q.Get("response_type") != "code id_token" || q.Get("response_mode") != "form_post" || q.Get("nonce") == "" {
				t.Errorf("authorization request %v: want response_type \"code id_token\", response_mode form_post and a nonce", q)
			}
			// The provider's auto-submitting page POSTs the response to the
			// callback, which sends the browser back to the page.
			requireOPSteps(t, res, "(login form)", "(form_post)", "POST "+e.Gateway.AppURL+"/oauth2/callback -> 303")
			e.checkIdentity(t, browser, extAliceHeaders)
		})
	}
}

func TestExternalOPPushedAuthorizationRequests(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  externalConfig
	}{
		{"par option", externalConfig{Options: "par"}},
		{"client must use PAR", externalConfig{Options: "par", Client: func(string) map[string]any {
			return map[string]any{"require_pushed_authorization_requests": true}
		}}},
		{"provider requires PAR of every client", externalConfig{Env: map[string]string{"REQUIRE_PAR": "true"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startExternal(t, tc.cfg)
			if tc.cfg.Env["REQUIRE_PAR"] != "" && e.Discovery.Raw["require_pushed_authorization_requests"] != true {
				t.Fatalf("discovery require_pushed_authorization_requests = %v, want true", e.Discovery.Raw["require_pushed_authorization_requests"])
			}
			browser := NewBrowser(t)
			authorize, res := e.signIn(t, browser, "alice")
			// RFC 9126 section 4: only client_id and request_uri travel
			// through the browser.
			q := authorize.Query()
			if len(q) != 2 || q.Get("client_id") != extClientID || !strings.HasPrefix(q.Get("request_uri"), "urn:ietf:params:oauth:request_uri:") {
				t.Errorf("authorization request %v: want only client_id and a pushed request_uri", q)
			}
			requireOPSteps(t, res, "(login form)")
			e.checkIdentity(t, browser, extAliceHeaders)
		})
	}
}

// TestExternalOPSignedRequestObjects registers the gateway at the provider
// with require_signed_request_object and its JWKS URL: a sign-in works only
// when the gateway sends a request object the provider verified against
// the key the gateway publishes, by value or pushed with PAR.
func TestExternalOPSignedRequestObjects(t *testing.T) {
	jar := func(appURL string) map[string]any {
		return map[string]any{
			"jwks_uri":                      appURL + "/oauth2/jwks",
			"request_object_signing_alg":    "ES256",
			"require_signed_request_object": true,
		}
	}
	for _, tc := range []struct {
		name    string
		options string
		pushed  bool
	}{
		{"by value", "jar", false},
		{"pushed with PAR", "jar\n\t\tpar", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startExternal(t, externalConfig{Options: tc.options, Client: jar})
			browser := NewBrowser(t)
			authorize, res := e.signIn(t, browser, "alice")
			q := authorize.Query()
			for _, leaked := range []string{"state", "nonce", "code_challenge", "redirect_uri"} {
				if q.Has(leaked) {
					t.Errorf("authorization request %v: %s travels outside the signed request object", q, leaked)
				}
			}
			if tc.pushed {
				if len(q) != 2 || !strings.HasPrefix(q.Get("request_uri"), "urn:ietf:params:oauth:request_uri:") {
					t.Errorf("authorization request %v: want only client_id and a pushed request_uri", q)
				}
			} else if strings.Count(q.Get("request"), ".") != 2 || q.Get("client_id") != extClientID {
				t.Errorf("authorization request %v: want client_id and a compact JWS request object", q)
			}
			requireOPSteps(t, res, "(login form)")
			e.checkIdentity(t, browser, extAliceHeaders)
		})
	}

	t.Run("without jar the provider refuses the request", func(t *testing.T) {
		e := startExternal(t, externalConfig{Client: jar})
		authorize := e.startSignIn(t, NewBrowser(t))
		resp, body := navigate(t, NewBrowser(t), authorize.String(), nil)
		if resp.StatusCode == http.StatusOK && strings.Contains(body, `name="login"`) {
			t.Fatalf("the provider showed its login form to an unsigned request: the test would not prove JAR is used")
		}
	})
}

func TestExternalOPRefreshesTokensWithoutNewLogin(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{name: "provider rotates refresh tokens", env: map[string]string{"ROTATE_REFRESH_TOKENS": "true"}},
		{name: "provider keeps the refresh token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Access tokens live 30 s, less than the gateway's one-minute
			// refresh margin: every signed-in request refreshes them, so the
			// test needs no clock.
			env := map[string]string{"ACCESS_TOKEN_TTL": "30"}
			for k, v := range tc.env {
				env[k] = v
			}
			e := startExternal(t, externalConfig{Options: "pass_access_token", Env: env})
			browser := NewBrowser(t)
			e.signIn(t, browser, "alice")
			seen := map[string]bool{upstreamBearer(t, e.Upstream.lastRequest()): true}
			for i := 0; i < 3; i++ {
				// navigate does not follow redirects: a 200 means no new login.
				got := e.checkIdentity(t, browser, extAliceHeaders)
				token := upstreamBearer(t, got)
				if seen[token] {
					t.Fatalf("request %d: the upstream got an access token it had already seen: no refresh\nprovider output:\n%s", i+1, e.OP.Logs())
				}
				seen[token] = true
				e.introspect(t, token)
			}
			if n := strings.Count(e.OP.Logs(), "grant.success: grant_type=refresh_token client="+extClientID); n < 3 {
				t.Errorf("the provider saw %d refreshes, want at least 3", n)
			}
		})
	}
}

func TestExternalOPClaimsOnlyInUserinfo(t *testing.T) {
	// oidc-provider's own default (OIDC Core 5.4): when an access token is
	// issued, the claims of the profile, email and groups scopes are only
	// in the userinfo response, the ID token carries sub.
	e := startExternal(t, externalConfig{Env: map[string]string{"CONFORM_ID_TOKEN_CLAIMS": "true"}})
	browser := NewBrowser(t)
	e.signIn(t, browser, "alice")
	e.checkIdentity(t, browser, extAliceHeaders)
}

func TestExternalOPRPInitiatedLogout(t *testing.T) {
	e := startExternal(t, externalConfig{})
	browser := NewBrowser(t)
	e.signIn(t, browser, "alice")

	resp, _ := navigate(t, browser, e.Gateway.AppURL+"/oauth2/logout", nil)
	endSession := resolve(t, e.Gateway.AppURL, resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(endSession, e.Discovery.EndSessionEndpoint+"?") {
		t.Fatalf("logout: %d to %s, want a redirect to the end_session_endpoint %s", resp.StatusCode, endSession, e.Discovery.EndSessionEndpoint)
	}
	u, _ := url.Parse(endSession)
	q := u.Query()
	if got := q.Get("post_logout_redirect_uri"); got != e.Gateway.AppURL+extSignedOut {
		t.Errorf("post_logout_redirect_uri = %q, want %q", got, e.Gateway.AppURL+extSignedOut)
	}
	if hint := q.Get("id_token_hint"); hint == "" {
		t.Errorf("logout request without id_token_hint: %v", q)
	} else if c := opJWTClaims(t, hint); c["sub"] != extAliceSub || c["aud"] != extClientID || c["iss"] != e.OP.Issuer {
		t.Errorf("id_token_hint claims %v: want alice's ID token from the provider for the gateway", c)
	}
	if status := apiStatus(t, browser, e.Target); status != http.StatusUnauthorized {
		t.Errorf("after /oauth2/logout the gateway session still answers %d, want 401", status)
	}

	// The provider asks to confirm, ends its session, and sends the browser
	// to the post-logout page (a skipped path: the upstream, anonymous).
	out := OPSignIn(t, browser, endSession, "")
	requireOPSteps(t, out, "(logout form)")
	if out.FinalURL.Path != extSignedOut || out.Status != http.StatusOK || out.Body != "hello " {
		t.Fatalf("provider logout ended at %s: %d %q, want %s", out.FinalURL, out.Status, out.Body, extSignedOut)
	}

	_, again := e.signIn(t, browser, "alice")
	requireOPSteps(t, again, "(login form)")
}

func TestExternalOPBackchannelLogoutEndsServerSession(t *testing.T) {
	e := startExternal(t, externalConfig{
		ServerSessions: true,
		Client: func(appURL string) map[string]any {
			return map[string]any{
				"backchannel_logout_uri":              appURL + "/oauth2/backchannel-logout",
				"backchannel_logout_session_required": true,
			}
		},
	})

	// alice in two browsers (two provider sessions, two sids), bob in a third.
	alice, aliceElsewhere, bob := NewBrowser(t), NewBrowser(t), NewBrowser(t)
	e.signIn(t, alice, "alice")
	e.checkIdentity(t, alice, extAliceHeaders)
	e.signIn(t, aliceElsewhere, "alice")
	e.signIn(t, bob, "bob")

	// alice signs out at the provider itself (not through the gateway):
	// the provider POSTs a logout token to the gateway.
	out := OPSignIn(t, alice, e.Discovery.EndSessionEndpoint, "")
	requireOPSteps(t, out, "(logout form)")
	if out.Status != http.StatusOK || !strings.HasPrefix(out.FinalURL.String(), e.OP.Issuer+"/") {
		t.Fatalf("provider logout ended at %s: %d", out.FinalURL, out.Status)
	}
	if !strings.Contains(e.OP.Logs(), "backchannel.success: client="+extClientID+" sub="+extAliceSub) {
		t.Errorf("the provider did not deliver a back-channel logout to the gateway; its output:\n%s", e.OP.Logs())
	}
	waitSignedOut(t, alice, e.Target)

	// The logout token names alice's sid: her other session and bob's live on.
	if status := apiStatus(t, aliceElsewhere, e.Target); status != http.StatusOK {
		t.Errorf("alice's session in another browser (another provider session): %d, want 200", status)
	}
	if status := apiStatus(t, bob, e.Target); status != http.StatusOK {
		t.Errorf("bob's session: %d, want 200", status)
	}

	_, again := e.signIn(t, alice, "alice")
	requireOPSteps(t, again, "(login form)")
}
