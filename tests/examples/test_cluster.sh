#!/usr/bin/env bash
# The cluster example (examples/cluster/run.sh) as a test: three node
# processes, one killed with SIGKILL; the script's own checks decide (the
# counts add up on every node, the work moved). This passes when the
# script ends with "cluster: PASS" and status 0. Every wait in it is for
# an event, bounded by WAIT seconds.
#     test_cluster.sh RUN.SH EXAMPLE-CLUSTER
set -u
log="$(mktemp)"
WAIT="${WAIT:-90}" bash "$1" "$2" >"$log" 2>&1
rc=$?
cat "$log"
last="$(grep '^cluster: ' "$log" | tail -n 1)"
rm -f "$log"
if [ "$rc" -ne 0 ] || [ "$last" != "cluster: PASS" ]; then
	echo "test_cluster: the example failed (status $rc, last line: $last)"
	exit 1
fi
echo "test_cluster: ok"
