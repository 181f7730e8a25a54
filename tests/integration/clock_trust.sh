#!/bin/bash
# A clock the agent can trust (docs/schedule.md, "Clock drift"): the kernel's
# synchronisation state, injected from a file (--clock-state-file, read
# instead of adjtimex at start and after every boundary) so the host's clock
# is never touched, is flipped across boundaries of a 1 s Interval=:
#
#   - synchronised within the bound: no record, `mtdctl status` says trusted
#   - unsynchronised (STA_UNSYNC): one clock-untrusted record, however many
#     boundaries pass; status says NOT TRUSTED with the reason
#   - synchronised but the estimated error above --max-clock-error: another
#     clock-untrusted record (another state), with the values
#   - an unreadable state: clock-untrusted naming the file
#   - synchronised again: clock-trusted
#   - meanwhile the ports keep rotating, on the schedule a client computes
#   - untrusted at start: the record follows agent-start
#   - --max-clock-error refuses what is not a duration in range
#   - mtdctl port --skew names the neighbouring epoch's port across a boundary,
#     and mtdctl connect --skew tries those ports right after now's
. "$(dirname "$0")/lib.bash"
enter_private_namespaces "$@"
make_work_dir

write_host_policy tick 20000-20999 127.0.0.1:9
sed -i 's/^Interval=60s/Interval=1s/; s/^Grace=10s/Grace=500ms/' "$WORK/policies/tick.policy"
P=$WORK/policies/tick.policy
CLOCK=$WORK/clock-state
LOG=$WORK/log/audit.log
set_clock() { echo "$1" >"$CLOCK.new" && mv "$CLOCK.new" "$CLOCK"; }
records() { grep -c "\"type\":\"$1\"" "$LOG"; }
last_record() { grep "\"type\":\"$1\"" "$LOG" | tail -n 1; }
status_json() { mtdctl --json status | tr -d ' \n'; }
epoch_now() { status_json | grep -o '"name":"tick","epoch":[0-9]*' | sed 's/.*://'; }
# wait_epochs N: until the agent's epoch has moved N past the one now
wait_epochs() {
	local from
	from=$(epoch_now)
	[ -n "$from" ] || fail "no epoch in status"
	wait_for "[ \"\$(epoch_now)\" -ge $((from + $1)) ]" 100 || fail "the epoch stayed at $from"
}

# --- option errors ------------------------------------------------------------------
for bad in 0 2x -1s 2h; do
	out=$("$AGENT" --max-clock-error "$bad" 2>&1)
	rc=$?
	[ $rc -eq 2 ] || fail "--max-clock-error $bad: exit $rc, want 2"
	assert_contains "$out" "--max-clock-error: '$bad' is not a duration in 1us..1h" \
		"--max-clock-error $bad is refused with the reason"
done

# --- synchronised at start: nothing recorded ------------------------------------------
set_clock "8193 500 20000" # STA_PLL | STA_NANO, 500 us estimated, 20 ms maximum
start_agent --clock-state-file "$CLOCK" --max-clock-error 1s
first_epoch=$(epoch_now)
s=$(status_json)
assert_contains "$s" '"clock":{"state":"trusted","trusted":true' "status: trusted at start"
assert_contains "$s" '"esterror_usec":500,"maxerror_usec":20000,"max_error_usec":1000000,"source":"file"' \
	"status: the injected values and the bound"
assert_contains "$(mtdctl status)" "clock:    trusted (synchronised, estimated error 500us within the bound of 1s)" \
	"mtdctl status: one line says trusted"
[ "$(records clock-untrusted)" -eq 0 ] && [ "$(records clock-trusted)" -eq 0 ] ||
	fail "a trusted clock at start was recorded"
ok "trusted at start: no clock record"

# --- unsynchronised: one record, not one per boundary ----------------------------------
set_clock "8256 0 16000000" # STA_UNSYNC | STA_NANO: what an unsynchronised kernel says
wait_for '[ "$(records clock-untrusted)" -ge 1 ]' 50 || fail "no clock-untrusted record"
r=$(last_record clock-untrusted)
assert_contains "$r" '"state":"unsynchronised","trusted":false' "clock-untrusted: unsynchronised"
assert_contains "$r" '"status":8256,"esterror_usec":0,"maxerror_usec":16000000,"max_error_usec":1000000' \
	"clock-untrusted carries the values"
assert_contains "$(mtdctl status)" "clock:    NOT TRUSTED since" "mtdctl status says NOT TRUSTED"
assert_contains "$(mtdctl status)" "the kernel's clock is not synchronised (STA_UNSYNC; maximum error 16s)" \
	"mtdctl status gives the reason"
wait_epochs 3
[ "$(records clock-untrusted)" -eq 1 ] || fail "$(records clock-untrusted) clock-untrusted records over 3 boundaries, want 1"
ok "3 boundaries unsynchronised: still one record"

# --- synchronised, estimated error above the bound: another state ---------------------
set_clock "8193 3000000 5000000"
wait_for '[ "$(records clock-untrusted)" -ge 2 ]' 50 || fail "no record for an error above the bound"
r=$(last_record clock-untrusted)
assert_contains "$r" '"state":"error-above-bound","trusted":false,"reason":"estimated error 3s above the bound of 1s"' \
	"clock-untrusted: error above the bound"
assert_contains "$r" '"esterror_usec":3000000,"maxerror_usec":5000000' "with the values"

# --- unreadable ----------------------------------------------------------------------
set_clock "synchronised, honest"
wait_for '[ "$(records clock-untrusted)" -ge 3 ]' 50 || fail "no record for an unreadable state"
assert_contains "$(last_record clock-untrusted)" "\"state\":\"unreadable\",\"trusted\":false,\"reason\":\"cannot read the clock's state: clock state file: $CLOCK: not one line" \
	"clock-untrusted: the state file cannot be read, and where"

# --- synchronised again -----------------------------------------------------------------
set_clock "8193 1000 2000"
wait_for '[ "$(records clock-trusted)" -ge 1 ]' 50 || fail "no clock-trusted record"
assert_contains "$(last_record clock-trusted)" '"state":"trusted","trusted":true' "clock-trusted"
assert_contains "$(status_json)" '"clock":{"state":"trusted","trusted":true' "status: trusted again"
s=$(status_json)
assert_contains "$s" '"checks":' "status counts the checks"
changes=$(echo "$s" | grep -o '"changes":[0-9]*' | head -n 1 | sed 's/.*://')
[ "$changes" = 4 ] || fail "status: $changes changes, want 4"
wait_epochs 2
[ "$(records clock-untrusted)" -eq 3 ] && [ "$(records clock-trusted)" -eq 1 ] ||
	fail "records after trust came back: $(records clock-untrusted) untrusted, $(records clock-trusted) trusted"
ok "trust back: one clock-trusted record, 4 changes in all"

# --- nothing else changed: the ports rotated on the client's schedule ----------------
s=$(status_json)
epoch=$(echo "$s" | grep -o '"name":"tick","epoch":[0-9]*' | sed 's/.*://')
port=$(echo "$s" | grep -o '"name":"tick","epoch":[0-9]*,"port":[0-9]*' | sed 's/.*"port"://')
[ "$epoch" -ge $((first_epoch + 5)) ] || fail "the epoch went from $first_epoch to $epoch only"
want=$("$MTDCTL" port tick --policy "$P" --at "@$epoch" 2>/dev/null)
[ "$port" = "$want" ] || fail "epoch $epoch: the agent serves $port, a client computes $want"
[ "$(records rotation-failed)" -eq 0 ] || fail "rotation-failed recorded: $(last_record rotation-failed)"
ok "ports rotated on schedule through it all (epoch $first_epoch -> $epoch, port $port), no rotation failure"
stop_agent || fail "the agent did not stop cleanly"
out=$("$MTDCTL" audit verify --key "$WORK/state/audit-verify.key" "$LOG") || fail "audit verify: $out"
ok "the audit log verifies"

# --- untrusted at start: recorded after agent-start ---------------------------------
set_clock "8256 0 16000000"
before=$(wc -l <"$LOG")
start_agent --clock-state-file "$CLOCK"
wait_for '[ "$(records clock-untrusted)" -ge 4 ]' 50 || fail "no clock-untrusted at start"
types=$(tail -n +"$((before + 1))" "$LOG" | grep -o '"type":"[a-z-]*"' | sed 's/"type":"//; s/"//' | tr '\n' ' ')
case "$types" in
*"agent-start clock-untrusted"*) ok "untrusted at start: clock-untrusted follows agent-start" ;;
*) fail "records at start: $types" ;;
esac
stop_agent || fail "the agent did not stop cleanly"

# --- a client's allowance: mtdctl port --skew ---------------------------------------
# Interval=1s: at a whole second (a boundary) a skew of 1s reaches the
# previous epoch (its boundary 0 s away: first) and the next (1 s away).
t=$(( $(date +%s) + 300 ))
out=$("$MTDCTL" port tick --policy "$P" --at "@$t" --skew 1s 2>"$WORK/skew.err")
port_at() { "$MTDCTL" port "$1" --policy "$2" --at "@$3" 2>/dev/null; }
now_port=$(port_at tick "$P" "$t")
prev_port=$(port_at tick "$P" $((t - 1)))
next_port=$(port_at tick "$P" $((t + 1)))
[ "$out" = "$(printf '%s\n%s\n%s' "$now_port" "$prev_port" "$next_port")" ] ||
	fail "port --skew 1s: '$out', want $now_port $prev_port $next_port"
err=$(cat "$WORK/skew.err")
assert_contains "$err" "tick: $now_port: now, epoch $t," "--skew names now's port"
assert_contains "$err" "tick: $next_port: next epoch $((t + 1)), from" "--skew names the next epoch's port"
assert_contains "$err" "tick: $prev_port: previous epoch $((t - 1)), until" \
	"--skew names the previous epoch's port"
write_host_policy slow 21000-21999 127.0.0.1:9
P2=$WORK/policies/slow.policy
b=$(( ($(date +%s) / 60 + 5) * 60 ))
out=$("$MTDCTL" port slow --policy "$P2" --at "@$((b + 30))" --skew 2s 2>"$WORK/skew.err")
[ "$out" = "$("$MTDCTL" port slow --policy "$P2" --at "@$((b + 30))" 2>/dev/null)" ] ||
	fail "--skew 2s mid-epoch printed more than the port: $out"
assert_contains "$(cat "$WORK/skew.err")" "crosses no boundary" "mid-epoch, --skew says it crosses no boundary"
out=$("$MTDCTL" port slow --policy "$P2" --at "@$((b - 1))" --skew 2s 2>/dev/null)
[ "$(echo "$out" | sed -n 2p)" = "$("$MTDCTL" port slow --policy "$P2" --at "@$b" 2>/dev/null)" ] ||
	fail "--skew 2s a second before a 60 s boundary: the second line is not the next epoch's port"
[ "$(echo "$out" | wc -l)" -eq 2 ] || fail "--skew 2s a second before a 60 s boundary: $out"
ok "port --skew: the next epoch's port one second before a boundary, nothing mid-epoch"
# A second after a boundary, 70s either way: the boundary just passed (1 s),
# the next one (59 s), the one before (61 s), in that order.
out=$("$MTDCTL" port slow --policy "$P2" --at "@$((b + 1))" --skew 70s 2>/dev/null)
want="$(port_at slow "$P2" $((b + 1)))
$(port_at slow "$P2" $((b - 1)))
$(port_at slow "$P2" $((b + 60)))
$(port_at slow "$P2" $((b - 61)))"
[ "$out" = "$want" ] || fail "port --skew 70s a second after a boundary: '$out', want '$want'"
ok "--skew orders the neighbours by how near their boundary is"
[ "$("$MTDCTL" port slow --policy "$P2" --at "@$((b - 1))" 2>&1 | wc -l)" -eq 2 ] ||
	fail "without --skew the output changed"
"$MTDCTL" port slow --policy "$P2" --skew 2s --candidates 2 >/dev/null 2>&1 && fail "--skew with --candidates accepted"
ok "without --skew: the port and one line on stderr, as before"

# --- mtdctl connect --skew tries them in that order ---------------------------------
# The client's clock frozen a second after a boundary b (faketime, this
# process only), nothing listening on 127.0.0.1 so every port refuses at
# once: the order of connect() calls is the order of tries.
# (A sanitized mtdctl accepts faketime's preload ahead of its runtime.)
tries() { # ARGS...: the ports mtdctl connect tried, in order
	TZ=UTC ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" strace -f -qq -o "$WORK/trace" -e trace=connect \
		faketime -f "@$(date -u -d "@$((b + 1))" '+%Y-%m-%d %H:%M:%S')" \
		"$MTDCTL" connect slow --policy "$P2" "$@" 127.0.0.1 </dev/null >/dev/null 2>&1 &&
		fail "connect $* reached a port on 127.0.0.1, where nothing listens"
	grep -o 'sin_port=htons([0-9]*)' "$WORK/trace" | tr -dc '0-9\n' | tr '\n' ' '
}
window=$("$MTDCTL" port slow --policy "$P2" --at "@$((b + 1))" --candidates 4 | tr '\n' ' ')
w0=$(echo "$window" | cut -d' ' -f1)
rest=$(echo "$window" | cut -d' ' -f2-)
prev=$(port_at slow "$P2" $((b - 1)))
next=$(port_at slow "$P2" $((b + 60)))
prev2=$(port_at slow "$P2" $((b - 61)))
# each port once, in the order given (a neighbour may also be in the window)
once() { local p out=" "; for p in "$@"; do case "$out" in *" $p "*) ;; *) out="$out$p " ;; esac; done; echo "${out# }"; }
got=$(tries)
# shellcheck disable=SC2086
want=$(once $window $prev $next)
[ "$got" = "$want" ] ||
	fail "connect without --skew tried '$got', want the window then previous and next: '$want'"
ok "connect without --skew: the window ($window), then the previous and the next epoch's port, as before"
got=$(tries --skew 70s)
# shellcheck disable=SC2086
want=$(once $w0 $prev $next $prev2 $rest)
[ "$got" = "$want" ] || fail "connect --skew 70s tried '$got', want '$want'"
ok "connect --skew 70s: now's port, then the neighbours nearest first, then the rest of the window"

echo "$TEST_NAME: $CHECKS checks passed"
