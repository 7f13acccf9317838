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

# The fuzz targets, each fuzzed briefly on every run (their seed corpora
# also run in go test). Longer on demand:
#   go test -run '^$' -fuzz FuzzVerifyJWT -fuzztime 10m ./proxy/
#   tests/fuzz-long.sh   # every target, 10 minutes each
echo "== go test -fuzz (brief: every parser of outside input)"
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
# Every other parser of outside input: the authorization server's form
# endpoints, pages and the signed JWTs clients send, the session cookies,
# the Caddyfile directives and the admin API. tests/fuzz-long.sh runs every
# target for 10 minutes. Here each takes 3 to 10 s, most of it starting the
# test server in the coordinator and both workers and replaying the corpus,
# about a minute for the ten.
fuzz FuzzBackChannelEndpoints ./flows/ 3000x
fuzz FuzzUserinfo ./flows/ 2000x
fuzz FuzzClientAssertion ./flows/ 4000x
fuzz FuzzCIBASignedParameters ./flows/ 4000x
fuzz FuzzCIBABindingMessage ./flows/ 300x
fuzz FuzzBrowserPages ./flows/ 2000x
fuzz FuzzEndSession ./flows/ 4000x
fuzz FuzzSessionCookies ./session/ 8000x
fuzz FuzzCaddyfile ./caddymodule/ 4000x
fuzz FuzzAdminAPI ./caddymodule/ 600x

echo "== go test ./... (unit, end-to-end with the real binary, interop)"
# -v so that the totals below can count every test and subtest; the
# package lines (ok/FAIL) are printed as usual.
log=$(mktemp -t portcullis-test.XXXXXX)
trap 'rm -f "$log"' EXIT
status=0
go test -count=1 -timeout 20m -v ./... 2>&1 | tee "$log" || status=$?

count() { grep -cE "^[[:space:]]*--- $1:" "$log" || true; }
echo "== totals (tests and subtests of go test ./...)"
echo "totals: $(count PASS) passed, $(count FAIL) failed, $(count SKIP) skipped"
exit "$status"
