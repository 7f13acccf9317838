// Package portcullis is the plugin's import path for xcaddy: importing it
// registers every Portcullis module with Caddy.
//
//	xcaddy build --with github.com/portcullis-gw/portcullis
package portcullis

import (
	// Registers the portcullis app, the oauth_server handler, the
	// Caddyfile directives and the admin API routes.
	_ "github.com/portcullis-gw/portcullis/caddymodule"
)
