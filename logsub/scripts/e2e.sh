#!/bin/sh
# End-to-end throughput of the log bus: 2 publishers -> 2 spreadlogd
# processes over bus/cluster on loopback, reporting sustained lines/s,
# loss and publish-to-fsync latency (p50/p99). Not part of CI.
#
#   logsub/scripts/e2e.sh [duration] [lines/s]     (defaults: 60s 200000)
set -eu
cd "$(dirname "$0")/../.."
LOGSUB_E2E_DURATION="${1:-60s}" LOGSUB_E2E_RATE="${2:-200000}" \
	exec go test -run '^TestE2EThroughput$' -count=1 -v -timeout 15m ./examples/spreadlogd
