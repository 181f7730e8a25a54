#!/bin/bash
# Monitor mode end to end, with real instances (busybox httpd from a signed
# snapshot; its CGI scripts misbehave on request):
#   - OnCompromise=alert: a seccomp violation, drift and unexpected egress
#     are audited with "action":"alert" and counted in `mtdctl status`; the
#     instance keeps serving with the same id and pid. In the same agent a service with
#     OnCompromise=kill and OnSyscallViolation=kill is replaced for the same
#     violation (the control: the detection works, only the answer differs).
#   - mtd-agent --monitor: that kill service is now in alert too: its
#     violation is audited and counted, its instance stays; status says
#     "mode: monitor"; an operator's `mtdctl quarantine` still acts.
. "$(dirname "$0")/lib.bash"
[ -x /bin/busybox ] || skip "busybox-static is not installed"
command -v jq >/dev/null || skip "jq missing"
enter_private_namespaces "$@"
make_work_dir
setup_client_namespace

make_web_snapshot "$WORK/snapshots/web"
# write_web NAME PORTS POOL [SERVICE LINES] [ENVELOPE LINES]
write_web() {
	[ -f "$WORK/keys/$1.key" ] || write_key "$WORK/keys/$1.key"
	cat >"$WORK/policies/$1.policy" <<POLICY
[Service]
Name=$1
Snapshot=$WORK/snapshots/web
SnapshotKey=$WORK/keys/snap.pub
Exec=/bin/busybox httpd -f -p 8080 -h /www
ListenPort=8080/tcp
User=www
HealthInterval=300ms
HealthTimeout=200ms
HealthFailures=2
ReplaceBurst=1000
ReplaceInterval=1min
$4

[Rotation]
PublicPorts=$2
Interval=60s
Grace=10s
KeyFile=$WORK/keys/$1.key
AddressPool=$3

[Envelope]
SystemCalls=@system-service @network-io
ViolationSystemCalls=mount
Writable=/tmp
$5
POLICY
}
write_web watched 20000-20999 10.214.0.0/24 "OnCompromise=alert" "Egress=tcp/7000 10.213.0.2
EgressAlertThreshold=3"
write_web guarded 21000-21999 10.216.0.0/24 "OnCompromise=kill" "OnSyscallViolation=kill"
"$MTDCTL" policy check "$WORK/policies" >/dev/null || fail "the test policies do not validate"
plan=$("$MTDCTL" policy check --plan "$WORK/policies") || fail "policy check --plan: $plan"
grep -q "^  response:    OnCompromise=alert OnUnhealthy=kill (detections audited and counted, not acted on)$" <<<"$plan" ||
	fail "the plan does not say watched is in alert: $plan"
grep -q "^  syscalls:    .*on a violation: errno" <<<"$plan" || fail "the plan: OnSyscallViolation= does not follow alert (errno)"
ok "policy check --plan says the service is in alert and its violations get errno"

# serving_id SERVICE: its healthy, serving instance
serving_id() { json_instances | grep -o '"id":"'"$1"'-[0-9]*"[^}]*"state":"healthy"[^}]*"role":"serving"' | head -n 1 | sed 's/"id":"\([^"]*\)".*/\1/'; }
pid_of() { json_instances | grep -o '"id":"'"$1"'"[^}]*' | sed -n 's/.*"pid":\([0-9]*\).*/\1/p'; }
# not_acted SERVICE KIND: the count in status
not_acted() { mtdctl --json status | jq -r --arg s "$1" --arg k "$2" '.instances[] | select(.service == $s) | .not_acted_on[$k]'; }
# records TYPE SERVICE ACTION: how many records of TYPE for SERVICE with that action
records() { mtdctl audit show | grep " $1 " | grep '"service":"'"$2"'"' | grep -c '"action":"'"$3"'"'; }
get() { http_get "$1" "$WORK/policies/$1.policy" 10.213.0.1 "$2"; }

# --- an agent in enforce mode: OnCompromise=alert beside OnCompromise=kill -------------
start_agent
wait_for '[ -n "$(serving_id watched)" ] && [ -n "$(serving_id guarded)" ]' 150 ||
	fail "no healthy instances: $(mtdctl instances)"
mtdctl audit show | grep ' agent-start ' | grep -q '"mode":"enforce"' || fail "agent-start does not say enforce"
ok "agent-start says \"mode\":\"enforce\""
assert_contains "$(mtdctl status)" "mode:     enforce; in alert (OnCompromise=alert, nothing is killed or quarantined for a detection): watched" \
	"status names the service in alert"
[ "$(mtdctl --json status | jq -r '.instances[] | select(.service == "guarded") | .on_compromise')" = kill ] ||
	fail "status: guarded is not shown as kill"

watched=$(serving_id watched)
watched_pid=$(pid_of "$watched")
assert_contains "$(get watched /cgi-bin/mount)" "mounted" "under alert the violating call fails with EPERM and the CGI goes on"
wait_for '[ "$(records seccomp-violation watched alert)" -ge 1 ]' 50 ||
	fail "no seccomp-violation record with \"action\":\"alert\": $(mtdctl audit show | grep seccomp-violation)"
ok "the violation is audited with \"action\":\"alert\""
assert_contains "$(get watched /cgi-bin/tamper)" "tampered" "the drifting CGI ran"
wait_for '[ "$(records drift watched alert)" -ge 1 ]' 50 ||
	fail "no drift record with \"action\":\"alert\": $(mtdctl audit show | grep ' drift ')"
ok "the drift is audited with \"action\":\"alert\""
out=$(get watched /cgi-bin/egress)
case "$out" in *undeclared-ok*) fail "egress to an undeclared port got through under alert" ;; esac
ok "under alert the envelope still drops egress to an undeclared port"
wait_for '[ "$(records egress watched alert)" -ge 1 ]' 50 ||
	fail "no egress record with \"action\":\"alert\": $(mtdctl audit show | grep ' egress ')"
ok "EgressAlertThreshold= drops are audited with \"action\":\"alert\""

# The control: the same violation against OnCompromise=kill, OnSyscallViolation=kill.
guarded=$(serving_id guarded)
# Killed mid-request, cut first: the request hangs until its timeout, in the
# background (waited for at the end). Its answer is never read: 3 s, not 8.
printf 'GET /cgi-bin/mount HTTP/1.0\r\n\r\n' |
	in_client timeout 3 "$MTDCTL" connect guarded --policy "$WORK/policies/guarded.policy" 10.213.0.1 \
		>/dev/null 2>&1 &
hung=$!
wait_for '[ -n "$(serving_id guarded)" ] && [ "$(serving_id guarded)" != "'"$guarded"'" ]' 150 ||
	fail "guarded was not replaced after its violation: $(mtdctl instances)"
[ "$(records seccomp-violation guarded kill)" -ge 1 ] || fail "guarded's violation record does not say kill"
wait_for '! json_instances | grep -q "\"id\":\"'"$guarded"'\""' 50 || fail "$guarded is still there"
ok "control: OnCompromise=kill replaces and kills $guarded for the same violation (\"action\":\"kill\")"

# By now a wrong response to watched (contained at detection) would have shown.
[ "$(serving_id watched)" = "$watched" ] || fail "watched was replaced: $(mtdctl instances)"
[ "$(pid_of "$watched")" = "$watched_pid" ] || fail "watched's pid changed"
kill -0 "$watched_pid" 2>/dev/null || fail "watched's pid $watched_pid is gone"
grep -q '^State:.*[RS]' /proc/"$watched_pid"/status || fail "watched's pid 1 is not running: $(grep State /proc/"$watched_pid"/status)"
mtdctl audit show | grep -E ' instance-(contained|replace|killed|quarantined) ' | grep -q '"instance":"'"$watched"'"' &&
	fail "a response record names $watched"
assert_contains "$(get watched /)" "signed snapshot" "watched still serves its public port"
ok "OnCompromise=alert: $watched keeps serving, same id and pid $watched_pid, no response record"
[ "$(not_acted watched seccomp-violation)" = 1 ] || fail "status: seccomp-violation not acted on is $(not_acted watched seccomp-violation), not 1"
[ "$(not_acted watched drift)" -ge 1 ] || fail "status: no drift counted"
[ "$(not_acted watched egress)" = 1 ] || fail "status: egress not acted on is $(not_acted watched egress), not 1"
[ "$(not_acted guarded seccomp-violation)" = 0 ] || fail "status: guarded's violation counted as not acted on"
out=$(mtdctl status)
assert_contains "$out" "DETECTIONS NOT ACTED ON" "status has the table of detections not acted on"
echo "$out" | grep -Eq '^watched +alert +seccomp-violation 1, drift [0-9]+, egress 1$' ||
	fail "status: no 'watched alert seccomp-violation 1, drift N, egress 1' row in: $out"
echo "$out" | grep -Eq '^guarded +kill +none$' || fail "status: no 'guarded kill none' row in: $out"
ok "status counts the detections not acted on per service and kind"
stop_agent || fail "clean stop"

# --- mtd-agent --monitor: the kill service is in alert too --------------------------------
start_agent --monitor
wait_for '[ -n "$(serving_id watched)" ] && [ -n "$(serving_id guarded)" ]' 150 ||
	fail "no healthy instances under --monitor: $(mtdctl instances)"
[ "$(mtdctl audit show | grep ' agent-start ' | tail -n 1 | grep -c '"mode":"monitor"')" = 1 ] ||
	fail "the last agent-start does not say monitor"
ok "agent-start says \"mode\":\"monitor\""
assert_contains "$(mtdctl status)" "mode:     monitor (detections are audited and counted; nothing is killed, quarantined or blocked for them)" \
	"status says monitor mode"
guarded=$(serving_id guarded)
guarded_pid=$(pid_of "$guarded")
before=$(records seccomp-violation guarded alert)
assert_contains "$(get guarded /cgi-bin/mount)" "mounted" "under --monitor the violating call fails with EPERM and the CGI goes on"
wait_for '[ "$(records seccomp-violation guarded alert)" -gt '"$before"' ]' 50 ||
	fail "no seccomp-violation record with \"action\":\"alert\" for guarded under --monitor"
ok "under --monitor guarded's violation (OnSyscallViolation=kill) is audited with \"action\":\"alert\""
# A detection against the same instance again, then the operator's word (acts).
get guarded /cgi-bin/tamper >/dev/null
wait_for '[ "$(records drift guarded alert)" -ge 1 ]' 50 || fail "guarded's drift under --monitor is not audited as alert"
[ "$(serving_id guarded)" = "$guarded" ] || fail "--monitor replaced guarded: $(mtdctl instances)"
[ "$(pid_of "$guarded")" = "$guarded_pid" ] || fail "guarded's pid changed under --monitor"
grep -q '^State:.*[RS]' /proc/"$guarded_pid"/status || fail "guarded's pid 1 is not running under --monitor"
ok "--monitor: $guarded keeps serving, same id and pid $guarded_pid"
[ "$(not_acted guarded seccomp-violation)" = 1 ] || fail "status under --monitor: guarded's violation not counted"
[ "$(mtdctl --json status | jq -r '.mode')" = monitor ] || fail "status JSON: mode is not monitor"
echo "$(mtdctl status)" | grep -Eq '^guarded +alert +seccomp-violation 1, drift [0-9]+$' ||
	fail "status: no 'guarded alert ...' row under --monitor: $(mtdctl status)"
ok "status under --monitor shows guarded in alert with its counts"
mtdctl quarantine guarded --reason "operator under monitor" >/dev/null || fail "mtdctl quarantine under --monitor"
wait_for '[ -n "$(serving_id guarded)" ] && [ "$(serving_id guarded)" != "'"$guarded"'" ]' 150 ||
	fail "mtdctl quarantine did not replace guarded under --monitor"
wait_for 'json_instances | grep -o "\"id\":\"'"$guarded"'\"[^}]*" | grep -q quarantined' 50 ||
	fail "$guarded is not quarantined"
ok "under --monitor an operator's mtdctl quarantine still quarantines"

stop_agent || fail "clean stop"
out=$("$MTDCTL" audit verify --key "$WORK/state/audit-verify.key" "$WORK/log/audit.log") ||
	fail "audit verify: $out"
ok "the audit log verifies"
wait "$hung"
echo "$TEST_NAME: $CHECKS checks passed"
