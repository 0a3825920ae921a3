#!/usr/bin/env bash
# Cache-hit benchmark on loopback: proxycache vs nginx proxy_cache vs
# http.FileServer vs the smallest net/http handlers that send a file with
# sendfile (sendfile) or a prepared []byte (memory; memhdr with the seven
# header fields of a proxycache hit), all serving the same objects. Servers are pinned to CPU 0 (Go with GOMAXPROCS=1, nginx with one
# worker) and wrk to CPU 1, same wrk settings for all (1 thread, CONNS
# keep-alive connections). For each server and size it reports requests/s
# and the server's CPU time per request (utime+stime of the whole process,
# the nginx worker for nginx, from /proc), split into user and system time,
# medians of RUNS rounds; each round runs every server once, in turn, so
# the machine's noise falls on all of them alike.
#
#   proxycache/scripts/bench.sh      # RUNS=5 DURATION=4s CONNS=8 SIZES="10240 1048576"
#
# Every server is checked before it is measured (200, the full body, and a
# cache hit for the two caches), and a run fails if wrk saw a non-2xx answer
# or fewer bytes than the object size per request.
#
# Needs wrk, nginx, curl and taskset (Debian: apt-get install wrk
# nginx-light curl util-linux). Not part of CI's gate.
set -euo pipefail
RUNS=${RUNS:-5}
DURATION=${DURATION:-4s}
CONNS=${CONNS:-8}
SIZES=${SIZES:-"10240 1048576"}
SERVERS=${SERVERS:-"proxycache nginx fileserver sendfile memory memhdr"}
for tool in wrk nginx taskset curl go; do
	command -v "$tool" >/dev/null || { echo "bench.sh: $tool not found" >&2; exit 1; }
done
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
# mktemp makes a 0700 directory; nginx started as root runs its worker as an
# unprivileged user, which must reach the cache files (or every hit is a 500).
chmod 0755 "$work"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	[[ -f $work/nginx.pid ]] && kill "$(cat "$work/nginx.pid" 2>/dev/null)" 2>/dev/null || true
	sleep 0.2
	rm -rf "$work"
}
trap cleanup EXIT
(cd "$root" && go build -o "$work/benchserver" ./internal/bench/proxycache/benchserver)

ORIGIN=127.0.0.1:18180 PROXY=127.0.0.1:18181 NGINX=127.0.0.1:18182 FILES=127.0.0.1:18183 SENDFILE=127.0.0.1:18184 MEMORY=127.0.0.1:18185 MEMHDR=127.0.0.1:18186
GOMAXPROCS=1 taskset -c 0 "$work/benchserver" -mode origin -listen $ORIGIN 2>/dev/null & pids+=($!)
GOMAXPROCS=1 taskset -c 0 "$work/benchserver" -mode proxycache -listen $PROXY -dir "$work/cache" -origin http://$ORIGIN 2>/dev/null &
proxy_pid=$!; pids+=($proxy_pid)
mkdir -p "$work/nginx-cache"
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
			add_header Cache-Status \$upstream_cache_status;
		}
	}
}
CONF
taskset -c 0 nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)

wait_listen() {
	for _ in $(seq 100); do
		curl -s -o /dev/null "http://$1/" && return 0
		sleep 0.1
	done
	echo "bench.sh: nothing listening on $1" >&2
	exit 1
}
wait_listen $ORIGIN
wait_listen $PROXY
wait_listen $NGINX
nginx_pid=$(cat "$work/nginx.pid")
nginx_worker=$(pgrep -f -P "$nginx_pid" 'nginx: worker')

# Warm the caches, then serve proxycache's stored bodies with FileServer and
# the minimal sendfile handler.
for size in $SIZES; do
	for s in $PROXY $NGINX; do curl -s -o /dev/null "http://$s/obj-$size"; curl -s -o /dev/null "http://$s/obj-$size"; done
done
GOMAXPROCS=1 taskset -c 0 "$work/benchserver" -mode fileserver -listen $FILES -dir "$work/cache/127.0.0.1" 2>/dev/null &
files_pid=$!; pids+=($files_pid)
GOMAXPROCS=1 taskset -c 0 "$work/benchserver" -mode sendfile -listen $SENDFILE -dir "$work/cache/127.0.0.1" 2>/dev/null &
sendfile_pid=$!; pids+=($sendfile_pid)
GOMAXPROCS=1 taskset -c 0 "$work/benchserver" -mode memory -listen $MEMORY 2>/dev/null &
memory_pid=$!; pids+=($memory_pid)
GOMAXPROCS=1 taskset -c 0 "$work/benchserver" -mode memhdr -listen $MEMHDR 2>/dev/null &
memhdr_pid=$!; pids+=($memhdr_pid)
wait_listen $FILES
wait_listen $SENDFILE
wait_listen $MEMORY
wait_listen $MEMHDR

addr_of() {
	case $1 in
	proxycache) echo $PROXY ;;
	nginx) echo $NGINX ;;
	fileserver) echo $FILES ;;
	sendfile) echo $SENDFILE ;;
	memory) echo $MEMORY ;;
	memhdr) echo $MEMHDR ;;
	esac
}
pid_of() {
	case $1 in
	proxycache) echo $proxy_pid ;;
	nginx) echo "$nginx_worker" ;;
	fileserver) echo $files_pid ;;
	sendfile) echo $sendfile_pid ;;
	memory) echo $memory_pid ;;
	memhdr) echo $memhdr_pid ;;
	esac
}

# Check that every server answers 200 with the whole object, from its cache.
for size in $SIZES; do
	for name in $SERVERS; do
		hdr=$(curl -s -D- -o "$work/body" -w 'got %{http_code} %{size_download}\n' "http://$(addr_of "$name")/obj-$size")
		if ! grep -q "^got 200 $size\$" <<<"$hdr"; then
			echo "bench.sh: $name does not serve obj-$size:" >&2
			echo "$hdr" >&2
			tail -5 "$work/nginx-error.log" >&2 || true
			exit 1
		fi
		case $name in
		proxycache | nginx)
			if ! grep -qi '^cache-status:.*hit' <<<"$hdr"; then
				echo "bench.sh: $name answers obj-$size without a cache hit:" >&2
				echo "$hdr" >&2
				exit 1
			fi
			;;
		esac
	done
done

ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
# bytes converts wrk's "2.85GB" to bytes.
bytes() { awk -v v="$1" 'BEGIN {n = v + 0; u = v; sub(/^[0-9.]+/, "", u); m = 1
	if (u == "KB") m = 1024; else if (u == "MB") m = 1024^2; else if (u == "GB") m = 1024^3; else if (u == "TB") m = 1024^4
	printf "%.0f", n * m}'; }

declare -A RPS CPU USR SYS
for _ in $(seq "$RUNS"); do
	for size in $SIZES; do
		for name in $SERVERS; do
			pid=$(pid_of "$name")
			read -r u0 s0 < <(ticks "$pid")
			out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"$DURATION" "http://$(addr_of "$name")/obj-$size")
			read -r u1 s1 < <(ticks "$pid")
			reqs=$(awk '/requests in/ {print $1}' <<<"$out")
			read_b=$(bytes "$(awk '/requests in/ {print $(NF - 1)}' <<<"$out")")
			if [[ -z $reqs || $reqs == 0 ]] || grep -q 'Non-2xx' <<<"$out" || ((read_b < reqs * size * 99 / 100)); then
				echo "bench.sh: bad run against $name (obj-$size):" >&2
				echo "$out" >&2
				exit 1
			fi
			RPS[$name,$size]+="$(awk '/Requests\/sec/ {print $2}' <<<"$out") "
			USR[$name,$size]+="$(awk -v t=$((u1 - u0)) -v hz="$hz" -v n="$reqs" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}') "
			SYS[$name,$size]+="$(awk -v t=$((s1 - s0)) -v hz="$hz" -v n="$reqs" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}') "
			CPU[$name,$size]+="$(awk -v t=$((u1 - u0 + s1 - s0)) -v hz="$hz" -v n="$reqs" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}') "
		done
	done
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
printf "%-11s %8s %10s %11s %9s %9s   %s\n" server size "req/s" "CPU µs/req" "user" "sys" "CPU µs/req of each run"
for size in $SIZES; do
	for name in $SERVERS; do
		printf "%-11s %8s %10s %11s %9s %9s   %s\n" "$name" "$size" \
			"$(median <<<"${RPS[$name,$size]}")" "$(median <<<"${CPU[$name,$size]}")" \
			"$(median <<<"${USR[$name,$size]}")" "$(median <<<"${SYS[$name,$size]}")" "${CPU[$name,$size]}"
	done
done
echo
if [[ " $SERVERS " == *" nginx "* && " $SERVERS " == *" proxycache "* ]]; then
	for size in $SIZES; do
		line="size $size: CPU per request relative to proxycache's (>1: proxycache cheaper):"
		for name in $SERVERS; do
			[[ $name == proxycache ]] && continue
			line+=" $name $(awk -v a="$(median <<<"${CPU[$name,$size]}")" -v b="$(median <<<"${CPU[proxycache,$size]}")" 'BEGIN {printf "%.2f", a / b}')"
		done
		echo "$line"
	done
fi
