#!/bin/bash
# Per-client doors end to end: the agent in a server namespace with a
# ClientKeys= service of two clients, a client namespace joined by a veth
# pair, a TCP echo server as the backend.
#
#   - each client reaches the service through its own door, computed with its
#     own key by `mtdctl port --client` (the schedule API, as mtd-client does)
#   - the other client's key does not give the same door; no decoy is ever a
#     client's door; status lists the clients with their doors and the host id
#   - the host id defaults to the address of the default route's interface
#     (no HostId=); another host id gives other doors
#   - revocation: the client's key removed and `mtdctl reload`: its door
#     closes, its established connection is cut (conntrack) and audited
#     (client-revoked), the other client keeps working, its connection too
#   - `mtdctl reload --keep-connections`: the revoked door closes, the
#     established connection stays
. "$(dirname "$0")/lib.bash"
enter_private_namespaces "$@"
make_work_dir
NETPROBE=$BUILD_DIR/tools/netprobe
[ -x "$NETPROBE" ] || fail "build first: $NETPROBE"
command -v conntrack >/dev/null && HAVE_CONNTRACK=1

setup_client_namespace
"$NETPROBE" echo-server 10.213.0.1 8022 &
ECHO=$!
trap 'kill $ECHO 2>/dev/null; cleanup_work' EXIT

CLIENTS=$WORK/clients
mkdir -m 0700 "$CLIENTS"
for c in alice bob carol; do
	head -c 32 /dev/urandom >"$WORK/keys/$c.key"
	chmod 0600 "$WORK/keys/$c.key"
done
cat >"$WORK/policies/web.policy" <<POLICY
[Service]
Name=web
Backend=10.213.0.1:8022

[Rotation]
PublicPorts=20000-20999
Interval=60s
Grace=5s
ClientKeys=$CLIENTS
Decoys=8
DecoyBlock=0
POLICY
# Random keys share a door now and then (1 in 1000 per pair and epoch), and
# a shared door is rightly left open and uncut when one of its clients is
# revoked. The revocation checks need distinct doors, so draw again until the
# three clients' doors differ in every epoch this test can span.
doors_at() {
	"$MTDCTL" port web --policy "$WORK/policies/web.policy" --client "$1" \
		--client-key "$WORK/keys/$1.key" --host-id 10.213.0.1 --at "@$2" 2>/dev/null
}
distinct_doors() {
	local now t a b c
	now=$(date +%s)
	for t in $now $((now + 60)) $((now + 120)) $((now + 180)) $((now + 240)); do
		a=$(doors_at alice "$t") b=$(doors_at bob "$t") c=$(doors_at carol "$t")
		[ -n "$a" ] && [ "$a" != "$b" ] && [ "$a" != "$c" ] && [ "$b" != "$c" ] || return 1
	done
}
cp "$WORK/keys/alice.key" "$WORK/keys/bob.key" "$WORK/keys/carol.key" "$CLIENTS/"
for _ in 1 2 3 4 5 6 7 8; do
	distinct_doors && break
	for c in alice bob carol; do head -c 32 /dev/urandom >"$WORK/keys/$c.key"; done
	cp "$WORK/keys/alice.key" "$WORK/keys/bob.key" "$WORK/keys/carol.key" "$CLIENTS/"
done
distinct_doors || fail "no three keys with distinct doors in 8 draws"
# No HostId= and no default route: the service does not start, and says why.
out=$(timeout 20 "$AGENT" --policy-dir "$WORK/policies" --state-dir "$WORK/state" \
	--runtime-dir "$WORK/run" --audit-log "$WORK/log/nohost.log" \
	--instances-cgroup "$INSTANCES_CGROUP" 2>&1) && fail "the agent started without a host id"
assert_contains "$out" "set HostId= in [Agent]" "without a host id a ClientKeys= service refuses to start"
rm -rf "$WORK/state"/* "$WORK/run"/*
# No HostId=: the host id is the address of the default route's interface.
ip route add default via 10.213.0.2 dev veth-srv
start_agent
ok "the agent starts with a ClientKeys= service"

# door NAME [HOSTID]: the client's door now, computed from its own key
door() {
	"$MTDCTL" port web --policy "$WORK/policies/web.policy" --client "$1" \
		--client-key "$WORK/keys/$1.key" --host-id "${2:-10.213.0.1}" 2>/dev/null
}
# If a boundary falls within the next seconds, wait it out (doors move).
wait_epoch_margin() {
	local s
	s=$(date +%s)
	[ $((s % 60)) -lt 45 ] || sleep $((62 - s % 60))
}
wait_epoch_margin

status=$(mtdctl --json status)
assert_contains "$status" '"host_id": "10.213.0.1"' \
	"the host id is the default route's interface address, shown in status"
A=$(door alice)
B=$(door bob)
C=$(door carol)
[ -n "$A" ] && [ -n "$B" ] && [ -n "$C" ] || fail "mtdctl port --client gave no door"
echo "$status" | tr -d ' \n' | grep -q "\"name\":\"alice\",\"door\":$A}" ||
	fail "status does not list alice at door $A: $status"
ok "status lists each client with its door (alice $A, bob $B, carol $C)"

# talk HOST PORT: an echo round trip
talk() { in_client "$NETPROBE" ping 10.213.0.1 "$1" 1000 >/dev/null 2>&1; }
talk "$A" || fail "alice's door $A does not reach the service"
ok "alice reaches the service through her door $A"
talk "$B" || fail "bob's door $B does not reach the service"
ok "bob reaches the service through his door $B"

# Another client's key never computes alice's door, and the same key on
# another host id gives another door (with 1000 ports, a collision is 1/1000;
# the check is on the computation, so it names the case if it happens).
A_AS_BOB=$("$MTDCTL" port web --policy "$WORK/policies/web.policy" --client alice \
	--client-key "$WORK/keys/bob.key" --host-id 10.213.0.1 2>/dev/null)
[ "$A_AS_BOB" != "$A" ] || fail "bob's key gives alice's door $A"
ok "bob's key does not give alice's door ($A_AS_BOB != $A)"
A_ELSEWHERE=$(door alice other-host)
[ "$A_ELSEWHERE" != "$A" ] || fail "alice's door is the same on another host ($A)"
ok "the same key gives another door on another host ($A_ELSEWHERE != $A)"

decoys=$(echo "$status" | tr -d ' \n' | sed -n 's/.*"decoys":\[\([0-9,]*\)\].*/\1/p' | head -1)
[ -n "$decoys" ] || fail "no decoys in status: $status"
for d in ${decoys//,/ }; do
	case " $A $B $C " in *" $d "*) fail "decoy $d is a client's door" ;; esac
done
ok "no decoy is any client's door (decoys $decoys)"

# A port that is no door and no decoy is closed.
for p in $(seq 20000 20999); do
	case " $A $B $C ${decoys//,/ } " in *" $p "*) continue ;; esac
	CLOSED=$p
	break
done
talk "$CLOSED" && fail "port $CLOSED, no client's door, reaches the service"
ok "a port that is nobody's door is closed ($CLOSED)"
# --- revocation ---------------------------------------------------------------------------
wait_epoch_margin
A=$(door alice)
B=$(door bob)
C=$(door carol)
in_client "$NETPROBE" stream 10.213.0.1 "$A" 8 >"$WORK/alice.stream" 2>&1 &
ALICE=$!
in_client "$NETPROBE" stream 10.213.0.1 "$B" 8 >"$WORK/bob.stream" 2>&1 &
BOB=$!
sleep 1.5
kill -0 "$ALICE" 2>/dev/null && kill -0 "$BOB" 2>/dev/null || fail "the streams did not start"
rm "$CLIENTS/alice.key"
out=$(mtdctl reload) || fail "reload without alice: $out"
assert_contains "$out" "clients revoked: web/alice" "the reload names the revoked client"
wait "$ALICE" && fail "alice's established connection survived her revocation"
ok "alice's established connection is cut by the reload"
wait "$BOB" || fail "bob's connection was hurt by alice's revocation: $(cat "$WORK/bob.stream")"
ok "bob's connection carries on, no byte lost"
case " $B $C " in *" $A "*) echo "  (alice's door $A is also another client's: not checked closed)" ;;
*)
	talk "$A" && fail "alice's door $A still open after her revocation"
	ok "alice's door $A is closed"
	;;
esac
talk "$B" || fail "bob's door $B closed by alice's revocation"
ok "bob still connects through his door"
grep -q '"type":"client-revoked".*"client":"alice"' "$WORK/log/audit.log" ||
	grep '"client-revoked"' "$WORK/log/audit.log" | grep -q '"alice"' ||
	fail "no client-revoked record for alice: $(grep client-revoked "$WORK/log/audit.log")"
cut=$(grep client-revoked "$WORK/log/audit.log" | grep alice | sed -n 's/.*"cut_flows": *\([0-9]*\).*/\1/p' | tail -1)
[ "${cut:-0}" -ge 1 ] || fail "client-revoked for alice says cut_flows=${cut:-none}"
ok "audited: client-revoked web/alice, $cut flow(s) cut"

# --keep-connections: carol's door closes, her connection stays
wait_epoch_margin
C=$(door carol)
B=$(door bob)
in_client "$NETPROBE" stream 10.213.0.1 "$C" 6 >"$WORK/carol.stream" 2>&1 &
CAROL=$!
sleep 1.5
rm "$CLIENTS/carol.key"
out=$(mtdctl reload --keep-connections) || fail "reload --keep-connections: $out"
wait "$CAROL" || fail "carol's connection was cut despite --keep-connections: $(cat "$WORK/carol.stream")"
ok "with --keep-connections carol's established connection carries on"
if [ "$C" != "$B" ]; then
	talk "$C" && fail "carol's door $C still open after her revocation"
	ok "carol's door $C is closed for new connections"
fi
grep client-revoked "$WORK/log/audit.log" | grep carol | grep -q '"kept_connections": *true' ||
	fail "client-revoked for carol does not say kept_connections"
ok "audited: client-revoked web/carol, connections kept"
echo "PASS: clients"
