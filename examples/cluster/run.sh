#!/usr/bin/env bash
# The cluster example from one command: three nodes as processes on
# loopback, a supervisor on alpha keeping workers on beta and gamma, gamma
# killed with SIGKILL halfway, and the work moving to beta.
#
#     examples/cluster/run.sh [PROGRAM]
#
# PROGRAM is a built example-cluster; without it the script builds one in
# $BUILD (default build/debug, set up if missing) from the source tree it
# sits in. The nodes listen on 127.0.0.1 with ports the system picks;
# beta is the seed the others are given, and the full mesh does the rest
# (alpha learns of gamma from beta). Each node's output is shown as it
# comes, its lines prefixed by its name. The last line is
# "cluster: PASS" or "cluster: FAIL (why)", and the exit status 0 or 1.
# Waits are for events, each bounded by $WAIT seconds (default 60).
set -u
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
prog="${1:-}"
if [ -z "$prog" ]; then
	build="${BUILD:-build/debug}"
	case "$build" in /*) ;; *) build="$root/$build" ;; esac
	if [ ! -d "$build" ]; then
		meson setup "$build" "$root" >/dev/null || exit 1
	fi
	ninja -C "$build" examples/cluster/example-cluster >/dev/null || exit 1
	prog="$build/examples/cluster/example-cluster"
fi
wait_s="${WAIT:-60}"
secret="cluster-example-secret"
dir="$(mktemp -d)"
pids=()

say() { echo "cluster: $*"; }

finish() { # $1 = status, rest = reason
	local rc="$1"
	shift
	for p in "${pids[@]}"; do
		kill -KILL "$p" 2>/dev/null
	done
	wait 2>/dev/null
	if [ "$rc" = 0 ]; then
		say "PASS"
	else
		say "FAIL ($*)"
	fi
	rm -rf "$dir"
	exit "$rc"
}
trap 'finish 1 interrupted' INT TERM

# start NAME [ARGS...]: run a node, its output to $dir/NAME.log and, with
# its name in front, to ours.
start() {
	local name="$1"
	shift
	: >"$dir/$name.log"
	"$prog" --node "$name" --listen tcp://127.0.0.1:0 --secret "$secret" \
		"$@" >"$dir/$name.log" 2>&1 &
	eval "pid_$name=$!"
	pids+=("$!")
	tail -n +1 -f --pid="$!" "$dir/$name.log" 2>/dev/null |
		sed -u "s/^/  /" &
}

# await NAME PATTERN [SINCE-LINE]: wait until NAME's log has a line
# matching PATTERN (after line SINCE-LINE), or fail.
await() {
	local name="$1" pattern="$2" since="${3:-0}" t=0
	while ! tail -n +"$((since + 1))" "$dir/$name.log" | grep -q -- "$pattern"; do
		if [ "$t" -ge "$((wait_s * 10))" ]; then
			finish 1 "$name never printed \"$pattern\""
		fi
		sleep 0.1
		t=$((t + 1))
	done
}

lines() { wc -l <"$dir/$1.log"; }

# stop NAME: SIGTERM, then its exit status.
stop() {
	local name="$1" pid
	eval "pid=\$pid_$name"
	kill -TERM "$pid"
	wait "$pid"
}

say "starting beta (a host, the seed)"
start beta
await beta "listening at"
seed="$(sed -n 's/.*listening at \([^,]*\).*/\1/p' "$dir/beta.log" | head -1)"

say "starting gamma (a host), seed $seed"
start gamma --seed "$seed"
await gamma "listening at"

say "starting alpha (the supervisor), seed $seed only"
start alpha --seed "$seed" --work-on beta,gamma --keepers 4
await alpha "all 4 workers placed (beta 2, gamma 2)"
say "workers on beta and gamma; jobs flowing for a second"
sleep 1

mark="$(lines alpha)"
say "killing gamma with SIGKILL"
kill -KILL "$pid_gamma"
wait "$pid_gamma" 2>/dev/null
await alpha "NODEDOWN gamma" "$mark"
await alpha "all 4 workers placed (beta 4)" "$mark"
say "gamma's keepers restarted, their workers now on beta"
sleep 1

say "stopping alpha (SIGTERM)"
stop alpha
alpha_rc=$?
say "stopping beta (SIGTERM)"
stop beta
beta_rc=$?
sleep 0.2

[ "$alpha_rc" = 0 ] || finish 1 "alpha exited with $alpha_rc"
[ "$beta_rc" = 0 ] || finish 1 "beta exited with $beta_rc"
grep -q "sent .* == answered .* + lost .*: ok" "$dir/alpha.log" ||
	finish 1 "alpha's counts do not add up"
# Every job beta did, alpha counted as answered by beta: the drain waited
# for each one's outcome.
by_alpha="$(sed -n 's/.*  beta answered \([0-9]*\),.*/\1/p' "$dir/alpha.log")"
by_beta="$(sed -n 's/^beta: \([0-9]*\) jobs done.*/\1/p' "$dir/beta.log")"
say "beta did $by_beta jobs; alpha counted $by_alpha answered by beta"
[ -n "$by_beta" ] && [ "$by_alpha" = "$by_beta" ] ||
	finish 1 "beta's count and alpha's differ"
grep -q "^beta: messages .*: ok" "$dir/beta.log" ||
	finish 1 "beta's messages are not all counted"
finish 0
