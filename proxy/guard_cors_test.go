package proxy_test

import (
	"net/http"
	"testing"
)

// TestGuardLetsCORSPreflightsThroughWithoutIdentity: a browser's preflight
// carries no credentials, so the guard passes it (the API answers the
// CORS question), stripping any identity header; an OPTIONS request that
// is not a preflight still needs a token.
func TestGuardLetsCORSPreflightsThroughWithoutIdentity(t *testing.T) {
	e := newGuardEnv(t)
	pre := apiRequest(http.MethodOptions, "/items", "")
	pre.Header.Set("Origin", "https://app.example")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	pre.Header.Set("X-Forwarded-User", "mallory")
	seen := expectAllowed(t, e.do(pre))
	if got := seen.Header.Get("X-Forwarded-User"); got != "" {
		t.Errorf("a preflight reached the upstream with X-Forwarded-User %q", got)
	}
	plain := apiRequest(http.MethodOptions, "/items", "")
	if resp := e.do(plain); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("OPTIONS without the preflight headers: status %d, want 401", resp.StatusCode)
	}
}
