#!/usr/bin/env bash
# Portcullis performance benchmark. Builds Caddy with the plugin and the load
# generator into a temporary directory, starts the server on free 127.0.0.1
# ports with the bench Caddyfile (the embedded authorization server, and for
# the gateway scenario an oidc_login + reverse_proxy site and a plain
# reverse_proxy site in front of a trivial upstream app that the load
# generator serves), runs the load generator's scenarios and prints the
# results table, then stops the server and the upstream (on any exit).
#
# Environment:
#   BENCH_SECONDS      measured seconds per scenario (default 10)
#   BENCH_WARMUP       untimed warm-up seconds per scenario (default 1)
#   BENCH_CONCURRENCY  closed-loop workers (default 64)
#   BENCH_SCENARIO     all (default), or a comma-separated list of
#                      client_credentials, authcode_roundtrip, jwks, discovery,
#                      gateway
#   BENCH_ROUNDS       gateway: rounds each side's measured time is split
#                      into, alternating the order of the sides (default 20)
#   BENCH_LATENCY_SECONDS, BENCH_LATENCY_CONCURRENCY
#                      gateway: the low-concurrency latency phase, seconds
#                      per side and workers (default 5 and 1; 0 s skips it)
#   BENCH_SERVER_SESSIONS=0
#                      gateway: leave out the oidc_login site with
#                      server-side (bbolt) sessions
#   BENCH_SWEEP=1      also run client_credentials at 32, 64 and 128 workers
#   BENCH_PROFILE=1    also take a 5 s CPU profile of the server under
#                      client_credentials, authcode_roundtrip and gateway
#                      load and print the top of `go tool pprof -top`
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

ROUNDS="${BENCH_ROUNDS:-20}"
LAT_SECONDS="${BENCH_LATENCY_SECONDS:-5}"
LAT_CONC="${BENCH_LATENCY_CONCURRENCY:-1}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/portcullis-bench.XXXXXX")"
CADDY_PID=""
UPSTREAM_PID=""
cleanup() {
	local rc=$?
	if [ -n "$UPSTREAM_PID" ] && kill -0 "$UPSTREAM_PID" 2>/dev/null; then
		kill -TERM "$UPSTREAM_PID" 2>/dev/null || true
		wait "$UPSTREAM_PID" 2>/dev/null || true
	fi
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

# The authorization server, the admin endpoint, the gateway site (cookie
# sessions), the plain reverse_proxy site, the gateway site with server-side
# sessions, and the upstream app.
read -r PORT ADMIN_PORT APP_PORT PLAIN_PORT SRV_PORT UP_PORT <<<"$("$WORK/loadgen" -free-ports 6 | tr '\n' ' ')"
BASE="http://127.0.0.1:$PORT"
APP="http://127.0.0.1:$APP_PORT"
PLAIN="http://127.0.0.1:$PLAIN_PORT"
SRV="http://127.0.0.1:$SRV_PORT"
UPSTREAM="127.0.0.1:$UP_PORT"
# Caddy keeps 32 idle upstream connections per host by default: fewer than
# the workers, so both sides would redial most requests and the dials would
# dwarf what is compared. Keep one per worker.
UP_IDLE=$((CONC > 32 ? CONC : 32))

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
			name "Alice Example"
			groups admins
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
		client gateway {
			name "Bench App"
			secret gateway-secret
			redirect_uris $APP/oauth2/callback $SRV/oauth2/callback
			scopes openid profile email groups
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
$APP {
	bind 127.0.0.1
	log {
		output discard
	}
	oidc_login {
		issuer $BASE
		client_id gateway
		client_secret gateway-secret
		scopes openid profile email groups
		insecure_cookies
	}
	reverse_proxy $UPSTREAM {
		transport http {
			keepalive_idle_conns_per_host $UP_IDLE
		}
	}
}
$PLAIN {
	bind 127.0.0.1
	log {
		output discard
	}
	reverse_proxy $UPSTREAM {
		transport http {
			keepalive_idle_conns_per_host $UP_IDLE
		}
	}
}
$SRV {
	bind 127.0.0.1
	log {
		output discard
	}
	oidc_login {
		issuer $BASE
		client_id gateway
		client_secret gateway-secret
		scopes openid profile email groups
		insecure_cookies
		session_store server
		cookie_name portcullis_srv
	}
	reverse_proxy $UPSTREAM {
		transport http {
			keepalive_idle_conns_per_host $UP_IDLE
		}
	}
}
EOF

echo "== starting the upstream app on $UPSTREAM"
"$WORK/loadgen" -upstream "$UPSTREAM" 2>"$WORK/upstream.log" &
UPSTREAM_PID=$!

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

GATEWAY_FLAGS=(-app-base "$APP" -plain-base "$PLAIN" -upstream-pid "$UPSTREAM_PID"
	-rounds "$ROUNDS" -latency-seconds "$LAT_SECONDS" -latency-concurrency "$LAT_CONC")
if [ "${BENCH_SERVER_SESSIONS:-1}" != 0 ]; then
	GATEWAY_FLAGS+=(-server-session-base "$SRV")
fi
loadgen() { "$WORK/loadgen" -base "$BASE" -server-pid "$CADDY_PID" -seconds "$SECONDS_PER" -warmup "$WARMUP" "${GATEWAY_FLAGS[@]}" "$@"; }

if [ "${BENCH_SWEEP:-0}" = 1 ]; then
	for c in 32 64 128; do
		echo "== sweep: client_credentials at concurrency $c"
		loadgen -concurrency "$c" -scenario client_credentials | grep -E '\||WARNING' || true
	done
fi

if [ "${BENCH_PROFILE:-0}" = 1 ]; then
	for sc in client_credentials authcode_roundtrip gateway; do
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
		# The gateway scenario warms each of its 3 or 4 sides up in turn.
		sleep "$(awk -v w="$WARMUP" -v g="$([ "$sc" = gateway ] && echo 4 || echo 1)" 'BEGIN { print w * g + 0.5 }')"
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
