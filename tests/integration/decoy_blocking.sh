#!/bin/bash
# Whom a decoy blocks, attacked for real (docs/decoys.md). The agent in a
# server namespace, clients (several addresses) in a client namespace.
#
#   - spoofed SYNs to a TCP decoy from a victim's address: audited (tcp-syn),
#     the victim is not blocked and still reaches the service
#   - a completed handshake blocks the source (source-blocked, tcp-handshake)
#   - a repeat offender: DecoyBlock=2s, then 6s, then the cap of 10s
#   - NeverBlock= of the host (the global file, IPv4 and IPv6) and of one
#     service: hits audited, never blocked; another service's decoy still blocks
#   - spoofed UDP datagrams from five sources: UDPBlockLimit=2/1h blocks two
#   - a bad global file refuses a reload with its file and line, nothing changes;
#     a good one takes effect at the reload
. "$(dirname "$0")/lib.bash"
enter_private_namespaces "$@"
make_work_dir
NETPROBE=$BUILD_DIR/tools/netprobe
SPOOF=$BUILD_DIR/tools/spoof-packet
[ -x "$NETPROBE" ] && [ -x "$SPOOF" ] || fail "build first: $NETPROBE and $SPOOF"

setup_client_namespace
for a in 3 4 5 66; do ip -n cli addr add "10.213.0.$a/24" dev veth-cli; done
ip -n cli -6 addr add fd00:213::3/64 dev veth-cli nodad
in_client "$NETPROBE" ping 10.213.0.1 9 300 2>/dev/null
ok "topology: a client namespace with the addresses .2 .3 .4 .5 .66 and fd00:213::2, ::3"

"$NETPROBE" echo-server :: 8022 &
ECHO=$!
trap 'kill "$ECHO" 2>/dev/null; cleanup_work' EXIT

cat >"$WORK/mtd.conf" <<'CONF'
[Decoys]
NeverBlock=10.213.0.3 fd00:213::3
UDPBlockLimit=2/1h
CONF
host_service() { # NAME PORTS [ROTATION-LINE...]
	local name=$1 ports=$2
	shift 2
	write_key "$WORK/keys/$name.key"
	{
		printf '[Service]\nName=%s\nBackend=10.213.0.1:8022\n\n[Rotation]\n' "$name"
		printf 'PublicPorts=%s\nInterval=3600s\nKeyFile=%s\nDecoys=8\n' "$ports" "$WORK/keys/$name.key"
		printf '%s\n' "$@"
	} >"$WORK/policies/$name.policy"
}
host_service web 20000-20099 DecoyBlock=2s DecoyBlockFactor=3 DecoyBlockMax=10s \
	DecoyRepeatWindow=10min NeverBlock=10.213.0.4
host_service web2 21000-21099 DecoyBlock=10min
make_probe_snapshot
write_probe_service dns 22000-22099 "/bin/probe sleep" "[Rotation] Decoys=8" \
	"[Rotation] AddressPool=10.215.0.0/24"
sed -i -e 's|^ListenPort=8080/tcp$|ListenPort=8080/udp|' -e 's/^Interval=60s$/Interval=3600s/' \
	"$WORK/policies/dns.policy"
start_agent --config "$WORK/mtd.conf"

status() { mtdctl --json status | tr -d ' \n'; }
# the first decoy of a service now (fresh each time: an hour boundary may pass)
decoy_of() { status | sed -n "s/.*\"name\":\"$1\",[^]]*\"decoys\":\[\([0-9]*\).*/\1/p"; }
port_of() { "$MTDCTL" port "$1" --policy "$WORK/policies/$1.policy" 2>/dev/null; }
as_source() { in_client env NETPROBE_SOURCE="$1" "${@:2}"; }
blocked() { nft list set inet mtd blocked4; nft list set inet mtd blocked6; }
is_blocked() { blocked | grep -q "[ {,]$1 timeout"; }
records() { mtdctl audit show 2>/dev/null | grep " $1 " | grep "\"source\":\"$2\""; }
reaches_service() { # SOURCE (IPv4; web's backend is): an echo through web's port now
	as_source "$1" "$NETPROBE" ping 10.213.0.1 "$(port_of web)" 1500
}

[ -n "$(decoy_of web)" ] && [ -n "$(decoy_of web2)" ] || fail "no decoys in status: $(status)"
reaches_service 10.213.0.66 || fail "10.213.0.66 does not reach web before any decoy was touched"
ok "web and web2 rotate with 8 decoys each; the client reaches web"

# --- spoofed SYNs never block their victim ------------------------------------------
d=$(decoy_of web)
in_client "$SPOOF" tcp 10.213.0.66 40001 10.213.0.1 "$d" 5 || fail "spoof-packet"
in_client "$SPOOF" tcp 10.213.0.77 40002 10.213.0.1 "$d" 5 || fail "spoof-packet"
wait_for 'records decoy-hit 10.213.0.77 | grep -q "\"evidence\":\"tcp-syn\""' ||
	fail "the spoofed SYNs' hits were not audited: $(mtdctl audit show | grep decoy-hit)"
assert_contains "$(records decoy-hit 10.213.0.66)" '"action":"blocked-once-handshake-completes"' \
	"a spoofed SYN's hit says it blocks nobody until a handshake completes"
sleep 1 # the honeypot's SYN-ACK went nowhere (.77) or was reset (.66): nothing may follow
is_blocked 10.213.0.66 && fail "a spoofed SYN got its victim 10.213.0.66 blocked: $(blocked)"
is_blocked 10.213.0.77 && fail "a spoofed SYN got 10.213.0.77 blocked: $(blocked)"
[ -z "$(records source-blocked 10.213.0.66)" ] || fail "source-blocked recorded for a spoofed SYN"
reaches_service 10.213.0.66 || fail "the victim of spoofed SYNs no longer reaches web"
ok "spoofed SYNs to decoy $d from 10.213.0.66 and .77: audited as tcp-syn, nobody blocked, the victim still served"

# --- a completed handshake blocks; a repeat offender longer each time ----------------
touch_web_decoy() { # SOURCE: a real connect to a decoy of web (the honeypot answers)
	as_source "$1" "$NETPROBE" connect 10.213.0.1 "$(decoy_of web)" 1000 ||
		fail "$1: web's decoy does not complete a handshake"
}
for strike in 1 2 3; do
	want=$((strike == 1 ? 2 : strike == 2 ? 6 : 10))
	wait_for '! is_blocked 10.213.0.5' 150 || fail "10.213.0.5 is still blocked before strike $strike"
	touch_web_decoy 10.213.0.5
	wait_for "records source-blocked 10.213.0.5 | grep -q '\"strike\":$strike'" ||
		fail "strike $strike of 10.213.0.5 was not audited: $(records source-blocked 10.213.0.5)"
	rec=$(records source-blocked 10.213.0.5 | grep "\"strike\":$strike")
	assert_contains "$rec" "\"block_sec\":$want" "strike $strike is blocked ${want}s"
	assert_contains "$rec" '"evidence":"tcp-handshake"' "the block names its evidence"
	blocked | grep -q "10.213.0.5 timeout ${want}s" || fail "the kernel's element: $(blocked)"
	reaches_service 10.213.0.5 && fail "10.213.0.5 reaches web while blocked (strike $strike)"
done
ok "a completed handshake blocks its source: 2s, then 6s, then the cap of 10s (DecoyBlockFactor=3)"
assert_contains "$(mtdctl status)" "block 3 in a row" "status shows the repeat offender's strike"

# --- NeverBlock= of the host and of a service ---------------------------------------
touch_web_decoy 10.213.0.3
as_source fd00:213::3 "$NETPROBE" connect fd00:213::1 "$(decoy_of web)" 1000 ||
	fail "fd00:213::3: web's decoy does not complete a handshake over IPv6"
touch_web_decoy 10.213.0.4
wait_for 'records decoy-hit 10.213.0.4 | grep -q not-blocked-never-block' ||
	fail "the NeverBlock= hit of 10.213.0.4 was not audited: $(records decoy-hit 10.213.0.4)"
for s in 10.213.0.3 fd00:213::3; do
	wait_for "records decoy-hit $s | grep -q not-blocked-never-block" ||
		fail "the hit of $s (host NeverBlock=) was not audited as such: $(records decoy-hit $s)"
done
sleep 0.5
for s in 10.213.0.3 fd00:213::3 10.213.0.4; do
	is_blocked "$s" && fail "$s is in NeverBlock= and was blocked: $(blocked)"
done
for s in 10.213.0.3 10.213.0.4; do
	reaches_service "$s" || fail "$s (NeverBlock=) no longer reaches web"
done
ok "NeverBlock= of the host (10.213.0.3, fd00:213::3) and of web (10.213.0.4): hits audited, not blocked"
# web's NeverBlock= is web's alone: web2's decoy blocks 10.213.0.4
as_source 10.213.0.4 "$NETPROBE" connect 10.213.0.1 "$(decoy_of web2)" 1000 ||
	fail "web2's decoy does not complete a handshake"
wait_for 'is_blocked 10.213.0.4' || fail "10.213.0.4 touched web2's decoy and was not blocked"
# and an IPv6 source outside every NeverBlock= is blocked in blocked6
as_source fd00:213::2 "$NETPROBE" connect fd00:213::1 "$(decoy_of web)" 1000 ||
	fail "web's decoy over IPv6"
wait_for 'is_blocked fd00:213::2' || fail "fd00:213::2 touched a decoy and was not blocked"
ok "a service's NeverBlock= is its own: web2's decoy blocks 10.213.0.4; fd00:213::2 is blocked in blocked6"

# --- UDP: at most UDPBlockLimit= sources per interval --------------------------------
# dns is programmed once its instance is up: then its decoys are in the table
wait_for 'nft list table inet mtd | grep -q "udp \. $(decoy_of dns)"' 300 ||
	fail "the UDP service dns never got its decoys into the table: $(json_instances)"
u=$(decoy_of dns)
for i in 1 2 3 4 5; do
	in_client "$SPOOF" udp "10.213.0.10$i" 5353 10.213.0.1 "$u" 1 || fail "spoof-packet udp"
	sleep 0.1
done
wait_for '[ "$(mtdctl audit show | grep " decoy-hit " | grep -c "\"proto\":\"udp\"")" -ge 5 ]' ||
	fail "five UDP hits on $u were not audited: $(mtdctl audit show | grep decoy-hit | grep udp);
decoys: $(nft list set inet mtd decoys_0; nft list set inet mtd decoys_1); $(nft list chain inet mtd bank0_filter; nft list chain inet mtd bank1_filter)"
hits=$(mtdctl audit show | grep ' decoy-hit ' | grep '"proto":"udp"')
n_blocked=$(echo "$hits" | grep -c '"action":"blocked"')
n_limited=$(echo "$hits" | grep -c '"action":"not-blocked-udp-limit"')
[ "$n_blocked" -eq 2 ] && [ "$n_limited" -eq 3 ] ||
	fail "UDPBlockLimit=2: $n_blocked blocked, $n_limited limited of 5: $hits"
in_kernel=$(blocked | grep -o '10\.213\.0\.10[1-5] timeout' | wc -l)
[ "$in_kernel" -eq 2 ] || fail "UDPBlockLimit=2: $in_kernel spoofed UDP sources in the kernel's set: $(blocked)"
assert_contains "$(mtdctl status)" "UDP hits blocked 2 of at most 2 source(s) per 1h" \
	"status shows the UDP bound in use"
ok "five spoofed UDP sources on decoy $u: two blocked (UDPBlockLimit=2/1h), three audited as limited"

# --- the global file at a reload: all or nothing --------------------------------------
printf '[Decoys]\nNeverBlock=10.213.0.3\nUDPBlockLimit=lots\n' >"$WORK/mtd.conf"
out=$(mtdctl reload 2>&1) && fail "a reload with a bad global file succeeded: $out"
assert_contains "$(mtdctl --json reload 2>&1)" "mtd.conf:3" "the refusal names the file and line"
assert_contains "$(mtdctl status)" "of at most 2 source(s) per 1h" "the refused file changed nothing"
printf '[Decoys]\nNeverBlock=10.213.0.3 10.213.0.66\nUDPBlockLimit=5/1h\n' >"$WORK/mtd.conf"
mtdctl reload >/dev/null || fail "a reload with a good global file failed"
assert_contains "$(mtdctl status)" "of at most 5 source(s) per 1h; 2 NeverBlock= range(s)" \
	"the new global file is in force"
touch_web_decoy 10.213.0.66
wait_for 'records decoy-hit 10.213.0.66 | grep -q not-blocked-never-block' ||
	fail "the reloaded NeverBlock= does not apply"
ok "a bad global file refuses the reload (file:line), a good one is in force at the reload"

stop_agent || fail "the agent did not stop cleanly"
ok "the agent stops cleanly"

# --- monitor mode: every decision recorded, nobody blocked ------------------------------
nft flush set inet mtd blocked4
nft flush set inet mtd blocked6
start_agent --config "$WORK/mtd.conf" --monitor
wait_for 'nft list table inet mtd | grep -q "udp \. $(decoy_of dns)"' 300 ||
	fail "monitor: dns never got its decoys into the table"
as_source 10.213.0.2 "$NETPROBE" connect 10.213.0.1 "$(decoy_of web2)" 1000 ||
	fail "monitor: web2's decoy does not complete a handshake"
wait_for 'records source-blocked 10.213.0.2 | grep -q "\"simulated\":true"' ||
	fail "monitor: the handshake's decision was not recorded as simulated: $(records source-blocked 10.213.0.2)"
assert_contains "$(records source-blocked 10.213.0.2)" '"block_sec":600' "the simulated block says how long it would be"
in_client "$SPOOF" udp 10.213.0.120 5353 10.213.0.1 "$(decoy_of dns)" 1 || fail "spoof-packet udp"
wait_for 'records decoy-hit 10.213.0.120 | grep -q not-blocked-monitor' ||
	fail "monitor: the UDP hit was not recorded as not blocked (monitor)"
sleep 0.5
blocked | grep -q elements && fail "monitor mode blocked a source: $(blocked)"
reaches_service 10.213.0.2 || fail "monitor: a source that touched a decoy no longer reaches web"
assert_contains "$(mtdctl status)" "decoys: monitor mode, nobody is blocked" "status says decoys block nobody"
ok "--monitor: a completed handshake and a UDP hit are decided and recorded (simulated), nobody is blocked"
stop_agent || fail "the agent did not stop cleanly in monitor mode"
