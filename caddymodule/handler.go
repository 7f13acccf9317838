package caddymodule

import (
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/portcullis-gw/portcullis/flows"
)

func init() {
	caddy.RegisterModule(OAuthServer{})
}

// OAuthServer serves the embedded authorization server (the `portcullis`
// app) on a site: discovery, JWKS, authorize, login and consent pages,
// token, userinfo, introspection, revocation and logout. Requests for other
// paths go to the next handler.
type OAuthServer struct {
	server *flows.Server
}

// CaddyModule returns the Caddy module information.
func (OAuthServer) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.oauth_server", New: func() caddy.Module { return new(OAuthServer) }}
}

// Provision finds the portcullis app.
func (h *OAuthServer) Provision(ctx caddy.Context) error {
	appIface, err := ctx.App("portcullis")
	if err != nil {
		return fmt.Errorf("oauth_server: loading the portcullis app: %w", err)
	}
	h.server = appIface.(*App).Server()
	if h.server == nil {
		return fmt.Errorf("oauth_server: the portcullis app has no issuer; set `issuer https://auth.example.com` in the portcullis global option")
	}
	return nil
}

// ServeHTTP serves the authorization server's endpoints and passes other
// requests on.
func (h *OAuthServer) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if !h.server.Handles(r) {
		return next.ServeHTTP(w, r)
	}
	h.server.ServeHTTP(w, r)
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*OAuthServer)(nil)
	_ caddyhttp.MiddlewareHandler = (*OAuthServer)(nil)
)
