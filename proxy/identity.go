package proxy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/portcullis-gw/portcullis/session"
)

// Identity is the signed-in user as the upstream and Caddy placeholders see
// them.
type Identity struct {
	// Subject is the provider's sub claim.
	Subject string
	// Claims are the ID token's claims.
	Claims map[string]any

	accessToken, idToken string
}

func newIdentity(s *session.Data) *Identity {
	return &Identity{Subject: s.Subject, Claims: s.Claims, accessToken: s.AccessToken, idToken: s.IDToken}
}

// ClaimString renders a claim for a header or placeholder: strings as they
// are, lists joined with commas, other values in their JSON-ish form.
// Missing claims are "".
func (id *Identity) ClaimString(name string) string {
	if name == "sub" {
		return id.Subject
	}
	v, ok := id.Claims[name]
	if !ok || v == nil {
		return ""
	}
	switch t := v.(type) {
	case string:
		return sanitizeHeader(t)
	case []any:
		parts := make([]string, 0, len(t))
		for _, e := range t {
			parts = append(parts, sanitizeHeader(elementString(e)))
		}
		return strings.Join(parts, ",")
	case []string:
		return sanitizeHeader(strings.Join(t, ","))
	case float64:
		if t == float64(int64(t)) {
			return fmt.Sprint(int64(t))
		}
		return fmt.Sprint(t)
	default:
		return sanitizeHeader(fmt.Sprint(t))
	}
}

// elementString is fmt.Sprint(e) without its copy for the usual case, a
// string (group names): it runs on every request.
func elementString(e any) string {
	if s, ok := e.(string); ok {
		return s
	}
	return fmt.Sprint(e)
}

// sanitizeHeader drops control characters, so a claim cannot smuggle a
// header line break upstream.
func sanitizeHeader(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// claimValues returns a claim as a list of strings (a string claim is a
// one-element list).
func (id *Identity) claimValues(name string) []string {
	switch t := id.Claims[name].(type) {
	case string:
		return []string{t}
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			out = append(out, elementString(e))
		}
		return out
	case []string:
		return t
	case nil:
		return nil
	default:
		return []string{fmt.Sprint(t)}
	}
}

// AccessToken returns the provider's access token for the session.
func (id *Identity) AccessToken() string { return id.accessToken }

// Policy decides who may pass once signed in. Emails and domains admit a
// user when either matches; groups and claims must then match too. An empty
// policy admits every signed-in user.
type Policy struct {
	// AllowEmails are admitted addresses (case-insensitive).
	AllowEmails []string
	// AllowDomains admit verified email addresses of these domains.
	AllowDomains []string
	// AllowGroups admit members of any of these groups (groups claim).
	AllowGroups []string
	// RequireClaims: each claim must have (or contain) one of the values.
	RequireClaims map[string][]string
}

// Deny returns why id may not pass, or "" when it may.
func (p Policy) Deny(id *Identity) string {
	if len(p.AllowEmails) > 0 || len(p.AllowDomains) > 0 {
		email := strings.ToLower(id.ClaimString("email"))
		verified, hasVerified := id.Claims["email_verified"].(bool)
		ok := email != "" && slices.ContainsFunc(p.AllowEmails, func(e string) bool { return strings.EqualFold(e, email) })
		if !ok && email != "" && (!hasVerified || verified) {
			if at := strings.LastIndexByte(email, '@'); at >= 0 {
				domain := email[at+1:]
				ok = slices.ContainsFunc(p.AllowDomains, func(d string) bool { return strings.EqualFold(strings.TrimPrefix(d, "@"), domain) })
			}
		}
		if !ok {
			return "email not allowed"
		}
	}
	if len(p.AllowGroups) > 0 {
		groups := id.claimValues("groups")
		if !slices.ContainsFunc(p.AllowGroups, func(g string) bool { return slices.Contains(groups, g) }) {
			return "not in an allowed group"
		}
	}
	for claim, values := range p.RequireClaims {
		have := id.claimValues(claim)
		if !slices.ContainsFunc(values, func(v string) bool { return slices.Contains(have, v) }) {
			return "claim " + claim + " does not match"
		}
	}
	return ""
}
