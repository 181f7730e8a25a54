#!/bin/bash
# A hostile instance against the terminal and the log of whoever runs the
# agent. The agent is started from a shell on a real pseudo-terminal (script),
# as under `make demo`, with that terminal as its controlling terminal and its
# stdio; the instance (tests/fixtures/probe tty, static, from a signed
# snapshot) tries to reach it: open /dev/tty, TIOCSTI on fds 0..2 (a keystroke
# pushed into the root shell), TIOCLINUX, raw escape sequences, a line posing
# as the agent's, then a flood of lines. Checks, on the agent's side: the
# instance leads its own session, no fd of it is a terminal and every
# keystroke push fails; its output reaches the terminal only through the
# agent, prefixed with its identifier and instance id, escape bytes escaped;
# the flood is cut to the rate limit with a count of what was suppressed; the
# agent still answers.
. "$(dirname "$0")/lib.bash"
command -v script >/dev/null || skip "script (util-linux) is missing"
command -v cc >/dev/null || skip "cc is missing"
enter_private_namespaces "$@"
make_work_dir

FLOOD=2000
make_probe_snapshot
write_probe_service tty 20000-20999 "/bin/probe tty $FLOOD" "[Rotation] AddressPool=10.214.0.0/24"

# The agent on a pseudo-terminal: script(1) gives it a new session whose
# controlling terminal is the pty, and the pty as stdin, stdout and stderr.
SOCKET=$WORK/run/control.sock
TTY_LOG=$WORK/terminal.log
script -qfec "exec $AGENT --policy-dir $WORK/policies --state-dir $WORK/state \
	--runtime-dir $WORK/run --audit-log $WORK/log/audit.log \
	--instances-cgroup $INSTANCES_CGROUP" "$TTY_LOG" </dev/null >/dev/null 2>&1 &
SCRIPT_PID=$!
AGENT_LOG=$TTY_LOG
for _ in $(seq 1 100); do
	AGENT_PID=$(pgrep -P "$SCRIPT_PID" -x mtd-agent)
	[ -n "$AGENT_PID" ] && break
	sleep 0.05
done
[ -n "$AGENT_PID" ] || fail "the agent did not start under script"
[ "$(readlink "/proc/$AGENT_PID/fd/2")" != "${TTY_LOG}" ] &&
	case "$(readlink "/proc/$AGENT_PID/fd/2")" in /dev/pts/*) ;; *) fail "the agent's stderr is not a pty" ;; esac
wait_for "grep -q 'tty_done=1' '$TTY_LOG'" 100 || fail "the probe's report never reached the terminal"

# Every report line of the probe, as the agent passed it on.
field() { sed -n "s/^mtd-tty\[tty-[0-9]*\]: $1=\([^[:space:]]*\).*/\1/p" "$TTY_LOG" | tr -d '\r' | head -n 1; }
[ "$(field sid_leader)" = yes ] || fail "the instance is not the leader of its own session: $(field sid_leader)"
case "$(field ctty_open)" in ENXIO | ENOENT) ;; *) fail "/dev/tty opened in the instance: $(field ctty_open)" ;; esac
for fd in 0 1 2; do
	[ "$(field "isatty_fd$fd")" = 0 ] || fail "fd $fd of the instance is a terminal"
	[ "$(field "tiocsti_fd$fd")" != 0 ] || fail "TIOCSTI on fd $fd pushed a keystroke"
done
[ "$(field tioclinux)" != 0 ] || fail "TIOCLINUX worked from the instance"
ok "own session, no terminal among fds 0..2, /dev/tty $(field ctty_open), TIOCSTI $(field tiocsti_fd2), TIOCLINUX $(field tioclinux)"

grep -q $'\033\\[2J' "$TTY_LOG" && fail "a raw escape sequence of the instance reached the terminal"
grep -q 'mtd-tty\[tty-[0-9]*\]: escape=\\x1b\[2J\\x1b\]0;owned\\x07done' "$TTY_LOG" ||
	fail "the escape line is not shown escaped: $(grep 'escape=' "$TTY_LOG")"
grep -q '^mtd-agent: audit: forged' "$TTY_LOG" && fail "an instance line passed for one of the agent's"
grep -q '^mtd-tty\[tty-[0-9]*\]: mtd-agent: audit: forged by the instance' "$TTY_LOG" ||
	fail "the posing line is missing its prefix"
ok "escape bytes escaped, a line posing as the agent's carries the instance's prefix"

wait_for "grep -q 'line(s) of output suppressed' '$TTY_LOG'" 50 ||
	fail "a flood of $FLOOD lines was not rate-limited"
shown=$(grep -c '^mtd-tty\[tty-[0-9]*\]: flood_' "$TTY_LOG")
suppressed=$(sed -n 's/.*: \([0-9]*\) line(s) of output suppressed.*/\1/p' "$TTY_LOG" | awk '{s += $1} END {print s + 0}')
[ "$shown" -lt "$FLOOD" ] || fail "all $FLOOD flood lines were shown"
# 200 burst minus the 15 report lines, plus 20 a second for the few seconds
[ "$shown" -le 400 ] || fail "$shown flood lines shown: more than the rate limit allows"
mtdctl status >/dev/null || fail "the agent does not answer after the flood"
ok "flood of $FLOOD lines: $shown shown, $suppressed reported suppressed; the agent answers"

kill -TERM "$AGENT_PID"
wait "$SCRIPT_PID"
AGENT_PID=""
echo "$TEST_NAME: $CHECKS checks passed"
