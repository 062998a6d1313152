#!/usr/bin/env bash
# Install a build into a staging directory and build a program against it
# the way an author outside the project does (tests/install/outside.c):
#   a. with cc and `pkg-config --cflags --libs troupe troupe-actors`, plus
#      an rpath from `pkg-config --variable=libdir troupe`;
#   b. with a tiny meson project using dependency('troupe') and
#      dependency('troupe-actors');
#   c. with cc against the build tree itself, through the uninstalled
#      pkg-config files in BUILD_DIR/meson-uninstalled.
# Each program must run, print the expected lines, and load the libraries
# it was built against. Along the way it checks what users get: Cflags
# with no -D__x86_64__ and no internal header folder, both static
# libraries installed, no program installed.
# The staged tree keeps the build's prefix (say /usr/local), so
# PKG_CONFIG_SYSROOT_DIR points pkg-config at the staging directory.
# A sanitizer build's library needs the same sanitizer in the program,
# so the programs are built with the build's b_sanitize.
# Usage: check_install.sh BUILD_DIR SOURCE_DIR
# Environment: MESON (default meson), CC (default cc).
set -uo pipefail

fail() {
	echo "check_install: FAIL: $*" >&2
	exit 1
}

[ $# = 2 ] || fail "usage: check_install.sh BUILD_DIR SOURCE_DIR"
build=$(cd "$1" && pwd -P) || fail "no build directory $1"
src=$(cd "$2" && pwd -P) || fail "no source directory $2"
meson=${MESON:-meson}
cc=${CC:-cc}
# meson test points LD_LIBRARY_PATH at the build tree, which would take
# precedence over the programs' rpaths and hide a missing one.
unset LD_LIBRARY_PATH

tmp=$(mktemp -d -t troupe-install.XXXXXX) || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT

# run DESCRIPTION COMMAND...: run it quietly; on failure show its output.
run() {
	local what=$1
	shift
	echo "== $what"
	if ! "$@" >"$tmp/out" 2>&1; then
		cat "$tmp/out" >&2
		fail "$what"
	fi
}

# check_cflags LABEL FLAGS: no -D__x86_64__ (ck's, which users do not
# need), no -I for a folder with private headers (the source or build
# root, runtime/, actors/), and one -I that holds troupe/troupe.h.
check_cflags() {
	local label=$1 flags=$2 word dir has_public=0
	echo "== $label: $flags"
	for word in $flags; do
		case $word in
		-D__x86_64__*)
			fail "$label: Cflags contain $word" ;;
		-I*)
			dir=${word#-I}
			[ -d "$dir" ] || fail "$label: Cflags name a missing folder $dir"
			dir=$(cd "$dir" && pwd -P)
			case $dir in
			"$src" | "$src/runtime" | "$src/actors" | \
			"$build" | "$build/actors")
				fail "$label: Cflags expose private headers: $word" ;;
			esac
			[ -f "$dir/troupe/troupe.h" ] && has_public=1 ;;
		esac
	done
	[ $has_public = 1 ] || fail "$label: no -I folder holds troupe/troupe.h"
}

# check_program LABEL EXE LIBDIR...: it runs and prints the expected
# lines, and the dynamic loader takes libtroupe and libtroupe-actors from
# the given folders (not from some other copy on the machine).
check_program() {
	local label=$1 exe=$2 lib path ok dir
	shift 2
	echo "== $label: run"
	"$exe" >"$tmp/got" 2>&1 || {
		cat "$tmp/got" >&2
		fail "$label: the program failed"
	}
	printf 'request: HELLO, WORLD\nsend: AGAIN\nok\n' >"$tmp/want"
	diff -u "$tmp/want" "$tmp/got" >&2 ||
		fail "$label: unexpected output (above: - wanted, + got)"
	for lib in libtroupe.so libtroupe-actors.so; do
		path=$(ldd "$exe" | awk -v l="$lib" \
			'index($1, l ".") == 1 { print $3 }')
		[ -n "$path" ] && [ -f "$path" ] ||
			fail "$label: $lib is not found at run time"
		path=$(cd "$(dirname "$path")" && pwd -P)
		ok=0
		for dir in "$@"; do
			[ "$path" = "$(cd "$dir" && pwd -P)" ] && ok=1
		done
		[ $ok = 1 ] || fail "$label: $lib loaded from $path, not $*"
	done
}

# What the programs need for the build's sanitizer.
san=$("$meson" introspect --buildoptions "$build" | python3 -c '
import json, sys
print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "b_sanitize"))
') || fail "cannot read b_sanitize of $build"
san_cflags=()
san_meson=()
if [ "$san" != none ]; then
	san_cflags=("-fsanitize=$san")
	san_meson=("-Db_sanitize=$san" "-Db_lundef=false")
fi
prog_cflags=(-std=c11 -pedantic -Wall -Wextra -Werror "${san_cflags[@]}")

stage=$tmp/stage
run "meson install --destdir" \
	"$meson" install -C "$build" --destdir "$stage" --no-rebuild --quiet

# The pkg-config files: exactly one folder, holding both.
pcfiles=$(find "$stage" -path '*/pkgconfig/troupe.pc')
[ "$(printf '%s\n' "$pcfiles" | grep -c .)" = 1 ] ||
	fail "expected one installed troupe.pc, found: ${pcfiles:-none}"
pcdir=$(dirname "$pcfiles")
[ -f "$pcdir/troupe-actors.pc" ] || fail "troupe-actors.pc is not next to troupe.pc"
libdir=$(dirname "$pcdir")
for f in libtroupe.a libtroupe-actors.a libtroupe.so libtroupe-actors.so; do
	[ -e "$libdir/$f" ] || fail "$f is not installed in ${libdir#"$stage"}"
done
installed_bin=$(find "$stage" -path '*/bin/*' | head -5)
[ -z "$installed_bin" ] || fail "programs were installed: $installed_bin"

export PKG_CONFIG_PATH=$pcdir
export PKG_CONFIG_SYSROOT_DIR=$stage
found=$(pkg-config --path troupe) || fail "pkg-config finds no troupe"
[ "$found" = "$pcdir/troupe.pc" ] ||
	fail "pkg-config found $found, not the staged troupe.pc"
check_cflags "installed: pkg-config --cflags troupe" \
	"$(pkg-config --cflags troupe)"
check_cflags "installed: pkg-config --cflags troupe-actors" \
	"$(pkg-config --cflags troupe-actors)"
pc_libdir=$(pkg-config --variable=libdir troupe) || fail "no libdir variable"
[ "$pc_libdir" -ef "$libdir" ] ||
	fail "libdir variable $pc_libdir is not the installed $libdir"

# a. cc and pkg-config, as docs/GUIDE.md tells users.
mkdir -p "$tmp/a"
run "a. cc with pkg-config" \
	"$cc" "${prog_cflags[@]}" "$src/tests/install/outside.c" -o "$tmp/a/outside" \
	$(pkg-config --cflags --libs troupe troupe-actors) \
	"-Wl,-rpath,$pc_libdir"
check_program "a. cc with pkg-config" "$tmp/a/outside" "$libdir"

# b. a meson project of its own.
mkdir -p "$tmp/b/src"
cp "$src/tests/install/outside.c" "$tmp/b/src/"
cat >"$tmp/b/src/meson.build" <<'EOF'
project('outside', 'c',
        default_options: ['c_std=c11', 'warning_level=3', 'werror=true'])
executable('outside', 'outside.c',
        dependencies: [dependency('troupe'), dependency('troupe-actors')])
EOF
run "b. meson setup with dependency()" \
	"$meson" setup "$tmp/b/build" "$tmp/b/src" "${san_meson[@]}"
run "b. meson compile" "$meson" compile -C "$tmp/b/build"
check_program "b. meson dependency()" "$tmp/b/build/outside" "$libdir"

# c. the build tree, through its uninstalled pkg-config files.
unset PKG_CONFIG_SYSROOT_DIR
export PKG_CONFIG_PATH=$build/meson-uninstalled
found=$(pkg-config --path troupe) || fail "pkg-config finds no troupe in the build tree"
[ "$found" = "$build/meson-uninstalled/troupe-uninstalled.pc" ] ||
	fail "pkg-config found $found, not troupe-uninstalled.pc"
check_cflags "uninstalled: pkg-config --cflags troupe" \
	"$(pkg-config --cflags troupe)"
check_cflags "uninstalled: pkg-config --cflags troupe-actors" \
	"$(pkg-config --cflags troupe-actors)"
u_libdir=$(pkg-config --variable=libdir troupe)
ua_libdir=$(pkg-config --variable=libdir troupe-actors)
for d in "$u_libdir" "$ua_libdir"; do
	[ -d "$d" ] || fail "uninstalled libdir $d does not exist"
done
mkdir -p "$tmp/c"
run "c. cc against the build tree" \
	"$cc" "${prog_cflags[@]}" "$src/tests/install/outside.c" -o "$tmp/c/outside" \
	$(pkg-config --cflags --libs troupe troupe-actors) \
	"-Wl,-rpath,$u_libdir" "-Wl,-rpath,$ua_libdir"
check_program "c. the build tree" "$tmp/c/outside" "$u_libdir" "$ua_libdir"

echo "check_install: ok"
