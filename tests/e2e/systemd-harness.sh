#!/bin/bash
# The e2e harness itself: a real systemd boots in private namespaces and a
# Type=notify service becomes active (READY=1 reached PID 1), reloads and stops.
cd "$(dirname "$0")/../.." || exit 1
. tests/e2e/lib-systemd.bash

fail() {
	sd_log "FAIL: $*"
	exit 1
}

sd_init
mkdir -p "$SD_STAGE/usr/local/bin"
cat >"$SD_STAGE/usr/local/bin/e2e-notify" <<'SH'
#!/bin/bash
# A Type=notify service in shell: READY=1 after "work", RELOADING on SIGHUP.
trap 'systemd-notify --reloading 2>/dev/null || systemd-notify RELOADING=1; echo reloaded; systemd-notify --ready' HUP
trap 'echo stopping; exit 0' TERM
echo starting
systemd-notify --ready --status="serving"
while :; do
	sleep 1 &
	wait $!
done
SH
chmod 0755 "$SD_STAGE/usr/local/bin/e2e-notify"
cat >"$SD_STAGE/etc/systemd/system/e2e-notify.service" <<'EOF2'
[Unit]
Description=e2e harness: Type=notify dummy

[Service]
Type=notify
NotifyAccess=all
ExecStart=/usr/local/bin/e2e-notify
ExecReload=/bin/kill -HUP $MAINPID
EOF2

sd_boot 60 || fail "boot"
sd_in systemctl start e2e-notify.service || fail "start"
[ "$(sd_in systemctl is-active e2e-notify.service)" = active ] || fail "not active"
[ "$(sd_in systemctl show -P StatusText e2e-notify.service)" = serving ] || fail "no STATUS= from notify"
sd_in systemctl reload e2e-notify.service || fail "reload"
sd_in systemctl stop e2e-notify.service || fail "stop"
state=$(sd_in systemctl is-active e2e-notify.service)
[ "$state" = inactive ] || fail "after stop: $state"
sd_in journalctl --no-pager -q -u e2e-notify.service | grep -q stopping || fail "no journal output"
sd_log "harness ok"
