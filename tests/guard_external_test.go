package tests

// The API guard (bearer_auth) in the real binary with an external issuer,
// panva's certified oidc-provider (see oidcprovider_test.go): a machine
// client gets access tokens there with the client_credentials grant and a
// resource indicator (RFC 8707), JWTs (RFC 9068) for some APIs and opaque
// tokens for others, and calls one API site whose routes are guarded for
// each kind. The guard verifies the JWTs against the provider's JWKS and
// introspects the opaque tokens over HTTP (RFC 7662) as a confidential
// client of the provider; the recording upstream shows what it passed on.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/dpop"
)

// guardExternalCaddyfile is one API site on {{.AppPort}}, guarded against
// the provider at {{.Vars.Issuer}} and proxied to the test's recording
// upstream ({{.Vars.Upstream}}):
//
//	/items/*  read:items of the JWT API (ES256), RFC 9068 typ required
//	/write/*  write:items of the same API
//	/legacy/* read:legacy of a JWT API signed with RS256
//	/stuff/*  read:stuff of the opaque-token API, introspected at the
//	          provider as client guardExtIntrospectID; answers cached 1s
//	/badsecret/* the opaque API, introspected with a wrong client secret
//	/dpop/*   read:items, DPoP-bound tokens only
//
// The site on {{.Port}} only answers StartGateway's readiness probe.
const guardExternalCaddyfile = `{
	admin 127.0.0.1:{{.AdminPort}}
}
(jwt_api) {
	issuer {{.Vars.Issuer}}
	audience ` + guardExtJWTAPI + `
}
http://127.0.0.1:{{.Port}} {
	bind 127.0.0.1
	respond /.well-known/openid-configuration 200
}
http://127.0.0.1:{{.AppPort}} {
	bind 127.0.0.1
	handle /items/* {
		bearer_auth read:items {
			import jwt_api
			require_at_jwt
		}
		reverse_proxy {{.Vars.Upstream}}
	}
	handle /write/* {
		bearer_auth write:items {
			import jwt_api
		}
		reverse_proxy {{.Vars.Upstream}}
	}
	handle /legacy/* {
		bearer_auth read:legacy {
			issuer {{.Vars.Issuer}}
			audience ` + guardExtRS256API + `
		}
		reverse_proxy {{.Vars.Upstream}}
	}
	handle /stuff/* {
		bearer_auth read:stuff {
			issuer {{.Vars.Issuer}}
			audience ` + guardExtOpaqueAPI + `
			client_id ` + guardExtIntrospectID + `
			client_secret ` + guardExtIntrospectSecret + `
			cache_ttl 1s
		}
		reverse_proxy {{.Vars.Upstream}}
	}
	handle /badsecret/* {
		bearer_auth read:stuff {
			issuer {{.Vars.Issuer}}
			audience ` + guardExtOpaqueAPI + `
			client_id ` + guardExtIntrospectID + `
			client_secret ` + guardExtWrongSecret + `
		}
		reverse_proxy {{.Vars.Upstream}}
	}
	handle /dpop/* {
		bearer_auth read:items {
			import jwt_api
			require_dpop
		}
		reverse_proxy {{.Vars.Upstream}}
	}
}
`

// The provider's APIs (resource indicators), its machine client and the
// guard's registration for introspection.
const (
	guardExtJWTAPI         = "https://api.example.test"
	guardExtRS256API       = "https://legacy.example.test"
	guardExtOpaqueAPI      = "https://opaque.example.test"
	guardExtOtherJWTAPI    = "https://other.example.test"
	guardExtOtherOpaqueAPI = "https://other-opaque.example.test"

	guardExtClientID         = "api-client"
	guardExtClientSecret     = "api-client-secret"
	guardExtIntrospectID     = "api-guard"
	guardExtIntrospectSecret = "api-guard-secret"
	// guardExtWrongSecret is a misconfigured guard's secret.
	guardExtWrongSecret = "not-the-api-guard-secret"
)

// guardExtResourceServers is server.mjs's RESOURCE_SERVERS_JSON. The other
// APIs have the scopes of the guarded ones, so that only the audience tells
// their tokens apart.
var guardExtResourceServers = map[string]map[string]any{
	guardExtJWTAPI:         {"scope": "read:items write:items", "format": "jwt", "alg": "ES256"},
	guardExtRS256API:       {"scope": "read:legacy", "format": "jwt", "alg": "RS256"},
	guardExtOpaqueAPI:      {"scope": "read:stuff", "format": "opaque"},
	guardExtOtherJWTAPI:    {"scope": "read:items write:items", "format": "jwt"},
	guardExtOtherOpaqueAPI: {"scope": "read:stuff", "format": "opaque"},
}

// guardExtClients are the provider's clients: the API caller and the
// guard, which only introspects.
var guardExtClients = []map[string]any{
	{
		"client_id": guardExtClientID, "client_secret": guardExtClientSecret,
		"grant_types": []string{"client_credentials"}, "response_types": []string{}, "redirect_uris": []string{},
		"token_endpoint_auth_method": "client_secret_basic",
	},
	{
		"client_id": guardExtIntrospectID, "client_secret": guardExtIntrospectSecret,
		"grant_types": []string{}, "response_types": []string{}, "redirect_uris": []string{},
		"token_endpoint_auth_method": "client_secret_basic",
	},
}

// guardExternalEnv is a running provider and the guarded API site.
type guardExternalEnv struct {
	OP        *ExternalOP
	Discovery *Discovery
	Gateway   *Gateway
	Upstream  *recordingUpstream
}

// startGuardExternal starts the provider (its issuer goes into the
// Caddyfile), then the gateway, and waits until every guarded route has
// discovered the provider.
func startGuardExternal(t *testing.T) *guardExternalEnv {
	t.Helper()
	rs, err := json.Marshal(guardExtResourceServers)
	if err != nil {
		t.Fatal(err)
	}
	op := StartOIDCProviderWithEnv(t, guardExtClients, nil, map[string]string{
		"RESOURCE_SERVERS_JSON": string(rs), "CLIENT_CREDENTIALS": "true", "REVOCATION": "true",
	})
	d := op.Discover(t)
	if d.IntrospectionEndpoint == "" || d.RevocationEndpoint == "" {
		t.Fatalf("the provider advertises no introspection or revocation endpoint: %v", d.Raw)
	}
	up := newRecordingUpstream(t)
	g := StartGatewayVars(t, guardExternalCaddyfile, map[string]string{"Issuer": op.Issuer, "Upstream": up.Listener.Addr().String()})
	for _, route := range []string{"/items/", "/write/", "/legacy/", "/stuff/", "/dpop/"} {
		waitGuardReady(t, g.AppURL+route+"ready")
	}
	return &guardExternalEnv{OP: op, Discovery: d, Gateway: g, Upstream: up}
}

// waitGuardReady polls target with a junk token until the guard answers
// something else than 503, which it says until the issuer's metadata and
// keys are loaded (a request without a token is refused before that).
func waitGuardReady(t *testing.T, target string) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		resp, _ := callAPI(t, http.MethodGet, target, "Bearer junk-token-for-the-readiness-probe", "")
		if resp.StatusCode != http.StatusServiceUnavailable {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still answers 503 after %s: the guard never discovered the provider", target, readyTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// token gets an access token from the provider with the client_credentials
// grant for resource and scope; proof, when set, is a DPoP proof for the
// token request.
func (e *guardExternalEnv) token(t *testing.T, resource, scope, proof string) (accessToken, tokenType string) {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "resource": {resource}}
	if scope != "" {
		form.Set("scope", scope)
	}
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Accept": {"application/json"}}
	if proof != "" {
		h.Set("DPoP", proof)
	}
	req := &http.Request{Header: http.Header{}}
	req.SetBasicAuth(guardExtClientID, guardExtClientSecret)
	h.Set("Authorization", req.Header.Get("Authorization"))
	resp, body := doRequest(t, &http.Client{Timeout: requestTimeout}, http.MethodPost, e.Discovery.TokenEndpoint, strings.NewReader(form.Encode()), h)
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || resp.StatusCode != http.StatusOK || tok.AccessToken == "" {
		t.Fatalf("client_credentials for %s (scope %q): status %d: %s", resource, scope, resp.StatusCode, body)
	}
	return tok.AccessToken, tok.TokenType
}

// jwtHeader decodes the protected header of a compact JWS.
func jwtHeader(t *testing.T, token string) map[string]any {
	t.Helper()
	first, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(first)
	var h map[string]any
	if err == nil {
		err = json.Unmarshal(raw, &h)
	}
	if err != nil {
		t.Fatalf("not a JWS: %v", err)
	}
	return h
}

// wantRefused checks a 401 invalid_token answer.
func wantRefused(t *testing.T, name string, resp *http.Response, body string) {
	t.Helper()
	wantRefusedWith(t, name, resp, body, "invalid_token")
}

// wantRefusedWith checks a 401 answer whose challenge has the error code,
// or one of the codes separated by |.
func wantRefusedWith(t *testing.T, name string, resp *http.Response, body, codes string) {
	t.Helper()
	ch := strings.Join(resp.Header.Values("WWW-Authenticate"), " | ")
	hasCode := slices.ContainsFunc(strings.Split(codes, "|"), func(c string) bool { return strings.Contains(ch, `error="`+c+`"`) })
	if resp.StatusCode != http.StatusUnauthorized || !hasCode {
		t.Errorf("%s: status %d, WWW-Authenticate %q, body %q; want 401 %s", name, resp.StatusCode, ch, body, codes)
	}
}

// wantUpstream checks the headers of the upstream request to path: value
// "" means the header must be absent.
func wantUpstream(t *testing.T, up *recordingUpstream, path string, want map[string]string) {
	t.Helper()
	got := up.lastRequest()
	if got == nil {
		t.Fatalf("the upstream got no request (want %s)", path)
	}
	if got.URL.Path != path {
		t.Fatalf("the upstream's last request is %s, want %s", got.URL.Path, path)
	}
	for h, v := range want {
		vals := got.Header.Values(h)
		if (v == "" && len(vals) != 0) || (v != "" && (len(vals) != 1 || vals[0] != v)) {
			t.Errorf("upstream %s = %q, want %q", h, vals, v)
		}
	}
}

// spoofedCall sends the token with identity headers the client must not be
// able to set.
func spoofedCall(t *testing.T, target, token string) (*http.Response, string) {
	t.Helper()
	h := http.Header{
		"Authorization":         {"Bearer " + token},
		"Accept":                {"application/json"},
		"X-Forwarded-User":      {"mallory"},
		"X-Forwarded-Client-Id": {"mallory"},
		"X-Forwarded-Scope":     {"admin"},
	}
	resp, body := doRequest(t, &http.Client{Timeout: requestTimeout}, http.MethodGet, target, nil, h)
	return resp, string(body)
}

// TestGuardExternal runs every scenario against one provider and one
// gateway: starting them takes seconds on a loaded machine, and the
// scenarios share nothing else (each gets tokens of its own).
func TestGuardExternal(t *testing.T) {
	e := startGuardExternal(t)
	t.Run("TokensOfOIDCProvider", func(t *testing.T) { testGuardExternalAcceptsTokens(t, e) })
	t.Run("IntrospectionRefusedIs503", func(t *testing.T) { testGuardExternalIntrospectionRefusedIs503(t, e) })
	t.Run("RevokedAtTheProvider", func(t *testing.T) { testGuardExternalRefusesRevokedToken(t, e) })
	t.Run("DPoPBoundTokens", func(t *testing.T) { testGuardExternalChecksDPoPBoundTokens(t, e) })
}

// testGuardExternalAcceptsTokens: JWT and opaque client_credentials tokens
// pass their own routes with the client's identity upstream; tokens for
// other APIs and with too few scopes do not.
func testGuardExternalAcceptsTokens(t *testing.T, e *guardExternalEnv) {
	app := e.Gateway.AppURL

	t.Run("a client-credentials JWT passes with the client's identity and without Authorization upstream", func(t *testing.T) {
		tok, typ := e.token(t, guardExtJWTAPI, "read:items", "")
		if typ != "Bearer" || strings.Count(tok, ".") != 2 {
			t.Fatalf("token_type %q, token %.20q...: want a Bearer JWT", typ, tok)
		}
		if h := jwtHeader(t, tok); h["alg"] != "ES256" || h["typ"] != "at+jwt" {
			t.Fatalf("JWT header %v, want ES256 at+jwt", h)
		}
		resp, body := spoofedCall(t, app+"/items/a", tok)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		// RFC 9068 §2.2: sub of a client_credentials token is the client.
		wantUpstream(t, e.Upstream, "/items/a", map[string]string{
			"X-Forwarded-User": guardExtClientID, "X-Forwarded-Client-Id": guardExtClientID,
			"X-Forwarded-Scope": "read:items", "Authorization": "",
		})
	})
	t.Run("an RS256 JWT of another API passes that API's route", func(t *testing.T) {
		tok, _ := e.token(t, guardExtRS256API, "read:legacy", "")
		if h := jwtHeader(t, tok); h["alg"] != "RS256" {
			t.Fatalf("JWT header %v, want RS256", h)
		}
		if resp, body := callAPI(t, http.MethodGet, app+"/legacy/b", "Bearer "+tok, ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		wantUpstream(t, e.Upstream, "/legacy/b", map[string]string{"X-Forwarded-Client-Id": guardExtClientID, "X-Forwarded-Scope": "read:legacy"})
	})
	t.Run("an opaque token passes through introspection at the provider", func(t *testing.T) {
		tok, _ := e.token(t, guardExtOpaqueAPI, "read:stuff", "")
		if strings.Contains(tok, ".") {
			t.Fatalf("the opaque API got a structured token: %.20q...", tok)
		}
		resp, body := spoofedCall(t, app+"/stuff/c", tok)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		// oidc-provider's introspection answer for a client_credentials
		// token has no sub: the client's X-Forwarded-User must still go.
		wantUpstream(t, e.Upstream, "/stuff/c", map[string]string{
			"X-Forwarded-User": "", "X-Forwarded-Client-Id": guardExtClientID,
			"X-Forwarded-Scope": "read:stuff", "Authorization": "",
		})
	})
	t.Run("a token for another resource is 401 invalid_token", func(t *testing.T) {
		otherJWT, _ := e.token(t, guardExtOtherJWTAPI, "read:items", "")
		otherOpaque, _ := e.token(t, guardExtOtherOpaqueAPI, "read:stuff", "")
		jwtAPI, _ := e.token(t, guardExtJWTAPI, "read:items", "")
		opaqueAPI, _ := e.token(t, guardExtOpaqueAPI, "read:stuff", "")
		legacy, _ := e.token(t, guardExtRS256API, "read:legacy", "")
		for name, c := range map[string]struct{ path, token string }{
			"JWT of another API with the same scope": {"/items/d", otherJWT},
			"opaque token of another API":            {"/stuff/d", otherOpaque},
			"JWT of the JWT API at the opaque route": {"/stuff/d", jwtAPI},
			"opaque token at a JWT-only route":       {"/items/d", opaqueAPI},
			"RS256 JWT of the legacy API":            {"/items/d", legacy},
		} {
			resp, body := callAPI(t, http.MethodGet, app+c.path, "Bearer "+c.token, "")
			wantRefused(t, name, resp, body)
		}
	})
	t.Run("too few scopes is 403 insufficient_scope naming the scope", func(t *testing.T) {
		read, _ := e.token(t, guardExtJWTAPI, "read:items", "")
		resp, _ := callAPI(t, http.MethodPost, app+"/write/e", "Bearer "+read, "")
		ch := resp.Header.Get("WWW-Authenticate")
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(ch, `error="insufficient_scope"`) || !strings.Contains(ch, `scope="write:items"`) {
			t.Errorf("read:items at the write route: status %d, WWW-Authenticate %q", resp.StatusCode, ch)
		}
		both, _ := e.token(t, guardExtJWTAPI, "read:items write:items", "")
		if resp, body := callAPI(t, http.MethodPost, app+"/write/e", "Bearer "+both, ""); resp.StatusCode != http.StatusOK {
			t.Errorf("read:items write:items at the write route: status %d: %s", resp.StatusCode, body)
		}
		// The provider grants no scope when none is asked for.
		none, _ := e.token(t, guardExtOpaqueAPI, "", "")
		resp, _ = callAPI(t, http.MethodGet, app+"/stuff/e", "Bearer "+none, "")
		ch = resp.Header.Get("WWW-Authenticate")
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(ch, `error="insufficient_scope"`) || !strings.Contains(ch, `scope="read:stuff"`) {
			t.Errorf("opaque token without scope: status %d, WWW-Authenticate %q", resp.StatusCode, ch)
		}
	})
}

// testGuardExternalIntrospectionRefusedIs503: a guard whose introspection
// credentials the provider refuses cannot tell a good token from a bad one:
// it answers 503 (the client keeps its token) and logs why for the
// operator, without the token or the secret.
func testGuardExternalIntrospectionRefusedIs503(t *testing.T, e *guardExternalEnv) {
	tok, _ := e.token(t, guardExtOpaqueAPI, "read:stuff", "")
	resp, body := callAPI(t, http.MethodGet, e.Gateway.AppURL+"/badsecret/h", "Bearer "+tok, "")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, `"temporarily_unavailable"`) {
		t.Fatalf("status %d, Retry-After %q, body %s; want 503 temporarily_unavailable", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// Both processes' output reaches the test through pipes: wait for it.
	opLine := waitLogLine(t, e.OP.Logs, "introspection.error: POST /token/introspection: InvalidClientAuth")
	if opLine == "" {
		t.Errorf("the provider did not refuse the guard's client authentication:\n%s", e.OP.Logs())
	}
	line := waitLogLine(t, e.Gateway.Logs, `"introspection failed"`)
	if line == "" {
		t.Fatalf("no warning about the failed introspection in the gateway log:\n%s", e.Gateway.Logs())
	}
	// The refusal is one JSON log entry whose fields each keep their value.
	var entry map[string]any
	if err := json.Unmarshal([]byte(line), &entry); err != nil {
		t.Fatalf("log line %q: %v", line, err)
	}
	cause, _ := entry["cause"].(string)
	if entry["msg"] != "request refused" || entry["level"] != "warn" || entry["error"] != "temporarily_unavailable" || !strings.Contains(cause, "status 401") {
		t.Errorf("log entry %v: want a warning with error temporarily_unavailable and the provider's 401 as cause", entry)
	}
	logs := e.Gateway.Logs()
	for name, secret := range map[string]string{"the access token": tok, "the client secret": guardExtWrongSecret} {
		if strings.Contains(logs, secret) {
			t.Errorf("the gateway log holds %s", name)
		}
	}
}

// waitLogLine returns the first line of logs() that contains substr,
// polling for up to 10 s; "" if none came.
func waitLogLine(t *testing.T, logs func() string, substr string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, line := range strings.Split(logs(), "\n") {
			if strings.Contains(line, substr) {
				return line
			}
		}
		if time.Now().After(deadline) {
			return ""
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testGuardExternalRefusesRevokedToken: an opaque token revoked at the
// provider stops passing once the guard's cached answer (cache_ttl 1s) ends.
func testGuardExternalRefusesRevokedToken(t *testing.T, e *guardExternalEnv) {
	target := e.Gateway.AppURL + "/stuff/revoked"
	tok, _ := e.token(t, guardExtOpaqueAPI, "read:stuff", "")
	if resp, body := callAPI(t, http.MethodGet, target, "Bearer "+tok, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("before revocation: status %d: %s", resp.StatusCode, body)
	}
	resp, _ := PostForm(t, e.Discovery.RevocationEndpoint, url.Values{"token": {tok}, "token_type_hint": {"access_token"}}, guardExtClientID, guardExtClientSecret)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revocation at the provider: status %d", resp.StatusCode)
	}
	revoked := time.Now()
	// The provider itself says so at once.
	if _, ans := PostForm(t, e.Discovery.IntrospectionEndpoint, url.Values{"token": {tok}}, guardExtIntrospectID, guardExtIntrospectSecret); ans["active"] != false {
		t.Fatalf("the provider still introspects the revoked token as %v", ans)
	}
	// cache_ttl 1s: the guard may serve its cached answer until then, not
	// much longer. The bound leaves room for a loaded machine.
	const bound = 10 * time.Second
	for {
		resp, body := callAPI(t, http.MethodGet, target, "Bearer "+tok, "")
		if resp.StatusCode == http.StatusUnauthorized {
			wantRefused(t, "revoked token", resp, body)
			t.Logf("refused %s after revocation", time.Since(revoked).Round(time.Millisecond))
			return
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoked token: status %d: %s", resp.StatusCode, body)
		}
		if time.Since(revoked) > bound {
			t.Fatalf("the revoked token still passes %s after revocation (cache_ttl 1s)", bound)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testGuardExternalChecksDPoPBoundTokens: tokens the provider bound to a
// DPoP key (RFC 9449), JWT or opaque, pass only with a proof by that key.
func testGuardExternalChecksDPoPBoundTokens(t *testing.T, e *guardExternalEnv) {
	app := e.Gateway.AppURL
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	proof := func(t *testing.T, k *ecdsa.PrivateKey, method, target, token string) string {
		t.Helper()
		p, err := dpop.NewProof(k, method, target, token, "")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	boundToken := func(t *testing.T, resource, scope string) string {
		t.Helper()
		tok, typ := e.token(t, resource, scope, proof(t, key, http.MethodPost, e.Discovery.TokenEndpoint, ""))
		if typ != "DPoP" {
			t.Fatalf("token_type %q, want DPoP for a token request with a proof", typ)
		}
		return tok
	}

	t.Run("a DPoP-bound JWT passes with its proof and is refused as a Bearer token", func(t *testing.T) {
		tok := boundToken(t, guardExtJWTAPI, "read:items")
		target := app + "/dpop/f"
		good := proof(t, key, http.MethodGet, target, tok)
		plain, _ := e.token(t, guardExtJWTAPI, "read:items", "")
		if resp, body := callAPI(t, http.MethodGet, target, "DPoP "+tok, good); resp.StatusCode != http.StatusOK {
			t.Fatalf("with its proof: status %d: %s", resp.StatusCode, body)
		}
		wantUpstream(t, e.Upstream, "/dpop/f", map[string]string{"X-Forwarded-User": guardExtClientID, "Authorization": "", "DPoP": ""})
		// Each is refused for its own reason, told by the error code.
		for name, c := range map[string]struct{ path, auth, proof, code string }{
			"replayed proof": {"/dpop/f", "DPoP " + tok, good, "invalid_dpop_proof"},
			// RFC 9449 names no code for a proof by another key than the
			// token's: either says what is wrong.
			"proof by another key":             {"/dpop/f", "DPoP " + tok, proof(t, other, http.MethodGet, target, tok), "invalid_token|invalid_dpop_proof"},
			"proof for another URL":            {"/dpop/f", "DPoP " + tok, proof(t, key, http.MethodGet, app+"/dpop/elsewhere", tok), "invalid_dpop_proof"},
			"no proof":                         {"/dpop/f", "DPoP " + tok, "", "invalid_dpop_proof"},
			"as Bearer at a Bearer route":      {"/items/f", "Bearer " + tok, "", "invalid_token"},
			"as Bearer with a proof":           {"/items/f", "Bearer " + tok, proof(t, key, http.MethodGet, app+"/items/f", tok), "invalid_token"},
			"a Bearer token at the DPoP route": {"/dpop/f", "Bearer " + plain, "", "invalid_token"},
		} {
			resp, body := callAPI(t, http.MethodGet, app+c.path, c.auth, c.proof)
			wantRefusedWith(t, name, resp, body, c.code)
		}
	})
	t.Run("a DPoP-bound opaque token is bound through its introspection answer", func(t *testing.T) {
		tok := boundToken(t, guardExtOpaqueAPI, "read:stuff")
		target := app + "/stuff/g"
		if resp, body := callAPI(t, http.MethodGet, target, "DPoP "+tok, proof(t, key, http.MethodGet, target, tok)); resp.StatusCode != http.StatusOK {
			t.Fatalf("with its proof: status %d: %s", resp.StatusCode, body)
		}
		wantUpstream(t, e.Upstream, "/stuff/g", map[string]string{"X-Forwarded-Client-Id": guardExtClientID, "Authorization": "", "DPoP": ""})
		for name, c := range map[string]struct{ auth, proof string }{
			"as Bearer":            {"Bearer " + tok, ""},
			"proof by another key": {"DPoP " + tok, proof(t, other, http.MethodGet, target, tok)},
		} {
			resp, body := callAPI(t, http.MethodGet, target, c.auth, c.proof)
			wantRefusedWith(t, name, resp, body, "invalid_token|invalid_dpop_proof")
		}
	})
}
