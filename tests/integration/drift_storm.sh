#!/bin/bash
# A hostile instance storms the drift watch: 16,000 directories under /tmp
# (Writable=), their tree renamed 40 times (each rename used to re-walk all of
# it in one callback of the agent's loop), then one write to /etc
# (tests/fixtures/probe dirs, static, in a real instance). Checks, on the
# agent's side: root's `mtdctl status` answers all along (the slowest answer
# is printed, not asserted: timing belongs to benchmarks); the write to /etc
# after the storm is still detected, with its path; one drift record, then
# at most one signals-counted record a second; the log verifies.
. "$(dirname "$0")/lib.bash"
command -v cc >/dev/null || skip "cc is missing"
enter_private_namespaces "$@"
make_work_dir

make_probe_snapshot
# OnCompromise=kill: a quarantine would copy the 16,000 directories, and this
# test is about the watch; ReplaceBurst=1: one storm is enough
write_probe_service dirs 22000-22999 "/bin/probe dirs 16000 40" "[Service] OnCompromise=kill" \
	"[Service] ReplaceBurst=1" "[Rotation] AddressPool=10.216.0.0/24" "Writable=/tmp" \
	"WritableSize=256M"
"$MTDCTL" policy check "$WORK/policies" >/dev/null || fail "the test policy does not validate"

start_agent
answered=0
slowest=0
for _ in $(seq 1 300); do
	a=$(date +%s%N)
	mtdctl status >/dev/null || fail "root's status failed during the drift storm"
	b=$(date +%s%N)
	answered=$((answered + 1))
	[ $(((b - a) / 1000000)) -gt "$slowest" ] && slowest=$(((b - a) / 1000000))
	grep -q 'dirs_done=1' "$AGENT_LOG" && mtdctl audit show | grep -q '/etc/after-storm' && break
	sleep 0.05
done
grep -q 'dirs_done=1 after_storm=0' "$AGENT_LOG" ||
	fail "the storm did not run to its write: $(grep dirs_done "$AGENT_LOG")"
wait_for 'mtdctl audit show | grep "\"type\":\"drift\"\|  drift " | grep -q "/etc/after-storm"' 100 ||
	wait_for 'mtdctl audit show | grep -q "\"path\":\"/etc/after-storm\""' 50 ||
	fail "the write to /etc after the storm was not detected: $(mtdctl audit show | tail -n 5)"
ok "16,000 directories, 40 renames of their tree, then a write to /etc: detected with its path; root's status answered $answered times, the slowest in $slowest ms"

stop_agent || fail "the agent did not stop cleanly"
"$MTDCTL" audit verify --key "$WORK/state/audit-verify.key" "$WORK/log/audit.log" >/dev/null ||
	fail "the audit log does not verify"
drifts=$(grep -c '"type":"drift"' "$WORK/log/audit.log")
[ "$drifts" -le 3 ] || fail "$drifts drift records: one per instance expected"
ok "$drifts drift record(s) for the storm; the log verifies"
echo "$TEST_NAME: $CHECKS checks passed"
