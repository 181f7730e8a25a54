#!/bin/bash
# The rotator library against the real kernel, only inside network namespaces
# this script creates (and deletes on every exit path): a server namespace
# with `inet mtd` and a TCP backend, a client namespace joined by a veth pair
# (IPv4 and IPv6), and a victim namespace on a second link whose address a
# client forges. Checks DNAT through the public port, the real port being
# unreachable, rotation with grace, decoy hit -> NFLOG (the table never blocks
# on its own) -> rotator_block() with a timeout per source -> unblock,
# adoption of the persisted table (blocks carried over), deltas (only the
# element changes are sent), decoys that look open (honeypot redirect; the
# honeypot names whom it accepted), forged SYNs and UDP to decoys that get
# nobody blocked, a foreign table left byte-identical, and removal. Needs
# root, nft, ip, cc and pkg-config, and build/tools/spoof-packet (make test-tools).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$root/$BUILD" ;; esac

[ "$(id -u)" -eq 0 ] || { echo "skip: needs root"; exit 77; }
for tool in ip nft cc pkg-config timeout; do
	command -v "$tool" >/dev/null || { echo "skip: $tool missing"; exit 77; }
done

SPOOF="$BUILD/tools/spoof-packet"
[ -x "$SPOOF" ] || { echo "FAIL: $SPOOF missing (make test-tools)"; exit 1; }

tmp=$(mktemp -d /tmp/rotator-nft.XXXXXX)
srv="mtd-rot-srv-$$"
cli="mtd-rot-cli-$$"
vic="mtd-rot-vic-$$"
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	# and what they forked (the echo server's per-connection children)
	for ns in "$srv" "$cli" "$vic"; do ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null; done
	ip netns del "$srv" 2>/dev/null
	ip netns del "$cli" 2>/dev/null
	ip netns del "$vic" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() { echo "FAIL: $*"; [ -n "${srv_ready:-}" ] && ip netns exec "$srv" nft list table inet mtd 2>&1 | head -80; exit 1; }
ok() { echo "ok: $*"; }

# --- build the driver against the library -------------------------------------
make -s -C "$root" BUILD="$BUILD" "$BUILD/librotator.a" >/dev/null || fail "building librotator.a"
# MTD_TEST_SANITIZED: the library was built with these flags (make san-integration)
cc -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -I"$root/common" -I"$root/rotator" -O2 \
	${MTD_TEST_SANITIZED:-} -o "$tmp/driver" "$here/rotator-driver.c" "$BUILD/librotator.a" \
	$(pkg-config --cflags --libs libnftnl libmnl libcrypto) || fail "building rotator-driver"
drv="$tmp/driver"

# --- topology ---------------------------------------------------------------------
ip netns add "$srv" && ip netns add "$cli" || fail "creating namespaces"
ip link add veth-s netns "$srv" type veth peer name veth-c netns "$cli" || fail "veth"
S="ip netns exec $srv"
C="ip netns exec $cli"
$S ip link set lo up; $C ip link set lo up
$S ip addr add 10.77.0.1/24 dev veth-s; $C ip addr add 10.77.0.2/24 dev veth-c
$S ip addr add fd77::1/64 dev veth-s nodad; $C ip addr add fd77::2/64 dev veth-c nodad
$S ip link set veth-s up; $C ip link set veth-c up
# the victim: 10.77.1.5 on a second link of the server, routed there and only
# there; the client forges its address
ip netns add "$vic" || fail "creating the victim namespace"
ip link add veth-sv netns "$srv" type veth peer name veth-v netns "$vic" || fail "victim veth"
V="ip netns exec $vic"
$V ip link set lo up
$S ip addr add 10.77.1.1/24 dev veth-sv; $V ip addr add 10.77.1.5/24 dev veth-v
$S ip addr add fd77:1::1/64 dev veth-sv nodad; $V ip addr add fd77:1::5/64 dev veth-v nodad
$S ip link set veth-sv up; $V ip link set veth-v up
$V ip route add 10.77.0.0/24 via 10.77.1.1 && $V ip -6 route add fd77::/64 via fd77:1::1 ||
	fail "victim routes"
# no reverse-path filter: a forged packet is answered, the worst case for a decoy
$S sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.veth-s.rp_filter=0 || fail "rp_filter"

# connect HOST PORT [SECONDS]: prints the backend's greeting, fails on
# refusal/drop or after SECONDS (3)
connect() { $C timeout "${3:-3}" bash -c "exec 3<>/dev/tcp/$1/$2 && head -c 6 <&3" 2>/dev/null; }
expect_ok() { [ "$(connect "$1" "$2")" = "mtd-ok" ] || fail "$3: $1 port $2 not reachable"; ok "$3"; }
# over this veth the backend answers in milliseconds: a drop is seen in 1 s
expect_no() { [ "$(connect "$1" "$2" 1)" != "mtd-ok" ] || fail "$3: $1 port $2 reachable"; ok "$3"; }
# the live bank: the one whose active set holds ipv4 (docs/nftables.md, "Two banks")
live() { $S nft list set inet mtd active1 | grep -q 'elements = { ipv4' && echo 1 || echo 0; }

$S "$drv" serve 8080 >"$tmp/serve.log" 2>&1 &
pids="$pids $!"
for _ in $(seq 50); do grep -q serving "$tmp/serve.log" && break; sleep 0.1; done
expect_ok 10.77.0.1 8080 "backend reachable directly before the agent (control)"

# --- a foreign table that must stay untouched -------------------------------------
$S nft -f - <<'NFT' || fail "foreign table"
table ip foreign {
	set admins { type ipv4_addr; elements = { 192.0.2.1, 192.0.2.2 } }
	chain mine {
		ip saddr @admins counter accept comment "not ours"
	}
}
NFT
$S nft list table ip foreign >"$tmp/foreign.before"

# --- first apply: create -------------------------------------------------------------
out=$($S "$drv" -g 7 apply web,tcp,24847,0,10.77.0.1,8080,0,27447:27448 \
	web,tcp,24847,0,fd77::1,8080,0,27449) || fail "first apply: $out"
srv_ready=1
case "$out" in *"persist=1"*) ;; *) echo "skip: kernel without table persist flag ($out)"; exit 77 ;; esac
ok "apply creates the table ($out)"
list=$($S nft list table inet mtd)
echo "$list" >"$tmp/list1"
echo "$list" | grep -q 'tcp . 24847 : 10.77.0.1 . 8080' || fail "svc4 element missing"
echo "$list" | grep -q 'tcp . 24847 : fd77::1 . 8080' || fail "svc6 element missing"
echo "$list" | grep -q 'tcp . 10.77.0.1 . 8080' || fail "backends4 element missing"
echo "$list" | grep -q 'tcp . 27447' || fail "decoy element missing"
echo "$list" | grep -q 'comment "bank 0: decoy ports' || fail "set comments missing"
ok "nft list table inet mtd shows the plan"

expect_ok 10.77.0.1 24847 "IPv4 public port reaches the backend through DNAT"
expect_ok fd77::1 24847 "IPv6 public port reaches the backend through DNAT"
expect_no 10.77.0.1 8080 "real backend port unreachable from the client (IPv4)"
expect_no fd77::1 8080 "real backend port unreachable from the client (IPv6)"
$S timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080' || fail "backend not reachable locally"
ok "the host itself still reaches the backend directly"

# --- rotation with grace, adoption by a second process --------------------------------
out=$($S "$drv" apply web,tcp,25000,24847,10.77.0.1,8080,0,27450) || fail "rotate: $out"
case "$out" in *"adopted=1"*) ;; *) fail "persisted table not adopted: $out" ;; esac
[ "$($S nft list table inet mtd | grep -c '^	chain ')" -eq 11 ] || fail "duplicated chains after adoption"
[ "$($S nft list table inet mtd | grep -c 'dnat ip to')" -eq 4 ] || fail "duplicated rules after adoption"
ok "restart adopts the persisted table without duplicates"
expect_ok 10.77.0.1 25000 "new port after rotation"
expect_ok 10.77.0.1 24847 "previous port during grace"
$S nft list set inet mtd "decoys_$(live)" | grep -q 27447 && fail "old decoys not replaced"
out=$($S "$drv" apply web,tcp,25000,0,10.77.0.1,8080,0,27450) || fail "end grace: $out"
expect_no 10.77.0.1 24847 "stale port refused after grace"
expect_ok 10.77.0.1 25000 "current port still works after grace"

# --- decoy hit: reported through NFLOG, blocked only by rotator_block() ----------------------
# blocked_ms ADDR: the time ADDR has left in the blocked sets ("" if absent)
blocked_ms() { $S "$drv" blocked | sed -n "s/^blocked $1 \([0-9]*\)\$/\1/p"; }
$S "$drv" -g 7 hits 1 5000 >"$tmp/hits.log" 2>&1 &
hits_pid=$!
pids="$pids $hits_pid"
for _ in $(seq 50); do grep -q listening "$tmp/hits.log" && break; sleep 0.1; done
expect_no 10.77.0.1 27450 "decoy port does not answer"
wait "$hits_pid" || fail "no NFLOG hit: $(cat "$tmp/hits.log")"
grep -q "hit 10.77.0.2 tcp 27450" "$tmp/hits.log" || fail "hit not parsed: $(cat "$tmp/hits.log")"
ok "decoy hit reported with source and port ($(grep hit "$tmp/hits.log"))"
[ -z "$($S "$drv" blocked)" ] || fail "the table blocked on its own: $($S "$drv" blocked)"
expect_ok 10.77.0.1 25000 "the table never blocks on its own: the source still reaches the service"
out=$($S "$drv" block 10.77.0.2 600000) || fail "block: $out"
ms=$(blocked_ms 10.77.0.2)
[ -n "$ms" ] && [ "$ms" -gt 590000 ] && [ "$ms" -le 600000 ] || fail "10.77.0.2 not blocked for 600 s: $($S "$drv" blocked)"
expect_no 10.77.0.1 25000 "blocked by rotator_block(): the source no longer reaches the service"
ok "rotator_block() blocks for the time given ($ms ms left)"
# again, shorter, with two more sources in the same transaction: the element
# already there takes the new timeout; 0 is until unblocked
out=$($S "$drv" block 10.77.0.2 90000 fd77::99 90000 192.0.2.50 0) || fail "block again: $out"
ms=$(blocked_ms 10.77.0.2)
[ -n "$ms" ] && [ "$ms" -gt 80000 ] && [ "$ms" -le 90000 ] ||
	fail "the timeout of a source already blocked was not replaced (600 s -> 90 s): $($S "$drv" blocked)"
[ "$(blocked_ms 192.0.2.50)" = 0 ] || fail "192.0.2.50 not blocked until unblocked: $($S "$drv" blocked)"
$S nft list set inet mtd blocked6 | grep -q 'fd77::99 timeout' || fail "fd77::99 not in blocked6"
expect_no 10.77.0.1 25000 "still blocked after its timeout was replaced"
ok "blocking a blocked source again replaces its timeout (600 s -> $ms ms); IPv4, IPv6, no timeout in one call"
out=$($S "$drv" block 10.77.0.2 1000 10.77.0.2 90000) || fail "block a source twice: $out"
ms=$(blocked_ms 10.77.0.2)
[ -n "$ms" ] && [ "$ms" -gt 80000 ] || fail "a source given twice did not take its last timeout: $($S "$drv" blocked)"
ok "a source given twice in one call takes its last entry"
# a restarted agent rebuilds the table: the blocks carry over, with the time
# they had left
sleep 1.1
out=$($S "$drv" apply web,tcp,25000,0,10.77.0.1,8080,0,27450) || fail "adopting with blocks: $out"
case "$out" in *"adopted=1"*) ;; *) fail "not adopted: $out" ;; esac
blocked=$($S "$drv" blocked) || fail "blocked list: $blocked"
ms4=$(echo "$blocked" | sed -n 's/^blocked 10.77.0.2 \([0-9]*\)$/\1/p')
ms6=$(echo "$blocked" | sed -n 's/^blocked fd77::99 \([0-9]*\)$/\1/p')
[ -n "$ms4" ] && [ "$ms4" -gt 70000 ] && [ "$ms4" -lt 89000 ] ||
	fail "10.77.0.2 not carried over with its time left (90 s less a little): $blocked"
[ -n "$ms6" ] && [ "$ms6" -gt 70000 ] && [ "$ms6" -lt 89000 ] ||
	fail "fd77::99 not carried over with its time left (90 s less 1.1 s): $blocked"
echo "$blocked" | grep -qx 'blocked 192.0.2.50 0' || fail "192.0.2.50 not carried over without timeout: $blocked"
[ "$(echo "$blocked" | wc -l)" -eq 3 ] || fail "blocked list: $blocked"
expect_no 10.77.0.1 25000 "still blocked after the table was adopted"
ok "adoption carries the blocked sources over with the time they had left ($(echo $blocked))"
out=$($S "$drv" apply web,tcp,25000,0,10.77.0.1,8080,0,27450 -u 10.77.0.2 -u 192.0.2.99 -u fd77::99 \
	-u 192.0.2.50) || fail "unblock: $out"
$S nft list set inet mtd blocked4 | grep -q 10.77.0.2 && fail "source still blocked"
[ -z "$($S "$drv" blocked)" ] || fail "sources left blocked: $($S "$drv" blocked)"
expect_ok 10.77.0.1 25000 "unblocked source reaches the service again"

# --- blocked ranges: interval sets, overlaps, never-blocked addresses, expiry ----------------
# ranges OP...: rotator_block_ranges() in one driver process (steps split by --)
ranges() { $S "$drv" ranges "$@"; }
plan6="web,tcp,25000,0,10.77.0.1,8080,0,27450 web,tcp,25000,0,fd77::1,8080,0,27451"
out=$($S "$drv" apply $plan6) || fail "IPv4 and IPv6 plan: $out"
expect_ok fd77::1 25000 "IPv6 reaches the service before any range (control)"
out=$(ranges +10.77.0.0/24:60000 +fd77::/64:60000) || fail "blocking ranges: $out"
$S nft list set inet mtd ranges4 | grep -q '10.77.0.0/24 timeout 1m' ||
	fail "10.77.0.0/24 not in ranges4 with its timeout: $($S nft list set inet mtd ranges4)"
$S nft list set inet mtd ranges6 | grep -q 'fd77::/64 timeout 1m' ||
	fail "fd77::/64 not in ranges6: $($S nft list set inet mtd ranges6)"
expect_no 10.77.0.1 25000 "a blocked IPv4 range drops a source in it"
expect_no fd77::1 25000 "a blocked IPv6 range drops a source in it"
# overlapping decisions (the kernel refuses overlapping intervals): one is
# deleted, the other still covers the source
out=$(ranges +10.77.0.0/24:60000 +10.77.0.0/25:120000 +10.77.0.0/16:30000 -- -10.77.0.0/24 \
	-- -10.77.0.0/16) || fail "overlapping ranges: $out"
[ "$out" = "ranges 1 segments 1" ] || fail "overlapping ranges: $out"
set4=$($S nft list set inet mtd ranges4)
echo "$set4" | grep -q '10.77.0.0/25 timeout 2m' || fail "10.77.0.0/25 not left alone: $set4"
echo "$set4" | grep -q '10.77.0.0/24\|10.77.0.0/16' && fail "a deleted decision still programmed: $set4"
expect_no 10.77.0.1 25000 "a deleted range leaves blocked what another range covers"
ok "overlapping ranges are programmed as disjoint intervals; deleting two keeps the third ($out)"
# a never-blocked address inside a range is cut out of it
out=$(ranges +10.77.0.0/16:60000 +fd77::/64:60000 '!10.77.0.2/32' '!fd77::2/128') ||
	fail "ranges with never-blocked addresses: $out"
set4=$($S nft list set inet mtd ranges4)
echo "$set4" | grep -q '10.77.0.0/31 timeout 1m' && echo "$set4" | grep -q '10.77.0.3-10.77.255.255 timeout 1m' ||
	fail "10.77.0.0/16 not split around 10.77.0.2: $set4"
expect_ok 10.77.0.1 25000 "a never-blocked address inside a blocked range still reaches the service"
expect_ok fd77::1 25000 "a never-blocked IPv6 address inside a blocked range still reaches the service"
# the kernel expires a range at its time
out=$(ranges +10.77.0.0/24:1500) || fail "a short range: $out"
expect_no 10.77.0.1 25000 "a range blocks until its time"
sleep 2
expect_ok 10.77.0.1 25000 "the kernel expired the range at its time"
# an adopting apply carries the segments over with their time left
out=$(ranges +10.77.0.0/24:60000 +10.88.0.0/16:30000 +10.88.1.0/24:90000 +fd77::/64:60000) ||
	fail "ranges before adoption: $out"
[ "$out" = "ranges 4 segments 5" ] || fail "ranges before adoption: $out"
out=$($S "$drv" apply $plan6) || fail "adopting with ranges: $out"
case "$out" in *"adopted=1"*) ;; *) fail "not adopted: $out" ;; esac
set4=$($S nft list set inet mtd ranges4)
for r in 10.77.0.0/24 10.88.0.0/24 10.88.1.0/24 10.88.2.0-10.88.255.255; do
	echo "$set4" | grep -q "$r timeout" || fail "$r not carried over: $set4"
done
$S nft list set inet mtd ranges6 | grep -q 'fd77::/64 timeout' || fail "fd77::/64 not carried over"
expect_no 10.77.0.1 25000 "still blocked by a range after the table was adopted"
expect_no fd77::1 25000 "still blocked by an IPv6 range after the table was adopted"
ok "adoption carries the blocked ranges over"
# an element someone else added overlaps the next range: the kernel refuses
# the transaction (named range and set), and the next call resynchronises
# (flushes both sets and adds every range in force)
out=$(ranges +10.66.5.0/24:60000 -- "=nft add element inet mtd ranges4 { 10.66.0.0/24 timeout 1h }" \
	+10.66.0.0/23:60000 --! +10.66.0.0/23:60000) || fail "an overlap refused: $out"
assert_refused=$(echo "$out" | grep '^refused: ')
case "$assert_refused" in *"blocking range 10.66.0.0-10.66.1.255 in set ranges4"*) ;;
*) fail "the refusal does not name the range and set: $out" ;; esac
set4=$($S nft list set inet mtd ranges4)
echo "$set4" | grep -q '10.66.0.0/23 timeout' && echo "$set4" | grep -q '10.66.5.0/24 timeout' ||
	fail "not resynchronised after the refusal: $set4"
ok "a refused range transaction names the range ($assert_refused); the next call resynchronises"
out=$(ranges) || fail "clearing ranges: $out"
[ -z "$($S nft list set inet mtd ranges4 | grep elements)" ] || fail "ranges left: $($S nft list set inet mtd ranges4)"
expect_ok 10.77.0.1 25000 "no range left: the source reaches the service"
expect_ok fd77::1 25000 "no range left: the IPv6 source reaches the service"

# --- local access: clients on the host itself, where the plan says so -----------------------
# from_host HOST PORT: like connect, from the server namespace (the host) itself
from_host() { $S timeout 3 bash -c "exec 3<>/dev/tcp/$1/$2 && head -c 6 <&3" 2>/dev/null; }
out=$($S "$drv" apply web,tcp,25000,0,10.77.0.1,8080,1,27450 web,tcp,25000,0,fd77::1,8080,1,27451) ||
	fail "local access: $out"
[ "$(from_host 10.77.0.1 25000)" = "mtd-ok" ] || fail "local access: the host's own IPv4 client not DNATed"
[ "$(from_host fd77::1 25000)" = "mtd-ok" ] || fail "local access: the host's own IPv6 client not DNATed"
expect_ok 10.77.0.1 25000 "with local access, outside clients still reach the service"
ok "local access: the host's own clients reach the backend through the public port (IPv4, IPv6)"
out=$($S "$drv" apply web,tcp,25000,0,10.77.0.1,8080,0,27450 web,tcp,25000,0,fd77::1,8080,0,27451) ||
	fail "no local access: $out"
[ "$(from_host 10.77.0.1 25000)" = "mtd-ok" ] && fail "without local access the host's own IPv4 client is DNATed"
[ "$(from_host fd77::1 25000)" = "mtd-ok" ] && fail "without local access the host's own IPv6 client is DNATed"
expect_ok 10.77.0.1 25000 "without local access, outside clients still reach the service"
ok "without local access, the public port means nothing to the host's own clients"

# --- a flow that began before its port turned decoy is not a scanner ----------------------
$S "$drv" echo 8090 >"$tmp/echo.log" 2>&1 &
pids="$pids $!"
for _ in $(seq 50); do grep -q serving "$tmp/echo.log" && break; sleep 0.1; done
out=$($S "$drv" apply held,tcp,26100,0,10.77.0.1,8090,0,27460) || fail "held: $out"
# packets the decoy rules counted (reported to NFLOG), both banks
decoy_count() {
	$S nft list table inet mtd | sed -n 's/.*mtd-decoy.* counter packets \([0-9]*\) .*/\1/p' |
		awk '{ n += $1 } END { print n + 0 }'
}
hits_before=$(decoy_count)
$C timeout 10 bash -c 'exec 3<>/dev/tcp/10.77.0.1/26100 || exit 1
	echo one >&3; read -r -t 3 a <&3; sleep 2; echo two >&3; read -r -t 3 b <&3; echo "$a $b"' \
	>"$tmp/held.out" 2>&1 &
held=$!
sleep 1
# the service moves on and its old port becomes a decoy while the flow is open
out=$($S "$drv" apply held,tcp,26101,0,10.77.0.1,8090,0,26100) || fail "held, port turns decoy: $out"
wait "$held"
[ "$(cat "$tmp/held.out")" = "one two" ] ||
	fail "a connection whose port turned decoy broke: '$(cat "$tmp/held.out")'"
[ "$(decoy_count)" -eq "$hits_before" ] ||
	fail "packets of a connection whose port turned decoy were counted as decoy hits ($hits_before -> $(decoy_count))"
expect_no 10.77.0.1 26100 "a new connection to the port that turned decoy is refused"
[ "$(decoy_count)" -gt "$hits_before" ] || fail "a new connection to the decoy was not counted as a hit"
ok "a connection opened before its port turned decoy carries on and is no decoy hit; a new one is"
out=$($S "$drv" apply web,tcp,25000,0,10.77.0.1,8080,0,27450) || fail "back to web: $out"

# --- errors name the object -----------------------------------------------------------------
out=$($S "$drv" apply a,tcp,26000,0,10.77.0.1,8080,0 b,tcp,26000,0,10.77.0.1,8081,0 2>&1) &&
	fail "duplicate public port accepted"
echo "$out" | grep -q "service b" || fail "error does not name the service: $out"
expect_ok 10.77.0.1 25000 "a refused transaction changes nothing"
ok "kernel error mapped to its object ($out)"

# --- deltas: applies in one process send only the changes ------------------------------
out=$($S "$drv" apply web,tcp,25000,0,10.77.0.1,8080,0,27450 \
	-- web,tcp,25001,25000,10.77.0.1,8080,0,27451 \
	-- web,tcp,25001,0,10.77.0.1,8080,0,27451 \
	-- web,tcp,25001,0,10.77.0.1,8080,0,27451) || fail "delta applies: $out"
echo "$out" | grep -q '^step 1: -0 +5 msgs .* full$' || fail "first apply not a full build: $out"
echo "$out" | grep -q '^step 2: -1 +2 msgs 3$' || fail "boundary not a delta (-decoy +port +decoy): $out"
echo "$out" | grep -q '^step 3: -1 +0 msgs 1$' || fail "grace end not a delta (-grace port): $out"
echo "$out" | grep -q '^step 4: -0 +0 msgs 0$' || fail "unchanged plan sent something: $out"
ok "boundary, grace end and no-op send only their element changes ($(echo $out))"
b=$(live)
[ "$($S nft list map inet mtd "svc4_$b" | grep -c ' : 10.77.0.1 . 8080')" -eq 1 ] &&
	$S nft list map inet mtd "svc4_$b" | grep -q 'tcp . 25001 : 10.77.0.1 . 8080' ||
	fail "svc4_$b after the deltas: $($S nft list map inet mtd "svc4_$b")"
$S nft list set inet mtd "decoys_$b" | grep -q 27451 &&
	! $S nft list set inet mtd "decoys_$b" | grep -q 27450 || fail "decoys after the deltas"
expect_ok 10.77.0.1 25001 "the table after the deltas is the last plan"
expect_no 10.77.0.1 25000 "the grace port is gone after its delta"

# --- two banks: the next change loaded ahead, a boundary is a switch ---------------------
now=web,tcp,25001,0,10.77.0.1,8080,0,27451
boundary=web,tcp,25002,25001,10.77.0.1,8080,0,27452
grace_end=web,tcp,25002,0,10.77.0.1,8080,0,27452
out=$($S "$drv" apply "$now" -n "$boundary" -- "$boundary" -n "$grace_end" \
	-- "$boundary" -n "$grace_end") || fail "bank applies: $out"
echo "$out" | grep -q '^step 2: -2 +2 msgs 2 switched$' ||
	fail "the boundary was not a switch of banks (ipv4, ipv6 moved): $out"
echo "$out" | grep -q '^step 3: -2 +2 msgs 4$' ||
	fail "staging did not load exactly the next change into the idle bank: $out"
ok "a boundary whose plan was loaded ahead is a switch of 4 elements, then staging ($(echo $out))"
b=$(live)
$S nft list map inet mtd "svc4_$b" | grep -q 'tcp . 25002 ' &&
	$S nft list map inet mtd "svc4_$b" | grep -q 'tcp . 25001 ' || fail "live bank after the switch"
$S nft list map inet mtd "svc4_$((1 - b))" | grep -q 'tcp . 25001 ' &&
	fail "the idle bank still holds the previous epoch"
$S nft list set inet mtd "decoys_$((1 - b))" | grep -q 27452 || fail "idle bank: next decoys"
expect_ok 10.77.0.1 25002 "new port after a switch of banks"
expect_ok 10.77.0.1 25001 "previous port during grace after a switch"
expect_no 10.77.0.1 25003 "a port of no bank is closed"
out=$($S "$drv" apply "$grace_end" -n "$grace_end") || fail "grace end: $out"
expect_no 10.77.0.1 25001 "grace port closed once the grace ends"
expect_ok 10.77.0.1 25002 "current port after the grace end"

# rotator_switch(): the boundary without a plan, then the staging as usual
out=$($S "$drv" apply "$now" -n "$boundary" -- switch -- "$boundary" -n "$grace_end") ||
	fail "rotator_switch: $out"
echo "$out" | grep -q '^step 2: -2 +2 msgs 2 switched$' &&
	echo "$out" | grep -q '^step 3: -2 +2 msgs 4$' ||
	fail "rotator_switch was not a switch of banks, or the staging after it differs: $out"
expect_ok 10.77.0.1 25002 "new port after rotator_switch"
expect_ok 10.77.0.1 25001 "previous port during grace after rotator_switch"
out=$($S "$drv" apply switch 2>&1) && fail "rotator_switch on a rotator that programmed nothing: $out"
echo "$out" | grep -q 'idle bank is not known' || fail "rotator_switch refused without its reason: $out"
ok "rotator_switch: a switch of 4 elements with no plan; refused (ESTALE) when the banks are unknown"
out=$($S "$drv" apply "$grace_end" -n "$grace_end") || fail "grace end: $out"

# --- decoys that look open: honeypot redirect; the honeypot names whom it accepted ----------
# A TCP service and a UDP one, each with decoys; the table never blocks.
out=$($S "$drv" -g 7 -H 9999 apply web,tcp,25001,0,10.77.0.1,8080,0,27460:27461 \
	web,tcp,25001,0,fd77::1,8080,0,27460:27461 dns,udp,25300,0,10.77.0.1,5353,0,27470) ||
	fail "apply with honeypot: $out"
[ "$($S nft list table inet mtd | grep -c 'redirect to :9999')" -eq 2 ] || fail "no redirect rule in each bank"
$S nft list table inet mtd | grep -q 'dynset\|add @blocked\|update @blocked' && fail "a rule adds to the blocked sets"
# started before the forged SYNs: it must be listening to answer them, and the
# one connection it reports must be the real client's below
$S "$drv" honeypot 9999 1 60 >"$tmp/honeypot.log" 2>&1 &
hp_pid=$!
pids="$pids $hp_pid"
for _ in $(seq 50); do grep -q listening "$tmp/honeypot.log" && break; sleep 0.1; done
$C timeout 2 bash -c 'exec 3<>/dev/tcp/10.77.0.1/9999' 2>/dev/null &&
	fail "honeypot port reachable directly"
ok "the honeypot port is unreachable except through a decoy"

# forged SYNs: the client writes the victim's addresses (routed via the other
# link) on three IPv4 and two IPv6 SYNs to a TCP decoy
rsts() { $V awk '/^Tcp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "OutRsts") c = i; h = 1 } else print $c }' /proc/net/snmp; }
rsts_before=$(rsts)
$S "$drv" -g 7 hits 5 5000 >"$tmp/hits-spoof.log" 2>&1 &
hits_pid=$!
pids="$pids $hits_pid"
for _ in $(seq 50); do grep -q listening "$tmp/hits-spoof.log" && break; sleep 0.1; done
$C "$SPOOF" tcp 10.77.1.5 40000 10.77.0.1 27460 3 || fail "sending forged SYNs"
$C "$SPOOF" tcp fd77:1::5 40010 fd77::1 27460 2 || fail "sending forged IPv6 SYNs"
wait "$hits_pid" || fail "forged SYNs not reported: $(cat "$tmp/hits-spoof.log")"
[ "$(grep -c '^hit 10.77.1.5 tcp 27460$' "$tmp/hits-spoof.log")" -eq 3 ] &&
	[ "$(grep -c '^hit fd77:1::5 tcp 27460$' "$tmp/hits-spoof.log")" -eq 2 ] ||
	fail "forged SYNs not reported with the forged source: $(cat "$tmp/hits-spoof.log")"
ok "forged SYNs to a TCP decoy are reported, with the forged sources 10.77.1.5 and fd77:1::5"
# the honeypot answered the victim, which never sent a SYN: it resets each
for _ in $(seq 50); do [ "$(rsts)" -ge $((rsts_before + 5)) ] && break; sleep 0.1; done
[ "$(rsts)" -ge $((rsts_before + 5)) ] ||
	fail "the victim did not reset the honeypot's SYN-ACKs (OutRsts $rsts_before -> $(rsts))"
ok "the victim resets the SYN-ACKs to SYNs it never sent: no handshake completes"
[ -z "$($S "$drv" blocked)" ] || fail "forged SYNs got a source blocked: $($S "$drv" blocked)"
[ "$($V timeout 3 bash -c 'exec 3<>/dev/tcp/10.77.1.1/25001 && head -c 6 <&3' 2>/dev/null)" = mtd-ok ] ||
	fail "the victim of forged SYNs no longer reaches the service"
[ "$($V timeout 3 bash -c 'exec 3<>/dev/tcp/fd77:1::1/25001 && head -c 6 <&3' 2>/dev/null)" = mtd-ok ] ||
	fail "the victim of forged IPv6 SYNs no longer reaches the service"
ok "the victim of forged SYNs is not blocked and still reaches the service (IPv4, IPv6)"

# a real client: its handshake completes, the honeypot names it
$S "$drv" -g 7 hits 1 5000 >"$tmp/hits2.log" 2>&1 &
hits_pid=$!
pids="$pids $hits_pid"
for _ in $(seq 50); do grep -q listening "$tmp/hits2.log" && break; sleep 0.1; done
$C timeout 3 bash -c 'exec 3<>/dev/tcp/10.77.0.1/27460' || fail "decoy connect() did not succeed"
ok "a TCP decoy looks open: connect() succeeds"
wait "$hp_pid" || fail "honeypot did not accept the decoy connection: $(cat "$tmp/honeypot.log")"
[ "$(grep '^accepted' "$tmp/honeypot.log")" = "accepted 10.77.0.2 decoy 27460" ] ||
	fail "the honeypot did not name exactly the real client and its decoy: $(cat "$tmp/honeypot.log")"
ok "the honeypot accepted and closed it, and names only the real client and the decoy it touched ($(grep '^accepted' "$tmp/honeypot.log"))"
wait "$hits_pid" || fail "no NFLOG hit: $(cat "$tmp/hits2.log")"
grep -q "hit 10.77.0.2 tcp 27460" "$tmp/hits2.log" || fail "hit not parsed: $(cat "$tmp/hits2.log")"
ok "the decoy hit is reported ($(grep hit "$tmp/hits2.log"))"
[ -z "$($S "$drv" blocked)" ] || fail "the table blocked the decoy toucher on its own: $($S "$drv" blocked)"
expect_ok 10.77.0.1 25001 "not blocked until the caller says so"
# the caller blocks the peer the honeypot named
out=$($S "$drv" block 10.77.0.2 60000) || fail "block: $out"
expect_no 10.77.0.1 25001 "the source the honeypot named, blocked by the caller, reaches no service"
out=$($S "$drv" -g 7 -H 9999 apply web,tcp,25001,0,10.77.0.1,8080,0,27460:27461 \
	web,tcp,25001,0,fd77::1,8080,0,27460:27461 dns,udp,25300,0,10.77.0.1,5353,0,27470 \
	-u 10.77.0.2) || fail "unblock: $out"
expect_ok 10.77.0.1 25001 "unblocked again"

# UDP decoys: logged and dropped, nobody blocked. A forged datagram to the
# decoy, then one to a plain port on the same path: once the second arrived,
# the first would have.
$S "$drv" udp-listen 27470 >"$tmp/udp-decoy.log" 2>&1 &
pids="$pids $!"
$S "$drv" udp-listen 27471 >"$tmp/udp-plain.log" 2>&1 &
pids="$pids $!"
$S "$drv" -g 7 hits 1 5000 >"$tmp/hits-udp.log" 2>&1 &
hits_pid=$!
pids="$pids $hits_pid"
for _ in $(seq 50); do
	grep -q listening "$tmp/udp-decoy.log" && grep -q listening "$tmp/udp-plain.log" &&
		grep -q listening "$tmp/hits-udp.log" && break
	sleep 0.1
done
$C "$SPOOF" udp 10.77.1.5 40100 10.77.0.1 27470 || fail "sending a forged datagram to the UDP decoy"
$C "$SPOOF" udp 10.77.1.5 40101 10.77.0.1 27471 || fail "sending a forged datagram to a plain port"
for _ in $(seq 50); do grep -q 'udp from' "$tmp/udp-plain.log" && break; sleep 0.1; done
grep -q '^udp from 10.77.1.5 ' "$tmp/udp-plain.log" ||
	fail "the forged datagram to a plain port did not arrive: $(cat "$tmp/udp-plain.log")"
grep -q 'udp from' "$tmp/udp-decoy.log" && fail "a datagram to a UDP decoy was delivered: $(cat "$tmp/udp-decoy.log")"
wait "$hits_pid" || fail "UDP decoy hit not reported: $(cat "$tmp/hits-udp.log")"
grep -q '^hit 10.77.1.5 udp 27470$' "$tmp/hits-udp.log" || fail "UDP hit: $(cat "$tmp/hits-udp.log")"
[ -z "$($S "$drv" blocked)" ] || fail "a UDP decoy hit got a source blocked: $($S "$drv" blocked)"
ok "a (forged) datagram to a UDP decoy is reported and dropped, and blocks nobody"

# --- removal; the foreign table is byte-identical ----------------------------------------------
$S "$drv" remove || fail "remove"
$S nft list table inet mtd >/dev/null 2>&1 && fail "table still there after remove"
$S nft list table ip foreign >"$tmp/foreign.after"
cmp -s "$tmp/foreign.before" "$tmp/foreign.after" || fail "foreign table changed"
ok "foreign table byte-identical; inet mtd removed"
echo "--- table as programmed by the first apply:"
cat "$tmp/list1"
exit 0
