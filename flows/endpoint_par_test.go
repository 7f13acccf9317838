package flows

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// push sends an authorization request to the PAR endpoint as c and
// returns the request_uri, failing the test unless it is a 201.
func (e *testEnv) push(c clientCred, p url.Values) string {
	e.tb.Helper()
	res := e.backChannel(PathPAR, c, p)
	if res.Status != http.StatusCreated {
		e.tb.Fatalf("PAR: %d %s", res.Status, res.Body)
	}
	m := res.JSON(e.tb)
	uri, _ := m["request_uri"].(string)
	if !strings.HasPrefix(uri, requestURIPrefix) || m["expires_in"] != float64(parTTL/time.Second) {
		e.tb.Fatalf("PAR response: %s", res.Body)
	}
	if cc := res.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		e.tb.Errorf("PAR response Cache-Control %q, want no-store", cc)
	}
	return uri
}

// byReference is the front-channel request of a pushed request.
func byReference(clientID, requestURI string) url.Values {
	return url.Values{"client_id": {clientID}, "request_uri": {requestURI}}
}

func TestPushedAuthorizationRequestCompletesTheCodeFlow(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	p := newAuthRequest(webappID, webappRedirect, "openid email")
	uri := env.push(webappBasic, p.Values)
	b := env.newBrowser()
	res := b.signIn(byReference(webappID, uri), "alice", alicePassword)
	q := callback(t, res)
	if q.Get("state") != p.Get("state") || q.Get("code") == "" || q.Get("iss") != env.issuer {
		t.Fatalf("callback of a pushed request: %v", q)
	}
	tr := env.redeemOK(webappBasic, q.Get("code"), webappRedirect, p.Verifier)
	_, id := env.verifyJWT(tr.IDToken)
	if id["nonce"] != p.Get("nonce") || id["email"] != "alice@example.com" {
		t.Errorf("ID token of a pushed request: %v", id)
	}
}

// TestPushedRequestIgnoresFrontChannelParameters: only client_id and
// request_uri are read from the browser; a scope or redirect_uri added
// there changes nothing.
func TestPushedRequestIgnoresFrontChannelParameters(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	p := newAuthRequest(otherID, otherRedirect, "openid")
	uri := env.push(otherBasic, p.Values)
	front := byReference(otherID, uri)
	front.Set("redirect_uri", webappRedirect) // also registered for other
	front.Set("scope", "openid email groups")
	front.Set("state", "attacker-state")
	q := callback(t, env.newBrowser().signIn(front, "alice", alicePassword))
	if q.Get("state") != p.Get("state") {
		t.Errorf("state %q, want the pushed %q", q.Get("state"), p.Get("state"))
	}
	tr := env.redeemOK(otherBasic, q.Get("code"), otherRedirect, p.Verifier)
	if tr.Scope != "openid" {
		t.Errorf("scope %q, want the pushed openid", tr.Scope)
	}
}

func TestPushedRequestURIIsSingleUseAndBoundToItsClient(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	for _, tc := range []struct {
		name  string
		front func(uri string) url.Values
		prime bool // use the request_uri once first
	}{
		{"used twice", func(uri string) url.Values { return byReference(webappID, uri) }, true},
		{"brought by another client", func(uri string) url.Values { return byReference(otherID, uri) }, false},
		{"without client_id", func(uri string) url.Values { return url.Values{"request_uri": {uri}} }, false},
		{"not issued here", func(string) url.Values {
			return byReference(webappID, requestURIPrefix+"made-up")
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uri := env.push(webappBasic, newAuthRequest(webappID, webappRedirect, "openid").Values)
			b := env.newBrowser()
			if tc.prime {
				if res := b.authorize(byReference(webappID, uri)); !res.isLoginPage() {
					t.Fatalf("first use of the request_uri: %d", res.Status)
				}
			}
			res := b.authorize(tc.front(uri))
			if res.Status != http.StatusBadRequest || res.isLoginPage() || res.Header.Get("Location") != "" {
				t.Fatalf("authorize: %d, Location %q:\n%s", res.Status, res.Header.Get("Location"), res.Body)
			}
		})
	}
}

// TestForeignRequestURIIsNotFetched: a request_uri that is not one of
// this server's is never dereferenced; the client hears
// request_uri_not_supported at its registered redirect URI.
func TestForeignRequestURIIsNotFetched(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	q := callback(t, env.newBrowser().authorize(byReference(webappID, "https://evil.example/request.jwt")))
	if q.Get("error") != "request_uri_not_supported" {
		t.Fatalf("foreign request_uri: %v", q)
	}
}

func TestPushedRequestExpires(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	uri := env.push(webappBasic, newAuthRequest(webappID, webappRedirect, "openid").Values)
	env.clock.Advance(parTTL)
	if res := env.newBrowser().authorize(byReference(webappID, uri)); res.Status != http.StatusBadRequest || !strings.Contains(res.Body, "invalid_request_uri") {
		t.Fatalf("authorize with an expired request_uri: %d\n%s", res.Status, res.Body)
	}
}

// TestPushedRequestIsValidatedWhenPushed: a bad request is refused at the
// PAR endpoint, in JSON, not later in the browser.
func TestPushedRequestIsValidatedWhenPushed(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	valid := func(mod func(url.Values)) url.Values {
		p := newAuthRequest(webappID, webappRedirect, "openid").Values
		mod(p)
		return p
	}
	for _, tc := range []struct {
		name   string
		cred   clientCred
		params url.Values
		status int
		code   string
	}{
		{"unregistered redirect_uri", webappBasic, valid(func(p url.Values) { p.Set("redirect_uri", "https://evil.example/cb") }), 400, "invalid_request"},
		{"request_uri pushed", webappBasic, valid(func(p url.Values) { p.Set("request_uri", requestURIPrefix+"x") }), 400, "invalid_request"},
		{"PKCE plain", webappBasic, valid(func(p url.Values) { p.Set("code_challenge_method", "plain") }), 400, "invalid_request"},
		{"public client without PKCE", spaPublic, url.Values{"response_type": {"code"}, "redirect_uri": {spaRedirect}, "scope": {"openid"}}, 400, "invalid_request"},
		{"unknown scope", webappBasic, valid(func(p url.Values) { p.Set("scope", "openid launch:missiles") }), 400, "invalid_scope"},
		{"wrong client secret", clientCred{webappID, "wrong", "basic"}, valid(func(url.Values) {}), 401, "invalid_client"},
		{"no client authentication", clientCred{webappID, "", "none"}, valid(func(url.Values) {}), 401, "invalid_client"},
		{"client_id of another client in the body", webappBasic, valid(func(p url.Values) { p.Set("client_id", otherID) }), 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantOAuthError(t, env.backChannel(PathPAR, tc.cred, tc.params), tc.status, tc.code)
		})
	}
	if res := env.get(PathPAR, nil, nil); res.Status != http.StatusMethodNotAllowed {
		t.Errorf("GET %s: %d, want 405", PathPAR, res.Status)
	}
}

func TestPushedRequestFromAPublicClient(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	p := newAuthRequest(spaID, spaRedirect, "openid")
	uri := env.push(spaPublic, p.Values)
	code := callback(t, env.newBrowser().signIn(byReference(spaID, uri), "alice", alicePassword)).Get("code")
	env.redeemOK(spaPublic, code, spaRedirect, p.Verifier)
}

func TestClientRequiringPARRefusesFrontChannelRequests(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	c, err := env.store.GetClient(context.Background(), webappID)
	if err != nil {
		t.Fatal(err)
	}
	c.RequirePushedAuthorizationRequests = true
	if err := env.store.PutClient(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	p := newAuthRequest(webappID, webappRedirect, "openid")
	q := callback(t, env.newBrowser().authorize(p.Values))
	if q.Get("error") != "invalid_request" || !strings.Contains(q.Get("error_description"), "push") {
		t.Fatalf("front-channel request of a PAR-only client: %v", q)
	}
	uri := env.push(webappBasic, p.Values)
	if q := callback(t, env.newBrowser().signIn(byReference(webappID, uri), "alice", alicePassword)); q.Get("code") == "" {
		t.Fatalf("pushed request of a PAR-only client: %v", q)
	}
}

// TestJWTClientAuthenticationAtPARAndDeviceEndpoints: private_key_jwt and
// client_secret_jwt work at the PAR and device authorization endpoints as
// at the token endpoint, with the endpoint's own URL as aud, and a replay
// is refused there too.
func TestJWTClientAuthenticationAtPARAndDeviceEndpoints(t *testing.T) {
	t.Parallel()
	env, fx := newAssertionEnv(t)
	ctx := context.Background()
	for _, id := range []string{pkjwtID, csjwtID} {
		c, err := env.store.GetClient(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		c.GrantTypes = append(c.GrantTypes, GrantAuthorizationCode, GrantDeviceCode)
		c.RedirectURIs = []string{"https://" + id + ".example.com/cb"}
		if err := env.store.PutClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	sign := map[string]func(aud string) string{
		pkjwtID: func(aud string) string {
			claims := env.assertionClaims(pkjwtID)
			claims["aud"] = aud
			return signAssertion(t, fx.key, jose.ES256, "k1", claims)
		},
		csjwtID: func(aud string) string {
			claims := env.assertionClaims(csjwtID)
			claims["aud"] = aud
			return signAssertion(t, []byte(csjwtSecret), jose.HS256, "", claims)
		},
	}
	for id, signFor := range sign {
		t.Run(id, func(t *testing.T) {
			p := newAuthRequest(id, "https://"+id+".example.com/cb", "openid").Values
			p.Del("client_id")
			assertion := signFor(env.url(PathPAR))
			res := env.postForm(PathPAR, withAssertion(p, id, assertion), nil)
			if res.Status != http.StatusCreated {
				t.Fatalf("PAR with %s: %d %s", id, res.Status, res.Body)
			}
			wantOAuthError(t, env.postForm(PathPAR, withAssertion(p, id, assertion), nil), http.StatusUnauthorized, "invalid_client")

			dev := env.postForm(PathDeviceAuthorization, withAssertion(url.Values{"scope": {"openid"}}, id, signFor(env.issuer)), nil)
			if dev.Status != http.StatusOK || dev.JSON(t)["device_code"] == nil {
				t.Fatalf("device authorization with %s: %d %s", id, dev.Status, dev.Body)
			}
			// A secret is not accepted from a JWT client at either.
			form := url.Values{"client_id": {id}, "client_secret": {csjwtSecret}, "scope": {"openid"}}
			wantOAuthError(t, env.postForm(PathDeviceAuthorization, form, nil), http.StatusUnauthorized, "invalid_client")
		})
	}
}

func TestPARInDiscovery(t *testing.T) {
	t.Parallel()
	env := newTestServer(t)
	m := env.get(PathDiscovery, nil, nil).JSON(t)
	if m["pushed_authorization_request_endpoint"] != env.url(PathPAR) || m["require_pushed_authorization_requests"] != false {
		t.Errorf("discovery PAR metadata: %v %v", m["pushed_authorization_request_endpoint"], m["require_pushed_authorization_requests"])
	}
}
