package proxy_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/proxy"
)

func TestGuardIntrospectsOpaqueTokens(t *testing.T) {
	e := newGuardEnv(t)
	now := e.clock.Now()
	cases := []struct {
		name  string
		edit  func(info map[string]any)
		allow bool
	}{
		{"active access token", nil, true},
		{"aud list with ours", func(i map[string]any) { i["aud"] = []any{"https://other.example", apiAudience} }, true},
		{"no exp: kept CacheTTL", func(i map[string]any) { delete(i, "exp") }, true},
		{"refresh token", func(i map[string]any) { i["token_type"] = "refresh_token" }, false},
		{"another audience", func(i map[string]any) { i["aud"] = "https://other.example" }, false},
		{"no audience", func(i map[string]any) { delete(i, "aud") }, false},
		{"another issuer", func(i map[string]any) { i["iss"] = "https://evil.example" }, false},
		{"not valid yet", func(i map[string]any) { i["nbf"] = now.Add(time.Minute).Unix() }, false},
		{"exp not a number", func(i map[string]any) { i["exp"] = "tomorrow" }, false},
		{"unsupported confirmation", func(i map[string]any) { i["cnf"] = map[string]any{"jwk": "x"} }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.bearer("/", e.iss.issueOpaque(tc.edit))
			if !tc.allow {
				expectRefused(t, resp, http.StatusUnauthorized, "Bearer", "invalid_token")
				return
			}
			seen := expectAllowed(t, resp)
			if got := seen.Header.Get("X-Forwarded-User"); got != "alice" {
				t.Errorf("X-Forwarded-User %q", got)
			}
		})
	}
	t.Run("unknown token", func(t *testing.T) {
		expectRefused(t, e.bearer("/", "op_never_issued"), http.StatusUnauthorized, "Bearer", "invalid_token")
	})
	t.Run("wrong client credentials", func(t *testing.T) {
		e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) { c.ClientSecret = "wrong" }))
		expectRefused(t, e.bearer("/", e.iss.issueOpaque(nil)), http.StatusServiceUnavailable, "Bearer", "temporarily_unavailable")
	})
}

func TestGuardRevokedOpaqueTokenIsRefusedWithinTheCacheTTL(t *testing.T) {
	e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) { c.CacheTTL = 30 * time.Second }))
	tok := e.iss.issueOpaque(nil)
	expectAllowed(t, e.bearer("/", tok))
	e.iss.revoke(tok)
	e.clock.Advance(29 * time.Second)
	expectAllowed(t, e.bearer("/", tok)) // the cached answer, as documented
	e.clock.Advance(time.Second)
	expectRefused(t, e.bearer("/", tok), http.StatusUnauthorized, "Bearer", "invalid_token")
	if n := e.iss.introspections.Load(); n != 2 {
		t.Errorf("%d introspections, want 2", n)
	}
}

func TestGuardIntrospectionAnswerNeverOutlivesTheTokensExp(t *testing.T) {
	e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) { c.CacheTTL = time.Hour }))
	tok := e.iss.issueOpaque(func(i map[string]any) { i["exp"] = e.clock.Now().Add(20 * time.Second).Unix() })
	expectAllowed(t, e.bearer("/", tok))
	expectAllowed(t, e.bearer("/", tok))
	e.clock.Advance(20 * time.Second)
	expectRefused(t, e.bearer("/", tok), http.StatusUnauthorized, "Bearer", "invalid_token")
	if n := e.iss.introspections.Load(); n != 2 {
		t.Errorf("%d introspections, want 2 (cached until exp, then asked again)", n)
	}
}

func TestGuardCachesInactiveAnswersBriefly(t *testing.T) {
	e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) { c.NegativeTTL = 5 * time.Second }))
	for range 3 {
		expectRefused(t, e.bearer("/", "op_unknown"), http.StatusUnauthorized, "Bearer", "invalid_token")
	}
	if n := e.iss.introspections.Load(); n != 1 {
		t.Errorf("%d introspections for three requests, want 1", n)
	}
	e.clock.Advance(5 * time.Second)
	expectRefused(t, e.bearer("/", "op_unknown"), http.StatusUnauthorized, "Bearer", "invalid_token")
	if n := e.iss.introspections.Load(); n != 2 {
		t.Errorf("%d introspections after NegativeTTL, want 2", n)
	}
}

func TestGuardConcurrentRequestsWithOneTokenIntrospectOnce(t *testing.T) {
	e := newGuardEnv(t)
	tok := e.iss.issueOpaque(nil)
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	e.iss.set(func(fi *fakeIssuer) { fi.gate, fi.entered = gate, entered })
	const n = 50
	var wg sync.WaitGroup
	statuses := make(chan int, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- e.bearer("/", tok).StatusCode
		}()
	}
	<-entered // one call is at the issuer, held; the others share it or find its answer
	close(gate)
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusOK {
			t.Errorf("status %d", s)
		}
	}
	if got := e.iss.introspections.Load(); got != 1 {
		t.Errorf("%d concurrent requests made %d introspections, want 1", n, got)
	}
}

func TestGuardIntrospectionFailureIs503AndNotCached(t *testing.T) {
	e := newGuardEnv(t)
	tok := e.iss.issueOpaque(nil)
	e.iss.IntrospectFail.Store(true)
	resp := e.bearer("/", tok)
	expectRefused(t, resp, http.StatusServiceUnavailable, "Bearer", "temporarily_unavailable")
	e.iss.IntrospectFail.Store(false)
	expectAllowed(t, e.bearer("/", tok))
}

func TestGuardUsesAnInProcessIntrospector(t *testing.T) {
	in := &staticIntrospector{answers: map[string]map[string]any{}}
	e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) {
		c.Introspector = in
		c.ClientID, c.ClientSecret = "", ""
		c.JWKSURI = c.Issuer + "/jwks"
	}))
	exp := e.clock.Now().Add(time.Hour).Unix() // int64, as an in-process answer has it
	in.answers["op_inproc"] = map[string]any{"active": true, "sub": "bob", "aud": apiAudience, "exp": exp, "scope": "read:items"}
	seen := expectAllowed(t, e.bearer("/", "op_inproc"))
	if got := seen.Header.Get("X-Forwarded-User"); got != "bob" {
		t.Errorf("X-Forwarded-User %q", got)
	}
	expectAllowed(t, e.bearer("/", "op_inproc"))
	if n, m := in.calls.Load(), e.iss.introspections.Load(); n != 1 || m != 0 {
		t.Errorf("%d in-process and %d HTTP introspections, want 1 and 0", n, m)
	}
	if n := e.iss.discoveryHits.Load(); n != 0 {
		t.Errorf("%d discovery requests, want none", n)
	}
}

func TestGuardWithoutIntrospectionRefusesOpaqueTokens(t *testing.T) {
	e := newGuardEnv(t, withGuardConfig(func(c *proxy.GuardConfig) { c.ClientID, c.ClientSecret = "", "" }))
	expectRefused(t, e.bearer("/", e.iss.issueOpaque(nil)), http.StatusUnauthorized, "Bearer", "invalid_token")
	if n := e.iss.introspections.Load(); n != 0 {
		t.Errorf("%d introspections, want none", n)
	}
}
