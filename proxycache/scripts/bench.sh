#!/usr/bin/env bash
# Cache-hit benchmark on loopback: proxycache vs nginx proxy_cache vs
# http.FileServer serving the same objects. Servers are pinned to CPU 0 and
# wrk to CPU 1; for each server and size it reports requests/s and the
# server's CPU time per request (utime+stime from /proc), medians of RUNS.
#
#   proxycache/scripts/bench.sh            # RUNS=3 DURATION=10s SIZES="10240 1048576"
#
# Needs wrk and nginx (Debian: apt-get install wrk nginx-light). Not part of
# CI's gate.
set -euo pipefail
RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-8}
SIZES=${SIZES:-"10240 1048576"}
for tool in wrk nginx taskset go; do
	command -v "$tool" >/dev/null || { echo "bench.sh: $tool not found" >&2; exit 1; }
done
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	[[ -f $work/nginx.pid ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
	sleep 0.2
	rm -rf "$work"
}
trap cleanup EXIT
(cd "$root" && go build -o "$work/benchserver" ./internal/bench/proxycache/benchserver)

ORIGIN=127.0.0.1:18180 PROXY=127.0.0.1:18181 NGINX=127.0.0.1:18182 FILES=127.0.0.1:18183
GOMAXPROCS=1 taskset -c 0 "$work/benchserver" -mode origin -listen $ORIGIN 2>/dev/null & pids+=($!)
GOMAXPROCS=1 taskset -c 0 "$work/benchserver" -mode proxycache -listen $PROXY -dir "$work/cache" -origin http://$ORIGIN 2>/dev/null &
proxy_pid=$!; pids+=($proxy_pid)
mkdir -p "$work/nginx-cache" "$work/files"
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
	access_log off;
	sendfile on;
	tcp_nopush off;
	keepalive_requests 1000000;
	proxy_cache_path $work/nginx-cache levels=1:2 keys_zone=bench:10m max_size=2g inactive=1d;
	client_body_temp_path $work/nginx-body;
	proxy_temp_path $work/nginx-proxy;
	fastcgi_temp_path $work/nginx-fcgi;
	uwsgi_temp_path $work/nginx-uwsgi;
	scgi_temp_path $work/nginx-scgi;
	server {
		listen $NGINX;
		location / {
			proxy_pass http://$ORIGIN;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_cache bench;
			proxy_cache_valid 200 1d;
		}
	}
}
CONF
taskset -c 0 nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)
sleep 1
nginx_pid=$(cat "$work/nginx.pid")
nginx_worker=$(pgrep -P "$nginx_pid" | head -1)

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# Warm the caches, then let FileServer serve proxycache's stored bodies.
for size in $SIZES; do
	for s in $PROXY $NGINX; do curl -s -o /dev/null "http://$s/obj-$size"; curl -s -o /dev/null "http://$s/obj-$size"; done
done
GOMAXPROCS=1 taskset -c 0 "$work/benchserver" -mode fileserver -listen $FILES -dir "$work/cache/127.0.0.1" 2>/dev/null &
files_pid=$!; pids+=($files_pid)
sleep 0.5

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf "%-11s %9s %12s %14s\n" server size "req/s" "CPU µs/req"
declare -A RPS CPU
for size in $SIZES; do
	for name in proxycache nginx fileserver; do
		case $name in
		proxycache) addr=$PROXY pid=$proxy_pid ;;
		nginx) addr=$NGINX pid=$nginx_worker ;;
		fileserver) addr=$FILES pid=$files_pid ;;
		esac
		rps_list=() cpu_list=()
		for _ in $(seq "$RUNS"); do
			before=$(cpu_ticks "$pid")
			out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"$DURATION" "http://$addr/obj-$size")
			after=$(cpu_ticks "$pid")
			reqs=$(echo "$out" | awk '/requests in/ {print $1}')
			if [[ -z $reqs || $reqs == 0 ]]; then
				echo "bench.sh: no requests completed against $name:" >&2
				echo "$out" >&2
				tail -5 "$work/nginx-error.log" >&2 || true
				exit 1
			fi
			rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
			rps_list+=("$rps")
			cpu_list+=("$(awk -v t=$((after - before)) -v hz="$hz" -v n="$reqs" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')")
		done
		RPS[$name,$size]=$(printf "%s\n" "${rps_list[@]}" | median)
		CPU[$name,$size]=$(printf "%s\n" "${cpu_list[@]}" | median)
		printf "%-11s %9s %12s %14s\n" "$name" "$size" "${RPS[$name,$size]}" "${CPU[$name,$size]}"
	done
done
echo
for size in $SIZES; do
	awk -v s="$size" -v p="${RPS[proxycache,$size]}" -v n="${RPS[nginx,$size]}" -v f="${RPS[fileserver,$size]}" \
		-v pc="${CPU[proxycache,$size]}" -v nc="${CPU[nginx,$size]}" -v fc="${CPU[fileserver,$size]}" \
		'BEGIN {printf "size %s: proxycache/nginx %.2f (CPU %.2f), proxycache/FileServer %.2f (CPU %.2f)\n", s, p/n, nc/pc, p/f, fc/pc}'
done
