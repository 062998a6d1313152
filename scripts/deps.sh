#!/usr/bin/env bash
# Install the Debian 12 packages troupe needs to build and test, if any is
# missing. Run as root (or with sudo). Safe to run again.
set -euo pipefail
pkgs=(gcc g++ libc6-dev binutils meson ninja-build pkg-config python3
      libck-dev libcjson-dev libuv1-dev libsqlite3-dev libmbedtls-dev
      libnng-dev iproute2)
# --fuzz: what the libFuzzer targets need (scripts/fuzz.sh).
if [ "${1:-}" = "--fuzz" ]; then
	pkgs=(clang libclang-rt-14-dev)
fi
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
