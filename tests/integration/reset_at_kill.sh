#!/bin/bash
# A killed instance's clients get a reset at once, not a hang (issue 16):
# a client in its own namespace holds an idle keep-alive connection to the
# serving instance (busybox httpd from a signed snapshot, through the
# rotating public port), the instance is killed, then the client sends a
# request on that connection (tests/tools/idle-request):
# - a planned replacement with DrainTimeout=0 (`mtdctl replace`): the route
#   moves to the new instance and the old one is killed; the request is
#   answered with a reset (ECONNRESET), not left hanging until a timeout;
# - a compromise (`mtdctl quarantine`): the instance is frozen and cut off,
#   its client is reset the same way;
# - the killed instance's address is in dead4 while its flow is open, and
#   leaves it once the reset ended the flow; a new connection is answered by
#   the new instance, never sent to the killed one.
# Before the fix the client's request hung: the envelope dropped every
# packet to the killed instance's address.
# Then clients whose request is already inside the instance, which never
# answers it (tests/tools/idle-request --waiting: the start of a request,
# the server waits for its end), and who send nothing more while they wait:
# - a compromise (`mtdctl quarantine`, the instance frozen for forensics):
#   the client gets a reset within a second of the quarantine, from the
#   frozen instance's own kernel (the agent destroys its sockets with
#   sock_diag SOCK_DESTROY; the reset passes instance_egress's rule for
#   resets of killed or cut instances), and `instance-contained` counts it;
# - a planned replacement (DrainTimeout=0): the client is reset when the old
#   instance is killed, and `instance-killed` counts it.
# Without the SOCK_DESTROY these clients hang (the table has no packet of
# theirs to answer): idle-request reports "hang" after 10 s.
. "$(dirname "$0")/lib.bash"
[ -x /bin/busybox ] || skip "busybox-static is not installed"
enter_private_namespaces "$@"
make_work_dir
setup_client_namespace

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
HealthInterval=300ms
HealthTimeout=200ms
HealthFailures=2
OnCompromise=quarantine
QuarantineMax=64M

[Rotation]
PublicPorts=20000-20999
Interval=3600s
Grace=10s
KeyFile=$WORK/keys/web.key
AddressPool=10.214.0.0/24

[Envelope]
SystemCalls=@system-service @network-io
Writable=/tmp
POLICY
P=$WORK/policies/web.policy
"$MTDCTL" policy check "$WORK/policies" >/dev/null || fail "the test policy does not validate"

with_role() { json_instances | grep -o '"id":"web-[0-9]*"[^}]*"role":"'"$1"'"' | sed 's/"id":"\([^"]*\)".*/\1/'; }
serving() { with_role serving | head -n 1; }
field() { json_instances | grep -o '"id":"'"$1"'"[^}]*' | sed -n 's/.*"'"$2"'":"\{0,1\}\([^",]*\).*/\1/p'; }
addr_of() { json_instances | grep -o '"id":"'"$1"'"[^}]*' | sed -n 's/.*"addresses":\["\([^"]*\)".*/\1/p'; }
whoami() { http_get web "$P" 10.213.0.1 /cgi-bin/whoami | sed -n 's/^instance=//p'; }
public_port() { mtdctl --json status | tr -d ' \n' | grep -o '"name":"web","epoch":[0-9]*,"port":[0-9]*' | sed 's/.*"port"://'; }
record() { mtdctl --json audit show | grep "\"type\":\"$1\"" | grep -- "$2" | head -n 1; }
in_dead4() { nft list set inet mtd dead4 | grep -qw "$1"; }
# resets by the kernel of a killed or cut instance let out so far (its sockets destroyed)
kernel_resets() { nft list chain inet mtd instance_egress | grep 'reset by a killed' | grep -o 'packets [0-9]*' | awk '{s += $2} END {print s + 0}'; }
# packets the reset rule answered so far
resets() { nft list chain inet mtd instance_dead | grep 'meta l4proto tcp.*reject with tcp reset' | grep -o 'packets [0-9]*' | awk '{s += $2} END {print s + 0}'; }

start_agent
wait_for '[ -n "$(serving)" ] && [ "$(whoami)" = "$(serving)" ]' 150 || fail "no serving instance: $(mtdctl instances)"
port=$(public_port)
[ -n "$port" ] || fail "no public port in status"

# idle_client NAME: an idle connection through the public port; its
# stdin is the fifo $WORK/NAME.go, its answer goes to $WORK/NAME.out
idle_client() {
	mkfifo "$WORK/$1.go"
	in_client "$BUILD_DIR/tools/idle-request" 10.213.0.1 "$port" <"$WORK/$1.go" >"$WORK/$1.out" 2>&1 &
	client=$!
	exec {go}>"$WORK/$1.go"
	wait_for 'grep -q connected "$WORK/'"$1"'.out"' 50 || fail "the idle client did not connect: $(cat "$WORK/$1.out")"
}
# answer NAME: let the client send its request on the idle connection;
# what came back in $got (not in a subshell: the client is this shell's child)
answer() {
	echo go >&"$go"
	exec {go}>&-
	wait "$client"
	got=$(sed -n '2p' "$WORK/$1.out")
}

# --- a planned replacement with DrainTimeout=0: the old instance's client is reset ----------
old=$(serving)
old_addr=$(addr_of "$old")
idle_client replace
out=$(mtdctl replace web) || fail "mtdctl replace: $out"
wait_for '[ -n "$(record instance-killed "\"instance\":\"$old\"")" ]' 150 || fail "$old was not killed after mtdctl replace"
new=$(serving)
[ -n "$new" ] && [ "$new" != "$old" ] || fail "no new serving instance after the replacement"
[ -z "$(record instance-draining "\"instance\":\"$old\"")" ] || fail "$old drained with DrainTimeout=0"
before=$(resets)
answer replace
case "$got" in
reset*) ok "the idle client of the replaced $old gets a reset ($(echo "$got" | awk '{print $2}') ms after its request)" ;;
*) fail "the idle client of the replaced $old got '$got', not a reset: $(cat "$WORK/replace.out")" ;;
esac
# The killed instance's kernel reset it at the kill (its sockets destroyed),
# or else the table's rule when the client sent.
[ "$(kernel_resets)" -gt 0 ] || [ "$(resets)" -gt "$before" ] ||
	fail "the reset came neither from the killed instance's kernel nor from the table's rule"
ok "the reset came from the killed instance's kernel or the rule for flows to killed instances (dead4)"
wait_for '! in_dead4 "$old_addr"' 50 || fail "$old_addr stays in dead4 after its last flow was reset: $(nft list set inet mtd dead4)"
ok "the killed instance's address leaves dead4 once its flow is over"
[ "$(whoami)" = "$new" ] || fail "a new request is not answered by the new instance $new"
ok "a new connection goes to the new instance $new"

# --- a compromise (mtdctl quarantine): the contained instance's client is reset -------------
old=$new
old_addr=$(addr_of "$old")
idle_client quarantine
before=$(resets)
kbefore=$(kernel_resets)
out=$(mtdctl quarantine "$old") || fail "mtdctl quarantine: $out"
wait_for '[ "$(field "$old" state)" = quarantined ]' 150 || fail "$old is not quarantined: $(mtdctl instances)"
wait_for '[ -n "$(serving)" ] && [ "$(serving)" != "'"$old"'" ]' 150 || fail "no replacement for the quarantined $old"
answer quarantine
case "$got" in
reset*) ok "the idle client of the quarantined $old gets a reset ($(echo "$got" | awk '{print $2}') ms after its request)" ;;
*) fail "the idle client of the quarantined $old got '$got', not a reset: $(cat "$WORK/quarantine.out")" ;;
esac
[ "$(kernel_resets)" -gt "$kbefore" ] || [ "$(resets)" -gt "$before" ] ||
	fail "the reset came neither from the frozen instance's kernel nor from the table's rule"
nft list set inet mtd instances4 | grep -qw "$old_addr" && fail "the quarantined $old is still live"
wait_for '! in_dead4 "$old_addr"' 50 || fail "$old_addr stays in dead4 after its flow was reset"
ok "the quarantined instance's address leaves dead4 once its flow is over"
[ "$(whoami)" = "$(serving)" ] || fail "a new request is not answered by the serving instance"
ok "a new connection goes to the serving instance"

# waiting_client NAME: a client whose request is inside the serving
# instance, waiting for an answer that does not come; its lines go to
# $WORK/NAME.out
waiting_client() {
	in_client "$BUILD_DIR/tools/idle-request" --waiting 10.213.0.1 "$port" >"$WORK/$1.out" 2>&1 &
	client=$!
	wait_for 'grep -q sent "$WORK/'"$1"'.out"' 50 || fail "the waiting client did not send: $(cat "$WORK/$1.out")"
	sleep 0.3 # the request is read by the server, which waits for the rest
}
# outcome NAME: the client's last line once it is done ("reset MS AT", "hang")
outcome() {
	wait "$client"
	got=$(sed -n '3p' "$WORK/$1.out")
}
reset_field() { # RECORD-TYPE INSTANCE FIELD: its connections_reset.FIELD
	record "$1" "\"instance\":\"$2\"" | grep -o '"connections_reset":{[^}]*' | grep -o "\"$3\":[0-9]*" | cut -d: -f2
}
reset_count() { reset_field "$1" "$2" reset; }
now_ms() { date +%s%3N; }

# --- a compromise with a request inside: the frozen instance's client is reset at once -------
old=$(serving)
port=$(public_port)
waiting_client frozen
kbefore=$(kernel_resets)
t0=$(now_ms)
out=$(mtdctl quarantine "$old") || fail "mtdctl quarantine: $out"
outcome frozen
case "$got" in
reset*)
	at=$(echo "$got" | awk '{print $3}')
	[ $((at - t0)) -lt 1000 ] || fail "the waiting client of the quarantined $old was reset $((at - t0)) ms after the quarantine, not within 1 s"
	ok "the waiting client of the frozen $old gets a reset $((at - t0)) ms after the quarantine (not a hang)"
	;;
*) fail "the waiting client of the quarantined $old got '$got', not a reset: $(cat "$WORK/frozen.out")" ;;
esac
[ "$(kernel_resets)" -gt "$kbefore" ] || fail "the reset did not come from the frozen instance's kernel (instance_egress's rule for dead resets)"
ok "the reset came from the frozen instance's own kernel (its socket destroyed)"
wait_for '[ -n "$(record instance-contained "\"instance\":\"$old\"")" ]' 50 || fail "no instance-contained record for $old"
n=$(reset_count instance-contained "$old")
[ "${n:-0}" -ge 1 ] || fail "instance-contained of $old does not count the reset: $(record instance-contained "\"instance\":\"$old\"")"
ok "instance-contained counts $n connection(s) reset (in $(reset_field instance-contained "$old" usec) us)"
wait_for '[ "$(field "$old" state)" = quarantined ]' 150 || fail "$old is not quarantined: $(mtdctl instances)"
wait_for '[ -n "$(serving)" ] && [ "$(serving)" != "'"$old"'" ]' 150 || fail "no replacement for the quarantined $old"
ok "the frozen instance's memory is kept: $old is quarantined, not killed"

# --- a planned replacement with a request inside: the client is reset at the kill -------------
old=$(serving)
port=$(public_port)
waiting_client killed
out=$(mtdctl replace web) || fail "mtdctl replace: $out"
outcome killed
case "$got" in
reset*)
	at=$(echo "$got" | awk '{print $3}')
	killed_ms=$(($(record instance-killed "\"instance\":\"$old\"" | grep -o '"realtime_usec":[0-9]*' | cut -d: -f2) / 1000))
	d=$((at - killed_ms))
	[ "${d#-}" -lt 1000 ] || fail "the waiting client of $old was reset $d ms from its kill, not within 1 s"
	ok "the waiting client of the replaced $old gets a reset at its kill ($d ms from the instance-killed record)"
	;;
*) fail "the waiting client of the replaced $old got '$got', not a reset: $(cat "$WORK/killed.out")" ;;
esac
n=$(reset_count instance-killed "$old")
[ "${n:-0}" -ge 1 ] || fail "instance-killed of $old does not count the reset: $(record instance-killed "\"instance\":\"$old\"")"
ok "instance-killed counts $n connection(s) reset (in $(reset_field instance-killed "$old" usec) us)"
[ "$(whoami)" = "$(serving)" ] || fail "a new request is not answered by the serving instance"
ok "a new connection goes to the serving instance"

stop_agent || fail "the agent did not stop cleanly"
out=$("$MTDCTL" audit verify --key "$WORK/state/audit-verify.key" "$WORK/log/audit.log") ||
	fail "audit verify: $out"
ok "the audit log verifies"
echo "$TEST_NAME: $CHECKS checks passed"
