#!/bin/bash
# The envelope on the real kernel: tests/fixtures/probe (static) runs inside
# instances started by tests/tools/envelope-run over a plain lower directory
# (busybox + probe), and reports what it sees and can do. Checks: overlay root
# with an untouched lower layer and nothing surviving into the next instance;
# host processes, mounts and interfaces invisible; CapEff = the given set (three
# sets); no_new_privs; seccomp errno and kill verdicts; clone3 -> ENOSYS with
# fork still working; TasksMax, MemoryMax and CPUQuota in effect; freeze/thaw.
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

# --- the root -------------------------------------------------------------------
# an interface in this test's own network namespace that the instance must not see
ip link add mtdenv0 type dummy 2>/dev/null || ip link add mtdenv0 type veth peer name mtdenv1 ||
	fail "cannot create a test interface"
ip link set mtdenv0 up
mounts_before=$(wc -l </proc/self/mountinfo)
run report1 --syscalls "@system-service" --hostname probe-host -- probe report
expect report1 "status=exited:0"
expect report1 "root_fstype=overlay"
expect report1 "hostname=probe-host"
expect report1 "pid=1"
expect report1 "visible_pids=1"
expect report1 "foreign_mounts=0"
expect report1 "interfaces=lo"
expect report1 "NoNewPrivs=1"
expect report1 "Seccomp=2"
expect report1 "previous_write=absent"
expect report1 "write_root=ok"
expect report1 "write_lower_file=ok"
ok "root is an overlay; host pids, mounts and interfaces (mtdenv0) invisible; no_new_privs, seccomp filter"
lower_unchanged
ok "the lower layer is byte-identical after the instance wrote / and /lower-file"
run report2 -- probe report
expect report2 "previous_write=absent"
expect report2 "Seccomp=0"
ok "what the first instance wrote is gone in the next one"
[ "$(wc -l </proc/self/mountinfo)" -eq "$mounts_before" ] || fail "mounts leaked into the caller's namespace"
ok "no mount of an instance shows in the caller's namespace"

# --- capabilities -------------------------------------------------------------------
run caps0 -- probe report
expect caps0 "CapEff=0000000000000000"
expect caps0 "CapBnd=0000000000000000"
run caps1 --caps CAP_NET_ADMIN -- probe report
expect caps1 "Uid=0"
expect caps1 "CapEff=0000000000001000"
expect caps1 "CapBnd=0000000000001000"
run caps2 --uid 1000 --gid 1000 --caps CAP_CHOWN,CAP_NET_BIND_SERVICE -- probe report
expect caps2 "Uid=1000"
expect caps2 "Gid=1000"
expect caps2 "CapEff=0000000000000401"
expect caps2 "CapPrm=0000000000000401"
expect caps2 "CapAmb=0000000000000401"
expect caps2 "CapBnd=0000000000000401"
ok "CapEff is the given set: none, CAP_NET_ADMIN as root, CAP_CHOWN+CAP_NET_BIND_SERVICE as uid 1000"

# --- seccomp ---------------------------------------------------------------------------
for call in mount ptrace keyctl; do
	run "errno-$call" --syscalls "@system-service" -- probe syscall "$call"
	expect "errno-$call" "$call=EPERM"
	expect "errno-$call" "status=exited:0"
done
# the control: the same calls listed pass the filter (ptrace, keyctl succeed)
for call in ptrace keyctl; do
	run "allowed-$call" --syscalls "@system-service ptrace keyctl" -- probe syscall "$call"
	expect "allowed-$call" "$call=0"
done
ok "SystemCallDefault=errno: mount, ptrace, keyctl fail with EPERM (ptrace, keyctl succeed when listed)"
for call in mount ptrace keyctl; do
	run "kill-$call" --syscalls "@system-service" --syscall-default kill -- probe syscall "$call"
	grep -Eq "^status=(killed|dumped):31$" "$T/kill-$call" || fail "kill-$call: not killed by SIGSYS: $(cat "$T/kill-$call")"
	! grep -q "^$call=" "$T/kill-$call" || fail "kill-$call: the call returned"
done
ok "SystemCallDefault=kill: mount, ptrace, keyctl kill the process with SIGSYS"
run clone3 --syscalls "@system-service" --syscall-default kill -- probe clone3
expect clone3 "clone3=ENOSYS"
expect clone3 "fork=ok"
ok "clone3 answers ENOSYS and fork still works"

# --- cgroup limits ----------------------------------------------------------------------
run tasks10 --tasks-max 10 -- probe forks
expect tasks10 "forks=9"
expect tasks10 "fork_errno=EAGAIN"
run tasks40 --tasks-max 40 -- probe forks
expect tasks40 "forks=39"
ok "TasksMax: 10 allows 9 forks then EAGAIN, 40 allows 39"
run mem32 --memory-max $((32 << 20)) -- probe mem 96
expect mem32 "status=killed:9"
last=$(grep -o 'mem_touched=[0-9]*' "$T/mem32" | tail -1 | cut -d= -f2)
[ "${last:-0}" -lt 33 ] || fail "MemoryMax=32M: touched $last MiB"
run mem256 --memory-max $((256 << 20)) --upper-size $((8 << 20)) -- probe mem 96
expect mem256 "mem_done=96"
ok "MemoryMax: 32M kills (OOM) after $last MiB of 96; 256M lets 96 MiB through"
run cpu20 --cpu-quota 20 -- probe cpu 1000
cpu=$(sed -n 's/^cpu_ms=//p' "$T/cpu20")
[ "${cpu:-9999}" -lt 400 ] || fail "CPUQuota=20%: $cpu ms of CPU in 1 s"
ok "CPUQuota=20%: $cpu ms of CPU in 1000 ms"

# --- freeze, kill -------------------------------------------------------------------------
run freeze --freeze-test --timeout 1 -- probe sleep
expect freeze "freeze=frozen"
expect freeze "thaw=thawed"
expect freeze "status=killed:9"
ok "freeze and thaw through cgroup.freeze; cgroup.kill ends a running instance"
run cleanup-first --cleanup-first --timeout 5 -- probe sleep
expect cleanup-first "cleanup_first=ok"
expect cleanup-first "status=killed:9"
! grep -q "^timeout=" "$T/cleanup-first" || fail "cleanup-first: the instance survived its cleanup"
ok "envelope_cleanup kills the tree and removes the cgroups before pid 1 is reaped"
run tree --exec /bin/busybox --timeout 2 -- sh -c \
	'sleep 100 & sleep 100 & setsid sleep 100 & (sleep 100 &) ; echo tree=$(ls /proc | grep -c "^[0-9]"); wait'
grep -Eq '^tree=[5-9]$' "$T/tree" || fail "tree: $(cat "$T/tree")"
expect tree "status=killed:9"
ok "a forking shell (busybox from the host as a memfd) in the envelope: its whole tree dies with cgroup.kill, cgroup removed"

envelope_no_leftovers
ok "no cgroup left behind"
echo "envelope: $CHECKS checks passed"
