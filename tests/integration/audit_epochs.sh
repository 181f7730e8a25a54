#!/bin/bash
# Forward security that evolves: with --audit-epoch 1 the agent seals every
# epoch for as long as it runs, audit.key moves on each time, and a copy of
# audit.key stolen at epoch k cannot rewrite a record of an earlier epoch
# without `mtdctl audit verify` naming it. The same rewrite of a record of
# epoch k or later verifies: that is the documented limit.
. "$(dirname "$0")/lib.bash"
enter_private_namespaces "$@"
make_work_dir

FORGE=$BUILD_DIR/tools/audit-forge
[ -x "$FORGE" ] || fail "build first: $FORGE"
EPOCHS=${MTD_TEST_AUDIT_EPOCHS:-6}
KEY=$WORK/state/audit.key
VKEY=$WORK/state/audit-verify.key
LOG=$WORK/log/audit.log

write_host_policy ssh 20000-20999 127.0.0.1:22
start_agent --audit-epoch 1

key_epoch() { sed -n 's/^{"version":1,"epoch":\([0-9]*\),.*/\1/p' "$1"; }
status_epoch() { mtdctl --json status | tr -d ' \n' | sed -n 's/.*"audit":{[^}]*"epoch":\([0-9]*\).*/\1/p'; }

# a record in the first epochs (the one the thief will try to rewrite)
mtdctl reload >/dev/null || fail "reload"
early_seq=$(grep '"type":"policy-reload"' "$LOG" | head -n 1 | sed 's/^{"seq":\([0-9]*\),.*/\1/')
early_epoch=$(grep '"type":"policy-reload"' "$LOG" | head -n 1 | sed 's/.*"epoch":\([0-9]*\),.*/\1/')
[ -n "$early_seq" ] || fail "no policy-reload record"

# Watch audit.key while the agent runs; steal a copy once it is two epochs
# past that record.
seen=" "
stolen=""
target_epoch=$((early_epoch + 2))
watch_key() {
	local e
	e=$(key_epoch "$KEY")
	[ -n "$e" ] || return 1
	case "$seen" in *" $e "*) ;; *) seen="$seen$e " ;; esac
	if [ -z "$stolen" ] && [ "$e" -ge "$target_epoch" ]; then
		mkdir -p "$WORK/stolen"
		cp "$KEY" "$WORK/stolen/audit.key"
		stolen=$(key_epoch "$WORK/stolen/audit.key")
	fi
	[ "$e" -ge "$1" ]
}
wait_for "watch_key $target_epoch" 600 || fail "audit.key did not reach epoch $target_epoch (seen:$seen)"
[ -n "$stolen" ] || fail "no copy of audit.key"
ok "audit.key stolen at epoch $stolen (the policy-reload record seq $early_seq is in epoch $early_epoch)"

# a record after the theft
mtdctl reload >/dev/null || fail "second reload"
late_seq=$(grep '"type":"policy-reload"' "$LOG" | tail -n 1 | sed 's/^{"seq":\([0-9]*\),.*/\1/')
late_epoch=$(grep '"type":"policy-reload"' "$LOG" | tail -n 1 | sed 's/.*"epoch":\([0-9]*\),.*/\1/')
[ "$late_epoch" -ge "$stolen" ] || fail "the second reload is in epoch $late_epoch, before $stolen"

wait_for "watch_key $EPOCHS" 1200 || fail "audit.key did not reach epoch $EPOCHS (seen:$seen)"
running_epoch=$(status_epoch)
[ "${running_epoch:-0}" -ge "$EPOCHS" ] || fail "status says key epoch ${running_epoch:-?}"
ok "status reports key epoch $running_epoch while running"
stop_agent || fail "the agent did not stop cleanly"

# --- one seal per epoch, the key moving on -----------------------------------------
seals=$(grep -c '"type":"seal"' "$LOG")
final=$(key_epoch "$KEY")
seal_epochs=$(grep '"type":"seal"' "$LOG" | sed 's/.*"fields":{"epoch":\([0-9]*\),.*/\1/' | tr '\n' ' ')
echo "  seals: $seals; sealed epochs: $seal_epochs; key epochs seen:$seen; audit.key now at $final"
[ "$seals" -ge 5 ] || fail "only $seals seal(s) in $EPOCHS+ epochs"
ok "$seals seals over $EPOCHS+ one-second epochs (the clean stop adds one)"
want=0
for e in $seal_epochs; do
	[ "$e" -eq "$want" ] || fail "seal of epoch $e where $want was expected: $seal_epochs"
	want=$((want + 1))
done
ok "every epoch 0..$((want - 1)) is sealed once, in order"
[ "$final" -eq "$seals" ] || fail "audit.key at epoch $final after $seals seals"
n_seen=$(echo $seen | wc -w)
[ "$n_seen" -ge 4 ] || fail "audit.key was seen at only $n_seen epochs:$seen"
ok "audit.key evolved while running (epochs seen:$seen) and ends at epoch $final"
grep -q "$(sed 's/.*"key":"\([0-9a-f]*\)".*/\1/' "$WORK/stolen/audit.key")" "$KEY" &&
	fail "audit.key still holds the key of epoch $stolen"
ls -a "$WORK/state" | grep -q '^\.audit\.key\.' && fail "a temporary key file is left in the state dir"
ok "the stolen epoch's key is gone from audit.key, no temporary key file left"

out=$("$MTDCTL" audit verify --key "$VKEY" "$LOG" 2>&1) || fail "the log does not verify: $out"
assert_contains "$out" "ok:" "the untouched log verifies"

# --- the thief rewrites history ---------------------------------------------------
"$FORGE" "$WORK/stolen" "$LOG" "$early_seq" "$WORK/forged-early.log" >/dev/null ||
	fail "audit-forge (early)"
grep -q '"forged":true' "$WORK/forged-early.log" || fail "the forgery did not change the record"
out=$("$MTDCTL" audit verify --key "$VKEY" "$WORK/forged-early.log" 2>&1) &&
	fail "a record of epoch $early_epoch rewritten with the key of epoch $stolen verified: $out"
echo "  forgery of seq $early_seq (epoch $early_epoch) with the key of epoch $stolen: $out"
assert_contains "$out" "seq $early_seq: MAC mismatch at seq $early_seq" \
	"verify rejects the rewrite of an epoch before the theft and names its seq"

"$FORGE" "$WORK/stolen" "$LOG" "$late_seq" "$WORK/forged-late.log" >/dev/null ||
	fail "audit-forge (late)"
grep -q '"forged":true' "$WORK/forged-late.log" || fail "the late forgery did not change the record"
cmp -s "$LOG" "$WORK/forged-late.log" && fail "the late forgery is the original"
out=$("$MTDCTL" audit verify --key "$VKEY" "$WORK/forged-late.log" 2>&1) ||
	fail "the rewrite of epoch $late_epoch with the key of epoch $stolen was expected to verify (the documented limit): $out"
echo "  forgery of seq $late_seq (epoch $late_epoch) with the key of epoch $stolen: $out"
ok "the same rewrite of a record of epoch $late_epoch >= $stolen verifies: the limit (docs/audit-log.md)"

echo "$TEST_NAME: $CHECKS checks passed"
