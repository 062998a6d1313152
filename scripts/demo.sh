#!/usr/bin/env bash
# The main job: install what is missing, build, and run the agent hub
# (examples/agenthub/): a node whose sessions, manager, supervised
# employees, tools and model service are actors, with a built-in load of
# TCP clients, live progress once a second and a self-checked summary at
# the end (10 s by default). Extra arguments go to the hub, e.g.
# `--seconds 30`, `--crash-rate 0.2`, or `--no-load` (the hub alone on
# port 7400 until Ctrl-C) to connect with `nc 127.0.0.1 7400` yourself. `--runtime-demo` runs the
# runtime's own demo (examples/demo.c) instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
[ -d build/release ] || meson setup build/release --buildtype=release >/dev/null
if [ "${1:-}" = "--runtime-demo" ]; then
	shift
	ninja -C build/release examples/troupe-demo >/dev/null
	exec build/release/examples/troupe-demo "$@"
fi
ninja -C build/release examples/agenthub/agenthub >/dev/null
exec build/release/examples/agenthub/agenthub "$@"
