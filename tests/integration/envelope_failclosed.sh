#!/bin/bash
# The envelope fails closed: with one step made impossible at a time, the
# spawn is refused, its struct step_error names the step, the target program
# never runs (it would write "ran" into a marker file passed as fd 3, and print
# TARGET-RAN), and no cgroup, mount or process remains. The same target with
# nothing broken does write the marker (so the check can fail).
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

mounts_before=$(wc -l </proc/self/mountinfo)

# refused NAME STEP [envelope-run options]: the spawn fails at STEP, no target ran
refused() {
	local name=$1 step=$2
	shift 2
	: >"$T/marker-$name"
	run "$name" --marker "$T/marker-$name" "$@" -- probe marker
	grep -q "^spawn-failed step=$step errno=" "$T/$name" ||
		{ sed 's/^/    | /' "$T/$name" >&2; fail "$name: expected a refusal at step '$step'"; }
	expect "$name" "rc=2"
	[ ! -s "$T/marker-$name" ] || fail "$name: the target ran (marker written)"
	! grep -q TARGET-RAN "$T/$name" || fail "$name: the target ran (output)"
	! grep -q '^status=' "$T/$name" || fail "$name: an instance ran"
	[ -n "${NO_LEFTOVER_CHECK:-}" ] || envelope_no_leftovers
	ok "$name: refused at '$step' ($(sed -n 's/^spawn-failed step=[^=]*errno=\([0-9]*\).*/errno \1/p' "$T/$name")), target never ran, nothing left"
}

# the control: nothing broken, the target runs and writes its marker
: >"$T/marker-control"
run control --marker "$T/marker-control" --syscalls "@system-service" -- probe marker
expect control "status=exited:0"
expect control "TARGET-RAN"
[ "$(cat "$T/marker-control")" = ran ] || fail "control: marker not written through fd 3"
ok "control: with every step possible the target runs and writes the marker"

# the lower layer is a file, not a directory: cloned, it cannot be attached
echo not-a-directory >"$T/not-a-directory"
refused no-lower "mount overlay" --lower "$T/not-a-directory"
refused bad-seccomp "seccomp" --seccomp-invalid
# violations but no number left for the seccomp listener (fds 0-3 taken)
refused no-listener "seccomp" --violations keyctl --nofile 4
refused setup-fails "setup in parent" --fail-setup
refused bad-hostname "hostname" --hostname "$(printf 'h%.0s' $(seq 80))"
refused huge-nofile "rlimits" --nofile 2000000000
refused exec-fails "exec" --exec /dev/null
refused bad-pids-limit "cgroup pids" --tasks-max 99999999
# a cgroup that cannot be created: the instance's directory already exists
unified=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
self=$(sed -n 's/^0:://p' /proc/self/cgroup)
mkdir -p "$unified$self/$CGNAME/taken"
NO_LEFTOVER_CHECK=1 refused cgroup-taken "cgroup create" --id taken
rmdir "$unified$self/$CGNAME/taken" "$unified$self/$CGNAME"
envelope_no_leftovers
[ "$(wc -l </proc/self/mountinfo)" -eq "$mounts_before" ] || fail "mounts leaked"
ok "no mount leaked into the caller's namespace"
echo "envelope_failclosed: $CHECKS checks passed"
