# shellcheck shell=bash
# lib-systemd.bash — boot a real systemd (252+) as PID 1 in private namespaces,
# without a VM, and talk to it from the host. Sourced by tests/e2e/*.sh (not
# named *.sh itself: tests/run-scripts runs every *.sh as a test).
#
#   sd_init                 make the scratch dir ($SD_DIR) and the staging tree
#                           ($SD_STAGE); arm the teardown trap
#   (caller fills $SD_STAGE: it is copied onto the container's root, e.g.
#    `make install DESTDIR=$SD_STAGE`, units in $SD_STAGE/etc/systemd/system)
#   sd_boot [TIMEOUT]       boot systemd, wait until it has finished starting up
#   sd_in CMD...            run CMD inside the container (all its namespaces)
#   sd_teardown             stop systemd by its pid; every namespace, mount and
#                           cgroup goes with it (also runs from the EXIT trap)
#
# How the container is built (each point was needed on the hybrid-cgroup host):
# - unshare --pid --fork --mount --net --uts --ipc --cgroup: systemd is PID 1 of
#   its own pid namespace, nothing it does reaches the host's network, hostname,
#   SysV IPC, mounts.
# - cgroups: the host runs the hybrid layout (v1 controllers, cgroup2 at
#   /sys/fs/cgroup/unified). Instead of letting systemd fight over the host's
#   name=systemd v1 hierarchy, the container is started in a fresh cgroup2 child
#   (/sys/fs/cgroup/unified/mtd-e2e-PID), a cgroup namespace is rooted there, and
#   cgroup2 is mounted at /sys/fs/cgroup inside: systemd sees a pure unified
#   hierarchy and runs in unified mode, exactly like a current distro.
# - root: an overlayfs with the host's / as the read-only lower layer and a
#   tmpfs upper, so everything systemd, tmpfiles, sysusers or the test writes
#   (/etc, /var, /usr/local) vanishes with the namespace. The staging tree is
#   copied into the upper layer before the overlay is mounted.
# - API filesystems as systemd-nspawn sets them up: fresh proc (with /proc/sys
#   and friends read-only, so systemd-sysctl etc. cannot change the host's
#   kernel), read-only sysfs of the private net namespace, cgroup2 read-write,
#   a tmpfs /dev with bind-mounted null/zero/full/random/urandom/tty, a private
#   devpts, /dev/console bound to a log file; tmpfs /run and /tmp.
# - container=mtd-e2e in PID 1's environment: systemd's container interface,
#   it skips what a container must not do (udev, hwclock, kernel modules...).
# - the capability bounding set drops CAP_SYS_MODULE, CAP_SYS_TIME, CAP_SYSLOG,
#   CAP_SYS_RAWIO, CAP_WAKE_ALARM, CAP_MAC_*: nothing in the container can touch
#   host-global state the namespaces do not cover.
# - systemd --unit=mtd-e2e.target: a minimal target (basic.target only), plus a
#   few masked units that make no sense here, so it does not start the world.

SD_NAME=mtd-e2e
SD_DIR=
SD_STAGE=
SD_CG=
SD_UNSHARE_PID=
SD_PID=

sd_log() { echo "e2e: $*" >&2; }

sd_skip_unless_able() {
	if [ "$(id -u)" -ne 0 ]; then
		sd_log "needs root"
		exit 77
	fi
	if [ ! -x /lib/systemd/systemd ]; then
		sd_log "no /lib/systemd/systemd"
		exit 77
	fi
	local c
	for c in unshare nsenter setpriv; do
		command -v "$c" >/dev/null || {
			sd_log "needs $c"
			exit 77
		}
	done
	if [ -z "$(sd_host_cgroup2)" ]; then
		sd_log "no cgroup2 mount on the host"
		exit 77
	fi
	grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null ||
		{ sd_log "no overlayfs"; exit 77; }
}

# The host's cgroup2 mount: /sys/fs/cgroup (unified) or /sys/fs/cgroup/unified (hybrid).
sd_host_cgroup2() {
	awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts
}

sd_init() {
	sd_skip_unless_able
	SD_DIR=$(mktemp -d /tmp/mtd-e2e.XXXXXX)
	SD_STAGE=$SD_DIR/stage
	mkdir -p "$SD_STAGE/etc/systemd/system" "$SD_DIR/root" "$SD_DIR/rw"
	: >"$SD_DIR/console.log"
	trap sd_teardown EXIT
	trap 'exit 130' INT TERM
	sd_write_base_units
}

# The minimal boot target and the units masked inside the container.
sd_write_base_units() {
	local d=$SD_STAGE/etc/systemd/system u
	cat >"$d/$SD_NAME.target" <<-'EOF'
		[Unit]
		Description=mtd-agent end-to-end test target
		Requires=basic.target
		After=basic.target
		AllowIsolate=yes
	EOF
	# Host-global or hardware things, or just slow and useless here.
	for u in systemd-modules-load.service systemd-sysctl.service systemd-binfmt.service \
		proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount \
		systemd-udevd.service systemd-udev-trigger.service systemd-udev-settle.service \
		systemd-udevd-control.socket systemd-udevd-kernel.socket \
		systemd-timesyncd.service systemd-pstore.service systemd-random-seed.service \
		systemd-firstboot.service systemd-repart.service systemd-hwdb-update.service \
		systemd-pcrphase.service systemd-pcrphase-sysinit.service \
		systemd-machine-id-commit.service ldconfig.service \
		sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
		sys-fs-fuse-connections.mount dev-hugepages.mount dev-mqueue.mount \
		getty.target console-getty.service systemd-logind.service \
		apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer \
		fstrim.timer logrotate.timer; do
		ln -sf /dev/null "$d/$u"
	done
}

# Runs as PID 1 of the new namespaces (bash, before exec of systemd).
sd_stage1() {
	set -eu
	local D=$1 R=$1/root
	mount --make-rprivate /
	mount -t tmpfs -o mode=0755 "$SD_NAME-rw" "$D/rw"
	mkdir "$D/rw/upper" "$D/rw/work"
	cp -a "$D/stage/." "$D/rw/upper/"
	mount -t overlay -o "lowerdir=/,upperdir=$D/rw/upper,workdir=$D/rw/work" \
		"$SD_NAME-root" "$R"

	mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
	local p
	for p in sys sysrq-trigger irq bus fs; do
		[ -e "$R/proc/$p" ] || continue
		mount --bind "$R/proc/$p" "$R/proc/$p"
		mount -o remount,bind,ro "$R/proc/$p"
	done
	mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
	mount -t cgroup2 -o rw,nosuid,nodev,noexec cgroup2 "$R/sys/fs/cgroup"

	mount -t tmpfs -o mode=0755,nosuid,size=64M "$SD_NAME-dev" "$R/dev"
	for p in null zero full random urandom tty; do
		: >"$R/dev/$p"
		mount --bind "/dev/$p" "$R/dev/$p"
	done
	mkdir -m 0755 "$R/dev/pts"
	mkdir -m 1777 "$R/dev/shm"
	mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,nosuid,noexec devpts "$R/dev/pts"
	ln -s pts/ptmx "$R/dev/ptmx"
	mount -t tmpfs -o mode=1777,nosuid,nodev "$SD_NAME-shm" "$R/dev/shm"
	: >"$R/dev/console"
	mount --bind "$D/console.log" "$R/dev/console"
	ln -s /proc/self/fd "$R/dev/fd"
	ln -s /proc/self/fd/0 "$R/dev/stdin"
	ln -s /proc/self/fd/1 "$R/dev/stdout"
	ln -s /proc/self/fd/2 "$R/dev/stderr"

	mount -t tmpfs -o mode=0755,nosuid,nodev "$SD_NAME-run" "$R/run"
	mount -t tmpfs -o mode=1777,nosuid,nodev "$SD_NAME-tmp" "$R/tmp"

	cd "$R"
	mkdir -p .oldroot
	pivot_root . .oldroot
	umount -l /.oldroot
	rmdir /.oldroot
	cd /
	exec setpriv \
		--bounding-set -sys_module,-sys_time,-syslog,-sys_rawio,-wake_alarm,-mac_admin,-mac_override \
		env -i container="$SD_NAME" TERM=dumb \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		/lib/systemd/systemd --unit="$SD_NAME.target" --show-status=no \
		--log-target=console --log-level=info
}

sd_boot() {
	local timeout=${1:-60} hostcg i state stage1
	hostcg=$(sd_host_cgroup2)
	SD_CG=$hostcg/$SD_NAME-$$
	mkdir "$SD_CG"
	# Built here, not in the subshell: a command substitution there would be
	# a short-lived child that the search for PID 1 below could take for it.
	stage1="$(declare -f sd_stage1); SD_NAME=$SD_NAME; sd_stage1 $SD_DIR"
	# The subshell moves itself into the fresh cgroup, then unshares: the
	# cgroup namespace is rooted at that cgroup. Its only child is PID 1.
	(
		echo "$BASHPID" >"$SD_CG/cgroup.procs"
		exec setsid unshare --pid --fork --mount --net --uts --ipc --cgroup \
			--propagation private bash -c "$stage1" \
			</dev/null >>"$SD_DIR/console.log" 2>&1
	) &
	SD_UNSHARE_PID=$!
	for ((i = 0; i < 50; i++)); do
		SD_PID=$(cat "/proc/$SD_UNSHARE_PID/task/$SD_UNSHARE_PID/children" 2>/dev/null | awk '{print $1}')
		[ -n "$SD_PID" ] && break
		sleep 0.1
	done
	if [ -z "$SD_PID" ]; then
		sd_log "container did not start"
		cat "$SD_DIR/console.log" >&2
		return 1
	fi
	# Wait until PID 1 is systemd and answers on its private socket.
	for ((i = 0; i < timeout * 10; i++)); do
		if ! kill -0 "$SD_PID" 2>/dev/null; then
			sd_log "systemd exited during boot"
			tail -n 50 "$SD_DIR/console.log" >&2
			return 1
		fi
		if [ "$(cat "/proc/$SD_PID/comm" 2>/dev/null)" = systemd ]; then
			state=$(sd_in systemctl is-system-running 2>/dev/null || true)
			case "$state" in initializing | starting | running | degraded) break ;; esac
		fi
		sleep 0.1
	done
	state=$(timeout "$timeout" nsenter -t "$SD_PID" -a systemctl is-system-running --wait 2>/dev/null || true)
	case "$state" in
	running) ;;
	degraded)
		sd_log "container booted degraded; failed units:"
		sd_in systemctl --no-pager --failed >&2 || true
		;;
	*)
		sd_log "container did not finish booting (state '$state')"
		sd_in systemctl --no-pager list-jobs >&2 || true
		tail -n 50 "$SD_DIR/console.log" >&2
		return 1
		;;
	esac
	sd_log "systemd booted as pid $SD_PID (host view), cgroup $SD_CG"
}

sd_in() {
	[ -n "$SD_PID" ] || return 1
	nsenter -t "$SD_PID" -a -- "$@"
}

sd_teardown() {
	local rc=$? i
	trap - EXIT
	if [ -n "$SD_PID" ] && kill -0 "$SD_PID" 2>/dev/null; then
		# Orderly poweroff first (SIGRTMIN+4), then SIGKILL: killing PID 1 of a
		# pid namespace kills every process in it, and the mount, net, uts, ipc
		# and cgroup namespaces die with their last process.
		kill -s SIGRTMIN+4 "$SD_PID" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			kill -0 "$SD_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$SD_PID" 2>/dev/null || true
	fi
	if [ -n "$SD_UNSHARE_PID" ]; then
		# whatever PID 1 became (or if it was never found): it dies, and
		# with it the namespaces, or the wait below never returns
		pkill -KILL -P "$SD_UNSHARE_PID" 2>/dev/null || true
		wait "$SD_UNSHARE_PID" 2>/dev/null || true
	fi
	if [ -n "$SD_CG" ] && [ -d "$SD_CG" ]; then
		for ((i = 0; i < 50; i++)); do
			find "$SD_CG" -depth -type d -exec rmdir {} \; 2>/dev/null
			[ -d "$SD_CG" ] || break
			sleep 0.1
		done
		[ -d "$SD_CG" ] && sd_log "could not remove cgroup $SD_CG"
	fi
	if [ -n "$SD_DIR" ] && [ -d "$SD_DIR" ]; then
		if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ -s "$SD_DIR/console.log" ]; then
			sd_log "last lines of the container's console:"
			tail -n 30 "$SD_DIR/console.log" >&2
		fi
		rm -rf "$SD_DIR"
	fi
	SD_PID=
	exit "$rc"
}
