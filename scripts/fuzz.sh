#!/usr/bin/env bash
# Build the libFuzzer targets (build/fuzz, clang, -Dfuzz=true) and run each
# for the given time over a copy of its committed seed corpus
# (tests/fuzz/corpus/<target>/), so the corpus stays as committed.
#   scripts/fuzz.sh [seconds]      default 30 s per target
# Prints one line per target and exits non-zero if any target crashed; a
# crash leaves its input and log under build/fuzz/crashes/.
set -uo pipefail
cd "$(dirname "$0")/.."
secs="${1:-30}"
dir=build/fuzz
targets=(wire handshake)

if [ ! -f "$dir/build.ninja" ]; then
	CC=clang meson setup "$dir" -Dfuzz=true >/dev/null || {
		echo "fuzz: meson setup failed (needs clang)"; exit 1; }
fi
ninja -C "$dir" "${targets[@]/#/tests/net/fuzz_}" >/dev/null || {
	ninja -C "$dir" "${targets[@]/#/tests/net/fuzz_}" | tail -20
	echo "fuzz: build failed"; exit 1; }

status=0
mkdir -p "$dir/crashes"
for t in "${targets[@]}"; do
	work=$(mktemp -d)
	cp tests/fuzz/corpus/"$t"/* "$work"/
	log="$dir/crashes/fuzz_$t.log"
	if "$dir/tests/net/fuzz_$t" -max_total_time="$secs" \
		-print_final_stats=1 -artifact_prefix="$dir/crashes/$t-" \
		"$work" >"$log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
		echo "fuzz_$t: ok, ${runs:-?} inputs in ${secs} s, no crash"
		rm -f "$log"
	else
		echo "fuzz_$t: CRASH, see $log and $dir/crashes/$t-*"
		status=1
	fi
	rm -rf "$work"
done
exit $status
