#!/bin/bash
# Ports already bound in the agent's namespace are skipped by the schedule
# (docs/schedule.md): a TCP listener over IPv4 or IPv6 (found over
# NETLINK_SOCK_DIAG, which the agent asks at every boundary) on the port the
# keyed schedule would pick makes the agent pick the next candidate, where
# `mtdctl port` (which knows nothing of the host) says the first. (UDP
# services are managed ones; their bound ports come from /proc/net/udp*,
# unit-tested in test_host_ports.)
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
first() { "$MTDCTL" port "$1" --policy "$WORK/policies/$1.policy" 2>/dev/null; }
p4=$(first four) && p6=$(first six) || fail "mtdctl port"
epoch0=$(( $(date +%s) / 3600 ))

"$NETPROBE" echo-server 127.0.0.1 "$p4" &
listeners+=($!)
"$NETPROBE" echo-server ::1 "$p6" &
listeners+=($!)
wait_for "ss -ltn | grep -q ':$p4 ' && ss -ltn | grep -q ':$p6 '" 50 ||
	fail "the listeners did not start"

start_agent
[ "$(( $(date +%s) / 3600 ))" -eq "$epoch0" ] || skip "an hour boundary passed during the set-up; run again"
status=$(mtdctl --json status | tr -d ' \n')
port_of() { echo "$status" | grep -o "\"name\":\"$1\",\"epoch\":[0-9]*,\"port\":[0-9]*" | sed 's/.*"port"://'; }
a4=$(port_of four) && a6=$(port_of six)
[ -n "$a4" ] && [ -n "$a6" ] || fail "no ports in status: $status"
[ "$a4" != "$p4" ] || fail "an IPv4 TCP listener on $p4: the agent still chose it"
ok "a TCP listener on 127.0.0.1:$p4 moves the service to $a4"
[ "$a6" != "$p6" ] || fail "an IPv6 TCP listener on $p6: the agent still chose it"
ok "a TCP listener on [::1]:$p6 moves the service to $a6"

stop_agent || fail "the agent did not stop cleanly"
echo "$TEST_NAME: $CHECKS checks passed"
