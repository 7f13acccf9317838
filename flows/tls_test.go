package flows

import (
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// checkingTransport fails the test on any 500 a real network round trip
// returns.
type checkingTransport struct {
	base http.RoundTripper
	env  *testEnv
}

func (c checkingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := c.base.RoundTrip(req)
	if err == nil {
		c.env.checkStatus(req.Method, req.URL.Path, res.StatusCode)
	}
	return res, err
}

// newTLSTestServer serves the Server from an httptest TLS listener, with
// the issuer set to the listener's URL (the Server is built after the
// listener starts), and returns a browser that talks to it over the
// network.
func newTLSTestServer(t *testing.T) (*testEnv, *browser) {
	t.Helper()
	var handler atomic.Pointer[Server]
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler.Load().ServeHTTP(w, r)
	}))
	ts.StartTLS()
	t.Cleanup(ts.Close)
	env := newTestServer(t, func(c *Config) { c.Issuer = ts.URL })
	handler.Store(env.srv)
	jar, _ := cookiejar.New(nil)
	client := ts.Client()
	client.Jar = jar
	client.Transport = checkingTransport{base: client.Transport, env: env}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return env, &browser{env: env, client: client, jar: jar}
}

// TestCodeFlowOverRealTLS runs the browser part of the code flow through a
// real HTTPS listener: Secure __Host- cookies survive the round trip and
// the issuer is the listener's origin.
func TestCodeFlowOverRealTLS(t *testing.T) {
	t.Parallel()
	env, b := newTLSTestServer(t)
	p := newAuthRequest(webappID, webappRedirect, "openid email")
	page := b.authorize(p.Values)
	if !page.isLoginPage() {
		t.Fatalf("no login page over TLS: %d", page.Status)
	}
	res := b.submitLogin(page, "alice", alicePassword)
	c := findCookie(res.Cookies, ssoCookieName)
	if c == nil || !c.Secure || !c.HttpOnly || c.Path != "/" || c.Domain != "" {
		t.Fatalf("session cookie over TLS: %+v", c)
	}
	q := callback(t, b.submitConsent(res, "allow"))
	if q.Get("iss") != env.issuer || !strings.HasPrefix(env.issuer, "https://127.0.0.1:") {
		t.Errorf("iss %q, issuer %q", q.Get("iss"), env.issuer)
	}
	tr := env.redeemOK(webappBasic, q.Get("code"), webappRedirect, p.Verifier)
	if _, id := env.verifyJWT(tr.IDToken); id["iss"] != env.issuer || id["email"] != "alice@example.com" {
		t.Errorf("ID token over TLS: %v", id)
	}
	// SSO over the wire.
	if q := callback(t, b.authorize(newAuthRequest(webappID, webappRedirect, "openid").Values)); q.Get("code") == "" {
		t.Errorf("SSO over TLS failed: %v", q)
	}
}
