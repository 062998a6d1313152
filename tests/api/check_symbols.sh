#!/usr/bin/env bash
# The shared library exports exactly the symbols listed in troupe.sym, and
# every TR_API function declared in the public headers is listed there and
# documented in docs/ (GUIDE.md or ARCHITECTURE.md or API.md).
# Usage: check_symbols.sh SRCDIR LIBTROUPE_SO
set -u
src=$1 lib=$2
fail=0
exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBR]$/ {print $3}' |
	sed 's/@.*//' | grep -v '^TROUPE_' | sort -u)
listed=$(sed -n 's/^\t\(tr_[a-z0-9_]*\);$/\1/p' "$src/troupe.sym" | sort -u)
declared=$(grep -ho 'TR_API [^;]*' "$src"/include/troupe/*.h |
	grep -o '\btr_[a-z_0-9]*(' | tr -d '(' | sort -u)
if [ "$exported" != "$listed" ]; then
	echo "FAIL: exported symbols differ from troupe.sym:"
	diff <(echo "$exported") <(echo "$listed")
	fail=1
fi
if [ "$declared" != "$listed" ]; then
	echo "FAIL: TR_API declarations differ from troupe.sym:"
	diff <(echo "$declared") <(echo "$listed")
	fail=1
fi
for s in $declared; do
	if ! grep -q "\b$s\b" "$src"/docs/*.md; then
		echo "FAIL: $s is not mentioned in docs/"
		fail=1
	fi
done
if ! python3 "$src/scripts/gen-api-doc.py" | diff -q - "$src/docs/API.md" >/dev/null; then
	echo "FAIL: docs/API.md is out of date: run scripts/gen-api-doc.py > docs/API.md"
	fail=1
fi
[ $fail = 0 ] && echo "$(echo "$listed" | wc -l) symbols: exported == troupe.sym == headers, all documented"
exit $fail
