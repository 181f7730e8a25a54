#!/bin/bash
# End-to-end: the audit log leaves the host through engines teams already
# run. The installed mtd-agent unit under a real systemd (lib-systemd.bash)
# sends a copy of every audit record to the container's journald;
# Debian's systemd-journal-upload (inside) ships them to Debian's
# systemd-journal-remote, which runs in a network namespace of this test's
# (the collector, reached over a veth; nothing of the host's network is
# touched). On the collector's side:
#   - `mtdctl audit verify --journal` verifies the shipped records with the
#     verification key, and agrees with the host's log;
#   - an intruder's deletion of the local log's tail after shipping is found
#     by comparing the two (it verifies alone); so is an edited record
#     (tests/integration/audit_journal.sh: also one rewritten with the
#     stolen current key, which verifies alone);
#   - a record lost on the way is reported as a gap, by its seq.
#
# env: BUILD (build dir, default build), MTD_JOURNAL_REMOTE_DIR (where make
# deps unpacked systemd-journal-remote).
cd "$(dirname "$0")/../.." || exit 1
. tests/e2e/lib-systemd.bash

B=${BUILD:-build}
UNIT=mtd-agent.service
JR=${MTD_JOURNAL_REMOTE_DIR:-/var/cache/mtd-agent/journal-remote}
JR_LIBS=$JR/usr/lib/x86_64-linux-gnu
NS=mtd-jr-$$
PORT=19532

fail() {
	sd_log "FAIL: $*"
	if [ -n "$SD_PID" ]; then
		sd_in systemctl --no-pager status "$UNIT" systemd-journal-upload.service >&2 || true
		sd_in journalctl --no-pager -q -n 30 -u systemd-journal-upload.service >&2 || true
	fi
	[ -s "${SD_DIR:-/nonexistent}/remote.err" ] && tail -n 20 "$SD_DIR/remote.err" >&2
	exit 1
}
step() { sd_log "--- $*"; }

if [ ! -x "$B/mtd-agent" ] || [ ! -x "$B/mtdctl" ]; then
	sd_log "no $B/mtd-agent or $B/mtdctl (run make first)"
	exit 77
fi
[ -x "$JR/lib/systemd/systemd-journal-remote" ] || {
	sd_log "no $JR/lib/systemd/systemd-journal-remote (make deps unpacks it)"
	exit 77
}

sd_init
REMOTE_PID=
collector_teardown() {
	local rc=$?
	[ -n "$REMOTE_PID" ] && kill "$REMOTE_PID" 2>/dev/null && wait "$REMOTE_PID" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	(exit $rc)
	sd_teardown
}
trap collector_teardown EXIT

step "make install DESTDIR=..., systemd-journal-upload from Debian's package"
make --no-print-directory -s install BUILD="$B" DESTDIR="$SD_STAGE" >"$SD_DIR/install.log" 2>&1 ||
	{ cat "$SD_DIR/install.log" >&2; fail "make install"; }
# As the package installs it (/lib is /usr/lib here: the staging tree must
# not shadow that link with a directory).
install -D -m 0755 "$JR/lib/systemd/systemd-journal-upload" \
	"$SD_STAGE/usr/lib/systemd/systemd-journal-upload"
install -D -m 0644 "$JR/lib/systemd/system/systemd-journal-upload.service" \
	"$SD_STAGE/usr/lib/systemd/system/systemd-journal-upload.service"
cp -a "$JR_LIBS"/libmicrohttpd.so* "$SD_STAGE/usr/lib/x86_64-linux-gnu/" 2>/dev/null ||
	{ mkdir -p "$SD_STAGE/usr/lib/x86_64-linux-gnu" && cp -a "$JR_LIBS"/libmicrohttpd.so* "$SD_STAGE/usr/lib/x86_64-linux-gnu/"; }
mkdir -p "$SD_STAGE/etc/systemd"
cat >"$SD_STAGE/etc/systemd/journal-upload.conf" <<EOF
[Upload]
URL=http://10.231.0.1:$PORT
EOF

mkdir -p -m 0755 "$SD_STAGE/etc/mtd/policies"
mkdir -p -m 0700 "$SD_STAGE/etc/mtd/keys"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$SD_STAGE/etc/mtd/keys/e2e.key"
echo >>"$SD_STAGE/etc/mtd/keys/e2e.key"
chmod 0600 "$SD_STAGE/etc/mtd/keys/e2e.key"
cat >"$SD_STAGE/etc/mtd/policies/e2e.policy" <<EOF
[Service]
Name=e2e
Backend=127.0.0.1:8080

[Rotation]
PublicPorts=20000-20999
Interval=60s
KeyFile=/etc/mtd/keys/e2e.key
EOF

step "boot systemd"
sd_boot 60 || fail "boot"

step "the collector: systemd-journal-remote in namespace $NS, a veth to the container"
ip netns add "$NS" || fail "ip netns add"
ip -n "$NS" link add jr0 type veth peer name jr1 netns "$SD_PID" || fail "veth"
ip -n "$NS" addr add 10.231.0.1/24 dev jr0
ip -n "$NS" link set jr0 up
ip -n "$NS" link set lo up
sd_in ip addr add 10.231.0.2/24 dev jr1
sd_in ip link set jr1 up
sd_in ip link set lo up
mkdir -p "$SD_DIR/remote"
ip netns exec "$NS" env LD_LIBRARY_PATH="$JR_LIBS" "$JR/lib/systemd/systemd-journal-remote" \
	--listen-http="10.231.0.1:$PORT" --output="$SD_DIR/remote/" 2>"$SD_DIR/remote.err" &
REMOTE_PID=$!
for _ in $(seq 1 50); do
	ip netns exec "$NS" ss -Htln "sport = :$PORT" | grep -q . && break
	sleep 0.1
done
ip netns exec "$NS" ss -Htln "sport = :$PORT" | grep -q . || fail "systemd-journal-remote is not listening"

step "the agent runs; its records go to the journal and are shipped"
sd_in systemctl start "$UNIT" || fail "start $UNIT"
for _ in 1 2 3; do sd_in mtdctl reload >/dev/null || fail "mtdctl reload"; done
sd_in mtdctl status | grep -q "journal copies: [1-9][0-9]* sent, 0 dropped" ||
	fail "status shows no journal copies: $(sd_in mtdctl status | grep -A1 '^audit:')"
sd_in journalctl -q -o json SYSLOG_IDENTIFIER=mtd-agent | grep -q '"MTD_MAC"' ||
	fail "no MTD_MAC= in the container's journal"
sd_in systemctl start systemd-journal-upload.service || fail "start systemd-journal-upload"

sd_in cat /var/lib/mtd/audit-verify.key >"$SD_DIR/verify.key" || fail "no verification key"
chmod 0600 "$SD_DIR/verify.key"
local_last() { sd_in sed -n '$s/^{"seq":\([0-9]*\),.*/\1/p' /var/log/mtd/audit.log; }
shipped_last() {
	"$B/mtdctl" --json audit verify --key "$SD_DIR/verify.key" --journal "$SD_DIR/remote" 2>/dev/null |
		tr -d ' \n' | sed -n 's/.*"shipped":{[^}]*"last_seq":\([0-9]*\).*/\1/p'
}
wait_shipped() { # wait_shipped SEQ: until the collector has records up to SEQ
	local i
	for i in $(seq 1 150); do
		[ "$(shipped_last)" = "$1" ] && return 0
		sleep 0.2
	done
	return 1
}
last=$(local_last)
wait_shipped "$last" || fail "the collector did not receive up to seq $last (has $(shipped_last))"

step "verified on the collector, and the same as the host's log"
out=$("$B/mtdctl" audit verify --key "$SD_DIR/verify.key" --journal "$SD_DIR/remote" 2>&1) ||
	fail "the shipped records do not verify: $out"
sd_log "$out"
echo "$out" | grep -q "shipped: $last records (seq 1..$last)" || fail "not $last records: $out"
sd_in cat /var/log/mtd/audit.log >"$SD_DIR/local.log"
out=$("$B/mtdctl" audit verify --key "$SD_DIR/verify.key" --journal "$SD_DIR/remote" "$SD_DIR/local.log" 2>&1) ||
	fail "the shipped copy and the host's log disagree: $out"
echo "$out" | grep -q "compare: $last record(s) the same in both" || fail "not the same: $out"

step "an intruder cuts the host's log after shipping"
sd_in systemctl stop "$UNIT" || fail "stop"
last=$(local_last)
wait_shipped "$last" || fail "the stop's records did not reach the collector"
sd_in cat /var/log/mtd/audit.log >"$SD_DIR/stopped.log"
sd_in sed -i '$d' /var/log/mtd/audit.log
sd_in sed -i '$d' /var/log/mtd/audit.log
sd_in sed -i '$d' /var/log/mtd/audit.log
sd_in cat /var/log/mtd/audit.log >"$SD_DIR/cut.log"
"$B/mtdctl" audit verify --key "$SD_DIR/verify.key" "$SD_DIR/cut.log" >/dev/null ||
	fail "the cut log should verify alone"
out=$("$B/mtdctl" audit verify --key "$SD_DIR/verify.key" --journal "$SD_DIR/remote" "$SD_DIR/cut.log" 2>&1) &&
	fail "the deleted tail went unnoticed: $out"
sd_log "$out"
echo "$out" | grep -q "MISSING: the local log ends at seq $((last - 3)) but 3 shipped record(s) come after it (seq $((last - 2))..$last)" ||
	fail "the comparison does not name the deleted records: $out"

step "an intruder edits the host's log after shipping"
cp "$SD_DIR/stopped.log" "$SD_DIR/edited.log"
edit_seq=$((last - 5))
# a well-formed change (a MAC no longer matches it; the comparison names it)
sed -i "/^{\"seq\":$edit_seq,/s/\"monotonic_usec\":\([0-9]*\)/\"monotonic_usec\":\10/" "$SD_DIR/edited.log"
cmp -s "$SD_DIR/edited.log" "$SD_DIR/stopped.log" && fail "the edit changed nothing"
out=$("$B/mtdctl" audit verify --key "$SD_DIR/verify.key" --journal "$SD_DIR/remote" "$SD_DIR/edited.log" 2>&1) &&
	fail "the edited record went unnoticed: $out"
sd_log "$out"
echo "$out" | grep -q "DIFFERENT: 1 record(s) differ from the shipped copy, the first seq $edit_seq" ||
	fail "the comparison does not name the edited record: $out"

step "a record lost on the way is a gap"
gap=$((last / 2))
journalctl -D "$SD_DIR/remote" -o export |
	awk -v drop="MTD_SEQ=$gap" 'BEGIN { RS = ""; ORS = "\n\n" } { if (index($0, "\n" drop "\n") == 0) print }' |
	LD_LIBRARY_PATH="$JR_LIBS" "$JR/lib/systemd/systemd-journal-remote" --output="$SD_DIR/gap.journal" - \
		2>>"$SD_DIR/remote.err" || fail "re-import without seq $gap"
out=$("$B/mtdctl" audit verify --key "$SD_DIR/verify.key" --journal "$SD_DIR/gap.journal" 2>&1) &&
	fail "a gap verified: $out"
sd_log "$out"
echo "$out" | grep -q "GAP: seq $gap..$gap missing" || fail "the gap is not named: $out"
sd_log "journal-remote ok"
