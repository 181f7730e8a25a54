#!/bin/bash
# make bench: the response to a detection, per signal type, median and p95
# over RUNS runs each, all measured in the same run:
#
# 1. detection -> contained, the first thing the agent does: the freeze
#    requested (cgroup.freeze written: from then on no task of the instance
#    returns to user space — each traps in the kernel's freezer first), then
#    the cut (out of the live and ingress sets: one nftables transaction of its
#    own). "Frozen and cut off" is the end of the cut. Later, off the path to
#    the new route, the freeze is confirmed ("frozen 1" in cgroup.events: the
#    kernel has seen every task trapped, exiting ones gone), shown apart.
#    From the agent's instance-contained records
#    (detection_to_freeze_requested_usec, detection_to_cut_usec,
#    detection_to_frozen_usec), over both parts of the run (with and without
#    a standby). Signals of compromise only (manual quarantine, seccomp
#    violation, drift, unexpected egress); failed health is not one.
# 2. detection -> replacement: until the public port leads to a healthy
#    instance (the route's transaction committed), from the agent's
#    instance-replaced records (detection_to_replacement_usec); without a
#    standby (a fresh instance is started, probed healthy, then routed) and
#    with StandbyInstances=1 (the standby is routed at once: one transaction
#    after the containment's). The route's transaction is the end point; the
#    record that carries the figure is written (and fdatasync'd) after it.
#
# "Detection" is the agent's CLOCK_MONOTONIC reading when it has the signal
# in hand, before anything else is done about it (its audit record
# included): a seccomp notification received and answered, a drift or
# NFLOG event read, the HealthFailures=-th failed probe, a `quarantine`
# request decoded (its control-request record synced). Every figure is the
# agent's own trace, carried in its audit records; the audit log is read
# back with `mtdctl --json audit show` at the end.
#
# Beside them, a plain supervisor's kill + restart of the same service
# (tests/tools/restart-bench.c: SIGKILL, waitpid, fork+exec, until it
# accepts on 127.0.0.1 — what Restart=always with RestartSec=0 does, without
# an envelope), timed by that tool from the kill to the first accepted
# connection. Everything inside namespaces of its own.
. "$(dirname "$0")/../integration/lib.bash"
[ -x /bin/busybox ] || skip "busybox-static is not installed"
RUNS=${MTD_BENCH_RUNS:-50}
enter_private_namespaces "$@"
make_work_dir
setup_client_namespace
make_web_snapshot "$WORK/snapshots/web"
write_key "$WORK/keys/web.key"
cat >"$WORK/policies/web.policy" <<POLICY
[Service]
Name=web
Snapshot=$WORK/snapshots/web
SnapshotKey=$WORK/keys/snap.pub
Exec=/bin/busybox httpd -f -p 8080 -h /www
ListenPort=8080/tcp
User=www
HealthInterval=300ms
HealthTimeout=200ms
HealthFailures=2
OnCompromise=kill
ReplaceBurst=1000
ReplaceInterval=1min

[Rotation]
PublicPorts=20000-20999
Interval=60s
Grace=10s
KeyFile=$WORK/keys/web.key
AddressPool=10.214.0.0/24

[Envelope]
SystemCalls=@system-service @network-io
ViolationSystemCalls=mount
OnSyscallViolation=kill
Writable=/tmp
Egress=tcp/7000 10.213.0.2
EgressAlertThreshold=1
POLICY
P=$WORK/policies/web.policy
start_agent
serving_id() { json_instances | grep -o '"id":"web-[0-9]*"[^}]*"state":"healthy"[^}]*"role":"serving"' | head -n 1 | sed 's/"id":"\([^"]*\)".*/\1/'; }
wait_replaced() { wait_for '[ -n "$(serving_id)" ] && [ "$(serving_id)" != "'"$1"'" ]' 150; }
wait_for '[ -n "$(serving_id)" ]' 100 || fail "no instance"

ip -n cli route add 10.214.0.0/24 via 10.213.0.1
serving_pid() { json_instances | grep -o '"id":"'"$1"'"[^}]*' | sed -n 's/.*"pid":\([0-9]*\).*/\1/p'; }
trigger() { # KIND VICTIM
	case "$1" in
	manual) mtdctl quarantine web >/dev/null ;;
	seccomp-violation) http_get web "$P" 10.213.0.1 /cgi-bin/mount >/dev/null ;;
	drift) http_get web "$P" 10.213.0.1 /cgi-bin/tamper >/dev/null ;;
	# the first dropped SYN to an undeclared port is the signal (threshold 1);
	# the request dies with the instance, so it is not waited for long
	egress) printf 'GET /cgi-bin/egress HTTP/1.0\r\n\r\n' |
		ip netns exec cli timeout 2 "$MTDCTL" connect web --policy "$P" 10.213.0.1 >/dev/null 2>&1 ;;
	# the health probes stop getting through (detection after HealthFailures=)
	health) nsenter -t "$(serving_pid "$2")" -n ip link set eth0 down ;;
	esac
}
stats() { # KIND: median p95 of the agent's figures, ms
	mtdctl --json audit show | tr -d ' \n' | grep -o '"type":"instance-replaced","fields":{[^}]*}' |
		grep "\"reason\":\"$1\"" | sed -n 's/.*"detection_to_replacement_usec":\([0-9]*\).*/\1/p' |
		sort -n | awk '{v[NR]=$1} END {if (NR) {p=int(NR*0.95)+1; if (p>NR) p=NR; printf "%.2f %.2f %d", v[int(NR/2)+1]/1000, v[p]/1000, NR}}'
}

standby_ready() { json_instances | grep -q '"state":"healthy"[^}]*"role":"standby"'; }
release_quarantined() { # only the replacement is timed: quarantined ones go at once
	for q in $(json_instances | grep -o '"id":"web-[0-9]*"[^}]*"role":"quarantined"' | sed 's/"id":"\([^"]*\)".*/\1/'); do
		mtdctl release "$q" >/dev/null
	done
}
run_kind() { # KIND WITH_STANDBY
	local i victim
	for i in $(seq 1 "$RUNS"); do
		if [ "$2" = 1 ]; then
			wait_for standby_ready 150 || fail "$1 run $i: no ready standby"
		fi
		# (a spurious replacement, e.g. failed health on a loaded host, may
		# still be under way)
		wait_for '[ -n "$(serving_id)" ]' 150
		victim=$(serving_id)
		[ -n "$victim" ] || fail "$1 run $i: nothing serves: $(mtdctl instances; mtdctl audit show | tail -n 12)"
		# In the background: the request that trips a signal is frozen with
		# its instance and never answered; it is not waited for.
		trigger "$1" "$victim" &
		wait_replaced "$victim" || fail "$1 run $i: no replacement"
		kill $! 2>/dev/null
		wait $! 2>/dev/null
		release_quarantined
	done
}
AUDIT=$WORK/audit.json
# stats TYPE FIELD KIND [STANDBY]: median, p95 (ms) and count of FIELD in the
# records of TYPE for reason KIND (and "standby":STANDBY)
stats() {
	grep "\"type\":\"$1\"" "$AUDIT" | grep "\"reason\":\"$3\"" | grep -- "${4:+\"standby\":$4}" |
		sed -n 's/.*"'"$2"'":\([0-9]*\).*/\1/p' |
		sort -n | awk '{v[NR]=$1} END {if (NR) {p=int(NR*0.95)+1; if (p>NR) p=NR; printf "%.3f %.3f %d", v[int(NR/2)+1]/1000, v[p]/1000, NR} else print "- - 0"}'
}

KINDS=${MTD_BENCH_KINDS:-"manual seccomp-violation drift egress health"}
STANDBY_KINDS=${MTD_BENCH_STANDBY_KINDS:-"manual seccomp-violation drift egress"}
for kind in $KINDS; do
	run_kind "$kind" 0
done
# The same signals with a standby ready (the policy changes: one replacement,
# not timed).
sed -i 's/^ReplaceBurst=1000$/ReplaceBurst=1000\nStandbyInstances=1/' "$P"
mtdctl reload >/dev/null || fail "reload with StandbyInstances=1"
wait_for 'standby_ready' 150 || fail "no standby after the reload"
for kind in $STANDBY_KINDS; do
	run_kind "$kind" 1
done
base=$("$BUILD_DIR/tools/restart-bench" "$RUNS" 18080 /bin/busybox httpd -f -p 18080 -h "$WORK/tree/www") ||
	fail "baseline"
mtdctl --json audit show | tr -d ' ' >"$AUDIT"
stop_agent

row() { printf '| %-58s | %9s | %9s | %5s |\n' "$@"; }
line() { printf '|%s|-----------|-----------|-------|\n' "------------------------------------------------------------"; }
need() { # COUNT WHAT
	[ "${1:-0}" -ge "$RUNS" ] || fail "$2: only ${1:-0} timed records of $RUNS runs"
}
printf '\nthe response to a detection, %s runs per signal (agent trace: its audit records)\n\n' "$RUNS"
row "detection -> ..." "median ms" "p95 ms" "runs"
line
worst_cut=0
for kind in $KINDS; do
	[ "$kind" = health ] && continue # not a compromise: nothing is contained
	read -r fmed fp95 fn <<<"$(stats instance-contained detection_to_freeze_requested_usec "$kind")"
	read -r xmed xp95 xn <<<"$(stats instance-contained detection_to_cut_usec "$kind")"
	read -r cmed cp95 cn <<<"$(stats instance-contained detection_to_frozen_usec "$kind")"
	need "$xn" "$kind: containment"
	row "$kind: freeze requested (cgroup.freeze written)" "$fmed" "$fp95" "$fn"
	row "$kind: frozen and cut off (one nft transaction)" "$xmed" "$xp95" "$xn"
	row "$kind: (freeze confirmed by cgroup.events, later)" "$cmed" "$cp95" "$cn"
	awk -v m="$xmed" -v w="$worst_cut" 'BEGIN {exit !(m > w)}' && worst_cut=$xmed
done
line
worst_plain=0
for kind in $KINDS; do
	read -r med p95 n <<<"$(stats instance-replaced detection_to_replacement_usec "$kind" false)"
	need "$n" "$kind: replacement without a standby"
	row "$kind: port served, no standby (fresh instance)" "$med" "$p95" "$n"
	awk -v m="$med" -v w="$worst_plain" 'BEGIN {exit !(m > w)}' && worst_plain=$med
done
worst_standby=0
for kind in $STANDBY_KINDS; do
	read -r med p95 n <<<"$(stats instance-replaced detection_to_replacement_usec "$kind" true)"
	need "$n" "$kind: replacement by a standby"
	row "$kind: port served, StandbyInstances=1" "$med" "$p95" "$n"
	awk -v m="$med" -v w="$worst_standby" 'BEGIN {exit !(m > w)}' && worst_standby=$med
done
line
read -r bmed bp95 <<<"$base"
row "baseline: plain supervisor, SIGKILL + restart (kill->accept)" "$bmed" "$bp95" "$RUNS"
verdict() { awk -v w="$1" -v t="$2" 'BEGIN {print (w <= t) ? "met" : "NOT met"}'; }
printf '\ntargets (worst signal median):\n'
printf '  detection -> frozen and cut off   <= 0.5 ms: %s (%s ms)\n' "$(verdict "$worst_cut" 0.5)" "$worst_cut"
printf '  detection -> served, standby      <= 1 ms:   %s (%s ms; baseline %s ms: %s)\n' \
	"$(verdict "$worst_standby" 1)" "$worst_standby" "$bmed" \
	"$(awk -v w="$worst_standby" -v b="$bmed" 'BEGIN {print (w < b) ? "faster" : "NOT faster"}')"
printf '  detection -> served, no standby   <= 20 ms:  %s (%s ms)\n' "$(verdict "$worst_plain" 20)" "$worst_plain"
