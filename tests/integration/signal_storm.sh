#!/bin/bash
# A hostile instance storms the agent with signals. Four threads of a real
# instance (tests/fixtures/probe storm, static) call keyctl, a listed
# violation (ViolationSystemCalls=), as fast as they can for 4 s under
# OnSyscallViolation=errno, so the instance is not replaced and the storm
# goes on. Checks, on the agent's side: every call is answered (EPERM), so
# the storm really ran at full rate; root's `mtdctl status` keeps answering
# during it; the audit log gets the first violation with its evidence and
# then one signals-counted record a second with the count and that
# interval's first evidence, not one record a call: the counts add up to the
# calls made; the log verifies.
. "$(dirname "$0")/lib.bash"
command -v cc >/dev/null || skip "cc is missing"
enter_private_namespaces "$@"
make_work_dir

make_probe_snapshot
write_probe_service storm 21000-21999 "/bin/probe storm 4 4" "[Service] User=probe" \
	"ViolationSystemCalls=keyctl" "OnSyscallViolation=errno"
"$MTDCTL" policy check "$WORK/policies" >/dev/null || fail "the test policy does not validate"

start_agent
answered=0
for _ in $(seq 1 40); do
	mtdctl status >/dev/null && answered=$((answered + 1))
	grep -q "storm_calls=" "$AGENT_LOG" && break
	sleep 0.1
done
wait_for "grep -q 'storm_calls=' '$AGENT_LOG'" 100 || fail "the storm did not end"
calls=$(sed -n 's/.*storm_calls=\([0-9]*\) storm_eperm=\([0-9]*\).*/\1/p' "$AGENT_LOG")
eperm=$(sed -n 's/.*storm_calls=\([0-9]*\) storm_eperm=\([0-9]*\).*/\2/p' "$AGENT_LOG")
[ "${calls:-0}" -ge 1000 ] || fail "the storm made only ${calls:-0} calls"
[ "$calls" = "$eperm" ] || fail "$calls calls, $eperm answered EPERM"
[ "$answered" -ge 10 ] || fail "root's status answered $answered times during the storm"
ok "4 threads made $calls violating calls in 4 s, each answered EPERM; root's status answered $answered times meanwhile"

stop_agent || fail "the agent did not stop cleanly"
log=$("$MTDCTL" audit verify --key "$WORK/state/audit-verify.key" "$WORK/log/audit.log") ||
	fail "the audit log does not verify: $log"
records=$(grep -c . "$WORK/log/audit.log")
violations=$(grep -c '"type":"seccomp-violation"' "$WORK/log/audit.log")
summaries=$(grep -c '"type":"signals-counted"' "$WORK/log/audit.log")
counted=$(grep '"type":"signals-counted"' "$WORK/log/audit.log" | sed -n 's/.*"count":\([0-9]*\).*/\1/p' |
	awk '{s += $1} END {print s + 0}')
[ "$violations" -eq 1 ] || fail "$violations seccomp-violation records, expected the first only"
[ "$summaries" -ge 1 ] && [ "$summaries" -le 8 ] || fail "$summaries signals-counted records for a 4 s storm"
[ $((counted + 1)) -eq "$calls" ] || fail "the counts add up to $((counted + 1)), the calls to $calls"
grep '"type":"signals-counted"' "$WORK/log/audit.log" | head -n 1 | grep -q '"first_evidence":{"syscall":"keyctl"' ||
	fail "a summary lacks the interval's first evidence"
ok "$calls violations became 1 seccomp-violation and $summaries signals-counted record(s) ($records records in all); the counts add up"
echo "$TEST_NAME: $CHECKS checks passed"
