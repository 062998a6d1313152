#!/bin/bash
# Paired A/B runs of line-echo servers under the conditions of the echo
# comparison (docs/BENCHMARKS.md, "TCP echo"): each server is started in a
# session of its own (setsid), warmed up with MSGS/10 requests at one in
# flight, then loaded with MSGS requests; its CPU is the sum of its threads'
# schedstat run times. Every round runs each server once, in the order
# given, so ratios are taken within a round and the machine's slow and fast
# phases cancel out. Each run holds /tmp/bench.lock.
#
#     TCPLOAD=path/to/tcpload scripts/echo-ab.sh [-r ROUNDS] [-p PIPELINE] \
#         [-n MSGS] [-c CONNS] SERVER...
#
# A SERVER is a command that takes the port as its last argument (quote it
# if it has arguments of its own). Prints, per server, the medians of
# requests/s, p99 and CPU µs per request, and the median over rounds of its
# CPU per request divided by the first server's.
set -eu

rounds=8 pipeline=16 msgs=600000 conns=100
while getopts r:p:n:c: opt; do
	case "$opt" in
	r) rounds=$OPTARG ;;
	p) pipeline=$OPTARG ;;
	n) msgs=$OPTARG ;;
	c) conns=$OPTARG ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
if [ $# -lt 1 ] || [ -z "${TCPLOAD:-}" ] || [ ! -x "$TCPLOAD" ]; then
	echo "usage: TCPLOAD=path/to/tcpload $0 [-r N] [-p N] [-n N] [-c N] SERVER..." >&2
	exit 2
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT

# run_one SERVER PORT: one line "rate p99_us cpu_us_per_req", or "fail".
run_one() {
	local sp c0 c1 r
	# shellcheck disable=SC2086
	setsid $1 "$2" >/dev/null 2>&1 </dev/null 9>&- &
	sp=$!
	for _ in $(seq 50); do
		if "$TCPLOAD" -addr "127.0.0.1:$2" -conns 1 -msgs 1 -size 64 \
			-pipeline 1 >/dev/null 2>&1; then
			break
		fi
		sleep 0.1
	done
	"$TCPLOAD" -addr "127.0.0.1:$2" -conns "$conns" \
		-msgs $((msgs / 10 > conns ? msgs / 10 : conns)) -size 64 \
		-pipeline 1 >/dev/null 2>&1 || true
	cpu() {
		local t=0 a
		for f in /proc/"$sp"/task/*/schedstat; do
			read -r a _ <"$f" && t=$((t + a))
		done
		echo "$t"
	}
	c0=$(cpu)
	r=$("$TCPLOAD" -addr "127.0.0.1:$2" -conns "$conns" -msgs "$msgs" \
		-size 64 -pipeline "$pipeline" 2>/dev/null || true)
	c1=$(cpu)
	kill -TERM "$sp" 2>/dev/null || true
	sleep 0.3
	kill -KILL "$sp" 2>/dev/null || true
	wait "$sp" 2>/dev/null || true
	python3 -c '
import json, sys
try:
    r = json.loads(sys.argv[1])
    assert r.get("check") == "ok"
    print("%.1f %.1f %.4f" % (r["rate"], r["p99_us"],
          (int(sys.argv[3]) - int(sys.argv[2])) / 1e3 / int(sys.argv[4])))
except Exception:
    print("fail")
' "$r" "$c0" "$c1" "$msgs"
}

port=$((20000 + RANDOM % 10000))
for _ in $(seq "$rounds"); do
	line=""
	for s in "$@"; do
		port=$((port + 1))
		line="$line$(flock /tmp/bench.lock bash -c "$(declare -f run_one); \
			TCPLOAD='$TCPLOAD' conns=$conns msgs=$msgs \
			pipeline=$pipeline run_one '$s' $port")|"
	done
	echo "$line" >>"$out"
done

python3 - "$out" "$@" <<'PY'
import statistics as st
import sys

names = sys.argv[2:]
rows = []
for line in open(sys.argv[1]):
    cells = line.strip().strip("|").split("|")
    if len(cells) == len(names) and "fail" not in cells:
        rows.append([[float(x) for x in c.split()] for c in cells])
print("%d of the rounds complete" % len(rows))
if not rows:
    sys.exit(1)
for i, n in enumerate(names):
    ratios = [r[i][2] / r[0][2] for r in rows]
    print("%-40s req/s %9.0f  p99 %7.0f us  cpu %6.2f us/req  cpu/first %.2f"
          % (n[-40:], st.median(r[i][0] for r in rows),
             st.median(r[i][1] for r in rows),
             st.median(r[i][2] for r in rows), st.median(ratios)))
PY
