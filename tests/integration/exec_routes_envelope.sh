#!/bin/bash
# Every route to a new program, against the envelope alone (no agent, so no
# other signal races the exec): tests/tools/envelope-run serves the
# instance's listener and prints one line per violation; the static probe
# (tests/fixtures/probe exec ROUTE exit) starts a new program (itself in "ran"
# mode, which prints NEW-PROGRAM-RAN) by one route: execve of a snapshot
# binary, execveat on an fd of its own, execveat by path, a memfd moved to fd
# 100 and executed in the envelope's own form, a binary written to /tmp, a #!
# script in /tmp.
#
# Under a policy without exec (SystemCalls= without execve and execveat, no
# violation list), as root and as uid 1000: the new program never runs, the
# call fails with EPERM, and exactly one violation line names execve or
# execveat (with fd 100 and the memfd for the memfd route); the envelope's
# own exec is never one. vm.memfd_noexec is 2 inside, memfd_create(MFD_EXEC)
# is refused. Control: under @system-service (exec allowed) every route runs
# the new program, nothing is a violation, vm.memfd_noexec is left alone.
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
# the routes start /bin/probe, a binary of the snapshot
cp "$T/probe" "$LOWER/bin/probe"
chmod 0755 "$LOWER/bin/probe"

NO_EXEC_CALLS="@basic-io @file-system @io-event @ipc @memory @signal @timer @network-io \
arch_prctl brk exit exit_group futex getpid gettid getppid getrandom set_tid_address \
set_robust_list rseq rt_sigreturn prlimit64 clock_gettime clock_nanosleep nanosleep pause \
uname getuid geteuid getgid getegid sched_yield"
ROUTES="execve execveat-fd execveat-path memfd written script"

show() { sed 's/^/    | /' "$T/$1" >&2; }

for who in root user; do
	creds=""
	[ $who = user ] && creds="--uid 1000 --gid 1000"
	for r in $ROUTES; do
		name=noexec-$who-$r
		# shellcheck disable=SC2086
		run "$name" $creds --syscalls "$NO_EXEC_CALLS" -- probe exec "$r" exit
		expect "$name" "status=exited:0"
		expect "$name" "exec_route=$r result=EPERM"
		! grep -q NEW-PROGRAM-RAN "$T/$name" || { show "$name"; fail "$name: the new program ran"; }
		case $r in
		execve | written | script) want=execve ;;
		*) want=execveat ;;
		esac
		lines=$(grep '^violation ' "$T/$name")
		[ "$(printf '%s\n' "$lines" | grep -c .)" -eq 1 ] ||
			{ show "$name"; fail "$name: expected exactly one violation line"; }
		case "$lines" in
		"violation pid="*" syscall=$want "*" answered=yes") ;;
		*) show "$name"; fail "$name: the violation line: $lines" ;;
		esac
		if [ "$r" = memfd ]; then
			case "$lines" in
			*" args=0x64,"*) ;;
			*) fail "$name: the violation does not name fd 100: $lines" ;;
			esac
			expect "$name" "memfd_noexec=2"
			expect "$name" "memfd_exec_flag=EACCES"
		fi
		ok "no exec, $who, $r: EPERM, one $want violation, the new program never ran"
	done
done

for r in $ROUTES; do
	name=exec-$r
	run "$name" --uid 1000 --gid 1000 --syscalls "@system-service" -- probe exec "$r" exit
	expect "$name" "NEW-PROGRAM-RAN route=$( [ $r = script ] && echo /tmp/payload.sh || echo $r)"
	! grep -q '^violation ' "$T/$name" || { show "$name"; fail "$name: a violation under a policy with exec"; }
	[ "$r" != memfd ] || expect "$name" "memfd_noexec=$(cat /proc/sys/vm/memfd_noexec)"
	ok "control, exec allowed, $r: the new program ran, no violation"
done

envelope_no_leftovers
ok "no cgroup left behind"
echo "$TEST_NAME: $CHECKS checks passed"
