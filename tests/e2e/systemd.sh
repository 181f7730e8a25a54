#!/bin/bash
# End-to-end: the installed mtd-agent unit under a real systemd (PID 1 of its
# own namespaces, see lib-systemd.bash). Installs with `make install DESTDIR=`,
# then: systemd-analyze verify passes, sysusers/tmpfiles did their part, start
# reaches "active" only through READY=1, mtdctl answers (root and group mtd),
# reload applies a changed policy set and refuses a broken one while the unit
# stays up, audit events reach the journal with MESSAGE_ID= and MTD_EVENT=,
# a crash is restarted, the watchdog is fed, --metrics-listen works under the
# unit's sandbox and a real Prometheus scrapes it, and stop is clean (inactive, not failed, socket gone).
#
# env: BUILD (build dir, default build), MTD_EXPOSURE_MAX (highest accepted
# `systemd-analyze security` exposure of the unit, default 4.4: docs/systemd.md).
cd "$(dirname "$0")/../.." || exit 1
. tests/e2e/lib-systemd.bash

B=${BUILD:-build}
EXPOSURE_MAX=${MTD_EXPOSURE_MAX:-4.4}
UNIT=mtd-agent.service

fail() {
	sd_log "FAIL: $*"
	if [ -n "$SD_PID" ]; then
		sd_in systemctl --no-pager status "$UNIT" >&2 || true
		sd_in journalctl --no-pager -q -n 40 -u "$UNIT" >&2 || true
	fi
	exit 1
}
step() { sd_log "--- $*"; }

if [ ! -x "$B/mtd-agent" ] || [ ! -x "$B/mtdctl" ]; then
	sd_log "no $B/mtd-agent or $B/mtdctl (run make first)"
	exit 77
fi

sd_init

# --- install, as a package would -------------------------------------------------
step "make install DESTDIR=..."
verify_opts=()
if ! make --no-print-directory -s install BUILD="$B" DESTDIR="$SD_STAGE" >"$SD_DIR/install.log" 2>&1; then
	# Tolerated only while man pages or example policies are not written yet;
	# the unit, tmpfiles and sysusers files are then installed as the Makefile does.
	if compgen -G "docs/*.8" >/dev/null && compgen -G "docs/*.5" >/dev/null &&
		compgen -G "policies/examples/*.policy" >/dev/null; then
		cat "$SD_DIR/install.log" >&2
		fail "make install"
	fi
	sd_log "WARNING: make install failed (man pages or example policies missing);" \
		"installing the programs and systemd files by hand"
	install -D -m 0755 "$B/mtd-agent" "$SD_STAGE/usr/local/sbin/mtd-agent"
	install -D -m 0755 "$B/mtdctl" "$SD_STAGE/usr/local/bin/mtdctl"
	mkdir -p "$SD_STAGE/usr/local/lib/systemd/system"
	sed 's|@SBINDIR@|/usr/local/sbin|g; s|@BINDIR@|/usr/local/bin|g' \
		systemd/mtd-agent.service.in >"$SD_STAGE/usr/local/lib/systemd/system/$UNIT"
	install -D -m 0644 systemd/mtd-agent.tmpfiles "$SD_STAGE/usr/local/lib/tmpfiles.d/mtd-agent.conf"
	install -D -m 0644 systemd/mtd-agent.sysusers "$SD_STAGE/usr/local/lib/sysusers.d/mtd-agent.conf"
	verify_opts=(--man=no)
fi
[ -f "$SD_STAGE/usr/local/lib/systemd/system/$UNIT" ] || fail "unit not installed"
grep -q '@[A-Z]*DIR@' "$SD_STAGE/usr/local/lib/systemd/system/$UNIT" && fail "unsubstituted @...@ in the unit"

# --- policies: host services (Backend=), they need no signed snapshot ------------
# (the example policies are managed services whose snapshots this container
# does not have; they are checked by the policy tests, not here).
mkdir -p -m 0755 "$SD_STAGE/etc/mtd" "$SD_STAGE/etc/mtd/policies"
mkdir -p -m 0700 "$SD_STAGE/etc/mtd/keys"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$SD_STAGE/etc/mtd/keys/e2e.key"
echo >>"$SD_STAGE/etc/mtd/keys/e2e.key"
chmod 0600 "$SD_STAGE/etc/mtd/keys/e2e.key"
write_policy() { # write_policy DIR NAME PORTS
	cat >"$1/$2.policy" <<-EOF
		[Service]
		Name=$2
		Backend=127.0.0.1:8080

		[Rotation]
		PublicPorts=$3
		Interval=60s
		KeyFile=/etc/mtd/keys/e2e.key
	EOF
}
write_policy "$SD_STAGE/etc/mtd/policies" e2e-alpha 20000-20999
# Example policies that are host services too (no Snapshot=), with their keys.
examples=()
for f in policies/examples/*.policy; do
	[ -e "$f" ] || continue
	grep -q '^Snapshot=' "$f" && continue
	cp "$f" "$SD_STAGE/etc/mtd/policies/"
	examples+=("$(sed -n 's/^Name=//p' "$f")")
done
if [ ${#examples[@]} -gt 0 ] && [ -d policies/examples/keys ]; then
	cp -r policies/examples/keys "$SD_STAGE/etc/mtd/policies/keys"
	chmod -R go-rwx "$SD_STAGE/etc/mtd/policies/keys"
fi
mkdir -p "$SD_STAGE/root/e2e"
write_policy "$SD_STAGE/root/e2e" e2e-beta 21000-21999
cat >"$SD_STAGE/root/e2e/e2e-broken.policy" <<-'EOF'
	[Service]
	Name=e2e-broken
	Backend=127.0.0.1:8080

	[Rotation]
	PublicPorts=22000
	Interval=60s
	KeyFile=/etc/mtd/keys/e2e.key
EOF

# --- boot ---------------------------------------------------------------------------
step "boot systemd"
sd_boot 60 || fail "boot"

step "systemd-analyze verify / security"
sd_in systemd-analyze verify "${verify_opts[@]}" "/usr/local/lib/systemd/system/$UNIT" ||
	fail "systemd-analyze verify"
exposure=$(sd_in systemd-analyze security --offline=true --no-pager \
	"/usr/local/lib/systemd/system/$UNIT" 2>/dev/null |
	sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
[ -n "$exposure" ] || fail "no exposure figure from systemd-analyze security"
sd_log "exposure (systemd-analyze security --offline=true): $exposure (max $EXPOSURE_MAX)"
awk -v e="$exposure" -v m="$EXPOSURE_MAX" 'BEGIN { exit !(e <= m) }' ||
	fail "exposure $exposure above $EXPOSURE_MAX"

step "sysusers and tmpfiles ran at boot"
sd_in getent group mtd >/dev/null || fail "group mtd not created by sysusers"
[ "$(sd_in stat -c %a /etc/mtd/keys)" = 700 ] || fail "/etc/mtd/keys not 0700"
sd_in test -d /var/lib/mtd/snapshots || fail "/var/lib/mtd/snapshots not created"

# --- start: active only via READY=1 --------------------------------------------
step "systemctl start"
sd_in systemctl start "$UNIT" || fail "start"
[ "$(sd_in systemctl is-active "$UNIT")" = active ] || fail "not active after start"
[ "$(sd_in systemctl show -P Type "$UNIT")" = notify ] || fail "unit is not Type=notify"
[ "$(sd_in systemctl show -P SubState "$UNIT")" = running ] || fail "not running"
main_pid=$(sd_in systemctl show -P MainPID "$UNIT")
[ "$(sd_in cat "/proc/$main_pid/comm")" = mtd-agent ] || fail "MainPID $main_pid is not mtd-agent"
[ "$(sd_in systemctl show -P WatchdogUSec "$UNIT")" = 30s ] || fail "no watchdog"

step "control socket and mtdctl"
sock_mode=$(sd_in stat -c '%U:%G %a %F' /run/mtd/control.sock) || fail "no /run/mtd/control.sock"
[ "$sock_mode" = "root:mtd 660 socket" ] || fail "control.sock is '$sock_mode', want root:mtd 660"
sd_in mtdctl status >"$SD_DIR/status.out" 2>&1 || { cat "$SD_DIR/status.out" >&2; fail "mtdctl status"; }
grep -q mtd-agent "$SD_DIR/status.out" || fail "mtdctl status does not name the agent"
# The unit's seccomp filter lets the agent read the clock's state (adjtimex
# with modes 0): the agent is alive and says trusted or not, never unreadable.
grep -q '^clock: ' "$SD_DIR/status.out" || fail "mtdctl status has no clock line"
sd_in mtdctl --json status | grep -q '"source": "adjtimex"' || fail "the clock's state is not from adjtimex"
grep -q "cannot read the clock's state" "$SD_DIR/status.out" &&
	fail "under the unit the agent cannot read the clock's state: $(grep '^clock:' "$SD_DIR/status.out")"
for n in e2e-alpha "${examples[@]}"; do
	sd_in mtdctl policy list | grep -qw "$n" || fail "policy list lacks $n"
done
# Group mtd: read-only commands allowed; anybody else: refused at the socket.
sd_in setpriv --reuid=65534 --regid=65534 --groups="$(sd_in getent group mtd | cut -d: -f3)" \
	mtdctl policy list >/dev/null 2>&1 || fail "group mtd cannot run 'policy list'"
sd_in setpriv --reuid=65534 --regid=65534 --clear-groups mtdctl policy list >/dev/null 2>&1 &&
	fail "a user outside group mtd could run 'policy list'"

events_before=$(sd_in journalctl -q -u "$UNIT" -o json | grep -c '"MTD_EVENT"')

# --- reload: a changed set is applied ------------------------------------------------
step "systemctl reload with a changed policy set"
sd_in cp /root/e2e/e2e-beta.policy /etc/mtd/policies/ || fail "copy policy"
sd_in systemctl reload "$UNIT" || fail "reload"
for ((i = 0; i < 50; i++)); do
	sd_in mtdctl policy list 2>/dev/null | grep -qw e2e-beta && break
	sleep 0.1
done
sd_in mtdctl policy list | grep -qw e2e-beta || fail "reload did not apply e2e-beta"
sd_in mtdctl policy list | grep -qw e2e-alpha || fail "reload lost e2e-alpha"
[ "$(sd_in systemctl is-active "$UNIT")" = active ] || fail "not active after reload"
[ "$(sd_in systemctl show -P MainPID "$UNIT")" = "$main_pid" ] || fail "reload restarted the agent"

# --- reload: a broken set is refused, the old one stays -------------------------------
step "systemctl reload with a broken policy"
sd_in cp /root/e2e/e2e-broken.policy /etc/mtd/policies/ || fail "copy policy"
sd_in systemctl reload "$UNIT" || fail "reload (broken set) failed at the systemd level"
sleep 1
[ "$(sd_in systemctl is-active "$UNIT")" = active ] || fail "not active after a broken reload"
[ "$(sd_in systemctl show -P MainPID "$UNIT")" = "$main_pid" ] || fail "broken reload restarted the agent"
list=$(sd_in mtdctl policy list) || fail "policy list after broken reload"
grep -qw e2e-broken <<<"$list" && fail "broken policy was applied"
grep -qw e2e-alpha <<<"$list" && grep -qw e2e-beta <<<"$list" || fail "old policy set not kept"
# The same refusal through the control socket names file, line and key.
out=$(sd_in mtdctl reload 2>&1) && fail "mtdctl reload accepted a broken set"
grep -q 'e2e-broken.policy' <<<"$out" || fail "refusal does not name the file: $out"
sd_in rm /etc/mtd/policies/e2e-broken.policy

# --- audit events in the journal --------------------------------------------------------
step "journal: audit events with MESSAGE_ID= and MTD_EVENT="
sd_in journalctl -q -u "$UNIT" -o json >"$SD_DIR/journal.json" || fail "journalctl"
events_after=$(grep -c '"MTD_EVENT"' "$SD_DIR/journal.json")
[ "$events_before" -gt 0 ] || fail "no MTD_EVENT= record in the journal after start"
[ "$events_after" -gt "$events_before" ] || fail "reloads left no MTD_EVENT= record"
grep '"MTD_EVENT"' "$SD_DIR/journal.json" | grep -q '"MESSAGE_ID"' ||
	fail "MTD_EVENT= records carry no MESSAGE_ID="
sd_log "journal: $events_after audit events, types:" \
	"$(sed -n 's/.*"MTD_EVENT":"\([^"]*\)".*/\1/p' "$SD_DIR/journal.json" | sort -u | tr '\n' ' ')"
sd_in mtdctl audit show >/dev/null || fail "mtdctl audit show"

# --- a crash is restarted (Restart=on-failure) ----------------------------------------
step "crash -> restart"
sd_in systemctl kill --kill-who=main -s SIGKILL "$UNIT" || fail "kill"
for ((i = 0; i < 100; i++)); do
	pid=$(sd_in systemctl show -P MainPID "$UNIT")
	[ "$pid" != 0 ] && [ "$pid" != "$main_pid" ] &&
		[ "$(sd_in systemctl is-active "$UNIT")" = active ] && break
	sleep 0.1
done
[ "$(sd_in systemctl is-active "$UNIT")" = active ] || fail "not restarted after SIGKILL"
[ "$(sd_in systemctl show -P NRestarts "$UNIT")" = 1 ] || fail "NRestarts is not 1"
sd_in mtdctl policy list | grep -qw e2e-beta || fail "restarted agent lacks e2e-beta"

# --- the watchdog is fed (a 2 s watchdog for 5 s, no restart) -------------------------
step "watchdog pings"
sd_in mkdir -p /run/systemd/system/$UNIT.d || fail "mkdir drop-in"
sd_in sh -c "printf '[Service]\nWatchdogSec=2s\n' >/run/systemd/system/$UNIT.d/e2e-watchdog.conf"
sd_in systemctl daemon-reload || fail "daemon-reload"
sd_in systemctl restart "$UNIT" || fail "restart with WatchdogSec=2s"
[ "$(sd_in systemctl show -P WatchdogUSec "$UNIT")" = 2s ] || fail "drop-in not in force"
wd_pid=$(sd_in systemctl show -P MainPID "$UNIT")
sleep 5
[ "$(sd_in systemctl is-active "$UNIT")" = active ] || fail "not active under a 2 s watchdog"
[ "$(sd_in systemctl show -P MainPID "$UNIT")" = "$wd_pid" ] || fail "watchdog restarted the agent"
sd_in journalctl -q -u "$UNIT" | grep -qi 'watchdog timeout' && fail "watchdog timeout in the journal"
sd_in rm -r /run/systemd/system/$UNIT.d
sd_in systemctl daemon-reload

# --- metrics: the listener under the unit, scraped by a real Prometheus ------------------
# Debian's prometheus, unpacked by `make deps` on the host (the container's
# lower layer): the unit as shipped plus --metrics-listen in a runtime drop-in,
# Prometheus a transient unit in the container's network namespace.
step "metrics: --metrics-listen under the unit, promtool, a Prometheus scrape"
prom_dir=${MTD_PROMETHEUS_DIR:-/var/cache/mtd-agent/prometheus}
[ -x "$prom_dir/usr/bin/prometheus" ] && [ -x "$prom_dir/usr/bin/promtool" ] ||
	fail "no Prometheus in $prom_dir: run 'make deps'"
command -v curl >/dev/null || fail "no curl: run 'make deps'"
exec_start=$(sed -n 's/^ExecStart=//p' "$SD_STAGE/usr/local/lib/systemd/system/$UNIT")
[ -n "$exec_start" ] || fail "no ExecStart= in the installed unit"
sd_in mkdir -p /run/systemd/system/$UNIT.d || fail "mkdir drop-in"
printf '[Service]\nExecStart=\nExecStart=%s --metrics-listen 127.0.0.1:9650\n' "$exec_start" |
	sd_in sh -c "cat >/run/systemd/system/$UNIT.d/e2e-metrics.conf"
sd_in systemctl daemon-reload || fail "daemon-reload"
sd_in systemctl restart "$UNIT" || fail "restart with --metrics-listen"
sd_in mtdctl metrics >"$SD_DIR/metrics.out" 2>&1 || { cat "$SD_DIR/metrics.out" >&2; fail "mtdctl metrics"; }
lint=$("$prom_dir/usr/bin/promtool" check metrics <"$SD_DIR/metrics.out" 2>&1) ||
	fail "promtool check metrics: $lint"
[ -z "$lint" ] || fail "promtool check metrics has remarks: $lint"
sd_in curl -sf --max-time 5 http://127.0.0.1:9650/metrics >"$SD_DIR/metrics.http" ||
	fail "GET http://127.0.0.1:9650/metrics under the unit"
diff <(grep '^# TYPE' "$SD_DIR/metrics.out") <(grep '^# TYPE' "$SD_DIR/metrics.http") >/dev/null ||
	fail "the listener and mtdctl metrics serve different families"
start_time=$(awk '$1 == "mtd_agent_start_time_seconds" { print $2 }' "$SD_DIR/metrics.out")
[ -n "$start_time" ] || fail "no mtd_agent_start_time_seconds"
printf 'global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mtd\n    static_configs:\n      - targets: [\x27127.0.0.1:9650\x27]\n' |
	sd_in sh -c 'mkdir -p /root/e2e-prom && cat >/root/e2e-prom/prometheus.yml'
sd_in systemd-run --unit=e2e-prometheus --quiet "$prom_dir/usr/bin/prometheus" \
	--config.file=/root/e2e-prom/prometheus.yml --storage.tsdb.path=/root/e2e-prom/data \
	--web.listen-address=127.0.0.1:9091 || fail "systemd-run prometheus"
prom_query() { sd_in curl -s --max-time 3 --data-urlencode "query=$1" http://127.0.0.1:9091/api/v1/query; }
for ((i = 0; i < 300; i++)); do
	prom_query up | grep -q '"job":"mtd"[^]]*"1"\]' && break
	sleep 0.1
done
prom_query up | grep -q '"job":"mtd"[^]]*"1"\]' ||
	fail "Prometheus does not see the agent up: $(prom_query up)"
for ((i = 0; i < 100; i++)); do
	prom_query mtd_agent_start_time_seconds | grep -q "\"$start_time\"\]" && break
	sleep 0.1
done
prom_query mtd_agent_start_time_seconds | grep -q "\"$start_time\"\]" ||
	fail "Prometheus's mtd_agent_start_time_seconds is not $start_time: $(prom_query mtd_agent_start_time_seconds)"
sd_in systemctl stop e2e-prometheus || fail "stop prometheus"
sd_in rm -r /run/systemd/system/$UNIT.d
sd_in systemctl daemon-reload
sd_log "metrics: promtool clean; Prometheus scraped 127.0.0.1:9650 (up 1, start time $start_time)"

# --- stop is clean -------------------------------------------------------------------------
step "systemctl stop"
sd_in systemctl stop "$UNIT" || fail "stop"
state=$(sd_in systemctl is-active "$UNIT")
[ "$state" = inactive ] || fail "after stop: $state (want inactive)"
[ "$(sd_in systemctl show -P Result "$UNIT")" = success ] || fail "stop result not success"
sd_in test -e /run/mtd/control.sock && fail "control socket left behind"
sd_in test -e /run/mtd && fail "/run/mtd left behind"
sd_log "systemd e2e ok"
