#!/bin/bash
# The hardened unit's sandbox allows what the agent and its envelopes need and
# nothing more: a probe runs under exactly the [Service] settings of
# systemd/mtd-agent.service.in (ExecStart and readiness replaced by a drop-in)
# inside a real systemd, and checks each need and each refusal for real.
cd "$(dirname "$0")/../.." || exit 1
. tests/e2e/lib-systemd.bash

fail() {
	sd_log "FAIL: $*"
	exit 1
}

sd_init
mkdir -p "$SD_STAGE/usr/local/sbin" "$SD_STAGE/etc/systemd/system/mtd-agent.service.d"
sed 's|@SBINDIR@|/usr/local/sbin|g; s|@BINDIR@|/usr/local/bin|g' systemd/mtd-agent.service.in \
	>"$SD_STAGE/etc/systemd/system/mtd-agent.service"
cat >"$SD_STAGE/etc/systemd/system/mtd-agent.service.d/probe.conf" <<'EOF2'
[Service]
Type=oneshot
RemainAfterExit=no
WatchdogSec=0
ExecStart=
ExecStart=/usr/local/sbin/mtd-sandbox-probe
StandardOutput=journal
EOF2
cat >"$SD_STAGE/usr/local/sbin/mtd-sandbox-probe" <<'SH'
#!/bin/bash
# Each line: "ok NAME" or "bad NAME". Needs first, refusals after.
t() { # t NAME CMD... : must succeed
	local n=$1 out; shift
	if out=$("$@" 2>&1); then echo "ok $n"; else echo "bad $n: $(tail -n 1 <<<"$out")"; fi
}
f() { # f NAME CMD... : must fail
	local n=$1; shift
	if "$@" >/dev/null 2>&1; then echo "bad $n"; else echo "ok $n"; fi
}
cg=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)
t cgroup-mkdir-delegated mkdir "$cg/probe-instance"
t cgroup-freeze-file test -w "$cg/probe-instance/cgroup.freeze"
t cgroup-rmdir rmdir "$cg/probe-instance"
t write-state-dir touch /var/lib/mtd/probe
t write-logs-dir touch /var/log/mtd/probe
t write-runtime-dir touch /run/mtd/probe
t sysctl-forwarding sh -c 'cat /proc/sys/net/ipv4/ip_forward > /proc/sys/net/ipv4/ip_forward'
t boot-id-readable cat /proc/sys/kernel/random/boot_id
t namespaces-and-overlay unshare --mount --pid --net --uts --ipc --cgroup --fork sh -ec '
	mount --make-rprivate /
	d=/run/mtd/probe-root; mkdir -p $d; mount -t tmpfs -o mode=0755 probe $d
	mkdir -m 0755 $d/lower $d/upper $d/work $d/root; echo snap > $d/lower/f
	mount -t overlay -o lowerdir=$d/lower,upperdir=$d/upper,workdir=$d/work overlay $d/root
	rm $d/root/f
	mkdir -m 0755 $d/root/w; chown 65534:65534 $d/root/w
	setpriv --reuid=65534 --regid=65534 --clear-groups sh -c \
		"echo x > $d/root/w/own && chmod 0600 $d/root/w/own && touch -d @0 $d/root/w/own"
	hostname probe-instance
	mkdir $d/root/proc; mount -t proc proc $d/root/proc
	cd $d/root; mkdir old; pivot_root . old
	read -r v </w/own; [ "$v" = x ]'
# each instance's user namespace (docs/userns.md): made by the child, its maps
# (a high range, never host root: that would need CAP_SETFCAP) written by the agent
t user-namespace sh -ec 'unshare --user sleep 10 & p=$!; sleep 0.3
	echo "0 1879048192 65536" >/proc/$p/uid_map; echo "0 1879048192 65536" >/proc/$p/gid_map
	grep -q 1879048192 /proc/$p/uid_map; kill $p'
f user-namespace-mapping-host-root unshare --user --map-root-user true
t drop-to-instance-user setpriv --reuid=65534 --regid=65534 --clear-groups --bounding-set=-all true
t cap-bounding-drop setpriv --bounding-set=-net_admin true
# connect() may fail (nothing listens), socket() must not be refused.
t inet-socket bash -c '! (exec 3<>/dev/tcp/127.0.0.1/1) 2>&1 | grep -q "Address family"'
f write-etc touch /etc/mtd-probe
f write-usr touch /usr/mtd-probe
f write-proc-sys-kernel sh -c 'cat /proc/sys/kernel/hostname > /proc/sys/kernel/hostname'
f read-home ls /root/.bashrc
f clock-settime date -s @0
bnd=$((0x$(awk '/^CapBnd/ {print $2}' /proc/self/status)))
t no-cap-sys-ptrace test $(((bnd >> 19) & 1)) -eq 0
t has-cap-sys-admin test $(((bnd >> 21) & 1)) -eq 1
f raw-device test -e /dev/vda
true
SH
chmod 0755 "$SD_STAGE/usr/local/sbin/mtd-sandbox-probe"
sd_boot 60 || fail "boot"
sd_in systemctl start mtd-agent.service || true
out=$(sd_in journalctl --no-pager -q -o cat -u mtd-agent.service | grep -E '^(ok|bad) ')
echo "$out"
[ -n "$out" ] || fail "probe did not run"
if grep -q '^bad ' <<<"$out"; then
	fail "sandbox: $(grep '^bad ' <<<"$out" | tr '\n' ' ')"
fi
sd_log "sandbox ok"
