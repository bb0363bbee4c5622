#!/usr/bin/env bash
# bench/run.sh — wecom_auth against bare Caddy, side by side, on 127.0.0.1.
#
# Builds bin/caddy, starts two Caddy processes from Caddyfiles written to a
# temporary directory (a "front" one with the proxies under test and an
# "upstream" one with the echo backend and the WeCom simulator), drives them
# with wrk and bench/loginbench, prints the table and writes
# bench/results.md. See bench/README.md for what the rows mean.
#
#	bench/run.sh            # HTTP rows, logins, then the Go benchmarks
#	bench/run.sh --no-go    # HTTP rows and logins only
#
# Knobs (environment): DURATION (s per measured wrk run, 5), ROUNDS (5),
# WARMUP (s per row, 2), THREADS (wrk, 2), CONNS (wrk, 48), LOGIN_DURATION
# (s, 8), LOGIN_CONNS (32), LIGHT_CONNS (4), LIGHT_DURATION (s, 5), LIGHT_ROUNDS (3), OTHER_MAX (% of CPU other programs may take
# before a run counts as disturbed, 5), RETRIES (reruns of disturbed runs, 4),
# OUT (bench/results.md), KEEP_TMP (set: keep the temporary directory).
set -euo pipefail

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-5}
WARMUP=${WARMUP:-2}
THREADS=${THREADS:-2}
CONNS=${CONNS:-48}
LOGIN_DURATION=${LOGIN_DURATION:-8}
LOGIN_CONNS=${LOGIN_CONNS:-32}
LIGHT_CONNS=${LIGHT_CONNS:-4}
LIGHT_DURATION=${LIGHT_DURATION:-5}
LIGHT_ROUNDS=${LIGHT_ROUNDS:-3}
OTHER_MAX=${OTHER_MAX:-5}
RETRIES=${RETRIES:-4}
GO_BENCH=1
for arg in "$@"; do
	case $arg in
	--no-go) GO_BENCH=0 ;;
	--go) GO_BENCH=1 ;;
	-h | --help)
		sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "run.sh: unknown argument $arg (try --help)" >&2
		exit 2
		;;
	esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/bench/results.md}
cd "$ROOT"

say() { printf '\n== %s\n' "$*" >&2; }
die() {
	printf 'run.sh: %s\n' "$*" >&2
	exit 1
}

# --- tools -------------------------------------------------------------------

if ! command -v wrk >/dev/null 2>&1; then
	say "wrk is missing: installing it with apt-get"
	if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
		apt-get update -qq >&2 || die "apt-get update failed; install wrk yourself (apt-get install wrk) and rerun"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=120 wrk >&2 ||
			die "apt-get install wrk failed; install wrk yourself and rerun"
	else
		die "wrk is required and cannot be installed here (need apt-get as root): install wrk (Debian/Ubuntu: apt-get install wrk; macOS: brew install wrk) and rerun"
	fi
	command -v wrk >/dev/null 2>&1 || die "wrk still not found after installing it"
fi
for t in go curl awk; do
	command -v $t >/dev/null 2>&1 || die "$t is required"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/wecomgate-bench.XXXXXX")
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if [ -n "${KEEP_TMP:-}" ]; then
		printf 'run.sh: kept %s (Caddyfiles, logs, raw results)\n' "$TMP" >&2
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export XDG_CONFIG_HOME=$TMP/config XDG_DATA_HOME=$TMP/data

say "building bin/caddy and bench/loginbench"
go build -o bin/caddy ./caddy
go build -o "$TMP/loginbench" ./bench/loginbench
CADDY=$ROOT/bin/caddy

# --- configuration -------------------------------------------------------------

# free_port prints a TCP port on 127.0.0.1 that nothing listens on and that
# this run has not handed out yet, below the ephemeral range (so that no
# outgoing connection takes it meanwhile).
TAKEN=" "
EPHEMERAL_LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$EPHEMERAL_LOW" -gt 12000 ] || EPHEMERAL_LOW=61000
free_port() {
	local p i
	for i in $(seq 200); do
		p=$((10000 + RANDOM % (EPHEMERAL_LOW - 10000)))
		case $TAKEN in *" $p "*) continue ;; esac
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			TAKEN="$TAKEN$p "
			echo "$p"
			return
		fi
	done
	die "found no free port"
}
P_BACKEND=$(free_port)
P_SIM=$(free_port)
P_BARE=$(free_port)
P_HDR=$(free_port)
P_GW=$(free_port)
P_FWD=$(free_port)

SECRET=bench-secret-$RANDOM$RANDOM
CORP_ID=ww7f3a9c2e5b81d046 # the length of a real corpid
SIM_USERS=""
LOGIN_USERS=""
for i in $(seq -w 0 99); do
	SIM_USERS+="			user u0$i 用户$i {
				department 1 $((10#$i % 7 + 2))
			}
"
	LOGIN_USERS+="${LOGIN_USERS:+,}u0$i"
done

# The upstream process: the echo backend every row ends at, and the WeCom
# simulator (logins only; sessions are not rechecked during a run).
cat >"$TMP/upstream.Caddyfile" <<EOF
{
	admin off
	persist_config off
}
http://:$P_BACKEND {
	bind 127.0.0.1
	header Content-Type application/json
	respond \`{"backend":"echo","user":"{header.X-WeCom-UserId}","corp":"{header.X-WeCom-Corp}","department":"{header.X-WeCom-Department}"}\` 200
}
http://:$P_SIM {
	bind 127.0.0.1
	wecom_simulator {
		dev_path /sim
		corp acme {
			corp_id $CORP_ID
			secret $SECRET
$SIM_USERS		}
	}
}
EOF

# Every proxy keeps as many idle upstream connections as wrk opens: with
# Caddy's default (32 per host) a 48-connection load closes and redials
# upstream connections all the time, and every row would mostly measure
# TCP handshakes.
KEEPALIVE="transport http {
			keepalive_idle_conns_per_host $((CONNS * 2))
		}"

# The front process: the proxies under test. Rows 2 and 3 use the gateway
# site; row 4 is a plain proxy that asks the gateway's /wecom/auth first.
# Row 1b is stock Caddy adding the five identity headers of SPEC §5 with
# fixed values and no authentication: what those headers alone cost.
cat >"$TMP/front.Caddyfile" <<EOF
{
	admin off
	persist_config off
}
# (1) bare reverse_proxy
http://:$P_BARE {
	bind 127.0.0.1
	reverse_proxy 127.0.0.1:$P_BACKEND {
		$KEEPALIVE
	}
}
# (1b) bare reverse_proxy adding the five identity headers
http://:$P_HDR {
	bind 127.0.0.1
	reverse_proxy 127.0.0.1:$P_BACKEND {
		header_up X-WeCom-UserId u000
		header_up X-WeCom-CorpId $CORP_ID
		header_up X-WeCom-Corp acme
		header_up X-WeCom-Name %E7%94%A8%E6%88%B7000
		header_up X-WeCom-Department 1,2
		$KEEPALIVE
	}
}
# (2), (3), (5) and the auth endpoint of (4)
http://:$P_GW {
	bind 127.0.0.1
	wecom_auth {
		api_base http://127.0.0.1:$P_SIM
		corp acme {
			corp_id $CORP_ID
			secret $SECRET
		}
	}
	reverse_proxy 127.0.0.1:$P_BACKEND {
		$KEEPALIVE
	}
}
# (4) forward_auth to the gateway, as an nginx auth_request user deploys it
http://:$P_FWD {
	bind 127.0.0.1
	forward_auth 127.0.0.1:$P_GW {
		uri /wecom/auth
		copy_headers X-WeCom-UserId X-WeCom-CorpId X-WeCom-Corp X-WeCom-Name X-WeCom-Department
		$KEEPALIVE
	}
	reverse_proxy 127.0.0.1:$P_BACKEND {
		$KEEPALIVE
	}
}
EOF

start_caddy() { # name port
	"$CADDY" run --adapter caddyfile --config "$TMP/$1.Caddyfile" >"$TMP/$1.log" 2>&1 &
	PIDS+=($!)
	eval "PID_$1=$!"
	local i
	for i in $(seq 100); do
		if curl -s -o /dev/null "http://127.0.0.1:$2/"; then
			return
		fi
		kill -0 "${PIDS[-1]}" 2>/dev/null || {
			tail -20 "$TMP/$1.log" >&2
			die "the $1 Caddy exited"
		}
		sleep 0.2
	done
	tail -20 "$TMP/$1.log" >&2
	die "the $1 Caddy did not answer on port $2"
}
say "starting Caddy: upstream (backend :$P_BACKEND, simulator :$P_SIM), front (bare :$P_BARE, gateway :$P_GW, forward_auth :$P_FWD)"
start_caddy upstream "$P_BACKEND"
start_caddy front "$P_BARE"

# --- a session and a check of every row ---------------------------------------------

code=$(curl -sf -XPOST "http://127.0.0.1:$P_SIM/sim/code" -H 'Content-Type: application/json' -d '{"userid":"u000"}' | sed -n 's/.*"code":"\([^"]*\)".*/\1/p')
[ -n "$code" ] || die "the simulator minted no code"
TOKEN=$(curl -sf -XPOST "http://127.0.0.1:$P_GW/wecom/login" -d "{\"code\":\"$code\"}" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
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
ROWS=(bare headers bearer cookie forward)
declare -A URL HDR LABEL
URL[bare]="http://127.0.0.1:$P_BARE/api/orders?page=1"
HDR[bare]="Authorization: Bearer $TOKEN"
LABEL[bare]="(1) bare reverse_proxy"
URL[headers]="http://127.0.0.1:$P_HDR/api/orders?page=1"
HDR[headers]="Authorization: Bearer $TOKEN"
LABEL[headers]="(1b) bare + 5 identity headers"
URL[bearer]="http://127.0.0.1:$P_GW/api/orders?page=1"
HDR[bearer]="Authorization: Bearer $TOKEN"
LABEL[bearer]="(2) wecom_auth, Bearer session"
URL[cookie]="http://127.0.0.1:$P_GW/api/orders?page=1"
HDR[cookie]="Cookie: wecom_session=$TOKEN"
LABEL[cookie]="(3) wecom_auth, session cookie"
URL[forward]="http://127.0.0.1:$P_FWD/api/orders?page=1"
HDR[forward]="Authorization: Bearer $TOKEN"
LABEL[forward]="(4) forward_auth → /wecom/auth"

for r in "${ROWS[@]}"; do
	body=$(curl -s "${COMMON[@]}" -H "${HDR[$r]}" "${URL[$r]}")
	want='"user":"u000"'
	[ "$r" = bare ] && want='"user":""'
	case $body in *"$want"*) ;; *) die "row $r: unexpected answer $body" ;; esac
done
st=$(curl -s -o /dev/null -w '%{http_code}' "${URL[bearer]}")
[ "$st" = 401 ] || die "the gateway let a request without a session through ($st)"
st=$(curl -s -o /dev/null -w '%{http_code}' "${URL[forward]}")
[ "$st" = 401 ] || die "forward_auth let a request without a session through ($st)"

# --- load ------------------------------------------------------------------------

cat >"$TMP/report.lua" <<'EOF'
done = function(summary, latency, requests)
	local s = summary.duration / 1e6
	local e = summary.errors
	io.write(string.format("RESULT requests=%d seconds=%.3f rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d non2xx=%d errors=%d\n",
		summary.requests, s, summary.requests / s, latency:percentile(50), latency:percentile(90),
		latency:percentile(99), latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
EOF

# Light load: each connection waits 2–6 ms (4 on average) before each
# request; wrk starts the clock when it sends, so the wait is not latency.
{ cat "$TMP/report.lua"; echo 'delay = function() return math.random(2, 6) end'; } >"$TMP/light.lua"

# cpu_ticks PID: user+system clock ticks the process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

# field NAME LINE: the value of NAME=… in a RESULT line.
field() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

# cpu_total: busy and all clock ticks of the whole machine, from /proc/stat.
cpu_total() { awk '/^cpu /{all=0; for (i=2;i<=9;i++) all+=$i; print all-$5-$6, all}' /proc/stat; }

run_wrk() { # row seconds [connections script] → RESULT line + front_us / upstream_us (CPU µs per request) + other_pct
	local r=$1 d=$2 c=${3:-$CONNS} script=${4:-$TMP/report.lua} f0 u0 f1 u1 m0 m1 out line n wcpu
	f0=$(cpu_ticks "$PID_front")
	u0=$(cpu_ticks "$PID_upstream")
	m0=$(cpu_total)
	# `time` gives wrk's own CPU, to tell what else ran on the machine.
	if ! { TIMEFORMAT='%U %S'; time wrk -t"$(( THREADS < c ? THREADS : c ))" -c"$c" -d"${d}s" -s "$script" "${COMMON[@]}" -H "${HDR[$r]}" "${URL[$r]}" >"$TMP/wrk.out" 2>&1; } 2>"$TMP/wrk.time"; then
		die "wrk failed on row $r: $(cat "$TMP/wrk.out")"
	fi
	m1=$(cpu_total)
	f1=$(cpu_ticks "$PID_front")
	u1=$(cpu_ticks "$PID_upstream")
	line=$(grep '^RESULT ' "$TMP/wrk.out") || die "no result from wrk on row $r: $(cat "$TMP/wrk.out")"
	n=$(field requests "$line")
	wcpu=$(awk '{print $1 + $2}' "$TMP/wrk.time")
	awk -v line="$line" -v n="$n" -v t="$TICK" -v f0="$f0" -v f1="$f1" -v u0="$u0" -v u1="$u1" -v w="$wcpu" \
		-v m0="$m0" -v m1="$m1" 'BEGIN{
		split(m0, a, " "); split(m1, b, " ")
		busy = (b[1]-a[1])/t; all = (b[2]-a[2])/t; f = (f1-f0)/t; u = (u1-u0)/t
		other = busy - f - u - w; if (other < 0) other = 0
		printf "%s front_us=%.1f upstream_us=%.1f wrk_us=%.1f other_pct=%.1f\n", line, f*1e6/n, u*1e6/n, w*1e6/n, (all > 0 ? 100*other/all : 0) }'
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
if awk -v l="${LOAD_BEFORE%% *}" 'BEGIN{exit !(l > 0.5)}'; then
	say "note: load average is $LOAD_BEFORE before the run: something else is using the CPUs, expect noisy numbers"
fi
T0=$(date +%s)
say "warming up each row for ${WARMUP}s"
for r in "${ROWS[@]}"; do
	run_wrk "$r" "$WARMUP" >/dev/null
done

say "measuring: $ROUNDS rounds × ${#ROWS[@]} rows × ${DURATION}s (wrk -t$THREADS -c$CONNS), rows interleaved"
# A run during which other programs used more than OTHER_MAX % of the
# machine's CPU is disturbed: after the rounds, disturbed runs are made
# again (RETRIES at most, spread out rather than back to back, as such
# disturbances come in bursts), and the table prefers undisturbed runs.
measure() { # row round → appends to raw.ROW; prints; returns 1 if disturbed
	local r=$1 round=$2 line non2xx errs oth
	line=$(run_wrk "$r" "$DURATION") || die "row $r: wrk failed"
	echo "$line round=$round" >>"$TMP/raw.$r"
	non2xx=$(field non2xx "$line")
	errs=$(field errors "$line")
	if [ "$non2xx" != 0 ] || [ "$errs" != 0 ]; then
		die "row $r round $round: $non2xx non-2xx answers, $errs socket errors — the numbers would be meaningless"
	fi
	oth=$(field other_pct "$line")
	printf '  round %s  %-32s %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms  front CPU %5.1f µs/req  other load %4.1f%%\n' "$round" "${LABEL[$r]}" \
		"$(field rps "$line")" "$(awk -v u="$(field p50_us "$line")" 'BEGIN{print u/1000}')" \
		"$(awk -v u="$(field p99_us "$line")" 'BEGIN{print u/1000}')" "$(field front_us "$line")" "$oth" >&2
	awk -v o="$oth" -v m="$OTHER_MAX" 'BEGIN{exit (o > m)}'
}
DISTURBED=()
for round in $(seq "$ROUNDS"); do
	for r in "${ROWS[@]}"; do
		measure "$r" "$round" || DISTURBED+=("$r")
	done
done
RETRIES_LEFT=$RETRIES
while [ "${#DISTURBED[@]}" -gt 0 ] && [ "$RETRIES_LEFT" -gt 0 ]; do
	r=${DISTURBED[0]}
	DISTURBED=("${DISTURBED[@]:1}")
	RETRIES_LEFT=$((RETRIES_LEFT - 1))
	measure "$r" "R" || DISTURBED+=("$r")
done

# Light load: a few connections, each pausing between requests, leave the
# CPUs mostly idle, so latency is the time a request takes rather than the
# time it queued.
# A p99 of a few thousand requests moves by tenths of a millisecond from run
# to run on a virtual machine, so rows are interleaved over LIGHT_ROUNDS.
say "light load: $LIGHT_CONNS connections pausing 4 ms on average between requests, $LIGHT_ROUNDS rounds × ${LIGHT_DURATION}s per row"
for round in $(seq "$LIGHT_ROUNDS"); do
	for r in "${ROWS[@]}"; do
		line=$(run_wrk "$r" "$LIGHT_DURATION" "$LIGHT_CONNS" "$TMP/light.lua")
		echo "$line" >>"$TMP/light.$r"
		[ "$(field non2xx "$line")" = 0 ] && [ "$(field errors "$line")" = 0 ] || die "row $r (light load): errors: $line"
		printf '  light %s  %-32s %9.0f req/s  p50 %6.3f ms  p99 %6.3f ms  other load %4.1f%%\n' "$round" "${LABEL[$r]}" "$(field rps "$line")" \
			"$(awk -v u="$(field p50_us "$line")" 'BEGIN{print u/1000}')" "$(awk -v u="$(field p99_us "$line")" 'BEGIN{print u/1000}')" "$(field other_pct "$line")" >&2
	done
done

say "logins: $LOGIN_CONNS connections for ${LOGIN_DURATION}s against the simulator"
lf0=$(cpu_ticks "$PID_front")
lu0=$(cpu_ticks "$PID_upstream")
LOGIN_LINE=$("$TMP/loginbench" -gateway "http://127.0.0.1:$P_GW" -sim "http://127.0.0.1:$P_SIM" \
	-users "$LOGIN_USERS" -c "$LOGIN_CONNS" -d "${LOGIN_DURATION}s" -codes $((LOGIN_DURATION * 4000)) | grep '^RESULT ') ||
	die "loginbench failed"
lf1=$(cpu_ticks "$PID_front")
lu1=$(cpu_ticks "$PID_upstream")
T1=$(date +%s)

# --- results ---------------------------------------------------------------------

# use.ROW: the runs a row's figures come from, the undisturbed ones if any.
for r in "${ROWS[@]}"; do
	awk -v m="$OTHER_MAX" '{ for (i=1;i<=NF;i++) if ($i ~ /^other_pct=/) { split($i, kv, "="); if (kv[2]+0 <= m+0) print } }' "$TMP/raw.$r" >"$TMP/use.$r"
	[ -s "$TMP/use.$r" ] || cp "$TMP/raw.$r" "$TMP/use.$r"
done

# median_of FILE FIELD: the median of FIELD over the RESULT lines in FILE.
median_of() {
	sed -n "s/.* $2=\([^ ]*\).*/\1/p" "$1" | sort -g |
		awk '{v[NR]=$1} END{ if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2 }'
}
median() { median_of "$TMP/use.$1" "$2"; } # ROW FIELD: over the runs used
# paired ROW: the median over the rounds of the row's req/s divided by row
# 1's in the same round. Rows of a round run back to back, so the ratio
# cancels the slow drifts of a shared virtual machine that move both alike.
# Rounds where either run was disturbed are left out if any remain.
paired() {
	awk -v m="$OTHER_MAX" '
		function get(line, k,   i, n, kv, f) { n = split(line, f, " "); for (i = 1; i <= n; i++) { split(f[i], kv, "="); if (kv[1] == k) return kv[2] } return "" }
		{ rd = get($0, "round"); if (rd == "R") next
		  key = (FILENAME ~ /raw\.bare$/) ? "b" : "r"
		  rps[key, rd] = get($0, "rps"); oth[key, rd] = get($0, "other_pct"); rounds[rd] = 1 }
		END {
			for (pass = 1; pass <= 2 && n == 0; pass++)
				for (rd in rounds) {
					if (!((("b", rd) in rps) && (("r", rd) in rps))) continue
					if (pass == 1 && (oth["b", rd] + 0 > m || oth["r", rd] + 0 > m)) continue
					v[++n] = rps["r", rd] / rps["b", rd]
				}
			for (i = 2; i <= n; i++) { x = v[i]; for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
			if (n == 0) print 0; else if (n % 2) print v[(n + 1) / 2]; else print (v[n / 2] + v[n / 2 + 1]) / 2
		}' "$TMP/raw.bare" "$TMP/raw.$1"
}
range() { # ROW FIELD: min–max over the runs used
	sed -n "s/.* $2=\([^ ]*\).*/\1/p" "$TMP/use.$1" | sort -g | awk 'NR==1{a=$1} {b=$1} END{printf "%.0f–%.0f", a, b}'
}

B_P99=$(median bare p99_us)
B_CPU=$(median bare front_us)
TABLE="| row | req/s (median) | req/s range | × bare | p50 ms | p99 ms | Δp99 vs bare | front CPU µs/req | Δ CPU vs bare | runs used | other load (worst run) |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for r in "${ROWS[@]}"; do
	rps=$(median "$r" rps)
	p50=$(median "$r" p50_us)
	p99=$(median "$r" p99_us)
	cpu=$(median "$r" front_us)
	oth=$(sed -n 's/.* other_pct=\([^ ]*\).*/\1/p' "$TMP/use.$r" | sort -g | tail -1)
	used="$(wc -l <"$TMP/use.$r")/$(wc -l <"$TMP/raw.$r")"
	TABLE+=$'\n'$(awk -v l="${LABEL[$r]}" -v rps="$rps" -v rg="$(range "$r" rps)" -v x="$(paired "$r")" -v p50="$p50" -v p99="$p99" -v bp="$B_P99" -v cpu="$cpu" -v bc="$B_CPU" -v oth="$oth" -v used="$used" -v bare="$([ "$r" = bare ] && echo 1 || echo 0)" \
		'BEGIN{ if (bare) printf "| %s | %.0f | %s | 1 | %.2f | %.2f | — | %.1f | — | %s | %.1f %% |", l, rps, rg, p50/1000, p99/1000, cpu, used, oth;
		        else printf "| %s | %.0f | %s | %.3f | %.2f | %.2f | %+.2f ms | %.1f | %+.1f | %s | %.1f %% |", l, rps, rg, x, p50/1000, p99/1000, (p99-bp)/1000, cpu, cpu-bc, used, oth }')
done
L_N=$(field logins "$LOGIN_LINE")
TABLE+=$'\n'$(awk -v rps="$(field rps "$LOGIN_LINE")" -v p50="$(field p50_us "$LOGIN_LINE")" -v p99="$(field p99_us "$LOGIN_LINE")" \
	-v n="$L_N" -v e="$(field errors "$LOGIN_LINE")" -v a="$lf0" -v b="$lf1" -v t="$TICK" \
	'BEGIN{ printf "| (5) POST /wecom/login (simulator as WeCom) | %.0f logins/s | %d logins, %d errors | — | %.2f | %.2f | — | %.1f | — | 1/1 | |", rps, n, e, p50/1000, p99/1000, (b-a)/t*1e6/n }')
B_LP99=$(median_of "$TMP/light.bare" p99_us)
LIGHT="| row (light load) | req/s | p50 ms | p99 ms | p99 range ms | Δp99 vs bare | other load (worst run) |
|---|---:|---:|---:|---:|---:|---:|"
for r in "${ROWS[@]}"; do
	f=$TMP/light.$r
	LIGHT+=$'\n'$(awk -v l="${LABEL[$r]}" -v rps="$(median_of "$f" rps)" -v p50="$(median_of "$f" p50_us)" -v p99="$(median_of "$f" p99_us)" \
		-v rg="$(sed -n 's/.* p99_us=\([^ ]*\).*/\1/p' "$f" | sort -g | awk 'NR==1{a=$1} {b=$1} END{printf "%.3f–%.3f", a/1000, b/1000}')" \
		-v bp="$B_LP99" -v oth="$(sed -n 's/.* other_pct=\([^ ]*\).*/\1/p' "$f" | sort -g | tail -1)" -v bare="$([ "$r" = bare ] && echo 1 || echo 0)" \
		'BEGIN{ printf "| %s | %.0f | %.3f | %.3f | %s | %s | %.1f %% |", l, rps, p50/1000, p99/1000, rg, (bare ? "—" : sprintf("%+.3f ms", (p99-bp)/1000)), oth }')
done
LOGIN_SIM_US=$(awk -v a="$lu0" -v b="$lu1" -v t="$TICK" -v n="$L_N" 'BEGIN{printf "%.0f", (b-a)/t*1e6/n}')

CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
[ -n "$CPU_MODEL" ] || CPU_MODEL=unknown
MEM=$(awk '/^MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(GIT_OPTIONAL_LOCKS=0 git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	COMMIT="$COMMIT + uncommitted changes"
fi
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')

printf '\n%s\n\n%s\n' "$TABLE" "$LIGHT" >&2

# --- Go benchmarks of the middleware itself ---------------------------------------

GO_SECTION=""
if [ "$GO_BENCH" = 1 ]; then
	# Free the CPUs for them.
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	PIDS=()
	say "Go benchmarks: the middleware in-process (module/wecomauth, module/session)"
	go_ok=1
	go test -run '^$' -bench . -benchmem -count 1 ./module/session/ >"$TMP/go.session.log" 2>&1 || go_ok=0
	go test -run '^$' -bench '^BenchmarkProtected$' -benchmem -count 1 ./module/wecomauth/ >"$TMP/go.protected.log" 2>&1 || go_ok=0
	go test -run '^$' -bench '^BenchmarkMemory10kSessions$' -benchtime 1000000x -count 1 ./module/wecomauth/ >"$TMP/go.memory.log" 2>&1 || go_ok=0
	grep -E '^Benchmark' "$TMP/go.session.log" >"$TMP/go.session" || true
	grep -E '^Benchmark' "$TMP/go.protected.log" >"$TMP/go.protected" || true
	grep -E '^Benchmark|bench_test.go' "$TMP/go.memory.log" | sed 's/^ *bench_test.go:[0-9]*: //' >"$TMP/go.memory" || true
	if [ "$go_ok" = 0 ]; then
		tail -n 15 "$TMP"/go.*.log >&2
		printf 'run.sh: a Go benchmark failed (output above); the HTTP results are still written\n' >&2
	fi
	cat "$TMP/go.session" "$TMP/go.protected" "$TMP/go.memory" >&2
	GO_SECTION="
## The middleware alone (Go benchmarks)

\`go test -run '^\$' -bench . -benchmem ./module/session/ ./module/wecomauth/\`: one request through
\`(*wecomauth.Handler).ServeHTTP\` with a no-op next handler, no network (\`fresh-*\`: with Caddy's
per-request preparation; the middleware's share is fresh-bearer − fresh-none).

| benchmark | ns/op | B/op | allocs/op |
|---|---:|---:|---:|
$(cat "$TMP/go.session" "$TMP/go.protected" | awk '{name=$1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name);
	for (i=2;i<=NF;i++){ if ($i=="ns/op") ns=$(i-1); if ($i=="B/op") bo=$(i-1); if ($i=="allocs/op") al=$(i-1) }
	printf "| %s | %s | %s | %s |\n", name, ns, bo, al}')

10,000 sessions × 1,000,000 requests (\`go test -run '^\$' -bench Memory10kSessions -benchtime 1000000x ./module/wecomauth/\`):

\`\`\`
$(grep -v '^Benchmark' "$TMP/go.memory")
\`\`\`
"
fi

cat >"$OUT" <<EOF
# wecomgate benchmark results

Produced by \`bench/run.sh\` (see [README](README.md) for what the rows mean and how to read them).

- date: $DATE
- machine: $(nproc) CPUs ($CPU_MODEL), $MEM RAM, $(uname -sr)
- Go: $(go env GOVERSION); Caddy: $("$CADDY" version | awk '{print $1}'); wrk: $(wrk -v 2>&1 | head -1 | awk '{print $2}')
- wecomgate commit: $COMMIT
- load: wrk -t$THREADS -c$CONNS, ${DURATION}s per run, $ROUNDS rounds with the rows interleaved, ${WARMUP}s warm-up per row;
  medians over the rounds. Logins: bench/loginbench, $LOGIN_CONNS connections, ${LOGIN_DURATION}s.
- load average just before the run: $LOAD_BEFORE (anything much above 0 means other work shared the CPUs)
- everything (wrk, the front Caddy, the upstream Caddy with backend and simulator) shares the same $(nproc) CPUs:
  req/s is what is left for the proxy after the load generator and the backend took their share.
- every row sends the same request: a mini program's usual wx.request headers and a Bearer token (row 3:
  the token as a cookie instead); upstream keep-alive pools hold $((CONNS * 2)) idle connections, so no row redials.

$TABLE

"× bare" is the median over the rounds of the row's req/s divided by row (1)'s in the same round (rows of a
round run back to back, so slow drifts of the machine cancel out). Row (1b) is stock Caddy adding the five
identity headers of SPEC §5 with fixed values, no authentication: the cost of the headers themselves, which
rows 2 and 3 also pay. "Δp99" is the p99 latency minus row (1)'s. "front CPU" is the
CPU time the front Caddy process (the proxies and the gateway) spent per request, from /proc: the
least noisy measure of what each row costs; "Δ CPU" is that minus row (1)'s. A login also cost the simulator (upstream process)
about $LOGIN_SIM_US µs of CPU. "other load" is the share of the machine's CPU time used by anything
but wrk and the two Caddy processes (/proc/stat), the worst of the runs used: above a few percent
something else was running and that row's req/s and latency are disturbed. Runs with more than
$OTHER_MAX % were made again after the rounds (at most $RETRIES times in all) and a row's figures come from its
undisturbed runs when it has any ("runs used": used/made).

Under light load ($LIGHT_CONNS connections, each pausing 2–6 ms between requests, $LIGHT_ROUNDS interleaved rounds of
${LIGHT_DURATION}s per row, medians) the CPUs are mostly idle, so latency is what a request takes rather than how long it queued:

$LIGHT
$GO_SECTION
Whole run: $((T1 - T0)) s of load.
EOF
say "wrote ${OUT#"$ROOT"/}"
