package flows

// Attacks on the browser-facing forms and the SSO session: CSRF on the
// login and consent forms, consent under another user's session, password
// guessing, session cookies and RP-initiated logout.

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/portcullis-gw/portcullis/store"
)

const ssoCookieName = "__Host-portcullis_sso"

func findCookie(cookies []*http.Cookie, name string) *http.Cookie {
	for _, c := range cookies {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestSessionCookieAttributes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		insecure   bool
		cookieName string
	}{
		{"secure", false, ssoCookieName},
		{"insecure development mode", true, "portcullis_sso"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestServer(t, func(c *Config) { c.InsecureCookies = tc.insecure })
			b := env.newBrowser()
			page := b.authorize(newAuthRequest(firstPartyID, firstPartyRedirect, "openid").Values)
			res := b.submitLogin(page, "alice", alicePassword)
			c := findCookie(res.Cookies, tc.cookieName)
			if c == nil {
				t.Fatalf("login set no %s cookie: %v", tc.cookieName, res.Cookies)
			}
			if c.Secure == tc.insecure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
				t.Errorf("session cookie attributes: %+v", c)
			}
			if strings.Contains(c.Value, "alice") {
				t.Errorf("session cookie is not opaque: %q", c.Value)
			}
			csrf := findCookie(page.Cookies, strings.Replace(tc.cookieName, "sso", "csrf", 1))
			if csrf == nil || csrf.Secure == tc.insecure || !csrf.HttpOnly {
				t.Errorf("CSRF cookie: %+v", csrf)
			}
		})
	}
}

// TestSessionCookieCannotBeForged: a cookie value that was not made with
// the server's secret is no session.
func TestSessionCookieCannotBeForged(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	u, _ := url.Parse(testIssuer)
	for _, v := range []string{"alice", "MTIzNDU2Nzg5MA==", strings.Repeat("A", 200)} {
		b.jar.SetCookies(u, []*http.Cookie{{Name: ssoCookieName, Value: v, Path: "/", Secure: true}})
		if res := b.authorize(newAuthRequest(firstPartyID, firstPartyRedirect, "openid").Values); !res.isLoginPage() {
			t.Errorf("forged session cookie %q was accepted", v)
		}
	}
}

// TestLoginGivesAFreshSessionEachTime: a new session id on every login (no
// session fixation).
func TestLoginGivesAFreshSessionEachTime(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	sid := func(prompt string) string {
		p := newAuthRequest(firstPartyID, firstPartyRedirect, "openid")
		if prompt != "" {
			p.Set("prompt", prompt)
		}
		code := b.obtainCode(p, "alice", alicePassword)
		_, id := env.verifyJWT(env.redeemOK(firstPost, code, firstPartyRedirect, p.Verifier).IDToken)
		return id["sid"].(string)
	}
	first := sid("")
	if again := sid(""); again != first {
		t.Fatalf("SSO changed the session without a login")
	}
	if second := sid("login"); second == first {
		t.Errorf("signing in again kept session id %s", first)
	}
}

// openLoginPage opens the login page for webapp in b.
func openLoginPage(t *testing.T, b *browser) *response {
	t.Helper()
	res := b.authorize(newAuthRequest(webappID, webappRedirect, "openid").Values)
	if !res.isLoginPage() {
		t.Fatalf("no login page: %d", res.Status)
	}
	return res
}

func TestLoginFormRequiresCSRFToken(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	attacker := env.newBrowser()
	_, attackerFields := openLoginPage(t, attacker).form(t)
	cases := []struct {
		name   string
		mutate func(victim url.Values) url.Values
		fresh  bool // the victim's browser never saw the login page
	}{
		{"missing csrf_token", func(v url.Values) url.Values { v.Del("csrf_token"); return v }, false},
		{"empty csrf_token", func(v url.Values) url.Values { v.Set("csrf_token", ""); return v }, false},
		{"wrong csrf_token", func(v url.Values) url.Values { v.Set("csrf_token", strings.Repeat("A", 43)); return v }, false},
		{"attacker's own csrf_token", func(v url.Values) url.Values { v.Set("csrf_token", attackerFields.Get("csrf_token")); return v }, false},
		{"cross-site post without any CSRF cookie", func(url.Values) url.Values {
			v := url.Values{}
			for k, x := range attackerFields {
				v[k] = x
			}
			return v
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			victim := env.newBrowser()
			fields := url.Values{}
			if !tc.fresh {
				_, fields = openLoginPage(t, victim).form(t)
			}
			fields = tc.mutate(fields)
			fields.Set("username", "alice")
			fields.Set("password", alicePassword)
			res := victim.post(PathLogin, fields)
			wantErrorPage(t, res, http.StatusForbidden)
			if findCookie(res.Cookies, ssoCookieName) != nil {
				t.Errorf("a login without a valid CSRF token set a session cookie")
			}
		})
	}
}

func TestLoginFormRejectsTamperedAuthRequest(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	_, fields := openLoginPage(t, b).form(t)
	ar := fields.Get("auth_request")
	mid, flip := len(ar)/2, "A"
	if ar[mid] == 'A' {
		flip = "B"
	}
	for name, v := range map[string]string{
		"flipped":   ar[:mid] + flip + ar[mid+1:],
		"truncated": ar[:len(ar)-5],
		"empty":     "",
		"garbage":   "eyJjIjoid2ViYXBwIiwiciI6Imh0dHBzOi8vZXZpbC5jb20ifQ",
	} {
		t.Run(name, func(t *testing.T) {
			f := url.Values{"csrf_token": {fields.Get("csrf_token")}, "auth_request": {v}, "username": {"alice"}, "password": {"x"}}
			wantErrorPage(t, b.post(PathLogin, f), http.StatusBadRequest)
		})
	}
}

func TestLoginRefusesMethodsOtherThanPost(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	for _, path := range []string{PathLogin, PathConsent} {
		if res := env.get(path, url.Values{"username": {"alice"}, "password": {alicePassword}}, nil); res.Status != http.StatusMethodNotAllowed {
			t.Errorf("GET %s answered %d", path, res.Status)
		}
	}
}

var alertRE = regexp.MustCompile(`<div class="alert" role="alert">([^<]*)</div>`)

func alertText(t *testing.T, res *response) string {
	t.Helper()
	m := alertRE.FindStringSubmatch(res.Body)
	if m == nil {
		t.Fatalf("page %d has no alert:\n%s", res.Status, res.Body)
	}
	return m[1]
}

// TestLoginFailureDoesNotRevealWhetherTheUserExists: unknown users,
// disabled users and wrong passwords all get the same answer.
func TestLoginFailureDoesNotRevealWhetherTheUserExists(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	var messages []string
	for _, c := range []struct{ user, pass string }{
		{"alice", "wrong password"},
		{"nobody", "wrong password"},
		{"disabled", alicePassword}, // right password of a disabled user
		{"", ""},
		{"ALICE", alicePassword},
	} {
		res := b.submitLogin(openLoginPage(t, b), c.user, c.pass)
		if res.Status != http.StatusUnauthorized || !res.isLoginPage() {
			t.Fatalf("%q: status %d", c.user, res.Status)
		}
		if findCookie(res.Cookies, ssoCookieName) != nil {
			t.Errorf("%q: failed login set a session", c.user)
		}
		messages = append(messages, alertText(t, res))
	}
	for _, m := range messages[1:] {
		if m != messages[0] {
			t.Errorf("failure messages differ: %q vs %q", messages[0], m)
		}
	}
}

// TestLoginThrottlesAfterFiveFailures: the sixth attempt for a user is
// refused even with the right password, until the bucket refills.
func TestLoginThrottlesAfterFiveFailures(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	attacker := env.newBrowser("198.51.100.7:1000")
	for i := 1; i <= 5; i++ {
		res := attacker.submitLogin(openLoginPage(t, attacker), "alice", fmt.Sprintf("guess %d", i))
		if res.Status != http.StatusUnauthorized {
			t.Fatalf("failure %d: status %d", i, res.Status)
		}
	}
	res := attacker.submitLogin(openLoginPage(t, attacker), "alice", alicePassword)
	if res.Status != http.StatusTooManyRequests || !strings.Contains(alertText(t, res), "Too many") {
		t.Fatalf("sixth attempt: %d %q", res.Status, res.Body)
	}
	if findCookie(res.Cookies, ssoCookieName) != nil {
		t.Fatalf("a throttled attempt signed in")
	}
	// The user is throttled from everywhere, not just from the attacker's IP.
	victim := env.newBrowser("203.0.113.9:2000")
	if res := victim.submitLogin(openLoginPage(t, victim), "alice", alicePassword); res.Status != http.StatusTooManyRequests {
		t.Errorf("throttled user signed in from another IP: %d", res.Status)
	}
	// Other users are not affected.
	if res := victim.submitLogin(openLoginPage(t, victim), "bob", bobPassword); res.Status != http.StatusSeeOther && !res.isConsentPage() {
		t.Errorf("another user was throttled: %d", res.Status)
	}
	// One failure is forgiven per minute.
	env.clock.Advance(61 * time.Second)
	b := env.newBrowser()
	if res := b.submitLogin(openLoginPage(t, b), "alice", alicePassword); !res.isConsentPage() {
		t.Errorf("the right password after the refill: %d", res.Status)
	}
}

func TestLoginThrottlesPerIP(t *testing.T) {
	t.Parallel()
	env := newTestServer(t, func(c *Config) { c.LoginThrottle = ThrottleConfig{PerIP: 3} })
	attacker := env.newBrowser("198.51.100.7:1000")
	for i := 0; i < 3; i++ { // password spraying: one guess per user
		attacker.submitLogin(openLoginPage(t, attacker), fmt.Sprintf("user%d", i), "Spring2024!")
	}
	if res := attacker.submitLogin(openLoginPage(t, attacker), "alice", alicePassword); res.Status != http.StatusTooManyRequests {
		t.Errorf("fourth attempt from a spraying IP: %d", res.Status)
	}
	other := env.newBrowser("203.0.113.9:2000")
	if res := other.submitLogin(openLoginPage(t, other), "alice", alicePassword); !res.isConsentPage() {
		t.Errorf("another IP was throttled: %d", res.Status)
	}
}

// gateStore holds every GetUser for one username until n callers are
// waiting (or a timeout passes), so concurrent logins overlap for sure.
type gateStore struct {
	store.Store
	user    string
	n       int
	mu      sync.Mutex
	arrived int
	all     chan struct{}
}

func (g *gateStore) GetUser(ctx context.Context, username string) (*store.User, error) {
	if username == g.user {
		g.mu.Lock()
		g.arrived++
		if g.arrived == g.n {
			close(g.all)
		}
		g.mu.Unlock()
		select {
		case <-g.all:
		case <-time.After(2 * time.Second):
		}
	}
	return g.Store.GetUser(ctx, username)
}

// cheapHash is an argon2id PHC string with tiny parameters, for tests that
// verify many passwords at once.
func cheapHash(password string) string {
	salt := make([]byte, 16)
	rand.Read(salt)
	key := argon2.IDKey([]byte(password), salt, 1, 64, 1, 32)
	return fmt.Sprintf("$argon2id$v=%d$m=64,t=1,p=1$%s$%s", argon2.Version, b64(salt), b64(key))
}

// TestLoginThrottleHoldsUnderConcurrentAttempts: guesses sent in parallel
// must not get past the five-failure limit.
func TestLoginThrottleHoldsUnderConcurrentAttempts(t *testing.T) {
	t.Parallel()
	const attempts = 12
	gate := &gateStore{user: "carol", n: attempts, all: make(chan struct{})}
	env := newTestServer(t, func(c *Config) {
		gate.Store = c.Store
		c.Store = gate
	})
	if err := env.store.PutUser(t.Context(), &store.User{ID: "carol", Username: "carol", PasswordHash: cheapHash("carol-password")}); err != nil {
		t.Fatal(err)
	}
	b := env.newBrowser()
	_, fields := openLoginPage(t, b).form(t)
	statuses := make(chan int, attempts)
	var wg sync.WaitGroup
	for i := 0; i < attempts; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := url.Values{}
			for k, v := range fields {
				f[k] = v
			}
			f.Set("username", "carol")
			f.Set("password", fmt.Sprintf("guess %d", i))
			statuses <- b.post(PathLogin, f).Status
		}()
	}
	wg.Wait()
	close(statuses)
	checked := 0
	for s := range statuses {
		switch s {
		case http.StatusUnauthorized:
			checked++
		case http.StatusTooManyRequests:
		default:
			t.Errorf("unexpected status %d", s)
		}
	}
	if checked > 5 {
		t.Errorf("%d of %d concurrent guesses had their password checked; the limit is 5", checked, attempts)
	}
}

// TestUserSubjectIsTheUsername: flows look users up by subject, so the
// store refuses a user whose ID is not the username rather than letting
// such a user loop on the login page.
func TestUserSubjectIsTheUsername(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	aliceHash, _ := passwordHashes(t)
	if err := env.store.PutUser(t.Context(), &store.User{ID: "u-1234", Username: "dora", PasswordHash: aliceHash}); err == nil {
		t.Fatal("a user whose ID differs from the username was stored")
	}
	if err := env.store.PutUser(t.Context(), &store.User{Username: "dora", PasswordHash: aliceHash, Email: "dora@example.com"}); err != nil {
		t.Fatal(err)
	}
	b := env.newBrowser()
	p := newAuthRequest(firstPartyID, firstPartyRedirect, "openid email")
	q := callback(t, b.submitLogin(b.authorize(p.Values), "dora", alicePassword))
	tr := env.redeemOK(firstPost, q.Get("code"), firstPartyRedirect, p.Verifier)
	if _, id := env.verifyJWT(tr.IDToken); id["sub"] != "dora" {
		t.Errorf("sub %v, want the username", id["sub"])
	}
}

// openConsentPage signs username in through webapp and returns the consent
// page.
func openConsentPage(t *testing.T, b *browser, username, password string) *response {
	t.Helper()
	res := b.submitLogin(openLoginPage(t, b), username, password)
	if !res.isConsentPage() {
		t.Fatalf("no consent page for %s: %d", username, res.Status)
	}
	return res
}

func TestConsentFormRequiresCSRFToken(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	page := openConsentPage(t, b, "alice", alicePassword)
	for name, token := range map[string]string{"missing": "", "wrong": strings.Repeat("B", 43)} {
		t.Run(name, func(t *testing.T) {
			_, fields := page.form(t)
			if token == "" {
				fields.Del("csrf_token")
			} else {
				fields.Set("csrf_token", token)
			}
			fields.Set("decision", "allow")
			wantErrorPage(t, b.post(PathConsent, fields), http.StatusForbidden)
		})
	}
	// Nothing was consented: the page comes back.
	if res := b.authorize(newAuthRequest(webappID, webappRedirect, "openid").Values); !res.isConsentPage() {
		t.Errorf("a refused consent POST recorded consent")
	}
}

// TestConsentFormFromAnotherUsersSessionIsRefused: a consent form shown to
// alice cannot be submitted from bob's session (nor alice's granted with
// bob's), and vice versa.
func TestConsentFormFromAnotherUsersSessionIsRefused(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	alice, bob := env.newBrowser(), env.newBrowser()
	alicePage := openConsentPage(t, alice, "alice", alicePassword)
	bobPage := openConsentPage(t, bob, "bob", bobPassword)
	_, aliceFields := alicePage.form(t)
	_, bobFields := bobPage.form(t)

	// Bob submits alice's form with his own (valid) CSRF token.
	f := url.Values{"auth_request": {aliceFields.Get("auth_request")}, "csrf_token": {bobFields.Get("csrf_token")}, "decision": {"allow"}}
	wantErrorPage(t, bob.post(PathConsent, f), http.StatusBadRequest)

	// A consent form without a session.
	anon := env.newBrowser()
	_, anonFields := openLoginPage(t, anon).form(t)
	f = url.Values{"auth_request": {aliceFields.Get("auth_request")}, "csrf_token": {anonFields.Get("csrf_token")}, "decision": {"allow"}}
	wantErrorPage(t, anon.post(PathConsent, f), http.StatusBadRequest)

	// The login form's auth_request was never shown as a consent form.
	f = url.Values{"auth_request": {anonFields.Get("auth_request")}, "csrf_token": {bobFields.Get("csrf_token")}, "decision": {"allow"}}
	wantErrorPage(t, bob.post(PathConsent, f), http.StatusBadRequest)

	// Neither user consented to anything.
	for name, b := range map[string]*browser{"alice": alice, "bob": bob} {
		if res := b.authorize(newAuthRequest(webappID, webappRedirect, "openid").Values); !res.isConsentPage() {
			t.Errorf("%s: consent recorded by a refused form", name)
		}
	}
	// Control: each user's own form works.
	if q := callback(t, alice.submitConsent(alicePage, "allow")); q.Get("code") == "" {
		t.Errorf("alice's own consent failed: %v", q)
	}
}

func TestConsentFormRejectsUnknownDecision(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	page := openConsentPage(t, b, "alice", alicePassword)
	for _, d := range []string{"", "yes", "ALLOW"} {
		_, fields := page.form(t)
		fields.Set("decision", d)
		wantErrorPage(t, b.post(PathConsent, fields), http.StatusBadRequest)
	}
}

// idTokenFor runs the webapp code flow in b as username and returns the
// ID token.
func idTokenFor(t *testing.T, env *testEnv, b *browser, username, password string) string {
	t.Helper()
	p := newAuthRequest(webappID, webappRedirect, "openid")
	code := b.obtainCode(p, username, password)
	return env.redeemOK(webappBasic, code, webappRedirect, p.Verifier).IDToken
}

// sessionAlive reports whether b still has an SSO session.
func sessionAlive(t *testing.T, b *browser) bool {
	t.Helper()
	return !b.authorize(newAuthRequest(firstPartyID, firstPartyRedirect, "openid").Values).isLoginPage()
}

func TestLogoutRefusesUnregisteredPostLogoutRedirect(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	hint := idTokenFor(t, env, b, "alice", alicePassword)
	cases := []struct {
		name   string
		params url.Values
	}{
		{"other host", url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://evil.example.com/"}}},
		{"trailing slash", url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {webappBye + "/"}}},
		{"extra query", url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {webappBye + "?next=https://evil"}}},
		{"userinfo trick", url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://app.example.com@evil.com/bye"}}},
		{"login redirect URI, not a logout one", url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {webappRedirect}}},
		{"another client's logout URI", url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://spa.example.com/"}}},
		{"another client's logout URI by client_id", url.Values{"client_id": {spaID}, "id_token_hint": {hint}, "post_logout_redirect_uri": {"https://spa.example.com/"}}},
		{"no hint and no client_id", url.Values{"post_logout_redirect_uri": {webappBye}}},
		{"unknown client_id", url.Values{"client_id": {"nobody"}, "post_logout_redirect_uri": {webappBye}}},
		{"forged hint", url.Values{"id_token_hint": {hint[:len(hint)-4] + "AAAA"}, "post_logout_redirect_uri": {webappBye}}},
		{"garbage hint", url.Values{"id_token_hint": {"not-a-jwt"}, "post_logout_redirect_uri": {webappBye}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantErrorPage(t, b.get(PathEndSession+"?"+tc.params.Encode()), http.StatusBadRequest)
		})
	}
	if !sessionAlive(t, b) {
		t.Errorf("a refused logout ended the session")
	}
}

func TestLogoutRefusesAccessTokenAsIDTokenHint(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	tr, _ := env.webappTokens(b, "openid")
	res := b.get(PathEndSession + "?" + url.Values{"id_token_hint": {tr.AccessToken}, "post_logout_redirect_uri": {webappBye}}.Encode())
	wantErrorPage(t, res, http.StatusBadRequest)
	if !sessionAlive(t, b) {
		t.Errorf("logout with an access token as hint ended the session")
	}
}

// TestLogoutWithIDTokenHintEndsSessionAndRedirects: RP-initiated logout
// with a hint for the signed-in user ends the session server-side and goes
// to the registered URI with state.
func TestLogoutWithIDTokenHintEndsSessionAndRedirects(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	hint := idTokenFor(t, env, b, "alice", alicePassword)
	issuerURL, _ := url.Parse(testIssuer)
	saved := b.jar.Cookies(issuerURL)

	// Expired hints are fine (the spec allows it).
	env.clock.Advance(2 * time.Hour)
	res := b.get(PathEndSession + "?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {webappBye}, "state": {"bye-state"}}.Encode())
	if res.Status != http.StatusSeeOther {
		t.Fatalf("logout: %d\n%s", res.Status, res.Body)
	}
	loc := res.Location(t)
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != webappBye || loc.Query().Get("state") != "bye-state" {
		t.Errorf("logout redirected to %s", loc)
	}
	if c := findCookie(res.Cookies, ssoCookieName); c == nil || c.MaxAge >= 0 {
		t.Errorf("logout did not expire the session cookie: %+v", c)
	}
	if sessionAlive(t, b) {
		t.Errorf("session alive after logout")
	}
	// The old cookie, replayed, is no session either: it ended server-side.
	replay := env.newBrowser()
	replay.jar.SetCookies(issuerURL, saved)
	if sessionAlive(t, replay) {
		t.Errorf("the pre-logout session cookie still works")
	}
}

// TestLogoutHintForAnotherUserDoesNotEndSession: a site holding bob's ID
// token cannot sign alice out without her confirmation.
func TestLogoutHintForAnotherUserDoesNotEndSession(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	bobHint := idTokenFor(t, env, env.newBrowser(), "bob", bobPassword)
	alice := env.newBrowser()
	idTokenFor(t, env, alice, "alice", alicePassword)
	res := alice.get(PathEndSession + "?" + url.Values{"id_token_hint": {bobHint}, "post_logout_redirect_uri": {webappBye}}.Encode())
	if res.Status != http.StatusOK || !strings.Contains(res.Body, `name="confirm"`) {
		t.Fatalf("logout with another user's hint: %d\n%s", res.Status, res.Body)
	}
	if !sessionAlive(t, alice) {
		t.Errorf("another user's hint ended alice's session")
	}
	// A cross-site POST of the confirmation without the CSRF token does not
	// end it either.
	_, fields := res.form(t)
	fields.Set("confirm", "yes")
	fields.Set("csrf_token", strings.Repeat("C", 43))
	if out := alice.post(PathEndSession, fields); out.Status == http.StatusSeeOther {
		t.Errorf("logout confirmed with a wrong CSRF token")
	}
	if !sessionAlive(t, alice) {
		t.Errorf("a confirmation with a wrong CSRF token ended the session")
	}
}
