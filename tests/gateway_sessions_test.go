package tests

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// serverSessionsCaddyfile is gatewayCaddyfile with server-side sessions
// and the gateway registered for back-channel logout at the provider.
var serverSessionsCaddyfile = strings.NewReplacer(
	"			scopes openid profile email groups offline_access\n		}\n	}\n}",
	"			scopes openid profile email groups offline_access\n			backchannel_logout_uri http://127.0.0.1:{{.AppPort}}/oauth2/backchannel-logout\n		}\n	}\n}",
	"		insecure_cookies\n		skip /public/*",
	"		insecure_cookies\n		session_store server\n		skip /public/*",
).Replace(gatewayCaddyfile)

// waitSignedOut polls target until the gateway no longer lets the browser
// in (back-channel logout is delivered in the background).
func waitSignedOut(t *testing.T, browser *http.Client, target string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, _ := navigate(t, browser, target, nil)
		if resp.StatusCode == http.StatusFound {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the session still works (%d) 10 s after it was ended", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestServerSideSessionsEndByBackchannelLogoutAndAdminAPI(t *testing.T) {
	if !strings.Contains(serverSessionsCaddyfile, "session_store server") || !strings.Contains(serverSessionsCaddyfile, "backchannel_logout_uri") {
		t.Fatal("the test Caddyfile was not rewritten: gatewayCaddyfile changed shape")
	}
	up := newRecordingUpstream(t)
	g := StartGatewayVars(t, serverSessionsCaddyfile, map[string]string{"Upstream": up.Listener.Addr().String()})
	target := g.AppURL + "/inbox"

	t.Run("the cookie holds only an id and the admin API lists the session", func(t *testing.T) {
		browser := NewBrowser(t)
		signInThroughGateway(t, g, browser, target, "alice", "alice-password")
		app, _ := url.Parse(g.AppURL)
		for _, c := range browser.Jar.Cookies(app) {
			if strings.HasPrefix(c.Name, "portcullis_session") && len(c.Value) > 400 {
				t.Errorf("server-side session cookie %s is %d bytes: it should carry an id, not the tokens", c.Name, len(c.Value))
			}
		}
		status, _ := adminCall(t, g, http.MethodGet, "/portcullis/sessions?sub=alice", nil)
		if status != http.StatusOK {
			t.Fatalf("list sessions: %d", status)
		}
		resp, err := http.Get(g.AdminURL + "/portcullis/sessions?sub=alice")
		if err != nil {
			t.Fatal(err)
		}
		var list []map[string]any
		decodeJSON(t, resp, &list)
		if len(list) != 1 || list[0]["sub"] != "alice" || list[0]["data"] != nil {
			t.Fatalf("sessions of alice: %v", list)
		}
		if status, obj := adminCall(t, g, http.MethodDelete, "/portcullis/sessions?sub=alice", nil); status != http.StatusOK || obj["revoked"] != float64(1) {
			t.Fatalf("revoke alice's sessions: %d %v", status, obj)
		}
		waitSignedOut(t, browser, target)
	})

	t.Run("signing out at the provider ends the gateway session by back-channel logout", func(t *testing.T) {
		browser := NewBrowser(t)
		signInThroughGateway(t, g, browser, target, "alice", "alice-password")
		if resp, _ := navigate(t, browser, target, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("signed in: %d", resp.StatusCode)
		}
		d := g.Discover(t)
		resp, body := navigate(t, browser, d.EndSessionEndpoint, nil)
		page, _ := url.Parse(d.EndSessionEndpoint)
		forms, err := ParseForms(page, []byte(body))
		if err != nil || len(forms) != 1 || resp.StatusCode != http.StatusOK {
			t.Fatalf("logout confirmation page: %d, %d forms, %v", resp.StatusCode, len(forms), err)
		}
		f := forms[0]
		f.Fields.Set("confirm", "yes")
		req, _ := http.NewRequest(http.MethodPost, f.Action.String(), strings.NewReader(f.Fields.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "text/html")
		out, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out.Body.Close()
		if out.StatusCode != http.StatusOK {
			t.Fatalf("confirming logout: %d", out.StatusCode)
		}
		waitSignedOut(t, browser, target)
	})

	t.Run("a forged logout token is refused", func(t *testing.T) {
		resp, err := http.PostForm(g.AppURL+"/oauth2/backchannel-logout", url.Values{"logout_token": {"eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9."}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("forged logout token: %d, want 400", resp.StatusCode)
		}
	})
}

func decodeJSON(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decoding %s: %v", resp.Request.URL, err)
	}
}
