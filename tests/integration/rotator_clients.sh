#!/bin/bash
# Per-client doors in the rotator library against the real kernel, inside
# network namespaces this script creates (and deletes on every exit path):
# client doors DNAT to the service's backend like its port; a knock-gated door
# refuses (RST) a source that is not admitted and serves one that is, per door
# and per family; an admission expires by itself and rotator_unadmit() revokes
# one; applies keep the admissions; a knock port's packets are logged to the
# knock group and answered as a closed port; with 1,000 doors per bank the
# boundary's switch is still four elements. Needs root, nft, ip, cc,
# pkg-config.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$root/$BUILD" ;; esac

[ "$(id -u)" -eq 0 ] || { echo "skip: needs root"; exit 77; }
for tool in ip nft cc pkg-config timeout; do
	command -v "$tool" >/dev/null || { echo "skip: $tool missing"; exit 77; }
done

tmp=$(mktemp -d /tmp/rotator-clients.XXXXXX)
srv="mtd-rcl-srv-$$"
cli="mtd-rcl-cli-$$"
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	for ns in "$srv" "$cli"; do ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null; done
	ip netns del "$srv" 2>/dev/null
	ip netns del "$cli" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() { echo "FAIL: $*"; [ -n "${srv_ready:-}" ] && ip netns exec "$srv" nft list table inet mtd 2>&1 | head -120; exit 1; }
ok() { echo "ok: $*"; }

make -s -C "$root" BUILD="$BUILD" "$BUILD/librotator.a" >/dev/null || fail "building librotator.a"
cc -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -I"$root/common" -I"$root/rotator" -O2 \
	${MTD_TEST_SANITIZED:-} -o "$tmp/driver" "$here/rotator-driver.c" "$BUILD/librotator.a" \
	$(pkg-config --cflags --libs libnftnl libmnl libcrypto) || fail "building rotator-driver"
drv="$tmp/driver"

ip netns add "$srv" && ip netns add "$cli" || fail "creating namespaces"
ip link add veth-s netns "$srv" type veth peer name veth-c netns "$cli" || fail "veth"
S="ip netns exec $srv"
C="ip netns exec $cli"
$S ip link set lo up; $C ip link set lo up
$S ip addr add 10.78.0.1/24 dev veth-s; $C ip addr add 10.78.0.2/24 dev veth-c
$S ip addr add fd78::1/64 dev veth-s nodad; $C ip addr add fd78::2/64 dev veth-c nodad
$S ip link set veth-s up; $C ip link set veth-c up

# try HOST PORT: "mtd-ok" (served), "refused" (RST), or "other" (timeout, ...)
try() {
	local out
	out=$($C timeout 3 bash -c "exec 3<>/dev/tcp/$1/$2 && head -c 6 <&3" 2>&1)
	case "$out" in
	mtd-ok) echo mtd-ok ;;
	*"Connection refused"*) echo refused ;;
	*) echo "other" ;;
	esac
}
expect() { # WANT HOST PORT WHAT
	local got
	got=$(try "$2" "$3")
	[ "$got" = "$1" ] || fail "$4: $2 port $3: $got, expected $1"
	ok "$4"
}

$S "$drv" serve 8080 >"$tmp/serve.log" 2>&1 &
pids="$pids $!"
for _ in $(seq 50); do grep -q serving "$tmp/serve.log" && break; sleep 0.1; done
expect mtd-ok 10.78.0.1 8080 "backend reachable directly before the table (control)"

# SERVICE = name,proto,port,grace,backend,bport,local,decoys,doors,gated,knock
web4() { echo "web,tcp,30001,0,10.78.0.1,8080,0,30900,$1,$2,$3"; }
web6() { echo "web,tcp,30001,0,fd78::1,8080,0,30901,$1,$2,$3"; }

# --- open doors: every client's door leads to the backend -------------------------------
out=$($S "$drv" -K 9 apply "$(web4 30002:30003:30002 0 -)" "$(web6 30002:30003 0 -)") ||
	fail "apply with doors: $out"
srv_ready=1
expect mtd-ok 10.78.0.1 30002 "a client's door reaches the backend (IPv4)"
expect mtd-ok 10.78.0.1 30003 "another client's door reaches the backend"
expect mtd-ok fd78::1 30003 "a client's door reaches the backend (IPv6)"
expect mtd-ok 10.78.0.1 30001 "the service's port still does"
expect refused 10.78.0.1 30004 "a port that is no door is closed"

# --- gated doors: only admitted sources ------------------------------------------------------
out=$($S "$drv" -K 9 apply "$(web4 30002:30003 1 30100:30101)" "$(web6 30002:30003 1 30100:30101)") ||
	fail "apply gated: $out"
$S nft list set inet mtd gated_0 >/dev/null 2>&1 || fail "no gated set"
expect refused 10.78.0.1 30002 "a gated door refuses (RST) a source not admitted"
expect refused fd78::1 30002 "a gated door refuses (RST) a source not admitted (IPv6)"
expect refused 10.78.0.1 30001 "the gated service's port too"
out=$($S "$drv" admit 10.78.0.2 tcp 30002 600000 fd78::2 tcp 30003 600000) || fail "admit: $out"
expect mtd-ok 10.78.0.1 30002 "an admitted source reaches the backend through its door"
expect refused 10.78.0.1 30003 "the admission is for that door only"
expect mtd-ok fd78::1 30003 "an admitted IPv6 source reaches its door"
expect refused fd78::1 30002 "an IPv6 admission is for its door only"
$S nft list set inet mtd admitted4 | grep -q '10.78.0.2 . tcp . 30002' || fail "admitted4 element"

# an apply (a reload, the next epoch) keeps the admissions: they are no plan's
out=$($S "$drv" -K 9 apply "$(web4 30002:30003:30005 1 30100)" "$(web6 30002:30003 1 30100)") ||
	fail "apply again: $out"
case "$out" in *"adopted=1"*)
	# a new process adopts the table: it is rebuilt, and admissions go with it
	$S "$drv" admit 10.78.0.2 tcp 30002 600000 >/dev/null || fail "admit again" ;;
esac
expect mtd-ok 10.78.0.1 30002 "admitted source still served after a new plan"

# revocation
out=$($S "$drv" unadmit 10.78.0.2 tcp 30002 10.78.0.2 tcp 30099) || fail "unadmit: $out"
expect refused 10.78.0.1 30002 "a revoked admission is refused at once"

# expiry: admitted for 1.5 s, then refused without anyone removing it
$S "$drv" admit 10.78.0.2 tcp 30003 1500 >/dev/null || fail "admit 1.5s"
expect mtd-ok 10.78.0.1 30003 "admitted for 1.5 s"
gone=""
for _ in $(seq 40); do
	$S nft list set inet mtd admitted4 | grep -q '30003' || { gone=1; break; }
	sleep 0.25
done
[ -n "$gone" ] || fail "the admission did not expire"
expect refused 10.78.0.1 30003 "an expired admission is refused"

# refreshing: the same admission again takes the new timeout (no EEXIST)
$S "$drv" admit 10.78.0.2 tcp 30003 1000 10.78.0.2 tcp 30003 900000 >/dev/null || fail "admit twice"
$S "$drv" admit 10.78.0.2 tcp 30003 800000 >/dev/null || fail "refresh"
t=$($S nft list set inet mtd admitted4 | sed -n 's/.*30003 timeout \([0-9a-z]*\).*/\1/p')
case "$t" in 13m20s) ;; *) fail "refreshed timeout $t, expected 13m20s" ;; esac
ok "an admission given again takes the new timeout ($t)"

# refusals of bad input, nothing sent
out=$($S "$drv" admit 10.78.0.2 tcp 30003 0 2>&1) && fail "timeout 0 accepted"
case "$out" in *"no timeout"*) ok "an admission without timeout refused ($out)" ;; *) fail "$out" ;; esac

# --- knock ports: logged to the knock group, answered as closed -------------------------------
before=$($S nft list table inet mtd | grep 'mtd-knock' | sed -n 's/.*packets \([0-9]*\).*/\1/p' | paste -sd+ | bc)
$C bash -c 'echo knock >/dev/udp/10.78.0.1/30100' || true
sleep 0.3
after=$($S nft list table inet mtd | grep 'mtd-knock' | sed -n 's/.*packets \([0-9]*\).*/\1/p' | paste -sd+ | bc)
[ "$after" -gt "$before" ] || fail "knock not logged ($before -> $after)"
ok "a packet to a knock port is logged ($before -> $after)"
$S nft list table inet mtd | grep -q 'log prefix "mtd-knock " group 9' || fail "knock rule group"
ok "the knock rule logs to the knock group"
$C bash -c 'echo x >/dev/udp/10.78.0.1/30555' || true
before=$after
sleep 0.3
after=$($S nft list table inet mtd | grep 'mtd-knock' | sed -n 's/.*packets \([0-9]*\).*/\1/p' | paste -sd+ | bc)
[ "$after" -eq "$before" ] || fail "a non-knock port was logged as a knock"
ok "other UDP ports are not knocks"

# --- the boundary's switch stays four elements with 1,000 doors per bank -----------------------
doors_a=$(seq 31000 31999 | paste -sd:)
doors_b=$(seq 32000 32999 | paste -sd:)
knock_a=$(seq 33000 33999 | paste -sd:)
knock_b=$(seq 34000 34999 | paste -sd:)
a="web,tcp,30001,0,10.78.0.1,8080,0,30900,$doors_a,1,$knock_a"
b="web,tcp,30001,0,10.78.0.1,8080,0,30900,$doors_b,1,$knock_b"
out=$($S "$drv" -K 9 apply "$a" -n "$b" -- switch) || fail "switch with 1000 doors: $out"
step2=$(echo "$out" | sed -n 's/^step 2: //p')
case "$step2" in "-2 +2 msgs "*switched*) ;; *) fail "switch with 1000 doors per bank: $step2" ;; esac
ok "with 1,000 doors and knock ports per bank the switch is four elements ($step2)"
$S "$drv" admit 10.78.0.2 tcp 32500 600000 >/dev/null || fail "admit after switch"
expect mtd-ok 10.78.0.1 32500 "after the switch, the next bank's admitted door serves"
expect refused 10.78.0.1 31500 "and the previous bank's door is closed"

$S "$drv" remove >/dev/null || fail "remove"
$S nft list table inet mtd >/dev/null 2>&1 && fail "table still there after remove"
ok "removed"
echo "PASS: rotator_clients"
