#!/usr/bin/env bash
# Every public header compiles on its own, as C11 and (when a C++ compiler
# is present) as C++11, both with -pedantic -Werror.
# Usage: check_headers.sh SRCDIR CC [CXX]
set -u
src=$1 cc=$2 cxx=${3:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
for h in "$src"/include/troupe/*.h "$src"/include/troupe/actors/*.h; do
	name=${h#"$src"/include/}
	printf '#include <%s>\nint tr_header_check_%s;\n' "$name" \
		"$(basename "$h" .h)" >"$tmp/t.c"
	if ! "$cc" -std=c11 -pedantic -Wall -Wextra -Werror -I"$src/include" \
		-c "$tmp/t.c" -o "$tmp/t.o"; then
		echo "FAIL: $name as C11"
		fail=1
	fi
	if [ -n "$cxx" ]; then
		cp "$tmp/t.c" "$tmp/t.cc"
		if ! "$cxx" -std=c++11 -pedantic -Wall -Wextra -Werror \
			-I"$src/include" \
			-c "$tmp/t.cc" -o "$tmp/t.o"; then
			echo "FAIL: $name as C++"
			fail=1
		fi
	fi
done
[ $fail = 0 ] && echo "all public headers compile alone"
exit $fail
