#!/usr/bin/env bash
# usage: bench/scale.sh
#
# Issue 15's benchmark rows: wecom_auth at scale against the WeCom simulator.
# Builds bin/caddy and bench/scalebench, starts one Caddy with the simulator
# and the echo backend and three gateway Caddies sharing one file_system
# storage (all on 127.0.0.1, ports picked from 19000–19999), runs
# bench/scalebench against them and prints its figures; stops everything.
#
#   1. cluster: USERS users, round-robin over the 3 gateways for DURATION s
#      with recheck RECHECK; the simulator's user/get frequency_limit is 80 %
#      of what the demand would need unshared (3 × USERS per RECHECK), and
#      the gateways' quota is set to the same. Reports user/get per user per
#      recheck (target ≤ 1.1) and the 45009s answered (target 0).
#   2. latency: the same users, LAT_DURATION s with a fast user/get, then
#      LAT_DURATION s with `latency user/get 300ms` (PUT /sim/limits, no
#      frequency limit): p99 of the protected requests (target: within 5 ms).
#      Each after SETTLE s of the same load, not measured, so that the users
#      are steady: the first recheck after signing in is not in the window.
#
# Environment, with defaults: USERS 1000, DURATION 60, RECHECK 10 (seconds),
# INTERVAL 1s (each user's time between requests), LAT_DURATION 40,
# SETTLE RECHECK+2, ROWS "cluster latency" (the rows to run), INSTANCES 3, QUOTA (the gateways' user/get quota per RECHECK; default the simulator's limit), KEEP_TMP (set: keep the temporary directory with the logs).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
USERS=${USERS:-1000}
DURATION=${DURATION:-60}
RECHECK=${RECHECK:-10}
INTERVAL=${INTERVAL:-1s}
LAT_DURATION=${LAT_DURATION:-40}
SETTLE=${SETTLE:-$((RECHECK + 2))}
ROWS=${ROWS:-cluster latency}
INSTANCES=${INSTANCES:-3}

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'scale.sh: %s\n' "$*" >&2 && exit 1; }
command -v curl >/dev/null 2>&1 || die "needs curl"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/wecomgate-scale.XXXXXX")
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ -n "${KEEP_TMP:-}" ]; then printf 'scale.sh: kept %s\n' "$TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export XDG_CONFIG_HOME=$TMP/config XDG_DATA_HOME=$TMP/data

say "building bin/caddy and bench/scalebench"
go build -o bin/caddy ./caddy
go build -o "$TMP/scalebench" ./bench/scalebench
CADDY=$ROOT/bin/caddy

TAKEN=" "
free_port() { # VAR: a port in 19000–19999 nothing listens on
	local p i
	for i in $(seq 200); do
		p=$((19000 + RANDOM % 1000))
		case $TAKEN in *" $p "*) continue ;; esac
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			TAKEN="$TAKEN$p "
			printf -v "$1" '%s' "$p"
			return
		fi
	done
	die "found no free port"
}
free_port SIM
free_port BACKEND
GW_PORTS=()
for i in $(seq "$INSTANCES"); do free_port gwp && GW_PORTS+=("$gwp"); done

SECRET=bench-secret-$RANDOM$RANDOM
CORP_ID=ww7f3a9c2e5b81d046
UNSHARED=$((INSTANCES * USERS))  # user/get per recheck if each instance checked on its own
LIMIT=$((UNSHARED * 8 / 10))
QUOTA=${QUOTA:-$LIMIT} # the gateways' quota per RECHECK

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
		frequency_limit user/get $LIMIT ${RECHECK}s 60s
		corp acme {
			corp_id $CORP_ID
			secret $SECRET
CF
	for i in $(seq 0 $((USERS - 1))); do
		printf '\t\t\tuser s%04d\n' "$i"
	done
	printf '\t\t}\n\t}\n}\n'
} >"$TMP/sim.Caddyfile"

cat >"$TMP/gateway.Caddyfile" <<CF
{
	admin off
	persist_config off
	storage file_system $TMP/storage
}
http://127.0.0.1:{\$GW_PORT} {
	wecom_auth {
		api_base http://127.0.0.1:$SIM
		corp acme {
			corp_id $CORP_ID
			secret $SECRET
		}
		recheck ${RECHECK}s
		quota $QUOTA ${RECHECK}s
	}
	reverse_proxy 127.0.0.1:$BACKEND {
		transport http {
			keepalive_idle_conns_per_host 512
		}
	}
}
CF

start_caddy() { # name config port [env…]
	local name=$1 conf=$2 port=$3
	shift 3
	env "$@" "$CADDY" run --adapter caddyfile --config "$conf" >"$TMP/$name.log" 2>&1 &
	PIDS+=($!)
	local i
	for i in $(seq 100); do
		curl -s -o /dev/null "http://127.0.0.1:$port/" && return
		kill -0 "${PIDS[-1]}" 2>/dev/null || break
		sleep 0.2
	done
	tail -20 "$TMP/$name.log" >&2
	die "$name did not start on port $port"
}
say "starting the simulator (:$SIM, user/get limit $LIMIT per ${RECHECK}s), the backend (:$BACKEND) and $INSTANCES gateways (:${GW_PORTS[*]}) sharing $TMP/storage"
start_caddy sim "$TMP/sim.Caddyfile" "$SIM"
GWS=""
for i in "${!GW_PORTS[@]}"; do
	start_caddy "gateway$i" "$TMP/gateway.Caddyfile" "${GW_PORTS[$i]}" GW_PORT="${GW_PORTS[$i]}"
	GWS+="${GWS:+,}http://127.0.0.1:${GW_PORTS[$i]}"
done

echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(uname -sr), $(go env GOVERSION), commit $(git rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC')"
SB=("$TMP/scalebench" -gateways "$GWS" -sim "http://127.0.0.1:$SIM" -users "$USERS" -interval "$INTERVAL" -recheck "${RECHECK}s")

if [[ " $ROWS " == *" cluster "* ]]; then
say "1. cluster: $USERS users, round-robin over $INSTANCES gateways, ${DURATION}s, recheck ${RECHECK}s, simulator user/get limit $LIMIT per ${RECHECK}s (80 % of $UNSHARED)"
"${SB[@]}" -d "${DURATION}s" | sed 's/^RESULT /RESULT cluster /'
fi
[[ " $ROWS " == *" latency "* ]] || exit 0

JSON=(-H 'Content-Type: application/json')
say "2a. latency: fast user/get, ${LAT_DURATION}s"
curl -sf -X PUT "${JSON[@]}" -d '{"limits":[],"latency":[]}' "http://127.0.0.1:$SIM/sim/limits"
"${SB[@]}" -d "${LAT_DURATION}s" -settle "${SETTLE}s" | sed 's/^RESULT /RESULT fast /'
say "2b. latency: user/get 300ms, ${LAT_DURATION}s"
curl -sf -X PUT "${JSON[@]}" -d '{"limits":[],"latency":[{"endpoint":"user/get","delay":"300ms"}]}' "http://127.0.0.1:$SIM/sim/limits"
"${SB[@]}" -d "${LAT_DURATION}s" -settle "${SETTLE}s" | sed 's/^RESULT /RESULT slow /'
