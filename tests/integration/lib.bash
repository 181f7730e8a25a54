# Shared helpers for integration tests (bash). Each test re-executes itself in
# private namespaces (mount + network at least) so nothing it does reaches the
# host: call `enter_private_namespaces "$@"` first.
set -u

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=$REPO/${BUILD:-build}
AGENT=$BUILD_DIR/mtd-agent
MTDCTL=$BUILD_DIR/mtdctl
TEST_NAME=$(basename "$0" .sh)
CHECKS=0

fail() {
	echo "FAIL [$TEST_NAME]: $*" >&2
	# the agent's own account, before the work directory goes with the exit
	if [ -s "${AGENT_LOG:-}" ]; then
		echo "--- the agent's stderr (last 30 lines):" >&2
		tail -n 30 "$AGENT_LOG" >&2
	fi
	exit 1
}

skip() {
	echo "SKIP [$TEST_NAME]: $*" >&2
	exit 77
}

ok() {
	CHECKS=$((CHECKS + 1))
	echo "  ok: $*"
}

need_root() {
	[ "$(id -u)" -eq 0 ] || skip "needs root"
}

# Re-run this script inside new mount + network (+ uts, ipc) namespaces; the
# outer shell waits and returns its status. Mount changes are private, so
# whatever the test mounts disappears with the namespace.
enter_private_namespaces() {
	if [ "${MTD_TEST_IN_NAMESPACE:-}" != "1" ]; then
		need_root
		[ -x "$AGENT" ] && [ -x "$MTDCTL" ] || fail "build first: $AGENT, $MTDCTL"
		MTD_TEST_IN_NAMESPACE=1 exec unshare --mount --net --uts --ipc --propagation private \
			-- bash "$0" "$@"
	fi
	ip link set lo up
}

# A fresh work directory, removed on exit together with any agent left running.
WORK=""
AGENT_PID=""
cleanup_work() {
	if [ -n "$AGENT_PID" ] && kill -0 "$AGENT_PID" 2>/dev/null; then
		kill -KILL "$AGENT_PID" 2>/dev/null
		wait "$AGENT_PID" 2>/dev/null
	fi
	remove_test_cgroups
	[ -n "$WORK" ] && rm -rf "$WORK"
}
make_work_dir() {
	WORK=$(mktemp -d /tmp/mtd-test.XXXXXX)
	chmod 0755 "$WORK"
	trap cleanup_work EXIT
	mkdir -p "$WORK/policies" "$WORK/state" "$WORK/run" "$WORK/log" "$WORK/keys"
	chmod 0755 "$WORK/run"
}

# write_key FILE: a 32-byte key as 64 hex digits.
write_key() {
	od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$1"
	echo >>"$1"
	chmod 0600 "$1"
}

# write_host_policy NAME PORTS BACKEND: a host service (only its port rotates).
write_host_policy() {
	local name=$1 ports=$2 backend=$3
	[ -f "$WORK/keys/$name.key" ] || write_key "$WORK/keys/$name.key"
	cat >"$WORK/policies/$name.policy" <<POLICY
[Service]
Name=$name
Backend=$backend

[Rotation]
PublicPorts=$ports
Interval=60s
Grace=10s
KeyFile=$WORK/keys/$name.key
POLICY
}

# setup_client_namespace: this namespace is the server (10.213.0.1,
# fd00:213::1); "cli" is a client namespace (10.213.0.2, fd00:213::2) joined by
# a veth pair. /run/netns is a tmpfs of this private mount namespace, so the
# client namespace is invisible to the host and vanishes with the test.
setup_client_namespace() {
	mkdir -p /run/netns
	mount -t tmpfs -o mode=0755 mtd-test-netns /run/netns
	ip netns add cli
	ip link add veth-srv type veth peer name veth-cli netns cli
	ip addr add 10.213.0.1/24 dev veth-srv
	ip -6 addr add fd00:213::1/64 dev veth-srv nodad
	ip link set veth-srv up
	ip -n cli addr add 10.213.0.2/24 dev veth-cli
	ip -n cli -6 addr add fd00:213::2/64 dev veth-cli nodad
	ip -n cli link set veth-cli up
	ip -n cli link set lo up
}
in_client() { ip netns exec cli "$@"; }

# Instances' cgroups get a test-unique parent, removed on exit even when the
# agent could not (killed, failed); a test running several agents gives each
# "$INSTANCES_CGROUP-NAME" (crowdsec.sh), removed the same way.
INSTANCES_CGROUP="mtd-test-instances-$$"
remove_test_cgroups() {
	local d sub
	for d in $(find /sys/fs/cgroup -maxdepth 6 -type d \( -name "$INSTANCES_CGROUP" -o \
		-name "$INSTANCES_CGROUP-*" \) 2>/dev/null); do
		find "$d" -depth -type d | while read -r sub; do
			[ -e "$sub/cgroup.kill" ] && echo 1 >"$sub/cgroup.kill" 2>/dev/null
			for p in $(cat "$sub/cgroup.procs" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
			for _ in $(seq 50); do rmdir "$sub" 2>/dev/null && break; sleep 0.1; done
		done
	done
}

SOCKET=""
AGENT_LOG=""
# start_agent [EXTRA ARGS]: starts the agent on $WORK and waits for its socket.
start_agent() {
	SOCKET=$WORK/run/control.sock
	AGENT_LOG=$WORK/agent.stderr
	"$AGENT" --policy-dir "$WORK/policies" --state-dir "$WORK/state" \
		--runtime-dir "$WORK/run" --audit-log "$WORK/log/audit.log" \
		--instances-cgroup "$INSTANCES_CGROUP" "$@" 2>>"$AGENT_LOG" &
	AGENT_PID=$!
	# A killed agent leaves its socket file: wait for an answer, not a file.
	# (START_AGENT_SECONDS: a start with a thousand services takes longer.)
	for _ in $(seq 1 $((${START_AGENT_SECONDS:-10} * 20))); do
		"$MTDCTL" --socket "$SOCKET" status >/dev/null 2>&1 && return 0
		kill -0 "$AGENT_PID" 2>/dev/null || {
			cat "$AGENT_LOG" >&2
			fail "the agent exited during start"
		}
		sleep 0.05
	done
	fail "the agent did not create $SOCKET"
}

# stop_agent: SIGTERM and wait; returns the agent's exit status.
stop_agent() {
	local rc
	kill -TERM "$AGENT_PID"
	wait "$AGENT_PID"
	rc=$?
	AGENT_PID=""
	return $rc
}

mtdctl() {
	"$MTDCTL" --socket "$SOCKET" "$@"
}

# as_user UID GID[,GROUPS] CMD...: run as an unprivileged user.
as_user() {
	local uid=$1 groups=$2
	shift 2
	local gid=${groups%%,*}
	setpriv --reuid="$uid" --regid="$gid" --groups="$groups" --inh-caps=-all -- "$@"
}

assert_contains() { # HAYSTACK NEEDLE WHAT
	case "$1" in
	*"$2"*) ok "$3" ;;
	*) fail "$3: expected to find '$2' in: $1" ;;
	esac
}

# make_web_snapshot DIR: a signed snapshot of busybox httpd serving /www, with
# a shell and two CGI scripts that misbehave on request (for the detection
# tests): /cgi-bin/mount calls mount(2) (then writes /tmp/after-violation),
# /cgi-bin/tamper drops an executable
# in /tmp (a new executable is drift even inside Writable=), /cgi-bin/egress
# connects out, /cgi-bin/whoami prints the instance id. The tree is root's and not writable by group or others (the
# verifier refuses anything else); it has no /tmp: the envelope makes each
# instance's (1777) in its writable layer.
# Keys: $WORK/keys/snap.key, $WORK/keys/snap.pub.
make_web_snapshot() {
	local dest=$1 t=$WORK/tree
	mkdir -p "$t/bin" "$t/www/cgi-bin" "$t/etc" "$t/dev" "$t/proc" "$(dirname "$dest")"
	cp /bin/busybox "$t/bin/busybox"
	ln -sf busybox "$t/bin/sh"
	echo "<h1>served from a signed snapshot</h1>" >"$t/www/index.html"
	printf '#!/bin/sh\necho "Content-type: text/plain"\necho\n/bin/busybox mount -t tmpfs x /tmp 2>&1\necho mounted\necho ran >/tmp/after-violation\n' >"$t/www/cgi-bin/mount"
	printf '#!/bin/sh\necho "Content-type: text/plain"\necho\necho evil >/tmp/dropped\nchmod 0755 /tmp/dropped\necho tampered\n' >"$t/www/cgi-bin/tamper"
	# /cgi-bin/egress: one connection to 10.213.0.2:7000 (declared in the
	# tests' Egress=), then five to port 9999 (not declared)
	printf '#!/bin/sh\necho "Content-type: text/plain"\necho\necho ping | /bin/busybox nc -w 2 10.213.0.2 7000 && echo declared-ok\nfor i in 1 2 3 4 5; do /bin/busybox nc -w 1 10.213.0.2 9999 </dev/null && echo undeclared-ok; done\necho done\n' >"$t/www/cgi-bin/egress"
	# /cgi-bin/whoami: the instance id (MTD_INSTANCE= in its environment)
	printf '#!/bin/sh\necho "Content-type: text/plain"\necho\necho "instance=$MTD_INSTANCE"\n' >"$t/www/cgi-bin/whoami"
	chmod 0755 "$t/www/cgi-bin/mount" "$t/www/cgi-bin/tamper" "$t/www/cgi-bin/egress" "$t/www/cgi-bin/whoami"
	printf 'root:x:0:0::/:/bin/sh\nwww:x:1000:1000::/www:/bin/sh\n' >"$t/etc/passwd"
	printf 'root:x:0:\nwww:x:1000:\n' >"$t/etc/group"
	chmod -R go-w "$t"
	[ -f "$WORK/keys/snap.key" ] || "$MTDCTL" keygen --out "$WORK/keys/snap" >/dev/null || fail "keygen"
	"$MTDCTL" snapshot create --key "$WORK/keys/snap.key" "$t" "$dest" >/dev/null ||
		fail "snapshot create"
}

# make_probe_snapshot: a signed snapshot $WORK/snapshots/probe holding the
# static hostile program tests/fixtures/probe (/bin/probe) and a user
# "probe" (1000). Keys: $WORK/keys/snap.key, $WORK/keys/snap.pub.
make_probe_snapshot() {
	local t=$WORK/probe-tree
	mkdir -p "$t/bin" "$t/etc" "$t/tmp" "$t/dev" "$t/proc" "$WORK/snapshots"
	cc -static -O2 -o "$t/bin/probe" "$REPO/tests/fixtures/probe.c" || fail "building the static probe"
	printf 'root:x:0:0::/:/bin/sh\nprobe:x:1000:1000::/:/bin/sh\n' >"$t/etc/passwd"
	printf 'root:x:0:\nprobe:x:1000:\n' >"$t/etc/group"
	chmod -R go-w "$t" # root's alone, whatever the umask
	[ -f "$WORK/keys/snap.key" ] || "$MTDCTL" keygen --out "$WORK/keys/snap" >/dev/null || fail "keygen"
	"$MTDCTL" snapshot create --key "$WORK/keys/snap.key" "$t" "$WORK/snapshots/probe" >/dev/null ||
		fail "snapshot create"
}

# write_probe_service NAME PORTS "EXEC" [LINE...]: a managed service running
# EXEC from the probe snapshot, no health check, its own key; each LINE goes
# into [Envelope] (an "[Service]"-prefixed LINE, "[Service] User=probe",
# into [Service]). AddressPool= lines may be given as LINEs with the prefix
# "[Rotation] "; without one the pool is 10.215.0.0/24.
write_probe_service() {
	local name=$1 ports=$2 exec=$3 line service="" rotation="" envelope=""
	shift 3
	for line in "$@"; do
		case "$line" in
		"[Service] "*) service+="${line#\[Service\] }"$'\n' ;;
		"[Rotation] "*) rotation+="${line#\[Rotation\] }"$'\n' ;;
		*) envelope+="$line"$'\n' ;;
		esac
	done
	[ -n "$rotation" ] || rotation=$'AddressPool=10.215.0.0/24\n'
	write_key "$WORK/keys/$name.key"
	cat >"$WORK/policies/$name.policy" <<POLICY
[Service]
Name=$name
Snapshot=$WORK/snapshots/probe
SnapshotKey=$WORK/keys/snap.pub
Exec=$exec
ListenPort=8080/tcp
HealthCheck=none
${service}
[Rotation]
PublicPorts=$ports
Interval=60s
KeyFile=$WORK/keys/$name.key
${rotation}
[Envelope]
SystemCalls=@system-service
${envelope%$'\n'}
POLICY
}

# http_get SERVICE POLICY HOST PATH: a GET through the service's public port,
# from the client namespace.
http_get() {
	printf 'GET %s HTTP/1.0\r\n\r\n' "$4" | in_client timeout 8 "$MTDCTL" connect "$1" --policy "$2" "$3" 2>&1
}

# json_instances: mtdctl --json instances on one line
json_instances() { mtdctl --json instances | tr -d ' \n'; }

# wait_for CONDITION-COMMAND [TRIES]: retry every 0.1 s
wait_for() {
	local tries=${2:-100}
	for _ in $(seq 1 "$tries"); do
		eval "$1" && return 0
		sleep 0.1
	done
	return 1
}
