package flows

// Fuzz targets for the pages a browser posts forms to. Under plain `go
// test` they run their seed corpus; run one for real with
//
//	go test ./flows/ -run '^$' -fuzz '^FuzzBrowserPages$' -fuzztime 60s
//	go test ./flows/ -run '^$' -fuzz '^FuzzEndSession$' -fuzztime 60s

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// browserPages are the form endpoints FuzzBrowserPages picks from, and
// whether each may redirect the browser (to a client's redirect URI).
var browserPages = []struct {
	path     string
	redirect bool
}{
	{PathLogin, true},
	{PathConsent, true},
	{PathDevice, false},
	{PathCIBA, false},
}

// FuzzBrowserPages sends arbitrary query strings (GET) and form bodies
// (POST) to the login and consent form endpoints, the device verification
// page and the CIBA approval page, the first byte picking which, with no
// cookie, alice's CSRF cookie alone, or her CSRF and SSO cookies. The
// seeds are the real forms of each step, as alice's browser got them.
// Property: never a panic or a 5xx; a redirect only from the login and
// consent forms, a 303 to a registered redirect URI; every page inert
// (see checkInertHTML), and one that submits itself (form_post) only to a
// registered redirect URI.
func FuzzBrowserPages(f *testing.F) {
	e := newFuzzEnv(f)
	alice := e.newBrowser()
	// Before alice signs in: the device and CIBA sign-in forms.
	da := e.deviceCode(tvPublic, "openid profile offline_access")
	codePage := alice.openDevice(da.UserCode)
	_, codeFields := codePage.form(f)
	deviceLogin := alice.enterCode(codePage, da.UserCode)
	_, deviceLoginFields := deviceLogin.form(f)
	_, cibaLoginFields := alice.get(PathCIBA).form(f)
	// The login form, then the consent form it leads to.
	loginPage := alice.authorize(newAuthRequest(webappID, webappRedirect, "openid profile read:items").Values)
	_, loginFields := loginPage.form(f)
	consentPage := alice.submitLogin(loginPage, "alice", alicePassword)
	_, consentFields := consentPage.form(f)
	formPost := alice.authorize(withValues(newAuthRequest(otherID, otherRedirect, "openid").Values, "response_mode", "form_post"))
	_, formPostConsent := formPost.form(f)
	// Signed in: the device confirmation and the CIBA decision forms.
	da2 := e.deviceCode(tvPublic, "openid read:items")
	confirm := alice.enterCode(alice.openDevice(""), da2.UserCode)
	_, confirmFields := confirm.form(f)
	e.start(cibaPollBasic, aliceHint("binding_message", "W4SCT"))
	_, decideFields := alice.get(PathCIBA).form(f)
	sess := e.signedInSession(f, alice)
	cookies := []string{"", csrfCookie(alice), browserCookies(alice)}

	const (
		login = iota
		consent
		device
		ciba
	)
	post := func(v url.Values, kv ...string) string { return withValues(v, kv...).Encode() }
	seeds := []struct {
		page        uint8
		post        bool
		query, body string
		cookies     uint8
	}{
		{login, true, "", post(loginFields, "username", "alice", "password", alicePassword), 1},
		{login, true, "", post(loginFields, "username", "alice", "password", "wrong"), 1},
		{login, true, "", post(loginFields, "username", "<b>x</b>", "password", ""), 1},
		{login, true, "", post(loginFields, "auth_request", "x"), 1},
		{login, true, "", post(loginFields, "csrf_token", "x"), 1},
		{login, false, "", "", 2},
		{consent, true, "", post(consentFields, "decision", "allow"), 2},
		{consent, true, "", post(consentFields, "decision", "deny"), 2},
		{consent, true, "", post(formPostConsent, "decision", "allow"), 2},
		{consent, true, "", post(consentFields, "decision", "maybe"), 2},
		{consent, true, "", post(consentFields, "decision", "allow"), 1},
		{device, false, "user_code=" + url.QueryEscape(da.UserCode), "", 0},
		{device, false, "user_code=%3Cscript%3E", "", 1},
		{device, true, "", post(codeFields, "user_code", da.UserCode), 1},
		{device, true, "", post(codeFields, "user_code", da2.UserCode), 2},
		{device, true, "", post(codeFields, "user_code", "bcdf ghjk"), 1},
		{device, true, "", post(deviceLoginFields, "username", "alice", "password", "wrong"), 1},
		{device, true, "", post(confirmFields, "decision", "allow"), 2},
		{device, true, "", post(confirmFields, "decision", "deny"), 1},
		{device, true, "", post(confirmFields, "step", "nope"), 2},
		{ciba, false, "", "", 2},
		{ciba, true, "", post(cibaLoginFields, "username", "bob", "password", "wrong"), 1},
		{ciba, true, "", post(decideFields, "decision", "deny"), 2},
		{ciba, true, "", post(decideFields, "ciba_request", "x"), 2},
		{ciba, true, "", "step=decide", 0},
	}
	for _, s := range seeds {
		f.Add(s.page, s.post, s.query, s.body, s.cookies)
	}
	f.Fuzz(func(t *testing.T, page uint8, post bool, query, body string, cookie uint8) {
		e.keepSession(t, sess)
		p := browserPages[int(page)%len(browserPages)]
		res := serveFuzz(e.handler, fuzzRequest(post, p.path, query, body, cookies[int(cookie)%len(cookies)]))
		if res.Status >= 500 {
			t.Fatalf("server error %d: %s", res.Status, res.Body)
		}
		if res.Status == http.StatusMethodNotAllowed && res.Header.Get("Allow") != "" {
			return // the mux's answer to a GET of a POST-only form endpoint
		}
		if loc := res.Header.Get("Location"); loc != "" || res.Status/100 == 3 {
			if !p.redirect || res.Status != http.StatusSeeOther || !slices.Contains(registeredRedirects, locationBase(loc)) {
				t.Fatalf("%s redirected (%d) to %q", p.path, res.Status, loc)
			}
			return
		}
		if action := checkInertHTML(t, res); action != "" && !slices.Contains(registeredRedirects, action) {
			t.Fatalf("%s auto-submits a form to %q", p.path, action)
		}
	})
}

// FuzzEndSession sends RP-initiated logout requests (GET, or POST with
// or without alice's CSRF token and confirm=yes) with arbitrary
// id_token_hint, client_id, post_logout_redirect_uri and state, alice
// being signed in. Property: never a panic or a 5xx; alice's session ends
// only when she confirmed on the page (POST with her CSRF token) or the
// hint is an ID token this server issued for her (checked independently,
// with go-jose and the published keys); a redirect is a 303 to exactly the
// post_logout_redirect_uri, registered for the client that client_id or
// the hint's audience names, with the state; every page is inert.
func FuzzEndSession(f *testing.F) {
	e := newFuzzEnv(f)
	alice := e.newBrowser()
	aliceTokens, _ := e.webappTokens(alice, "openid")
	spa := newAuthRequest(spaID, spaRedirect, "openid")
	spaTokens := e.redeemOK(spaPublic, alice.obtainCode(spa, "alice", alicePassword), spaRedirect, spa.Verifier)
	p := newAuthRequest(webappID, webappRedirect, "openid")
	bobTokens := e.redeemOK(webappBasic, e.newBrowser().obtainCode(p, "bob", bobPassword), webappRedirect, p.Verifier)
	sess := e.signedInSession(f, alice)
	_, confirmFields := alice.get(PathEndSession).form(f)
	csrf := confirmFields.Get("csrf_token")
	cookie := browserCookies(alice)
	set := e.jwks()
	attacker, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: newECKey(f)},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", set.Keys[0].KeyID))
	forged, _ := attacker.Sign([]byte(`{"iss":"` + testIssuer + `","sub":"alice","aud":"webapp"}`))
	forgedJWT, _ := forged.CompactSerialize()

	seeds := []struct {
		post, confirm                   bool
		hint, clientID, redirect, state string
	}{
		{false, false, aliceTokens.IDToken, "", webappBye, "st-1"},
		{false, false, aliceTokens.IDToken, webappID, webappBye, ""},
		{false, false, aliceTokens.IDToken, spaID, webappBye, ""},
		{false, false, spaTokens.IDToken, "", "https://spa.example.com/", "a b&c"},
		{false, false, spaTokens.IDToken, "", webappBye, ""},
		{false, false, bobTokens.IDToken, "", webappBye, "x"},
		{false, false, aliceTokens.AccessToken, "", "", ""},
		{false, false, forgedJWT, "", webappBye, ""},
		{false, false, aliceTokens.IDToken + "x", "", "", ""},
		{false, false, "", webappID, webappBye, "<script>"},
		{false, false, "", webappID, "https://evil.example/", ""},
		{false, false, "", "", "javascript:alert(1)", ""},
		{true, true, "", webappID, webappBye, "s"},
		{true, true, "", "", "", ""},
		{true, false, "", webappID, webappBye, `"><img src=x>`},
		{true, false, aliceTokens.IDToken, "", webappBye, ""},
		{false, false, "a.b.c", "", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.post, s.confirm, s.hint, s.clientID, s.redirect, s.state)
	}
	ctx := context.Background()
	clients := map[string][]string{} // post-logout redirect URIs by client
	for _, id := range []string{webappID, spaID, otherID} {
		c, err := e.store.GetClient(ctx, id)
		if err != nil {
			f.Fatal(err)
		}
		clients[id] = c.PostLogoutRedirectURIs
	}
	f.Fuzz(func(t *testing.T, post, confirm bool, hint, clientID, redirect, state string) {
		e.keepSession(t, sess)
		params := url.Values{}
		for k, v := range map[string]string{"id_token_hint": hint, "client_id": clientID, "post_logout_redirect_uri": redirect, "state": state} {
			if v != "" {
				params.Set(k, v)
			}
		}
		var res *response
		if post {
			if confirm {
				params.Set("confirm", "yes")
				params.Set("csrf_token", csrf)
			}
			res = serveFuzz(e.handler, fuzzRequest(true, PathEndSession, "", params.Encode(), cookie))
		} else {
			res = serveFuzz(e.handler, fuzzRequest(false, PathEndSession, params.Encode(), "", cookie))
		}
		if res.Status >= 500 {
			t.Fatalf("server error %d: %s", res.Status, res.Body)
		}
		sub, aud, verified := verifiedIDToken(set, hint)
		if _, err := e.store.GetSession(ctx, sess.ID); err != nil && !(post && confirm) && !(verified && sub == "alice") {
			t.Fatalf("alice was signed out without confirming, by hint %q (verified %v, sub %q)", hint, verified, sub)
		}
		loc := res.Header.Get("Location")
		if loc == "" && res.Status/100 != 3 {
			checkInertHTML(t, res)
			return
		}
		client := clientID
		if client == "" && verified && len(aud) > 0 {
			client = aud[0]
		}
		u, err := url.Parse(loc)
		if err != nil || res.Status != http.StatusSeeOther || redirect == "" || !slices.Contains(clients[client], redirect) {
			t.Fatalf("logout redirected (%d) to %q; post_logout_redirect_uri %q, client %q", res.Status, loc, redirect, client)
		}
		q := u.Query()
		got := q.Get("state")
		q.Del("state")
		u.RawQuery = q.Encode()
		if got != state || u.String() != redirect {
			t.Fatalf("logout redirected to %q for %q with state %q", loc, redirect, state)
		}
	})
}
