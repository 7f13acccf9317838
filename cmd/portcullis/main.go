// Command portcullis is Caddy with the Portcullis plugin and Caddy's standard
// modules compiled in: the same binary xcaddy builds, for tests and for users
// who prefer `go build` to xcaddy.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/portcullis-gw/portcullis/caddymodule"
)

func main() {
	caddycmd.Main()
}
