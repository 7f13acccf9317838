#!/usr/bin/env bash
# Build Caddy with the Portcullis plugin using xcaddy, and run or test it.
#
#   ./xcaddy.sh run     build ./caddy and run it on Caddyfile.example
#   ./xcaddy.sh build   build ./caddy only
#   ./xcaddy.sh test    run the whole test suite (what CI runs)
set -euo pipefail
cd "$(dirname "$0")"

export PATH="$PATH:$(go env GOPATH)/bin"

need_xcaddy() {
	if ! command -v xcaddy >/dev/null 2>&1; then
		echo "xcaddy not found: installing it with go install" >&2
		go install github.com/caddyserver/xcaddy/cmd/xcaddy@latest
	fi
}

build() {
	need_xcaddy
	# Pin Caddy to the version in go.mod so the binary is what the tests test.
	local caddy_version
	caddy_version=$(go list -m -f '{{.Version}}' github.com/caddyserver/caddy/v2)
	# This checkout is the plugin: pin it at v0.0.0 and replace that version
	# with the working tree (the module is not fetched from anywhere).
	xcaddy build "$caddy_version" \
		--with "$(go list -m)@v0.0.0=$PWD" \
		--output ./caddy
}

banner() {
	cat <<'MSG'

  Portcullis demo
  ---------------
  Demo app          http://localhost:8080  (behind the login gateway: sign in as alice / alice)
  Demo API          http://localhost:8081/items  (behind the API guard: a client-credentials token, see README)
  OpenID Provider   http://localhost:9000
  Discovery         http://localhost:9000/.well-known/openid-configuration
  Demo user         alice / alice
  Clients           demo-app (secret demo-app-secret), demo-spa (public, PKCE),
                    demo-backend (secret demo-backend-secret, client credentials),
                    demo-cli (public, device login), demo-legacy (secret demo-legacy-secret, password grant),
                    demo-ciba (secret demo-ciba-secret, CIBA: approve at http://localhost:9000/ciba)
  Try it            open http://localhost:9000/authorize?client_id=demo-spa&response_type=code&scope=openid%20profile&redirect_uri=http://localhost:3000/callback&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256
  Admin API         http://localhost:2019/portcullis/clients

MSG
}

case "${1:-run}" in
build)
	build
	;;
run)
	build
	banner
	exec ./caddy run --config Caddyfile.example --adapter caddyfile
	;;
test)
	exec bash tests/run.sh
	;;
*)
	echo "usage: $0 [run|build|test]" >&2
	exit 2
	;;
esac
