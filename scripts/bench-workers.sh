#!/usr/bin/env bash
# One worker against two, on every workload of troupe-bench: RUNS rounds
# (default 5); in each round every workload runs once at 1 worker and once
# at 2, one after the other, so that a slow spell of the machine hits both
# sides. Prints per workload the median, min and max rate of each side and
# the ratio of the medians (2 workers / 1 worker). Then, unless benches
# are named, the rescue benchmark at 2 workers in both I/O modes: how long
# a short message waits behind a long handler (median of 1,000 trials; one
# worker cannot rescue anything, so it has no 1-worker side).
#   scripts/bench-workers.sh [bench ...]     default: every workload
# Builds build/release first. Holds /tmp/bench.lock while it measures, so
# it never overlaps another timing run.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d build/release ] || meson setup build/release --buildtype=release >/dev/null
ninja -C build/release tests/bench/troupe-bench >/dev/null
benches=("$@")
rescue=0
if [ ${#benches[@]} -eq 0 ]; then
	benches=(pingpong counting fanin ring spawn skynet big compute fanout)
	rescue=1
fi
runs=${RUNS:-5}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
exec 9>/tmp/bench.lock
flock 9
for ((r = 1; r <= runs; r++)); do
	for b in "${benches[@]}"; do
		for t in 1 2; do
			BENCH_THREADS=$t build/release/tests/bench/troupe-bench "$b" >>"$out" ||
				echo "troupe-bench $b at $t workers failed" >&2
		done
	done
	if [ $rescue = 1 ]; then
		for d in 0 1; do
			BENCH_THREADS=2 BENCH_IO_DEDICATED=$d \
				build/release/tests/bench/troupe-bench rescue |
				sed "s/\"bench\":\"rescue\"/\"bench\":\"rescue\",\"io_dedicated\":$d/" >>"$out" ||
				echo "troupe-bench rescue failed" >&2
		done
	fi
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = {}
order = []
rescue = {}
for line in open(sys.argv[1]):
    try:
        j = json.loads(line)
    except ValueError:
        continue
    if j.get("check") != "ok":
        continue
    key = j["bench"]
    if key == "rescue":
        rescue.setdefault(j["io_dedicated"], []).append(j)
        continue
    if key not in rows:
        rows[key] = {1: [], 2: [], "unit": j["unit"]}
        order.append(key)
    rows[key][j["threads"]].append(j["rate"])
def fmt(v):
    return f"{v/1e6:.2f}M" if v >= 1e5 else f"{v:.1f}"
print(f"{'bench':10} {'unit':15} {'1 worker: median (min-max)':30} "
      f"{'2 workers: median (min-max)':30} 2/1")
for k in order:
    r = rows[k]
    if not r[1] or not r[2]:
        continue
    m1, m2 = statistics.median(r[1]), statistics.median(r[2])
    c1 = f"{fmt(m1)} ({fmt(min(r[1]))}-{fmt(max(r[1]))})"
    c2 = f"{fmt(m2)} ({fmt(min(r[2]))}-{fmt(max(r[2]))})"
    print(f"{k:10} {r['unit']:15} {c1:30} {c2:30} {m2/m1:.2f}  n={len(r[1])}")
for d, js in sorted(rescue.items()):
    med = [j["rate"] for j in js]
    mx = [j["max_us"] for j in js]
    p99 = [j["p99_us"] for j in js]
    print(f"rescue io_dedicated={d}: wait of S behind a long turn, us: "
          f"median {statistics.median(med):.0f} ({min(med):.0f}-{max(med):.0f}), "
          f"p99 {statistics.median(p99):.0f} ({min(p99):.0f}-{max(p99):.0f}), "
          f"worst {statistics.median(mx):.0f} ({min(mx):.0f}-{max(mx):.0f}) "
          f"over runs of 1000 trials, n={len(js)}")
PY
