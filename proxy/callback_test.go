package proxy_test

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/portcullis-gw/portcullis/proxy"
)

// tamperedLogin signs in with the provider's token-endpoint ID token edited
// by tamper and returns the callback's response.
func tamperedLogin(t *testing.T, e *env, tamper func(c map[string]any)) *http.Response {
	t.Helper()
	e.op.set(func(op *fakeOP) { op.tamperIDToken = tamper })
	return e.browser().login("/")
}

func TestCallbackRefusesStateMismatch(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	ar := b.startLogin("/")
	cases := []struct {
		name  string
		state []string
	}{
		{"altered state", []string{ar.State + "x"}},
		{"missing state", nil},
		{"empty state", []string{""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := b.get(e.op.CallbackURL(t, ar, url.Values{"state": tc.state}))
			e.expectLoginFailed(t, resp, http.StatusBadRequest, "state_mismatch")
		})
	}
	if n := e.op.codeExchanges.Load(); n != 0 {
		t.Fatalf("the code was redeemed %d times for a callback whose state did not match", n)
	}
}

func TestCallbackRefusesAnotherTabsState(t *testing.T) {
	// The state of one login with only another login's cookie: each login
	// is bound to its own cookie.
	e := newEnv(t)
	first, second := e.browser(), e.browser()
	arFirst := first.startLogin("/first")
	second.startLogin("/second")
	var cookies []*http.Cookie
	cookies = append(cookies, second.cookies()...)
	r := navigate(e.op.CallbackURL(t, arFirst, nil))
	for _, c := range cookies {
		r.AddCookie(c)
	}
	e.expectLoginFailed(t, second.doBare(r), http.StatusBadRequest, "state_mismatch")
}

// loginCookieName mirrors how the gateway names a login's cookie after its
// state.
func loginCookieName(state string) string {
	sum := sha256.Sum256([]byte(state))
	return "__Host-portcullis_session_login_" + hex.EncodeToString(sum[:6])
}

func TestCallbackRefusesLoginCookieRenamedForAnotherState(t *testing.T) {
	// Two logins in one browser with their cookie values swapped: a
	// cookie is found by name, but only counts for the state inside it.
	e := newEnv(t)
	b := e.browser()
	first, second := b.startLogin("/first"), b.startLogin("/second")
	values := map[string]string{}
	for _, c := range b.cookies() {
		values[c.Name] = c.Value
	}
	a, c := loginCookieName(first.State), loginCookieName(second.State)
	if values[a] == "" || values[c] == "" {
		t.Fatalf("login cookies %v are not named after their states", values)
	}
	r := navigate(e.op.CallbackURL(t, second, nil))
	r.AddCookie(&http.Cookie{Name: c, Value: values[a]})
	e.expectLoginFailed(t, e.browser().doBare(r), http.StatusBadRequest, "state_mismatch")
}

func TestCallbackRefusesWithoutLoginCookie(t *testing.T) {
	// Login CSRF: the attacker starts a login in their own browser and
	// sends the victim the callback with the attacker's code.
	e := newEnv(t)
	attacker, victim := e.browser(), e.browser()
	ar := attacker.startLogin("/")
	resp := victim.get(e.op.CallbackURL(t, ar, nil))
	e.expectLoginFailed(t, resp, http.StatusBadRequest, "state_mismatch")
	if n := e.op.codeExchanges.Load(); n != 0 {
		t.Fatalf("the attacker's code was redeemed %d times", n)
	}
}

func TestCallbackRefusesLoginCookieFromAnotherGateway(t *testing.T) {
	// A login cookie of the same name minted under another secret (another
	// gateway, or a forged one) is not this gateway's login.
	e := newEnv(t)
	other := newEnv(t, withSharedOP(e.op), func(s *envSpec) { s.secret = otherCookieSecret })
	otherBrowser := other.browser()
	otherResp := otherBrowser.get("/")
	other.expectLoginRedirect(t, otherResp)
	ar := e.op.Authorize(t, otherResp.Header.Get("Location"))
	r := navigate(e.op.CallbackURL(t, ar, nil))
	for _, c := range otherBrowser.cookies() {
		r.AddCookie(c)
	}
	e.expectLoginFailed(t, e.browser().doBare(r), http.StatusBadRequest, "state_mismatch")
}

func TestCallbackReplayIsRefused(t *testing.T) {
	cases := []struct {
		name     string
		reusable bool
	}{
		{"provider with single-use codes", false},
		// Even a lax provider that would redeem a code twice must not get
		// the chance: the login state is single use.
		{"provider that accepts a code twice", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, withOP(func(op *fakeOP) { op.reusableCodes = tc.reusable }))
			b := e.browser()
			ar := b.startLogin("/")
			callback := e.op.CallbackURL(t, ar, nil)
			captured := b.cookies() // what an attacker who saw the request holds
			first := b.get(callback)
			if first.StatusCode != http.StatusSeeOther {
				t.Fatalf("first callback: status %d; body %s", first.StatusCode, body(first))
			}
			if lc := first.Cookies(); !hasExpiredLoginCookie(lc) {
				t.Fatalf("the callback did not expire the login cookie: %v", first.Header["Set-Cookie"])
			}
			exchanges := e.op.codeExchanges.Load()
			replay := navigate(callback)
			for _, c := range captured {
				replay.AddCookie(c)
			}
			resp := e.browser().doBare(replay)
			if text := body(resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(text, "Reason: state_mismatch") {
				t.Fatalf("replayed callback: status %d, want 400 state_mismatch; body %s", resp.StatusCode, text)
			}
			if c := setCookie(resp, sessionCookieName); c != nil && c.MaxAge >= 0 {
				t.Fatal("a replayed callback started a session")
			}
			if tc.reusable && e.op.codeExchanges.Load() != exchanges {
				t.Fatal("a replayed callback was sent to the token endpoint")
			}
		})
	}
}

func hasExpiredLoginCookie(cs []*http.Cookie) bool {
	for _, c := range cs {
		if isLoginCookie(c.Name) && c.MaxAge < 0 {
			return true
		}
	}
	return false
}

func TestCallbackRefusesNonceMismatch(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(c map[string]any)
	}{
		{"another login's nonce", func(c map[string]any) { c["nonce"] = "nonce-of-another-login" }},
		{"no nonce", func(c map[string]any) { delete(c, "nonce") }},
		{"empty nonce", func(c map[string]any) { c["nonce"] = "" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.expectLoginFailed(t, tamperedLogin(t, e, tc.tamper), http.StatusBadRequest, "invalid_id_token")
		})
	}
}

func TestCallbackRefusesWrongAudience(t *testing.T) {
	cases := []struct {
		name string
		aud  any
	}{
		{"another client", "other-client"},
		{"list without this client", []string{"other-client", "third-client"}},
		{"empty", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			resp := tamperedLogin(t, e, func(c map[string]any) { c["aud"] = tc.aud })
			e.expectLoginFailed(t, resp, http.StatusBadRequest, "invalid_id_token")
		})
	}
}

func TestCallbackRefusesAzpOfAnotherClient(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(c map[string]any)
		ok     bool
	}{
		{"azp names another client", func(c map[string]any) { c["azp"] = "other-client" }, false},
		{"several audiences, azp another client", func(c map[string]any) {
			c["aud"], c["azp"] = []string{testClientID, "other-client"}, "other-client"
		}, false},
		{"several audiences without azp", func(c map[string]any) { c["aud"] = []string{testClientID, "other-client"} }, false},
		{"several audiences, azp is this client", func(c map[string]any) {
			c["aud"], c["azp"] = []string{testClientID, "other-client"}, testClientID
		}, true},
		{"azp is this client", func(c map[string]any) { c["azp"] = testClientID }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			resp := tamperedLogin(t, e, tc.tamper)
			if tc.ok {
				if resp.StatusCode != http.StatusSeeOther {
					t.Fatalf("status %d, want 303; body %s", resp.StatusCode, body(resp))
				}
				return
			}
			e.expectLoginFailed(t, resp, http.StatusBadRequest, "invalid_id_token")
		})
	}
}

func TestCallbackRefusesExpiredIDToken(t *testing.T) {
	e := newEnv(t)
	resp := tamperedLogin(t, e, func(c map[string]any) {
		now := e.clock.Now()
		c["iat"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-time.Minute).Unix()
	})
	e.expectLoginFailed(t, resp, http.StatusBadRequest, "invalid_id_token")
}

func TestCallbackRefusesIDTokenFromAnotherIssuer(t *testing.T) {
	e := newEnv(t)
	resp := tamperedLogin(t, e, func(c map[string]any) { c["iss"] = "https://evil.example" })
	e.expectLoginFailed(t, resp, http.StatusBadRequest, "invalid_id_token")
}

func TestCallbackRefusesAccessTokenHashMismatch(t *testing.T) {
	cases := []struct {
		name string
		edit func(op *fakeOP)
	}{
		{"at_hash of another token", func(op *fakeOP) {
			op.tamperIDToken = func(c map[string]any) { c["at_hash"] = leftHalfHash("another access token") }
		}},
		{"access token swapped after signing", func(op *fakeOP) {
			op.tamperAccessToken = func(string) string { return "at-injected" }
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.op.set(tc.edit)
			e.expectLoginFailed(t, e.browser().login("/"), http.StatusBadRequest, "invalid_id_token")
		})
	}
}

func TestCallbackRefusesTokenResponseWithoutIDToken(t *testing.T) {
	e := newEnv(t, withOP(func(op *fakeOP) { op.omitIDToken = true }))
	e.expectLoginFailed(t, e.browser().login("/"), http.StatusBadRequest, "invalid_id_token")
}

func TestCallbackRefusesIDTokenSignedByUnknownKey(t *testing.T) {
	cases := []struct {
		name string
		kid  string
	}{
		{"key id of the provider's key", "k1"},
		{"key id the provider never published", "attacker"},
		{"no key id", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			attackerKey := newECKey(t, tc.kid)
			e.op.set(func(op *fakeOP) {
				op.signIDToken = func(c map[string]any) string { return sign(t, attackerKey, c) }
			})
			e.expectLoginFailed(t, e.browser().login("/"), http.StatusBadRequest, "invalid_id_token")
		})
	}
}

// unsignedToken re-encodes a signed token with alg "none" and no signature.
// go-jose (rightly) cannot make such a token, so the attack's token is put
// together by hand: it is the input under test, not a JWS implementation.
func unsignedToken(t *testing.T, signed string) string {
	t.Helper()
	parts := strings.Split(signed, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", signed)
	}
	header, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": "k1"})
	return base64.RawURLEncoding.EncodeToString(header) + "." + parts[1] + "."
}

// hmacWithPublicKey signs claims with HS256, using bytes of the provider's
// RSA public key as the HMAC secret (the classic key-confusion attack).
func hmacWithPublicKey(t *testing.T, key []byte, c map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: jose.JSONWebKey{Key: key, KeyID: "r1"}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestCallbackRefusesUnsignedAndSymmetricIDTokens(t *testing.T) {
	der, err := x509.MarshalPKIXPublicKey(rsaKey().Public())
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	pkcs1 := x509.MarshalPKCS1PublicKey(&rsaKey().PublicKey)
	cases := []struct {
		name string
		sign func(t *testing.T, op *fakeOP, c map[string]any) string
	}{
		{"alg none", func(t *testing.T, op *fakeOP, c map[string]any) string { return unsignedToken(t, sign(t, op.key, c)) }},
		{"HS256 keyed with the RSA public key (PEM)", func(t *testing.T, _ *fakeOP, c map[string]any) string { return hmacWithPublicKey(t, pemKey, c) }},
		{"HS256 keyed with the RSA public key (DER)", func(t *testing.T, _ *fakeOP, c map[string]any) string { return hmacWithPublicKey(t, der, c) }},
		{"HS256 keyed with the RSA public key (PKCS#1)", func(t *testing.T, _ *fakeOP, c map[string]any) string { return hmacWithPublicKey(t, pkcs1, c) }},
		{"HS256 keyed with the client secret", func(t *testing.T, _ *fakeOP, c map[string]any) string {
			return hmacWithPublicKey(t, []byte(testSecret+strings.Repeat("!", 32)), c)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A provider that even advertises none and HS256 must not make
			// the gateway accept them.
			e := newEnv(t, withOP(func(op *fakeOP) {
				op.meta["id_token_signing_alg_values_supported"] = []string{"ES256", "RS256", "HS256", "none"}
			}))
			e.op.set(func(op *fakeOP) {
				op.signIDToken = func(c map[string]any) string { return tc.sign(t, op, c) }
			})
			e.expectLoginFailed(t, e.browser().login("/"), http.StatusBadRequest, "invalid_id_token")
		})
	}
}

func TestKeyRotationAtTheProviderIsPickedUp(t *testing.T) {
	e := newEnv(t)
	e.browser().mustLogin("/")
	before := e.op.jwksHits.Load()
	e.op.rotateKey("k2")
	e.browser().mustLogin("/")
	if e.op.jwksHits.Load() <= before {
		t.Fatal("a token with an unknown kid did not make the gateway fetch the JWKS again")
	}
	// Known keys are cached: the next login needs no fetch.
	cached := e.op.jwksHits.Load()
	e.browser().mustLogin("/")
	if e.op.jwksHits.Load() != cached {
		t.Fatal("the JWKS was fetched again for a known key")
	}
}

func TestCallbackIssuerParameter(t *testing.T) {
	cases := []struct {
		name       string
		advertised bool
		iss        []string // nil: no iss parameter
		ok         bool
	}{
		{"advertised, missing", true, nil, false},
		{"advertised, wrong", true, []string{"https://evil.example"}, false},
		{"advertised, empty", true, []string{""}, false},
		{"advertised, trailing slash", true, []string{"ISSUER/"}, false},
		{"advertised, correct", true, []string{"ISSUER"}, true},
		{"not advertised, wrong", false, []string{"https://evil.example"}, false},
		{"not advertised, missing", false, nil, true},
		{"not advertised, correct", false, []string{"ISSUER"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, withOP(func(op *fakeOP) {
				op.meta["authorization_response_iss_parameter_supported"] = tc.advertised
			}))
			b := e.browser()
			ar := b.startLogin("/")
			var iss []string
			for _, v := range tc.iss {
				iss = append(iss, strings.Replace(v, "ISSUER", e.op.issuer, 1))
			}
			resp := b.get(e.op.CallbackURL(t, ar, url.Values{"iss": iss}))
			if tc.ok {
				if resp.StatusCode != http.StatusSeeOther {
					t.Fatalf("status %d, want 303; body %s", resp.StatusCode, body(resp))
				}
				return
			}
			e.expectLoginFailed(t, resp, http.StatusBadRequest, "iss_mismatch")
			if n := e.op.codeExchanges.Load(); n != 0 {
				t.Fatalf("the code of a mix-up response was sent to the token endpoint (%d)", n)
			}
		})
	}
}

func TestCallbackWithoutCodeIsRefused(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	ar := b.startLogin("/")
	e.expectLoginFailed(t, b.get(e.op.CallbackURL(t, ar, url.Values{"code": nil})), http.StatusBadRequest, "missing_code")
}

func TestCallbackWithUnexpectedMethodIsRefused(t *testing.T) {
	e := newEnv(t)
	for _, m := range []string{http.MethodPut, http.MethodDelete} {
		resp := e.browser().do(newRequest(m, callbackPath+"?code=x&state=y", nil))
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s callback: status %d, want 405", m, resp.StatusCode)
		}
	}
}

func TestProviderErrorShowsSignInAgainPage(t *testing.T) {
	cases := []struct {
		name, code, description, reason, text string
	}{
		{"access denied", "access_denied", "", "provider_access_denied", "cancelled or denied"},
		{"login required", "login_required", "", "provider_login_required", "sign in again"},
		{"unknown error with a description", "weird_error", "<script>alert(1)</script>", "provider_other", "&lt;script&gt;"},
		{"server error", "server_error", "", "provider_server_error", "server_error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			b := e.browser()
			ar := b.startLogin("/wanted")
			q := url.Values{"code": nil, "error": {tc.code}}
			if tc.description != "" {
				q.Set("error_description", tc.description)
			}
			resp := b.get(e.op.CallbackURL(t, ar, q))
			if resp.StatusCode < 400 || resp.StatusCode >= 500 {
				t.Fatalf("status %d, want 4xx", resp.StatusCode)
			}
			text := body(resp)
			if !strings.Contains(text, `href="/wanted"`) || !strings.Contains(text, "Sign in again") {
				t.Fatalf("no link to sign in again to the page asked for: %s", text)
			}
			if !strings.Contains(text, tc.text) || strings.Contains(text, "<script>") {
				t.Fatalf("page does not explain %q safely: %s", tc.code, text)
			}
			if resp.Header.Get("Location") != "" {
				t.Fatal("a provider error redirected (login loop)")
			}
			if n := e.metrics.get(func(m *countingMetrics) int { return m.failed[tc.reason] }); n != 1 {
				t.Errorf("LoginFailed(%q) counted %d times", tc.reason, n)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("error page CSP %q", csp)
			}
		})
	}
}

func TestProviderErrorWithoutLoginIsNotShown(t *testing.T) {
	// An error response is only believed for a login this browser started:
	// nobody can show a victim a page with their own "provider" message.
	e := newEnv(t)
	q := url.Values{"error": {"access_denied"}, "error_description": {"Your account is locked, call +1 555 0100"}, "state": {"made-up"}}
	resp := e.browser().get(callbackPath + "?" + q.Encode())
	text := body(resp)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(text, "Reason: state_mismatch") {
		t.Fatalf("status %d, want 400 state_mismatch; body %s", resp.StatusCode, text)
	}
	if strings.Contains(text, "555 0100") {
		t.Fatal("the page shows a description from an unsolicited response")
	}
}

func TestTokenEndpointErrorIsAPageNotA500(t *testing.T) {
	e := newEnv(t, withOP(func(op *fakeOP) { op.tokenError = "invalid_grant" }))
	e.expectLoginFailed(t, e.browser().login("/"), http.StatusBadGateway, "token_exchange_failed")
}

// hybridLogin starts a hybrid-flow login and returns the form_post
// response the provider would make the browser send.
func hybridCallback(t *testing.T, e *env, b *browser, ar authResponse, form url.Values) *http.Response {
	t.Helper()
	r := newRequest(http.MethodPost, callbackPath, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Accept", "text/html")
	r.Header.Set("Origin", e.op.issuer) // a cross-site form post
	return b.do(r)
}

func hybridForm(e *env, ar authResponse, tamper func(c map[string]any)) url.Values {
	return url.Values{
		"code": {ar.Code}, "state": {ar.State}, "iss": {e.op.issuer},
		"id_token": {e.op.FrontChannelIDToken(ar, tamper)},
	}
}

func hybridEnv(t *testing.T) *env {
	return newEnv(t, withConfig(func(c *proxy.Config) { c.Flow = "hybrid" }))
}

func TestHybridLoginCompletes(t *testing.T) {
	e := hybridEnv(t)
	b := e.browser()
	ar := b.startLogin("/hybrid")
	if rt, rm := ar.Request.Get("response_type"), ar.Request.Get("response_mode"); rt != "code id_token" || rm != "form_post" {
		t.Fatalf("response_type %q response_mode %q", rt, rm)
	}
	resp := hybridCallback(t, e, b, ar, hybridForm(e, ar, nil))
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/hybrid" {
		t.Fatalf("status %d Location %q; body %s", resp.StatusCode, resp.Header.Get("Location"), body(resp))
	}
	upstreamOf(t, b.get("/hybrid"))
}

func TestHybridCallbackRefusesBadFrontChannelIDToken(t *testing.T) {
	cases := []struct {
		name string
		form func(e *env, ar authResponse) url.Values
	}{
		{"c_hash of another code", func(e *env, ar authResponse) url.Values {
			return hybridForm(e, ar, func(c map[string]any) { c["c_hash"] = leftHalfHash("another-code") })
		}},
		{"code swapped for another one", func(e *env, ar authResponse) url.Values {
			f := hybridForm(e, ar, nil)
			f.Set("code", "injected-code")
			return f
		}},
		{"no c_hash", func(e *env, ar authResponse) url.Values {
			return hybridForm(e, ar, func(c map[string]any) { delete(c, "c_hash") })
		}},
		{"no id_token", func(e *env, ar authResponse) url.Values {
			f := hybridForm(e, ar, nil)
			f.Del("id_token")
			return f
		}},
		{"nonce of another login", func(e *env, ar authResponse) url.Values {
			return hybridForm(e, ar, func(c map[string]any) { c["nonce"] = "other" })
		}},
		{"another audience", func(e *env, ar authResponse) url.Values {
			return hybridForm(e, ar, func(c map[string]any) { c["aud"] = "other-client" })
		}},
		{"expired", func(e *env, ar authResponse) url.Values {
			return hybridForm(e, ar, func(c map[string]any) { c["exp"] = e.clock.Now().Add(-time.Minute).Unix() })
		}},
		{"signed by an unknown key", func(e *env, ar authResponse) url.Values {
			f := hybridForm(e, ar, nil)
			e.op.mu.Lock()
			c := e.op.idTokenClaims(e.op.claims, ar.Nonce)
			e.op.mu.Unlock()
			c["c_hash"] = leftHalfHash(ar.Code)
			f.Set("id_token", sign(e.t, newECKey(e.t, "k1"), c))
			return f
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := hybridEnv(t)
			b := e.browser()
			ar := b.startLogin("/")
			e.expectLoginFailed(t, hybridCallback(t, e, b, ar, tc.form(e, ar)), http.StatusBadRequest, "invalid_id_token")
			if n := e.op.codeExchanges.Load(); n != 0 {
				t.Fatalf("the code was redeemed (%d) before the front-channel ID token was validated", n)
			}
		})
	}
}

func TestHybridCallbackRefusesSubjectMismatch(t *testing.T) {
	e := hybridEnv(t)
	b := e.browser()
	ar := b.startLogin("/")
	form := hybridForm(e, ar, func(c map[string]any) { c["sub"] = "mallory" })
	e.expectLoginFailed(t, hybridCallback(t, e, b, ar, form), http.StatusBadRequest, "invalid_id_token")
}

func TestHybridCallbackRefusesIssuerMismatch(t *testing.T) {
	e := hybridEnv(t)
	b := e.browser()
	ar := b.startLogin("/")
	form := hybridForm(e, ar, nil)
	form.Set("iss", "https://evil.example")
	e.expectLoginFailed(t, hybridCallback(t, e, b, ar, form), http.StatusBadRequest, "iss_mismatch")
}
