#!/usr/bin/env bash
# Every public header compiles on its own, as C11 and (when a C++ compiler
# is present) as C++11, both with -pedantic -Werror; and all of them
# together leave a user's namespace alone: a program may define its own
# send(), connect() or signal() (system headers such as <sys/socket.h>
# would declare them); and no two public message types share a value.
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
{
	for h in "$src"/include/troupe/*.h "$src"/include/troupe/actors/*.h; do
		echo "#include <${h#"$src"/include/}>"
	done
	cat <<'C'
/* Names a user may take; each clashes with a system declaration. */
int send(int to, const char *what);
int send(int to, const char *what) { return to + (what != 0); }
static int connect(void) { return 1; }
static double signal(double x) { return x; }
int main(void) { return send(0, 0) + connect() + (int)signal(0.0) - 2; }
C
} >"$tmp/ns.c"
if ! "$cc" -std=c11 -Wall -Wextra -Werror -I"$src/include" \
	-c "$tmp/ns.c" -o "$tmp/ns.o"; then
	echo "FAIL: the public headers declare names that belong to users"
	fail=1
fi
# No two public message types share a value.
dups=$(grep -ho '^#define TR_MSG_[A-Z0-9_]* 0x[0-9A-Fa-f]*u' \
	"$src"/include/troupe/*.h "$src"/include/troupe/actors/*.h |
	awk '{print tolower($3)}' | sort | uniq -d)
if [ -n "$dups" ]; then
	echo "FAIL: message type values defined twice: $dups"
	fail=1
fi
[ $fail = 0 ] && echo "all public headers compile alone and leave users' names alone"
exit $fail
