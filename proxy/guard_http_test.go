package proxy_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/portcullis-gw/portcullis/proxy"
)

func TestGuardMalformedAuthorizationIs400NotA500(t *testing.T) {
	e := newGuardEnv(t)
	good := e.iss.mint(jwtSpec{})
	cases := []struct {
		name    string
		headers []string // Authorization header values
	}{
		{"Bearer without a token", []string{"Bearer"}},
		{"Bearer and a space", []string{"Bearer "}},
		{"two spaces", []string{"Bearer  " + good}},
		{"a space inside the token", []string{"Bearer abc def"}},
		{"non-ASCII token", []string{"Bearer tökén"}},
		{"control character", []string{"Bearer abc\x01def"}},
		{"quotes", []string{`Bearer "` + good + `"`}},
		{"padding only", []string{"Bearer ==="}},
		{"padding in the middle", []string{"Bearer ab=cd"}},
		{"64 KiB token", []string{"Bearer " + strings.Repeat("a", 64<<10)}},
		{"64 KiB of another scheme", []string{"Basic " + strings.Repeat("a", 64<<10)}},
		{"two Authorization headers", []string{"Bearer " + good, "Bearer " + good}},
		{"DPoP without a token", []string{"DPoP"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := apiRequest(http.MethodGet, "/items", "")
			r.Header["Authorization"] = tc.headers
			scheme := "Bearer"
			if strings.HasPrefix(tc.headers[0], "DPoP") {
				scheme = "DPoP"
			}
			expectRefused(t, e.do(r), http.StatusBadRequest, scheme, "invalid_request")
		})
	}
	if n := e.counts.refusedCount("invalid_request"); n != len(cases) {
		t.Errorf("%d invalid_request refusals counted, want %d", n, len(cases))
	}
}

func TestGuardWithoutTokenAnswers401WithBothChallengesAndNoError(t *testing.T) {
	e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) { c.ServeMetadata = true }))
	for _, auth := range []string{"", "Basic YWxpY2U6c2VjcmV0", "Negotiate abc"} {
		t.Run("Authorization "+auth, func(t *testing.T) {
			resp := e.do(apiRequest(http.MethodGet, "/items", auth))
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
			bearer, dpop := challengeOf(resp, "Bearer"), challengeOf(resp, "DPoP")
			// RFC 6750 §3.1: without authentication information, no error code.
			if bearer == "" || dpop == "" || strings.Contains(bearer, "error=") || strings.Contains(dpop, "error=") {
				t.Errorf("challenges %q", resp.Header.Values("WWW-Authenticate"))
			}
			if want := `resource_metadata="` + apiOrigin + `/.well-known/oauth-protected-resource"`; !strings.Contains(bearer, want) {
				t.Errorf("Bearer challenge %q does not name the metadata (%s)", bearer, want)
			}
			if !strings.Contains(dpop, `algs="ES256`) {
				t.Errorf("DPoP challenge %q does not list algs", dpop)
			}
		})
	}
}

func TestGuardQueryStringToken(t *testing.T) {
	cases := []struct {
		name   string
		allow  bool
		target func(tok string) string
		header bool
		status int
	}{
		{"refused by default", false, func(tok string) string { return "/items?access_token=" + tok }, false, http.StatusBadRequest},
		{"refused by default, percent-encoded name", false, func(tok string) string { return "/items?access%5Ftoken=" + tok }, false, http.StatusBadRequest},
		{"refused by default, even beside a header", false, func(tok string) string { return "/items?access_token=" + tok }, true, http.StatusBadRequest},
		{"accepted when enabled", true, func(tok string) string { return "/items?a=1&access_token=" + tok }, false, http.StatusOK},
		{"both header and query", true, func(tok string) string { return "/items?access_token=" + tok }, true, http.StatusBadRequest},
		{"repeated parameter", true, func(tok string) string { return "/items?access_token=" + tok + "&access_token=" + tok }, false, http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) { c.AllowQueryToken = tc.allow }))
			tok := e.iss.mint(jwtSpec{})
			auth := ""
			if tc.header {
				auth = "Bearer " + tok
			}
			resp := e.do(apiRequest(http.MethodGet, tc.target(tok), auth))
			if tc.status != http.StatusOK {
				expectRefused(t, resp, tc.status, "Bearer", "invalid_request")
				return
			}
			q := resp.Header.Get("X-Upstream-Query")
			expectAllowed(t, resp)
			if strings.Contains(q, "access_token") || q != "a=1" {
				t.Errorf("upstream query %q: the token was passed on", q)
			}
		})
	}
}

func TestGuardStripsSpoofedIdentityHeadersAndForwardsOnlyWhenAsked(t *testing.T) {
	cases := []struct {
		name       string
		edit       func(c *proxy.GuardConfig)
		want       map[string]string // upstream headers ("" = absent)
		forwardsAZ bool
	}{
		{"defaults", func(c *proxy.GuardConfig) {}, map[string]string{
			"X-Forwarded-User": "alice", "X-Forwarded-Email": "", "X-Forwarded-Groups": "", "X-Forwarded-Scope": "read:items write:items",
		}, false},
		{"custom headers", func(c *proxy.GuardConfig) {
			c.Headers = map[string]string{"X-Api-Tenant": "tenant", "X-Api-Groups": "groups"}
		}, map[string]string{
			"X-Api-Tenant": "acme", "X-Api-Groups": "admins,dev", "X-Forwarded-User": "", "X-Forwarded-Email": "",
		}, false},
		{"no headers", func(c *proxy.GuardConfig) { c.Headers = map[string]string{} }, map[string]string{
			"X-Forwarded-User": "", "X-Forwarded-Scope": "",
		}, false},
		{"forward Authorization", func(c *proxy.GuardConfig) { c.ForwardAuthorization = true }, map[string]string{
			"X-Forwarded-User": "alice",
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newGuardEnv(t, withGuardConfig(tc.edit))
			tok := e.iss.mint(jwtSpec{edit: func(c map[string]any) {
				c["tenant"] = "acme"
				c["groups"] = []any{"admins", "dev"}
			}})
			r := apiRequest(http.MethodGet, "/items", "Bearer "+tok)
			// The default names (of both faces) are always stripped, the
			// configured ones too.
			spoofed := []string{"X-Forwarded-User", "X_Forwarded_User", "x-forwarded-user", "X-FORWARDED-USER", "X-Forwarded-Email", "X-Forwarded-Groups", "X-Forwarded-Scope"}
			for h := range e.cfg.Headers {
				spoofed = append(spoofed, h)
			}
			for _, h := range spoofed {
				r.Header[h] = []string{"spoofed"}
			}
			r.Header.Set("X-Request-Id", "req-1")
			seen := expectAllowed(t, e.do(r))
			if got := seen.Header.Get("X-Request-Id"); got != "req-1" {
				t.Errorf("an unrelated header was dropped: X-Request-Id %q", got)
			}
			for h, v := range tc.want {
				if got := seen.Header.Get(h); got != v {
					t.Errorf("upstream %s = %q, want %q", h, got, v)
				}
			}
			for name, v := range seen.Header {
				if strings.Contains(strings.Join(v, ""), "spoofed") {
					t.Errorf("the client's %s reached the upstream", name)
				}
			}
			if got := seen.Header.Get("Authorization"); (got == "Bearer "+tok) != tc.forwardsAZ {
				t.Errorf("upstream Authorization %q, forwarded %v", got, tc.forwardsAZ)
			}
		})
	}
}

func TestGuardServesProtectedResourceMetadata(t *testing.T) {
	cases := []struct {
		name     string
		edit     func(c *proxy.GuardConfig)
		path     string
		status   int
		resource string
		metadata string // resource_metadata of a 401
	}{
		{"default resource is the origin", func(c *proxy.GuardConfig) {}, "/.well-known/oauth-protected-resource",
			http.StatusOK, apiOrigin, apiOrigin + "/.well-known/oauth-protected-resource"},
		{"default resource with a path", func(c *proxy.GuardConfig) {}, "/.well-known/oauth-protected-resource/v1",
			http.StatusOK, apiOrigin + "/v1", apiOrigin + "/.well-known/oauth-protected-resource"},
		{"configured resource with a path", func(c *proxy.GuardConfig) { c.Resource = "https://api.example.com/v1" },
			"/.well-known/oauth-protected-resource/v1", http.StatusOK, "https://api.example.com/v1",
			"https://api.example.com/.well-known/oauth-protected-resource/v1"},
		{"configured resource, another path", func(c *proxy.GuardConfig) { c.Resource = "https://api.example.com/v1" },
			"/.well-known/oauth-protected-resource", http.StatusNotFound, "",
			"https://api.example.com/.well-known/oauth-protected-resource/v1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) {
				c.ServeMetadata, c.Scopes, c.ResourceName = true, []string{"read:items"}, "Items API"
				tc.edit(c)
			}))
			resp := e.do(apiRequest(http.MethodGet, tc.path, ""))
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body(resp))
			}
			if tc.status == http.StatusOK {
				var doc map[string]any
				if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
					t.Fatal(err)
				}
				if doc["resource"] != tc.resource || doc["resource_name"] != "Items API" {
					t.Errorf("document %v, want resource %q", doc, tc.resource)
				}
				if as, _ := doc["authorization_servers"].([]any); len(as) != 1 || as[0] != e.iss.issuer {
					t.Errorf("authorization_servers %v", doc["authorization_servers"])
				}
				if sc, _ := doc["scopes_supported"].([]any); len(sc) != 1 || sc[0] != "read:items" {
					t.Errorf("scopes_supported %v", doc["scopes_supported"])
				}
				if bm, _ := doc["bearer_methods_supported"].([]any); len(bm) != 1 || bm[0] != "header" {
					t.Errorf("bearer_methods_supported %v", doc["bearer_methods_supported"])
				}
			}
			refused := e.do(apiRequest(http.MethodGet, "/items", ""))
			if ch := challengeOf(refused, "Bearer"); !strings.Contains(ch, `resource_metadata="`+tc.metadata+`"`) {
				t.Errorf("401 challenge %q, want resource_metadata %q", ch, tc.metadata)
			}
		})
	}
	t.Run("POST is not allowed", func(t *testing.T) {
		e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) { c.ServeMetadata = true }))
		if resp := e.do(apiRequest(http.MethodPost, "/.well-known/oauth-protected-resource", "")); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("status %d, want 405", resp.StatusCode)
		}
	})
	t.Run("not served unless enabled", func(t *testing.T) {
		e := newGuardEnv(t)
		resp := e.do(apiRequest(http.MethodGet, "/.well-known/oauth-protected-resource", ""))
		if resp.StatusCode != http.StatusUnauthorized || strings.Contains(challengeOf(resp, "Bearer"), "resource_metadata") {
			t.Errorf("status %d challenge %q", resp.StatusCode, challengeOf(resp, "Bearer"))
		}
	})
}

func TestGuardIssuerDownAtStartThenUp(t *testing.T) {
	e := newGuardEnv(t, withIssuer(func(fi *fakeIssuer) { fi.Down.Store(true) }), withoutWaiting())
	tok := e.iss.mint(jwtSpec{})
	resp := e.bearer("/items", tok)
	expectRefused(t, resp, http.StatusServiceUnavailable, "Bearer", "temporarily_unavailable")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	e.iss.Down.Store(false)
	e.waitReady() // the background retry
	expectAllowed(t, e.bearer("/items", tok))
}

func TestGuardFallsBackToRFC8414Metadata(t *testing.T) {
	e := newGuardEnv(t, withIssuer(func(fi *fakeIssuer) { fi.noOIDC = true }))
	expectAllowed(t, e.bearer("/", e.iss.mint(jwtSpec{})))
	expectAllowed(t, e.bearer("/", e.iss.issueOpaque(nil)))
}

func TestGuardRefusesMetadataForAnotherIssuer(t *testing.T) {
	e := newGuardEnv(t, withIssuer(func(fi *fakeIssuer) { fi.meta["issuer"] = "https://evil.example" }), withoutWaiting())
	expectRefused(t, e.bearer("/", e.iss.mint(jwtSpec{})), http.StatusServiceUnavailable, "Bearer", "temporarily_unavailable")
}

func TestGuardSkipsDiscoveryWhenConfigured(t *testing.T) {
	e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) {
		c.JWKSURI = c.Issuer + "/jwks"
		c.IntrospectionEndpoint = c.Issuer + "/introspect"
	}))
	expectAllowed(t, e.bearer("/", e.iss.mint(jwtSpec{})))
	expectAllowed(t, e.bearer("/", e.iss.issueOpaque(nil)))
	if n := e.iss.discoveryHits.Load(); n != 0 {
		t.Errorf("%d discovery requests, want none", n)
	}
}

func TestGuardMetadataPathIsMatchedWhole(t *testing.T) {
	e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) { c.ServeMetadata = true }))
	u := &url.URL{Path: "/.well-known/oauth-protected-resourcex"}
	if resp := e.do(apiRequest(http.MethodGet, u.String(), "")); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status %d, want 401", resp.StatusCode)
	}
}

func TestGuardLogsNeverHoldTokensOrClaims(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) {
		c.Logger = zap.New(core)
		c.Scopes = []string{"admin"}
	}))
	const marker = "claim-marker-7f3a"
	mark := func(c map[string]any) { c["sub"], c["email"] = marker, marker+"@example.com" }
	now := e.clock.Now()
	tokens := []string{
		e.iss.mint(jwtSpec{edit: mark}), // lacks the scope
		e.iss.mint(jwtSpec{edit: func(c map[string]any) { mark(c); c["exp"] = now.Add(-time.Hour).Unix() }}),
		e.iss.mint(jwtSpec{edit: func(c map[string]any) { mark(c); c["aud"] = marker }}),
		e.iss.mint(jwtSpec{key: attackerKey, edit: mark}),
		e.iss.issueOpaque(func(i map[string]any) { i["sub"] = marker; i["scope"] = "admin" }),
		"op_unknown_" + marker,
	}
	for _, tok := range tokens {
		e.bearer("/", tok)
	}
	e.iss.IntrospectFail.Store(true)
	e.bearer("/", "op_failing_"+marker)
	if logs.Len() == 0 {
		t.Fatal("nothing was logged: the test proves nothing")
	}
	for _, entry := range logs.All() {
		line := fmt.Sprint(entry.Message, entry.ContextMap())
		for _, tok := range append(tokens, marker) {
			if strings.Contains(line, tok) {
				t.Errorf("log %q holds a token or claim value", line)
			}
		}
	}
}
