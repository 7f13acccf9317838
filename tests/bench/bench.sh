#!/usr/bin/env bash
# Portcullis performance benchmark. Builds Caddy with the plugin and the load
# generator into a temporary directory, starts the server on free 127.0.0.1
# ports with the bench Caddyfile (the embedded authorization server, and for
# the gateway scenario an oidc_login + reverse_proxy site and a plain
# reverse_proxy site in front of a trivial upstream app that the load
# generator serves; for the guard scenario an API site with bearer_auth
# routes to the same upstream, and a second Caddy whose bearer_auth
# introspects over HTTP), runs the load generator's scenarios and prints the
# results table, then stops the servers and the upstream (on any exit).
#
# Environment:
#   BENCH_SECONDS      measured seconds per scenario (default 10)
#   BENCH_WARMUP       untimed warm-up seconds per scenario (default 1)
#   BENCH_CONCURRENCY  closed-loop workers (default 64)
#   BENCH_SCENARIO     all (default), or a comma-separated list of
#                      client_credentials, authcode_roundtrip, jwks, discovery,
#                      device_code, device_poll_pending (device: both),
#                      ciba_authorize, ciba_poll_pending, ciba_push_latency
#                      (ciba: all three), gateway, guard; or token_vs_node
#                      alone (never part of all): Portcullis' token endpoint
#                      against node oidc-provider, each server pinned to
#                      BENCH_SERVER_CPU and the load generator to
#                      BENCH_LOADGEN_CPU (see tests/bench/README.md)
#   BENCH_DEVICE_CODES device_poll_pending: device codes issued before the
#                      clock starts and polled in turn, each once per
#                      interval (default 20000)
#   BENCH_CIBA_REQUESTS
#                      ciba_poll_pending: CIBA requests made before the clock
#                      starts and polled in turn, each once per interval
#                      (default 20000)
#   BENCH_CIBA_PUSH_REQUESTS, BENCH_CIBA_PUSH_CONCURRENCY
#                      ciba_push_latency: approvals timed from the admin
#                      API's approve call to the push notification's
#                      arrival, and the workers making them (default 500
#                      and 4)
#   BENCH_CIBA_USERS   ciba_authorize, ciba_poll_pending: users the requests
#                      are spread over (default 1024)
#   BENCH_ROUNDS       gateway, guard: rounds each side's measured time is
#                      split into, alternating the order of the sides
#                      (default 20); token_vs_node: rounds, each measuring
#                      portcullis then node for BENCH_ROUND_SECONDS
#                      (default 20)
#   BENCH_ROUND_SECONDS
#                      token_vs_node: measured seconds per side and round,
#                      after BENCH_WARMUP untimed ones (default 5)
#   BENCH_SERVER_CPU, BENCH_LOADGEN_CPU
#                      token_vs_node: the CPU both servers are pinned to and
#                      the one the load generator is pinned to (taskset -c;
#                      default 0 and 1)
#   BENCH_LATENCY_SECONDS, BENCH_LATENCY_CONCURRENCY
#                      gateway, guard: the low-concurrency latency phase,
#                      seconds per side and workers (default 5 and 1; 0 s
#                      skips it)
#   BENCH_SERVER_SESSIONS=0
#                      gateway: leave out the oidc_login site with
#                      server-side (bbolt) sessions
#   BENCH_COLD_TOKENS  guard: fresh tokens per route whose first request
#                      (a cache miss) is timed (default 500; 0 skips it)
#   BENCH_HTTP_INTROSPECTION=0
#                      guard: do not start the second Caddy (bearer_auth
#                      introspecting over HTTP)
#   BENCH_SWEEP=1      also run client_credentials at 32, 64 and 128 workers
#   BENCH_PROFILE=1    also take a 5 s CPU profile of the server under
#                      client_credentials, authcode_roundtrip, device_code,
#                      device_poll_pending, ciba_authorize, ciba_poll_pending,
#                      gateway and guard load (only the ones BENCH_SCENARIO
#                      names, if it is a list) and print the top of
#                      `go tool pprof -top`; with token_vs_node, a CPU
#                      profile and the allocations of the pinned Portcullis
#                      under the token_vs_node requests, before the rounds
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
DEVICE_CODES="${BENCH_DEVICE_CODES:-20000}"
CIBA_REQUESTS="${BENCH_CIBA_REQUESTS:-20000}"
CIBA_PUSH_REQUESTS="${BENCH_CIBA_PUSH_REQUESTS:-500}"
CIBA_PUSH_CONC="${BENCH_CIBA_PUSH_CONCURRENCY:-4}"
CIBA_USER_COUNT="${BENCH_CIBA_USERS:-1024}"

ROUNDS="${BENCH_ROUNDS:-20}"
LAT_SECONDS="${BENCH_LATENCY_SECONDS:-5}"
LAT_CONC="${BENCH_LATENCY_CONCURRENCY:-1}"
COLD_TOKENS="${BENCH_COLD_TOKENS:-500}"
ROUND_SECONDS="${BENCH_ROUND_SECONDS:-5}"
SERVER_CPU="${BENCH_SERVER_CPU:-0}"
LOADGEN_CPU="${BENCH_LOADGEN_CPU:-1}"
case ",$SCENARIO," in
*,token_vs_node,*)
	if [ "$SCENARIO" != token_vs_node ]; then
		echo "bench.sh: token_vs_node runs alone (BENCH_SCENARIO=token_vs_node): it pins its own servers" >&2
		exit 2
	fi
	;;
esac
# The second Caddy is needed by the guard scenario only.
HTTP_INTROSPECTION=0
case ",$SCENARIO," in
*,all,* | *,guard,*) HTTP_INTROSPECTION="${BENCH_HTTP_INTROSPECTION:-1}" ;;
esac

WORK="$(mktemp -d "${TMPDIR:-/tmp}/portcullis-bench.XXXXXX")"
CADDY_PID=""
CADDY2_PID=""
UPSTREAM_PID=""
NODE_PID=""
# stop_caddy stops one of the Caddy processes this script started, by pid.
stop_caddy() {
	local pid=$1
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
}
cleanup() {
	local rc=$?
	if [ -n "$UPSTREAM_PID" ] && kill -0 "$UPSTREAM_PID" 2>/dev/null; then
		kill -TERM "$UPSTREAM_PID" 2>/dev/null || true
		wait "$UPSTREAM_PID" 2>/dev/null || true
	fi
	stop_caddy "$CADDY2_PID"
	stop_caddy "$CADDY_PID"
	stop_caddy "$NODE_PID" # the same: SIGTERM, SIGKILL after 5 s
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

# --- token_vs_node: Portcullis against node oidc-provider, side by side ---
#
# Both servers are pinned to BENCH_SERVER_CPU and run throughout; the load
# generator, pinned to BENCH_LOADGEN_CPU, loads one at a time, alternating
# portcullis, node, portcullis, node… (see tests/bench/README.md). Both get
# the same client (backend, client_secret_basic), the same API
# (https://api.example.com, scope read:items, an ES256 JWT access token
# valid 1 h) and the same request; neither writes an access log.
if [ "$SCENARIO" = token_vs_node ]; then
	for tool in taskset node npm; do
		if ! command -v "$tool" >/dev/null; then
			echo "bench.sh: token_vs_node needs $tool on PATH" >&2
			exit 1
		fi
	done
	if [ "$SERVER_CPU" = "$LOADGEN_CPU" ] || [ "$(getconf _NPROCESSORS_ONLN)" -lt 2 ]; then
		echo "bench.sh: token_vs_node needs two CPUs, the servers' (BENCH_SERVER_CPU=$SERVER_CPU) apart from the load generator's (BENCH_LOADGEN_CPU=$LOADGEN_CPU)" >&2
		exit 1
	fi
	OP_DIR="$ROOT/tests/oidcprovider"
	if [ ! -f "$OP_DIR/node_modules/oidc-provider/package.json" ]; then
		# As the end-to-end tests do (tests/oidcprovider_test.go).
		echo "== npm ci in tests/oidcprovider (node oidc-provider)"
		(cd "$OP_DIR" && npm ci --no-audit --no-fund --loglevel=error)
	fi
	read -r PORT ADMIN_PORT NODE_PORT <<<"$("$WORK/loadgen" -free-ports 3 | tr '\n' ' ')"
	BASE="http://127.0.0.1:$PORT"
	NODE_BASE="http://127.0.0.1:$NODE_PORT"
	cat >"$WORK/Caddyfile" <<EOF
{
	admin 127.0.0.1:$ADMIN_PORT
	portcullis {
		storage bbolt $WORK/portcullis.db
		issuer $BASE
		signing_alg ES256
		insecure_cookies
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
	oauth_server
}
EOF
	echo "== starting caddy on $BASE, pinned to CPU $SERVER_CPU (admin 127.0.0.1:$ADMIN_PORT)"
	mkdir -p "$WORK/home" "$WORK/xdg/data" "$WORK/xdg/config" "$WORK/xdg/cache"
	HOME="$WORK/home" XDG_DATA_HOME="$WORK/xdg/data" XDG_CONFIG_HOME="$WORK/xdg/config" XDG_CACHE_HOME="$WORK/xdg/cache" \
		taskset -c "$SERVER_CPU" "$WORK/caddy" run --config "$WORK/Caddyfile" --adapter caddyfile >"$WORK/caddy.log" 2>&1 &
	CADDY_PID=$!
	echo "== starting node oidc-provider on $NODE_BASE, pinned to CPU $SERVER_CPU"
	# NODE_ENV=production, as a deployment runs it; LOG_GRANTS=false: no
	# line on stderr per token (Portcullis logs none either).
	(cd "$OP_DIR" && exec env PORT="$NODE_PORT" ISSUER="$NODE_BASE" NODE_ENV=production LOG_GRANTS=false \
		CLIENT_CREDENTIALS=true ACCESS_TOKEN_TTL=3600 \
		CLIENTS_JSON='[{"client_id":"backend","client_secret":"backend-secret","grant_types":["client_credentials"],"response_types":[],"redirect_uris":[],"token_endpoint_auth_method":"client_secret_basic"}]' \
		RESOURCE_SERVERS_JSON='{"https://api.example.com":{"scope":"read:items","format":"jwt","alg":"ES256","accessTokenTTL":3600}}' \
		taskset -c "$SERVER_CPU" node server.mjs) >"$WORK/node.log" 2>&1 &
	NODE_PID=$!
	if ! "$WORK/loadgen" -base "$BASE" -wait 60; then
		echo "== caddy did not become ready; last lines of its log:" >&2
		tail -n 30 "$WORK/caddy.log" >&2
		exit 1
	fi
	if ! "$WORK/loadgen" -base "$NODE_BASE" -wait 60; then
		echo "== node oidc-provider did not become ready; last lines of its log:" >&2
		tail -n 30 "$WORK/node.log" >&2
		exit 1
	fi
	echo "== ready: caddy pid $CADDY_PID ($(go version "$WORK/caddy" | awk '{print $2}'), CPUs $(taskset -cp "$CADDY_PID" | awk '{print $NF}')), node pid $NODE_PID ($(node --version), oidc-provider $(node -p "require('$OP_DIR/node_modules/oidc-provider/package.json').version"), CPUs $(taskset -cp "$NODE_PID" | awk '{print $NF}')), load generator on CPU $LOADGEN_CPU"
	vsnode() {
		taskset -c "$LOADGEN_CPU" "$WORK/loadgen" -scenario token_vs_node -base "$BASE" -server-pid "$CADDY_PID" -server-cpu "$SERVER_CPU" -loadgen-cpu "$LOADGEN_CPU" \
			-node-base "$NODE_BASE" -node-pid "$NODE_PID" -concurrency "$CONC" -warmup "$WARMUP" "$@"
	}
	if [ "${BENCH_PROFILE:-0}" = 1 ]; then
		# One untimed round of BENCH_SECONDS per side; the profile covers
		# the middle of portcullis' half (the first).
		prof_secs=$(awk -v s="$SECONDS_PER" 'BEGIN { p = (s > 7) ? 5 : int(s / 2); if (p < 1) p = 1; print p }')
		echo "== profiling portcullis under token_vs_node (${prof_secs}s CPU profile and allocations)"
		vsnode -rounds 1 -round-seconds "$SECONDS_PER" >"$WORK/profile-token_vs_node.txt" 2>&1 &
		lg=$!
		for _ in $(seq 1 600); do
			grep -q 'rounds ×' "$WORK/profile-token_vs_node.txt" && break
			kill -0 "$lg" 2>/dev/null || break
			sleep 0.1
		done
		sleep "$(awk -v w="$WARMUP" 'BEGIN { print w + 0.5 }')"
		curl -fsS -o "$WORK/allocs-before.pprof" "http://127.0.0.1:$ADMIN_PORT/debug/pprof/allocs" || true
		if curl -fsS -o "$WORK/cpu-token_vs_node.pprof" \
			"http://127.0.0.1:$ADMIN_PORT/debug/pprof/profile?seconds=$prof_secs"; then
			curl -fsS -o "$WORK/allocs-after.pprof" "http://127.0.0.1:$ADMIN_PORT/debug/pprof/allocs" || true
			go tool pprof -top -nodecount=30 "$WORK/caddy" "$WORK/cpu-token_vs_node.pprof" 2>/dev/null | sed -n '4,45p'
			echo "   -- by cumulative time:"
			go tool pprof -top -cum -nodecount=50 "$WORK/caddy" "$WORK/cpu-token_vs_node.pprof" 2>/dev/null | sed -n '7,70p'
			if [ -s "$WORK/allocs-before.pprof" ] && [ -s "$WORK/allocs-after.pprof" ]; then
				echo "   -- allocations during the profile (sampled bytes, flat):"
				go tool pprof -top -sample_index=alloc_space -nodecount=25 -diff_base "$WORK/allocs-before.pprof" \
					"$WORK/caddy" "$WORK/allocs-after.pprof" 2>/dev/null | sed -n '5,35p'
			fi
		else
			echo "   (could not fetch the profile from the admin endpoint)"
		fi
		wait "$lg" || true
		grep -E '^ *round ' "$WORK/profile-token_vs_node.txt" || true
	fi
	echo "== token_vs_node: $ROUNDS rounds × ${ROUND_SECONDS}s per side (+${WARMUP}s warm-up), concurrency $CONC"
	set +e
	vsnode -rounds "$ROUNDS" -round-seconds "$ROUND_SECONDS"
	status=$?
	set -e
	if grep -qiE '"level":"(error|fatal)"|panic' "$WORK/caddy.log"; then
		echo "== caddy.log has errors:" >&2
		grep -iE '"level":"(error|fatal)"|panic' "$WORK/caddy.log" | tail -n 10 >&2
	fi
	if grep -qE 'server_error|grant\.error' "$WORK/node.log"; then
		echo "== node.log has errors:" >&2
		grep -E 'server_error|grant\.error' "$WORK/node.log" | tail -n 10 >&2
	fi
	exit "$status"
fi

# The authorization server, the admin endpoint, the gateway site (cookie
# sessions), the plain reverse_proxy site, the gateway site with server-side
# sessions, the upstream app, the API site (bearer_auth), and the second
# Caddy's admin endpoint and site (bearer_auth introspecting over HTTP),
# and the CIBA push client's notification endpoint (served by the load
# generator during ciba_push_latency).
read -r PORT ADMIN_PORT APP_PORT PLAIN_PORT SRV_PORT UP_PORT API_PORT ADMIN2_PORT INTRO_PORT CIBA_RCV_PORT <<<"$("$WORK/loadgen" -free-ports 10 | tr '\n' ' ')"
BASE="http://127.0.0.1:$PORT"
APP="http://127.0.0.1:$APP_PORT"
PLAIN="http://127.0.0.1:$PLAIN_PORT"
SRV="http://127.0.0.1:$SRV_PORT"
API="http://127.0.0.1:$API_PORT"
INTRO="http://127.0.0.1:$INTRO_PORT"
UPSTREAM="127.0.0.1:$UP_PORT"
CIBA_RECEIVER="127.0.0.1:$CIBA_RCV_PORT"
# Caddy keeps 32 idle upstream connections per host by default: fewer than
# the workers, so both sides would redial most requests and the dials would
# dwarf what is compared. Keep one per worker.
UP_IDLE=$((CONC > 32 ? CONC : 32))

# The CIBA users: ciba_authorize and ciba_poll_pending spread their requests
# over BENCH_CIBA_USERS of them, and each ciba_push_latency worker approves its own
# (so that its pending list holds one request). Nobody signs in as them:
# they share a deliberately cheap argon2id hash (m=8 KiB, t=1) so that the
# server's start-up check of each hash takes microseconds, not 50 ms.
CIBA_HASH='$argon2id$v=19$m=8,t=1,p=1$YmVuY2gtY2liYS1zYWx0IQ$GfqI/4tVV0ciH0Qgu6zLixRbuyU9KUdcBxiffLEdcgw'
CIBA_USERS=""
for i in $(seq 0 $((CIBA_USER_COUNT - 1))); do
	CIBA_USERS+="$(printf '\t\tuser ciba-user-%03d {\n\t\t\tpassword_hash %s\n\t\t}' "$i" "$CIBA_HASH")"$'\n'
done
for i in $(seq 0 15); do
	CIBA_USERS+="$(printf '\t\tuser ciba-push-%02d {\n\t\t\tpassword_hash %s\n\t\t}' "$i" "$CIBA_HASH")"$'\n'
done

cat >"$WORK/Caddyfile" <<EOF
{
	admin 127.0.0.1:$ADMIN_PORT
	portcullis {
		storage bbolt $WORK/portcullis.db
		issuer $BASE
		signing_alg ES256
		insecure_cookies
		# The device scenarios: the shortest polling interval, so that fewer
		# device codes keep the server busy, and codes that outlive a run.
		device_poll_interval 1s
		device_code_ttl 30m
		# The CIBA scenarios: the same shortest interval and long-lived
		# requests; limits raised so that throttling does not count (the
		# defaults are 100 per client and 10 per user and minute, 5 pending
		# per user); plain-HTTP loopback for the push client's endpoint.
		ciba {
			request_ttl 30m
			poll_interval 1s
			max_pending_per_user 1000000
			rate_limit_per_client 1000000 1s
			rate_limit_per_user 1000000 1s
			insecure_notification_endpoints
		}
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
			api_access https://opaque.example.com read:items
		}
		client api-guard {
			name "Bench API guard (introspection)"
			secret api-guard-secret
			grant_types client_credentials
		}
		client bench-device {
			name "Bench Device"
			public
			grant_types device_code
		}
		client bench-ciba {
			name "Bench CIBA (poll)"
			secret bench-ciba-secret
			grant_types ciba
			backchannel_token_delivery_mode poll
		}
		client bench-ciba-push {
			name "Bench CIBA (push)"
			secret bench-ciba-push-secret
			grant_types ciba
			backchannel_token_delivery_mode push
			backchannel_client_notification_endpoint http://$CIBA_RECEIVER/push
		}
$CIBA_USERS		client gateway {
			name "Bench App"
			secret gateway-secret
			redirect_uris $APP/oauth2/callback $SRV/oauth2/callback
			scopes openid profile email groups
		}
		api https://api.example.com {
			scopes read:items
		}
		api https://opaque.example.com {
			scopes read:items
			token_format opaque
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
$API {
	bind 127.0.0.1
	log {
		output discard
	}
	handle /jwt/* {
		bearer_auth read:items {
			issuer $BASE
			audience https://api.example.com
		}
		reverse_proxy $UPSTREAM {
			transport http {
				keepalive_idle_conns_per_host $UP_IDLE
			}
		}
	}
	handle /opaque/* {
		bearer_auth read:items {
			issuer $BASE
			audience https://opaque.example.com
		}
		reverse_proxy $UPSTREAM {
			transport http {
				keepalive_idle_conns_per_host $UP_IDLE
			}
		}
	}
}
EOF

# The second Caddy has no authorization server of its own, so its
# bearer_auth introspects the embedded server's opaque tokens over HTTP, as
# an API on another host would. (In the first Caddy, a bearer_auth whose
# issuer is the embedded server introspects in process, whatever
# introspection_endpoint says.)
cat >"$WORK/Caddyfile.introspect" <<EOF
{
	admin 127.0.0.1:$ADMIN2_PORT
}
$INTRO {
	bind 127.0.0.1
	log {
		output discard
	}
	bearer_auth read:items {
		issuer $BASE
		audience https://opaque.example.com
		introspection_endpoint $BASE/oauth/introspect
		client_id api-guard
		client_secret api-guard-secret
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

GATEWAY_FLAGS=(-app-base "$APP" -plain-base "$PLAIN" -upstream-pid "$UPSTREAM_PID"
	-rounds "$ROUNDS" -latency-seconds "$LAT_SECONDS" -latency-concurrency "$LAT_CONC"
	-api-base "$API" -cold-tokens "$COLD_TOKENS")
if [ "${BENCH_SERVER_SESSIONS:-1}" != 0 ]; then
	GATEWAY_FLAGS+=(-server-session-base "$SRV")
fi

if [ "$HTTP_INTROSPECTION" = 1 ]; then
	echo "== starting a second caddy on $INTRO (admin 127.0.0.1:$ADMIN2_PORT): bearer_auth introspecting over HTTP"
	mkdir -p "$WORK/home2" "$WORK/xdg2/data" "$WORK/xdg2/config" "$WORK/xdg2/cache"
	HOME="$WORK/home2" XDG_DATA_HOME="$WORK/xdg2/data" XDG_CONFIG_HOME="$WORK/xdg2/config" XDG_CACHE_HOME="$WORK/xdg2/cache" \
		"$WORK/caddy" run --config "$WORK/Caddyfile.introspect" --adapter caddyfile >"$WORK/caddy-introspect.log" 2>&1 &
	CADDY2_PID=$!
	if ! "$WORK/loadgen" -wait 60 -wait-site "$INTRO/"; then
		echo "== the second caddy did not become ready; last lines of its log:" >&2
		tail -n 30 "$WORK/caddy-introspect.log" >&2
		exit 1
	fi
	GATEWAY_FLAGS+=(-introspect-base "$INTRO" -introspect-pid "$CADDY2_PID")
fi
echo "== ready ($(nproc) CPUs shared by the servers and the load generator)"

CIBA_FLAGS=(-admin-base "http://127.0.0.1:$ADMIN_PORT" -ciba-receiver "$CIBA_RECEIVER" -ciba-requests "$CIBA_REQUESTS" -ciba-users "$CIBA_USER_COUNT"
	-ciba-push-requests "$CIBA_PUSH_REQUESTS" -ciba-push-concurrency "$CIBA_PUSH_CONC")
loadgen() { "$WORK/loadgen" -base "$BASE" -server-pid "$CADDY_PID" -seconds "$SECONDS_PER" -warmup "$WARMUP" -device-codes "$DEVICE_CODES" "${GATEWAY_FLAGS[@]}" "${CIBA_FLAGS[@]}" "$@"; }

if [ "${BENCH_SWEEP:-0}" = 1 ]; then
	for c in 32 64 128; do
		echo "== sweep: client_credentials at concurrency $c"
		loadgen -concurrency "$c" -scenario client_credentials | grep -E '\||WARNING' || true
	done
fi

if [ "${BENCH_PROFILE:-0}" = 1 ]; then
	for sc in client_credentials authcode_roundtrip device_code device_poll_pending ciba_authorize ciba_poll_pending gateway guard; do
		# With a list of scenarios, profile only those (device names both
		# device scenarios, ciba the CIBA ones).
		want=0
		case ",$SCENARIO," in *,all,* | *,"$sc",*) want=1 ;; esac
		case "$sc" in
		device_*) case ",$SCENARIO," in *,device,*) want=1 ;; esac ;;
		ciba_*) case ",$SCENARIO," in *,ciba,*) want=1 ;; esac ;;
		esac
		[ "$want" = 1 ] || continue
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
		# The gateway and guard scenarios warm each of their 3 or 4 sides
		# up in turn.
		sides=1
		case "$sc" in gateway | guard) sides=4 ;; esac
		sleep "$(awk -v w="$WARMUP" -v g="$sides" 'BEGIN { print w * g + 0.5 }')"
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
for log in "$WORK/caddy.log" "$WORK/caddy-introspect.log"; do
	if [ -f "$log" ] && grep -qiE '"level":"(error|fatal)"|panic' "$log"; then
		echo "== $(basename "$log") has errors:" >&2
		grep -iE '"level":"(error|fatal)"|panic' "$log" | tail -n 10 >&2
	fi
done
exit "$status"
