#!/bin/bash
# make bench: how soon after its boundary a new public port accepts, seen
# from a client that follows the schedule (tests/tools/boundary-probe: it
# computes the port, then connects from 2 ms before the boundary until one
# completes), with 1 and with 1,024 services (Interval=1s, Decoys=8, one
# echo backend). Beside it, the agent's own figures for the same changes
# (rotation.changes in `status`): how late the switch of banks was
# committed, and how late the change's last transaction (the host-port scan
# and the next change loaded into the idle bank) was. Targets (issue 16):
# open within 1 ms of the boundary at the median, within 2 ms at p99.
# Everything runs in namespaces of its own: the agent's in this one, the
# client in "cli", joined by a veth pair.
. "$(dirname "$0")/../integration/lib.bash"
BOUNDARIES=${MTD_BENCH_BOUNDARIES:-40}
enter_private_namespaces "$@"
make_work_dir
PROBE=$BUILD_DIR/tools/boundary-probe
NETPROBE=$BUILD_DIR/tools/netprobe
[ -x "$PROBE" ] && [ -x "$NETPROBE" ] || fail "build the test tools first"

setup_client_namespace
"$NETPROBE" echo-server 10.213.0.1 8022 &
ECHO=$!
trap 'kill $ECHO 2>/dev/null; cleanup_work' EXIT

# write_services N: echo0..echo(N-1), 50 ports each from 10000
write_services() {
	local n=$1 i first
	rm -f "$WORK/policies/"*.policy
	write_key "$WORK/keys/echo.key"
	for i in $(seq 0 $((n - 1))); do
		first=$((10000 + i * 50))
		cat >"$WORK/policies/echo$i.policy" <<POLICY
[Service]
Name=echo$i
Backend=10.213.0.1:8022

[Rotation]
PublicPorts=$first-$((first + 49))
Interval=1s
Grace=500ms
KeyFile=$WORK/keys/echo.key
Decoys=8
DecoyBlock=1min
POLICY
	done
}

# agent_lateness: median and worst of the agent's switch and last-commit
# lateness over the changes it kept (the last 64), in microseconds
agent_lateness() {
	local pairs
	pairs=$(mtdctl --json status | tr -d ' \n' |
		grep -o '"switch_late_usec":[0-9]*,"late_usec":[0-9]*' |
		sed 's/"switch_late_usec":\([0-9]*\),"late_usec":\([0-9]*\)/\1 \2/')
	[ -n "$pairs" ] || { echo "no timed changes"; return; }
	echo "switch committed late: $(echo "$pairs" | cut -d' ' -f1 | median_worst);" \
		"last transaction committed late: $(echo "$pairs" | cut -d' ' -f2 | median_worst)" \
		"($(echo "$pairs" | wc -l) changes)"
}
median_worst() {
	sort -n | awk '{ v[NR] = $1 } END { printf "median %d us, worst %d us", v[int(NR / 2) + 1], v[NR] }'
}

run_phase() {
	local n=$1 out summary
	write_services "$n"
	START_AGENT_SECONDS=120 start_agent
	# let the first changes (the table's creation) pass
	sleep 2
	out=$(in_client "$PROBE" 10.213.0.1 "$WORK/keys/echo.key" echo0 10000-10049 1 "$BOUNDARIES") ||
		fail "boundary-probe failed"
	summary=$(echo "$out" | grep '^summary:')
	echo "  $n service(s), client side: $summary"
	echo "  $n service(s), agent side:  $(agent_lateness)"
	stop_agent || fail "the agent did not stop cleanly"
	echo "$summary" >"$WORK/summary.$n"
}

echo "bench_boundary: $BOUNDARIES boundaries per run, Interval=1s; target median <= 1000 us, p99 <= 2000 us"
run_phase 1
run_phase 1024
for n in 1 1024; do
	read -r _ _ measured _ failed _ median _ p99 _ worst <"$WORK/summary.$n"
	verdict=met
	[ "$failed" -eq 0 ] && [ "$median" -le 1000 ] && [ "$p99" -le 2000 ] || verdict="NOT met"
	echo "  $n service(s): port open after its boundary: median $median us, p99 $p99 us, worst $worst us, $failed failed of $((measured + failed)) -> target $verdict"
done
