package tests

import (
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// These tests check the harness itself, without the Portcullis modules: the
// gateway runs a plain Caddyfile, and the browser flow runs against a fake
// login server.

// plainCaddyfile uses only standard Caddy directives.
const plainCaddyfile = `{
	admin 127.0.0.1:{{.AdminPort}}
}
http://127.0.0.1:{{.Port}} {
	bind 127.0.0.1
	respond /.well-known/openid-configuration ` + "`" + `{"issuer":"http://127.0.0.1:{{.Port}}"}` + "`" + ` 200
	respond "not found" 404
}
`

// TestGatewayHarness starts a plain Caddy through StartGateway, reaches its
// admin API, and checks that Restart keeps ports and directory.
func TestGatewayHarness(t *testing.T) {
	g := StartGateway(t, plainCaddyfile)

	c := &http.Client{Timeout: requestTimeout}
	resp, body := doRequest(t, c, http.MethodGet, g.AdminURL+"/config/", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin API: status %d: %s", resp.StatusCode, body)
	}
	marker := filepath.Join(g.Dir, "marker")
	if err := os.WriteFile(marker, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Caddy keeps its autosave under XDG_CONFIG_HOME, inside Dir.
	if _, err := os.Stat(filepath.Join(g.Dir, "xdg-config", "caddy", "autosave.json")); err != nil {
		t.Errorf("Caddy's autosave.json is not under Dir: %v", err)
	}

	before := [3]string{g.BaseURL, g.AdminURL, g.Dir}
	g.Restart(t)
	if after := [3]string{g.BaseURL, g.AdminURL, g.Dir}; after != before {
		t.Errorf("Restart changed the gateway: %q -> %q", before, after)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("Dir lost its files across Restart: %v", err)
	}
	resp, body = doRequest(t, c, http.MethodGet, g.BaseURL+readinessPath, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after restart: status %d: %s", resp.StatusCode, body)
	}
}

// TestParseForms checks the HTML form parser on login- and consent-like
// pages and on the less common controls.
func TestParseForms(t *testing.T) {
	page, _ := url.Parse("http://127.0.0.1:1234/authorize?client_id=x")
	tests := []struct {
		name    string
		html    string
		action  string
		method  string
		fields  url.Values
		buttons []FormButton
	}{
		{
			name: "login with relative action and escaped values",
			html: `<form method="post" action="login?x=1&amp;y=2"><input type="hidden" name="csrf_token" value="a&#43;b">
				<input type="hidden" name="auth_request" value="r">
				<div><input type="text" name="username" value=""><input type="password" name="password"></div>
				<button type="submit" name="action" value="login">Sign in</button></form>`,
			action:  "http://127.0.0.1:1234/login?x=1&y=2",
			method:  "POST",
			fields:  url.Values{"csrf_token": {"a+b"}, "auth_request": {"r"}, "username": {""}, "password": {""}},
			buttons: []FormButton{{"action", "login"}},
		},
		{
			name: "consent with absolute-path action and two buttons",
			html: `<form method="POST" action="/consent"><input type="hidden" name="csrf_token" value="c">
				<button type="submit" name="decision" value="allow">Allow</button>
				<button name="decision" value="deny">Deny</button><button type="button" name="x" value="y">No</button></form>`,
			action:  "http://127.0.0.1:1234/consent",
			method:  "POST",
			fields:  url.Values{"csrf_token": {"c"}},
			buttons: []FormButton{{"decision", "allow"}, {"decision", "deny"}},
		},
		{
			name: "no action, default method, checkboxes, select, textarea, submit input",
			html: `<form><input type="checkbox" name="a" checked><input type="checkbox" name="b" value="1">
				<select name="s"><option value="1">one</option><option selected>two</option></select>
				<textarea name="t">text</textarea><input type="submit" name="go" value="Go"></form>`,
			action:  page.String(),
			method:  "GET",
			fields:  url.Values{"a": {"on"}, "s": {"two"}, "t": {"text"}},
			buttons: []FormButton{{"go", "Go"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forms, err := ParseForms(page, []byte("<!doctype html><html><body>"+tt.html+"</body></html>"))
			if err != nil {
				t.Fatal(err)
			}
			if len(forms) != 1 {
				t.Fatalf("got %d forms, want 1", len(forms))
			}
			f := forms[0]
			if f.Action.String() != tt.action || f.Method != tt.method {
				t.Errorf("action, method = %s %s, want %s %s", f.Action, f.Method, tt.action, tt.method)
			}
			if !reflect.DeepEqual(f.Fields, tt.fields) {
				t.Errorf("fields = %v, want %v", f.Fields, tt.fields)
			}
			if !reflect.DeepEqual(f.Buttons, tt.buttons) {
				t.Errorf("buttons = %v, want %v", f.Buttons, tt.buttons)
			}
		})
	}
}

// fakeLoginServer imitates the server's browser contract closely enough to
// test AuthorizeFlow: a login form, an optional consent form, a session
// cookie, and a redirect to redirect_uri.
func fakeLoginServer(t *testing.T, consent bool) *httptest.Server {
	loginPage := template.Must(template.New("login").Parse(`<!doctype html><form method="post" action="{{.}}">
<input type="hidden" name="csrf_token" value="tok&+"><input type="hidden" name="auth_request" value="req">
<input name="username"><input type="password" name="password">
<button type="submit" name="action" value="login">Sign in</button></form>`))
	consentPage := template.Must(template.New("consent").Parse(`<!doctype html><form method="post" action="{{.}}">
<input type="hidden" name="csrf_token" value="tok&+"><input type="hidden" name="auth_request" value="req">
<button type="submit" name="decision" value="allow">Allow</button><button type="submit" name="decision" value="deny">Deny</button></form>`))
	finish := func(w http.ResponseWriter, r *http.Request, q url.Values) {
		http.Redirect(w, r, q.Get("redirect_uri")+"?code=c&state="+url.QueryEscape(q.Get("state")), http.StatusSeeOther)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "csrf", Value: "tok&+", Path: "/"})
		if _, err := r.Cookie("sso"); err == nil {
			if consent {
				_ = consentPage.Execute(w, "consent?"+r.URL.RawQuery)
				return
			}
			finish(w, r, r.URL.Query())
			return
		}
		_ = loginPage.Execute(w, "login?"+r.URL.RawQuery)
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie("csrf")
		if err != nil || r.PostFormValue("csrf_token") != "tok&+" || c.Value != "tok&+" || r.PostFormValue("auth_request") != "req" ||
			r.PostFormValue("action") != "login" || r.Header.Get("Origin") == "" {
			http.Error(w, fmt.Sprintf("bad login post %v cookie %v", r.PostForm, c), http.StatusBadRequest)
			return
		}
		if r.PostFormValue("username") != "u" || r.PostFormValue("password") != "p" {
			_ = loginPage.Execute(w, "login?"+r.URL.RawQuery)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "sso", Value: "1", Path: "/"})
		http.Redirect(w, r, "/authorize?"+r.URL.RawQuery, http.StatusFound)
	})
	mux.HandleFunc("POST /consent", func(w http.ResponseWriter, r *http.Request) {
		if r.PostFormValue("decision") != "allow" || r.PostFormValue("csrf_token") != "tok&+" {
			http.Error(w, "bad consent post", http.StatusBadRequest)
			return
		}
		finish(w, r, r.URL.Query())
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestAuthorizeFlowHelper runs AuthorizeFlow against fakeLoginServer, with
// and without a consent page, and checks that the SSO cookie is reused.
func TestAuthorizeFlowHelper(t *testing.T) {
	for _, consent := range []bool{false, true} {
		t.Run(fmt.Sprintf("consent=%v", consent), func(t *testing.T) {
			srv := fakeLoginServer(t, consent)
			browser := NewBrowser(t)
			authz := srv.URL + "/authorize?" + url.Values{
				"client_id": {"c"}, "redirect_uri": {srv.URL + "/cb"}, "state": {"s1"},
			}.Encode()
			first := AuthorizeFlow(t, browser, authz, "u", "p")
			if !first.SawLogin || first.SawConsent != consent {
				t.Errorf("first flow: SawLogin=%v SawConsent=%v, want true %v", first.SawLogin, first.SawConsent, consent)
			}
			if got := first.Callback.Query(); got.Get("code") != "c" || got.Get("state") != "s1" || first.Callback.Path != "/cb" {
				t.Errorf("callback = %s", first.Callback)
			}
			second := AuthorizeFlow(t, browser, authz, "u", "p")
			if second.SawLogin {
				t.Errorf("second flow showed the login page again: %q", second.Steps)
			}
		})
	}
}
