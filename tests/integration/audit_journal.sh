#!/bin/bash
# The audit log's copy in the journal, and `mtdctl audit verify --journal`
# on it, without a booted systemd (tests/e2e/journal_remote.sh ships through
# a real journald, systemd-journal-upload and systemd-journal-remote):
#   - with --audit-journal SOCKET every record goes to that socket as one
#     datagram of journald's native protocol, with MTD_SEQ, MTD_EPOCH,
#     MTD_MAC, MTD_EVENT, MESSAGE_ID and the record as MTD_RECORD; status
#     counts the copies
#   - the datagrams, as a journal-remote would store them (Debian's
#     systemd-journal-remote imports them), verify with the verification key
#   - a dropped copy is a GAP, named by its seqs; entries that imitate the
#     agent's from another uid are ignored; two machines need --machine
#   - compared with the host's log: a tail deleted after shipping is
#     MISSING; a tail rewritten with the stolen key of the current epoch
#     verifies alone but is DIFFERENT from the shipped copy
#   - journald gone: copies are dropped and counted, the agent goes on
. "$(dirname "$0")/lib.bash"
enter_private_namespaces "$@"
make_work_dir

JR=${MTD_JOURNAL_REMOTE_DIR:-/var/cache/mtd-agent/journal-remote}
REMOTE=$JR/lib/systemd/systemd-journal-remote
[ -x "$REMOTE" ] || skip "no $REMOTE (make deps unpacks systemd-journal-remote)"
FORGE=$BUILD_DIR/tools/audit-forge
[ -x "$FORGE" ] || fail "build first: $FORGE"
command -v python3 >/dev/null || skip "no python3"
VKEY=$WORK/state/audit-verify.key
LOG=$WORK/log/audit.log
SOCK=$WORK/journal.sock
GRAMS=$WORK/datagrams

# A stand-in for journald's socket: every datagram, as received, to a file
# (length-prefixed), with the sender's uid from SCM_CREDENTIALS as journald
# takes it.
python3 - "$SOCK" "$GRAMS" <<'PY' &
import os, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
out = open(sys.argv[2], "ab", buffering=0)
while True:
    data, anc, _, _ = s.recvmsg(1 << 20, socket.CMSG_SPACE(12))
    uid = 0
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            _, uid, _ = struct.unpack("iII", payload[:12])
    out.write(struct.pack("<II", len(data), uid) + data)
PY
COLLECTOR=$!
trap 'kill $COLLECTOR 2>/dev/null; cleanup_work' EXIT
wait_for "[ -S '$SOCK' ]" 5 || fail "the stand-in journal socket did not appear"

# to_journal OUT MACHINE [SKIP_SEQ]: the datagrams as the journal export format
# (the trusted fields journald would add: _UID, _MACHINE_ID, _BOOT_ID), imported
# by systemd-journal-remote into the journal file OUT.
to_journal() {
	python3 - "$GRAMS" "$2" "${3:-0}" <<'PY' | LD_LIBRARY_PATH=$JR/usr/lib/x86_64-linux-gnu \
		"$REMOTE" --output="$1" - 2>"$WORK/remote.err" ||
import struct, sys, time
data = open(sys.argv[1], "rb").read()
machine, skip = sys.argv[2], int(sys.argv[3])
at, n = 0, 0
out = sys.stdout.buffer
while at < len(data):
    length, uid = struct.unpack("<II", data[at:at + 8])
    gram = data[at + 8:at + 8 + length]
    at += 8 + length
    if ("MTD_SEQ=%d\n" % skip).encode() in gram:
        continue
    n += 1
    t = int(time.time() * 1e6) + n
    out.write(b"__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n" % (t, n))
    out.write(b"_BOOT_ID=0123456789abcdef0123456789abcdef\n")
    out.write(b"_UID=%d\n_MACHINE_ID=%s\n" % (uid, machine.encode()))
    out.write(gram)
    out.write(b"\n")
PY
		{ cat "$WORK/remote.err" >&2; fail "systemd-journal-remote could not import"; }
}
MACHINE=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa

write_host_policy ssh 20000-20999 127.0.0.1:22
start_agent --audit-journal "$SOCK"
for _ in 1 2 3; do mtdctl reload >/dev/null || fail "reload"; done
status=$(mtdctl status)
assert_contains "$status" "journal copies:" "status shows the journal copies"
last=$(sed -n '$s/^{"seq":\([0-9]*\),.*/\1/p' "$LOG")
wait_for "[ \$(python3 -c 'import sys; d=open(sys.argv[1],\"rb\").read(); print(d.count(b\"MTD_RECORD=\"))' '$GRAMS') -ge $last ]" 5 ||
	fail "fewer than $last datagrams reached the socket"
ok "every record reached the journal socket ($last datagrams)"
grep -a -q "^MTD_SEQ=1$" "$GRAMS" && grep -a -q '^MTD_EPOCH=0$' "$GRAMS" &&
	grep -a -q '^MTD_MAC=[0-9a-f]\{64\}$' "$GRAMS" && grep -a -q '^MTD_EVENT=agent-start$' "$GRAMS" &&
	grep -a -q '^MESSAGE_ID=[0-9a-f]\{32\}$' "$GRAMS" && grep -a -q '^MTD_RECORD={"seq":1,' "$GRAMS" ||
	fail "a field is missing from the datagrams: $(head -c 600 "$GRAMS" | tr '\0' '.')"
ok "each copy carries MTD_SEQ, MTD_EPOCH, MTD_MAC, MTD_EVENT, MESSAGE_ID and MTD_RECORD"

to_journal "$WORK/shipped.journal" "$MACHINE"
out=$("$MTDCTL" audit verify --key "$VKEY" --journal "$WORK/shipped.journal" 2>&1) ||
	fail "the shipped copy does not verify: $out"
assert_contains "$out" "shipped: $last records (seq 1..$last) from machine $MACHINE" \
	"the copy imported by systemd-journal-remote verifies ($last records)"
out=$("$MTDCTL" audit verify --key "$VKEY" --journal "$WORK/shipped.journal" "$LOG" 2>&1) ||
	fail "the shipped copy and the local log do not agree: $out"
assert_contains "$out" "compare: $last record(s) the same in both" "compared with the local log: the same"

# A copy lost on the way.
gap=$((last - 1))
to_journal "$WORK/gap.journal" "$MACHINE" "$gap"
out=$("$MTDCTL" audit verify --key "$VKEY" --journal "$WORK/gap.journal" 2>&1) &&
	fail "a gap in the shipped copy verified: $out"
assert_contains "$out" "GAP: seq $gap..$gap missing" "a record missing from the shipped copy is reported as a gap"

# An unprivileged user's imitation of the agent's entries is not read.
python3 - "$SOCK" "$last" <<'PY' || fail "could not send the imitation"
import os, socket, struct, sys
# as uid 65534 (root may send any credentials; journald takes _UID from them)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
fake = '{"seq":%d,"forged":true}' % (int(sys.argv[2]) + 1)
body = ("SYSLOG_IDENTIFIER=mtd-agent\nMTD_SEQ=%d\nMTD_RECORD=%s\n" % (int(sys.argv[2]) + 1, fake)).encode()
creds = struct.pack("iII", os.getpid(), 65534, 65534)
s.sendmsg([body], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, creds)], 0, sys.argv[1])
PY
to_journal "$WORK/imitated.journal" "$MACHINE"
grep -a -q '"forged":true' "$WORK/imitated.journal" || fail "the imitation did not reach the journal file"
out=$("$MTDCTL" audit verify --key "$VKEY" --journal "$WORK/imitated.journal" 2>&1) ||
	fail "an imitation by uid 65534 spoiled the verification: $out"
ok "an entry sent by another uid that imitates the agent's is ignored"

# Two hosts in one collector's journal.
to_journal "$WORK/two.journal" "$MACHINE"
to_journal "$WORK/two.journal" bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
out=$("$MTDCTL" audit verify --key "$VKEY" --journal "$WORK/two.journal" 2>&1) &&
	fail "records of two machines verified without --machine"
assert_contains "$out" "choose one with --machine" "records of two machines need --machine"
out=$("$MTDCTL" audit verify --key "$VKEY" --journal "$WORK/two.journal" --machine "$MACHINE" 2>&1) ||
	fail "--machine $MACHINE: $out"
ok "--machine picks one host's records"

# The intruder deletes the local log's tail after it was shipped...
cp "$LOG" "$WORK/cut.log"
sed -i '$d' "$WORK/cut.log"
sed -i '$d' "$WORK/cut.log"
"$MTDCTL" audit verify --key "$VKEY" "$WORK/cut.log" >/dev/null ||
	fail "the cut log should verify alone (that is why it is compared)"
out=$("$MTDCTL" audit verify --key "$VKEY" --journal "$WORK/shipped.journal" "$WORK/cut.log" 2>&1) &&
	fail "a deleted tail went unnoticed: $out"
assert_contains "$out" "MISSING: the local log ends at seq $((last - 2)) but 2 shipped record(s) come after it (seq $((last - 1))..$last)" \
	"a local tail deleted after shipping is detected by the comparison"

# ... or rewrites it with the current epoch's key, stolen from the host.
mkdir -p "$WORK/stolen"
cp "$WORK/state/audit.key" "$WORK/stolen/audit.key"
"$FORGE" "$WORK/stolen" "$LOG" "$last" "$WORK/forged.log" >/dev/null || fail "audit-forge"
"$MTDCTL" audit verify --key "$VKEY" "$WORK/forged.log" >/dev/null ||
	fail "the rewrite with the current key should verify alone (the documented limit)"
out=$("$MTDCTL" audit verify --key "$VKEY" --journal "$WORK/shipped.journal" "$WORK/forged.log" 2>&1) &&
	fail "a rewritten tail went unnoticed: $out"
assert_contains "$out" "DIFFERENT: 1 record(s) differ from the shipped copy, the first seq $last" \
	"a local record rewritten with the stolen current key differs from the shipped copy"

# journald gone: the copies are dropped and counted, nothing else changes.
kill $COLLECTOR
wait $COLLECTOR 2>/dev/null
rm -f "$SOCK"
before=$(sed -n '$s/^{"seq":\([0-9]*\),.*/\1/p' "$LOG")
mtdctl reload >/dev/null || fail "reload without journald"
json=$(mtdctl --json status | tr -d ' \n')
dropped=$(echo "$json" | sed -n 's/.*"journal":{"sent":[0-9]*,"dropped":\([0-9]*\).*/\1/p')
[ "${dropped:-0}" -ge 2 ] || fail "status does not count the dropped copies: $json"
after=$(sed -n '$s/^{"seq":\([0-9]*\),.*/\1/p' "$LOG")
[ "$after" -gt "$before" ] || fail "the log stopped with the journal"
ok "journald gone: $dropped copies dropped and counted, the log goes on (seq $after)"
stop_agent || fail "the agent did not stop cleanly"
echo "PASS: audit_journal"
