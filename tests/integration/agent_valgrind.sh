#!/bin/bash
# The daemon's paths under valgrind: start, every control command, a refused
# and an accepted reload, a SIGHUP reload, hostile requests, clean stop — no
# memory errors and no leaks (every audit record also sent as a journal
# copy to a stand-in socket). It starts by adopting a table a previous run
# left, whose blocked sources it carries over. A fleet's ranges go through
# shared-blocks (cut around NeverBlock=, again at a reload that changes it).
. "$(dirname "$0")/lib.bash"
command -v valgrind >/dev/null || skip "valgrind is not installed"
[ -z "${MTD_TEST_SANITIZED:-}" ] || skip "the agent is built with sanitizers, which valgrind cannot run"
enter_private_namespaces "$@"
make_work_dir

write_host_policy ssh 20000-20999 127.0.0.1:22
write_host_policy dns 21000-21999 '[::1]:53'
# decoys: a spoofed SYN, a completed handshake (blocked), NeverBlock=, unblock
write_host_policy trap 23000-23099 10.213.0.1:8022
printf 'Decoys=4\nDecoyBlock=1min\nNeverBlock=10.213.0.4\n' >>"$WORK/policies/trap.policy"
printf '[Decoys]\nNeverBlock=192.0.2.0/24\nUDPBlockLimit=4/1min\n' >"$WORK/mtd.conf"
setup_client_namespace

REAL_AGENT=$AGENT
VG_LOG=$WORK/valgrind.log
# start_agent runs $AGENT: point it at valgrind with the real agent as argument.
cat >"$WORK/agent-under-valgrind" <<SCRIPT
#!/bin/sh
exec valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect \
	--errors-for-leak-kinds=definite,indirect --track-fds=no --log-file="$VG_LOG" \
	"$REAL_AGENT" "\$@"
SCRIPT
chmod +x "$WORK/agent-under-valgrind"
AGENT=$WORK/agent-under-valgrind
nft -f - <<'NFT' || fail "the table of a previous run"
table inet mtd {
	set blocked4 { type ipv4_addr; flags dynamic,timeout; elements = { 192.0.2.9 timeout 5m } }
	set blocked6 { type ipv6_addr; flags dynamic,timeout; elements = { 2001:db8::9 timeout 5m } }
}
NFT
# the journal copies of the audit records: a stand-in journald socket
python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
while True: s.recv(1 << 20)' "$WORK/journal.sock" &
JOURNAL_READER=$!
trap 'kill $JOURNAL_READER 2>/dev/null; cleanup_work' EXIT
wait_for "[ -S '$WORK/journal.sock' ]" 5 || fail "the stand-in journal socket did not appear"
start_agent --config "$WORK/mtd.conf" --audit-journal "$WORK/journal.sock"
status=$(mtdctl status) || fail "status"
assert_contains "$status" "journal copies: " "the audit records' journal copies are sent"
assert_contains "$status" "192.0.2.9" "the adopted table's blocked IPv4 source is shown"
assert_contains "$status" "2001:db8::9" "the adopted table's blocked IPv6 source is shown"
nft list set inet mtd blocked6 | grep -q '2001:db8::9 timeout' || fail "the blocked IPv6 source was not carried over"

mtdctl status >/dev/null || fail "status"
mtdctl --json status >/dev/null || fail "status --json"
mtdctl policy list >/dev/null || fail "policy list"
mtdctl policy show ssh >/dev/null || fail "policy show"
mtdctl policy show nosuch >/dev/null 2>&1 && fail "policy show nosuch succeeded"
printf '[Service]\nName=x\nBogus=1\n' >"$WORK/policies/x.policy"
mtdctl reload >/dev/null 2>&1 && fail "a broken reload succeeded"
kill -HUP "$AGENT_PID"
sleep 1
rm "$WORK/policies/x.policy"
# a fleet's ranges (shared-blocks, root may send it): one cut around NeverBlock=
# 192.0.2.0/24, an overlapping pair, an unban; the reload below cuts them again
shared() { python3 - "$SOCKET" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1]); s.send(sys.argv[2].encode()); print(s.recv(65536).decode())
PY
}
out=$(shared '{"command":"shared-blocks","ban":[{"address":"192.0.2.0/23","seconds":600},{"address":"198.51.100.0/24","seconds":600},{"address":"198.51.100.0/25","seconds":900},{"address":"2001:db8:5::/48","seconds":600},{"address":"192.0.2.128/25","seconds":600}],"unban":["203.0.113.0/24"]}')
# 192.0.2.0/23 is cut (never_block and blocked), 192.0.2.128/25 is all NeverBlock= (never_block only)
assert_contains "$out" '"never_block":2,' "a range inside NeverBlock= is not blocked: $out"
assert_contains "$out" '"ranges_blocked":4' "shared-blocks with ranges under valgrind: $out"
out=$(shared '{"command":"shared-blocks","unban":["198.51.100.0/24"]}')
assert_contains "$out" '"ranges_unblocked":1' "a range's unban under valgrind: $out"
ranges=$(nft list set inet mtd ranges4)
assert_contains "$ranges" "192.0.3.0/24 timeout" "the range cut around NeverBlock=192.0.2.0/24"
assert_contains "$ranges" "198.51.100.0/25 timeout" "the overlapping range left after the unban"
nft get element inet mtd ranges4 '{ 192.0.2.200 }' >/dev/null 2>&1 && fail "a NeverBlock= address is in ranges4: $ranges"
write_host_policy web 22000-22999 127.0.0.1:8080
# a reload that adds a NeverBlock= address inside a range in force cuts it out
printf '[Decoys]\nNeverBlock=192.0.2.0/24 198.51.100.7\nUDPBlockLimit=4/1min\n' >"$WORK/mtd.conf"
mtdctl reload >/dev/null || fail "reload"
nft get element inet mtd ranges4 '{ 198.51.100.7 }' >/dev/null 2>&1 &&
	fail "the reload's new NeverBlock=198.51.100.7 is still in ranges4: $(nft list set inet mtd ranges4)"
nft get element inet mtd ranges4 '{ 198.51.100.8 }' >/dev/null 2>&1 ||
	fail "the reload unblocked the rest of 198.51.100.0/25: $(nft list set inet mtd ranges4)"
ok "a reload that changes NeverBlock= cuts the ranges in force around it"
mtdctl audit show >/dev/null || fail "audit show"
decoy=$(mtdctl --json status | tr -d ' \n' | sed -n 's/.*"name":"trap",[^]]*"decoys":\[\([0-9]*\).*/\1/p')
[ -n "$decoy" ] || fail "no decoy of trap in status"
in_client "$BUILD_DIR/tools/spoof-packet" tcp 10.213.0.77 40000 10.213.0.1 "$decoy" 2 ||
	fail "spoof-packet"
in_client "$BUILD_DIR/tools/netprobe" connect 10.213.0.1 "$decoy" 3000 ||
	fail "the decoy does not complete a handshake under valgrind"
wait_for 'nft list set inet mtd blocked4 | grep -q "10.213.0.2 timeout"' 100 ||
	fail "the completed handshake did not block 10.213.0.2 under valgrind"
mtdctl unblock 10.213.0.2 >/dev/null || fail "unblock"
mtdctl quarantine nosuch >/dev/null 2>&1 && fail "quarantine of no instance succeeded"
mtdctl replace nosuch >/dev/null 2>&1 && fail "replace of no instance succeeded"
if command -v python3 >/dev/null; then
	python3 - "$SOCKET" <<'PY' || fail "hostile requests"
import socket, sys
for raw in [b"x", b"{" * 5000, b'{"command":"nope"}', b'{"command":"policy-show","name":5}']:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(sys.argv[1]); s.send(raw); s.recv(65536); s.close()
# a client that connects and leaves without asking
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.connect(sys.argv[1]); s.close()
PY
fi
ok "every command ran under valgrind"

kill -TERM "$AGENT_PID"
wait "$AGENT_PID"
rc=$?
AGENT_PID=""
if [ $rc -ne 0 ]; then
	cat "$VG_LOG" >&2
	fail "the agent under valgrind exited $rc (99 = memory errors or leaks)"
fi
[ -s "$VG_LOG" ] && { cat "$VG_LOG" >&2; fail "valgrind reported something"; }
ok "valgrind: no errors, no definite or indirect leaks"
echo "$TEST_NAME: $CHECKS checks passed"
