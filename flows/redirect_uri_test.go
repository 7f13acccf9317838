package flows

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/store"
)

// TestCheckRedirectURIRefusesSchemesThatRunOrReadInTheBrowser tries every
// scheme that would run script or read local data from a Location header
// or a form action, and those a native app cannot own.
func TestCheckRedirectURIRefusesSchemesThatRunOrReadInTheBrowser(t *testing.T) {
	t.Parallel()
	cases := []struct {
		uri, want string // want "" means accepted
	}{
		{"https://app.example.com/cb", ""},
		{"https://app.example.com:8443/cb?x=1", ""},
		{"http://localhost:3000/callback", ""},
		{"http://127.0.0.1:8400/callback", ""},
		{"http://[::1]:8400/callback", ""},
		{"http://app.localhost/cb", ""},
		{"com.example.app:/oauth2redirect", ""},
		{"com.example.app://callback", ""},
		{"javascript:alert(document.cookie)", "not allowed"},
		{"javascript://%0aalert(1)", "absolute"},
		{"JavaScript:alert(1)", "not allowed"},
		{"data:text/html,<script>alert(1)</script>", "angle bracket"},
		{"data:text/html;base64,PHNjcmlwdD4=", "not allowed"},
		{"vbscript:msgbox(1)", "not allowed"},
		{"file:///etc/passwd", "not allowed"},
		{"about:blank", "not allowed"},
		{"blob:https://app.example.com/uuid", "not allowed"},
		{"mailto:a@example.com", "not allowed"},
		{"ftp://files.example.com/cb", "not allowed"},
		{"ws://localhost/cb", "not allowed"},
		{"myapp://callback", "not allowed"},
		{"http://evil.example/cb", "plain http"},
		{"https://app.example.com/cb#frag", "fragment"},
		{"https://user:pw@app.example.com/cb", "user information"},
		{"https:///cb", "no host"},
		{"/relative/cb", "absolute"},
		{"", "absolute"},
		{"https://app.example.com/c b", "white space"},
	}
	for _, tc := range cases {
		err := CheckRedirectURI(tc.uri)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q refused: %v", tc.uri, err)
		case tc.want != "" && err == nil:
			t.Errorf("%q accepted", tc.uri)
		case tc.want != "" && !strings.Contains(err.Error(), tc.want):
			t.Errorf("%q: error %q does not say %q", tc.uri, err, tc.want)
		}
	}
}

func TestCheckEndpointURIAllowsOnlyHTTPS(t *testing.T) {
	t.Parallel()
	for uri, ok := range map[string]bool{
		"https://rp.example.com/logout": true,
		"http://127.0.0.1:9/logout":     true,
		"http://rp.example.com/logout":  false,
		"com.example.app:/logout":       false,
		"javascript:alert(1)":           false,
		"https://rp.example.com/l#f":    false,
	} {
		if err := CheckEndpointURI(uri); (err == nil) != ok {
			t.Errorf("CheckEndpointURI(%q) = %v, want ok=%v", uri, err, ok)
		}
	}
}

// TestAuthorizeNeverRedirectsToAStoredScriptURI: a client record that holds
// a javascript: or data: redirect URI (written before registration refused
// them, or straight into the store) gets an error page, never a Location
// or a form action with that URI.
func TestAuthorizeNeverRedirectsToAStoredScriptURI(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	for i, uri := range []string{"javascript:alert(document.domain)//", "data:text/html;base64,PHNjcmlwdD4=", "vbscript:msgbox(1)"} {
		id := fmt.Sprintf("legacy-%d", i)
		if err := env.store.PutClient(context.Background(), &store.Client{ID: id, TokenEndpointAuthMethod: AuthMethodNone,
			RedirectURIs: []string{uri}, GrantTypes: []string{GrantAuthorizationCode}}); err != nil {
			t.Fatal(err)
		}
		for _, mode := range []string{"query", "form_post"} {
			p := newAuthRequest(id, uri, "openid")
			p.Set("response_mode", mode)
			res := env.newBrowser().authorize(p.Values)
			wantErrorPage(t, res, http.StatusBadRequest)
			if strings.Contains(res.Body, uri) && strings.Contains(res.Body, "<form") {
				t.Errorf("%s: the page carries the URI in a form:\n%s", uri, res.Body)
			}
		}
	}
}
