#!/usr/bin/env bash
# compare.sh: the who's-online workload against MariaDB (InnoDB, recent_hits
# with REPLACE), Redis (sorted sets, a Lua script per hit) and onlined, all
# on 127.0.0.1, same client concurrency, interleaved rounds. Prints a table
# of medians. Not part of CI: it installs Debian packages and takes minutes.
#
#   online/scripts/compare.sh [compare flags...]     e.g. -rounds 5 -duration 5s
#
# Needs root for apt-get (skipped when the servers are already installed).
# Every server it starts listens on 127.0.0.1 only, keeps its data in a
# temporary directory, and is stopped (by its pid) on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

if ! command -v redis-server >/dev/null || ! command -v mariadbd >/dev/null; then
	apt-get -o DPkg::Lock::Timeout=300 install -y redis-server mariadb-server
fi

tmp=$(mktemp -d /tmp/online-compare.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
	for _ in $(seq 300); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "port $1 never opened" >&2
	return 1
}

redis_port=$(free_port)
maria_port=$(free_port)
onlined_port=$(free_port)

# Redis: no persistence, like the in-memory onlined.
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
	--dir "$tmp" --daemonize no --loglevel warning >"$tmp/redis.log" 2>&1 &
pids+=($!)
redis_pid=$!

# MariaDB: a fresh datadir; the log flushed once a second instead of at
# every commit (innodb_flush_log_at_trx_commit=2), so it is not fsync-bound.
mariadb-install-db --no-defaults --user=root --datadir="$tmp/mysql" --auth-root-authentication-method=normal \
	>"$tmp/mariadb-install.log" 2>&1
mariadbd --no-defaults --user=root --datadir="$tmp/mysql" --socket="$tmp/mysql.sock" \
	--bind-address=127.0.0.1 --port="$maria_port" --skip-grant-tables --skip-name-resolve \
	--innodb-buffer-pool-size=512M --innodb-flush-log-at-trx-commit=2 --max-connections=200 \
	--log-error="$tmp/mariadb.err" &
pids+=($!)
maria_pid=$!

# onlined without a bus: fed by HIT.
(cd "$root" && go build -o "$tmp/onlined" ./examples/onlined)
"$tmp/onlined" -group '' -resp "127.0.0.1:$onlined_port" -window 30m -max-conns 256 >"$tmp/onlined.log" 2>&1 &
pids+=($!)
onlined_pid=$!

wait_port "$redis_port"
wait_port "$maria_port"
wait_port "$onlined_port"

echo "# $(date -u +%FT%TZ) $(nproc) cores; redis $(redis-server --version | awk '{print $3}'); $(mariadbd --version | awk '{print $3}'); $(go version | awk '{print $3}')"
cd "$root/internal/bench/online"
go run ./cmd/compare \
	-mariadb "127.0.0.1:$maria_port" -mariadb-pid "$maria_pid" \
	-redis "127.0.0.1:$redis_port" -redis-pid "$redis_pid" \
	-onlined "127.0.0.1:$onlined_port" -onlined-pid "$onlined_pid" \
	"$@"
