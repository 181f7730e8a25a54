#!/bin/bash
# make bench: knock to admitted, seen from the client (issue 15, target
# <= 1 ms at the median): a ClientAuth=knock service of N clients; each
# client in turn, in "cli", sends a knock from a fresh source address (so no
# earlier admission helps), then connects to its door from that source,
# again at once on each RST, until the backend's handshake completes
# (tests/tools/knock-send latency). One knock per client: a client has 16
# nonces per KnockWindow= (docs/schedule.md, "Replay rules"). Beside it, measured in the same run from the same sources: a
# connect to the door once admitted, the floor a knock cannot beat.
# Everything runs in namespaces of its own: the agent's in this one, the
# client in "cli", joined by a veth pair. The tail (p99) is the audit log's
# fdatasync (a few ms, in the agent's loop: strace -T showed it) and the
# shared cores, not the knock's own work.
. "$(dirname "$0")/../integration/lib.bash"
KNOCKS=${MTD_BENCH_KNOCKS:-500}
enter_private_namespaces "$@"
make_work_dir
KNOCK=$BUILD_DIR/tools/knock-send
NETPROBE=$BUILD_DIR/tools/netprobe
[ -x "$KNOCK" ] && [ -x "$NETPROBE" ] || fail "build the test tools first"

setup_client_namespace
# the fresh sources: 10.214.0.1 + i, on the client's link
for i in $(seq 1 "$KNOCKS"); do
	echo "addr add 10.214.$((i / 256)).$((i % 256))/32 dev veth-cli"
done | ip -n cli -batch - || fail "cannot add the client's source addresses"
ip route add 10.214.0.0/16 dev veth-srv
# the server knows their link address already, as it would a router's: the
# first answer to a fresh source waits for no ARP (the comparison's do not)
mac=$(ip -n cli -br link show veth-cli | awk '{print $3}')
for i in $(seq 1 "$KNOCKS"); do
	echo "neigh replace 10.214.$((i / 256)).$((i % 256)) lladdr $mac dev veth-srv nud permanent"
done | ip -batch - || fail "cannot add the neighbours"
"$NETPROBE" echo-server 10.213.0.1 8022 &
ECHO=$!
trap 'kill $ECHO 2>/dev/null; cleanup_work' EXIT

CLIENTS=$WORK/clients
mkdir -m 0755 "$CLIENTS"
(umask 077 && for i in $(seq 0 $((KNOCKS - 1))); do head -c 32 /dev/urandom >"$CLIENTS/c$i.key"; done)
printf '[Agent]\nHostId=bench-host\n' >"$WORK/mtd.conf"
cat >"$WORK/policies/echo.policy" <<POLICY
[Service]
Name=echo
Backend=10.213.0.1:8022

[Rotation]
PublicPorts=20000-29999
Interval=1h
Grace=1min
ClientKeys=$CLIENTS
ClientAuth=knock
POLICY
start_agent --config "$WORK/mtd.conf"
out=$(in_client "$KNOCK" latency "$KNOCKS" "$CLIENTS" echo bench-host 20000 29999 3600 \
	10.213.0.1 10.214.0.1 2>&1) || fail "knock-send latency: $out"
echo "$out"
median=$(sed -n 's/^knock to admitted.*median=\([0-9]*\) us.*/\1/p' <<<"$out")
echo "bench_knock: knock to admitted median ${median} us (target <= 1000 us)"
