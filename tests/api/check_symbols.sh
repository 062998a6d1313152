#!/usr/bin/env bash
# The shared library exports exactly the symbols listed in troupe.sym, and
# every TR_API function declared in the public headers is listed there and
# documented in docs/ (GUIDE.md or ARCHITECTURE.md or API.md).
# Usage: check_symbols.sh SRCDIR LIB_SO [SYMFILE HEADERDIR]
# (defaults: the runtime, troupe.sym and include/troupe; the standard
# actors library passes actors/troupe-actors.sym and include/troupe/actors)
set -u
src=$1 lib=$2
sym=${3:-$src/troupe.sym}
hdr=${4:-$src/include/troupe}
fail=0
exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBR]$/ {print $3}' |
	sed 's/@.*//' | grep -v '^TROUPE_' | sort -u)
name=$(basename "$sym")
listed=$(sed -n 's/^\t\(tr_[a-z0-9_]*\);$/\1/p' "$sym" | sort -u)
# One line per header, so that a declaration clang-format wrapped after
# its return type is still read whole.
declared=$(for h in "$hdr"/*.h; do tr '\n' ' ' <"$h"; echo; done |
	grep -o 'TR_API [^;]*' |
	grep -o '\btr_[a-z_0-9]*(' | tr -d '(' | sort -u)
if [ "$exported" != "$listed" ]; then
	echo "FAIL: exported symbols differ from $name:"
	diff <(echo "$exported") <(echo "$listed")
	fail=1
fi
if [ "$declared" != "$listed" ]; then
	echo "FAIL: TR_API declarations differ from $name:"
	diff <(echo "$declared") <(echo "$listed")
	fail=1
fi
for s in $declared; do
	if ! grep -q "\b$s\b" "$src"/docs/*.md; then
		echo "FAIL: $s is not mentioned in docs/"
		fail=1
	fi
done
# The soname is the binary interface's version, TR_ABI_VERSION.
abi=$(sed -n 's/^#define TR_ABI_VERSION *\([0-9]*\).*/\1/p' \
	"$src/include/troupe/version.h")
soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
if [ "${soname##*.so.}" != "$abi" ]; then
	echo "FAIL: soname $soname, but TR_ABI_VERSION is $abi"
	fail=1
fi
if ! python3 "$src/scripts/gen-api-doc.py" | diff -q - "$src/docs/API.md" >/dev/null; then
	echo "FAIL: docs/API.md is out of date: run scripts/gen-api-doc.py > docs/API.md"
	fail=1
fi
[ $fail = 0 ] && echo "$(echo "$listed" | wc -l) symbols: exported == $name == headers, all documented"
exit $fail
