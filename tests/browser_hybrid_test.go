package tests

import (
	"net/url"
	"strings"
	"testing"
)

// TestBrowserHybridFormPostIsCrossSite signs in with flow hybrid in Debian
// chromium against oidc-provider on another site (127.0.0.1 vs localhost):
// the provider's form_post is a cross-site POST, and it completes only
// because the gateway's login cookie is SameSite=None; Secure — with the
// session cookie's Lax the browser would not send it and the callback would
// fail as a state mismatch. Logout then ends the session at both ends.
func TestBrowserHybridFormPostIsCrossSite(t *testing.T) {
	var appURL string
	e := startExternal(t, externalConfig{
		Options: "flow hybrid",
		AppHost: "localhost",
		Client: func(ipURL string) map[string]any {
			u, _ := url.Parse(ipURL)
			appURL = "http://localhost:" + u.Port()
			return map[string]any{
				"response_types":            []string{"code id_token"},
				"redirect_uris":             []string{appURL + "/oauth2/callback"},
				"post_logout_redirect_uris": []string{appURL + extSignedOut},
			}
		},
	})
	if strings.Contains(e.OP.Issuer, "localhost") {
		t.Fatalf("provider issuer %s: it must be on another site than the app", e.OP.Issuer)
	}
	summary := ParseBrowserSummary(t, RunBrowserFlow(t, map[string]string{
		"START_URL":         appURL + extTargetPath,
		"USERNAME":          "alice",
		"PASSWORD":          "any password",
		"EXPECT_URL_PREFIX": appURL + extTargetPath,
		// The app echoes X-Forwarded-User: the provider's subject.
		"EXPECT_TEXT": "hello " + extAliceSub,
		"LOGOUT_URL":  appURL + "/oauth2/logout",
		// oidc-provider's development login and logout pages.
		"SEL_USERNAME": "input[name=login]",
		"SEL_PASSWORD": "input[name=password]",
		"SEL_LOGIN":    "form:has(input[name=prompt][value=login]) button[type=submit]",
		"SEL_ALLOW":    "form:has(input[name=prompt][value=consent]) button[type=submit]",
		"SEL_CONFIRM":  "button[name=logout][value=yes]",
	}))
	if !summary.OK || !summary.SawLogin {
		t.Fatalf("browser flow: ok=%v login=%v", summary.OK, summary.SawLogin)
	}
	sawFormPost := false
	for _, n := range summary.Navigations {
		if strings.HasPrefix(n, "POST "+appURL+"/oauth2/callback") && strings.HasSuffix(n, "-> 303") {
			sawFormPost = true
		}
	}
	if !sawFormPost {
		t.Errorf("no cross-site form_post to the callback answered 303 among the navigations:\n%s", strings.Join(summary.Navigations, "\n"))
	}
	if summary.LoggedOut == nil || !*summary.LoggedOut {
		t.Errorf("after logout the protected page did not ask to sign in again")
	}
}
