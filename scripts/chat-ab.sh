#!/bin/bash
# Paired rounds of the chat fan-out (docs/BENCHMARKS.md, "Chat fan-out"):
# the chat example as shipped, its rate limit lifted (--rate 0), against the
# Go chat server of tests/bench/peers/go-chat (same protocol, same flag),
# each under the same chat-load command. Builds both first: the release
# build of troupe (set up in build/release if missing) and the Go server
# (build/peers/go-chat). Every round runs each server once, the order
# alternating from round to round, so the machine's slow and fast phases
# fall on both. Every build and every run holds /tmp/bench.lock on its
# own, so others can build between runs.
#
#     scripts/chat-ab.sh [-r ROUNDS] [-c CLIENTS] [-R ROOMS] [-l LINES] [-s] \
#         [-t "EXAMPLE OPTIONS"]
#
# Defaults: 5 rounds, 200 clients, 20 rooms, 2000 lines each; -t adds
# options to the example's command (e.g. "--flush-ms 5"). A server is
# started from this script's session, as the command in BENCHMARKS is;
# with -s each starts in a session of its own (setsid), which with the
# kernel's autogroup scheduling makes it share the cores with the client
# as one group against another. Prints every round, then per server the
# median, min and max of deliveries/s and of server CPU µs per delivery,
# and troupe / Go of each median. A round counts only if chat-load's
# exact-delivery check passed for both servers.
set -eu
cd "$(dirname "$0")/.."

rounds=5 clients=200 rooms=20 lines=2000 own_session=0 extra=""
while getopts r:c:R:l:st: opt; do
	case "$opt" in
	r) rounds=$OPTARG ;;
	c) clients=$OPTARG ;;
	R) rooms=$OPTARG ;;
	l) lines=$OPTARG ;;
	s) own_session=1 ;;
	t) extra=$OPTARG ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
if [ $# -ne 0 ]; then
	echo "usage: $0 [-r ROUNDS] [-c CLIENTS] [-R ROOMS] [-l LINES] [-s] [-t OPTIONS]" >&2
	exit 2
fi
if ! command -v go >/dev/null 2>&1; then
	echo "chat-ab: the Go peer needs go (golang-go), which is not installed" >&2
	exit 2
fi

# Builds. -o: a program started under the lock must not hold it.
root=$PWD
flock -o /tmp/bench.lock sh -c '
	{ [ -d build/release ] ||
		meson setup build/release --buildtype=release >/dev/null; } &&
	ninja -C build/release examples/example-chat tests/bench/chat-load \
		>/dev/null' || {
	echo "chat-ab: the release build failed" >&2
	exit 1
}
mkdir -p build/peers
flock -o /tmp/bench.lock sh -c "cd tests/bench/peers/go-chat &&
	GOPROXY=off GOFLAGS= CGO_ENABLED=0 go build -o '$root/build/peers/go-chat' ." || {
	echo "chat-ab: the Go build failed" >&2
	exit 1
}

load=$root/build/release/tests/bench/chat-load
names=(troupe go)
cmds=("$root/build/release/examples/example-chat --rate 0${extra:+ $extra}"
	"$root/build/peers/go-chat --rate 0")

out=$(mktemp) log=$(mktemp)
trap 'rm -f "$out" "$log"' EXIT

# run_one SERVER PORT: one line "deliveries_per_s cpu_us_per_delivery", or
# "fail" (its reason on stderr).
run_one() {
	local sp r
	# shellcheck disable=SC2086
	if [ "$own_session" = 1 ]; then
		setsid $1 "$2" >"$log" 2>&1 </dev/null &
	else
		$1 "$2" >"$log" 2>&1 </dev/null &
	fi
	sp=$!
	for _ in $(seq 100); do
		grep -q '^listening on' "$log" && break
		sleep 0.05
	done
	r=$("$load" --port "$2" --pid "$sp" --clients "$clients" \
		--rooms "$rooms" --lines "$lines" 2>&1 || true)
	kill -TERM "$sp" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$sp" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$sp" 2>/dev/null || true
	wait "$sp" 2>/dev/null || true
	python3 -c '
import json, sys
try:
    r = json.loads(sys.argv[1].strip().splitlines()[-1])
    assert r["check"] == "ok"
    print("%.0f %.4f" % (r["rate"], r["server_cpu_us_per_delivery"]))
except Exception:
    print("fail")
    sys.stderr.write("chat-ab: %s: %s\n" % (sys.argv[2], sys.argv[1]))
' "$r" "$1"
}

port=$((20000 + RANDOM % 10000))
for i in $(seq "$rounds"); do
	order="0 1"
	[ $((i % 2)) = 0 ] && order="1 0"
	res=("" "")
	for k in $order; do
		port=$((port + 1))
		res[k]=$(flock -o /tmp/bench.lock bash -c "$(declare -f run_one)
			load='$load' log='$log' clients=$clients rooms=$rooms \
			lines=$lines own_session=$own_session \
			run_one '${cmds[k]}' $port")
	done
	echo "round $i: ${names[0]} ${res[0]} | ${names[1]} ${res[1]}"
	echo "${res[0]}|${res[1]}" >>"$out"
done

python3 - "$out" "${names[@]}" <<'PY'
import statistics as st
import sys

names = sys.argv[2:]
rows = []
for line in open(sys.argv[1]):
    cells = line.strip().split("|")
    if len(cells) == len(names) and "fail" not in cells:
        rows.append([[float(x) for x in c.split()] for c in cells])
print("%d of the rounds complete" % len(rows))
if not rows:
    sys.exit(1)

def fmt_rate(v):
    return "%.2fM" % (v / 1e6) if v >= 1e6 else "%.0fk" % (v / 1e3)

med = []
for i, n in enumerate(names):
    rate = [r[i][0] for r in rows]
    cpu = [r[i][1] for r in rows]
    med.append((st.median(rate), st.median(cpu)))
    print("%-7s deliveries/s %s (%s-%s)   server CPU %.3f us/delivery "
          "(%.3f-%.3f)" % (n, fmt_rate(med[i][0]), fmt_rate(min(rate)),
                           fmt_rate(max(rate)), med[i][1], min(cpu),
                           max(cpu)))
print("%s / %s: deliveries/s %.2f, CPU per delivery %.2f"
      % (names[0], names[1], med[0][0] / med[1][0], med[0][1] / med[1][1]))
PY
