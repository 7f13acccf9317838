package proxy_test

import (
	"net/http"
	"testing"
)

// TestUserInfoClaimsFillTheSession: a provider that puts profile, email
// and groups only in UserInfo (OIDC Core §5.4) still gives the upstream
// its identity headers; the signed ID token wins where both have a claim.
func TestUserInfoClaimsFillTheSession(t *testing.T) {
	e := newEnv(t, withOP(func(op *fakeOP) {
		op.claims = map[string]any{"sub": "alice", "email": "alice@example.com"}
		op.userinfo = map[string]any{
			"sub": "alice", "email": "mallory@example.com", "groups": []any{"admins"}, "preferred_username": "alice",
		}
	}))
	b := e.browser()
	b.mustLogin("/app")
	seen := upstreamOf(t, b.get("/app"))
	want := map[string]string{
		"X-Forwarded-User": "alice", "X-Forwarded-Email": "alice@example.com",
		"X-Forwarded-Groups": "admins", "X-Forwarded-Preferred-Username": "alice",
	}
	for h, v := range want {
		if got := seen.Header.Get(h); got != v {
			t.Errorf("upstream %s = %q, want %q", h, got, v)
		}
	}
}

// TestUserInfoForAnotherSubjectFailsTheSignIn is OIDC Core §5.3.2: a
// UserInfo response whose sub is not the ID token's MUST NOT be used — a
// sign-in that would mix two users' claims is refused.
func TestUserInfoForAnotherSubjectFailsTheSignIn(t *testing.T) {
	e := newEnv(t, withOP(func(op *fakeOP) {
		op.userinfo = map[string]any{"sub": "mallory", "groups": []any{"admins"}}
	}))
	resp := e.browser().login("/app")
	e.expectLoginFailed(t, resp, http.StatusBadRequest, "invalid_id_token")
}

// TestUserInfoOutageKeepsTheIDTokenClaims: an unavailable UserInfo endpoint
// costs only its claims, not the sign-in.
func TestUserInfoOutageKeepsTheIDTokenClaims(t *testing.T) {
	e := newEnv(t, withOP(func(op *fakeOP) {
		op.userinfo = map[string]any{"sub": "alice"}
		op.userinfoStatus = http.StatusServiceUnavailable
	}))
	b := e.browser()
	b.mustLogin("/app")
	if got := upstreamOf(t, b.get("/app")).Header.Get("X-Forwarded-Email"); got != "alice@example.com" {
		t.Errorf("X-Forwarded-Email = %q, want the ID token's", got)
	}
}
