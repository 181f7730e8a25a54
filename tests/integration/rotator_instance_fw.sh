#!/bin/bash
# The instance envelope of `inet mtd` against the real kernel, only inside
# namespaces this script creates: it re-executes itself in private mount and
# network namespaces (the "agent" namespace), where a client namespace is
# joined by a veth and two "instance" namespaces by veths whose host ends are
# mtdi1/mtdi2 (link-local gateways on the host end, /32 and /128 host routes,
# as agent/sandbox/netdev.c builds them). Checks: a client reaches the instance only
# through the public port's DNAT (IPv4 and IPv6), never its address directly;
# the host itself still reaches it; the instance reaches what its Egress=
# rules allow (overlapping rules included) and nothing else, each drop
# reported on NFLOG with source, destination and link; one transaction moving
# the route to a replacement and removing the old instance's elements cuts the
# old one's ingress, egress and established flows; a foreign table is
# untouched; removal leaves nothing. Needs root, nft, ip, cc, pkg-config.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$root/$BUILD" ;; esac

[ "$(id -u)" -eq 0 ] || { echo "skip: needs root"; exit 77; }
for tool in ip nft cc pkg-config timeout unshare; do
	command -v "$tool" >/dev/null || { echo "skip: $tool missing"; exit 77; }
done
if [ "${MTD_FW_IN_NAMESPACE:-}" != 1 ]; then
	MTD_FW_IN_NAMESPACE=1 BUILD="$BUILD" exec unshare --mount --net --propagation private \
		-- bash "$0" "$@"
fi

tmp=$(mktemp -d /tmp/rotator-fw.XXXXXX)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	for ns in cli inst1 inst2; do ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null; done
	for ns in cli inst1 inst2; do ip netns del "$ns" 2>/dev/null; done
	umount /run/netns 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() { echo "FAIL: $*"; nft list table inet mtd 2>&1 | sed -n '/chain /,$p'; exit 1; }
ok() { echo "ok: $*"; }

# --- the driver, built against the library ------------------------------------------
make -s -C "$root" BUILD="$BUILD" "$BUILD/librotator.a" >/dev/null || fail "building librotator.a"
# MTD_TEST_SANITIZED: the library was built with these flags (make san-integration)
cc -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -I"$root/common" -I"$root/rotator" -O2 \
	${MTD_TEST_SANITIZED:-} -o "$tmp/driver" "$here/rotator-driver.c" "$BUILD/librotator.a" \
	$(pkg-config --cflags --libs libnftnl libmnl libcrypto) || fail "building rotator-driver"
drv="$tmp/driver"

# --- topology: this namespace is the agent's ------------------------------------------
mkdir -p /run/netns
mount -t tmpfs -o mode=0755 mtd-fw-netns /run/netns || fail "tmpfs on /run/netns"
ip link set lo up
sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 || fail "forwarding"
ip netns add cli || fail "client namespace"
ip link add veth-a type veth peer name veth-c netns cli
ip addr add 10.88.0.1/24 dev veth-a
ip addr add fd88::1/64 dev veth-a nodad
ip link set veth-a up
C="ip netns exec cli"
$C ip link set lo up
$C ip addr add 10.88.0.2/24 dev veth-c
$C ip addr add fd88::2/64 dev veth-c nodad
$C ip link set veth-c up
$C ip route add default via 10.88.0.1
$C ip -6 route add default via fd88::1

# add_instance N ADDR4 ADDR6: namespace instN behind the host link mtdiN
add_instance() {
	local n=$1 a4=$2 a6=$3 ns=inst$1
	ip netns add "$ns" || fail "instance namespace $ns"
	ip link add "mtdi$n" type veth peer name eth0 netns "$ns" || fail "mtdi$n"
	ip addr add 169.254.0.1/32 dev "mtdi$n"
	ip addr add fe80::1/64 dev "mtdi$n" nodad
	ip link set "mtdi$n" up
	ip route add "$a4/32" dev "mtdi$n"
	ip -6 route add "$a6/128" dev "mtdi$n"
	ip netns exec "$ns" ip link set lo up
	ip netns exec "$ns" ip addr add "$a4/32" dev eth0
	ip netns exec "$ns" ip addr add "$a6/128" dev eth0 nodad
	ip netns exec "$ns" ip link set eth0 up
	ip netns exec "$ns" ip route add 169.254.0.1 dev eth0
	ip netns exec "$ns" ip route add default via 169.254.0.1 dev eth0
	ip netns exec "$ns" ip -6 route add default via fe80::1 dev eth0
	ip netns exec "$ns" "$drv" echo 7000 "instance-$n" >"$tmp/echo$n.log" 2>&1 &
	pids="$pids $!"
}
add_instance 1 10.214.0.5 fd00:214::5
add_instance 2 10.214.0.6 fd00:214::6
I1="ip netns exec inst1"

# listeners in the client namespace: 5353 allowed to instance 1, 5354 not
$C "$drv" serve 5353 >"$tmp/serve1.log" 2>&1 &
pids="$pids $!"
$C "$drv" serve 5354 >"$tmp/serve2.log" 2>&1 &
pids="$pids $!"
for f in echo1 echo2 serve1 serve2; do
	for _ in $(seq 50); do grep -q serving "$tmp/$f.log" && break; sleep 0.1; done
done

# greet NS HOST PORT [SECONDS]: the first line a TCP server sends (empty when
# unreachable), waiting at most SECONDS (3)
greet() { ip netns exec "$1" timeout "${4:-3}" bash -c "exec 3<>/dev/tcp/$2/$3 && head -n 1 <&3" 2>/dev/null; }
# An answer over these veths comes in milliseconds: a drop is seen in 1 s (the
# SYN is sent, and counted or logged, at once), an answer is waited for 3 s.
expect() { # WHAT WANT NS HOST PORT
	local got
	got=$(greet "$3" "$4" "$5" "$([ -n "$2" ] && echo 3 || echo 1)")
	[ "$got" = "$2" ] || fail "$1: $4 port $5 from $3 answered '$got', want '$2'"
	ok "$1"
}

expect "control: the client reaches instance 1 directly before any table" instance-1 cli 10.214.0.5 7000

# --- a foreign table that must stay untouched -------------------------------------------
nft -f - <<'NFT' || fail "foreign table"
table ip foreign {
	chain mine {
		type filter hook forward priority 10; policy accept;
		ip saddr 192.0.2.1 counter accept comment "not ours"
	}
}
NFT
nft list table ip foreign >"$tmp/foreign.before"

# --- default deny before any element ----------------------------------------------------
out=$("$drv" -E 9 apply) || fail "empty plan: $out"
expect "default deny: no element, instance 1 unreachable" "" cli 10.214.0.5 7000
[ -z "$(greet inst1 10.88.0.2 5353 1)" ] || fail "default deny: instance 1 reached the client"
ok "default deny: instance 1 reaches nothing"

# --- instance 1 behind the public port ------------------------------------------------------
SVC1="web,tcp,24000,0,10.214.0.5,7000,0"
SVC1v6="web,tcp,24000,0,fd00:214::5,7000,0"
# overlapping rules: 10.88.0.2 gets 5300-5353, the rest of the /24 only 5353
INST1="i1,10.214.0.5+fd00:214::5,tcp,7000,tcp/5353@10.88.0.0/24,tcp/5300-5353@10.88.0.2,udp/53,tcp/5353@fd88::2"
out=$("$drv" -E 9 apply $SVC1 $SVC1v6 -i "$INST1") || fail "apply: $out"
nft list table inet mtd >"$tmp/list1"
grep -q 'elements = { 10.214.0.5 . tcp . 7000 }' "$tmp/list1" || fail "inst_ingress4 element"
ok "plan with instance 1 applied ($out)"

expect "(1) client -> public port -> DNAT -> instance 1 (IPv4)" instance-1 cli 10.88.0.1 24000
expect "(1) client -> public port -> DNAT -> instance 1 (IPv6)" instance-1 cli fd88::1 24000
[ "$(greet "" 10.214.0.5 7000 2>/dev/null || timeout 3 bash -c 'exec 3<>/dev/tcp/10.214.0.5/7000 && head -n 1 <&3')" = instance-1 ] ||
	fail "the host itself no longer reaches instance 1"
ok "the host itself (health checks) still reaches instance 1 directly"
expect "(2) client -> instance address directly: dropped (IPv4)" "" cli 10.214.0.5 7000
expect "(2) client -> instance address directly: dropped (IPv6)" "" cli fd00:214::5 7000
expect "(2) client -> another port of the instance: dropped" "" cli 10.214.0.5 7001
nft list chain inet mtd instance_ingress | grep -q 'counter packets [1-9].* drop' ||
	fail "ingress drop not counted"
ok "(2) the attempt is counted by instance_ingress"

"$drv" -E 9 egress 1000 2500 >"$tmp/egress.log" 2>&1 & # until 2.5 s without a drop
eg_pid=$!
pids="$pids $eg_pid"
for _ in $(seq 50); do grep -q listening "$tmp/egress.log" && break; sleep 0.1; done
expect "(3) instance 1 -> allowed egress destination works (IPv4)" mtd-ok inst1 10.88.0.2 5353
expect "(3) instance 1 -> allowed egress destination works (IPv6)" mtd-ok inst1 fd88::2 5353
expect "(4) instance 1 -> a port not allowed: dropped" "" inst1 10.88.0.2 5354
expect "(4) instance 1 -> this host (input path): dropped" "" inst1 169.254.0.1 22
expect "(4) instance 1 -> not allowed over IPv6: dropped" "" inst1 fd88::2 5354
wait "$eg_pid"
grep -q "^drop 10.214.0.5 10.88.0.2 6 5354 on mtdi1$" "$tmp/egress.log" ||
	fail "egress drop not reported: $(cat "$tmp/egress.log")"
grep -q "^drop 10.214.0.5 169.254.0.1 6 22 on mtdi1$" "$tmp/egress.log" ||
	fail "egress drop to the host not reported: $(cat "$tmp/egress.log")"
grep -q "^drop fd00:214::5 fd88::2 6 5354 on mtdi1$" "$tmp/egress.log" ||
	fail "IPv6 egress drop not reported: $(cat "$tmp/egress.log")"
ok "(4) each drop is on NFLOG with the instance's source and the destination: $(tr '\n' ';' <"$tmp/egress.log")"

# --- (4b) instance 1 cut off (containment): out of the live and ingress sets only -----------
# a connection to instance 1 through the DNAT, held open across the cut
mkfifo "$tmp/go-cut"
$C timeout 20 bash -c '
	exec 3<>/dev/tcp/10.88.0.1/24000 || exit 1
	read -t 3 -r greeting <&3; echo "greeting $greeting"
	echo one >&3; read -t 3 -r reply <&3; echo "before $reply"
	read -r _ <'"$tmp/go-cut"'
	echo two >&3; reply=; read -t 1 -r reply <&3; echo "after ${reply:-none}" # cut: reset at once
' >"$tmp/held-cut.log" 2>&1 &
held=$!
pids="$pids $held"
for _ in $(seq 50); do grep -q '^before' "$tmp/held-cut.log" && break; sleep 0.1; done
grep -q '^before one$' "$tmp/held-cut.log" || fail "held connection did not start: $(cat "$tmp/held-cut.log")"
out=$("$drv" -E 9 apply $SVC1 $SVC1v6 -i "cut:$INST1") || fail "cut: $out"
nft list set inet mtd instances4 | grep -q '10.214.0.5' && fail "(4b) the cut instance is still live"
nft list set inet mtd inst_egress4 | grep -q '10.214.0.5' || fail "(4b) the cut instance's Egress= elements went (they stay)"
ok "(4b) cut: out of the live set, its Egress= elements left in place ($out)"
echo go >"$tmp/go-cut"
wait "$held"
grep -q '^after none$' "$tmp/held-cut.log" || fail "(4b) the established flow survived the cut: $(cat "$tmp/held-cut.log")"
ok "(4b) the established flow to the cut instance is cut"
grep -q 'Connection reset by peer' "$tmp/held-cut.log" ||
	fail "(4b) the cut flow's client was not reset (dead4): $(cat "$tmp/held-cut.log")"
ok "(4b) its client is answered with a reset (the cut instance's address is in dead4)"
expect "(4b) the public port (still mapped to it) leads nowhere" "" cli 10.88.0.1 24000
expect "(4b) a cut instance's allowed egress is dropped (IPv4)" "" inst1 10.88.0.2 5353
expect "(4b) a cut instance's allowed egress is dropped (IPv6)" "" inst1 fd88::2 5353
out=$("$drv" -E 9 apply $SVC1 $SVC1v6 -i "$INST1") || fail "un-cut: $out"
expect "(4b) live again, its egress works (the rule asks for a live source)" mtd-ok inst1 10.88.0.2 5353

# --- (5) one transaction: the route moves to instance 2, instance 1 is cut -------------------
# a connection to instance 1 through the DNAT, held open across the transaction
mkfifo "$tmp/go"
$C timeout 20 bash -c '
	exec 3<>/dev/tcp/10.88.0.1/24000 || exit 1
	read -t 3 -r greeting <&3; echo "greeting $greeting"
	echo one >&3; read -t 3 -r reply <&3; echo "before $reply"
	read -r _ <'"$tmp/go"'
	echo two >&3; read -t 1 -r reply <&3; echo "after ${reply:-none}" # cut: 1 s is plenty
' >"$tmp/held.log" 2>&1 &
held=$!
pids="$pids $held"
for _ in $(seq 50); do grep -q '^before' "$tmp/held.log" && break; sleep 0.1; done
grep -q '^before one$' "$tmp/held.log" || fail "held connection did not start: $(cat "$tmp/held.log")"
SVC2="web,tcp,24000,0,10.214.0.6,7000,0"
INST2="i2,10.214.0.6+fd00:214::6,tcp,7000,tcp/5353@10.88.0.2"
out=$("$drv" -E 9 apply $SVC1 $SVC1v6 -i "$INST1" -- $SVC2 -i "$INST2") || fail "replace: $out"
echo "$out" | grep -q '^step 2: ' || fail "replace: $out"
ok "(5) route moved and instance 1 removed in one transaction ($(echo "$out" | sed -n 2p))"
echo go >"$tmp/go"
wait "$held"
grep -q '^after none$' "$tmp/held.log" || fail "(5) the established flow to instance 1 survived: $(cat "$tmp/held.log")"
ok "(5) the established flow to instance 1 is cut"
expect "(5) the public port now reaches instance 2" instance-2 cli 10.88.0.1 24000
expect "(5) instance 1 unreachable directly" "" cli 10.214.0.5 7000
expect "(5) instance 1's egress is cut" "" inst1 10.88.0.2 5353
expect "(5) instance 2's egress works" mtd-ok inst2 10.88.0.2 5353
nft list table inet mtd | grep -q '10.214.0.5' && fail "(5) an element of instance 1 is left"
ok "(5) no element of instance 1 is left"

# --- spoofing: instance 1 sends as instance 2 (whose egress allows 5353) ----------------------
"$drv" -E 9 egress 1000 2500 >"$tmp/spoof.log" 2>&1 &
eg_pid=$!
pids="$pids $eg_pid"
for _ in $(seq 50); do grep -q listening "$tmp/spoof.log" && break; sleep 0.1; done
$I1 ip addr add 10.214.0.6/32 dev eth0
$I1 ip route change default via 169.254.0.1 dev eth0 src 10.214.0.6
expect "instance 1 using instance 2's address reaches nothing" "" inst1 10.88.0.2 5353
wait "$eg_pid"
grep -q "^drop 10.214.0.6 10.88.0.2 6 5353 on mtdi1 spoofed$" "$tmp/spoof.log" ||
	fail "spoofed packet not reported: $(cat "$tmp/spoof.log")"
ok "the spoofed packets are reported as spoofed, on instance 1's link"

# --- fail closed: an instance whose elements cannot be installed ------------------------------
out=$("$drv" -E 9 apply $SVC2 -i "$INST2" -i "i3,10.214.0.6,tcp,7000" 2>&1) &&
	fail "two instances with one address accepted: $out"
echo "$out" | grep -q "instance i3" || fail "error does not name the instance: $out"
ok "a plan whose instance cannot be installed fails and names it ($out)"

# --- removal; the foreign table is byte-identical --------------------------------------------
"$drv" remove || fail "remove"
nft list table inet mtd >/dev/null 2>&1 && fail "table still there after remove"
nft list table ip foreign >"$tmp/foreign.after"
cmp -s "$tmp/foreign.before" "$tmp/foreign.after" || fail "foreign table changed"
ok "(6) foreign table byte-identical; inet mtd removed"
echo "--- table with instance 1:"
cat "$tmp/list1"
exit 0
