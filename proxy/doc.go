// Package proxy will hold the login gateway (oidc_login) and the API guard
// (bearer_auth) as plain http.Handler logic. They reach every provider, the
// embedded one included, through the protocol alone and never import flows.
// The gateway and the guard are built in their own issues; until then this
// package is intentionally empty.
package proxy
