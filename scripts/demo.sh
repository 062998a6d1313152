#!/usr/bin/env bash
# The main job: install what is missing, build, and run the runtime demo
# (a node of actors at work, printing progress and metrics). Extra
# arguments go to the demo, e.g. `--seconds 30`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
[ -d build/release ] || meson setup build/release --buildtype=release >/dev/null
ninja -C build/release examples/troupe-demo >/dev/null
exec build/release/examples/troupe-demo "$@"
