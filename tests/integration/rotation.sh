#!/bin/bash
# Port rotation end to end on the real kernel: the agent in a server
# namespace, clients in a client namespace joined by a veth pair (IPv4 and
# IPv6), real TCP echo servers as backends.
#
#   - LocalAccess= decides whether the host's own clients are DNATed too
#   - a client following the schedule (Interval=1s) across 30 boundaries: 0 failures
#   - a long-lived stream survives 20+ rotations with no byte lost
#   - a stale port after Grace is dead; the backend's real port is unreachable
#   - a decoy looks open; touching it blocks the source (audited); mtdctl unblock restores it
#   - a clock set (jump, resume) re-arms the boundaries
#   - SIGKILL at random points: the table stays whole, a restart adopts it
#   - a foreign table is byte-identical at the end
. "$(dirname "$0")/lib.bash"
enter_private_namespaces "$@"
make_work_dir
NETPROBE=$BUILD_DIR/tools/netprobe
[ -x "$NETPROBE" ] || fail "build first: $NETPROBE"
BOUNDARIES=${MTD_TEST_BOUNDARIES:-30}

# --- topology: this namespace is the server; "cli" is the client -------------
setup_client_namespace
in_client "$NETPROBE" ping 10.213.0.1 9 300 2>/dev/null
ok "topology: client and server namespaces joined by a veth pair"

# A foreign table the agent must never touch (no counters, so it cannot change by itself).
nft -f - <<'NFT'
table ip foreign {
	set admins { type ipv4_addr; elements = { 192.0.2.7, 198.51.100.9 } }
	chain input { type filter hook input priority 10; policy accept; ip saddr @admins tcp dport 2222 accept; }
}
NFT
FOREIGN_BEFORE=$(nft -a list table ip foreign)

# --- backends and policies ----------------------------------------------------------
"$NETPROBE" echo-server 10.213.0.1 8022 &
ECHO4=$!
"$NETPROBE" echo-server fd00:213::1 8023 &
ECHO6=$!
stop_echo() { kill "$ECHO4" "$ECHO6" 2>/dev/null; }
trap 'stop_echo; cleanup_work' EXIT

write_key "$WORK/keys/echo4.key"
write_key "$WORK/keys/echo6.key"
cat >"$WORK/policies/echo4.policy" <<POLICY
[Service]
Name=echo4
Backend=10.213.0.1:8022

[Rotation]
PublicPorts=20000-20999
Interval=1s
Grace=500ms
KeyFile=$WORK/keys/echo4.key
Decoys=4
DecoyBlock=10min
POLICY
cat >"$WORK/policies/echo6.policy" <<POLICY
[Service]
Name=echo6
Backend=[fd00:213::1]:8023

[Rotation]
PublicPorts=21000-21999
Interval=1s
Grace=500ms
KeyFile=$WORK/keys/echo6.key
Decoys=4
LocalAccess=yes
POLICY
start_agent
P4=$WORK/policies/echo4.policy
P6=$WORK/policies/echo6.policy

# One schedule-following connection: `mtdctl connect` computes the port from
# the policy and key and carries a line through the echo backend.
follow_once() { # SERVICE POLICY HOST [SECONDS]
	local got
	got=$(echo mtd-ping | in_client timeout "${4:-5}" "$MTDCTL" connect "$1" --policy "$2" "$3" 2>&1)
	[ "$got" = "mtd-ping" ]
}
# a blocked source's SYNs are dropped: over this veth 2 s tell it from an answer
follow_blocked() { ! follow_once "$@" 2; }

follow_once echo4 "$P4" 10.213.0.1 || fail "IPv4 client cannot reach echo4 through its public port"
ok "IPv4: a client holding the key reaches the backend through the public port"
follow_once echo6 "$P6" fd00:213::1 || fail "IPv6 client cannot reach echo6 through its public port"
ok "IPv6: a client holding the key reaches the backend through the public port"

# LocalAccess=: the host's own clients (this namespace) reach echo6 through its
# public port; echo4 has no local access, so its public port means nothing here
got=$(echo mtd-ping | timeout 5 "$MTDCTL" connect echo6 --policy "$P6" fd00:213::1 2>&1)
[ "$got" = "mtd-ping" ] || fail "LocalAccess=yes: the host's own client cannot reach echo6: $got"
got=$(echo mtd-ping | timeout 5 "$MTDCTL" connect echo4 --policy "$P4" 10.213.0.1 2>&1)
[ "$got" = "mtd-ping" ] && fail "no LocalAccess: the host's own client reached echo4 through its public port"
ok "LocalAccess=yes lets the host's own clients through the public port; without it, not"

# --- the real port is unreachable except through the DNAT ---------------------------
in_client "$NETPROBE" ping 10.213.0.1 8022 700 2>/dev/null && fail "the backend's real IPv4 port answers the client"
in_client "$NETPROBE" ping fd00:213::1 8023 700 2>/dev/null && fail "the backend's real IPv6 port answers the client"
ok "the backend's real port is unreachable from the client namespace"

# --- the streaming connection lives through 20+ rotations ----------------------------
port=$("$MTDCTL" port echo4 --policy "$P4" 2>/dev/null)
epoch_before=$("$MTDCTL" --json port echo4 --policy "$P4" | sed -n 's/.*"epoch": \([0-9]*\).*/\1/p')
in_client timeout 60 "$NETPROBE" stream 10.213.0.1 "$port" 22 >"$WORK/stream.out" 2>&1 &
STREAM=$!

# --- meanwhile: a client following the schedule across $BOUNDARIES boundaries -------
bank_switches() { mtdctl --json status | tr -d ' \n' | sed -n 's/.*"bank_switches":\([0-9]*\).*/\1/p'; }
switches_before=$(bank_switches)
start_epoch=$("$MTDCTL" --json port echo4 --policy "$P4" | sed -n 's/.*"epoch": \([0-9]*\).*/\1/p')
attempts=0
failures=0
while :; do
	epoch=$("$MTDCTL" --json port echo4 --policy "$P4" | sed -n 's/.*"epoch": \([0-9]*\).*/\1/p')
	[ $((epoch - start_epoch)) -ge "$BOUNDARIES" ] && break
	attempts=$((attempts + 1))
	follow_once echo4 "$P4" 10.213.0.1 || failures=$((failures + 1))
	if [ $((attempts % 4)) -eq 0 ]; then
		attempts=$((attempts + 1))
		follow_once echo6 "$P6" fd00:213::1 || failures=$((failures + 1))
	fi
	sleep 0.$((RANDOM % 3))
done
[ "$failures" -eq 0 ] || fail "$failures of $attempts schedule-following connections failed"
ok "a client following the schedule: $attempts connections across $BOUNDARIES boundaries, 0 failed"
# every boundary and every end of grace was loaded ahead: a switch of banks
switches=$(($(bank_switches) - switches_before))
[ "$switches" -ge $((2 * BOUNDARIES - 1)) ] ||
	fail "only $switches of the ~$((2 * BOUNDARIES)) changes were switches of banks"
ok "$switches changes (boundaries and grace ends) were switches of banks"

wait "$STREAM" || { cat "$WORK/stream.out"; fail "the long-lived stream broke during rotation"; }
epoch_after=$("$MTDCTL" --json port echo4 --policy "$P4" | sed -n 's/.*"epoch": \([0-9]*\).*/\1/p')
[ $((epoch_after - epoch_before)) -ge 20 ] || fail "the stream spanned only $((epoch_after - epoch_before)) rotations"
ok "a stream survived $((epoch_after - epoch_before)) rotations: $(cat "$WORK/stream.out")"

# --- a stale port after Grace is dead -----------------------------------------------
echo4_status() { # the agent's view of echo4, one line of JSON
	mtdctl --json status | tr -d ' \n' | sed -n 's/.*\("name":"echo4"[^]]*\]\).*/\1/p'
}
echo4_decoys() { echo4_status | sed -n 's/.*"decoys":\[\([0-9,]*\)\].*/\1/p'; }
stale=$("$MTDCTL" port echo4 --policy "$P4" 2>/dev/null)
sleep 1.8
now=$("$MTDCTL" port echo4 --policy "$P4" 2>/dev/null)
# Two epochs on, the stale port may be one of the decoys (decoys avoid only the
# neighbouring epochs' ports); touching it would block the client for the rest.
case ",$(echo4_decoys)," in *",$stale,"*) stale=$now ;; esac
if [ "$stale" != "$now" ]; then
	in_client "$NETPROBE" ping 10.213.0.1 "$stale" 700 2>/dev/null && fail "stale port $stale still answers after Grace"
	ok "a stale port ($stale) is dead after Grace"
fi

# --- decoys block the source ------------------------------------------------------
# Decoys change every second here: read one just after a boundary, so it is
# still a decoy when the client touches it. A touch that fails only because
# the next boundary came first (a slow machine) is tried again. Sets $decoy.
touch_decoy() {
	local try now_ms line until_usec
	for try in 1 2 3; do
		now_ms=$(date +%s%3N)
		sleep "0.$(printf '%03d' $(( (1000 - now_ms % 1000 + 50) % 1000 )))"
		line=$(echo4_status)
		decoy=$(echo "$line" | sed -n 's/.*"decoys":\[\([0-9]*\).*/\1/p')
		until_usec=$(echo "$line" | sed -n 's/.*"next_boundary_usec":\([0-9]*\).*/\1/p')
		[ -n "$decoy" ] && [ -n "$until_usec" ] || fail "status shows no decoy port or boundary for echo4: $line"
		in_client "$NETPROBE" connect 10.213.0.1 "$decoy" 1000 && return 0
		[ "$(date +%s%6N)" -ge "$until_usec" ] || fail "decoy port $decoy does not look open"
	done
	fail "decoy port $decoy was never touched before its epoch ended"
}
touch_decoy
ok "decoy port $decoy looks open (the handshake completes)"
# the agent blocks once the honeypot accepted the connection (docs/decoys.md)
wait_for 'nft list set inet mtd blocked4 | grep -q "10.213.0.2 timeout"' ||
	fail "the completed handshake did not block 10.213.0.2"
follow_blocked echo4 "$P4" 10.213.0.1 || fail "a source that touched a decoy still reaches the service"
ok "touching decoy $decoy blocks the source: its next schedule-following connect fails"
out=$(mtdctl audit show) || fail "audit show"
assert_contains "$out" '"source":"10.213.0.2"' "the decoy hit is audited with the source address"
assert_contains "$(mtdctl status)" "10.213.0.2" "status lists the blocked source"
as_user 65534 65534 "$MTDCTL" --socket "$SOCKET" unblock 10.213.0.2 >/dev/null 2>&1 &&
	fail "a non-root user could unblock"
mtdctl unblock 10.213.0.2 >/dev/null || fail "mtdctl unblock"
follow_once echo4 "$P4" 10.213.0.1 || fail "unblock did not restore the source"
ok "mtdctl unblock restores the source"
assert_contains "$(mtdctl audit show)" "source-unblocked" "the unblock is audited"

# --- a clock set re-arms the boundaries ---------------------------------------------
# clock-nudge sets the realtime clock to its own value: no real change, but
# the kernel reports a clock set, as after a jump or a resume from suspend.
"$BUILD_DIR/tools/clock-nudge" || fail "clock-nudge"
sleep 0.3
assert_contains "$(mtdctl audit show)" "clock-set" "a clock set is noticed and audited"
sleep 1.2
follow_once echo4 "$P4" 10.213.0.1 || fail "no service after the clock set"
ok "the schedule keeps rotating after the clock set"

# --- SIGKILL at random points: the table stays whole; a restart adopts it -------------
table_shape() { # rule and chain count, elements per map/set (ports vary, counts must not)
	nft -a list table inet mtd | grep -cE '^\s+(chain|.*(accept|drop|dnat|log))'
}
shape=$(table_shape)
touch_decoy # blocked now: the block must survive every restart
wait_for 'nft list set inet mtd blocked4 | grep -q "10.213.0.2 timeout"' ||
	fail "the completed handshake did not block 10.213.0.2"
kills=${MTD_TEST_KILLS:-15}
for i in $(seq 1 "$kills"); do
	sleep 0.$((RANDOM % 10))$((RANDOM % 10))
	kill -KILL "$AGENT_PID"
	wait "$AGENT_PID" 2>/dev/null
	AGENT_PID=""
	nft list table inet mtd >/dev/null 2>&1 || fail "kill $i: the table vanished with the agent"
	# exactly one bank is live, whole: its current (and grace) port, 8 decoys
	a0=$(nft list set inet mtd active0 | grep -c 'elements = { ipv4, ipv6 }')
	a1=$(nft list set inet mtd active1 | grep -c 'elements = { ipv4, ipv6 }')
	[ $((a0 + a1)) -eq 1 ] || fail "kill $i: $((a0 + a1)) live banks, want exactly 1"
	elems=$(nft list map inet mtd "svc4_$a1" | tr -d '\n' | grep -o 'tcp \. [0-9]* :' | wc -l)
	[ "$elems" -ge 1 ] && [ "$elems" -le 2 ] || fail "kill $i: svc4_$a1 holds $elems elements (want 1 or 2: current, grace)"
	decoys=$(nft list set inet mtd "decoys_$a1" | tr -d '\n' | grep -o 'tcp \. [0-9]*' | wc -l)
	[ "$decoys" -eq 8 ] || fail "kill $i: decoys_$a1 holds $decoys ports, want 8 (never half an epoch)"
	start_agent
	[ "$(table_shape)" = "$shape" ] || fail "kill $i: the restarted agent changed the table's rules ($shape -> $(table_shape))"
	nft list set inet mtd blocked4 | grep -q '10.213.0.2 timeout' || fail "kill $i: the restart lost the blocked source"
done
ok "$kills SIGKILLs at random points: the table stayed whole, each restart adopted it without duplicates"
follow_blocked echo4 "$P4" 10.213.0.1 || fail "the blocked source got in after the restarts"
assert_contains "$(mtdctl status)" "10.213.0.2" "after the restarts, status lists the source blocked before them"
mtdctl unblock 10.213.0.2 >/dev/null || fail "mtdctl unblock after the restarts"
follow_once echo4 "$P4" 10.213.0.1 || fail "service unreachable after the kills"
ok "the service answers after the restarts"

stop_agent || fail "clean stop"
[ "$(nft -a list table ip foreign)" = "$FOREIGN_BEFORE" ] || fail "the foreign table changed"
ok "the foreign table is byte-identical"
out=$("$MTDCTL" audit verify --key "$WORK/state/audit-verify.key" "$WORK/log/audit.log") ||
	fail "audit verify: $out"
ok "the audit log verifies"
echo "$TEST_NAME: $CHECKS checks passed"
