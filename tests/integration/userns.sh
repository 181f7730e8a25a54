#!/bin/bash
# Host root (issue 12, finding 4): no instance process is ever host uid 0.
# Every instance runs in a user namespace of its own mapped onto a private
# range of host ids (agent/sandbox/sandbox.h, docs/userns.md), entered after its
# mounts, so that its root is nobody on the host and has no privilege over
# its own mount, network, uts, ipc, pid or cgroup namespaces.
#
#   1. control: the hostile probe as host uid 0 without any capability (what
#      the instance's root was before) rewrites /proc/irq/default_smp_affinity
#      and chmods a host-owned file: the attacks below are real ones.
#   2. the same probe as the instance's root, holding every capability a
#      policy could give it: /proc/irq, /proc/sys (write, remount, unmount),
#      proc and sysfs mounts, /proc/kpageflags, chmod/chown of the host's
#      /dev/null, ids outside its range, sethostname, raw sockets, a nested
#      user namespace (with a network namespace it would own) all fail;
#      a snapshot file it chmods and chowns is copied up, the host's stays.
#   3. a service that starts as root and drops to its own user (the probe's
#      "drop": master binds port 80, writes /run, a worker setuid 1000 writes
#      /tmp and serves): works; seen from the host, the master is the range's
#      first id, the worker that + 1000, both inside the range printed.
#   4. the same service under the agent, with User= unset (root inside),
#      Capabilities=CAP_NET_BIND_SERVICE CAP_SETUID CAP_SETGID, ListenPort=80
#      and HealthCheck=tcp: healthy, a client gets the worker's answer through
#      the public port, `mtdctl instances` gives the range (host_ids), and no
#      process of the instance's cgroup has a host id outside it or is uid 0.
# Runs in its own mount + network namespaces (client namespace for part 4);
# cgroups removed on every exit path. Needs root, cc, busybox-static.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
export BUILD_AS_GIVEN=${BUILD_AS_GIVEN:-$BUILD} # lib.bash (part 4) wants it relative
case "$BUILD" in /*) ;; *) BUILD="$root/$BUILD" ;; esac

[ "$(id -u)" -eq 0 ] || { echo "skip: needs root"; exit 77; }
if [ "${MTD_ENVELOPE_IN_NS:-}" != 1 ]; then
	MTD_ENVELOPE_IN_NS=1 exec unshare --mount --net --propagation private -- bash "$0" "$@"
fi
. "$here/lib-envelope.bash"
command -v setpriv >/dev/null || { echo "skip: setpriv (util-linux) missing"; exit 77; }
command -v nsenter >/dev/null || { echo "skip: nsenter (util-linux) missing"; exit 77; }
envelope_setup
ip link set lo up

mkdir -p "$LOWER/etc"
printf 'root:x:0:0::/:/bin/sh\nprobe:x:1000:1000::/:/bin/sh\n' >"$LOWER/etc/passwd"
chmod 0644 "$LOWER/etc/passwd"
LOWER_SUM=$(lower_listing)
ALL_CAPS=CAP_SYS_ADMIN,CAP_NET_ADMIN,CAP_NET_RAW,CAP_DAC_OVERRIDE,CAP_DAC_READ_SEARCH,CAP_FOWNER,CAP_CHOWN,CAP_SETUID,CAP_SETGID,CAP_SYS_RAWIO,CAP_SYS_RESOURCE,CAP_SYS_PTRACE,CAP_MKNOD,CAP_SYS_CHROOT

# in_range ID BASE: 0 when BASE <= ID < BASE + 65536
in_range() { [ "$1" -ge "$2" ] && [ "$1" -lt $(($2 + 65536)) ]; }

# ids_of_pids BASE PID...: every Uid:/Gid: field of each pid in the range, none 0
check_host_ids() {
	local base=$1 pid id
	shift
	for pid in "$@"; do
		for id in $(awk '/^(Uid|Gid):/ {print $2, $3, $4, $5}' "/proc/$pid/status"); do
			[ "$id" -ne 0 ] || fail "pid $pid has host id 0: $(grep -E '^(Uid|Gid):' "/proc/$pid/status")"
			in_range "$id" "$base" || fail "pid $pid: host id $id outside $base..$((base + 65535))"
		done
	done
}

# --- 1. control: host uid 0 without capabilities --------------------------------------
HOSTFILE=$T/host-owned
echo host >"$HOSTFILE"
chmod 0644 "$HOSTFILE"
SNAPCOPY=$T/snap-copy
cp "$LOWER/etc/passwd" "$SNAPCOPY"
setpriv --bounding-set=-all --inh-caps=-all --no-new-privs -- \
	"$T/probe" hostroot "$HOSTFILE" "$SNAPCOPY" >"$T/control" 2>&1
expect control "irq_default_affinity=ok"
expect control "host_file_chmod=ok"
expect control "host_file_chown=ok"
expect control "userns_create=ok"
ok "control: host uid 0 without capabilities rewrites /proc/irq/default_smp_affinity, chmods a root-owned file, makes a user + network namespace"

# --- 2. the instance's root, every capability ------------------------------------------
devnull_before=$(stat -c '%a %u %g' /dev/null)
run hostroot --caps "$ALL_CAPS" -- probe hostroot /dev/null /etc/passwd
expect hostroot "status=exited:0"
expect hostroot "hostroot_done=1"
expect hostroot "uid_inside=0"
expect hostroot "irq_default_affinity=EACCES"
if ls /proc/irq/ | grep -q '^[0-9]'; then
	expect hostroot "irq_affinity=EACCES"
fi
expect hostroot "proc_sys_write=EACCES"
expect hostroot "proc_sys_remount=EPERM"
expect hostroot "proc_sys_umount=EPERM"
expect hostroot "proc_mount=EPERM"
expect hostroot "sysfs_mount=EPERM"
expect hostroot "kpageflags_read=EACCES"
expect hostroot "host_file_stat=ok"
expect hostroot "host_file_chmod=EPERM"
expect hostroot "host_file_chown=EPERM"
expect hostroot "setuid_outside=EINVAL"
expect hostroot "setgid_outside=EINVAL"
expect hostroot "sethostname=EPERM"
expect hostroot "raw_socket=EPERM"
expect hostroot "userns_create=ENOSPC" # max_user_namespaces
expect hostroot "netns_create=ENOSPC"  # max_mnt_namespaces, max_net_namespaces
[ "$(stat -c '%a %u %g' /dev/null)" = "$devnull_before" ] || fail "/dev/null changed on the host"
ok "root inside with $(echo "$ALL_CAPS" | tr ',' '\n' | wc -l) capabilities: /proc/irq and /proc/sys EACCES, /proc/sys not remountable, no proc/sysfs mount, /dev/null not its own, no id outside its range, no hostname, no raw socket, no namespace of its own with CAP_SYS_ADMIN, no user namespace (max_*_namespaces=0 in its own)"
expect hostroot "snapshot_chmod=ok"
expect hostroot "snapshot_chown=ok"
lower_unchanged
[ "$(stat -c '%a %u %g' "$LOWER/etc/passwd")" = "644 0 0" ] || fail "the snapshot's /etc/passwd changed"
ok "the snapshot's files are the instance's root's (idmapped): chmod/chown copied up, the host's file unchanged"

# --- 3. root drops to its user: master and worker --------------------------------------
"$RUNNER" --cgroup-name "$CGNAME" --id drop --lower "$LOWER" --exec "$T/probe" --memfd \
	--caps CAP_NET_BIND_SERVICE,CAP_SETUID,CAP_SETGID --timeout 120 \
	-- probe drop 1000 1000 80 >"$T/drop" 2>&1 &
RUNNER_PID=$!
for _ in $(seq 100); do grep -q "worker_ready=1" "$T/drop" && break; sleep 0.1; done
expect drop "worker_ready=1"
expect drop "master_uid=0"
expect drop "master_bind=ok"
expect drop "master_pidfile=ok"
expect drop "worker_setuid=ok"
expect drop "worker_uid=1000"
expect drop "worker_tmp=ok"
expect drop "worker_root_file=EACCES"
expect drop "worker_back_to_root=EPERM"
base=$(sed -n 's/^host_ids=//p' "$T/drop")
[ -n "$base" ] && [ "$base" -ge 65536 ] || fail "no host id range printed: $base"
cgdir=$(sed -n 's/^envelope-run: cgroups \(.*\) (.*)$/\1/p' "$T/drop")/drop
pids=$(cat "$cgdir/cgroup.procs")
[ "$(echo "$pids" | wc -w)" -eq 2 ] || fail "expected master and worker in $cgdir: $pids"
check_host_ids "$base" $pids
uids=$(for p in $pids; do awk '/^Uid:/ {print $2}' "/proc/$p/status"; done | sort -n | tr '\n' ' ')
[ "$uids" = "$base $((base + 1000)) " ] || fail "host uids $uids, expected $base and $((base + 1000))"
# envelope-run gives the instance no link: lo (brought up from the host) will do
reply=$(nsenter -t "$(echo "$pids" | head -n 1)" -n -- \
	bash -c 'ip link set lo up && exec 3<>/dev/tcp/127.0.0.1/80 && cat <&3')
[ "$reply" = "served by worker uid=1000" ] || fail "the worker did not answer on port 80: $reply"
ok "master as root binds port 80 and writes /run, worker drops to 1000, writes /tmp and serves; host uids $base and $((base + 1000))"
echo 1 >"$cgdir/cgroup.kill"
wait "$RUNNER_PID"
envelope_no_leftovers
ok "range $base..$((base + 65535)) (region 0x70000000..0x7ffdffff): no instance id is a host user's"

# --- 4. the same service under the agent ---------------------------------------------
# lib.bash's helpers (work dir, agent, client namespace) from here on; this
# script already runs in namespaces of its own.
trap - EXIT
envelope_cleanup
checks=$CHECKS
BUILD=$BUILD_AS_GIVEN
. "$here/lib.bash"
CHECKS=$checks
make_work_dir
setup_client_namespace
make_probe_snapshot
write_key "$WORK/keys/drop.key"
P=$WORK/policies/drop.policy
cat >"$P" <<POLICY
[Service]
Name=drop
Snapshot=$WORK/snapshots/probe
SnapshotKey=$WORK/keys/snap.pub
Exec=/bin/probe drop 1000 1000 80
ListenPort=80/tcp
HealthInterval=1s

[Rotation]
PublicPorts=21000-21999
Interval=60s
KeyFile=$WORK/keys/drop.key
AddressPool=10.216.0.0/24

[Envelope]
SystemCalls=@system-service @network-io
Capabilities=CAP_NET_BIND_SERVICE CAP_SETUID CAP_SETGID
Writable=/run /tmp
TasksMax=16
POLICY
"$MTDCTL" policy check "$WORK/policies" >/dev/null || fail "the test policy does not validate"

# nginx itself (master as root, workers as www-data) when an nginx binary is
# at hand: $MTD_TEST_NGINX, else the one `make deps` unpacks (scripts/deps),
# else /usr/sbin/nginx;
# its snapshot is the binary, its library closure, a config and www-data.
NGINX=${MTD_TEST_NGINX:-/var/cache/mtd-agent/nginx/usr/sbin/nginx}
[ -x "$NGINX" ] || NGINX=/usr/sbin/nginx
make_nginx_snapshot() {
	local t=$WORK/nginx-tree lib
	# no /tmp: the envelope makes each instance's (1777, its root's)
	mkdir -p "$t/usr/sbin" "$t/etc/nginx" "$t/var/lib/nginx" "$t/var/log/nginx" "$t/run" \
		"$t/dev" "$t/proc"
	cp "$NGINX" "$t/usr/sbin/nginx"
	for lib in $(ldd "$NGINX" | grep -o '/[^ ]*'); do
		mkdir -p "$t$(dirname "$lib")"
		cp -L "$lib" "$t$lib"
	done
	printf 'root:x:0:0::/root:/bin/sh\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n' >"$t/etc/passwd"
	printf 'root:x:0:\nwww-data:x:33:\n' >"$t/etc/group"
	printf 'passwd: files\ngroup: files\n' >"$t/etc/nsswitch.conf"
	cat >"$t/etc/nginx/nginx.conf" <<'CONF'
user www-data;
worker_processes 2;
pid /run/nginx.pid;
daemon off;
error_log stderr notice;
events { worker_connections 64; }
http {
	access_log off;
	default_type text/plain;
	client_body_temp_path /var/lib/nginx/body;
	proxy_temp_path /var/lib/nginx/proxy;
	fastcgi_temp_path /var/lib/nginx/fastcgi;
	uwsgi_temp_path /var/lib/nginx/uwsgi;
	scgi_temp_path /var/lib/nginx/scgi;
	server {
		listen 80;
		location / { return 200 "served by nginx\n"; }
	}
}
CONF
	chmod -R go-w "$t" # root's alone, whatever the umask
	"$MTDCTL" snapshot create --key "$WORK/keys/snap.key" "$t" "$WORK/snapshots/nginx" >/dev/null ||
		fail "nginx snapshot create"
}
if [ -x "$NGINX" ]; then
	make_nginx_snapshot
	write_key "$WORK/keys/nginx.key"
	NP=$WORK/policies/nginx.policy
	cat >"$NP" <<POLICY
[Service]
Name=nginx
Snapshot=$WORK/snapshots/nginx
SnapshotKey=$WORK/keys/snap.pub
Exec=/usr/sbin/nginx -c /etc/nginx/nginx.conf
ListenPort=80/tcp
HealthInterval=1s

[Rotation]
PublicPorts=22000-22999
Interval=60s
KeyFile=$WORK/keys/nginx.key
AddressPool=10.217.0.0/24

[Envelope]
SystemCalls=@system-service @network-io
Capabilities=CAP_NET_BIND_SERVICE CAP_SETUID CAP_SETGID CAP_CHOWN
Writable=/run /var/lib/nginx /var/log/nginx /tmp
TasksMax=16
POLICY
	"$MTDCTL" policy check "$WORK/policies" >/dev/null || fail "the nginx policy does not validate"
fi

start_agent
wait_for "json_instances | grep -q '\"id\":\"drop-[0-9]*\"[^}]*\"state\":\"healthy\"'" 200 ||
	fail "the instance did not become healthy: $(json_instances)"
reply=$(echo | in_client timeout 8 "$MTDCTL" connect drop --policy "$P" 10.213.0.1 2>&1)
[ "$reply" = "served by worker uid=1000" ] || fail "through the public port: $reply"
ok "under the agent: healthy on port 80 (CAP_NET_BIND_SERVICE inside), a client gets the worker's answer through the public port"
# instance_of SERVICE: its one instance's JSON object
instance_of() {
	local objects
	objects=$(json_instances | grep -o "{[^{}]*\"id\":\"$1-[0-9]*\"[^{}]*}")
	[ "$(echo "$objects" | grep -c .)" -eq 1 ] || fail "expected one $1 instance: $(json_instances)"
	echo "$objects"
}
obj=$(instance_of drop)
id=$(echo "$obj" | sed -n 's/.*"id":"\(drop-[0-9]*\)".*/\1/p')
base=$(echo "$obj" | sed -n 's/.*"host_ids":\([0-9]*\).*/\1/p')
[ -n "$id" ] && [ -n "$base" ] || fail "no instance id or host_ids: $(json_instances)"
[ "$base" -ge $((0x70000000)) ] && [ "$base" -lt $((0x7ffe0000)) ] || fail "host_ids $base outside the region"
cgdir=$(find /sys/fs/cgroup -type d -name "$id" -path "*$INSTANCES_CGROUP*" | head -n 1)
pids=$(cat "$cgdir/cgroup.procs")
[ "$(echo "$pids" | wc -w)" -eq 2 ] || fail "expected master and worker in $cgdir: $pids"
check_host_ids "$base" $pids
ok "instance $id: host ids $base.. (mtdctl instances host_ids); its $(echo "$pids" | wc -w) processes all inside, none host uid 0"

if [ -x "$NGINX" ]; then
	wait_for "json_instances | grep -q '\"id\":\"nginx-[0-9]*\"[^}]*\"state\":\"healthy\"'" 200 ||
		fail "nginx did not become healthy: $(json_instances)"
	reply=$(printf 'GET / HTTP/1.0\r\n\r\n' | in_client timeout 8 "$MTDCTL" connect nginx --policy "$NP" 10.213.0.1 2>&1)
	assert_contains "$reply" "served by nginx" "nginx answers through the public port"
	obj=$(instance_of nginx)
	id=$(echo "$obj" | sed -n 's/.*"id":"\(nginx-[0-9]*\)".*/\1/p')
	nbase=$(echo "$obj" | sed -n 's/.*"host_ids":\([0-9]*\).*/\1/p')
	[ "$nbase" != "$base" ] || fail "two live instances share the host range $base"
	cgdir=$(find /sys/fs/cgroup -type d -name "$id" -path "*$INSTANCES_CGROUP*" | head -n 1)
	pids=$(cat "$cgdir/cgroup.procs")
	check_host_ids "$nbase" $pids
	uids=$(for p in $pids; do awk '/^Uid:/ {print $2}' "/proc/$p/status"; done | sort -n | uniq -c |
		awk '{print $1 "x" $2}' | tr '\n' ' ')
	[ "$uids" = "1x$nbase 2x$((nbase + 33)) " ] ||
		fail "nginx: expected the master at $nbase and 2 workers at $((nbase + 33)), got $uids"
	ok "nginx $id: master as root inside (host $nbase), 2 workers as www-data (host $((nbase + 33))), serving port 80 through the agent; its own range, none host uid 0"
else
	echo "  skip: no nginx binary at $NGINX (MTD_TEST_NGINX=...): the probe's drop stands in for it"
fi
stop_agent || fail "the agent did not stop cleanly"
echo "userns: $CHECKS checks passed"
