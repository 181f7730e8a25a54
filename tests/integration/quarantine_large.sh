#!/bin/bash
# A hostile instance makes its evidence expensive: 10,000 directories under
# /tmp (Writable=), then a write to /etc, which is drift: it is quarantined
# (tests/fixtures/probe dirs, static, in a real instance). The save copies
# the whole layer; it used to run in one callback of the agent's loop. Checks,
# on the agent's side: while the evidence is being saved (`instances` shows
# it "saving") root's `status` is answered (the slowest answer is printed,
# not asserted: timing belongs to benchmarks); the save completes with every
# directory in its MANIFEST; the entry verifies; the log verifies.
. "$(dirname "$0")/lib.bash"
command -v cc >/dev/null || skip "cc is missing"
enter_private_namespaces "$@"
make_work_dir
DIRS=${MTD_TEST_QUARANTINE_DIRS:-10000}

make_probe_snapshot
write_probe_service large 22000-22999 "/bin/probe dirs $DIRS 0" "[Service] OnCompromise=quarantine" \
	"[Service] ReplaceBurst=1" "[Rotation] AddressPool=10.217.0.0/24" "Writable=/tmp" \
	"WritableSize=512M"
"$MTDCTL" policy check "$WORK/policies" >/dev/null || fail "the test policy does not validate"

start_agent
seen_saving=0
answered_while_saving=0
slowest=0
for _ in $(seq 1 1200); do
	a=$(date +%s%N)
	instances=$(mtdctl --json instances 2>/dev/null | tr -d ' \n') || fail "root's instances request failed"
	mtdctl status >/dev/null || fail "root's status failed"
	b=$(date +%s%N)
	if echo "$instances" | grep -q '"evidence":"saving"'; then
		seen_saving=1
		answered_while_saving=$((answered_while_saving + 1))
		[ $(((b - a) / 1000000)) -gt "$slowest" ] && slowest=$(((b - a) / 1000000))
	fi
	echo "$instances" | grep -q '"evidence":"kept"' && break
	sleep 0.02
done
[ "$seen_saving" = 1 ] ||
	fail "the agent was never seen saving: the save ran on its loop, or did not start ($(mtdctl --json instances | tr -d ' \n' | head -c 600))"
echo "$instances" | grep -q '"evidence":"kept"' || fail "the save did not complete"
ok "the evidence of $DIRS directories was saved while the agent answered: status and instances $answered_while_saving times during the save, the slowest pair in $slowest ms"

victim=$(echo "$instances" | grep -o '"id":"large-[0-9]*"[^}]*"evidence":"kept"' | grep -o 'large-[0-9]*' | head -1)
[ -n "$victim" ] || fail "no kept instance in: $instances"
wait_for "mtdctl --json audit show | tr -d ' \n' | grep -q '\"type\":\"instance-quarantined\"'" 100 ||
	fail "no instance-quarantined record"
records=$(mtdctl --json audit show | tr -d ' \n')
echo "$records" | grep -q "\"kept\":\"$WORK/state/quarantine/$victim\"" ||
	fail "no record keeps $victim: $(echo "$records" | grep -o '"type":"instance-quarantined".\{0,400\}')"
echo "$records" | grep -q '"save_error":"' && fail "a save failed: $(echo "$records" | grep -o '"save_error".\{0,200\}')"
manifest_dirs=$(grep -c '^d .* upper/tmp/t/' "$WORK/state/quarantine/$victim/MANIFEST" 2>/dev/null || true)
[ "${manifest_dirs:-0}" -ge "$DIRS" ] ||
	fail "the MANIFEST lists ${manifest_dirs:-0} directories of $DIRS: $(head -3 "$WORK/state/quarantine/$victim/MANIFEST")"
mtdctl --json inspect "$victim" --verify | tr -d ' \n' | grep -q '"verified":true' ||
	fail "the kept evidence does not verify: $(mtdctl --json inspect "$victim" --verify | head -c 400)"
ok "$victim kept: $manifest_dirs directories in its MANIFEST, and it verifies"

stop_agent || fail "the agent did not stop cleanly"
"$MTDCTL" audit verify --key "$WORK/state/audit-verify.key" "$WORK/log/audit.log" >/dev/null ||
	fail "the audit log does not verify"
ok "the audit log verifies"
echo "$TEST_NAME: $CHECKS checks passed"
