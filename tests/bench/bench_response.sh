#!/bin/bash
# make bench: detection-to-replacement time — from the moment the agent has a
# signal until the replacement instance takes the public port (recorded by the
# agent in each instance-replaced record) — per signal type (manual, seccomp
# violation, drift, unexpected egress, failed health; MaxLifetime= takes the
# manual path from a timer), median and p95
# over RUNS runs, beside a plain supervisor's kill + restart of the same
# service (tests/tools/restart-bench.c: SIGKILL, waitpid, fork+exec, until it
# accepts — what Restart=always with RestartSec=0 does, without an envelope),
# measured in the same run. Everything inside namespaces of its own.
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
serving_id() { json_instances | grep -o '"id":"web-[0-9]*"[^}]*"state":"healthy"' | head -n 1 | sed 's/"id":"\([^"]*\)".*/\1/'; }
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

KINDS=${MTD_BENCH_KINDS:-"manual seccomp-violation drift egress health"}
for kind in $KINDS; do
	for i in $(seq 1 "$RUNS"); do
		victim=$(serving_id)
		[ -n "$victim" ] || fail "$kind run $i: nothing serves"
		trigger "$kind" "$victim"
		wait_replaced "$victim" || fail "$kind run $i: no replacement"
		# quarantined ones are released at once: only the replacement is timed
		for q in $(json_instances | grep -o '"id":"web-[0-9]*"[^}]*"state":"quarantined"' | sed 's/"id":"\([^"]*\)".*/\1/'); do
			mtdctl release "$q" >/dev/null
		done
	done
done
base=$("$BUILD_DIR/tools/restart-bench" "$RUNS" 18080 /bin/busybox httpd -f -p 18080 -h "$WORK/tree/www") ||
	fail "baseline"
declare -A figures
for kind in $KINDS; do
	figures[$kind]=$(stats "$kind")
done
stop_agent

printf '\ndetection to replacement (signal in hand -> the replacement holds the public port), %s runs each\n\n' "$RUNS"
printf '| %-52s | %9s | %9s |\n' "signal" "median ms" "p95 ms"
printf '|------------------------------------------------------|-----------|-----------|\n'
worst=0
for kind in $KINDS; do
	read -r med p95 n <<<"${figures[$kind]}"
	[ "${n:-0}" -ge "$RUNS" ] || { grep -o "instance-re[^}]*" "$WORK/log/audit.log" | tail -4; fail "$kind: only ${n:-0} timed replacements"; }
	printf '| %-52s | %9s | %9s |\n' "$kind" "$med" "$p95"
	awk -v m="$med" -v w="$worst" 'BEGIN {exit !(m > w)}' && worst=$med
done
read -r bmed bp95 <<<"$base"
printf '| %-52s | %9s | %9s |\n' "baseline: plain supervisor, SIGKILL + restart" "$bmed" "$bp95"
printf '\ntarget: median <= 20 ms: %s (worst signal median %s ms)\n' \
	"$(awk -v w="$worst" 'BEGIN {print (w <= 20) ? "met" : "NOT met"}')" "$worst"
