#!/bin/bash
# Ports already bound in the agent's namespace are skipped by the schedule
# (docs/schedule.md): a TCP listener over IPv4 or IPv6, or a UDP socket bound
# to the port (an unconnected one over IPv4, a connected one over IPv6: a
# connected UDP socket still holds its local port), found over
# NETLINK_SOCK_DIAG, which the agent asks at every boundary, on the port the
# keyed schedule would pick makes the agent pick the next candidate, where
# `mtdctl port` (which knows nothing of the host) says the first. A UDP
# service is a managed one (ListenPort=.../udp): its port is scheduled
# whatever its instance does, so a sleeping probe instance serves.
. "$(dirname "$0")/lib.bash"
enter_private_namespaces "$@"
make_work_dir

NETPROBE=$BUILD_DIR/tools/netprobe
[ -x "$NETPROBE" ] || fail "build the test tools first: $NETPROBE"
listeners=()
stop_listeners() { kill "${listeners[@]}" 2>/dev/null; wait "${listeners[@]}" 2>/dev/null; }
trap 'stop_listeners; cleanup_work' EXIT

# An hour's interval: the epoch does not change between `mtdctl port` and the
# agent's start (checked below).
for svc in four six; do
	write_host_policy "$svc" 20000-20999 127.0.0.1:22
	sed -i 's/^Interval=60s/Interval=3600s/' "$WORK/policies/$svc.policy"
done
sed -i 's/^PublicPorts=.*/PublicPorts=21000-21999/' "$WORK/policies/six.policy"
make_probe_snapshot
write_probe_service udp4 22000-22999 "/bin/probe sleep" "[Rotation] AddressPool=10.215.0.0/24"
write_probe_service udp6 23000-23999 "/bin/probe sleep" "[Rotation] AddressPool=10.216.0.0/24"
for svc in udp4 udp6; do
	sed -i -e 's|^ListenPort=8080/tcp$|ListenPort=8080/udp|' -e 's/^Interval=60s$/Interval=3600s/' \
		"$WORK/policies/$svc.policy"
	grep -q '^ListenPort=8080/udp$' "$WORK/policies/$svc.policy" || fail "$svc: not a UDP service"
done
first() { "$MTDCTL" port "$1" --policy "$WORK/policies/$1.policy" 2>/dev/null; }
p4=$(first four) && p6=$(first six) && u4=$(first udp4) && u6=$(first udp6) || fail "mtdctl port"
epoch0=$(( $(date +%s) / 3600 ))

"$NETPROBE" echo-server 127.0.0.1 "$p4" &
listeners+=($!)
"$NETPROBE" echo-server ::1 "$p6" &
listeners+=($!)
"$NETPROBE" udp-bound 127.0.0.1 "$u4" &
listeners+=($!)
"$NETPROBE" udp-bound ::1 "$u6" 9 &
listeners+=($!)
wait_for "ss -ltn | grep -q ':$p4 ' && ss -ltn | grep -q ':$p6 '" 50 ||
	fail "the listeners did not start"
wait_for "ss -uan state unconnected | grep -q '127.0.0.1:$u4 ' &&
	ss -uan state established | grep -q '\[::1\]:$u6 '" 50 || fail "the UDP sockets did not start"

start_agent
[ "$(( $(date +%s) / 3600 ))" -eq "$epoch0" ] || skip "an hour boundary passed during the set-up; run again"
status=$(mtdctl --json status | tr -d ' \n')
port_of() { echo "$status" | grep -o "\"name\":\"$1\",\"epoch\":[0-9]*,\"port\":[0-9]*" | sed 's/.*"port"://'; }
a4=$(port_of four) && a6=$(port_of six) && b4=$(port_of udp4) && b6=$(port_of udp6)
[ -n "$a4" ] && [ -n "$a6" ] && [ -n "$b4" ] && [ -n "$b6" ] || fail "no ports in status: $status"
[ "$a4" != "$p4" ] || fail "an IPv4 TCP listener on $p4: the agent still chose it"
ok "a TCP listener on 127.0.0.1:$p4 moves the service to $a4"
[ "$a6" != "$p6" ] || fail "an IPv6 TCP listener on $p6: the agent still chose it"
ok "a TCP listener on [::1]:$p6 moves the service to $a6"
[ "$b4" != "$u4" ] || fail "a UDP socket bound to 127.0.0.1:$u4: the agent still chose it"
ok "an unconnected UDP socket on 127.0.0.1:$u4 moves the UDP service to $b4"
[ "$b6" != "$u6" ] || fail "a UDP socket on [::1]:$u6 connected to [::1]:9: the agent still chose it"
ok "a connected UDP socket on [::1]:$u6 moves the UDP service to $b6"

stop_agent || fail "the agent did not stop cleanly"
echo "$TEST_NAME: $CHECKS checks passed"
