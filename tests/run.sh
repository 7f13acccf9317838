#!/usr/bin/env bash
# The whole test suite: what `./xcaddy.sh test` and CI run. It installs what
# it needs on a fresh machine (Node.js for the interop peers, Chromium for the
# browser tests) and runs every Go test, the end-to-end, interop and browser
# tests included.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "== installing Node.js (interop tests run certified npm peers)"
	as_root apt-get update -qq
	as_root apt-get install -y -qq nodejs npm
fi

if [ ! -x /usr/bin/chromium ]; then
	echo "== installing Chromium (browser tests drive it with playwright-core)"
	as_root apt-get update -qq
	as_root apt-get install -y -qq chromium
fi

echo "== npm ci (tests/interop)"
(cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)

echo "== npm ci (tests/browser)"
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

echo "== npm ci (tests/oidcprovider)"
(cd tests/oidcprovider && npm ci --no-audit --no-fund --loglevel=error)

echo "== go vet"
go vet ./...

echo "== staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

echo "== go test -race (store, flows, keys, session, proxy, dpop, caddymodule)"
go test -race -count=1 ./store/... ./flows/... ./keys/... ./session/... ./proxy/... ./dpop/... ./caddymodule/...

# The API guard's and DPoP's parsing and validation paths, fuzzed briefly on
# every run (their seed corpora also run in go test). Longer on demand:
#   go test -run '^$' -fuzz FuzzVerifyJWT -fuzztime 10m ./proxy/
echo "== go test -fuzz (brief: bearer/DPoP header parsing, JWT validation, DPoP proofs)"
# Budgets are execution counts, not durations: with a duration, Go 1.26's
# fuzz coordinator can report a spurious "context deadline exceeded" when
# the time runs out mid-execution (go.dev/issue/75804, fixed in Go 1.27).
# Each count is a few seconds' worth on a 2-core machine.
# PORTCULLIS_FUZZTIME (e.g. 30s or 100000x) overrides them all.
fuzz() { # target package default-count
	go test -run '^$' -fuzz "^$1\$" -fuzztime "${PORTCULLIS_FUZZTIME:-$3}" "$2"
}
fuzz FuzzParseAuthorization ./proxy/ 20000x
fuzz FuzzVerifyJWT ./proxy/ 1500x
fuzz FuzzGuardDPoPProof ./proxy/ 8000x
fuzz FuzzVerify ./dpop/ 15000x

echo "== go test ./... (unit, end-to-end with the real binary, interop)"
go test -count=1 -timeout 20m ./...
