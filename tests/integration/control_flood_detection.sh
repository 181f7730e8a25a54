#!/bin/bash
# Read-group members flood the control socket while an instance storms the
# agent with seccomp violations: detection must not wait for the flood. The
# instance's four threads call keyctl (ViolationSystemCalls=, answered EPERM
# under OnSyscallViolation=errno) as fast as the agent answers; each call
# blocks until the agent reads its notification, so if the flood kept the
# notification source from being dispatched the storm would make a handful of
# calls. Checks: the storm made at least 1000 calls, all answered; root's
# status answered meanwhile; the flood was refused for its rate.
. "$(dirname "$0")/lib.bash"
command -v cc >/dev/null || skip "cc is missing"
enter_private_namespaces "$@"
make_work_dir

ATTACK=$BUILD_DIR/tools/control-attack
[ -x "$ATTACK" ] || fail "build the test tools first: $ATTACK"
READ_GID=$(getent group users | cut -d: -f3)
[ -n "$READ_GID" ] || skip "no group 'users' to stand in for the read group"

make_probe_snapshot
write_probe_service storm 21000-21999 "/bin/probe storm 4 4" "[Service] User=probe" \
	"ViolationSystemCalls=keyctl" "OnSyscallViolation=errno"

start_agent --read-group users
# The flood starts as soon as the socket answers, before or just after the
# instance's storm begins, and outlasts it.
floods=()
for uid in 60001 60002 60003 60004 60005 60006; do
	setpriv --reuid=$uid --regid="$READ_GID" --groups="$READ_GID" --inh-caps=-all -- \
		"$ATTACK" flood "$SOCKET" '{"command":"status"}' 100000000 8 6 >"$WORK/flood.$uid" 2>&1 &
	floods+=($!)
done
answered=0
for _ in $(seq 1 40); do
	mtdctl status >/dev/null && answered=$((answered + 1))
	grep -q "storm_calls=" "$AGENT_LOG" && break
	sleep 0.1
done
wait_for "grep -q 'storm_calls=' '$AGENT_LOG'" 100 || fail "the storm did not end"
wait "${floods[@]}"
calls=$(sed -n 's/.*storm_calls=\([0-9]*\) storm_eperm=\([0-9]*\).*/\1/p' "$AGENT_LOG")
eperm=$(sed -n 's/.*storm_calls=\([0-9]*\) storm_eperm=\([0-9]*\).*/\2/p' "$AGENT_LOG")
sent=$(cat "$WORK"/flood.6000* | awk '{s += $2} END {print s + 0}')
rate=$(cat "$WORK"/flood.6000* | awk '{s += $10} END {print s + 0}')
[ "$rate" -gt 600 ] || fail "the flood was not one: $(head -n 3 "$WORK"/flood.6000* | tr "\n" " ")"
ok "six read-group uids flooded the socket over 48 connections: $sent requests, $rate refused for their rate"
[ "${calls:-0}" -ge 1000 ] || fail "the storm made only ${calls:-0} calls under the flood: detection waited for it"
[ "$calls" = "$eperm" ] || fail "$calls calls, $eperm answered EPERM"
ok "the instance's $calls violating calls were each answered (EPERM) during the flood"
[ "$answered" -ge 5 ] || fail "root's status answered $answered times"
ok "root's status answered $answered times meanwhile"
grep -q '"type":"seccomp-violation"' "$WORK/log/audit.log" || fail "the violation is not audited"
ok "the violation is audited"
stop_agent || fail "the agent did not stop cleanly"
echo "$TEST_NAME: $CHECKS checks passed"
