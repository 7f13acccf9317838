package caddymodule

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("oidc_login", parseOIDCLogin)
	// An authentication directive: it runs where basic_auth would, before
	// request_header, respond, reverse_proxy and file_server.
	httpcaddyfile.RegisterDirectiveOrder("oidc_login", httpcaddyfile.After, "basic_auth")
}

// parseOIDCLogin sets up the login gateway:
//
//	oidc_login {
//		issuer <url>
//		client_id <id>
//		client_secret <secret>
//		scopes <scope...>
//		flow code|hybrid
//		no_pkce
//		par
//		jar
//		signing_key <pem file>
//		jwks_path <path>
//		identity_assertion [<Header-Name>]
//		identity_assertion_audience <aud>
//		redirect_path <path>
//		logout_path <path>
//		post_logout_redirect <url or path>
//		cookie_name <name>
//		cookie_secret <secret...>
//		insecure_cookies
//		session_store cookie|server
//		backchannel_logout_path <path>
//		session_lifetime <duration>
//		idle_timeout <duration>
//		header <Header-Name> <claim>
//		pass_access_token
//		pass_id_token [<Header-Name>]
//		allow_emails <email...>
//		allow_domains <domain...>
//		allow_groups <group...>
//		require_claim <claim> <value...>
//		skip <path pattern...>
//	}
func parseOIDCLogin(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	h.Next()
	if h.NextArg() {
		return nil, h.ArgErr()
	}
	m := new(OIDCLogin)
	d := h.Dispenser
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "issuer":
			err = oneArg(d, &m.Issuer)
		case "client_id":
			err = oneArg(d, &m.ClientID)
		case "client_secret":
			err = oneArg(d, &m.ClientSecret)
		case "scopes":
			m.Scopes, err = listArgs(d)
		case "flow":
			if err = oneArg(d, &m.Flow); err == nil && m.Flow != "code" && m.Flow != "hybrid" {
				err = d.Errf("flow %q is not supported; use code or hybrid", m.Flow)
			}
		case "no_pkce":
			m.DisablePKCE = true
			err = noArgs(d)
		case "par":
			err = boolArg(d, &m.UsePAR)
		case "jar":
			err = boolArg(d, &m.UseJAR)
		case "signing_key":
			err = oneArg(d, &m.SigningKey)
		case "jwks_path":
			err = pathArg(d, &m.JWKSPath)
		case "identity_assertion":
			m.AssertionHeader = "X-Portcullis-Assertion"
			if d.NextArg() {
				m.AssertionHeader = d.Val()
			}
			err = noArgs(d)
		case "identity_assertion_audience":
			err = oneArg(d, &m.AssertionAudience)
		case "redirect_path":
			err = pathArg(d, &m.RedirectPath)
		case "logout_path":
			err = pathArg(d, &m.LogoutPath)
		case "post_logout_redirect":
			err = oneArg(d, &m.PostLogoutRedirect)
		case "cookie_name":
			err = oneArg(d, &m.CookieName)
		case "cookie_secret":
			m.CookieSecrets, err = listArgs(d)
		case "insecure_cookies":
			m.InsecureCookies = true
			err = noArgs(d)
		case "session_store":
			if err = oneArg(d, &m.SessionStore); err == nil && m.SessionStore != "cookie" && m.SessionStore != "server" {
				err = d.Errf("session_store %q is not supported; use cookie or server", m.SessionStore)
			}
		case "backchannel_logout_path":
			err = pathArg(d, &m.BackchannelLogoutPath)
		case "session_lifetime":
			err = durationArg(d, &m.SessionLifetime)
		case "idle_timeout":
			err = durationArg(d, &m.IdleTimeout)
		case "header":
			err = headerClaimArg(d, &m.Headers)
		case "pass_access_token":
			err = boolArg(d, &m.PassAccessToken)
		case "pass_id_token":
			m.IDTokenHeader = "X-Forwarded-Id-Token"
			if d.NextArg() {
				m.IDTokenHeader = d.Val()
			}
			err = noArgs(d)
		case "allow_emails":
			m.AllowEmails, err = listArgs(d)
		case "allow_domains":
			m.AllowDomains, err = listArgs(d)
		case "allow_groups":
			m.AllowGroups, err = listArgs(d)
		case "require_claim":
			err = requireClaimArg(d, &m.RequireClaims)
		case "skip":
			var more []string
			more, err = listArgs(d)
			m.Skip = append(m.Skip, more...)
		default:
			err = d.Errf("unrecognized oidc_login option %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	if m.Issuer == "" || m.ClientID == "" {
		return nil, d.Err("oidc_login needs issuer and client_id")
	}
	return m, nil
}
