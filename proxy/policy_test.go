package proxy_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/proxy"
)

func TestPolicyDenialIs403NotARedirect(t *testing.T) {
	cases := []struct {
		name   string
		policy proxy.Policy
	}{
		{"allow_emails", proxy.Policy{AllowEmails: []string{"bob@example.com"}}},
		{"allow_domains", proxy.Policy{AllowDomains: []string{"corp.example"}}},
		{"allow_groups", proxy.Policy{AllowGroups: []string{"finance"}}},
		{"require_claim", proxy.Policy{RequireClaims: map[string][]string{"department": {"sales"}}}},
		{"allowed email but not in group", proxy.Policy{AllowEmails: []string{"alice@example.com"}, AllowGroups: []string{"finance"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, withConfig(func(c *proxy.Config) { c.Policy = tc.policy }))
			b := e.browser()
			// The callback itself succeeds: the policy is applied to the
			// page, so a refused user sees why instead of looping.
			b.mustLogin("/secret")
			resp := b.get("/secret")
			text := body(resp)
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Location") != "" {
				t.Fatalf("status %d Location %q, want a 403 page", resp.StatusCode, resp.Header.Get("Location"))
			}
			if !strings.Contains(text, "alice@example.com") || !strings.Contains(text, `href="/oauth2/logout"`) {
				t.Fatalf("403 page does not say who is signed in or offer to sign out: %s", text)
			}
			for _, c := range resp.Cookies() {
				if isLoginCookie(c.Name) {
					t.Fatal("a policy denial started a new login")
				}
			}
			r := newRequest(http.MethodGet, "/secret", nil)
			r.Header.Set("Accept", "application/json")
			if resp := b.do(r); resp.StatusCode != http.StatusForbidden {
				t.Fatalf("API request: status %d, want 403", resp.StatusCode)
			}
			if n := e.metrics.get(func(m *countingMetrics) int { return m.started }); n != 1 {
				t.Fatalf("%d logins started; a denial must not start another", n)
			}
		})
	}
}

func TestPolicyAdmitsMatchingUsers(t *testing.T) {
	e := newEnv(t, withConfig(func(c *proxy.Config) {
		c.Policy = proxy.Policy{AllowDomains: []string{"example.com"}, AllowGroups: []string{"dev"},
			RequireClaims: map[string][]string{"preferred_username": {"alice", "bob"}}}
	}))
	b := e.browser()
	b.mustLogin("/")
	upstreamOf(t, b.get("/"))
}

func TestPolicyDeny(t *testing.T) {
	alice := func(extra map[string]any) *proxy.Identity {
		claims := map[string]any{"email": "alice@example.com", "email_verified": true, "groups": []any{"dev", "ops"}, "level": float64(3)}
		for k, v := range extra {
			if v == nil {
				delete(claims, k)
			} else {
				claims[k] = v
			}
		}
		return &proxy.Identity{Subject: "alice", Claims: claims}
	}
	cases := []struct {
		name   string
		policy proxy.Policy
		id     *proxy.Identity
		allow  bool
	}{
		{"empty policy admits everyone signed in", proxy.Policy{}, alice(nil), true},
		{"email listed", proxy.Policy{AllowEmails: []string{"alice@example.com"}}, alice(nil), true},
		{"email compared case-insensitively", proxy.Policy{AllowEmails: []string{"Alice@Example.COM"}}, alice(nil), true},
		{"email not listed", proxy.Policy{AllowEmails: []string{"bob@example.com"}}, alice(nil), false},
		{"no email claim", proxy.Policy{AllowEmails: []string{"alice@example.com"}}, alice(map[string]any{"email": nil}), false},
		{"domain listed", proxy.Policy{AllowDomains: []string{"example.com"}}, alice(nil), true},
		{"domain listed with @", proxy.Policy{AllowDomains: []string{"@example.com"}}, alice(nil), true},
		{"domain as a suffix of another", proxy.Policy{AllowDomains: []string{"example.com"}}, alice(map[string]any{"email": "alice@evil-example.com"}), false},
		{"domain as a prefix of another", proxy.Policy{AllowDomains: []string{"example.com"}}, alice(map[string]any{"email": "alice@example.com.evil.example"}), false},
		{"subdomain is another domain", proxy.Policy{AllowDomains: []string{"example.com"}}, alice(map[string]any{"email": "alice@sub.example.com"}), false},
		{"domain in the local part", proxy.Policy{AllowDomains: []string{"example.com"}}, alice(map[string]any{"email": "alice@example.com@evil.example"}), false},
		{"unverified email of an allowed domain", proxy.Policy{AllowDomains: []string{"example.com"}}, alice(map[string]any{"email_verified": false}), false},
		{"group listed", proxy.Policy{AllowGroups: []string{"finance", "ops"}}, alice(nil), true},
		{"group not listed", proxy.Policy{AllowGroups: []string{"finance"}}, alice(nil), false},
		{"group as a single string", proxy.Policy{AllowGroups: []string{"dev"}}, alice(map[string]any{"groups": "dev"}), true},
		{"group name is not a substring match", proxy.Policy{AllowGroups: []string{"de"}}, alice(nil), false},
		{"no groups claim", proxy.Policy{AllowGroups: []string{"dev"}}, alice(map[string]any{"groups": nil}), false},
		{"required claim matches", proxy.Policy{RequireClaims: map[string][]string{"level": {"3"}}}, alice(nil), true},
		{"required claim in a list", proxy.Policy{RequireClaims: map[string][]string{"groups": {"ops"}}}, alice(nil), true},
		{"required claim differs", proxy.Policy{RequireClaims: map[string][]string{"level": {"4"}}}, alice(nil), false},
		{"required claim missing", proxy.Policy{RequireClaims: map[string][]string{"department": {"sales"}}}, alice(nil), false},
		{"every required claim must match", proxy.Policy{RequireClaims: map[string][]string{"level": {"3"}, "department": {"sales"}}}, alice(nil), false},
		{"email allowed but group missing", proxy.Policy{AllowEmails: []string{"alice@example.com"}, AllowGroups: []string{"finance"}}, alice(nil), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reason := tc.policy.Deny(tc.id)
			if allowed := reason == ""; allowed != tc.allow {
				t.Fatalf("allowed = %v (reason %q), want %v", allowed, reason, tc.allow)
			}
		})
	}
}

func TestIdentityClaimString(t *testing.T) {
	id := &proxy.Identity{Subject: "alice", Claims: map[string]any{
		"sub":    "ignored",
		"groups": []any{"a", "b"},
		"roles":  []string{"x", "y"},
		"n":      float64(42),
		"f":      1.5,
		"ok":     true,
		"evil":   "a\r\nb",
		"null":   nil,
	}}
	cases := map[string]string{
		"sub": "alice", "groups": "a,b", "roles": "x,y", "n": "42", "f": "1.5", "ok": "true", "evil": "ab", "null": "", "missing": "",
	}
	for claim, want := range cases {
		if got := id.ClaimString(claim); got != want {
			t.Errorf("ClaimString(%q) = %q, want %q", claim, got, want)
		}
	}
}
