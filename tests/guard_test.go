package tests

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/dpop"
)

// guardCaddyfile runs the embedded server on {{.Port}} and an API on
// {{.AppPort}} with bearer_auth routes proxied to the test's recording
// upstream: /jwt (read:items, JWT API), /write (write:items), /opaque
// (read:stuff, an opaque-token API introspected in process; cache 1s so
// revocation shows quickly) and /dpop (DPoP required).
const guardCaddyfile = `{
	admin 127.0.0.1:{{.AdminPort}}
	portcullis {
		storage bbolt {{.Dir}}/portcullis.db
		issuer http://127.0.0.1:{{.Port}}
		client backend {
			secret backend-secret
			grant_types client_credentials
			api_access https://api.example.com read:items write:items
			api_access https://opaque.example.com read:stuff
		}
		client other-backend {
			secret other-secret
			grant_types client_credentials
			api_access https://other.example.com read:other
		}
		api https://api.example.com {
			scopes read:items write:items
			token_format jwt
		}
		api https://opaque.example.com {
			scopes read:stuff
			token_format opaque
		}
		api https://other.example.com {
			scopes read:other
		}
	}
}
(jwt_api) {
	issuer http://127.0.0.1:{{.Port}}
	audience https://api.example.com
}
http://127.0.0.1:{{.Port}} {
	bind 127.0.0.1
	oauth_server
}
http://127.0.0.1:{{.AppPort}} {
	bind 127.0.0.1
	handle /jwt/* {
		bearer_auth read:items {
			import jwt_api
			require_at_jwt
		}
		request_header X-Token-Sub {portcullis.token.sub}
		request_header X-Token-Scope {portcullis.token.scope}
		reverse_proxy {{.Vars.Upstream}}
	}
	handle /write/* {
		bearer_auth write:items {
			import jwt_api
		}
		reverse_proxy {{.Vars.Upstream}}
	}
	handle /opaque/* {
		bearer_auth read:stuff {
			issuer http://127.0.0.1:{{.Port}}
			audience https://opaque.example.com
			cache_ttl 1s
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
	handle_path /v1/* {
		bearer_auth read:items {
			import jwt_api
		}
		reverse_proxy {{.Vars.Upstream}}
	}
	handle {
		bearer_auth read:items {
			import jwt_api
		}
		reverse_proxy {{.Vars.Upstream}}
	}
}
`

// clientCredentials gets an access token for audience and scope.
func clientCredentials(t *testing.T, g *Gateway, id, secret, audience, scope string, header http.Header) map[string]any {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "audience": {audience}, "scope": {scope}}
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Accept": {"application/json"}}
	for k, v := range header {
		h[k] = v
	}
	req, _ := http.NewRequest(http.MethodPost, g.URL("/oauth/token"), strings.NewReader(form.Encode()))
	req.Header = h
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok map[string]any
	json.NewDecoder(resp.Body).Decode(&tok)
	if resp.StatusCode != http.StatusOK || tok["access_token"] == nil {
		t.Fatalf("client credentials for %s: %d %v", audience, resp.StatusCode, tok)
	}
	return tok
}

// callAPI sends method target with the given Authorization (and DPoP)
// header values and returns the response (body read).
func callAPI(t *testing.T, method, target, authorization, proof string) (*http.Response, string) {
	t.Helper()
	h := http.Header{"Accept": {"application/json"}}
	if authorization != "" {
		h.Set("Authorization", authorization)
	}
	if proof != "" {
		h.Set("DPoP", proof)
	}
	resp, body := doRequest(t, &http.Client{Timeout: requestTimeout}, method, target, nil, h)
	return resp, string(body)
}

func TestGuardProtectsAnAPIWithTokensOfTheEmbeddedServer(t *testing.T) {
	up := newRecordingUpstream(t)
	g := StartGatewayVars(t, guardCaddyfile, map[string]string{"Upstream": up.Listener.Addr().String()})
	waitAppListeningAt(t, g.AppURL+"/.well-known/oauth-protected-resource")
	read := clientCredentials(t, g, "backend", "backend-secret", "https://api.example.com", "read:items", nil)["access_token"].(string)

	t.Run("a JWT access token passes with its identity and without Authorization upstream", func(t *testing.T) {
		spoofed := http.Header{"Authorization": {"Bearer " + read}, "X-Forwarded-User": {"mallory"}, "Accept": {"application/json"}}
		resp, body := doRequest(t, &http.Client{Timeout: requestTimeout}, http.MethodGet, g.AppURL+"/jwt/items", nil, spoofed)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		got := up.lastRequest()
		want := map[string]string{"X-Forwarded-User": "backend@clients", "X-Forwarded-Client-Id": "backend",
			"X-Token-Sub": "backend@clients", "X-Token-Scope": "read:items", "Authorization": ""}
		for h, v := range want {
			if vals := got.Header.Values(h); (v == "" && len(vals) != 0) || (v != "" && (len(vals) != 1 || vals[0] != v)) {
				t.Errorf("upstream %s = %q, want %q", h, vals, v)
			}
		}
	})
	t.Run("no token is 401 with a challenge naming the resource metadata", func(t *testing.T) {
		resp, _ := callAPI(t, http.MethodGet, g.AppURL+"/jwt/items", "", "")
		ch := strings.Join(resp.Header.Values("WWW-Authenticate"), " | ")
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(ch, "Bearer") ||
			!strings.Contains(ch, `resource_metadata="`+g.AppURL+`/.well-known/oauth-protected-resource"`) {
			t.Errorf("status %d, WWW-Authenticate %q", resp.StatusCode, ch)
		}
	})
	t.Run("the protected resource metadata names the authorization server", func(t *testing.T) {
		resp, body := callAPI(t, http.MethodGet, g.AppURL+"/.well-known/oauth-protected-resource", "", "")
		var meta map[string]any
		json.Unmarshal([]byte(body), &meta)
		servers, _ := meta["authorization_servers"].([]any)
		if resp.StatusCode != http.StatusOK || len(servers) != 1 || servers[0] != g.BaseURL {
			t.Errorf("metadata: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("too few scopes is 403 insufficient_scope", func(t *testing.T) {
		resp, _ := callAPI(t, http.MethodPost, g.AppURL+"/write/items", "Bearer "+read, "")
		ch := resp.Header.Get("WWW-Authenticate")
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(ch, `error="insufficient_scope"`) || !strings.Contains(ch, `scope="write:items"`) {
			t.Errorf("status %d, WWW-Authenticate %q", resp.StatusCode, ch)
		}
		write := clientCredentials(t, g, "backend", "backend-secret", "https://api.example.com", "write:items", nil)["access_token"].(string)
		if resp, body := callAPI(t, http.MethodPost, g.AppURL+"/write/items", "Bearer "+write, ""); resp.StatusCode != http.StatusOK {
			t.Errorf("write:items token: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("tokens for another API, forged or mangled are 401 invalid_token", func(t *testing.T) {
		other := clientCredentials(t, g, "other-backend", "other-secret", "https://other.example.com", "read:other", nil)["access_token"].(string)
		parts := strings.Split(read, ".")
		for name, tok := range map[string]string{
			"another audience": other,
			"tampered payload": parts[0] + "." + parts[1] + "x." + parts[2],
			"alg none":         "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0." + parts[1] + ".",
			"garbage":          "not-a-token",
		} {
			resp, _ := callAPI(t, http.MethodGet, g.AppURL+"/jwt/items", "Bearer "+tok, "")
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Errorf("%s: status %d, WWW-Authenticate %q", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
		}
	})
	t.Run("a token in the query string is refused", func(t *testing.T) {
		resp, _ := callAPI(t, http.MethodGet, g.AppURL+"/jwt/items?access_token="+url.QueryEscape(read), "", "")
		if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("query token: status %d, want 400 or 401", resp.StatusCode)
		}
	})
	t.Run("malformed Authorization headers are 400, not 500", func(t *testing.T) {
		for _, h := range []string{"Bearer", "Bearer  two spaces", "Basic Zm9vOmJhcg==x", "Bearer " + strings.Repeat("a", 20000)} {
			resp, _ := callAPI(t, http.MethodGet, g.AppURL+"/jwt/items", h, "")
			if resp.StatusCode >= 500 || resp.StatusCode == http.StatusOK {
				t.Errorf("Authorization %.30q: status %d", h, resp.StatusCode)
			}
		}
	})
}

func TestGuardIntrospectsOpaqueTokensInProcessAndSeesRevocation(t *testing.T) {
	up := newRecordingUpstream(t)
	g := StartGatewayVars(t, guardCaddyfile, map[string]string{"Upstream": up.Listener.Addr().String()})
	waitAppListeningAt(t, g.AppURL+"/.well-known/oauth-protected-resource")
	tok := clientCredentials(t, g, "backend", "backend-secret", "https://opaque.example.com", "read:stuff", nil)["access_token"].(string)
	if strings.Contains(tok, ".") {
		t.Fatalf("the opaque API got a JWT: %s", tok)
	}
	if resp, body := callAPI(t, http.MethodGet, g.AppURL+"/opaque/stuff", "Bearer "+tok, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("opaque token: %d %s", resp.StatusCode, body)
	}
	if got := up.lastRequest().Header.Get("X-Forwarded-User"); got != "backend@clients" {
		t.Errorf("upstream X-Forwarded-User %q", got)
	}
	// The opaque token is not accepted where a JWT API is expected.
	if resp, _ := callAPI(t, http.MethodGet, g.AppURL+"/jwt/items", "Bearer "+tok, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("opaque token at the JWT route: %d, want 401", resp.StatusCode)
	}
	if resp, _ := PostForm(t, g.URL("/oauth/revoke"), url.Values{"token": {tok}}, "backend", "backend-secret"); resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	// cache_ttl is 1s: the revoked token must be refused within that bound.
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, _ := callAPI(t, http.MethodGet, g.AppURL+"/opaque/stuff", "Bearer "+tok, "")
		if resp.StatusCode == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the revoked token still passes after 5 s (cache_ttl 1s): %d", resp.StatusCode)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestGuardRequiresDPoPProofsForBoundTokens(t *testing.T) {
	up := newRecordingUpstream(t)
	g := StartGatewayVars(t, guardCaddyfile, map[string]string{"Upstream": up.Listener.Addr().String()})
	waitAppListeningAt(t, g.AppURL+"/.well-known/oauth-protected-resource")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	proof, err := dpop.NewProof(key, http.MethodPost, g.URL("/oauth/token"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	resp := clientCredentials(t, g, "backend", "backend-secret", "https://api.example.com", "read:items", http.Header{"Dpop": {proof}})
	if resp["token_type"] != "DPoP" {
		t.Fatalf("token_type %v, want DPoP for a request with a DPoP proof", resp["token_type"])
	}
	tok := resp["access_token"].(string)
	target := g.AppURL + "/dpop/items"
	good, _ := dpop.NewProof(key, http.MethodGet, target, tok, "")
	if resp, body := callAPI(t, http.MethodGet, target, "DPoP "+tok, good); resp.StatusCode != http.StatusOK {
		t.Fatalf("DPoP-bound token with its proof: %d %s", resp.StatusCode, body)
	}
	// Behind handle_path the upstream sees /items; the proof names the URL
	// the client called.
	rewritten := g.AppURL + "/v1/items"
	viaPrefix, _ := dpop.NewProof(key, http.MethodGet, rewritten, tok, "")
	if resp, body := callAPI(t, http.MethodGet, rewritten, "DPoP "+tok, viaPrefix); resp.StatusCode != http.StatusOK {
		t.Errorf("DPoP behind handle_path: %d %s", resp.StatusCode, body)
	} else if p := up.lastRequest().URL.Path; p != "/items" {
		t.Errorf("upstream path %q, want the stripped /items", p)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	wrongKey, _ := dpop.NewProof(other, http.MethodGet, target, tok, "")
	wrongURL, _ := dpop.NewProof(key, http.MethodGet, g.AppURL+"/elsewhere", tok, "")
	fresh, _ := dpop.NewProof(key, http.MethodGet, g.AppURL+"/jwt/items", tok, "")
	for name, c := range map[string]struct{ path, auth, proof string }{
		"replayed proof":        {"/dpop/items", "DPoP " + tok, good},
		"proof by another key":  {"/dpop/items", "DPoP " + tok, wrongKey},
		"proof for another URL": {"/dpop/items", "DPoP " + tok, wrongURL},
		"no proof":              {"/dpop/items", "DPoP " + tok, ""},
		"bound token as Bearer": {"/jwt/items", "Bearer " + tok, fresh},
	} {
		if resp, _ := callAPI(t, http.MethodGet, g.AppURL+c.path, c.auth, c.proof); resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want refused", name, resp.StatusCode)
		}
	}
	plain := clientCredentials(t, g, "backend", "backend-secret", "https://api.example.com", "read:items", nil)["access_token"].(string)
	if resp, _ := callAPI(t, http.MethodGet, target, "Bearer "+plain, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("require_dpop route took a Bearer token: %d", resp.StatusCode)
	}
}

// waitAppListeningAt polls target until the site answers at all.
func waitAppListeningAt(t *testing.T, target string) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(readyTimeout)
	for {
		resp, err := c.Get(target)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not answer: %v", target, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
