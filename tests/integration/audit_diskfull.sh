#!/bin/bash
# The disk under the audit log fills up (a 1 MiB tmpfs this test mounts and
# fills): rotation and routing go on, mutating control commands are refused,
# detection and response go on and their records wait in the agent's bounded
# queue; seals fail and are retried. When space returns the queued records
# reach the log in order and chained, followed by an audit-records-lost record
# for what did not fit in the queue, and `mtdctl audit verify` passes.
. "$(dirname "$0")/lib.bash"
enter_private_namespaces "$@"
make_work_dir
NETPROBE=$BUILD_DIR/tools/netprobe
[ -x "$NETPROBE" ] || fail "build first: $NETPROBE"
command -v jq >/dev/null || skip "jq missing"
QUEUE=8
REFUSALS=12
LOG=$WORK/log/audit.log
VKEY=$WORK/state/audit-verify.key

setup_client_namespace
"$NETPROBE" echo-server 10.213.0.1 8022 &
ECHO=$!
# the tmpfs goes with the mount namespace anyway; unmounted here so the work
# directory can be removed
trap 'kill "$ECHO" 2>/dev/null; [ -n "$AGENT_PID" ] && kill -KILL "$AGENT_PID" 2>/dev/null; umount "$WORK/log" 2>/dev/null; cleanup_work' EXIT
mount -t tmpfs -o size=1m,mode=0755 mtd-test-audit "$WORK/log" || fail "mount a tmpfs for the log"

write_key "$WORK/keys/echo4.key"
cat >"$WORK/policies/echo4.policy" <<POLICY
[Service]
Name=echo4
Backend=10.213.0.1:8022

[Rotation]
PublicPorts=20000-20999
Interval=2s
Grace=500ms
KeyFile=$WORK/keys/echo4.key
Decoys=4
DecoyBlock=10min
POLICY
start_agent --audit-epoch 1 --audit-queue $QUEUE

st() { mtdctl --json status | jq -c "$@"; }
follow_once() {
	local got
	got=$(echo mtd-ping | in_client timeout 5 "$MTDCTL" connect echo4 --policy "$WORK/policies/echo4.policy" 10.213.0.1 2>&1)
	[ "$got" = "mtd-ping" ]
}
follow_once || fail "the client cannot reach echo4 before the disk fills"
[ "$(st '.audit.writable')" = true ] || fail "the log is not writable at the start"
last_before=$(st '.audit.last_seq')

# --- the disk fills ----------------------------------------------------------------
dd if=/dev/zero of="$WORK/log/filler" bs=4k 2>/dev/null
# the log's last page may still take a record or two: the next seals fill it
wait_for '[ "$(st .audit.writable)" = false ]' 300 || fail "the log stayed writable on a full disk"
ok "disk full: the agent reports the log as not writable ($(st -r '.audit.error'))"
switches_before=$(st '.rotation.table.bank_switches')
line_count_full=$(wc -l <"$LOG")

# detection and response: a decoy hit blocks the source (the agent blocks it
# once the honeypot completed the handshake, and records both)
decoy_hit() {
	local try line decoy until_usec
	for try in 1 2 3 4; do
		line=$(st '.rotation.services[0]')
		decoy=$(echo "$line" | jq '.decoys[0]')
		until_usec=$(echo "$line" | jq '.next_boundary_usec')
		in_client "$NETPROBE" connect 10.213.0.1 "$decoy" 1000 && return 0
		[ "$(date +%s%6N)" -ge "$until_usec" ] || fail "decoy port $decoy does not look open"
	done
	fail "no decoy touched before its epoch ended"
}
decoy_hit
wait_for '[ "$(st ".rotation.blocked | length")" -ge 1 ]' 100 || fail "the decoy hit was not handled"
follow_once && fail "a source that touched a decoy still reaches the service"
ok "on a full disk a decoy hit is still detected and its source blocked"

# mutating commands are refused; each refusal is an event that waits too.
# Queued so far: the decoy hit (two when a slow honeypot let the client's SYN
# be sent again and both were logged) and the block, which the counts below
# start from.
queued_before=$(st '.audit.queued')
[ "$queued_before" -ge 1 ] && [ "$queued_before" -lt "$QUEUE" ] ||
	fail "before the refusals $queued_before records are queued (want the decoy hit)"
kept=$((QUEUE - queued_before))
pids=""
for i in $(seq 1 $REFUSALS); do
	out=$(bash -c 'echo $$; exec "$0" --socket "$1" reload 2>&1' "$MTDCTL" "$SOCKET")
	rc=$?
	[ $rc -ne 0 ] || fail "reload $i was accepted on a full disk"
	case "$out" in *"refused: the audit log cannot be written"*) ;; *) fail "reload $i: $out" ;; esac
	pids="$pids $(echo "$out" | head -n 1)"
done
ok "$REFUSALS reloads refused: the audit log cannot be written"
queued=$(st '.audit.queued')
lost=$(st '.audit.lost_total')
echo "  while full: queued $queued, lost $lost (queue of $QUEUE)"
[ "$queued" -eq $QUEUE ] || fail "queue holds $queued, want $QUEUE"
[ "$lost" -eq $((queued_before + REFUSALS - QUEUE)) ] || fail "lost $lost, want $((queued_before + REFUSALS - QUEUE))"
assert_contains "$(mtdctl status)" "NOT WRITABLE" "mtdctl status says the log cannot be written"
[ "$(wc -l <"$LOG")" -eq "$line_count_full" ] || fail "records reached the full disk"

# rotation goes on
wait_for "[ \$(st '.rotation.table.bank_switches') -ge $((switches_before + 2)) ]" 100 ||
	fail "rotation stopped while the disk was full"
ok "rotation goes on: $(($(st '.rotation.table.bank_switches') - switches_before)) bank switches while the disk was full"
failures=$(st '.audit.seal_failures')
[ "$failures" -ge 1 ] || fail "no seal was attempted on the full disk"
ok "$failures seal attempts failed on the full disk (retried)"

# --- space returns ----------------------------------------------------------------
rm "$WORK/log/filler"
wait_for '[ "$(st .audit.writable)" = true ]' 300 || fail "the log did not become writable again"
ok "space returned: the log is written again"
echo "  after: queued $(st '.audit.queued'), queued in all $(st '.audit.queued_total'), lost in all $(st '.audit.lost_total'), seals $(st '.audit.seals'), seal failures $(st '.audit.seal_failures')"

# The records after the last one written before the disk filled, in order.
jq -c --argjson s "$last_before" 'select(.seq > $s and .type != "seal")' "$LOG" >"$WORK/after.jsonl"
types=$(jq -r '.type' "$WORK/after.jsonl" | tr '\n' ' ')
echo "  records after the disk filled (seals left out): $types"
first=$(jq -r 'select(.type == "decoy-hit" or .type == "source-blocked" or .type == "control-refused" or .type == "audit-records-lost") | .type' "$WORK/after.jsonl" | head -n $((QUEUE + 1)) | tr '\n' ' ')
detection=$(echo $first | cut -d' ' -f1-"$queued_before")
case " $detection " in *" source-blocked "*) ;; *) fail "the block is not among the first records: $first" ;; esac
[ -z "$(echo $detection | tr ' ' '\n' | grep -v -x -e decoy-hit -e source-blocked)" ] ||
	fail "queued records out of order: $first (want the decoy's records first)"
rest=$(echo $first | cut -d' ' -f$((queued_before + 1))-)
want="$(for i in $(seq 1 $kept); do printf 'control-refused '; done)audit-records-lost"
[ "$rest" = "$want" ] || fail "queued records out of order: $first (want $detection, then $want)"
ok "the decoy hit and the block, then $kept refusals, then the loss record reached the log in that order"
logged_pids=$(jq -r 'select(.type == "control-refused") | .fields.pid' "$WORK/after.jsonl" | tr '\n' ' ')
want_pids=$(echo $pids | cut -d' ' -f1-$kept)
[ "$(echo $logged_pids)" = "$want_pids" ] || fail "refusals logged for pids $logged_pids, made by $want_pids"
ok "the refusals kept are the first $kept, in the order they happened (pids $want_pids)"
hit=$(jq -c 'select(.type == "decoy-hit") | .fields' "$WORK/after.jsonl" | head -n 1)
[ "$(echo "$hit" | jq -r '.source')" = 10.213.0.2 ] || fail "the decoy-hit record lacks its source: $hit"
ok "the decoy hit is recorded with its source: $hit"
lost_rec=$(jq -c 'select(.type == "audit-records-lost") | .fields' "$WORK/after.jsonl")
echo "  $lost_rec"
[ "$(echo "$lost_rec" | jq '.count')" -eq $((queued_before + REFUSALS - QUEUE)) ] || fail "audit-records-lost: $lost_rec"
[ "$(echo "$lost_rec" | jq '.types["control-refused"]')" -eq $((queued_before + REFUSALS - QUEUE)) ] ||
	fail "audit-records-lost does not count the refusals: $lost_rec"
echo "$lost_rec" | jq -e '.first_realtime_usec <= .last_realtime_usec and .error == "No space left on device"' >/dev/null ||
	fail "audit-records-lost: time range or error: $lost_rec"
ok "audit-records-lost counts the $((queued_before + REFUSALS - QUEUE)) that did not fit, by type, with their time range"
jq -s -e '[.[].realtime_usec] as $t | all(range(1; $t | length); $t[.] >= $t[. - 1])' "$LOG" >/dev/null ||
	fail "realtime goes backwards in the log"
jq -s -e '[.[].seq] as $s | all(range(1; $s | length); $s[.] == $s[. - 1] + 1)' "$LOG" >/dev/null ||
	fail "seq is not consecutive"
ok "seq consecutive and times in order across the outage"

out=$("$MTDCTL" audit verify --key "$VKEY" "$LOG" 2>&1) || fail "the log does not verify after the outage: $out"
assert_contains "$out" "ok:" "the log verifies after the outage"
seal_epochs=$(jq -r 'select(.type == "seal") | .fields.epoch' "$LOG" | tr '\n' ' ')
want=0
for e in $seal_epochs; do
	[ "$e" -eq "$want" ] || fail "seal of epoch $e where $want was expected: $seal_epochs"
	want=$((want + 1))
done
ok "no epoch was skipped: seals of epochs 0..$((want - 1))"

mtdctl reload >/dev/null || fail "reload refused after space returned"
ok "mutating commands are accepted again"
stop_agent || fail "the agent did not stop cleanly"
out=$("$MTDCTL" audit verify --key "$VKEY" "$LOG" 2>&1) || fail "the log does not verify after stop: $out"
ok "the log verifies after a clean stop: $out"
echo "$TEST_NAME: $CHECKS checks passed"
