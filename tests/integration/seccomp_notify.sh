#!/bin/bash
# Seccomp violations as a signal, on the real kernel: instances started by
# tests/tools/envelope-run with --violations (ViolationSystemCalls=) call
# listed system calls (tests/fixtures/probe violations); envelope-run reads the
# envelope's listener and prints one line per violation. Checks: the line
# names the call, its arguments and the caller's pid (pid 1 of the instance,
# and a forked child); the caller sees EPERM and goes on (it prints its errno
# after each call); a violation that is also allowed is still a violation;
# SystemCallDefault=kill still kills for unlisted calls but not for
# violations; a non-root instance without capabilities is covered the same
# way; no listener without a violation list; the spawn fails closed at the
# "seccomp" step when the listener cannot be created (fd limit) and the
# target never runs; the listener hangs up when the instance is gone.
# Runs in its own mount + network namespaces; cgroups are named
# mtd-envtest-PID and removed on every exit path. Needs root, cc (static libc).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$root/$BUILD" ;; esac

[ "$(id -u)" -eq 0 ] || { echo "skip: needs root"; exit 77; }
if [ "${MTD_ENVELOPE_IN_NS:-}" != 1 ]; then
	MTD_ENVELOPE_IN_NS=1 exec unshare --mount --net --propagation private -- bash "$0" "$@"
fi
. "$here/lib-envelope.bash"
envelope_setup

# the host pid of the instance's pid 1, as envelope-run reports it
instance_pid() {
	sed -n 's/^envelope-run: pid \([0-9]*\) cgroup .*/\1/p' "$T/$1"
}

# violation_line NAME SYSCALL: the one violation line for SYSCALL
violation_line() {
	local lines
	lines=$(grep "^violation .* syscall=$2 " "$T/$1")
	[ "$(printf '%s\n' "$lines" | grep -c .)" -eq 1 ] ||
		{ sed 's/^/    | /' "$T/$1" >&2; fail "$1: expected exactly one violation line for $2"; }
	printf '%s\n' "$lines"
}

# --- the signal ------------------------------------------------------------------
run viol --syscalls "@system-service" --violations "keyctl,ptrace mount" -- probe violations
pid=$(instance_pid viol)
[ -n "$pid" ] || { sed "s/^/    | /" "$T/viol" >&2; fail "viol: no instance pid"; }
expect viol "notify_fd=yes"
expect viol "status=exited:0"
expect viol "keyctl=EPERM"
expect viol "ptrace=EPERM"
expect viol "child_mount=EPERM"
expect viol "uname=0"
expect viol "violations_done=1"
line=$(violation_line viol keyctl)
case "$line" in
"violation pid=$pid syscall=keyctl nr=250 args=0x0,0xfffffffffffffffd,0x1,0x4444,0x5555,0x6666 ip=0x"*" answered=yes") ;;
*) fail "viol: keyctl line: $line" ;;
esac
line=$(violation_line viol ptrace)
case "$line" in
"violation pid=$pid syscall=ptrace nr=101 args=0x0,0x0,0x0,0x0,0x0,0x0 ip=0x"*" answered=yes") ;;
*) fail "viol: ptrace line: $line" ;;
esac
line=$(violation_line viol mount)
child=$(printf '%s\n' "$line" | sed -n 's/^violation pid=\([0-9]*\) .*/\1/p')
[ -n "$child" ] && [ "$child" != "$pid" ] && [ "$child" != 0 ] ||
	fail "viol: the child's mount should name another pid: $line"
case "$line" in
*" args=0x"*",0x"*",0x"*",0x0,0x0,"*" answered=yes") ;; # source, target, type, flags 0, data NULL
*) fail "viol: mount line: $line" ;;
esac
[ "$(grep -c '^violation ' "$T/viol")" -eq 3 ] || fail "viol: expected 3 violations: $(cat "$T/viol")"
expect viol "notify_after_exit=hangup"
ok "keyctl, ptrace (pid 1, pid $pid on the host) and a forked child's mount (pid $child): one line each with name and arguments; each call saw EPERM and the probe went on (uname=0); the listener hung up after the exit"

run allowed-too --syscalls "@system-service keyctl" --violations keyctl -- probe syscall keyctl
expect allowed-too "keyctl=EPERM"
violation_line allowed-too keyctl >/dev/null
run allowed-control --syscalls "@system-service keyctl" -- probe syscall keyctl
expect allowed-control "keyctl=0"
ok "a call both allowed and a violation is a violation (EPERM, reported); allowed alone it succeeds"

run kill-viol --syscalls "@system-service" --syscall-default kill --violations keyctl -- probe syscall keyctl
expect kill-viol "keyctl=EPERM"
expect kill-viol "status=exited:0"
violation_line kill-viol keyctl >/dev/null
run kill-other --syscalls "@system-service" --syscall-default kill --violations keyctl -- probe syscall ptrace
grep -Eq "^status=(killed|dumped):31$" "$T/kill-other" || fail "kill-other: not killed by SIGSYS: $(cat "$T/kill-other")"
! grep -q '^violation ' "$T/kill-other" || fail "kill-other: an unlisted call was reported as a violation"
ok "SystemCallDefault=kill: a violation is answered EPERM (not killed); an unlisted call still dies by SIGSYS, unreported"

run nonroot --uid 1000 --gid 1000 --violations ptrace -- probe syscall ptrace
expect nonroot "ptrace=EPERM"
violation_line nonroot ptrace >/dev/null
ok "uid 1000 without capabilities: the listener is handed over and ptrace reported the same way"

# --- no list: no listener -------------------------------------------------------------
run nolist --syscalls "@system-service" -- probe syscall keyctl
expect nolist "keyctl=EPERM"
! grep -q '^violation \|^notify_' "$T/nolist" || fail "nolist: a listener without a violation list"
run nolist-fd --violations "" -- probe syscall keyctl
expect nolist-fd "notify_fd=none"
expect nolist-fd "keyctl=EPERM"
ok "without a violation list: no listener, keyctl plain EPERM"

# --- fail closed ------------------------------------------------------------------------
# fds 0-3 (stdio, the marker) are taken: RLIMIT_NOFILE=4 leaves no number for
# the listener, while the same limit without violations still runs the target
: >"$T/marker-control"
run nofile-control --marker "$T/marker-control" --nofile 4 --syscalls "@system-service" -- probe marker
expect nofile-control "status=exited:0"
[ "$(cat "$T/marker-control")" = ran ] || fail "nofile-control: marker not written"
: >"$T/marker-refused"
run nofile-refused --marker "$T/marker-refused" --nofile 4 --violations keyctl -- probe marker
expect nofile-refused "spawn-failed step=seccomp errno=24 detail=SECCOMP_FILTER_FLAG_NEW_LISTENER"
expect nofile-refused "rc=2"
[ ! -s "$T/marker-refused" ] || fail "nofile-refused: the target ran (marker written)"
! grep -q 'TARGET-RAN\|^status=' "$T/nofile-refused" || fail "nofile-refused: the target ran"
envelope_no_leftovers
ok "no listener (EMFILE): refused at step 'seccomp', target never ran, nothing left; the control runs with the same limit"

run needs --violations "sendmsg" -- probe marker
grep -q "^envelope-run: seccomp: sendmsg: " "$T/needs" || fail "needs: sendmsg as a violation was not refused: $(cat "$T/needs")"
! grep -q 'TARGET-RAN' "$T/needs" || fail "needs: the target ran"
ok "a violation list with a call the envelope needs (sendmsg) is refused at compile time"

envelope_no_leftovers
ok "no cgroup left behind"
echo "seccomp_notify: $CHECKS checks passed"
