# bench/lib.sh: what bench/run.sh and bench/scale.sh share. Sourced, not
# run: set SCRIPT (the name messages carry) first.

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "$SCRIPT" "$*" >&2 && exit 1; }

# bench_tmp PREFIX [WHAT]: makes the temporary directory TMP, where
# Caddy's config and data go too, and removes it (after stopping what
# was started) when the script ends, unless KEEP_TMP is set: then it says
# where it is and WHAT it holds.
PIDS=()
bench_tmp() {
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
	KEPT_WHAT=${2:-}
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
	export XDG_CONFIG_HOME=$TMP/config XDG_DATA_HOME=$TMP/data
}
bench_cleanup() {
	stop_started
	if [ -n "${KEEP_TMP:-}" ]; then
		printf '%s: kept %s%s\n' "$SCRIPT" "$TMP" "${KEPT_WHAT:+ ($KEPT_WHAT)}" >&2
	else
		rm -rf "$TMP"
	fi
}

# started: the process just started in the background joins PIDS.
started() { PIDS+=("$1"); }

# stop_started stops every process started.
stop_started() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	PIDS=()
}

# wait_listening WHAT PORT LOG: waits (20 s at most) until the process
# started last answers HTTP on 127.0.0.1:PORT; else shows LOG's end and
# dies.
wait_listening() {
	local i
	for i in $(seq 100); do
		curl -s -o /dev/null "http://127.0.0.1:$2/" && return
		kill -0 "${PIDS[-1]}" 2>/dev/null || break
		sleep 0.2
	done
	tail -20 "$3" >&2
	die "$1 did not start on port $2"
}

# free_port VAR LOW HIGH sets VAR to a TCP port in [LOW, HIGH) on
# 127.0.0.1 that nothing listens on and that this script has not handed
# out yet. Caddy is given fixed ports rather than binding port 0 and
# reporting it, as one config must name another's.
TAKEN=" "
free_port() {
	local p i
	for i in $(seq 200); do
		p=$(($2 + RANDOM % ($3 - $2)))
		case $TAKEN in *" $p "*) continue ;; esac
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			TAKEN="$TAKEN$p "
			printf -v "$1" '%s' "$p"
			return
		fi
	done
	die "found no free port"
}
