package tests

import (
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// demoApp is a legacy page that only shows the identity headers it gets,
// like the demo app of Caddyfile.example.
func demoApp(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		var rows strings.Builder
		for _, h := range []string{"X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Groups", "X-Forwarded-Preferred-Username"} {
			fmt.Fprintf(&rows, "<tr><th>%s</th><td>%s</td></tr>", h, html.EscapeString(r.Header.Get(h)))
		}
		fmt.Fprintf(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Demo app</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; line-height: 1.5">
<h1>Hello, %s!</h1><p>This page knows nothing about OAuth. Portcullis signed you in and sent these headers:</p>
<table>%s</table><p><a href="/oauth2/logout">Sign out</a></p></body></html>`,
			html.EscapeString(r.Header.Get("X-Forwarded-Preferred-Username")), rows.String())
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestBrowserSignsInThroughTheGateway is the whole story in Debian
// chromium: a protected page sends the browser to the login form, then
// the consent page, then the app shows the user's name; logout ends the
// session at the gateway and at the provider. Screenshots of the login
// page and the app page are saved under tests/artifacts/.
func TestBrowserSignsInThroughTheGateway(t *testing.T) {
	app := demoApp(t)
	g := StartGatewayVars(t, gatewayCaddyfile, map[string]string{"Upstream": app.Listener.Addr().String()})
	summary := ParseBrowserSummary(t, RunBrowserFlow(t, map[string]string{
		"START_URL":         g.AppURL + "/",
		"USERNAME":          "alice",
		"PASSWORD":          "alice-password",
		"EXPECT_URL_PREFIX": g.AppURL + "/",
		"EXPECT_TEXT":       "Hello, alice!",
		"LOGOUT_URL":        g.AppURL + "/oauth2/logout",
	}))
	if !summary.OK || !summary.SawLogin || !summary.SawConsent {
		t.Fatalf("browser flow: ok=%v login=%v consent=%v", summary.OK, summary.SawLogin, summary.SawConsent)
	}
	if summary.LoggedOut == nil || !*summary.LoggedOut {
		t.Errorf("after logout the protected page did not ask to sign in again")
	}
}
