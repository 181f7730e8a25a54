#!/bin/bash
# The agent's metrics (docs/metrics.md), checked against what happened and
# read by a real Prometheus. The agent in a server namespace, clients in a
# client namespace.
#
#   - `mtdctl metrics` passes `promtool check metrics` (Debian's prometheus)
#   - decoy hits counted = hits made (5 spoofed SYNs, 1 handshake); the
#     handshake's block is counted by its evidence, the blocked source shown
#   - transactions, timed changes and the switch and staging histograms grow
#     with the boundaries (Interval=1s)
#   - $calls seccomp violations of a storming instance (one record, then
#     signals-counted summaries) are mtd_detections_total $calls
#   - a managed instance: launches and instances by state as `mtdctl instances`
#     says; `mtdctl quarantine` is a replacement by reason "manual" with its
#     detection-to-replacement time
#   - --metrics-listen on 127.0.0.1 and on a unix socket serve the same
#     families; a non-loopback address, a name and a bad port are refused
#   - hostile clients: an oversized request is answered 431; a connection that
#     sends nothing is closed after the deadline; 16 idle connections take every
#     slot, the next is closed at once, and the control socket still answers
#   - a real Prometheus scrapes 127.0.0.1 every second: the target is up and
#     mtd_decoy_hits_total is the number of hits made
. "$(dirname "$0")/lib.bash"
enter_private_namespaces "$@"
make_work_dir
NETPROBE=$BUILD_DIR/tools/netprobe
SPOOF=$BUILD_DIR/tools/spoof-packet
[ -x "$NETPROBE" ] && [ -x "$SPOOF" ] || fail "build first: $NETPROBE and $SPOOF"
PROMETHEUS_DIR=${MTD_PROMETHEUS_DIR:-/var/cache/mtd-agent/prometheus}
PROMTOOL=$PROMETHEUS_DIR/usr/bin/promtool
PROMETHEUS=$PROMETHEUS_DIR/usr/bin/prometheus
[ -x "$PROMTOOL" ] && [ -x "$PROMETHEUS" ] || fail "no $PROMTOOL or $PROMETHEUS: run 'make deps'"
command -v curl >/dev/null || fail "no curl: run 'make deps'"

setup_client_namespace
ip -n cli addr add 10.213.0.5/24 dev veth-cli
ip -n cli addr add 10.213.0.66/24 dev veth-cli
in_client "$NETPROBE" ping 10.213.0.1 9 300 2>/dev/null

"$NETPROBE" echo-server 10.213.0.1 8022 &
ECHO=$!
PROM_PID=""
trap 'kill "$ECHO" $PROM_PID 2>/dev/null; cleanup_work' EXIT

# --- addresses the listener refuses, before anything runs ---------------------------
for bad in 10.213.0.1:9650 0.0.0.0:9650 '[::]:9650' '[fd00:213::1]:9650' localhost:9650 \
	127.0.0.1:0 127.0.0.1:65536 127.0.0.1:port unix:relative/path; do
	out=$("$AGENT" --metrics-listen "$bad" --policy-dir "$WORK/policies" 2>&1)
	rc=$?
	[ "$rc" -eq 2 ] || fail "--metrics-listen $bad: exit $rc, not 2: $out"
	[ "$(echo "$out" | wc -l)" -eq 1 ] || fail "--metrics-listen $bad: not one line: $out"
	case "$out" in
	*"--metrics-listen: '$bad'"*) ;;
	*) fail "the refusal of $bad does not name it: $out" ;;
	esac
done
case "$("$AGENT" --metrics-listen 10.213.0.1:9650 2>&1)" in
*"not a loopback address"*) ;;
*) fail "10.213.0.1 is not refused as a non-loopback address" ;;
esac
ok "--metrics-listen refuses non-loopback addresses, names, bad ports and relative paths (one line, exit 2)"

# --- the agent: a host service with decoys, a managed service -----------------------
write_key "$WORK/keys/web.key"
cat >"$WORK/policies/web.policy" <<POLICY
[Service]
Name=web
Backend=10.213.0.1:8022

[Rotation]
PublicPorts=20000-20999
Interval=1s
Grace=500ms
KeyFile=$WORK/keys/web.key
POLICY
# decoys that stay put for the test (an hour's interval)
write_key "$WORK/keys/trap.key"
cat >"$WORK/policies/trap.policy" <<POLICY
[Service]
Name=trap
Backend=10.213.0.1:8022

[Rotation]
PublicPorts=21000-21999
Interval=3600s
KeyFile=$WORK/keys/trap.key
Decoys=4
DecoyBlock=10min
POLICY
make_probe_snapshot
write_probe_service dns 22000-22099 "/bin/probe sleep" "[Rotation] AddressPool=10.215.0.0/24"
# one thread calls keyctl (a listed violation, answered EPERM) for 1 s, then waits
write_probe_service storm 23000-23099 "/bin/probe storm 1 1" "[Service] User=probe" \
	"ViolationSystemCalls=keyctl" "OnSyscallViolation=errno" "[Rotation] AddressPool=10.216.0.0/24"
start_agent --metrics-listen 127.0.0.1:9650

metrics() { mtdctl metrics; }
# value NAME{LABELS}: the sample's value in `mtdctl metrics` (empty: none)
value() { metrics | awk -v s="$1" '$1 == s { print $2 }'; }
check_metrics() { # FILE WHAT
	local out
	out=$("$PROMTOOL" check metrics <"$1" 2>&1) || fail "promtool check metrics ($2): $out"
	[ -z "$out" ] || fail "promtool check metrics ($2) has remarks: $out"
}

metrics >"$WORK/m0" || fail "mtdctl metrics failed"
check_metrics "$WORK/m0" "mtdctl metrics at start"
for family in mtd_build_info mtd_agent_start_time_seconds mtd_rotation_transactions_total \
	mtd_rotation_transaction_failures_total mtd_rotation_switch_duration_seconds \
	mtd_rotation_staging_duration_seconds mtd_blocked_sources mtd_decoy_hits_total \
	mtd_sources_blocked_total mtd_detections_total mtd_replacements_total \
	mtd_detection_to_replacement_seconds mtd_instance_launches_total \
	mtd_instance_launch_failures_total mtd_instances mtd_audit_records_total \
	mtd_audit_seals_total mtd_audit_records_lost_total mtd_audit_queued mtd_clock_trusted \
	mtd_shared_blocked_ranges mtd_shared_blocked_intervals; do
	grep -q "^# TYPE $family " "$WORK/m0" || fail "no family $family in: $(cat "$WORK/m0")"
done
ok "mtdctl metrics passes promtool check metrics and has every family of docs/metrics.md"

# --- rotation: transactions and the histograms grow with the boundaries -------------
t0=$(value mtd_rotation_transactions_total)
c0=$(value mtd_rotation_timed_changes_total)
s0=$(value mtd_rotation_switch_duration_seconds_count)
wait_for '[ "$(value mtd_rotation_timed_changes_total)" -ge $((c0 + 3)) ]' 100 ||
	fail "three boundaries passed and timed changes went from $c0 to $(value mtd_rotation_timed_changes_total)"
t1=$(value mtd_rotation_transactions_total)
s1=$(value mtd_rotation_switch_duration_seconds_count)
[ "$t1" -gt "$t0" ] || fail "transactions did not grow across boundaries: $t0 -> $t1"
# Most boundaries are a switch of the staged bank; one whose staging was not
# ready in time (a loaded sanitizer run) is a full transaction instead and is
# timed as such, not in the switch histogram.
c1=$(value mtd_rotation_timed_changes_total)
[ "$s1" -gt "$s0" ] && [ $((s1 - s0)) -le $((c1 - c0)) ] ||
	fail "$((c1 - c0)) timed changes and the switch histogram counted $s0 -> $s1"
[ "$(value 'mtd_rotation_switch_duration_seconds_bucket{le="+Inf"}')" = "$s1" ] ||
	fail "the +Inf bucket is not the count: $(metrics | grep switch_duration)"
[ "$(value mtd_rotation_staging_duration_seconds_count)" -gt 0 ] ||
	fail "nothing was staged: $(metrics | grep staging_duration)"
status_tx=$(mtdctl --json status | tr -d ' \n' | sed -n 's/.*"transactions":\([0-9]*\).*/\1/p')
[ "$status_tx" -ge "$t1" ] || fail "status says $status_tx transactions, metrics $t1"
ok "boundaries: transactions $t0 -> $t1, switches timed $s0 -> $s1, staging timed; status agrees"

# --- decoys: hits counted as made, the block by its evidence ------------------------
decoy_of() { mtdctl --json status | tr -d ' \n' | sed -n "s/.*\"name\":\"$1\",[^]]*\"decoys\":\[\([0-9]*\).*/\1/p"; }
decoy=$(decoy_of trap)
[ -n "$decoy" ] || fail "no decoy of trap in status"
in_client "$SPOOF" tcp 10.213.0.66 40001 10.213.0.1 "$decoy" 5 || fail "spoof-packet"
in_client env NETPROBE_SOURCE=10.213.0.5 "$NETPROBE" connect 10.213.0.1 "$decoy" 1000 ||
	fail "10.213.0.5: the decoy does not complete a handshake"
hits_audited() { mtdctl audit show | grep -c ' decoy-hit '; }
wait_for '[ "$(hits_audited)" -ge 6 ] && mtdctl audit show | grep -q " source-blocked "' ||
	fail "6 hits and a block were not audited: $(mtdctl audit show | grep -e decoy-hit -e source-blocked)"
sleep 0.5 # nothing more may come
[ "$(hits_audited)" -eq 6 ] || fail "6 hits made, $(hits_audited) audited"
[ "$(value 'mtd_decoy_hits_total{service="trap"}')" = 6 ] ||
	fail "6 decoy hits made, metrics: $(metrics | grep decoy_hits)"
[ "$(value 'mtd_sources_blocked_total{evidence="tcp-handshake"}')" = 1 ] ||
	fail "one source blocked on its handshake, metrics: $(metrics | grep sources_blocked)"
[ "$(value 'mtd_sources_blocked_total{evidence="tcp-syn"}')" = "" ] ||
	fail "a spoofed SYN counted as a block: $(metrics | grep sources_blocked)"
[ "$(value mtd_blocked_sources)" = 1 ] || fail "one source blocked now: $(metrics | grep blocked_sources)"
ok "decoy hits: 5 spoofed SYNs and 1 handshake = mtd_decoy_hits_total 6; 1 block by tcp-handshake; 1 blocked now"

# --- a managed instance: launches, states, a manual replacement ---------------------
wait_for 'json_instances | grep -q "\"service\":\"dns\""' 100 || fail "dns has no instance: $(json_instances)"
wait_for '[ "$(value "mtd_instance_launches_total{service=\"dns\"}")" = 1 ]' 50 ||
	fail "one launch of dns, metrics: $(metrics | grep launches)"
n=$(json_instances | grep -o '"state":"[a-z]*"' | wc -l)
[ "$(metrics | grep -c '^mtd_instances{')" -ge 1 ] || fail "no mtd_instances series: $(metrics | grep instances)"
sum=$(metrics | awk '/^mtd_instances\{/ { s += $2 } END { print s + 0 }')
[ "$sum" = "$n" ] || fail "mtdctl instances lists $n, mtd_instances sums to $sum: $(metrics | grep '^mtd_instances')"
mtdctl quarantine dns --reason metrics-test >/dev/null || fail "mtdctl quarantine dns"
wait_for 'mtdctl audit show | grep -q " instance-replaced "' 100 ||
	fail "the quarantine did not replace dns: $(mtdctl audit show | tail -5)"
[ "$(value 'mtd_replacements_total{service="dns",reason="manual"}')" = 1 ] ||
	fail "one manual replacement, metrics: $(metrics | grep replacements)"
[ "$(value mtd_detection_to_replacement_seconds_count)" = 1 ] ||
	fail "one detection-to-replacement time: $(metrics | grep detection_to_replacement)"
[ "$(value 'mtd_instance_launches_total{service="dns"}')" = 2 ] ||
	fail "the replacement is the second launch: $(metrics | grep launches)"
wait_for '[ "$(value "mtd_instances{service=\"dns\",state=\"quarantined\"}")" = 1 ]' 100 ||
	fail "the quarantined instance is not counted: $(metrics | grep '^mtd_instances'); $(json_instances)"
ok "dns: launches 1 then 2, mtd_instances sums to what mtdctl instances lists, a manual replacement timed"

# --- detections: every violating call counted, summaries included -----------------
wait_for "grep -q 'storm_calls=' '$AGENT_LOG'" 200 || fail "the storm did not end"
calls=$(sed -n 's/.*storm_calls=\([0-9]*\) storm_eperm=.*/\1/p' "$AGENT_LOG")
[ "${calls:-0}" -ge 10 ] || fail "the storm made only ${calls:-0} calls"
# the first violation is a record, the rest come in signals-counted summaries (1 s)
wait_for '[ "$(value "mtd_detections_total{service=\"storm\",signal=\"seccomp-violation\"}")" = "$calls" ]' 100 ||
	fail "$calls violating calls, metrics: $(metrics | grep detections)"
ok "a storm of $calls violating calls: mtd_detections_total{service=\"storm\",signal=\"seccomp-violation\"} is $calls"

# --- the listener: same families as mtdctl, hostile clients -------------------------
curl -sS --max-time 5 http://127.0.0.1:9650/metrics >"$WORK/m-tcp" || fail "GET /metrics on 127.0.0.1:9650"
check_metrics "$WORK/m-tcp" "GET http://127.0.0.1:9650/metrics"
metrics >"$WORK/m1"
diff <(grep '^# TYPE' "$WORK/m1") <(grep '^# TYPE' "$WORK/m-tcp") >/dev/null ||
	fail "the listener and mtdctl metrics differ in families: $(diff <(grep '^# TYPE' "$WORK/m1") <(grep '^# TYPE' "$WORK/m-tcp"))"
diff <(grep '^mtd_decoy_hits_total' "$WORK/m1") <(grep '^mtd_decoy_hits_total' "$WORK/m-tcp") >/dev/null ||
	fail "the listener and mtdctl count different hits"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://127.0.0.1:9650/)
[ "$code" = 404 ] || fail "GET / answered $code, not 404"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST http://127.0.0.1:9650/metrics)
[ "$code" = 405 ] || fail "POST /metrics answered $code, not 405"
head -c 5000 /dev/zero | tr '\0' A >"$WORK/long"
reply=$(timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/9650; cat "$1" >&3; head -1 <&3' _ "$WORK/long")
assert_contains "$reply" "431" "an oversized request line is refused (431)"
ok "127.0.0.1:9650 serves what mtdctl metrics does (promtool clean); / is 404, POST 405, an oversized request 431"

# slowloris: connections that send nothing
exec 5<>/dev/tcp/127.0.0.1/9650
idle=()
for i in $(seq 1 15); do
	exec {fd}<>/dev/tcp/127.0.0.1/9650
	idle+=("$fd")
done
sleep 0.3
# every slot is taken: the next connection is closed without an answer
out=$(timeout 5 curl -s --max-time 4 http://127.0.0.1:9650/metrics)
[ -z "$out" ] || fail "a 17th connection was answered while 16 waited"
mtdctl status >/dev/null || fail "the control socket does not answer while the listener is full"
# the one that sent nothing is closed after the deadline (5 s): read gets EOF
timeout 10 cat <&5 >/dev/null || fail "a connection that sent nothing was not closed within 10 s"
exec 5>&-
for fd in "${idle[@]}"; do exec {fd}>&-; done
wait_for 'curl -sf --max-time 2 http://127.0.0.1:9650/metrics >/dev/null' 50 ||
	fail "the listener does not serve again after the idle connections went"
ok "slowloris: 16 idle connections fill the listener (the 17th is closed, the agent answers), each is closed after its deadline, then it serves again"

# --- a real Prometheus scrapes the agent --------------------------------------------
mkdir -p "$WORK/prom"
cat >"$WORK/prom/prometheus.yml" <<'YAML'
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: mtd
    static_configs:
      - targets: ['127.0.0.1:9650']
YAML
"$PROMTOOL" check config "$WORK/prom/prometheus.yml" >/dev/null 2>&1 || fail "promtool check config"
"$PROMETHEUS" --config.file="$WORK/prom/prometheus.yml" --storage.tsdb.path="$WORK/prom/data" \
	--web.listen-address=127.0.0.1:9091 >"$WORK/prom/log" 2>&1 &
PROM_PID=$!
query() { curl -s --max-time 3 --data-urlencode "query=$1" http://127.0.0.1:9091/api/v1/query; }
wait_for 'query up | grep -q "\"job\":\"mtd\"[^]]*\"1\"\]"' 300 ||
	fail "Prometheus does not see the agent up: $(query up); $(tail -5 "$WORK/prom/log")"
wait_for 'query "mtd_decoy_hits_total{service=\"trap\"}" | grep -q "\"6\"\]"' 100 ||
	fail "Prometheus's mtd_decoy_hits_total is not 6: $(query 'mtd_decoy_hits_total')"
assert_contains "$(query 'mtd_build_info')" '"version":"' "Prometheus has the build info"
kill "$PROM_PID"
wait "$PROM_PID" 2>/dev/null
PROM_PID=""
ok "a real Prometheus scraping 127.0.0.1:9650 every 1s: up is 1, mtd_decoy_hits_total{service=\"trap\"} is 6"

stop_agent || fail "the agent did not stop cleanly"

# --- a unix socket -------------------------------------------------------------------
getent group users >/dev/null || fail "no group 'users' to stand in for the read group"
start_agent --metrics-listen "unix:$WORK/run/metrics.sock" --read-group users
[ "$(stat -c '%a %U:%G' "$WORK/run/metrics.sock")" = "660 root:users" ] ||
	fail "the metrics socket is $(stat -c '%a %U:%G' "$WORK/run/metrics.sock"), not 660 root:users"
as_user 65534 "$(getent group users | cut -d: -f3)" curl -sf --max-time 3 \
	--unix-socket "$WORK/run/metrics.sock" http://localhost/metrics >/dev/null ||
	fail "a member of the read group cannot read the metrics socket"
curl -sS --max-time 5 --unix-socket "$WORK/run/metrics.sock" http://localhost/metrics >"$WORK/m-unix" ||
	fail "GET /metrics on the unix socket"
check_metrics "$WORK/m-unix" "GET /metrics on unix:$WORK/run/metrics.sock"
diff <(grep '^# TYPE' "$WORK/m1") <(grep '^# TYPE' "$WORK/m-unix") >/dev/null ||
	fail "the unix socket serves other families: $(diff <(grep '^# TYPE' "$WORK/m1") <(grep '^# TYPE' "$WORK/m-unix"))"
stop_agent || fail "the agent did not stop cleanly"
[ -e "$WORK/run/metrics.sock" ] && fail "the metrics socket is left after a clean stop"
ok "unix:$WORK/run/metrics.sock (0660, the read group's) serves the same families, promtool clean; removed at stop"

# without a read group (one that does not exist): root's alone
start_agent --metrics-listen "unix:$WORK/run/metrics.sock" --read-group "mtd-no-such-group-$$"
[ "$(stat -c '%a %U' "$WORK/run/metrics.sock")" = "600 root" ] ||
	fail "without a read group the metrics socket is $(stat -c '%a %U' "$WORK/run/metrics.sock"), not 600 root"
as_user 65534 65534 curl -s --max-time 3 --unix-socket "$WORK/run/metrics.sock" http://localhost/metrics >/dev/null &&
	fail "nobody read the metrics socket"
stop_agent || fail "the agent did not stop cleanly"
ok "a member of the read group reads the socket; without a read group it is 0600 root's and nobody cannot"
echo "$TEST_NAME: $CHECKS checks passed"
