#!/bin/bash
# The agent's spine on the real kernel: control socket with peer credentials,
# reload that keeps the old set on any error, audit trail, clean stop.
. "$(dirname "$0")/lib.bash"
enter_private_namespaces "$@"
make_work_dir

write_host_policy ssh 20000-20999 127.0.0.1:22
write_host_policy dns 21000-21999 '[::1]:53'
# Group "users" (gid 100) stands in for the mtd group, so the host's group
# database is not changed.
READ_GID=$(getent group users | cut -d: -f3)
[ -n "$READ_GID" ] || skip "no group 'users' to stand in for the read group"
NOBODY=65534

start_agent --read-group users

out=$(mtdctl status) || fail "status as root"
assert_contains "$out" "2 service(s)" "status as root lists the services"
assert_contains "$out" "20000-20999" "status shows the public port range"

out=$(mtdctl --json status) || fail "status --json"
assert_contains "$out" '"services"' "status --json is the agent's JSON"

out=$(mtdctl policy list) || fail "policy list"
assert_contains "$out" "dns" "policy list names dns"
assert_contains "$out" "ssh" "policy list names ssh"

out=$(mtdctl policy show ssh) || fail "policy show ssh"
assert_contains "$out" "127.0.0.1:22" "policy show gives the backend"
out=$(mtdctl policy show nosuch 2>&1) && fail "policy show of an unknown service succeeded"
assert_contains "$out" "no service named nosuch" "policy show of an unknown service fails"

# --- peer credentials decide -------------------------------------------------
out=$(as_user $NOBODY "$READ_GID" "$MTDCTL" --socket "$SOCKET" status) ||
	fail "read-only command as a read-group member"
assert_contains "$out" "2 service(s)" "a read-group member may read status"

out=$(as_user $NOBODY "$READ_GID" "$MTDCTL" --socket "$SOCKET" reload 2>&1)
rc=$?
[ $rc -eq 1 ] || fail "reload as non-root exited $rc, wanted 1"
assert_contains "$out" "permission denied: reload requires root" "reload is root-only"

out=$(as_user $NOBODY $NOBODY "$MTDCTL" --socket "$SOCKET" status 2>&1) &&
	fail "status as a user outside the read group succeeded"
assert_contains "$out" "ermission denied" "users outside the read group are refused (socket mode 0660)"

out=$(mtdctl audit show) || fail "audit show"
assert_contains "$out" "control-denied" "the denied reload is audited"
assert_contains "$out" "\"uid\":$NOBODY" "the audit record names the peer's uid"

# --- hostile messages do not hurt the agent ------------------------------------
if command -v python3 >/dev/null; then
	python3 - "$SOCKET" <<'PY' || fail "raw protocol checks"
import socket, sys, json
def ask(raw):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(sys.argv[1]); s.send(raw); r = json.loads(s.recv(262144)); s.close(); return r
for raw in [b"", b"not json", b"[1,2]", b'{"command":"halt"}', b'{"command":"status","x":1}',
            b"{" * 5000, b'{"command":"policy-show","name":"../../etc/passwd"}', b"\x00\xff" * 10]:
    if raw == b"":
        continue  # an empty SEQPACKET message reads as EOF; covered by the unit test
    r = ask(raw)
    assert r["ok"] is False and r["error"], (raw[:20], r)
assert ask(b'{"command":"status"}')["ok"] is True
print("  ok: malformed, oversized and unknown requests get an error reply")
PY
	kill -0 "$AGENT_PID" || fail "the agent died on hostile input"
fi

# --- reload: validated whole, applied atomically -------------------------------
cat >"$WORK/policies/broken.policy" <<'POLICY'
[Service]
Name=broken
Backend=127.0.0.1:80
Colour=blue

[Rotation]
PublicPorts=20500-21500
Interval=60s
KeyFile=/nonexistent/key
POLICY
out=$(mtdctl reload 2>&1)
rc=$?
[ $rc -eq 1 ] || fail "reload with a broken policy exited $rc, wanted 1"
assert_contains "$out" "broken.policy:4: Service.Colour:" "reload names file, line and key"
assert_contains "$out" "Rotation.KeyFile" "reload reports every error, not just the first"
assert_contains "$out" "previous set stays in force" "reload says the old set is kept"
out=$(mtdctl policy list) || fail "policy list after a refused reload"
case "$out" in *broken*) fail "a refused reload half-applied the new set" ;; esac
assert_contains "$out" "ssh" "the old set stays in force"

rm "$WORK/policies/broken.policy"
write_host_policy web 22000-22999 127.0.0.1:8080
out=$(mtdctl reload) || fail "reload with a valid set"
assert_contains "$out" "3 service(s)" "a valid reload applies"
assert_contains "$out" "added: web" "reload says what was added"

echo 'garbage' >"$WORK/policies/zz.policy"
kill -HUP "$AGENT_PID"
sleep 0.3
kill -0 "$AGENT_PID" || fail "the agent died on a SIGHUP reload with a broken policy"
out=$(mtdctl audit show) || fail "audit show"
assert_contains "$out" '"source":"signal"' "a SIGHUP reload is audited"
assert_contains "$out" "policy-reload-failed" "a failed reload is audited"
assert_contains "$out" '"command":"reload","uid":0' "mutating requests are audited with the peer"
rm "$WORK/policies/zz.policy"

out=$(mtdctl audit show --since 3) || fail "audit show --since"
case "$out" in *"     1  "* | *"     3  "*) fail "audit show --since 3 printed seq <= 3" ;; esac
ok "audit show --since skips earlier records"

# --- follow sees new records -----------------------------------------------------
"$MTDCTL" --socket "$SOCKET" audit show --follow --since 1000000 >"$WORK/follow.out" &
follower=$!
sleep 0.3
mtdctl reload >/dev/null || fail "reload while following"
sleep 0.3
kill "$follower" 2>/dev/null
wait "$follower" 2>/dev/null
assert_contains "$(cat "$WORK/follow.out")" "policy-reload" "audit show --follow streams new records"

# --- clean stop ------------------------------------------------------------------
stop_agent || fail "the agent did not exit 0 on SIGTERM"
ok "SIGTERM: clean exit"
[ -e "$SOCKET" ] && fail "the control socket is left behind"
ok "the control socket is removed on stop"

key=$WORK/state/audit-verify.key
[ -f "$key" ] || fail "no verification key at $key"
out=$("$MTDCTL" audit verify --key "$key" "$WORK/log/audit.log") || fail "audit verify: $out"
assert_contains "$out" "ok:" "the audit log verifies"

# --- an unclean stop is audited at the next start --------------------------------------
start_agent
kill -KILL "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null || true
AGENT_PID=""
start_agent
out=$(mtdctl audit show) || fail "audit show after restart"
assert_contains "$out" "unclean-restart" "a killed agent's next start audits an unclean restart"
stop_agent || fail "stop after restart"
out=$("$MTDCTL" audit verify --key "$key" "$WORK/log/audit.log") || fail "audit verify after restart: $out"
ok "the log still verifies after an unclean restart"

echo "$TEST_NAME: $CHECKS checks passed"
