#!/bin/bash
# DrainTimeout= (issue 14, item 4), with real instances (busybox httpd from a
# signed snapshot that serves a 6 MB file; /cgi-bin/whoami prints the
# instance id) and a client that downloads it slowly (netprobe slow-get):
# - MaxLifetime= replaces the serving instance in the middle of a download:
#   the download completes intact (same sha256), the old instance drains
#   (instance-draining, role "draining" in mtdctl instances) while a new
#   request is answered by the new instance, and it ends once the download
#   ended (instance-drained: no connection left, the timeout not expired);
# - a reload that changes the service drains too, and a connection still
#   open when DrainTimeout= passes is cut: the instance is killed at the
#   timeout (instance-drained: timeout expired, a connection still open) and
#   the download fails;
# - `mtdctl replace` drains the same way;
# - a draining instance that shows a sign of compromise (a drift) is cut at
#   once and quarantined;
# - the control cases: DrainTimeout=0, and a quarantine (a compromise) even
#   with DrainTimeout= set, cut the download at once;
# - an agent that stops ends its drains (instance-stop) and leaves no link;
#   the audit log verifies.
. "$(dirname "$0")/lib.bash"
[ -x /bin/busybox ] || skip "busybox-static is not installed"
enter_private_namespaces "$@"
make_work_dir
setup_client_namespace

make_web_snapshot "$WORK/snapshots/plain"
# the same tree with a large file to download
head -c $((6 * 1024 * 1024)) /dev/urandom >"$WORK/tree/www/big"
chmod 0644 "$WORK/tree/www/big"
"$MTDCTL" snapshot create --key "$WORK/keys/snap.key" "$WORK/tree" "$WORK/snapshots/web" >/dev/null ||
	fail "snapshot create with the large file"
BIG_SUM=$(sha256sum <"$WORK/tree/www/big" | cut -d' ' -f1)
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
Writable=/tmp
POLICY
}
write_policy "MaxLifetime=10s
DrainTimeout=60s"
P=$WORK/policies/web.policy
"$MTDCTL" policy check "$WORK/policies" >/dev/null || fail "the test policy does not validate"

with_role() { json_instances | grep -o '"id":"web-[0-9]*"[^}]*"role":"'"$1"'"' | sed 's/"id":"\([^"]*\)".*/\1/'; }
serving() { with_role serving | head -n 1; }
field() { json_instances | grep -o '"id":"'"$1"'"[^}]*' | sed -n 's/.*"'"$2"'":"\{0,1\}\([^",]*\).*/\1/p'; }
addr_of() { json_instances | grep -o '"id":"'"$1"'"[^}]*' | sed -n 's/.*"addresses":\["\([^"]*\)".*/\1/p'; }
whoami() { http_get web "$P" 10.213.0.1 /cgi-bin/whoami | sed -n 's/^instance=//p'; }
public_port() { mtdctl --json status | tr -d ' \n' | grep -o '"name":"web","epoch":[0-9]*,"port":[0-9]*' | sed 's/.*"port"://'; }
record() { mtdctl --json audit show | grep "\"type\":\"$1\"" | grep -- "$2" | head -n 1; }
# download RATE OUT: the large file through the public port, RATE bytes a
# second through a small receive buffer; gives up after 4 s without a byte
# (a cut connection hangs: nothing answers)
download() {
	in_client "$BUILD_DIR/tools/netprobe" slow-get 10.213.0.1 "$port" /big "$1" "$2"
}
# A cut download hangs until netprobe gives up, 4 s after its last byte: its
# end is checked one step later (cut_checked), so those 4 s pass while the
# next step runs. The next download starts first: it is no vacuous pass.
cut_pid=""
cut_later() { cut_pid=$1 cut_file=$2 cut_what=$3; } # PID FILE WHAT
cut_checked() { # the pending download failed, short of the whole file
	[ -n "$cut_pid" ] || return 0
	wait "$cut_pid" && fail "the download survived: $cut_what"
	[ "$(stat -c %s "$cut_file")" -lt $((6 * 1024 * 1024)) ] || fail "the cut download is complete: $cut_what"
	ok "$cut_what: the download is cut ($(stat -c %s "$cut_file") of 6 MB)"
	cut_pid=""
}

start_agent
wait_for '[ -n "$(serving)" ]' 150 || fail "no serving instance: $(mtdctl instances)"
port=$(public_port)
[ -n "$port" ] || fail "no public port in status"

# --- MaxLifetime= in the middle of a download: it completes, the old one drains ------------
# The first instance, fresh: the download (6 MB at 420 KB/s, about 15 s)
# starts well before its MaxLifetime= of 10 s and ends well after (at least
# 5 s after the drain begins).
old=$(serving)
wait_for '[ "$(field "$old" age_usec)" -gt 1000000 ]' 50 || fail "$old does not age"
[ "$(field "$old" age_usec)" -lt 6000000 ] || fail "too late to start the download on $old"
download 420000 "$WORK/dl1" &
dl=$!
wait_for '[ -n "$(record instance-draining "\"instance\":\"$old\"")" ]' 150 ||
	fail "$old did not start draining at its MaxLifetime="
kill -0 "$dl" 2>/dev/null || { wait "$dl"; fail "the download ended before the replacement (netprobe $?, $(stat -c %s "$WORK/dl1" 2>/dev/null) bytes)"; }
rec=$(record instance-draining "\"instance\":\"$old\"")
assert_contains "$rec" '"reason":"max-lifetime"' "MaxLifetime= drains $old (instance-draining)"
assert_contains "$rec" '"timeout_usec":60000000' "instance-draining gives DrainTimeout="
new=$(serving)
[ -n "$new" ] && [ "$new" != "$old" ] || fail "no new serving instance during the drain"
[ "$(with_role draining)" = "$old" ] || fail "mtdctl instances does not list $old as draining: $(mtdctl instances)"
ok "mtdctl instances lists $old as draining, $new as serving"
assert_contains "$(mtdctl --json status | tr -d ' \n')" "\"draining\":[\"$old\"]" "status lists the draining instance"
assert_contains "$(mtdctl status)" "draining $old" "mtdctl status prints the draining instance"
answer=$(whoami)
[ "$answer" = "$new" ] || fail "a new request during the drain was answered by '$answer', not $new"
kill -0 "$dl" 2>/dev/null || fail "the download ended before the new request"
ok "a new request during the drain goes to the new instance $new"
wait "$dl" || fail "the download failed across the replacement (netprobe $?)"
[ "$(sha256sum <"$WORK/dl1" | cut -d' ' -f1)" = "$BIG_SUM" ] ||
	fail "the download is not intact: $(stat -c %s "$WORK/dl1") bytes"
ok "a 6 MB download survives the MaxLifetime= replacement intact (sha256)"
wait_for '[ -n "$(record instance-drained "\"instance\":\"$old\"")" ]' 50 ||
	fail "$old did not end its drain once the download ended"
rec=$(record instance-drained "\"instance\":\"$old\"")
assert_contains "$rec" '"why":"no connection left"' "$old ends its drain once its last connection ends"
assert_contains "$rec" '"timeout_expired":false' "the drain ended before DrainTimeout="
[ -z "$(field "$old" state)" ] || fail "$old is still listed after its drain: $(mtdctl instances)"
old_addr=$(mtdctl --json audit show | grep '"type":"instance-start"' | grep "\"instance\":\"$old\"" |
	sed -n 's/.*"addresses":\["\([^"]*\)".*/\1/p')
nft list table inet mtd | grep -qw "$old_addr" && fail "an element of the drained $old ($old_addr) is left"
ok "the drained instance is killed and its envelope ($old_addr) removed"

# --- the control case: DrainTimeout=0 cuts the download at the MaxLifetime= replacement -----
write_policy "MaxLifetime=10s"
mtdctl reload >/dev/null || fail "reload with DrainTimeout=0"
wait_for '[ -z "$(with_role draining)" ] && [ -z "$(with_role replacement)" ] && [ -n "$(serving)" ]' 150 ||
	fail "no single serving instance after the reload: $(mtdctl instances)"
old=$(serving)
wait_for '[ "$(field "$old" age_usec)" -gt 1000000 ]' 50 || fail "$old does not age"
download 300000 "$WORK/dl0" &
dl=$!
wait_for '[ -n "$(record instance-replaced "\"old\":\"$old\"")" ]' 150 || fail "MaxLifetime= did not replace $old"
cut_later "$dl" "$WORK/dl0" "DrainTimeout=0: the MaxLifetime= replacement of $old"
[ -z "$(record instance-draining "\"instance\":\"$old\"")" ] || fail "$old drained with DrainTimeout=0"

# --- a reload that changes the service drains; DrainTimeout= cuts what is still open --------
write_policy "DrainTimeout=4s"
mtdctl reload >/dev/null || fail "reload without MaxLifetime="
wait_for '[ -z "$(with_role draining)" ] && [ -n "$(serving)" ] && [ -z "$(with_role replacement)" ]' 150 ||
	fail "no single serving instance after the reload: $(mtdctl instances)"
old=$(serving)
download 100000 "$WORK/dl2" & # 60 s: longer than the drain
dl=$!
sleep 2
kill -0 "$dl" 2>/dev/null || fail "the slow download ended early"
cut_checked
write_policy "DrainTimeout=3s"
mtdctl reload >/dev/null || fail "reload with DrainTimeout=3s"
wait_for '[ -n "$(record instance-draining "\"instance\":\"$old\"")" ]' 150 ||
	fail "the reload did not drain $old: $(mtdctl instances)"
assert_contains "$(record instance-draining "\"instance\":\"$old\"")" '"reason":"policy changed"' \
	"a reload that changes the service drains the old instance"
wait_for '[ -n "$(record instance-drained "\"instance\":\"$old\"")" ]' 100 ||
	fail "$old was not cut at DrainTimeout="
rec=$(record instance-drained "\"instance\":\"$old\"")
assert_contains "$rec" '"why":"DrainTimeout= passed"' "DrainTimeout= ends the drain of $old"
assert_contains "$rec" '"timeout_expired":true' "instance-drained says the timeout expired"
open=$(sed -n 's/.*"open_connections":\([0-9]*\).*/\1/p' <<<"$rec")
[ "${open:-0}" -ge 1 ] || fail "instance-drained counts no open connection: $rec"
ok "the still-open download was counted ($open open connection(s)) when the timeout cut it"
assert_contains "$(record instance-killed "\"instance\":\"$old\"")" '"reason":"drained"' "$old is killed at the timeout"
cut_later "$dl" "$WORK/dl2" "$old killed at DrainTimeout= with the download still open"

# --- mtdctl replace drains too --------------------------------------------------------------
write_policy "DrainTimeout=60s"
mtdctl reload >/dev/null || fail "reload with DrainTimeout=60s"
wait_for '[ -z "$(with_role draining)" ] && [ -z "$(with_role replacement)" ] && [ -n "$(serving)" ]' 150 ||
	fail "no single serving instance after the reload: $(mtdctl instances)"
old=$(serving)
download 1000000 "$WORK/dl3" & # about 6 s
dl=$!
sleep 1
out=$(mtdctl replace web) || fail "mtdctl replace: $out"
assert_contains "$out" "replacing $old" "mtdctl replace names the instance it replaces"
wait_for '[ -n "$(record instance-draining "\"instance\":\"$old\"")" ]' 150 || fail "mtdctl replace did not drain $old"
assert_contains "$(record instance-draining "\"instance\":\"$old\"")" '"reason":"manual-replace"' "mtdctl replace drains $old"
assert_contains "$(record control-request '"command":"replace"')" '"uid":0' "mtdctl replace is audited with its requester"
wait "$dl" || fail "the download failed across mtdctl replace (netprobe $?)"
[ "$(sha256sum <"$WORK/dl3" | cut -d' ' -f1)" = "$BIG_SUM" ] || fail "the download across mtdctl replace is not intact"
ok "a download survives mtdctl replace intact"
cut_checked
wait_for '[ -n "$(record instance-drained "\"instance\":\"$old\"")" ]' 50 || fail "$old did not end its drain"
out=$(as_user 1000 1000 "$MTDCTL" --socket "$SOCKET" replace web 2>&1) && fail "a non-root user could replace"
assert_contains "$out" "ermission denied" "mtdctl replace is for root"
out=$(mtdctl replace nosuch 2>&1) && fail "replace of an unknown instance succeeded"
assert_contains "$out" "no such instance" "mtdctl replace of an unknown target says so"

# --- a draining instance that shows a sign of compromise is cut at once ----------------------
wait_for '[ -z "$(with_role draining)" ] && [ -z "$(with_role replacement)" ] && [ -n "$(serving)" ]' 150 ||
	fail "no single serving instance: $(mtdctl instances)"
old=$(serving)
old_addr=$(addr_of "$old")
download 100000 "$WORK/dl5" & # 60 s
dl=$!
sleep 1
mtdctl replace web >/dev/null || fail "mtdctl replace"
wait_for '[ "$(with_role draining)" = "'"$old"'" ]' 150 || fail "$old does not drain: $(mtdctl instances)"
# the host reaches an instance directly (as its health checks do): a drift
printf 'GET /cgi-bin/tamper HTTP/1.0\r\n\r\n' | timeout 5 busybox nc "$old_addr" 8080 >/dev/null
wait_for '[ -n "$(record instance-drained "\"instance\":\"$old\"")" ]' 50 ||
	fail "the compromised draining $old was not cut"
assert_contains "$(record instance-drained "\"instance\":\"$old\"")" '"why":"compromised"' \
	"a drift in the draining $old ends its drain at once"
assert_contains "$(record drift "\"instance\":\"$old\"")" '"draining":true' "the drift record says the instance was draining"
wait_for '[ "$(field "$old" state)" = quarantined ]' 50 || fail "the compromised draining $old is not quarantined"
cut_later "$dl" "$WORK/dl5" "the compromised draining $old, quarantined"
mtdctl release "$old" >/dev/null || fail "release $old"
# the operator's word counts as a detection for a draining instance too
wait_for '[ -z "$(with_role replacement)" ] && [ -n "$(serving)" ]' 150 || fail "no serving instance"
old=$(serving)
download 100000 "$WORK/dl7" &
dl=$!
sleep 1
cut_checked
mtdctl replace web >/dev/null || fail "mtdctl replace"
wait_for '[ "$(with_role draining)" = "'"$old"'" ]' 150 || fail "$old does not drain: $(mtdctl instances)"
mtdctl quarantine "$old" >/dev/null || fail "mtdctl quarantine of the draining $old"
wait_for '[ "$(field "$old" state)" = quarantined ]' 50 || fail "the draining $old is not quarantined"
assert_contains "$(record instance-drained "\"instance\":\"$old\"")" '"why":"compromised"' \
	"mtdctl quarantine of a draining instance ends its drain at once"
cut_later "$dl" "$WORK/dl7" "the draining $old quarantined by mtdctl quarantine"
mtdctl release "$old" >/dev/null || fail "release $old"

# --- the control case: a compromise never drains, the download is cut -----------------------
wait_for '[ -z "$(with_role replacement)" ] && [ -n "$(serving)" ]' 150 || fail "no serving instance"
victim=$(serving)
download 300000 "$WORK/dl4" &
dl=$!
sleep 2
cut_checked
mtdctl quarantine web --reason "drain control" >/dev/null || fail "mtdctl quarantine"
wait_for '[ -n "$(record instance-replaced "\"old\":\"$victim\"")" ]' 150 || fail "$victim was not replaced"
[ -z "$(record instance-draining "\"instance\":\"$victim\"")" ] || fail "the quarantined $victim drained"
cut_later "$dl" "$WORK/dl4" "a quarantine of $victim never drains"
wait_for '[ "$(field "$victim" state)" = quarantined ]' 50 || fail "$victim is not quarantined"
mtdctl release "$victim" >/dev/null || fail "release $victim"

# --- an agent that stops ends its drains like every other instance --------------------------
wait_for '[ -z "$(with_role replacement)" ] && [ -n "$(serving)" ]' 150 || fail "no serving instance"
old=$(serving)
download 100000 "$WORK/dl6" &
dl=$!
sleep 1
cut_checked
mtdctl replace web >/dev/null || fail "mtdctl replace before the stop"
wait_for '[ "$(with_role draining)" = "'"$old"'" ]' 150 || fail "$old does not drain: $(mtdctl instances)"
log=$WORK/log/audit.log
stop_agent || fail "clean stop"
grep '"type":"instance-stop"' "$log" | grep "\"instance\":\"$old\"" | grep -q 'agent stopping (draining)' ||
	fail "the stop did not end the drain of $old"
ip -o link | grep -q mtdi && fail "an instance link remains"
ok "a clean stop ends the drain of $old and leaves no instance link"
cut_later "$dl" "$WORK/dl6" "the agent's stop while $old drained"
out=$("$MTDCTL" audit verify --key "$WORK/state/audit-verify.key" "$WORK/log/audit.log") ||
	fail "audit verify: $out"
ok "the audit log verifies"
cut_checked
echo "$TEST_NAME: $CHECKS checks passed"
