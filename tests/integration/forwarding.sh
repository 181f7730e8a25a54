#!/bin/bash
# The agent switches IP forwarding on for its instances, and the host must not
# become a router for anything else. The test's namespace is the host, with a
# client network (cli, 10.213.0.0/24, fd00:213::/64) and a second one (far,
# 10.99.0.0/24, fd00:99::/64), each routed through the host. Checks: with
# forwarding off before the agent, a client still reaches a managed instance
# through the rotating port, but nothing is forwarded between cli and far
# (IPv4 and IPv6; the same ping goes through with plain forwarding, so the
# topology routes), RAs stay accepted where they were (accept_ra 1 -> 2); a
# clean stop puts every setting back; a killed agent leaves them saved and the
# next one restores them on its stop; with forwarding already on, the agent
# leaves routing alone and does not switch it off.
. "$(dirname "$0")/lib.bash"
[ -x /bin/busybox ] || skip "busybox-static is not installed"
enter_private_namespaces "$@"
make_work_dir
setup_client_namespace

ip netns add far
ip link add veth-far type veth peer name veth-farend netns far
ip addr add 10.99.0.1/24 dev veth-far
ip -6 addr add fd00:99::1/64 dev veth-far nodad
ip link set veth-far up
ip -n far addr add 10.99.0.2/24 dev veth-farend
ip -n far -6 addr add fd00:99::2/64 dev veth-farend nodad
ip -n far link set veth-farend up
ip -n far link set lo up
ip -n far route add 10.213.0.0/24 via 10.99.0.1
ip -n far -6 route add fd00:213::/64 via fd00:99::1
in_client ip route add 10.99.0.0/24 via 10.213.0.1
in_client ip -6 route add fd00:99::/64 via fd00:213::1

sysctl_get() { tr -d '\n' <"/proc/sys/net/$1"; }
sysctl_set() { echo "$2" >"/proc/sys/net/$1"; }
reaches_far() { # 4|6: one ping from cli to far
	if [ "$1" = 4 ]; then in_client /bin/busybox ping -c 1 -W 1 10.99.0.2 >/dev/null 2>&1
	else in_client /bin/busybox ping -6 -c 1 -W 1 fd00:99::2 >/dev/null 2>&1; fi
}
sysctl_set ipv4/ip_forward 0
sysctl_set ipv6/conf/all/forwarding 0
for i in default veth-srv veth-far; do sysctl_set "ipv6/conf/$i/accept_ra" 1; done

# The topology routes: with plain forwarding, cli reaches far.
sysctl_set ipv4/ip_forward 1
sysctl_set ipv6/conf/all/forwarding 1
wait_for "reaches_far 4" 30 || fail "cli cannot reach far even with forwarding on"
wait_for "reaches_far 6" 30 || fail "cli cannot reach far over IPv6 even with forwarding on"
sysctl_set ipv4/ip_forward 0
sysctl_set ipv6/conf/all/forwarding 0
for i in veth-srv veth-far; do sysctl_set "ipv6/conf/$i/accept_ra" 1; done
reaches_far 4 && fail "cli reaches far with forwarding off"
ok "the topology routes cli to far with plain forwarding, not without"

make_web_snapshot "$WORK/snapshots/web"
write_key "$WORK/keys/web.key"
cat >"$WORK/policies/web.policy" <<POLICY
[Service]
Name=web
Snapshot=$WORK/snapshots/web
SnapshotKey=$WORK/keys/snap.pub
Exec=/bin/busybox httpd -f -p 8080 -h /www
ListenPort=8080/tcp
User=www
HealthInterval=1s

[Rotation]
PublicPorts=20000-20999
Interval=60s
KeyFile=$WORK/keys/web.key
AddressPool=10.214.0.0/24
AddressPool=fd00:214::/120

[Envelope]
SystemCalls=@system-service @network-io
POLICY
P=$WORK/policies/web.policy
serves() { http_get web "$P" "$1" /index.html | grep -q "served from a signed snapshot"; }

# --- forwarding off before the agent ---------------------------------------------
start_agent
wait_for "serves 10.213.0.1" 100 || fail "the instance is not served over IPv4"
wait_for "serves fd00:213::1" 50 || fail "the instance is not served over IPv6"
[ "$(sysctl_get ipv4/ip_forward)" = 1 ] || fail "the agent did not switch IPv4 forwarding on"
[ "$(sysctl_get ipv6/conf/all/forwarding)" = 1 ] || fail "the agent did not switch IPv6 forwarding on"
ok "a client reaches the instance through the rotating port (IPv4 and IPv6): forwarding is on"
reaches_far 4 && fail "the host routes IPv4 between cli and far while the agent runs"
reaches_far 6 && fail "the host routes IPv6 between cli and far while the agent runs"
guard=$(nft list chain inet mtd forward_filter)
assert_contains "$guard" 'iifname != "mtdi*" oifname != "mtdi*" ct status & dnat != dnat counter packets' \
	"the forward guard is in the table"
dropped=$(printf '%s\n' "$guard" | sed -n 's/.*meta nfproto ipv4 iifname != "mtdi\*".* packets \([0-9]*\) .*/\1/p')
[ "${dropped:-0}" -gt 0 ] || fail "the IPv4 forward guard counted no drop: $guard"
ok "nothing is forwarded between cli and far (IPv4 and IPv6): the guard dropped $dropped IPv4 packet(s)"
for i in default veth-srv veth-far; do
	[ "$(sysctl_get "ipv6/conf/$i/accept_ra")" = 2 ] ||
		fail "accept_ra of $i is $(sysctl_get "ipv6/conf/$i/accept_ra"), not 2: RAs would be ignored"
done
[ -s "$WORK/state/forwarding.saved" ] || fail "the host's settings were not saved"
ok "interfaces that accepted RAs still do while forwarding (accept_ra 2); the settings found are saved"

stop_agent || fail "the agent did not stop cleanly"
[ "$(sysctl_get ipv4/ip_forward)" = 0 ] || fail "IPv4 forwarding was left on"
[ "$(sysctl_get ipv6/conf/all/forwarding)" = 0 ] || fail "IPv6 forwarding was left on"
for i in default veth-srv veth-far; do
	[ "$(sysctl_get "ipv6/conf/$i/accept_ra")" = 1 ] || fail "accept_ra of $i was not put back"
done
[ -e "$WORK/state/forwarding.saved" ] && fail "forwarding.saved outlived a clean stop"
ok "a clean stop puts forwarding and accept_ra back and removes the saved settings"

# --- a killed agent: the next one knows what the host had -------------------------
start_agent
wait_for "serves 10.213.0.1" 100 || fail "the instance is not served after a restart"
kill -KILL "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
AGENT_PID=""
[ "$(sysctl_get ipv4/ip_forward)" = 1 ] || fail "forwarding is off after a kill (the instances' traffic)"
start_agent
reaches_far 4 && fail "the host routes between cli and far after a restart"
stop_agent || fail "the restarted agent did not stop cleanly"
[ "$(sysctl_get ipv4/ip_forward)" = 0 ] || fail "a restarted agent took 'on' for the host's setting"
[ "$(sysctl_get ipv6/conf/veth-srv/accept_ra)" = 1 ] || fail "accept_ra not restored after a kill and restart"
ok "after a SIGKILL the next agent restores what the host had, not what the killed one set"

# --- forwarding already on: a router stays a router ---------------------------------
sysctl_set ipv4/ip_forward 1
sysctl_set ipv6/conf/all/forwarding 1
start_agent
wait_for "serves 10.213.0.1" 100 || fail "the instance is not served on a router"
reaches_far 4 || fail "the agent stopped a router from routing IPv4"
reaches_far 6 || fail "the agent stopped a router from routing IPv6"
nft list chain inet mtd forward_filter | grep -q 'iifname != "mtdi\*"' &&
	fail "a forward guard on a host that forwarded before the agent"
stop_agent || fail "the agent did not stop cleanly on a router"
[ "$(sysctl_get ipv4/ip_forward)" = 1 ] || fail "the agent switched a router's forwarding off"
ok "on a host that already forwarded, routing goes on and forwarding stays on after the stop"
echo "$TEST_NAME: $CHECKS checks passed"
