#!/bin/bash
# Freeze first, and StandbyInstances= (issue 12, finding 9), with real
# instances (busybox httpd from a signed snapshot; /cgi-bin/whoami prints the
# instance id, /cgi-bin/mount makes a seccomp violation):
# - a standby exists before any detection: listed (mtdctl status, instances),
#   not routed (the public port leads to the serving instance only, the DNAT
#   map holds no standby address), unreachable from outside;
# - on a detection (seccomp violation, mtdctl quarantine) the compromised
#   instance is contained first — its cgroup frozen (cgroup.freeze), its
#   live and ingress elements out of the table (a transaction of its own) — and the audit log
#   shows that containment, timed from the detection, before the route moves
#   (the transaction that routes the public port to the standby); the
#   standby then serves the public port (its id answers), and a new standby
#   starts afterwards;
# - without a standby the containment still comes first, before the
#   replacement is even started;
# - MaxLifetime= renews a standby that waited its lifetime out;
# - the service keeps its public port throughout; the audit log verifies.
. "$(dirname "$0")/lib.bash"
[ -x /bin/busybox ] || skip "busybox-static is not installed"
enter_private_namespaces "$@"
make_work_dir
setup_client_namespace

make_web_snapshot "$WORK/snapshots/web"
write_key "$WORK/keys/web.key"
write_policy() { # extra [Service] lines
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
ReplaceBurst=1000
ReplaceInterval=1min
QuarantineMax=64M
$1

[Rotation]
PublicPorts=20000-20999
Interval=3600s
Grace=10s
KeyFile=$WORK/keys/web.key
AddressPool=10.214.0.0/24

[Envelope]
SystemCalls=@system-service @network-io
ViolationSystemCalls=mount
OnSyscallViolation=quarantine
Writable=/tmp
POLICY
}
write_policy "StandbyInstances=1"
P=$WORK/policies/web.policy
"$MTDCTL" policy check "$WORK/policies" >/dev/null || fail "the test policy does not validate"

# ids by role (mtdctl --json instances: "role")
with_role() { json_instances | grep -o '"id":"web-[0-9]*"[^}]*"role":"'"$1"'"' | sed 's/"id":"\([^"]*\)".*/\1/'; }
ready_standby() { json_instances | grep -o '"id":"web-[0-9]*"[^}]*"state":"healthy"[^}]*"role":"standby"' | head -n 1 | sed 's/"id":"\([^"]*\)".*/\1/'; }
serving() { with_role serving | head -n 1; }
field() { json_instances | grep -o '"id":"'"$1"'"[^}]*' | sed -n 's/.*"'"$2"'":"\{0,1\}\([^",]*\).*/\1/p'; }
addr_of() { json_instances | grep -o '"id":"'"$1"'"[^}]*' | sed -n 's/.*"addresses":\["\([^"]*\)".*/\1/p'; }
whoami() { http_get web "$P" 10.213.0.1 /cgi-bin/whoami | sed -n 's/^instance=//p'; }
public_port() { mtdctl --json status | tr -d ' \n' | grep -o '"name":"web","epoch":[0-9]*,"port":[0-9]*' | sed 's/.*"port"://'; }
seq_of() { # TYPE GREP: seq of the first record of TYPE whose line matches GREP
	mtdctl --json audit show | grep "\"type\":\"$1\"" | grep -- "$2" | head -n 1 | sed -n 's/.*"seq":\([0-9]*\).*/\1/p'
}
cgroup_of() { find /sys/fs/cgroup -maxdepth 8 -type d -name "$1" -path "*$INSTANCES_CGROUP*" | while read -r d; do [ -e "$d/cgroup.freeze" ] && echo "$d"; done | head -n 1; }
in_nft_set() { nft list set inet mtd "$1" | grep -qw "$2"; }

start_agent
wait_for '[ -n "$(serving)" ] && [ -n "$(ready_standby)" ]' 150 ||
	fail "no serving instance with a ready standby: $(mtdctl instances)"
port=$(public_port)
[ -n "$port" ] || fail "no public port in status"

# --- a standby exists, is listed, and is not reachable ------------------------------------
current=$(serving)
standby=$(ready_standby)
[ "$current" != "$standby" ] || fail "the standby is the serving instance"
out=$(mtdctl status)
assert_contains "$out" "$standby" "mtdctl status lists the standby"
assert_contains "$out" "1/1" "mtdctl status counts one ready standby of one"
assert_contains "$(mtdctl instances)" "standby" "mtdctl instances gives the standby's role"
[ "$(whoami)" = "$current" ] || fail "the public port is not served by $current"
ok "the public port leads to the serving instance $current, not to the standby"
standby_addr=$(addr_of "$standby")
[ -n "$standby_addr" ] || fail "no address for $standby"
live=$(nft list set inet mtd active1 | grep -q 'elements = { ipv4' && echo 1 || echo 0)
nft list map inet mtd "svc4_$live" | grep -qw "$standby_addr" && fail "the DNAT map leads to the standby"
ok "no DNAT leads to the standby ($standby_addr)"
in_client "$BUILD_DIR/tools/netprobe" connect "$standby_addr" 8080 500 2>/dev/null &&
	fail "the standby answers the client directly"
ok "the standby is unreachable from outside"

# --- detection by a seccomp violation: frozen and cut first, the standby serves -------------
victim=$current
promoted=$standby
victim_addr=$(addr_of "$victim")
# the CGI is frozen with its instance mid-request: the request hangs until
# http_get's timeout, in the background (waited for before the stop)
http_get web "$P" 10.213.0.1 /cgi-bin/mount >/dev/null &
hung=$!
wait_for '[ "$(serving)" = "'"$promoted"'" ]' 100 || fail "the standby $promoted was not promoted: $(mtdctl instances)"
ok "a seccomp violation promotes the standby $promoted"
wait_for '[ "$(field "$victim" state)" = quarantined ]' 50 || fail "$victim is not quarantined"
cg=$(cgroup_of "$victim")
[ -n "$cg" ] || fail "no cgroup for $victim"
[ "$(cat "$cg/cgroup.freeze")" = 1 ] || fail "$victim's cgroup.freeze is not 1"
grep -qx "frozen 1" "$cg/cgroup.events" || fail "$victim's cgroup is not frozen"
ok "the compromised instance's cgroup is frozen (cgroup.freeze on the cgroup2 hierarchy)"
in_nft_set instances4 "$victim_addr" && fail "$victim ($victim_addr) is still in the live set"
in_nft_set inst_ingress4 "$victim_addr" && fail "$victim ($victim_addr) still admits new flows"
# (dead4 may hold its address while a client's flow to it waits for its reset: reset_at_kill.sh)
nft list table inet mtd | sed '/set dead[46] {/,/}/d' | grep -qw "$victim_addr" &&
	fail "an element of the quarantined $victim ($victim_addr) is left"
ok "the compromised instance is cut off, and nothing of its envelope is left once it is quarantined"
c=$(seq_of instance-contained "\"instance\":\"$victim\"")
r=$(seq_of instance-replaced "\"old\":\"$victim\"")
[ -n "$c" ] && [ -n "$r" ] || fail "no instance-contained / instance-replaced record for $victim"
[ "$c" -lt "$r" ] || fail "the containment ($c) is not before the route moved ($r)"
rec=$(mtdctl --json audit show | grep '"type":"instance-contained"' | grep "\"instance\":\"$victim\"")
assert_contains "$rec" '"frozen":true,"killed":false,"cut":true' "the containment record says frozen and cut"
fz=$(sed -n 's/.*"detection_to_freeze_requested_usec":\([0-9]*\).*/\1/p' <<<"$rec")
ct=$(sed -n 's/.*"detection_to_cut_usec":\([0-9]*\).*/\1/p' <<<"$rec")
rt=$(mtdctl --json audit show | grep '"type":"instance-replaced"' | grep "\"old\":\"$victim\"" |
	sed -n 's/.*"detection_to_replacement_usec":\([0-9]*\).*/\1/p')
[ -n "$fz" ] && [ -n "$ct" ] && [ -n "$rt" ] && [ "$fz" -le "$ct" ] && [ "$ct" -le "$rt" ] ||
	fail "freeze at +$fz us, cut at +$ct us, routed at +$rt us"
ok "frozen (+$fz us) and cut off (+$ct us) before the route moved (+$rt us); recorded (seq $c) before the replacement (seq $r)"
assert_contains "$(mtdctl --json audit show | grep '"type":"instance-replaced"' | grep "\"old\":\"$victim\"")" \
	"\"new\":\"$promoted\"" "the replacement is the standby"
[ "$(whoami)" = "$promoted" ] || fail "the public port is not served by the promoted $promoted"
ok "the public port is served by the promoted standby (its id answers)"
wait_for '[ -n "$(ready_standby)" ]' 150 || fail "no new standby after the promotion"
fresh=$(ready_standby)
[ "$fresh" != "$promoted" ] && [ "$fresh" != "$victim" ] || fail "the new standby is not new: $fresh"
s=$(seq_of instance-start "\"instance\":\"$fresh\"")
[ "$s" -gt "$r" ] || fail "the new standby started ($s) before the promotion ($r)"
assert_contains "$(mtdctl --json audit show | grep '"type":"instance-start"' | grep "\"instance\":\"$fresh\"")" \
	'"role":"standby"' "a new standby ($fresh) starts after the promotion"
mtdctl release "$victim" >/dev/null || fail "release $victim"

# --- detection by the operator ---------------------------------------------------------------
victim=$(serving)
promoted=$(ready_standby)
mtdctl quarantine web --reason "operator" >/dev/null || fail "mtdctl quarantine"
wait_for '[ "$(serving)" = "'"$promoted"'" ]' 100 || fail "mtdctl quarantine did not promote $promoted"
c=$(seq_of instance-contained "\"instance\":\"$victim\"")
r=$(seq_of instance-replaced "\"old\":\"$victim\"")
[ -n "$c" ] && [ -n "$r" ] && [ "$c" -lt "$r" ] || fail "mtdctl quarantine: containment $c, route $r"
grep -qx "frozen 1" "$(cgroup_of "$victim")/cgroup.events" || fail "$victim is not frozen"
[ "$(whoami)" = "$promoted" ] || fail "the public port is not served by $promoted"
ok "mtdctl quarantine: $victim frozen and cut (seq $c) before $promoted took the port (seq $r)"
wait_for '[ -n "$(ready_standby)" ]' 150 || fail "no new standby after the quarantine"
mtdctl release "$victim" >/dev/null || fail "release $victim"
[ "$(public_port)" = "$port" ] || fail "the public port moved from $port to $(public_port)"
ok "the service keeps its public port $port through the replacements"

# --- a crash of the serving instance: the standby takes over at once -------------------------
# (an instance that dies within 10 s of its start is a crash loop: the restart
# back-off decides then, so the serving one is let age first)
wait_for '[ -n "$(ready_standby)" ]' 150 || fail "no standby before the crash"
victim=$(serving)
promoted=$(ready_standby)
wait_for '[ "$(field "$victim" age_usec)" -gt 10500000 ]' 150 || fail "$victim does not age"
kill -KILL "$(field "$victim" pid)"
wait_for '[ "$(serving)" = "'"$promoted"'" ]' 50 || fail "the standby $promoted did not take over: $(mtdctl instances)"
assert_contains "$(mtdctl --json audit show | grep '"type":"instance-exit"' | grep "\"instance\":\"$victim\"")" \
	"killed by SIGKILL" "the crash is audited"
[ "$(whoami)" = "$promoted" ] || fail "the public port is not served by $promoted after the crash"
ok "a crashed serving instance ($victim) is followed by the standby $promoted at once"
wait_for '[ -n "$(ready_standby)" ]' 150 || fail "no new standby after the crash"

# --- without a standby: containment still first, before the replacement starts --------------
write_policy ""
mtdctl reload >/dev/null || fail "reload without StandbyInstances="
wait_for '[ -n "$(serving)" ] && [ -z "$(with_role standby)" ] && [ -z "$(with_role replacement)" ]' 150 ||
	fail "the standbys did not go: $(mtdctl instances)"
ok "StandbyInstances=0: the standbys go"
victim=$(serving)
http_get web "$P" 10.213.0.1 /cgi-bin/mount >/dev/null & # frozen mid-request too
hung="$hung $!"
wait_for '[ -n "$(serving)" ] && [ "$(serving)" != "'"$victim"'" ]' 150 || fail "no replacement without a standby"
new=$(serving)
c=$(seq_of instance-contained "\"instance\":\"$victim\"")
st=$(seq_of instance-start "\"instance\":\"$new\"")
r=$(seq_of instance-replaced "\"old\":\"$victim\"")
[ -n "$c" ] && [ -n "$st" ] && [ -n "$r" ] || fail "records missing: contained $c, start $st, replaced $r"
[ "$c" -lt "$st" ] && [ "$st" -lt "$r" ] || fail "order: contained $c, start $st, replaced $r"
assert_contains "$(mtdctl --json audit show | grep '"type":"instance-replaced"' | grep "\"old\":\"$victim\"")" \
	'"standby":false' "the replacement is marked as not from a standby"
ok "without a standby: contained (seq $c) before the replacement starts ($st) and takes the port ($r)"
wait_for '[ "$(field "$victim" state)" = quarantined ]' 50 || fail "$victim is not quarantined"
mtdctl release "$victim" >/dev/null || fail "release $victim"

# --- MaxLifetime= renews a standby that waited its lifetime out ------------------------------
# Two standbys, started one after the other. A quarantine after a few seconds
# promotes the younger one (a replacement takes the most lifetime ahead) and
# starts a third; the older one then reaches its MaxLifetime= as a standby:
# a successor starts, and it goes once that one is healthy. (When the
# serving instance expires next, the youngest fresh standby takes over, not
# the retiring one.)
ready_count() { json_instances | grep -o '"state":"healthy"[^}]*"role":"standby"' | wc -l; }
write_policy "StandbyInstances=2
MaxLifetime=10s"
mtdctl reload >/dev/null || fail "reload with MaxLifetime="
wait_for '[ "$(ready_count)" -eq 2 ]' 150 || fail "no two ready standbys: $(mtdctl instances)"
older=$(with_role standby | head -n 1)
younger=$(with_role standby | tail -n 1)
sleep 3
mtdctl quarantine web >/dev/null || fail "quarantine with two standbys"
wait_for '[ "$(serving)" = "'"$younger"'" ]' 50 || fail "the younger standby $younger was not promoted: $(mtdctl instances)"
ok "a replacement promotes the youngest standby ($younger; $older waits on)"
wait_for 'mtdctl --json audit show | grep "\"type\":\"standby-retiring\"" | grep -q "\"instance\":\"'"$older"'\""' 150 ||
	fail "$older did not retire at its MaxLifetime="
wait_for 'mtdctl audit show | grep "\"instance\":\"'"$older"'\"" | grep -q "standby renewed"' 100 ||
	fail "$older was not stopped once its successor was ready"
t=$(seq_of standby-retiring "\"instance\":\"$older\"")
r=$(seq_of instance-stop "\"instance\":\"$older\"")
h=$(mtdctl --json audit show | grep '"type":"instance-start"' | grep '"role":"standby"' |
	sed -n 's/.*"seq":\([0-9]*\).*/\1/p' | awk -v t="$t" '$1 > t' | head -n 1)
[ -n "$r" ] && [ -n "$h" ] && [ "$h" -lt "$r" ] ||
	fail "$older went (seq $r) before a successor started ($h) after it retired ($t)"
mtdctl --json audit show | grep '"type":"instance-replaced"' | grep -q "\"new\":\"$older\"" &&
	fail "the retiring $older was promoted"
wait_for '[ "$(ready_count)" -eq 2 ]' 150 || fail "not two ready standbys after the renewal: $(mtdctl instances)"
ok "MaxLifetime= renews the standby $older: a successor first, then it goes"
mtdctl release "$(with_role quarantined | head -n 1)" >/dev/null
[ "$(public_port)" = "$port" ] || fail "the public port moved from $port"
[ -n "$(whoami)" ] || fail "nothing serves the public port after the renewals"
ok "the service still serves its public port $port"

for p in $hung; do wait "$p"; done
stop_agent || fail "clean stop"
ip -o link | grep -q mtdi && fail "an instance link remains"
ok "a clean stop leaves no instance link (standbys included)"
out=$("$MTDCTL" audit verify --key "$WORK/state/audit-verify.key" "$WORK/log/audit.log") ||
	fail "audit verify: $out"
ok "the audit log verifies"
echo "$TEST_NAME: $CHECKS checks passed"
