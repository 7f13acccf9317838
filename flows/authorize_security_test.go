package flows

// Attacks on the authorization endpoint: redirect URI tricks, PKCE
// downgrades, unsupported features, prompt=none and reflected input.

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/store"
)

// wantErrorPage checks that a request was answered with the error page and
// not sent anywhere (RFC 6749 §4.1.2.1: never redirect to an unverified
// URI).
func wantErrorPage(t *testing.T, res *response, status int) {
	t.Helper()
	if res.Status != status {
		t.Errorf("status %d, want %d\n%s", res.Status, status, res.Body)
	}
	if loc := res.Header.Get("Location"); loc != "" {
		t.Errorf("error redirected to %q", loc)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("error page content type %q", ct)
	}
	if strings.Contains(res.Body, `name="code"`) || strings.Contains(res.Body, "document.forms[0].submit()") {
		t.Errorf("error page auto-submits to the client:\n%s", res.Body)
	}
}

func TestAuthorizeRefusesRedirectURIThatIsNotRegisteredExactly(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	evil := []string{
		webappRedirect + "/",                    // trailing slash
		webappRedirect + "/evil",                // suffix path
		webappRedirect + "x",                    // suffix
		"https://app.example.com/c",             // prefix
		"https://app.example.com/",              // parent
		"https://APP.example.com/cb",            // host case
		"https://app.example.com/CB",            // path case
		"HTTPS://app.example.com/cb",            // scheme case
		"http://app.example.com/cb",             // scheme downgrade
		"https://app.example.com:443/cb",        // explicit port
		"https://app.example.com:8443/cb",       // other port
		webappRedirect + "?next=https://evil",   // extra query
		webappRedirect + "#frag",                // fragment
		"https://app.example.com.evil.com/cb",   // host suffix
		"https://app.example.com@evil.com/cb",   // userinfo: host is evil.com
		"https://evil.com@app.example.com/cb",   // userinfo on the right host
		"https://evil.com/cb",                   // other host
		"https://evil.com\\@app.example.com/cb", // backslash confusion
		"https://app.example.com/cb/../cb",      // dot segments
		"https://app.example.com/%63b",          // percent-encoded path
		"//app.example.com/cb",                  // scheme-relative
		" " + webappRedirect,                    // leading space
		webappRedirect + "%00",                  // NUL
		"javascript:alert(1)//" + webappRedirect,
		otherRedirect, // registered, but by another client
	}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		for _, redirect := range evil {
			t.Run(method+" "+redirect, func(t *testing.T) {
				p := newAuthRequest(webappID, webappRedirect, "openid")
				p.Set("redirect_uri", redirect)
				var res *response
				if method == http.MethodGet {
					res = env.get(PathAuthorize, p.Values, nil)
				} else {
					res = env.postForm(PathAuthorize, p.Values, nil)
				}
				wantErrorPage(t, res, http.StatusBadRequest)
				if !strings.Contains(res.Body, "invalid_request") {
					t.Errorf("error page does not show invalid_request")
				}
			})
		}
	}
}

func TestAuthorizeRefusesUnknownOrAmbiguousClient(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	base := func() url.Values { return newAuthRequest(webappID, webappRedirect, "openid").Values }
	cases := []struct {
		name   string
		mutate func(url.Values)
	}{
		{"unknown client", func(v url.Values) { v.Set("client_id", "nobody") }},
		{"unknown client with its own redirect", func(v url.Values) {
			v.Set("client_id", "evil")
			v.Set("redirect_uri", "https://evil.com/cb")
		}},
		{"client id case", func(v url.Values) { v.Set("client_id", "WebApp") }},
		{"missing client_id", func(v url.Values) { v.Del("client_id") }},
		{"repeated client_id", func(v url.Values) { v.Add("client_id", otherID) }},
		{"repeated redirect_uri", func(v url.Values) { v.Add("redirect_uri", "https://evil.com/cb") }},
		{"repeated state", func(v url.Values) { v.Add("state", "x") }},
		{"no redirect_uri but several registered", func(v url.Values) {
			v.Set("client_id", otherID)
			v.Del("redirect_uri")
		}},
		{"client without redirect URIs", func(v url.Values) {
			v.Set("client_id", backendID)
			v.Del("redirect_uri")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := base()
			tc.mutate(v)
			wantErrorPage(t, env.get(PathAuthorize, v, nil), http.StatusBadRequest)
		})
	}
}

func TestAuthorizeWithoutRedirectURIUsesTheOnlyRegisteredOne(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	p := newAuthRequest(webappID, webappRedirect, "openid")
	p.Del("redirect_uri")
	res := b.signIn(p.Values, "alice", alicePassword)
	loc := res.Location(t)
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != webappRedirect {
		t.Fatalf("redirected to %s", got)
	}
	code := loc.Query().Get("code")
	// RFC 6749 §4.1.3: redirect_uri was not in the request, so it must not
	// be required (nor accepted as a different value) at the token endpoint.
	wantOAuthError(t, env.redeem(webappBasic, code, "https://app.example.com/other", p.Verifier), http.StatusBadRequest, "invalid_grant")
	p2 := newAuthRequest(webappID, webappRedirect, "openid")
	p2.Del("redirect_uri")
	q := callback(t, b.authorize(p2.Values))
	env.redeemOK(webappBasic, q.Get("code"), "", p2.Verifier)
}

// wantRedirectError checks an error sent to the client's redirect URI with
// state and iss.
func wantRedirectError(t *testing.T, res *response, redirect, code, state string) {
	t.Helper()
	if res.Status != http.StatusSeeOther {
		t.Fatalf("status %d, want a 303 to the client\n%s", res.Status, res.Body)
	}
	loc := res.Location(t)
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != redirect {
		t.Errorf("error sent to %s, want %s", got, redirect)
	}
	q := loc.Query()
	if q.Get("error") != code {
		t.Errorf("error %q (%s), want %s", q.Get("error"), q.Get("error_description"), code)
	}
	if q.Get("state") != state {
		t.Errorf("state %q, want %q", q.Get("state"), state)
	}
	if q.Get("iss") != testIssuer {
		t.Errorf("iss %q, want %s (RFC 9207)", q.Get("iss"), testIssuer)
	}
	if q.Get("code") != "" {
		t.Errorf("error response carries a code")
	}
}

// TestAuthorizeRefusesWeakOrMissingPKCE: S256 only, and mandatory for
// public clients (RFC 9700 §2.1.1).
func TestAuthorizeRefusesWeakOrMissingPKCE(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	_, challenge := newPKCE()
	cases := []struct {
		name     string
		client   string
		redirect string
		mutate   func(url.Values)
	}{
		{"plain method", webappID, webappRedirect, func(v url.Values) { v.Set("code_challenge_method", "plain") }},
		{"plain method public client", spaID, spaRedirect, func(v url.Values) {
			v.Set("code_challenge_method", "plain")
			v.Set("code_challenge", strings.Repeat("a", 43))
		}},
		{"missing method (defaults to plain)", webappID, webappRedirect, func(v url.Values) { v.Del("code_challenge_method") }},
		{"lowercase s256", webappID, webappRedirect, func(v url.Values) { v.Set("code_challenge_method", "s256") }},
		{"unknown method", spaID, spaRedirect, func(v url.Values) { v.Set("code_challenge_method", "S512") }},
		{"missing challenge, public client", spaID, spaRedirect, func(v url.Values) {
			v.Del("code_challenge")
			v.Del("code_challenge_method")
		}},
		{"method without challenge", webappID, webappRedirect, func(v url.Values) { v.Del("code_challenge") }},
		{"short challenge", spaID, spaRedirect, func(v url.Values) { v.Set("code_challenge", challenge[:42]) }},
		{"long challenge", spaID, spaRedirect, func(v url.Values) { v.Set("code_challenge", challenge+"A") }},
		{"challenge with padding", spaID, spaRedirect, func(v url.Values) { v.Set("code_challenge", challenge[:42]+"=") }},
		{"challenge outside base64url", spaID, spaRedirect, func(v url.Values) { v.Set("code_challenge", challenge[:42]+"+") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newAuthRequest(tc.client, tc.redirect, "openid")
			tc.mutate(p.Values)
			// Validation happens before sign-in: the error goes straight back.
			res := env.newBrowser().authorize(p.Values)
			wantRedirectError(t, res, tc.redirect, "invalid_request", p.Get("state"))
		})
	}
	t.Run("confidential client that requires PKCE", func(t *testing.T) {
		c, _ := env.store.GetClient(t.Context(), webappID)
		c.ID, c.RequirePKCE = "strict", true
		if err := env.store.PutClient(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		p := newAuthRequest("strict", webappRedirect, "openid")
		p.Del("code_challenge")
		p.Del("code_challenge_method")
		wantRedirectError(t, env.newBrowser().authorize(p.Values), webappRedirect, "invalid_request", p.Get("state"))
	})
}

func TestAuthorizeRefusesUnsupportedRequests(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	cases := []struct {
		name, code string
		mutate     func(url.Values)
	}{
		{"implicit token", "unsupported_response_type", func(v url.Values) { v.Set("response_type", "token") }},
		{"implicit id_token", "unsupported_response_type", func(v url.Values) { v.Set("response_type", "id_token") }},
		{"hybrid", "unsupported_response_type", func(v url.Values) { v.Set("response_type", "code id_token") }},
		{"missing response_type", "invalid_request", func(v url.Values) { v.Del("response_type") }},
		{"request object", "request_not_supported", func(v url.Values) { v.Set("request", "eyJhbGciOiJub25lIn0.e30.") }},
		{"request_uri", "request_uri_not_supported", func(v url.Values) { v.Set("request_uri", "https://evil.com/req") }},
		{"unknown response_mode", "invalid_request", func(v url.Values) { v.Set("response_mode", "web_message") }},
		{"unknown scope", "invalid_scope", func(v url.Values) { v.Set("scope", "openid admin:everything") }},
		{"scope with forbidden characters", "invalid_scope", func(v url.Values) { v.Set("scope", "openid \"x\"") }},
		{"unknown audience", "invalid_request", func(v url.Values) { v.Set("audience", "https://evil.example.com") }},
		{"scope of another API", "invalid_scope", func(v url.Values) {
			v.Set("audience", opaqueAPI)
			v.Set("scope", "openid read:items")
		}},
		{"prompt none with login", "invalid_request", func(v url.Values) { v.Set("prompt", "none login") }},
		{"unknown prompt", "invalid_request", func(v url.Values) { v.Set("prompt", "create") }},
		{"negative max_age", "invalid_request", func(v url.Values) { v.Set("max_age", "-1") }},
		{"non-numeric max_age", "invalid_request", func(v url.Values) { v.Set("max_age", "1h") }},
		{"long nonce", "invalid_request", func(v url.Values) { v.Set("nonce", strings.Repeat("n", 1025)) }},
		{"long login_hint", "invalid_request", func(v url.Values) { v.Set("login_hint", strings.Repeat("n", 1025)) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newAuthRequest(webappID, webappRedirect, "openid")
			tc.mutate(p.Values)
			wantRedirectError(t, env.newBrowser().authorize(p.Values), webappRedirect, tc.code, p.Get("state"))
		})
	}
	t.Run("long state is dropped, not echoed", func(t *testing.T) {
		p := newAuthRequest(webappID, webappRedirect, "openid")
		p.Set("state", strings.Repeat("s", 1025))
		wantRedirectError(t, env.newBrowser().authorize(p.Values), webappRedirect, "invalid_request", "")
	})
	t.Run("client not allowed the code flow", func(t *testing.T) {
		ctx := t.Context()
		c, _ := env.store.GetClient(ctx, otherID)
		c.ID, c.GrantTypes = "refresh-only", []string{GrantRefreshToken}
		if err := env.store.PutClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		p := newAuthRequest("refresh-only", webappRedirect, "openid")
		wantRedirectError(t, env.newBrowser().authorize(p.Values), webappRedirect, "unauthorized_client", p.Get("state"))
	})
}

func TestAuthorizeMethodsOtherThanGetAndPostAreRefused(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	for _, m := range []string{http.MethodPut, http.MethodDelete, http.MethodPatch} {
		r := httptestRequest(m, testIssuer+PathAuthorize+"?"+newAuthRequest(webappID, webappRedirect, "openid").Encode())
		res := env.serve(r)
		wantErrorPage(t, res, http.StatusMethodNotAllowed)
	}
}

func TestPromptNoneWithoutSessionRedirectsLoginRequired(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	for _, mode := range []string{"query", "fragment", "form_post"} {
		t.Run(mode, func(t *testing.T) {
			p := newAuthRequest(webappID, webappRedirect, "openid")
			p.Set("prompt", "none")
			p.Set("response_mode", mode)
			res := env.newBrowser().authorize(p.Values)
			var q url.Values
			switch mode {
			case "query":
				wantRedirectError(t, res, webappRedirect, "login_required", p.Get("state"))
				return
			case "fragment":
				loc := res.Location(t)
				q, _ = url.ParseQuery(loc.Fragment)
			case "form_post":
				if res.isLoginPage() {
					t.Fatalf("prompt=none showed the login page")
				}
				_, q = res.form(t)
			}
			if q.Get("error") != "login_required" || q.Get("state") != p.Get("state") || q.Get("iss") != testIssuer {
				t.Errorf("prompt=none answer: %v", q)
			}
		})
	}
}

func TestPromptNoneWithoutConsentRedirectsConsentRequired(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	// Signed in through a first-party client: a session, but no consent for
	// webapp.
	b.obtainCode(newAuthRequest(firstPartyID, firstPartyRedirect, "openid"), "alice", alicePassword)
	p := newAuthRequest(webappID, webappRedirect, "openid profile")
	p.Set("prompt", "none")
	wantRedirectError(t, b.authorize(p.Values), webappRedirect, "consent_required", p.Get("state"))

	// Once consented, prompt=none succeeds silently; a wider scope does not.
	b.obtainCode(newAuthRequest(webappID, webappRedirect, "openid profile"), "alice", alicePassword)
	p = newAuthRequest(webappID, webappRedirect, "openid")
	p.Set("prompt", "none")
	if q := callback(t, b.authorize(p.Values)); q.Get("code") == "" {
		t.Errorf("silent authorize with consent failed: %v", q)
	}
	p = newAuthRequest(webappID, webappRedirect, "openid email")
	p.Set("prompt", "none")
	wantRedirectError(t, b.authorize(p.Values), webappRedirect, "consent_required", p.Get("state"))
}

func TestPromptNoneAfterSessionExpiryIsLoginRequired(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	b.obtainCode(newAuthRequest(firstPartyID, firstPartyRedirect, "openid"), "alice", alicePassword)
	env.clock.Advance(24*time.Hour + time.Second)
	p := newAuthRequest(firstPartyID, firstPartyRedirect, "openid")
	p.Set("prompt", "none")
	wantRedirectError(t, b.authorize(p.Values), firstPartyRedirect, "login_required", p.Get("state"))
}

// TestPagesEscapeReflectedInput: nothing a request carries reaches a page
// unescaped.
func TestPagesEscapeReflectedInput(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	const payload = `"><script>alert(1)</script><img src=x onerror=alert(2)>`
	t.Run("login_hint on the login page", func(t *testing.T) {
		p := newAuthRequest(webappID, webappRedirect, "openid")
		p.Set("login_hint", payload)
		res := env.newBrowser().authorize(p.Values)
		if !res.isLoginPage() {
			t.Fatalf("no login page: %d", res.Status)
		}
		if strings.Contains(res.Body, "<script>alert") || strings.Contains(res.Body, "<img src=x") {
			t.Errorf("login_hint reflected unescaped:\n%s", res.Body)
		}
	})
	t.Run("client_id on the error page", func(t *testing.T) {
		v := url.Values{"client_id": {payload}, "response_type": {"code"}}
		res := env.get(PathAuthorize, v, nil)
		wantErrorPage(t, res, http.StatusBadRequest)
		if strings.Contains(res.Body, "<script>alert") || strings.Contains(res.Body, "<img src=x") {
			t.Errorf("client_id reflected unescaped:\n%s", res.Body)
		}
	})
	t.Run("username after a failed login", func(t *testing.T) {
		b := env.newBrowser()
		res := b.submitLogin(b.authorize(newAuthRequest(webappID, webappRedirect, "openid").Values), payload, "x")
		if strings.Contains(res.Body, "<script>alert") || strings.Contains(res.Body, "<img src=x") {
			t.Errorf("username reflected unescaped:\n%s", res.Body)
		}
	})
}

func TestPagesSendSecurityHeaders(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	pages := map[string]*response{
		"login": env.newBrowser().authorize(newAuthRequest(webappID, webappRedirect, "openid").Values),
		"error": env.get(PathAuthorize, url.Values{"client_id": {"nobody"}}, nil),
	}
	for name, res := range pages {
		h := res.Header
		if h.Get("X-Frame-Options") != "DENY" || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("%s page can be framed: %v", name, h)
		}
		if h.Get("Cache-Control") != "no-store" || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s page headers: %v", name, h)
		}
	}
}

// TestScopeParameterCannotExhaustCPU: parseScope runs before any
// authentication (a client_id and its redirect URI are public), so a large
// scope of distinct tokens must be refused in linear time, not cost
// seconds of CPU per request.
func TestScopeParameterCannotExhaustCPU(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	var sb strings.Builder
	for i := 0; i < 50000; i++ {
		fmt.Fprintf(&sb, "s%d ", i)
	}
	p := newAuthRequest(webappID, webappRedirect, sb.String())
	start := time.Now()
	res := env.get(PathAuthorize, p.Values, nil)
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("a %d-byte scope took %v to refuse", sb.Len(), elapsed)
	}
	if res.Status != http.StatusSeeOther && res.Status != http.StatusBadRequest {
		t.Errorf("status %d", res.Status)
	}
}

// TestConsentForOneAPIDoesNotCoverAnother: the consent page names the API
// ("… and Items API"); a client must not reuse that consent to get tokens
// for another API that happens to define a scope of the same name.
func TestConsentForOneAPIDoesNotCoverAnother(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	if err := env.store.PutAPI(t.Context(), &store.API{Identifier: "https://payroll.example.com", Name: "Payroll", Scopes: []string{"read:items"}}); err != nil {
		t.Fatal(err)
	}
	b := env.newBrowser()
	p := newAuthRequest(webappID, webappRedirect, "openid read:items")
	p.Set("audience", apiID1)
	b.obtainCode(p, "alice", alicePassword)

	p = newAuthRequest(webappID, webappRedirect, "openid read:items")
	p.Set("audience", "https://payroll.example.com")
	res := b.authorize(p.Values)
	if !res.isConsentPage() || !strings.Contains(res.Body, "Payroll") {
		t.Errorf("a token for Payroll was issued on the consent given for Items API (status %d, Location %q)", res.Status, res.Header.Get("Location"))
	}
	p.Set("prompt", "none")
	if q := b.authorize(p.Values).Location(t).Query(); q.Get("error") != "consent_required" {
		t.Errorf("prompt=none for an API never consented to: %v", q)
	}
}
