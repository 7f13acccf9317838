#!/usr/bin/env bash
# Portcullis performance benchmark. Builds Caddy with the plugin and the load
# generator into a temporary directory, starts the server on free 127.0.0.1
# ports with the bench Caddyfile, runs the load generator's scenarios and
# prints the results table, then stops the server (on any exit).
#
# Environment:
#   BENCH_SECONDS      measured seconds per scenario (default 10)
#   BENCH_WARMUP       untimed warm-up seconds per scenario (default 1)
#   BENCH_CONCURRENCY  closed-loop workers (default 64)
#   BENCH_SCENARIO     all (default), or a comma-separated list of
#                      client_credentials, authcode_roundtrip, jwks, discovery
#   BENCH_SWEEP=1      also run client_credentials at 32, 64 and 128 workers
#   BENCH_PROFILE=1    also take a 5 s CPU profile of the server under
#                      client_credentials and authcode_roundtrip load and
#                      print the top of `go tool pprof -top`
#   BENCH_KEEP=1       keep the temporary directory (Caddyfile, caddy.log,
#                      profiles) instead of deleting it
#
# Exit status: the load generator's (non-zero when a scenario had more than
# 1% errors or could not run); meeting the targets is reported, not enforced.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SECONDS_PER="${BENCH_SECONDS:-10}"
WARMUP="${BENCH_WARMUP:-1}"
CONC="${BENCH_CONCURRENCY:-64}"
SCENARIO="${BENCH_SCENARIO:-all}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/portcullis-bench.XXXXXX")"
CADDY_PID=""
cleanup() {
	local rc=$?
	if [ -n "$CADDY_PID" ] && kill -0 "$CADDY_PID" 2>/dev/null; then
		kill -TERM "$CADDY_PID" 2>/dev/null || true
		for _ in $(seq 1 50); do
			kill -0 "$CADDY_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$CADDY_PID" 2>/dev/null || true
		wait "$CADDY_PID" 2>/dev/null || true
	fi
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		echo "== kept $WORK"
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== building caddy + portcullis and the load generator into $WORK"
(cd "$ROOT" && go build -o "$WORK/caddy" ./cmd/portcullis)
(cd "$ROOT" && go build -o "$WORK/loadgen" ./tests/bench/loadgen)

PORTS="$("$WORK/loadgen" -free-ports 2)"
PORT="${PORTS%%$'\n'*}"
ADMIN_PORT="${PORTS##*$'\n'}"
BASE="http://127.0.0.1:$PORT"

cat >"$WORK/Caddyfile" <<EOF
{
	admin 127.0.0.1:$ADMIN_PORT
	portcullis {
		storage bbolt $WORK/portcullis.db
		issuer $BASE
		signing_alg ES256
		insecure_cookies
		user alice {
			password alice-password
			email alice@example.com
		}
		client webapp {
			secret webapp-secret
			redirect_uris $BASE/callback
			grant_types authorization_code refresh_token
			first_party
		}
		client backend {
			secret backend-secret
			grant_types client_credentials
			api_access https://api.example.com read:items
		}
		api https://api.example.com {
			scopes read:items
		}
	}
}
$BASE {
	bind 127.0.0.1
	log {
		output discard
	}
	oauth_server
}
EOF

echo "== starting caddy on $BASE (admin 127.0.0.1:$ADMIN_PORT)"
mkdir -p "$WORK/home" "$WORK/xdg/data" "$WORK/xdg/config" "$WORK/xdg/cache"
HOME="$WORK/home" XDG_DATA_HOME="$WORK/xdg/data" XDG_CONFIG_HOME="$WORK/xdg/config" XDG_CACHE_HOME="$WORK/xdg/cache" \
	"$WORK/caddy" run --config "$WORK/Caddyfile" --adapter caddyfile >"$WORK/caddy.log" 2>&1 &
CADDY_PID=$!

if ! "$WORK/loadgen" -base "$BASE" -wait 60; then
	echo "== caddy did not become ready; last lines of its log:" >&2
	tail -n 30 "$WORK/caddy.log" >&2
	exit 1
fi
echo "== ready ($(nproc) CPUs shared by the server and the load generator)"

loadgen() { "$WORK/loadgen" -base "$BASE" -server-pid "$CADDY_PID" -seconds "$SECONDS_PER" -warmup "$WARMUP" "$@"; }

if [ "${BENCH_SWEEP:-0}" = 1 ]; then
	for c in 32 64 128; do
		echo "== sweep: client_credentials at concurrency $c"
		loadgen -concurrency "$c" -scenario client_credentials | grep -E '\||WARNING' || true
	done
fi

if [ "${BENCH_PROFILE:-0}" = 1 ]; then
	for sc in client_credentials authcode_roundtrip; do
		# Profile the middle of the run: after warm-up and worker setup.
		prof_secs=$(awk -v s="$SECONDS_PER" 'BEGIN { p = (s > 7) ? 5 : int(s / 2); if (p < 1) p = 1; print p }')
		echo "== profiling the server under $sc (${prof_secs}s CPU profile)"
		loadgen -concurrency "$CONC" -scenario "$sc" >"$WORK/profile-$sc.txt" 2>&1 &
		lg=$!
		# Wait for the untimed setup (sign-ins) to end, then for the warm-up.
		for _ in $(seq 1 1200); do
			grep -q 'setup done' "$WORK/profile-$sc.txt" && break
			kill -0 "$lg" 2>/dev/null || break
			sleep 0.1
		done
		sleep "$(awk -v w="$WARMUP" 'BEGIN { print w + 0.5 }')"
		if curl -fsS -o "$WORK/cpu-$sc.pprof" \
			"http://127.0.0.1:$ADMIN_PORT/debug/pprof/profile?seconds=$prof_secs"; then
			go tool pprof -top -nodecount=25 "$WORK/caddy" "$WORK/cpu-$sc.pprof" 2>/dev/null | sed -n '4,40p'
			echo "   -- by cumulative time:"
			go tool pprof -top -cum -nodecount=40 "$WORK/caddy" "$WORK/cpu-$sc.pprof" 2>/dev/null | sed -n '7,60p'
		else
			echo "   (could not fetch the profile from the admin endpoint)"
		fi
		wait "$lg" || true
		grep -E '\||WARNING' "$WORK/profile-$sc.txt" || true
	done
fi

echo "== benchmark: ${SECONDS_PER}s per scenario (+${WARMUP}s warm-up), concurrency $CONC"
set +e
loadgen -concurrency "$CONC" -scenario "$SCENARIO"
status=$?
set -e
if grep -qiE '"level":"(error|fatal)"|panic' "$WORK/caddy.log"; then
	echo "== caddy logged errors:" >&2
	grep -iE '"level":"(error|fatal)"|panic' "$WORK/caddy.log" | tail -n 10 >&2
fi
exit "$status"
