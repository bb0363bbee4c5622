#!/usr/bin/env bash
# usage: bench/scale.sh
#
# Issue 15's benchmark rows: wecom_auth at scale against the WeCom simulator.
# Builds bin/caddy and bench/scalebench, starts one Caddy with the simulator
# and the echo backend and INSTANCES gateway Caddies sharing one file_system
# storage (all on 127.0.0.1, ports picked from 19000–19999), runs
# bench/scalebench against them and prints its figures; stops everything.
# Rows 1 and 2 share one such cluster; row 3 gets a fresh one (its own
# quota, users and storage).
#
#   1. cluster: USERS users, round-robin over the 3 gateways for DURATION s
#      with recheck RECHECK; the simulator's user/get frequency_limit is 80 %
#      of what the demand would need unshared (3 × USERS per RECHECK), and
#      the gateways' quota is set to the same. Reports user/get per user per
#      recheck (target ≤ 1.1) and the 45009s answered (target 0).
#   2. latency: LAT_USERS of the same users, LAT_DURATION s with a fast
#      user/get, then LAT_DURATION s with `latency user/get 300ms` (PUT
#      /sim/limits, no frequency limit): p99 of the protected requests
#      (target: within 5 ms). Each after SETTLE s of the same load, not
#      measured, so that the users are steady: the first recheck after
#      signing in is not in the window.
#   3. over: OVER_USERS steady users (one request a second each, as above)
#      need OVER_USERS user/get per RECHECK; the gateways' quota is a third
#      of that (OVER_QUOTA per RECHECK, every API) and the simulator's
#      frequency_limit for every API is the same number, so any overspend by
#      the gateways shows as 45009. stale_grace STALE_GRACE covers the run.
#      The steady users sign in first (within the budget: a 503 is tried
#      again after its Retry-After), then SETTLE s unmeasured, then
#      OVER_DURATION s measured while new users sign in at OVER_LOGIN_RATE
#      a second (users n0000 …, each once). Targets: 0 45009, 0 failed
#      protected requests, logins served (none answered 503); reports
#      logins/s against what the budget leaves them, and user/get in the
#      busiest RECHECK window against the quota.
#
# Each row's RESULT line (on stdout, for bench/report) starts with the row's
# name (cluster, fast, slow, over), then at= (unix seconds when it started),
# load= (the load average then, 1/5/15 min), cpus=, instances= (and, row 1,
# limit=), then scalebench's fields.
#
# Environment, with defaults: USERS 1000, DURATION 60, RECHECK 10 (seconds),
# INTERVAL 1s (each user's time between requests), LAT_USERS USERS,
# LAT_DURATION 40, SETTLE RECHECK+2, ROWS "cluster latency over" (the rows to
# run), INSTANCES 3, QUOTA (the gateways' user/get quota per RECHECK in rows
# 1–2; default the simulator's limit), OVER_USERS 300, OVER_QUOTA
# OVER_USERS/3, OVER_DURATION DURATION, OVER_LOGIN_RATE 1 (per second),
# STALE_GRACE 10m, KEEP_TMP (set: keep the temporary directory with the
# logs).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
USERS=${USERS:-1000}
DURATION=${DURATION:-60}
RECHECK=${RECHECK:-10}
INTERVAL=${INTERVAL:-1s}
LAT_USERS=${LAT_USERS:-$USERS}
LAT_DURATION=${LAT_DURATION:-40}
SETTLE=${SETTLE:-$((RECHECK + 2))}
ROWS=${ROWS:-cluster latency over}
INSTANCES=${INSTANCES:-3}
OVER_USERS=${OVER_USERS:-300}
OVER_QUOTA=${OVER_QUOTA:-$((OVER_USERS / 3))}
OVER_DURATION=${OVER_DURATION:-$DURATION}
OVER_LOGIN_RATE=${OVER_LOGIN_RATE:-1}
STALE_GRACE=${STALE_GRACE:-10m}

SCRIPT=scale.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh
command -v curl >/dev/null 2>&1 || die "needs curl"
for r in $ROWS; do
	case $r in cluster | latency | over) ;; *) die "unknown row $r (ROWS: cluster latency over)" ;; esac
done
[ "$LAT_USERS" -le "$USERS" ] || die "LAT_USERS ($LAT_USERS) must be at most USERS ($USERS)"

bench_tmp wecomgate-scale

say "building bin/caddy and bench/scalebench"
go build -o bin/caddy ./caddy
go build -o "$TMP/scalebench" ./bench/scalebench
CADDY=$ROOT/bin/caddy

port() { free_port "$1" 19000 20000; } # VAR: a port in 19000–19999

SECRET=bench-secret-$RANDOM$RANDOM
CORP_ID=ww7f3a9c2e5b81d046

start_caddy() { # name config port [env…]
	local name=$1 conf=$2 port=$3
	shift 3
	env "$@" "$CADDY" run --adapter caddyfile --config "$conf" >"$TMP/$name.log" 2>&1 &
	started $!
	wait_listening "$name" "$port" "$TMP/$name.log"
}

# start_cluster NAME USERS LOGIN_USERS LIMITS QUOTA [gateway lines]: the
# simulator (users s0000 … and n0000 …, the frequency_limit lines LIMITS)
# with the backend, and INSTANCES gateways with `quota QUOTA RECHECKs` and
# the extra wecom_auth lines, on a fresh storage $TMP/NAME.storage; logs in
# $TMP/NAME.*.log. Sets SIM and GWS (the gateways' URLs, comma-separated).
start_cluster() {
	local name=$1 users=$2 login_users=$3 limits=$4 quota=$5 extra=${6:-} i
	port SIM
	port BACKEND
	local ports=() gwp
	for i in $(seq "$INSTANCES"); do port gwp && ports+=("$gwp"); done
	{
		cat <<CF
{
	admin off
	persist_config off
}
http://127.0.0.1:$BACKEND {
	header Content-Type application/json
	respond \`{"backend":"echo","user":"{header.X-WeCom-UserId}"}\` 200
}
http://127.0.0.1:$SIM {
	wecom_simulator {
		dev_path /sim
$limits
		corp acme {
			corp_id $CORP_ID
			secret $SECRET
CF
		for i in $(seq 0 $((users - 1))); do printf '\t\t\tuser s%04d\n' "$i"; done
		for i in $(seq 0 $((login_users - 1))); do printf '\t\t\tuser n%04d\n' "$i"; done
		printf '\t\t}\n\t}\n}\n'
	} >"$TMP/$name.sim.Caddyfile"
	cat >"$TMP/$name.gateway.Caddyfile" <<CF
{
	admin off
	persist_config off
	storage file_system $TMP/$name.storage
}
http://127.0.0.1:{\$GW_PORT} {
	wecom_auth {
		api_base http://127.0.0.1:$SIM
		corp acme {
			corp_id $CORP_ID
			secret $SECRET
		}
		recheck ${RECHECK}s
		quota $quota ${RECHECK}s
$extra
	}
	reverse_proxy 127.0.0.1:$BACKEND {
		transport http {
			keepalive_idle_conns_per_host 512
		}
	}
}
CF
	say "starting the simulator (:$SIM, ${limits//$'\t'/}), the backend (:$BACKEND) and $INSTANCES gateways (:${ports[*]}, quota $quota per ${RECHECK}s) sharing $TMP/$name.storage"
	start_caddy "$name.sim" "$TMP/$name.sim.Caddyfile" "$SIM"
	GWS=""
	for i in "${!ports[@]}"; do
		start_caddy "$name.gateway$i" "$TMP/$name.gateway.Caddyfile" "${ports[$i]}" GW_PORT="${ports[$i]}"
		GWS+="${GWS:+,}http://127.0.0.1:${ports[$i]}"
	done
}

# row NAME [key=value…]: prefixes scalebench's RESULT line with the row's
# name, when it started, the load average then, the gateways and any other
# fields given.
row() {
	local name=$1 at load
	shift
	at=$(date +%s)
	load=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)
	sed "s|^RESULT |RESULT $name at=$at load=$load cpus=$(nproc) instances=$INSTANCES${*:+ $*} |"
}

echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(uname -sr), $(go env GOVERSION), commit $(git rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC')"
JSON=(-H 'Content-Type: application/json')
want() { [[ " $ROWS " == *" $1 "* ]]; }

if want cluster || want latency; then
	UNSHARED=$((INSTANCES * USERS)) # user/get per recheck if each instance checked on its own
	LIMIT=$((UNSHARED * 8 / 10))
	start_cluster scale "$USERS" 0 "		frequency_limit user/get $LIMIT ${RECHECK}s 60s" "${QUOTA:-$LIMIT}"
	SB=("$TMP/scalebench" -gateways "$GWS" -sim "http://127.0.0.1:$SIM" -interval "$INTERVAL" -recheck "${RECHECK}s")
	if want cluster; then
		say "1. cluster: $USERS users, round-robin over $INSTANCES gateways, ${DURATION}s, recheck ${RECHECK}s, simulator user/get limit $LIMIT per ${RECHECK}s (80 % of $UNSHARED)"
		"${SB[@]}" -users "$USERS" -d "${DURATION}s" | row cluster "limit=$LIMIT"
	fi
	if want latency; then
		say "2a. latency: $LAT_USERS users, fast user/get, ${LAT_DURATION}s"
		curl -sf -X PUT "${JSON[@]}" -d '{"limits":[],"latency":[]}' "http://127.0.0.1:$SIM/sim/limits"
		"${SB[@]}" -users "$LAT_USERS" -d "${LAT_DURATION}s" -settle "${SETTLE}s" | row fast
		say "2b. latency: $LAT_USERS users, user/get 300ms, ${LAT_DURATION}s"
		curl -sf -X PUT "${JSON[@]}" -d '{"limits":[],"latency":[{"endpoint":"user/get","delay":"300ms"}]}' "http://127.0.0.1:$SIM/sim/limits"
		"${SB[@]}" -users "$LAT_USERS" -d "${LAT_DURATION}s" -settle "${SETTLE}s" | row slow
	fi
	stop_started
fi

if want over; then
	LOGIN_USERS=$(awk -v r="$OVER_LOGIN_RATE" -v d="$OVER_DURATION" 'BEGIN { n = r * d; print (n == int(n) ? n : int(n) + 1) + 1 }')
	start_cluster over "$OVER_USERS" "$LOGIN_USERS" "		frequency_limit * $OVER_QUOTA ${RECHECK}s 60s" "$OVER_QUOTA" "		stale_grace $STALE_GRACE"
	# A gateway counts the others once its heartbeat has seen them (every
	# 5 s): until then it would take the whole quota for its share.
	sleep 11
	say "3. over budget: $OVER_USERS users need $OVER_USERS user/get per ${RECHECK}s; quota and simulator limit $OVER_QUOTA per ${RECHECK}s for every API; $OVER_LOGIN_RATE new users signing in per second; ${OVER_DURATION}s after ${SETTLE}s settling"
	"$TMP/scalebench" -gateways "$GWS" -sim "http://127.0.0.1:$SIM" -interval "$INTERVAL" -recheck "${RECHECK}s" \
		-users "$OVER_USERS" -d "${OVER_DURATION}s" -settle "${SETTLE}s" \
		-login-rate "$OVER_LOGIN_RATE" -login-prefix n -login-users "$LOGIN_USERS" -quota "$OVER_QUOTA" | row over
	# What the gateways said about it.
	for f in "$TMP"/over.gateway*.log; do
		printf '%s: %s 45009 warnings, %s logins refused (%s wecom_unavailable), %s errors\n' "${f##*/}" \
			"$(grep -c '45009' "$f" || true)" "$(grep -c '"login refused"' "$f" || true)" \
			"$(grep -c '"result":"wecom_unavailable"' "$f" || true)" "$(grep -c '"level":"error"' "$f" || true)" >&2
	done
fi
