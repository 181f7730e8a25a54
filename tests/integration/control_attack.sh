#!/bin/bash
# The control socket against a hostile local user (issue 11): a member of the
# read group (not root) holds every connection it can, floods refused
# requests, asks for audit records past the end again and again — and root
# still gets answers, the audit log grows by a bounded number of records,
# and audit-show reads only what it returns. Functional checks only; the
# timings are in tests/bench/bench_control_attack.sh.
. "$(dirname "$0")/lib.bash"
enter_private_namespaces "$@"
make_work_dir

ATTACK=$BUILD_DIR/tools/control-attack
[ -x "$ATTACK" ] || fail "build the test tools first: $ATTACK"
write_host_policy ssh 20000-20999 127.0.0.1:22
# Group "users" (gid 100) stands in for the mtd group; the attackers are uids
# that need no entry in the host's user database (setpriv).
READ_GID=$(getent group users | cut -d: -f3)
[ -n "$READ_GID" ] || skip "no group 'users' to stand in for the read group"
EVIL=60001
# 8 KiB files, 3 kept: a refused flood that wrote a record per request would
# rotate everything away within a second.
start_agent --read-group users --audit-max-size 8192 --audit-keep 3

as_evil() { as_user "$1" "$READ_GID" "${@:2}"; }
# in the background: $! is the attacking process itself
bg_evil() { exec setpriv --reuid="$1" --regid="$READ_GID" --groups="$READ_GID" --inh-caps=-all -- "${@:2}"; }
status_json() { mtdctl --json status | tr -d ' \n'; }
json_number() { # KEY: the first "KEY":N of stdin
	grep -o "\"$1\":[0-9]*" | head -n 1 | cut -d: -f2
}
# the log files, oldest first
log_files() {
	local i
	for i in 3 2 1; do [ -e "$WORK/log/audit.log.$i" ] && echo "$WORK/log/audit.log.$i"; done
	echo "$WORK/log/audit.log"
}
log_bytes() { cat $(log_files) | wc -c; }

# --- connections: a uid has at most 8, all non-root uids 48; root keeps 16 ----
holders=()
bg_evil $EVIL "$ATTACK" hold "$SOCKET" 64 30 >"$WORK/hold.$EVIL" 2>"$WORK/hold.err.$EVIL" &
holders+=($!)
wait_for "[ -s '$WORK/hold.$EVIL' ]" 100 || fail "the holder did not report"
read -r _ held _ refused <"$WORK/hold.$EVIL"
[ "$held" -eq 8 ] || fail "one uid holds $held connections, wanted 8"
ok "one non-root uid holds at most 8 connections ($refused more refused)"
assert_contains "$(cat "$WORK/hold.err.$EVIL")" "too many connections from uid $EVIL" \
	"a refused connection is told why, in one line"
for uid in 60002 60003 60004 60005 60006 60007; do
	bg_evil $uid "$ATTACK" hold "$SOCKET" 8 30 >"$WORK/hold.$uid" 2>/dev/null &
	holders+=($!)
	wait_for "[ -s '$WORK/hold.$uid' ]" 100 || fail "holder $uid did not report"
done
total=0
for uid in 60001 60002 60003 60004 60005 60006 60007; do
	read -r _ held _ _ <"$WORK/hold.$uid"
	total=$((total + held))
done
[ "$total" -eq 48 ] || fail "non-root uids hold $total connections, wanted 48"
ok "non-root uids together hold at most 48 of the 64 connections"
out=$(mtdctl status) || fail "root's status with 48 connections held by others: $out"
assert_contains "$out" "1 service(s)" "root's status answers while others hold every connection they may"
out=$(mtdctl reload) || fail "root's reload with 48 connections held by others: $out"
ok "root's reload answers while others hold every connection they may"
clients=$(status_json | grep -o '"control":{"clients":[0-9]*' | grep -o '[0-9]*$')
[ "$clients" -ge 48 ] || fail "status counts $clients clients, wanted at least 48"
ok "status counts the connections ($clients)"
kill "${holders[@]}" 2>/dev/null
wait "${holders[@]}" 2>/dev/null
wait_for '[ "$(status_json | grep -o "\"control\":{\"clients\":[0-9]*" | grep -o "[0-9]*$")" -le 1 ]' 50 ||
	fail "the held connections were not released"
ok "connections are released when their holders go"

# --- everything at once: a flood of refused requests from one uid while others
# hold 40 connections and ask for the whole log and past its end, again and
# again; root is answered, and the flood leaves a bounded number of records --
FLOOD=60010 # a uid refused nothing yet: its first refusal opens its window
bytes0=$(log_bytes)
holders=()
for uid in 60001 60002 60003 60004 60005; do
	bg_evil $uid "$ATTACK" hold "$SOCKET" 8 20 >/dev/null 2>&1 &
	holders+=($!)
done
others=()
bg_evil 60011 "$ATTACK" flood "$SOCKET" '{"command":"audit-show","since":0}' 1000000 2 5 \
	>"$WORK/show-all.out" 2>&1 &
others+=($!)
bg_evil 60012 "$ATTACK" flood "$SOCKET" '{"command":"audit-show","since":9007199254740000}' \
	1000000 2 5 >"$WORK/show-end.out" 2>&1 &
others+=($!)
sleep 0.5
"$ATTACK" probe "$SOCKET" 40 50 >"$WORK/probe.out" 2>"$WORK/probe.err" &
probe=$!
out=$(as_evil $FLOOD "$ATTACK" flood "$SOCKET" '{"command":"reload"}' 3000 4) ||
	fail "flood: $out"
mtdctl reload >/dev/null || fail "root's reload failed during the attack"
ok "root's reload answered during the attack"
read -r _ sent _ replies _ okays _ refused _ rate _ perm <<<"$out"
[ "$sent" -eq 3000 ] && [ "$replies" -eq 3000 ] || fail "flood: $out"
[ "$okays" -eq 0 ] || fail "a non-root reload was accepted: $out"
[ "$rate" -gt 0 ] && [ "$perm" -gt 0 ] || fail "flood: wanted rate and permission refusals: $out"
ok "3000 reloads from a read-group member: all refused, with reasons ($perm permission, $rate rate)"
wait "$probe" || fail "root's status failed during the flood: $(cat "$WORK/probe.err")"
ok "root's status answered 40 of 40 during the attack ($(cat "$WORK/probe.out"))"
wait "${others[@]}" # they stop after 5 s (the reload flood and the probe take about 3)
kill "${holders[@]}" 2>/dev/null
wait "${holders[@]}" 2>/dev/null
assert_contains "$(cat "$WORK/show-all.out")" "ok " "the whole-log readers were served meanwhile"
# the flooding uid's records (other uids' windows from above may close meanwhile)
flood_records() { cat $(log_files) | grep '"type":"control-denied"' | grep "\"uid\":$FLOOD,"; }
flood_counted() { flood_records | grep -o '"count":[0-9]*' | cut -d: -f2 | paste -sd+ | bc; }
# until the window that counted the flood ends (its record is written then,
# at most 10 s after the flood's last refusal): 15 s, where it slept 11
wait_for '[ "$(flood_counted)" = 3000 ]' 150 || true
flood_records >"$WORK/flood.records"
grown=$(( $(log_bytes) - bytes0 ))
records=$(wc -l <"$WORK/flood.records")
bytes=$(wc -c <"$WORK/flood.records")
# the opening record and one per 10 s window (a flood that outlasts a window,
# on a slow machine, has a third)
[ "$records" -ge 1 ] && [ "$records" -le 3 ] ||
	fail "the flood wrote $records control-denied records, wanted 1 to 3"
# the whole log: the flood's records, the other attackers' (two windows each
# at most), root's reload: ~10 records; one record per refusal would be >1 MB
[ "$grown" -le 16384 ] || fail "the log grew by $grown bytes during the attack"
ok "3000 refused requests wrote $records control-denied record(s) of uid $FLOOD, $bytes bytes (the whole log grew by $grown)"
counted=$(grep -o '"count":[0-9]*' "$WORK/flood.records" | cut -d: -f2 | paste -sd+ | bc)
[ "$counted" -eq 3000 ] || fail "the control-denied records count $counted refusals, wanted 3000"
ok "the records count every refusal (3000)"
last=$(tail -n 1 "$WORK/flood.records")
assert_contains "$last" '"reload":' "the aggregated record names the refused command"
assert_contains "$last" '"rate":' "the aggregated record counts rate refusals"

# --- root is not rate limited; a backlog is served a few requests per wakeup ------------
cb0=$(status_json | json_number callbacks)
out=$("$ATTACK" flood "$SOCKET" '{"command":"status"}' 300 1)
assert_contains "$out" "ok 300 " "root's 300 back-to-back requests are all answered"
cb1=$(status_json | json_number callbacks)
[ $((cb1 - cb0)) -ge 75 ] || fail "300 requests were served in $((cb1 - cb0)) callbacks, wanted at least 75 (4 per wakeup)"
ok "300 pipelined requests took $((cb1 - cb0)) callbacks (at most 4 requests each)"

# --- audit-show past the end reads nothing ----------------------------------------------
read0=$(status_json | json_number lines_read)
out=$(as_evil $EVIL "$ATTACK" flood "$SOCKET" '{"command":"audit-show","since":9007199254740000}' 40 2)
assert_contains "$out" "ok 40 " "audit-show past the end is answered"
read1=$(status_json | json_number lines_read)
[ "$read1" -eq "$read0" ] || fail "audit-show past the end read $((read1 - read0)) lines"
ok "40 audit-shows past the end read no line of the log"

# --- audit-show from the middle reads what it returns, across rotated files -----------
for _ in $(seq 1 60); do mtdctl reload >/dev/null || fail "reload"; done
[ -e "$WORK/log/audit.log.2" ] || fail "the log did not rotate (test setup)"
last_seq=$(status_json | grep -o '"last_seq":[0-9]*' | cut -d: -f2)
first_kept=$(head -n 1 "$(log_files | head -n 1)" | json_number seq)
since=$((first_kept + 5))
read0=$(status_json | json_number lines_read)
mtdctl --json audit show --since "$since" >"$WORK/show.json" || fail "audit show --since $since"
read1=$(status_json | json_number lines_read)
seqs=$(tr -d ' \n' <"$WORK/show.json" | grep -o '"seq":[0-9]*' | cut -d: -f2)
want=$(seq $((since + 1)) "$last_seq")
# records appended after the request (the status above) may follow
[ "$(echo "$seqs" | head -n "$(echo "$want" | wc -l)")" = "$want" ] ||
	fail "audit show --since $since: wrong records (first $(echo "$seqs" | head -n 1), last $(echo "$seqs" | tail -n 1), want $((since + 1))..$last_seq)"
ok "audit show --since in a rotated file returns exactly the newer records, across files"
returned=$(echo "$seqs" | wc -l)
[ $((read1 - read0)) -le $((returned + 8)) ] ||
	fail "audit show returned $returned records but read $((read1 - read0)) lines"
ok "audit show read $((read1 - read0)) lines for $returned records"

kill -0 "$AGENT_PID" || fail "the agent died"
stop_agent || fail "the agent did not stop cleanly"
out=$("$MTDCTL" audit verify --key "$WORK/state/audit-verify.key" $(log_files)) ||
	fail "audit verify: $out"
ok "the log verifies"
echo "$TEST_NAME: $CHECKS checks passed"
