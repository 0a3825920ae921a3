#!/bin/bash
# keepalived-baseline.sh: failover of one virtual IP in network namespaces,
# Debian's keepalived (advert_int 1 and 0.1) side by side with
# examples/wackamole (its default profile, vip.DefaultDetector, and
# bus/cluster's LAN profile), measured the same way: the
# owner's switch port goes down, and the time until the client's neighbour
# entry for the VIP points at the new owner is read from `ip -ts monitor
# neigh` (netlink events, no polling).
#
#   sudo vip/scripts/keepalived-baseline.sh [trials]     # default 10
#
# Needs root, iproute2, keepalived, bash and Go. Everything happens inside
# namespaces it creates (198.18.0.0/24) and removes on exit. Not part of
# the test gate.
set -euo pipefail

TRIALS=${1:-10}
VIP=198.18.0.100
P=vipka$$
TMP=$(mktemp -d)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PIDS=()

cleanup() {
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	for ns in sw client a b; do ip netns del "$P-$ns" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT

for tool in ip keepalived go; do
	command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }

# Lab: a bridge in $P-sw, hosts client (.1), a (.2), b (.3) on it.
ip netns add "$P-sw"
ip -n "$P-sw" link add br0 type bridge forward_delay 0
ip -n "$P-sw" link set br0 up
i=1
for h in client a b; do
	ip netns add "$P-$h"
	ip -n "$P-sw" link add "p-$h" type veth peer name eth0 netns "$P-$h"
	ip -n "$P-sw" link set "p-$h" master br0 up
	ip -n "$P-$h" link set lo up
	ip -n "$P-$h" addr add "198.18.0.$i/24" dev eth0
	ip -n "$P-$h" link set eth0 up
	i=$((i + 1))
done
mac() { ip -n "$P-$1" -br link show eth0 | awk '{print $3}'; }
MAC_a=$(mac a)
MAC_b=$(mac b)

owners() {
	for h in a b; do
		if ip -n "$P-$h" -br addr show dev eth0 | grep -qw "$VIP/32"; then echo "$h"; fi
	done
}
poke() { ip netns exec "$P-client" bash -c "echo x > /dev/udp/$VIP/9" 2>/dev/null || true; }
client_mac() { ip -n "$P-client" neigh show "$VIP" | awk '{for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i + 1)}'; }

# settle waits until exactly one host has the VIP and the client's entry
# points at it; it prints that host.
settle() {
	local deadline=$((SECONDS + 60)) o
	while [ $SECONDS -lt $deadline ]; do
		o=$(owners)
		if [ "$(echo "$o" | grep -c .)" = 1 ]; then
			poke
			local want="MAC_$o"
			if [ "$(client_mac)" = "${!want}" ]; then echo "$o"; return 0; fi
		fi
		sleep 0.1
	done
	echo "no single owner: $(owners | tr '\n' ' ')" >&2
	return 1
}

# trial detaches the owner's port and prints the seconds until the client's
# entry points at the other host.
trial() {
	local owner=$1 other want mon start t
	other=$([ "$owner" = a ] && echo b || echo a)
	want="MAC_$other"
	mon=$TMP/mon.$RANDOM
	ip -n "$P-client" -ts monitor neigh >"$mon" &
	local monpid=$!
	sleep 0.2
	start=$(date +%s.%N)
	ip -n "$P-sw" link set "p-$owner" down
	local deadline=$((SECONDS + 20))
	t=""
	while [ $SECONDS -lt $deadline ]; do
		t=$(grep -F "$VIP " "$mon" | grep -F "${!want}" | head -1 | sed -n 's/^\[\([^]]*\)\].*/\1/p')
		[ -n "$t" ] && break
		sleep 0.05
	done
	kill "$monpid" 2>/dev/null || true
	wait "$monpid" 2>/dev/null || true
	ip -n "$P-sw" link set "p-$owner" up
	[ -n "$t" ] || { echo "timeout"; return; }
	echo "$(date -d "$t" +%s.%N) - $start" | bc -l | awk '{printf "%.3f\n", $1}'
}

summary() {
	sort -n | awk -v name="$1" '{v[NR]=$1} END {
		if (NR == 0) { printf "%-28s no data\n", name; exit }
		printf "%-28s n=%d  p50 %.3f s  p95 %.3f s  max %.3f s\n", name, NR, v[int((NR+1)*0.5)], v[int(NR*0.95+0.999)], v[NR] }'
}

run_trials() {
	local label=$1 owner
	: >"$TMP/$label.times"
	for _ in $(seq "$TRIALS"); do
		owner=$(settle)
		trial "$owner" | grep -v timeout >>"$TMP/$label.times" || echo "$label: trial timed out" >&2
	done
	summary "$label" <"$TMP/$label.times" >>"$TMP/summary"
}

stop_all() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	PIDS=()
	for h in a b; do ip -n "$P-$h" addr del "$VIP/32" dev eth0 2>/dev/null || true; done
}

keepalived_run() {
	local adv=$1 prio
	for h in a b; do
		prio=$([ "$h" = a ] && echo 150 || echo 100)
		cat >"$TMP/ka-$h.conf" <<CONF
global_defs {
	router_id $h
	vrrp_version 3
	script_user root
	enable_script_security
}
vrrp_instance VI {
	state BACKUP
	interface eth0
	virtual_router_id 51
	priority $prio
	advert_int $adv
	virtual_ipaddress {
		$VIP/32 dev eth0
	}
}
CONF
		ip netns exec "$P-$h" keepalived -n -l -P -f "$TMP/ka-$h.conf" \
			-p "$TMP/ka-$h.pid" -r "$TMP/ka-$h.vrrp.pid" >"$TMP/ka-$h.log" 2>&1 &
		PIDS+=($!)
	done
	run_trials "keepalived advert_int $adv"
	stop_all
}

wackamole_run() {
	local profile=$1
	[ -x "$TMP/wackamole" ] || (cd "$ROOT" && go build -o "$TMP/wackamole" ./examples/wackamole)
	for h in a b; do
		local self other
		self=$([ "$h" = a ] && echo 198.18.0.2 || echo 198.18.0.3)
		other=$([ "$h" = a ] && echo 198.18.0.3 || echo 198.18.0.2)
		ip netns exec "$P-$h" "$TMP/wackamole" -name "$h" -bind "$self" -gossip-port 7946 -data-port 7947 \
			-seeds "$other:7946" -mature 2s -profile "$profile" -vif "eth0:$VIP" >"$TMP/wm-$h.log" 2>&1 &
		PIDS+=($!)
	done
	run_trials "wackamole -profile $profile"
	stop_all
}

: >"$TMP/summary"
keepalived_run 1
keepalived_run 0.1
wackamole_run vip
wackamole_run lan
echo "failover, port down -> client neighbour entry on the new owner ($TRIALS trials each):"
cat "$TMP/summary"
