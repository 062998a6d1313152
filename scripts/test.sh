#!/usr/bin/env bash
# Install what is missing, build, and run the whole test suite three times:
# a normal debug build (warnings are errors), AddressSanitizer+UBSan, and
# ThreadSanitizer. Ends with one line "N passed, N failed" over all runs.
#   --quick   only the normal build
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh || exit 1
quick=0
[ "${1:-}" = "--quick" ] && quick=1

passed=0
failed=0
count() { # $1 = build dir: add its results from meson's JSON test log
	local log="$1/meson-logs/testlog.json" p f
	if [ ! -f "$log" ]; then
		failed=$((failed + 1))
		return
	fi
	read -r p f < <(python3 - "$log" <<'PY'
import json, sys
p = f = 0
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    r = json.loads(line).get("result")
    if r in ("OK", "EXPECTEDFAIL", "SKIP"):
        p += 1
    else:
        f += 1
print(p, f)
PY
)
	passed=$((passed + p))
	failed=$((failed + f))
}

run() { # $1 = build dir, $2 = label, rest = meson setup options
	local dir="$1" label="$2"
	shift 2
	echo "== $label ($dir)"
	rm -f "$dir/meson-logs/testlog.json"
	if ! { [ -d "$dir" ] || meson setup "$dir" "$@" >/dev/null; }; then
		echo "setup failed"; failed=$((failed + 1)); return
	fi
	if ! ninja -C "$dir" >/dev/null; then
		ninja -C "$dir" | tail -40
		echo "build failed"; failed=$((failed + 1)); return
	fi
	meson test -C "$dir" --print-errorlogs --num-processes 2 \
		--timeout-multiplier "${MULT:-1}" | grep -vE '^ *[0-9]+/[0-9]+ .* OK ' || true
	count "$dir"
}

run build/debug "debug, -Werror" -Dwerror=true
if [ $quick = 0 ]; then
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 MULT=4 \
		run build/asan "AddressSanitizer+UBSan" \
		-Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true
	TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp" \
	MULT=6 run build/tsan "ThreadSanitizer" \
		-Db_sanitize=thread -Db_lundef=false -Dwerror=true \
		-Dc_args=-DCK_USE_CC_BUILTINS=1
fi
if [ $quick = 0 ]; then
	# The frame and handshake decoders under libFuzzer, for a bounded time
	# over the committed corpus (clang; docs/NET.md has a long run). Each
	# target counts as one test.
	echo "== libFuzzer smoke (build/fuzz)"
	bash scripts/deps.sh --fuzz || failed=$((failed + 1))
	while read -r line; do
		echo "$line"
		case "$line" in
		fuzz_*": ok"*) passed=$((passed + 1)) ;;
		fuzz_*) failed=$((failed + 1)) ;;
		fuzz:*) failed=$((failed + 1)) ;;
		esac
	done < <(bash scripts/fuzz.sh "${FUZZ_SECONDS:-20}" 2>&1)
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
