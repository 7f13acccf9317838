package flows

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestRepeatedParam(t *testing.T) {
	t.Parallel()
	cases := []struct {
		query, want string
	}{
		{"", ""},
		{"a=1&b=2", ""},
		{"a=1&a=2", "a"},
		{"z=1&z=2&b=1&b=1", "b"},
		{"max_age=99999&max_age=0", "max_age"},
		{"a=&a=", "a"},
	}
	for _, tc := range cases {
		v, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		if got := repeatedParam(v); got != tc.want {
			t.Errorf("repeatedParam(%q) = %q, want %q", tc.query, got, tc.want)
		}
	}
}

// TestAuthorizeRefusesRepeatedParameters tries the attacks of a repeated
// authorization parameter: max_age=99999&max_age=0 must not skip the
// re-authentication that one of them asks for, nor S256&plain downgrade
// PKCE. Every repeat is sent back to the client as invalid_request, with
// no code.
func TestAuthorizeRefusesRepeatedParameters(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	b := env.newBrowser()
	b.obtainCode(newAuthRequest(webappID, webappRedirect, "openid"), "alice", alicePassword) // an SSO session
	cases := []struct {
		name, param string
		values      []string
	}{
		{"max_age", "max_age", []string{"99999", "0"}},
		{"code_challenge_method", "code_challenge_method", []string{"S256", "plain"}},
		{"prompt", "prompt", []string{"none", "login"}},
		{"response_mode", "response_mode", []string{"query", "fragment"}},
		{"audience", "audience", []string{"https://api.example.com", "https://opaque.example.com"}},
		{"login_hint", "login_hint", []string{"alice", "bob"}},
		{"identical values", "max_age", []string{"0", "0"}},
	}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		for _, tc := range cases {
			t.Run(method+" "+tc.name, func(t *testing.T) {
				p := newAuthRequest(webappID, webappRedirect, "openid")
				p.Del(tc.param)
				p.Values[tc.param] = tc.values
				var res *response
				if method == http.MethodGet {
					res = b.authorize(p.Values)
				} else {
					res = b.post(env.url(PathAuthorize), p.Values)
				}
				q := callback(t, res)
				if q.Get("error") != "invalid_request" || q.Get("code") != "" {
					t.Fatalf("repeated %s: callback %v, want error=invalid_request and no code", tc.param, q)
				}
				if !strings.Contains(q.Get("error_description"), tc.param) {
					t.Errorf("error_description %q does not name %s", q.Get("error_description"), tc.param)
				}
				if q.Get("state") != p.Get("state") {
					t.Errorf("state %q, want %q", q.Get("state"), p.Get("state"))
				}
			})
		}
	}
}

// TestPagesRefuseRepeatedParameters: the login and consent forms, the
// device and CIBA pages and RP-initiated logout refuse a repeated
// parameter rather than pick one of its values.
func TestPagesRefuseRepeatedParameters(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)

	t.Run("login form", func(t *testing.T) {
		b := env.newBrowser()
		page := b.authorize(newAuthRequest(webappID, webappRedirect, "openid").Values)
		action, fields := page.form(t)
		fields.Set("username", "alice")
		fields["password"] = []string{"wrong", alicePassword}
		wantRepeatedPage(t, b.post(action, fields), http.StatusBadRequest)
	})
	t.Run("consent form", func(t *testing.T) {
		b := env.newBrowser()
		p := newAuthRequest(webappID, webappRedirect, "openid profile")
		page := b.authorize(p.Values)
		page = b.submitLogin(page, "alice", alicePassword)
		if !page.isConsentPage() {
			t.Fatalf("expected the consent page, got %d:\n%s", page.Status, page.Body)
		}
		action, fields := page.form(t)
		fields["decision"] = []string{"deny", "allow"}
		wantRepeatedPage(t, b.post(action, fields), http.StatusBadRequest)
	})
	t.Run("logout GET", func(t *testing.T) {
		q := url.Values{"client_id": {webappID}, "state": {"a", "b"}}
		wantRepeatedPage(t, env.get(PathEndSession, q, nil), http.StatusBadRequest)
	})
	t.Run("logout POST", func(t *testing.T) {
		b := env.newBrowser()
		// Both values registered and equal: only the repeat is wrong.
		res := b.post(env.url(PathEndSession), url.Values{"client_id": {webappID}, "post_logout_redirect_uri": {webappBye, webappBye}})
		wantRepeatedPage(t, res, http.StatusBadRequest)
	})
	t.Run("device page GET", func(t *testing.T) {
		wantRepeatedPage(t, env.get(PathDevice, url.Values{"user_code": {"BCDF-GHJK", "LMNP-QRST"}}, nil), http.StatusBadRequest)
	})
	t.Run("device page POST", func(t *testing.T) {
		b := env.newBrowser()
		page := b.get(env.url(PathDevice))
		action, fields := page.form(t)
		fields["user_code"] = []string{"BCDF-GHJK", "LMNP-QRST"}
		wantRepeatedPage(t, b.post(action, fields), http.StatusBadRequest)
	})
	t.Run("CIBA decision link", func(t *testing.T) {
		res := env.postRaw(PathCIBADecision+"?token=a&token=b", "application/x-www-form-urlencoded", "", nil)
		wantRepeatedJSON(t, res)
	})
}

// TestBackChannelEndpointsRefuseRepeatedParameters covers every endpoint
// that reads a form body besides the token endpoint (tested with its
// grants).
func TestBackChannelEndpointsRefuseRepeatedParameters(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	for _, path := range []string{PathPAR, PathIntrospect, PathRevoke, PathDeviceAuthorization, PathBackchannelAuthentication} {
		t.Run(path, func(t *testing.T) {
			res := env.backChannel(path, webappBasic, url.Values{"scope": {"openid", "openid profile"}, "token": {"x"}, "client_id": {webappID}})
			wantRepeatedJSON(t, res)
		})
	}
	t.Run("userinfo POST", func(t *testing.T) {
		res := env.postForm(PathUserinfo, url.Values{"access_token": {"a", "b"}}, nil)
		if res.Status != http.StatusBadRequest || !strings.Contains(res.Header.Get("WWW-Authenticate"), `error="invalid_request"`) {
			t.Fatalf("status %d, WWW-Authenticate %q", res.Status, res.Header.Get("WWW-Authenticate"))
		}
	})
}

// wantRepeatedPage requires the error page of a repeated parameter.
func wantRepeatedPage(t *testing.T, res *response, status int) {
	t.Helper()
	wantErrorPage(t, res, status)
	if !strings.Contains(res.Body, "repeated") {
		t.Errorf("the error page does not say a parameter is repeated:\n%s", res.Body)
	}
}

// wantRepeatedJSON requires the invalid_request of a repeated parameter.
func wantRepeatedJSON(t *testing.T, res *response) {
	t.Helper()
	wantOAuthError(t, res, http.StatusBadRequest, "invalid_request")
	if desc, _ := res.JSON(t)["error_description"].(string); !strings.Contains(desc, "repeated") {
		t.Errorf("error_description %q does not say a parameter is repeated", desc)
	}
}

// TestRepeatedParameterNameNeverReachesAChallengeRaw: the name of a
// repeated parameter is the client's text; in a WWW-Authenticate challenge
// it must fit RFC 6750's error_description syntax (found by FuzzUserinfo:
// a control character went into the header).
func TestRepeatedParameterNameNeverReachesAChallengeRaw(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	res := env.postRaw(PathUserinfo, "application/x-www-form-urlencoded", "%11%22%5C%C2%A7=1&%11%22%5C%C2%A7=2", nil)
	ch := res.Header.Get("WWW-Authenticate")
	if res.Status != http.StatusBadRequest || !strings.Contains(ch, `error="invalid_request"`) {
		t.Fatalf("status %d, challenge %q", res.Status, ch)
	}
	_, desc, _ := strings.Cut(ch, `error_description="`)
	desc = strings.TrimSuffix(desc, `"`)
	for _, r := range desc {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			t.Fatalf("error_description %q carries %q", desc, r)
		}
	}
}
