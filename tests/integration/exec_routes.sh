#!/bin/bash
# A hostile instance tries to run new code under a policy that allows no exec
# (issue 12, finding 2). Real instances of the static probe
# (tests/fixtures/probe exec ROUTE) start a new program (the probe in "ran"
# mode, which would print NEW-PROGRAM-RAN) by each route: execve of a snapshot
# binary, execveat on an fd of their own, execveat by path, a memfd moved to
# fd 100 and executed the way the envelope executes (the hole this test was
# written for), a binary written to /tmp, a #! script in /tmp. Two kinds of
# policy without exec: SystemCalls= without execve and execveat and no
# ViolationSystemCalls= at all, and @system-service with
# ViolationSystemCalls=execve execveat.
#
# Checks, on the agent's side, per route: the new program never ran (its line
# is absent from the agent's log); the audit log has a seccomp-violation
# record with the system call (and for the memfd its fd 100 and the memfd it
# points to); that instance was replaced (instance-replaced); what the
# instance printed of its attempt, if the response let it, is EPERM. A
# payload written to /tmp is also drift (new-executable) and that response
# may win the race: then the drift record is the first signal. Also: inside a policy
# without exec vm.memfd_noexec is 2 and memfd_create(MFD_EXEC) is refused.
# Control: the same memfd route under a policy that allows exec runs the new
# program, with no violation (policies with exec work as before).
. "$(dirname "$0")/lib.bash"
command -v cc >/dev/null || skip "cc is missing"
enter_private_namespaces "$@"
make_work_dir
make_probe_snapshot

# A policy without execve and execveat: enough for the static probe.
NO_EXEC_CALLS="@basic-io @file-system @io-event @ipc @memory @signal @timer @network-io \
arch_prctl brk exit exit_group futex getpid gettid getppid getrandom set_tid_address \
set_robust_list rseq rt_sigreturn prlimit64 clock_gettime clock_nanosleep nanosleep pause \
uname getuid geteuid getgid getegid sched_yield"

# service NAME N ROUTE SYSTEMCALLS [VIOLATIONS]: a managed service running
# `probe exec ROUTE` as user probe (as root with AS_ROOT=1); N picks its
# ports and address pool.
service() {
	local name=$1 n=$2 route=$3 calls=$4 violations=${5:-} user=User=probe
	[ "${AS_ROOT:-}" = 1 ] && user=""
	write_key "$WORK/keys/$name.key"
	cat >"$WORK/policies/$name.policy" <<POLICY
[Service]
Name=$name
Snapshot=$WORK/snapshots/probe
SnapshotKey=$WORK/keys/snap.pub
Exec=/bin/probe exec $route
ListenPort=8080/tcp
HealthCheck=none
$user
ReplaceBurst=2

[Rotation]
PublicPorts=$((21000 + n * 100))-$((21000 + n * 100 + 99))
Interval=60s
KeyFile=$WORK/keys/$name.key
AddressPool=10.215.$n.0/24

[Envelope]
SystemCalls=$calls
${violations:+ViolationSystemCalls=$violations}
OnSyscallViolation=kill
POLICY
}

VIOLATE="execve execveat"
service x-execve 1 execve "@system-service" "$VIOLATE"
service x-atfd 2 execveat-fd "$NO_EXEC_CALLS"
service x-atpath 3 execveat-path "@system-service" "$VIOLATE"
service x-memfd 4 memfd "$NO_EXEC_CALLS"
service x-memfd-v 5 memfd "@system-service" "$VIOLATE keyctl"
# root may write /tmp (the snapshot's, 0755): a file in the writable layer;
# the probe user writes to /dev/shm (a tmpfs without noexec)
AS_ROOT=1 service x-written 6 written "$NO_EXEC_CALLS"
service x-script 7 script "@system-service" "$VIOLATE"
AS_ROOT=1 service x-script-tmp 9 script "$NO_EXEC_CALLS"
service ctl-memfd 8 memfd "@system-service"
"$MTDCTL" policy check "$WORK/policies" >/dev/null || fail "the test policies do not validate"

# route_of SERVICE: the route its policy runs
route_of() { sed -n 's|^Exec=/bin/probe exec ||p' "$WORK/policies/$1.policy"; }
# records TYPE: the audit records of that type
records() { grep "\"type\":\"$1\"" "$WORK/log/audit.log"; }
replaced() { records instance-replaced | grep -q "\"service\":\"$1\""; }
services="x-execve x-atfd x-atpath x-memfd x-memfd-v x-written x-script x-script-tmp"

start_agent
# each attempt is a violation and gets the instance replaced
for s in $services; do
	wait_for "replaced $s" 150 || fail "$s: no instance replaced after its exec attempt"
done
wait_for "grep -q '^mtd-ctl-memfd\\[.*NEW-PROGRAM-RAN route=memfd' '$AGENT_LOG'" 100 ||
	fail "control: the memfd route did not run a new program under a policy with exec"
stop_agent || fail "the agent did not stop cleanly"
log=$("$MTDCTL" audit verify --key "$WORK/state/audit-verify.key" "$WORK/log/audit.log") ||
	fail "the audit log does not verify: $log"

# first_violation SERVICE: the service's first seccomp-violation record
first_violation() { records seccomp-violation | grep "\"service\":\"$1\"" | head -n 1; }
# first_signal SERVICE: its first seccomp-violation or drift record
first_signal() { grep '"type":"\(seccomp-violation\|drift\)"' "$WORK/log/audit.log" | grep "\"service\":\"$1\"" | head -n 1; }
instance_of() { printf '%s\n' "$1" | sed -n 's/.*"instance":"\([^"]*\)".*/\1/p'; }

for s in $services; do
	r=$(route_of "$s")
	case $r in
	execve | written | script) want=execve ;;
	*) want=execveat ;;
	esac
	grep -q "^mtd-$s\\[.*NEW-PROGRAM-RAN" "$AGENT_LOG" && fail "$s: route $r ran a new program"
	record=$(first_signal "$s")
	id=$(instance_of "$record")
	[ -n "$id" ] || fail "$s: no seccomp-violation (or drift) record"
	case "$record" in
	*'"type":"drift"'*)
		# A payload in the writable layer is drift too, and that
		# response may stop the instance before its exec reaches the
		# agent (exec_routes_envelope.sh covers the exec alone).
		assert_contains "$record" '"path":"/tmp/payload' "$s ($r): $id's payload is drift, the first signal"
		record=$(first_violation "$s")
		[ -z "$record" ] || assert_contains "$record" "\"syscall\":\"$want\"" \
			"$s ($r): a later instance's attempt is a violation ($want)"
		;;
	*) assert_contains "$record" "\"syscall\":\"$want\"" "$s ($r): $id's attempt is a violation ($want), audited with its evidence" ;;
	esac
	records instance-replaced | grep -q "\"old\":\"$id\"" || fail "$s: no instance-replaced record naming $id"
	# What the instance saw: killed by the response, it may not have
	# printed it; what it printed must be EPERM.
	results=$(grep "^mtd-$s\\[$s-[0-9]*\\]: exec_route=" "$AGENT_LOG" | sed 's/.*result=//' | sort -u | tr '\n' ' ')
	case "$results" in
	"" | "EPERM ") ;;
	*) fail "$s: the exec attempt returned $results, not EPERM" ;;
	esac
	payload=$(grep -m1 "^mtd-$s\\[.*payload=" "$AGENT_LOG" | sed 's/.*payload=/, /')
	ok "$s ($r$payload): the new program never ran, $id was replaced${results:+, the call saw $results}"
done

# the memfd route: the evidence names fd 100 and the memfd behind it
for s in x-memfd x-memfd-v; do
	record=$(first_violation "$s")
	assert_contains "$record" '"exec_fd":100' "$s: the evidence names fd 100"
	assert_contains "$record" '"exec_fd_target":"/memfd:payload' "$s: and the memfd behind it"
	lines=$(grep "^mtd-$s\\[" "$AGENT_LOG")
	printf '%s\n' "$lines" | grep -q ': memfd_noexec=2$' || fail "$s: vm.memfd_noexec is not 2 inside"
	printf '%s\n' "$lines" | grep -q ': memfd_exec_flag=EACCES$' ||
		fail "$s: memfd_create(MFD_EXEC) was not refused: $(printf '%s\n' "$lines" | grep memfd_exec_flag)"
	ok "$s: vm.memfd_noexec=2 inside, memfd_create(MFD_EXEC) refused (EACCES)"
done

# the control: exec allowed, the same route runs, nothing is a violation
[ -z "$(first_violation ctl-memfd)" ] || fail "control: a violation under a policy that allows exec"
grep -q '^mtd-ctl-memfd\[.*memfd_noexec=0$' "$AGENT_LOG" || fail "control: vm.memfd_noexec changed for a policy with exec"
ok "control: under a policy with exec the memfd route runs the new program, no violation, memfd_noexec untouched"
echo "$TEST_NAME: $CHECKS checks passed"
