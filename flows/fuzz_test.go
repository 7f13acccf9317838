package flows

// Fuzz targets for the two endpoints that parse the most attacker input.
// Under plain `go test` they run their seed corpus; run them for real with
//
//	go test ./flows/ -run '^$' -fuzz FuzzTokenEndpoint -fuzztime 60s
//	go test ./flows/ -run '^$' -fuzz FuzzAuthorize -fuzztime 60s

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// registeredRedirects are every redirect URI a seeded client registered:
// the only places the authorization endpoint may send a browser.
var registeredRedirects = []string{webappRedirect, otherRedirect, spaRedirect, firstPartyRedirect}

// FuzzTokenEndpoint posts arbitrary form bodies (with an arbitrary
// Authorization header) to the token endpoint: never a 500 or a panic, and
// always a JSON answer.
func FuzzTokenEndpoint(f *testing.F) {
	env := newTestServer(f)
	b := env.newBrowser()
	p := newAuthRequest(webappID, webappRedirect, "openid offline_access read:items")
	code := b.obtainCode(p, "alice", alicePassword)
	p2 := newAuthRequest(webappID, webappRedirect, "openid offline_access")
	code2 := b.obtainCode(p2, "alice", alicePassword)
	tr := env.redeemOK(webappBasic, code2, webappRedirect, p2.Verifier)
	basic := webappBasic.apply(url.Values{}).Get("Authorization")
	backend := backendBasic.apply(url.Values{}).Get("Authorization")

	seeds := []struct{ body, authz string }{
		{url.Values{"grant_type": {GrantAuthorizationCode}, "code": {code}, "redirect_uri": {webappRedirect}, "code_verifier": {p.Verifier}}.Encode(), basic},
		{url.Values{"grant_type": {GrantAuthorizationCode}, "code": {code}, "client_id": {webappID}, "client_secret": {webappSecret}}.Encode(), ""},
		{url.Values{"grant_type": {GrantRefreshToken}, "refresh_token": {tr.RefreshToken}, "scope": {"openid"}}.Encode(), basic},
		{url.Values{"grant_type": {GrantRefreshToken}, "refresh_token": {tr.RefreshToken}, "client_id": {spaID}}.Encode(), ""},
		{"grant_type=client_credentials", backend},
		{"grant_type=client_credentials&audience=https%3A%2F%2Fapi.example.com&scope=read%3Aitems+write%3Aitems", backend},
		{"grant_type=client_credentials&resource=https%3A%2F%2Fopaque.example.com&client_id=backend&client_secret=backend-secret", ""},
		{"grant_type=client_credentials&client_id=public-cc", ""},
		{"grant_type=password&username=alice&password=x", basic},
		{"grant_type=authorization_code&code=&code=", basic},
		{"grant_type=%zz&code=%", "Basic %%%"},
		{"client_id=webapp&client_secret=webapp-secret", "Basic " + strings.Repeat("A", 100)},
		{"grant_type=refresh_token&refresh_token=a.b.c", "Bearer x"},
		{"grant_type=authorization_code&code_verifier=" + strings.Repeat("~", 128), basic},
		{"scope=%22%5C%00&grant_type=client_credentials", backend},
		{"", ""},
	}
	for _, s := range seeds {
		f.Add(s.body, s.authz)
	}
	f.Fuzz(func(t *testing.T, body, authz string) {
		r := httptest.NewRequest(http.MethodPost, testIssuer+PathToken, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if authz != "" {
			r.Header["Authorization"] = []string{authz}
		}
		rec := httptest.NewRecorder()
		env.handler.ServeHTTP(rec, r)
		if rec.Code >= 500 {
			t.Fatalf("status %d for body %q, Authorization %q: %s", rec.Code, body, authz, rec.Body)
		}
		var m map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("status %d with a non-JSON body %q", rec.Code, rec.Body)
		}
		if rec.Code == http.StatusOK && m["access_token"] == nil {
			t.Fatalf("200 without an access token: %v", m)
		}
		if rec.Code != http.StatusOK && m["error"] == nil {
			t.Fatalf("%d without an error code: %v", rec.Code, m)
		}
	})
}

// FuzzAuthorize sends arbitrary query strings to the authorization
// endpoint, with and without a signed-in session: never a 500 or a panic,
// and never a redirect (or auto-submitted form) to anything but a
// registered redirect URI.
func FuzzAuthorize(f *testing.F) {
	env := newTestServer(f)
	b := env.newBrowser()
	// alice is signed in and consented to webapp, so the fuzzer can reach
	// code issuance.
	b.obtainCode(newAuthRequest(webappID, webappRedirect, "openid profile email offline_access read:items"), "alice", alicePassword)
	issuerURL, _ := url.Parse(testIssuer)
	var cookieHeader []string
	for _, c := range b.jar.Cookies(issuerURL) {
		cookieHeader = append(cookieHeader, c.String())
	}

	valid := newAuthRequest(webappID, webappRedirect, "openid profile").Values
	with := func(k, v string) string {
		c := url.Values{}
		for key, x := range valid {
			c[key] = x
		}
		c.Set(k, v)
		return c.Encode()
	}
	seeds := []string{
		valid.Encode(),
		with("prompt", "none"),
		with("prompt", "login consent select_account"),
		with("response_mode", "form_post"),
		with("response_mode", "fragment"),
		with("redirect_uri", "https://evil.example.com/cb"),
		with("redirect_uri", ""),
		with("code_challenge_method", "plain"),
		with("max_age", "99999999999999999999"),
		with("max_age", "9223372036"),
		with("scope", "openid read:items write:items read:opaque"),
		with("audience", opaqueAPI),
		with("state", strings.Repeat("s", 1024)),
		with("client_id", spaID),
		with("request_uri", "urn:x"),
		newAuthRequest(spaID, spaRedirect, "openid").Encode() + "&response_mode=fragment",
		"client_id=webapp&client_id=other",
		"client_id=%zz&redirect_uri=%",
		"response_type=code&client_id=webapp&scope=%00%01%7F",
		";;&&==",
		"",
	}
	for _, s := range seeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, query string, signedIn bool) {
		r := httptest.NewRequest(http.MethodGet, testIssuer+PathAuthorize, nil)
		r.URL.RawQuery = query
		r.RequestURI = r.URL.RequestURI()
		if signedIn {
			r.Header["Cookie"] = []string{strings.Join(cookieHeader, "; ")}
		}
		rec := httptest.NewRecorder()
		env.handler.ServeHTTP(rec, r)
		if rec.Code >= 500 {
			t.Fatalf("status %d for query %q (signed in %v): %s", rec.Code, query, signedIn, rec.Body)
		}
		if loc := rec.Header().Get("Location"); loc != "" {
			if rec.Code != http.StatusSeeOther {
				t.Fatalf("Location with status %d", rec.Code)
			}
			base, _, _ := strings.Cut(loc, "#")
			base, _, _ = strings.Cut(base, "?")
			if !slices.Contains(registeredRedirects, base) {
				t.Fatalf("query %q redirected to unregistered %q", query, loc)
			}
		}
		body := rec.Body.String()
		if strings.Contains(body, "document.forms[0].submit()") {
			m := formActionRE.FindStringSubmatch(body)
			if m == nil || !slices.Contains(registeredRedirects, m[1]) {
				t.Fatalf("query %q auto-submits a form to %v", query, m)
			}
		}
	})
}
