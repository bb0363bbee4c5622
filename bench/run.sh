#!/usr/bin/env bash
# usage: bench/run.sh [--no-go | --go] [--no-scale | --scale]
#
# Measures wecom_auth against bare Caddy on 127.0.0.1 and writes the results
# as Markdown (bench/README.md explains them). Needs go, curl and wrk, and
# installs nothing (Debian/Ubuntu: apt-get install curl wrk).
#
# Orchestration only: builds bin/caddy, starts two Caddy processes
# (bench/front.Caddyfile: the proxies under test; bench/upstream.Caddyfile:
# the echo backend and the WeCom simulator), drives them with wrk and
# bench/loginbench, and keeps what those print, with /proc's CPU counters
# before and after each run, in $TMP/raw. bench/report (Go) does all the
# arithmetic: the progress lines, the tables and bench/results.md.
#
#   --go        after the HTTP rows, run the Go benchmarks of the middleware (default)
#   --no-go     skip them
#   --scale     after the HTTP rows, run issue 15's rows with bench/scale.sh
#               (default; about 5 minutes with the defaults below: the cluster
#               row about 1, latency 2, over budget 2)
#   --no-scale  skip them
#   -h, --help  this text
#
# Environment, with defaults:
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)

# Every numeric knob: name, default, meaning (the defaults and --help).
KNOBS=(
	"DURATION 5 seconds per measured wrk run"
	"ROUNDS 5 measured runs per row, the rows interleaved (1 1b 2 3 4, 1 1b 2 3 4, …)"
	"WARMUP 2 seconds of warm-up per row before the rounds"
	"THREADS 2 wrk threads"
	"CONNS 48 wrk connections (upstream keep-alive pools hold twice as many)"
	"LIGHT_CONNS 4 connections of the light-load runs, each pausing 2–6 ms between requests"
	"LIGHT_DURATION 5 seconds per light-load run"
	"LIGHT_ROUNDS 3 light-load runs per row, interleaved"
	"LOGIN_DURATION 8 seconds of the login run (bench/loginbench)"
	"LOGIN_CONNS 32 loginbench connections"
	"OTHER_MAX 5 % of the machine's CPU other programs may use before a run counts as disturbed"
	"RETRIES 4 disturbed runs made again after the rounds, at most, over the whole table"
	"SCALE_USERS 1000 users of the scale rows' cluster row (bench/scale.sh's USERS)"
	"SCALE_DURATION 60 seconds measured of the cluster and over-budget rows"
	"SCALE_LAT_USERS 300 users of the latency row (at 1000 the 2 CPUs saturate)"
	"SCALE_LAT_DURATION 40 seconds measured of each half of the latency row"
	"SCALE_OVER_USERS 300 steady users of the over-budget row (quota: a third of their rechecks)"
	"SCALE_LOGIN_RATE 1 new users signing in per second during the over-budget row"
)

usage() { # the comment at the top, then the knobs
	sed -n '2,/^set -/{/^set -/d;s/^# \{0,1\}//;p}' "$0"
	for k in "${KNOBS[@]}"; do
		read -r name def meaning <<<"$k"
		printf '  %-18s %-4s %s\n' "$name" "$def" "$meaning"
	done
	cat <<'EOF'
  OUT                bench/results.md  where the Markdown goes
  KEEP_TMP           unset  set to keep the temporary directory: Caddy logs and raw/,
                            the raw measurements (go run ./bench/report results
                            DIR/raw remakes the Markdown from them)
  TMPDIR             /tmp   where the temporary directory is made
EOF
}

SCRIPT=run.sh
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

GO_BENCH=1
SCALE=1
for arg in "$@"; do
	case $arg in
	--no-go) GO_BENCH=0 ;;
	--go) GO_BENCH=1 ;;
	--no-scale) SCALE=0 ;;
	--scale) SCALE=1 ;;
	-h | --help) usage && exit 0 ;;
	*) die "unknown argument $arg (try --help)" ;;
	esac
done
for k in "${KNOBS[@]}"; do
	read -r name def _ <<<"$k"
	printf -v "$name" '%s' "${!name:-$def}"
	re='^[0-9]+$'
	[ "$name" != OTHER_MAX ] || re='^[0-9]+(\.[0-9]+)?$'
	[[ ${!name} =~ $re ]] || die "$name must be a whole number (OTHER_MAX may have decimals), not '${!name}'"
done
[ "$ROUNDS" -ge 1 ] && [ "$LIGHT_ROUNDS" -ge 1 ] || die "ROUNDS and LIGHT_ROUNDS must be at least 1: the tables need a run of every row"
OUT=${OUT:-$ROOT/bench/results.md}
[[ $OUT == /* ]] || OUT=$PWD/$OUT # before the cd
cd "$ROOT"

[ -r /proc/stat ] || die "needs Linux: the CPU figures come from /proc"
command -v go >/dev/null 2>&1 || die "needs Go (https://go.dev/dl/)"
for t in curl wrk; do
	command -v "$t" >/dev/null 2>&1 || die "needs $t, and installs nothing: install it (Debian/Ubuntu: apt-get install $t) and rerun"
done

bench_tmp wecomgate-bench "Caddy logs; raw measurements in raw/"
RAW=$TMP/raw
mkdir "$RAW"

say "building bin/caddy, bench/loginbench and bench/report"
go build -o bin/caddy ./caddy
go build -o "$TMP/loginbench" ./bench/loginbench
go build -o "$TMP/report" ./bench/report
CADDY=$ROOT/bin/caddy
REPORT=$TMP/report

# --- the two Caddy processes -----------------------------------------------------

# The ports are below the ephemeral range, so that no outgoing
# connection takes one meanwhile.
{ read -r EPHEMERAL_LOW _ </proc/sys/net/ipv4/ip_local_port_range; } 2>/dev/null || EPHEMERAL_LOW=32768
[ "$EPHEMERAL_LOW" -gt 12000 ] || EPHEMERAL_LOW=61000
# The Caddyfiles read their ports, secrets and users from these.
for v in BENCH_BACKEND BENCH_SIM BENCH_BARE BENCH_HDR BENCH_GW BENCH_FWD; do
	free_port "$v" 10000 "$EPHEMERAL_LOW"
	export "$v"
done
export BENCH_SECRET=bench-secret-$RANDOM$RANDOM
export BENCH_CORP_ID=ww7f3a9c2e5b81d046 # the length of a real corpid
export BENCH_KEEPALIVE=$((CONNS * 2))
export BENCH_SIM_USERS=""
LOGIN_USERS=""
for i in $(seq -w 0 99); do
	BENCH_SIM_USERS+="user u0$i 用户$i {
				department 1 $((10#$i % 7 + 2))
			}
			"
	LOGIN_USERS+="${LOGIN_USERS:+,}u0$i"
done

start_caddy() { # name port
	"$CADDY" run --adapter caddyfile --config "bench/$1.Caddyfile" >"$TMP/$1.log" 2>&1 &
	started $!
	eval "PID_$1=$!"
	wait_listening "the $1 Caddy" "$2" "$TMP/$1.log"
}
say "starting Caddy: upstream (backend :$BENCH_BACKEND, simulator :$BENCH_SIM), front (bare :$BENCH_BARE, gateway :$BENCH_GW, forward_auth :$BENCH_FWD)"
start_caddy upstream "$BENCH_BACKEND"
start_caddy front "$BENCH_BARE"

# --- a session and a check of every row -------------------------------------------

JSON=(-H 'Content-Type: application/json')
code=$(curl -s "${JSON[@]}" -d '{"userid":"u000"}' "http://127.0.0.1:$BENCH_SIM/sim/code" | sed -n 's/.*"code":"\([^"]*\)".*/\1/p')
[ -n "$code" ] || die "the simulator minted no code (see $TMP/upstream.log)"
TOKEN=$(curl -s "${JSON[@]}" -d "{\"code\":\"$code\"}" "http://127.0.0.1:$BENCH_GW/wecom/login" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
[ -n "$TOKEN" ] || die "login failed (see $TMP/front.log)"

# Every row sends the request a WeCom mini program's wx.request sends (its
# usual headers, the same in every row) plus the row's credential; the bare
# rows carry the same Bearer token, so all rows put the same bytes on the wire
# and differ only in what the front does with them.
COMMON=(
	-H "User-Agent: Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 wxwork/4.1.30 MicroMessenger/7.0.1 Language/zh ColorScheme/Light"
	-H "Referer: https://servicewechat.com/wx5823bf96d3bd56c7/12/page-frame.html"
	-H "Content-Type: application/json"
	-H "Accept: */*"
	-H "Accept-Encoding: gzip, deflate, br"
)
ROWS=(bare headers bearer cookie forward) # bench/report has their labels
declare -A URL HDR PORT=([bare]=$BENCH_BARE [headers]=$BENCH_HDR [bearer]=$BENCH_GW [cookie]=$BENCH_GW [forward]=$BENCH_FWD)
for r in "${ROWS[@]}"; do
	URL[$r]="http://127.0.0.1:${PORT[$r]}/api/orders?page=1"
	HDR[$r]="Authorization: Bearer $TOKEN"
done
HDR[cookie]="Cookie: wecom_session=$TOKEN"

for r in "${ROWS[@]}"; do
	want='"user":"u000"'
	[ "$r" = bare ] && want='"user":""'
	body=$(curl -s "${COMMON[@]}" -H "${HDR[$r]}" "${URL[$r]}")
	case $body in *"$want"*) ;; *) die "row $r: unexpected answer $body" ;; esac
done
for r in bearer forward; do
	st=$(curl -s -o /dev/null -w '%{http_code}' "${URL[$r]}")
	[ "$st" = 401 ] || die "row $r let a request without a session through ($st)"
done

# --- load ------------------------------------------------------------------------

COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(GIT_OPTIONAL_LOCKS=0 git status --porcelain --untracked-files=no 2>/dev/null)" ] || COMMIT+=" + uncommitted changes"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# What bench/report needs besides the runs, as it comes.
{
	for k in "${KNOBS[@]}"; do read -r name _ <<<"$k" && echo "$name=${!name}"; done
	cat <<EOF
CLK_TCK=$(getconf CLK_TCK)
CPUS=$(nproc)
CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
MEMTOTAL=$(sed -n 's/^MemTotal:[[:space:]]*//p' /proc/meminfo)
KERNEL=$(uname -sr)
GO_VERSION=$(go env GOVERSION)
CADDY_VERSION=$("$CADDY" version)
WRK_VERSION=$(wrk -v 2>&1 | head -1)
COMMIT=$COMMIT
LOAD_BEFORE=$LOAD_BEFORE
T0=$(date +%s)
EOF
} >"$RAW/meta"

# snapshot before|after: the CPU counters of the two Caddy processes and of
# the machine, as /proc has them.
snapshot() {
	printf '@%s front %s\n' "$1" "$(<"/proc/$PID_front/stat")"
	printf '@%s upstream %s\n' "$1" "$(<"/proc/$PID_upstream/stat")"
	printf '@%s %s\n' "$1" "$(head -1 /proc/stat)"
}

# run_wrk FILE ROW SECONDS CONNECTIONS [wrk options]: one wrk run, its output
# in FILE between the snapshots.
run_wrk() {
	local f=$1 r=$2 d=$3 c=$4
	shift 4
	snapshot before >"$f"
	# time gives wrk's own CPU, to tell what else ran on the machine.
	if ! { TIMEFORMAT='@wrk-cpu %U %S'; time wrk --latency -t"$((THREADS < c ? THREADS : c))" -c"$c" -d"${d}s" "$@" \
		"${COMMON[@]}" -H "${HDR[$r]}" "${URL[$r]}" >>"$f" 2>&1; } 2>>"$f"; then
		die "wrk failed on row $r: $(cat "$f")"
	fi
	snapshot after >>"$f"
}

# measure FILE ROW SECONDS CONNECTIONS [wrk options]: run_wrk, then
# bench/report's line on the run. Any failed request ends everything (the
# numbers would be meaningless); a disturbed run returns 1.
measure() {
	local st=0
	run_wrk "$@"
	"$REPORT" check "$1" || st=$?
	case $st in 0) ;; 3) return 1 ;; *) exit 1 ;; esac
}

say "load average before the run: $LOAD_BEFORE (well above 0: something else uses the CPUs, expect noisy numbers)"
say "warming up each row for ${WARMUP}s"
for r in "${ROWS[@]}"; do
	run_wrk "$TMP/warmup.raw" "$r" "$WARMUP" "$CONNS"
done

say "measuring: $ROUNDS rounds × ${#ROWS[@]} rows × ${DURATION}s (wrk -t$THREADS -c$CONNS), rows interleaved"
# Disturbed runs (other programs took more than OTHER_MAX % of the CPU) are
# made again after the rounds, RETRIES at most, spread out rather than back
# to back as such disturbances come in bursts; the tables prefer the
# undisturbed runs.
DISTURBED=()
for round in $(seq "$ROUNDS"); do
	for r in "${ROWS[@]}"; do
		measure "$RAW/load.$r.$round.raw" "$r" "$DURATION" "$CONNS" || DISTURBED+=("$r")
	done
done
for retry in $(seq "$RETRIES"); do
	[ ${#DISTURBED[@]} -gt 0 ] || break
	r=${DISTURBED[0]}
	DISTURBED=("${DISTURBED[@]:1}")
	measure "$RAW/load.$r.R$retry.raw" "$r" "$DURATION" "$CONNS" || DISTURBED+=("$r")
done

# A p99 of a few thousand requests moves by tenths of a millisecond from run
# to run on a virtual machine, so rows are interleaved over LIGHT_ROUNDS.
# Light runs are not made again: the table shows the worst other load.
say "light load: $LIGHT_CONNS connections pausing 4 ms on average between requests, $LIGHT_ROUNDS rounds × ${LIGHT_DURATION}s per row"
for round in $(seq "$LIGHT_ROUNDS"); do
	for r in "${ROWS[@]}"; do
		measure "$RAW/light.$r.$round.raw" "$r" "$LIGHT_DURATION" "$LIGHT_CONNS" -s bench/light.lua || true
	done
done

say "logins: $LOGIN_CONNS connections for ${LOGIN_DURATION}s against the simulator"
snapshot before >"$RAW/login.raw"
"$TMP/loginbench" -gateway "http://127.0.0.1:$BENCH_GW" -sim "http://127.0.0.1:$BENCH_SIM" -users "$LOGIN_USERS" \
	-c "$LOGIN_CONNS" -d "${LOGIN_DURATION}s" -codes $((LOGIN_DURATION * 4000)) >>"$RAW/login.raw" || die "loginbench failed"
snapshot after >>"$RAW/login.raw"
echo "T1=$(date +%s)" >>"$RAW/meta"

"$REPORT" tables "$RAW" >&2

# --- issue 15's rows: a cluster of gateways against the simulator ------------------

if [ "$SCALE" = 1 ]; then
	stop_started # frees the CPUs for them
	say "the scale rows (bench/scale.sh): cluster ($SCALE_USERS users, ${SCALE_DURATION}s), latency ($SCALE_LAT_USERS users, 2 × ${SCALE_LAT_DURATION}s), over budget ($SCALE_OVER_USERS users, $SCALE_LOGIN_RATE logins/s, ${SCALE_DURATION}s)"
	# Its progress and the gateways' findings go to the terminal; its
	# RESULT lines to scale.log for bench/report.
	if ! USERS=$SCALE_USERS DURATION=$SCALE_DURATION LAT_USERS=$SCALE_LAT_USERS LAT_DURATION=$SCALE_LAT_DURATION \
		OVER_USERS=$SCALE_OVER_USERS OVER_LOGIN_RATE=$SCALE_LOGIN_RATE ROWS="cluster latency over" \
		TMPDIR=$TMP KEEP_TMP=${KEEP_TMP:-} bench/scale.sh >"$RAW/scale.log"; then
		printf 'run.sh: bench/scale.sh failed (output above); the other results are still written\n' >&2
		grep -q '^RESULT ' "$RAW/scale.log" || rm -f "$RAW/scale.log"
	fi
	"$REPORT" scale "$RAW/scale.log" >&2 || true
fi

# --- Go benchmarks of the middleware itself ---------------------------------------

if [ "$GO_BENCH" = 1 ]; then
	stop_started # frees the CPUs for them
	say "Go benchmarks: the middleware in-process (module/wecomauth, module/internal/session)"
	go_ok=1
	go test -run '^$' -bench . -benchmem -count 1 ./module/internal/session/ >"$RAW/go.session.log" 2>&1 || go_ok=0
	go test -run '^$' -bench '^BenchmarkProtected$' -benchmem -count 1 ./module/wecomauth/ >"$RAW/go.protected.log" 2>&1 || go_ok=0
	go test -run '^$' -bench '^BenchmarkMemory10kSessions$' -benchtime 1000000x -count 1 ./module/wecomauth/ >"$RAW/go.memory.log" 2>&1 || go_ok=0
	# Needs redis-server (it skips without); about 90 s, most of it writing the 200,000 records.
	go test -run '^$' -bench '^BenchmarkRedis200k$' -benchtime 50x -count 1 ./module/internal/cluster/ >"$RAW/go.cluster.log" 2>&1 || go_ok=0
	grep -h -e '^Benchmark' -e 'bench_test.go' "$RAW"/go.*.log >&2 || true
	if [ "$go_ok" = 0 ]; then
		tail -n 15 "$RAW"/go.*.log >&2
		printf 'run.sh: a Go benchmark failed (output above); the HTTP results are still written\n' >&2
	fi
fi

# Made aside first, so that a failing report leaves the old results alone.
"$REPORT" results "$RAW" >"$TMP/results.md"
cp "$TMP/results.md" "$OUT"
say "wrote ${OUT#"$ROOT"/}"
