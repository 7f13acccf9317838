package flows

import (
	"fmt"
	"net/url"
	"strings"
)

// CheckRedirectURI decides whether raw may be registered as a redirect or
// post-logout redirect URI. RFC 9700 §2.1 and §4.1 and RFC 8252 allow
// three kinds, and nothing else:
//   - https URLs with a host;
//   - plain http on a loopback host, for native apps and development
//     (RFC 8252 §7.3, RFC 9700 §2.1.1);
//   - private-use schemes a native app can own (RFC 8252 §7.1), named by
//     reversed domain, so with a period: "com.example.app:/callback"
//     (§8.4: servers "MAY reject private-use URI schemes that don't
//     contain a period").
//
// Everything else is refused: javascript:, data:, vbscript:, file:,
// about:, blob: and the like would run or read something in the browser
// when used in a Location or a form action, and well-known schemes
// (mailto:, ftp:, ws:) cannot be owned by one app. The URI must also be
// absolute, without a fragment (RFC 6749 §3.1.2) or user information.
func CheckRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || !u.IsAbs() {
		return fmt.Errorf("redirect URI %q must be an absolute URI", raw)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("redirect URI %q must not contain a fragment", raw)
	}
	if u.User != nil {
		return fmt.Errorf("redirect URI %q must not contain user information", raw)
	}
	if strings.ContainsAny(raw, " \t\r\n\\<>\"") {
		return fmt.Errorf("redirect URI %q contains white space, a backslash, a quote or an angle bracket", raw)
	}
	// url.Parse gives the scheme in lower case.
	switch scheme := u.Scheme; {
	case scheme == "https" || scheme == "http":
		return checkWebURI(raw, u)
	case !strings.Contains(scheme, "."):
		return fmt.Errorf("redirect URI %q: scheme %q is not allowed; use https, http on a loopback host, "+
			"or a private-use scheme of a native app named by reversed domain (com.example.app:/callback)", raw, scheme)
	}
	return nil
}

// CheckEndpointURI decides whether raw may be a URL this server calls
// (back-channel logout, CIBA notifications): https, or http on a loopback
// host only.
func CheckEndpointURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		return fmt.Errorf("URI %q must be an absolute URI", raw)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") || u.User != nil {
		return fmt.Errorf("URI %q must not contain a fragment or user information", raw)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("URI %q must be an https URL", raw)
	}
	return checkWebURI(raw, u)
}

// checkWebURI checks an http(s) URI: a host, and plain http on loopback
// only.
func checkWebURI(raw string, u *url.URL) error {
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("redirect URI %q has no host", raw)
	}
	if u.Scheme == "http" && !isLoopbackHost(host) {
		return fmt.Errorf("redirect URI %q uses plain http on a non-loopback host; use https", raw)
	}
	return nil
}
