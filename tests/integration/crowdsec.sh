#!/bin/bash
# Blocks shared through CrowdSec (docs/fleet.md): a real local API (Debian's
# crowdsec, LAPI only, its own config and sqlite database in the work
# directory) in the test's namespace, three agents (A, B, C) in three network
# namespaces on one bridge, each with its bridge mtd-crowdsec (interval 1 s,
# the whole set every 3 s);
# C's agent and bridge run as nobody:nogroup through --block-group. A scanner
# namespace holds many source addresses.
#
#   - >= 20 scans of A's decoy, each from a new source: every source ends
#     blocked on B and C (the propagation times are printed: median, worst)
#   - `cscli decisions add` reaches all three; `cscli decisions delete`
#     unblocks on all three
#   - NeverBlock= of B wins over a decision (A and C block, B does not)
#   - `cscli decisions add --range` reaches the three interval sets (a source
#     in the range is dropped, others pass); of two overlapping ranges,
#     deleting one keeps what the other covers; deleting both unblocks; B
#     blocks a range around its NeverBlock= address
#   - a peer outside the block group is refused shared-blocks
#   - 1500 imported decisions reach A and C (C's bridge paced under the
#     agent's rate limit for a non-root uid)
#   - the LAPI stopped: the hosts keep every block, status says "down", A
#     blocks a new scanner on its own and queues the alert; the LAPI back:
#     the queued alert goes out and B and C block that scanner too
#   - an agent restarted under its bridge: blocks kept, the bridge
#     reconnects, the next decision reaches it
. "$(dirname "$0")/lib.bash"
enter_private_namespaces "$@"
CROWDSEC_DIR=${MTD_CROWDSEC_DIR:-/var/cache/mtd-agent/crowdsec}
CROWDSEC=$CROWDSEC_DIR/usr/bin/crowdsec
CSCLI_BIN=$CROWDSEC_DIR/usr/bin/cscli
BRIDGE=$BUILD_DIR/mtd-crowdsec
NETPROBE=$BUILD_DIR/tools/netprobe
[ -x "$CROWDSEC" ] && [ -x "$CSCLI_BIN" ] || fail "$CROWDSEC missing: run 'make deps' (scripts/deps unpacks crowdsec)"
[ -x "$BRIDGE" ] && [ -x "$NETPROBE" ] || fail "build first: $BRIDGE and $NETPROBE"
HITS=${MTD_TEST_CROWDSEC_HITS:-20}
make_work_dir

PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}" ${LAPI_PID:-}; do kill -KILL "$p" 2>/dev/null; done
	for p in "${PIDS[@]}" ${LAPI_PID:-}; do wait "$p" 2>/dev/null; done
	cleanup_work
}
trap cleanup EXIT

# --- the topology: br0 (10.220.0.1, the LAPI) and four namespaces -------------------
mkdir -p /run/netns
mount -t tmpfs -o mode=0755 mtd-test-netns /run/netns
ip link add br0 type bridge
ip addr add 10.220.0.1/24 dev br0
ip link set br0 up
declare -A ADDR=([hA]=10.220.0.11 [hB]=10.220.0.12 [hC]=10.220.0.13 [scan]=10.220.0.50)
for ns in hA hB hC scan; do
	ip netns add "$ns"
	ip link add "v-$ns" type veth peer name eth0 netns "$ns"
	ip link set "v-$ns" master br0 up
	ip -n "$ns" addr add "${ADDR[$ns]}/24" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$ns" link set lo up
done
# the scanner's sources: one per hit, and a few more
for i in $(seq 100 $((100 + HITS + 5))); do ip -n scan addr add "10.220.0.$i/24" dev eth0; done
in_ns() { nsenter --net="/run/netns/$1" "${@:2}"; }
ok "topology: LAPI on 10.220.0.1, hosts A B C on .11 .12 .13, a scanner with $((HITS + 6)) sources"

# --- the LAPI -------------------------------------------------------------------------
CS=$WORK/crowdsec
mkdir -p "$CS/data" "$CS/hub" "$CS/notifications" "$CS/plugins"
cp "$CROWDSEC_DIR/etc/crowdsec/profiles.yaml" "$CROWDSEC_DIR/etc/crowdsec/simulation.yaml" "$CS/"
cat >"$CS/config.yaml" <<EOF
common:
  daemonize: false
  log_media: file
  log_dir: $CS/
  log_level: info
  working_dir: .
config_paths:
  config_dir: $CS/
  data_dir: $CS/data/
  simulation_path: $CS/simulation.yaml
  hub_dir: $CS/hub/
  index_path: $CS/hub/.index.json
  notification_dir: $CS/notifications/
  plugin_dir: $CS/plugins/
cscli:
  output: human
  color: never
db_config:
  type: sqlite
  db_path: $CS/data/crowdsec.db
  use_wal: true
api:
  client:
    credentials_path: $CS/local_api_credentials.yaml
  server:
    listen_uri: 10.220.0.1:8080
    profiles_path: $CS/profiles.yaml
    trusted_ips:
      - 127.0.0.1
EOF
cscli() { "$CSCLI_BIN" -c "$CS/config.yaml" "$@" 2>>"$CS/cscli.log"; }
LAPI_PID=""
start_lapi() {
	"$CROWDSEC" -c "$CS/config.yaml" -no-cs >>"$CS/crowdsec.stdout" 2>&1 &
	LAPI_PID=$!
	wait_for 'curl -s -o /dev/null http://10.220.0.1:8080/' 100 ||
		fail "the LAPI did not start: $(tail -5 "$CS/crowdsec.log" "$CS/crowdsec.stdout")"
}
start_lapi
cscli machines add cscli --password "$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')" \
	-f "$CS/local_api_credentials.yaml" >/dev/null || fail "cscli machines add cscli: $(tail -3 "$CS/cscli.log")"
ok "a CrowdSec LAPI (crowdsec -no-cs, sqlite in the work directory) answers on 10.220.0.1:8080"

# --- three agents, three bridges ------------------------------------------------------
write_policy() { # DIR HOST
	write_key "$1/keys/web.key"
	cat >"$1/policies/web.policy" <<POLICY
[Service]
Name=web
Backend=$2:8022

[Rotation]
PublicPorts=20000-20099
Interval=3600s
KeyFile=$1/keys/web.key
Decoys=8
DecoyBlock=10min
POLICY
}
declare -A AGENT_PIDS BRIDGE_PIDS
start_host() { # NS [AGENT ARGS...]
	local ns=$1 d=$WORK/$1
	shift
	nsenter --net="/run/netns/$ns" "$AGENT" --policy-dir "$d/policies" --state-dir "$d/state" --runtime-dir "$d/run" \
		--audit-log "$d/log/audit.log" --instances-cgroup "$INSTANCES_CGROUP-$ns" \
		--config "$d/mtd.conf" "$@" 2>>"$d/agent.stderr" &
	AGENT_PIDS[$ns]=$!
	PIDS+=($!)
}
for ns in hA hB hC; do
	d=$WORK/$ns
	mkdir -p "$d/policies" "$d/state" "$d/run" "$d/log" "$d/keys" "$d/bridge"
	chmod 0755 "$d" "$d/run"
	write_policy "$d" "${ADDR[$ns]}"
	printf '[Decoys]\n' >"$d/mtd.conf"
	cscli machines add "mtd-$ns" --password "$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')" \
		-f "$d/bridge/machine.yaml" >/dev/null || fail "cscli machines add mtd-$ns"
	cscli bouncers add "mtd-$ns" -o raw >"$d/bridge/bouncer.key" || fail "cscli bouncers add mtd-$ns"
	chmod 0600 "$d/bridge/machine.yaml" "$d/bridge/bouncer.key"
done
printf '[Decoys]\nNeverBlock=10.220.0.99\n' >"$WORK/hB/mtd.conf"
chown -R nobody:nogroup "$WORK/hC/bridge"
# A: readers in nogroup, shared-blocks root only; C: nogroup may send shared-blocks
start_host hA --read-group nogroup
start_host hB
start_host hC --read-group nogroup --block-group nogroup
sock() { echo "$WORK/$1/run/control.sock"; }
status_of() { "$MTDCTL" --socket "$(sock "$1")" --json status 2>/dev/null | tr -d ' \n'; }
for ns in hA hB hC; do
	wait_for "status_of $ns | grep -q '\"decoys\":\[[0-9]'" 100 ||
		fail "agent $ns did not start: $(tail -5 "$WORK/$ns/agent.stderr")"
done
start_bridge() { # NS [as user]
	local ns=$1 d=$WORK/$1
	local run=(nsenter --net="/run/netns/$ns")
	[ "$ns" = hC ] && run+=(setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all --)
	"${run[@]}" "$BRIDGE" --socket "$(sock "$ns")" --machine-file "$d/bridge/machine.yaml" \
		--bouncer-key-file "$d/bridge/bouncer.key" --state-file "$d/bridge/state" \
		--interval 1 --resync 3 --timeout 1000 2>>"$d/bridge.stderr" &
	BRIDGE_PIDS[$ns]=$!
	PIDS+=($!)
}
for ns in hA hB hC; do start_bridge "$ns"; done
lapi_state() { status_of "$1" | sed -n 's/.*"bridge":{[^}]*"lapi":"\([a-z]*\)".*/\1/p'; }
for ns in hA hB hC; do
	wait_for "[ \"\$(lapi_state $ns)\" = up ]" 100 ||
		fail "$ns: the bridge did not report the LAPI up: $(status_of "$ns") $(tail -5 "$WORK/$ns/bridge.stderr")"
done
ok "three agents in three namespaces, each with its bridge; status shows the LAPI up on all three (C's bridge runs as nobody)"

# --- a peer outside the block group is refused -------------------------------------
refused=$(setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all -- /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
s.send(b"{\"command\":\"shared-blocks\",\"ban\":[{\"address\":\"10.220.0.200\",\"seconds\":60}]}")
print(s.recv(65536).decode())' "$(sock hA)")
assert_contains "$refused" "shared-blocks requires root or the block group" \
	"nobody (a reader of A, not in its block group) is refused shared-blocks"
ok "shared-blocks is refused to a reader outside the block group: $refused"

# --- scans of A's decoy reach B and C -------------------------------------------------
blocked_in() { in_ns "$1" nft list set inet mtd blocked4 2>/dev/null; }
is_blocked() { blocked_in "$1" | grep -q "[ {,]$2 timeout"; }
decoy_of_a() { status_of hA | sed -n 's/.*"name":"web",[^]]*"decoys":\[\([0-9]*\).*/\1/p'; }
now_ms() { date +%s%3N; }
times=()
for i in $(seq 1 "$HITS"); do
	src=10.220.0.$((100 + i))
	d=$(decoy_of_a)
	t0=$(now_ms)
	in_ns scan env NETPROBE_SOURCE="$src" "$NETPROBE" connect 10.220.0.11 "$d" 1000 ||
		fail "$src: A's decoy $d does not complete a handshake"
	wait_for "is_blocked hB $src && is_blocked hC $src" 200 ||
		fail "$src scanned A's decoy and is not blocked on B and C within 20 s:
B: $(blocked_in hB)
C: $(blocked_in hC)
A's bridge: $(tail -5 "$WORK/hA/bridge.stderr")"
	times+=($(($(now_ms) - t0)))
	is_blocked hA "$src" || fail "$src is not blocked on A itself"
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(echo "$sorted" | sed -n "$(((HITS + 1) / 2))p")
worst=$(echo "$sorted" | tail -1)
echo "  propagation (A's decoy -> blocked on B and C), $HITS hits: median ${median} ms, worst ${worst} ms (bridge interval 1 s)"
for ns in hB hC; do
	assert_contains "$(blocked_in "$ns")" "10.220.0.$((100 + HITS)) timeout" "the last source is blocked on $ns"
done
sec=$(blocked_in hB | grep -o "10.220.0.101 timeout [0-9hms]*" | head -1)
# DecoyBlock=10min of A, less the time the decision took to arrive
echo "$sec" | grep -Eq "timeout (10m|9m[0-9]+s)$" || fail "B blocks 10.220.0.101 for A's DecoyBlock=10min: $sec"
ok "$HITS scans of A's decoy from $HITS sources: each blocked on A, then on B and C"
sent=$(status_of hA | sed -n 's/.*"alerts_sent":\([0-9]*\).*/\1/p')
[ "${sent:-0}" -ge "$HITS" ] || fail "A's status counts $sent alerts sent, want >= $HITS: $(status_of hA)"
got=$(status_of hB | sed -n 's/.*"decisions_new":\([0-9]*\).*/\1/p')
[ "${got:-0}" -ge "$HITS" ] || fail "B's status counts $got decisions received, want >= $HITS"
assert_contains "$(cscli alerts list -o raw 2>/dev/null)" "mtd/decoy-hit" "the LAPI holds mtd/decoy-hit alerts"
assert_contains "$("$MTDCTL" --socket "$(sock hA)" status)" "crowdsec LAPI up since" "mtdctl status shows the LAPI up"
assert_contains "$("$MTDCTL" --socket "$(sock hA)" status)" "sent $sent alert(s)" "mtdctl status counts A's alerts"
assert_contains "$("$MTDCTL" --socket "$(sock hB)" status)" "received $got ban(s)" "mtdctl status counts B's bans"
ok "status counts both ways (A: $sent alerts sent; B: $got decisions received); the LAPI lists scenario mtd/decoy-hit"

# --- cscli decisions add / delete; NeverBlock= wins -------------------------------------
cscli decisions add -i 10.220.0.77 -d 30m -R "test: by hand" >/dev/null || fail "cscli decisions add: $(tail -3 "$CS/cscli.log")"
for ns in hA hB hC; do
	wait_for "is_blocked $ns 10.220.0.77" 100 || fail "cscli's decision did not reach $ns: $(blocked_in "$ns")"
done
ok "cscli decisions add -i 10.220.0.77 reaches A, B and C"
cscli decisions delete -i 10.220.0.77 >/dev/null || fail "cscli decisions delete: $(tail -3 "$CS/cscli.log")"
for ns in hA hB hC; do
	wait_for "! is_blocked $ns 10.220.0.77" 100 || fail "cscli decisions delete did not unblock on $ns"
done
is_blocked hB 10.220.0.101 || fail "the delete of .77 unblocked more than .77 on B"
ok "cscli decisions delete unblocks 10.220.0.77 on all three, other blocks stay"
cscli decisions add -i 10.220.0.99 -d 30m >/dev/null || fail "cscli decisions add .99: $(tail -3 "$CS/cscli.log")"
wait_for "is_blocked hA 10.220.0.99 && is_blocked hC 10.220.0.99" 100 ||
	fail "the decision on .99 did not reach A and C"
wait_for "status_of hB | grep -q '\"never_block\":[1-9]'" 50 ||
	fail "B did not count the decision on .99 as NeverBlock=: $(status_of hB)"
is_blocked hB 10.220.0.99 && fail "B blocked 10.220.0.99, which its NeverBlock= holds"
ok "NeverBlock=10.220.0.99 of B wins over a decision: A and C block it, B does not"

# --- ranges: cscli decisions add --range reaches the three interval sets -----------------
# a listener on each host; sources of the scanner inside and outside the ranges
for ns in hA hB hC; do
	in_ns "$ns" "$NETPROBE" echo-server "${ADDR[$ns]}" 7070 &
	PIDS+=($!)
done
for a in 200 240; do ip -n scan addr add "10.220.0.$a/24" dev eth0; done
reaches() { in_ns scan env NETPROBE_SOURCE="$2" "$NETPROBE" connect "${ADDR[$1]}" 7070 500; }
ranges_in() { in_ns "$1" nft list set inet mtd ranges4 2>/dev/null; }
in_range() { in_ns "$1" nft get element inet mtd ranges4 "{ $2 }" >/dev/null 2>&1; }
for ns in hA hB hC; do
	wait_for "reaches $ns 10.220.0.200" 50 || fail "10.220.0.200 does not reach $ns:7070 before any range (control)"
done
cscli decisions add --range 10.220.0.192/26 -d 30m -R "test: a range" >/dev/null ||
	fail "cscli decisions add --range: $(tail -3 "$CS/cscli.log")"
for ns in hA hB hC; do
	wait_for "ranges_in $ns | grep -q '10.220.0.192/26 timeout'" 100 ||
		fail "the range 10.220.0.192/26 did not reach $ns: $(ranges_in "$ns")"
	reaches "$ns" 10.220.0.200 && fail "10.220.0.200, inside 10.220.0.192/26, still reaches $ns"
	reaches "$ns" 10.220.0.50 || fail "10.220.0.50, outside the range, no longer reaches $ns"
done
sec=$(ranges_in hB | grep -o "10.220.0.192/26 timeout [0-9hms]*")
echo "$sec" | grep -Eq "timeout (30m|29m[0-9]+s)$" || fail "B blocks the range for the decision's remaining 30 min: $sec"
ok "cscli decisions add --range 10.220.0.192/26 reaches A, B and C: a source in it is dropped ($sec), others pass"
# an overlapping decision: deleting the wider one keeps what the narrower covers
cscli decisions add --range 10.220.0.192/27 -d 1h >/dev/null || fail "cscli decisions add --range /27"
for ns in hA hB hC; do
	wait_for "ranges_in $ns | grep -Eq '10.220.0.192/27 timeout (1h|59m)'" 100 ||
		fail "the overlapping range 10.220.0.192/27 (1 h) did not reach $ns: $(ranges_in "$ns")"
done
cscli decisions delete --range 10.220.0.192/26 >/dev/null || fail "cscli decisions delete --range /26"
for ns in hA hB hC; do
	wait_for "! in_range $ns 10.220.0.240" 100 || fail "deleting 10.220.0.192/26 did not unblock 10.220.0.240 on $ns: $(ranges_in "$ns")"
	in_range "$ns" 10.220.0.200 || fail "deleting 10.220.0.192/26 unblocked 10.220.0.200, which 10.220.0.192/27 covers, on $ns"
	reaches "$ns" 10.220.0.240 || fail "10.220.0.240 does not reach $ns after its range was deleted"
	reaches "$ns" 10.220.0.200 && fail "10.220.0.200 reaches $ns while 10.220.0.192/27 is in force"
done
ok "two overlapping ranges: deleting 10.220.0.192/26 unblocks .240 and keeps .200 blocked by 10.220.0.192/27 on all three"
cscli decisions delete --range 10.220.0.192/27 >/dev/null || fail "cscli decisions delete --range /27"
for ns in hA hB hC; do
	wait_for "reaches $ns 10.220.0.200" 100 || fail "deleting 10.220.0.192/27 did not unblock 10.220.0.200 on $ns: $(ranges_in "$ns")"
done
ok "cscli decisions delete --range unblocks the range on all three"
# NeverBlock= of B inside a range: B blocks the range around it
cscli decisions add --range 10.220.0.96/30 -d 30m >/dev/null || fail "cscli decisions add --range 10.220.0.96/30"
for ns in hA hB hC; do
	wait_for "in_range $ns 10.220.0.97" 100 || fail "10.220.0.96/30 did not reach $ns: $(ranges_in "$ns")"
done
in_range hA 10.220.0.99 && in_range hC 10.220.0.99 || fail "A and C do not block 10.220.0.99 in 10.220.0.96/30"
in_range hB 10.220.0.99 && fail "B's range holds 10.220.0.99, which its NeverBlock= holds: $(ranges_in hB)"
in_range hB 10.220.0.98 || fail "B did not block the rest of 10.220.0.96/30: $(ranges_in hB)"
shared=$("$MTDCTL" --socket "$(sock hB)" status)
# (the bridges' resyncs send the ranges again: the counts of blocked ones grow)
assert_contains "$shared" "unblocked; 1 in force (1 interval(s))" "mtdctl status counts B's ranges in force"
echo "$shared" | grep -Eq "ranges: [3-9][0-9]* blocked, [2-9][0-9]* unblocked" || fail "B's status counts the ranges: $shared"
status_of hB | grep -q '"ranges":{"in_force":1,"intervals":1}' || fail "B's status JSON: $(status_of hB)"
ok "NeverBlock=10.220.0.99 of B inside 10.220.0.96/30: A and C block the /30, B all of it but .99"

# --- a bulk of decisions reaches the unprivileged bridge's agent in full ------------------
# 1500 decisions: 47 requests of 32, more than the agent admits at once from
# a non-root uid (a burst of 40, then 20 a second); the bridge paces itself
# under that, so none may be refused.
{
	echo "duration,scope,value"
	for i in $(seq 0 1499); do echo "30m,ip,10.230.$((i / 250)).$((i % 250 + 1))"; done
} >"$WORK/bulk.csv"
# (the LAPI's sqlite may answer "database is locked" while the three
# bouncers pull: the import is one alert, refused whole, so try again)
imported=""
for _ in 1 2 3 4 5; do
	cscli decisions import -i "$WORK/bulk.csv" >"$WORK/import.out" && { imported=1; break; }
	sleep 1
done
[ -n "$imported" ] || fail "cscli decisions import: $(tail -n 3 "$WORK/import.out" "$CS/cscli.log")"
bulk_in() { blocked_in "$1" | grep -o '10\.230\.[0-9]*\.[0-9]* timeout' | wc -l; }
for ns in hA hC; do
	wait_for "[ \$(bulk_in $ns) -eq 1500 ]" 300 || fail "$ns holds $(bulk_in "$ns") of 1500 imported decisions"
done
grep -q "rate limit" "$WORK/hC/bridge.stderr" && fail "C's agent refused its bridge for its rate: $(grep 'rate limit' "$WORK/hC/bridge.stderr" | head -2)"
ok "1500 imported decisions reach A and C in full (C's bridge, not root, refused nothing for its rate)"

# --- the LAPI goes away and comes back ------------------------------------------------
before_b=$(blocked_in hB | grep -o '10\.220\.0\.[0-9]* timeout' | sort)
kill -TERM "$LAPI_PID"
wait "$LAPI_PID" 2>/dev/null
LAPI_PID=""
for ns in hA hB hC; do
	wait_for "[ \"\$(lapi_state $ns)\" = down ]" 100 || fail "$ns: status does not say the LAPI is down: $(status_of "$ns")"
done
late=10.220.0.$((100 + HITS + 1))
in_ns scan env NETPROBE_SOURCE="$late" "$NETPROBE" connect 10.220.0.11 "$(decoy_of_a)" 1000 ||
	fail "A's decoy with the LAPI down"
wait_for "is_blocked hA $late" 50 || fail "A did not block $late on its own with the LAPI down"
wait_for "status_of hA | grep -q '\"alerts_queued\":1'" 50 || fail "A's bridge did not queue the alert: $(status_of hA)"
sleep 2 # the bridges retry meanwhile
after_b=$(blocked_in hB | grep -o '10\.220\.0\.[0-9]* timeout' | sort)
[ "$before_b" = "$after_b" ] || fail "B's blocks changed with the LAPI down: before $before_b after $after_b"
for ns in hA hB hC; do
	kill -0 "${AGENT_PIDS[$ns]}" || fail "agent $ns died with the LAPI down"
	status_of "$ns" | grep -q '"mode"' || fail "agent $ns does not answer with the LAPI down"
done
is_blocked hB "$late" && fail "B blocked $late while the LAPI was down (from where?)"
assert_contains "$("$MTDCTL" --socket "$(sock hB)" status)" "crowdsec LAPI down since" "mtdctl status says the LAPI is down"
ok "the LAPI down: the hosts keep their blocks and answer, status says down, A blocks $late alone and queues its alert"
start_lapi
for ns in hA hB hC; do
	wait_for "[ \"\$(lapi_state $ns)\" = up ]" 300 || fail "$ns: the bridge did not come back: $(status_of "$ns")"
done
for ns in hB hC; do
	wait_for "is_blocked $ns $late" 300 || fail "the alert queued while the LAPI was down never reached $ns"
done
status_of hA | grep -q '"alerts_queued":0' || fail "A's queue is not empty: $(status_of hA)"
ok "the LAPI back: the bridges resume, A's queued alert goes out, B and C block $late"

# --- the agent restarts under its bridge ----------------------------------------------
kill -TERM "${AGENT_PIDS[hB]}"
wait "${AGENT_PIDS[hB]}" || fail "B's agent did not stop cleanly"
start_host hB
wait_for "[ \"\$(lapi_state hB)\" = up ]" 100 ||
	fail "B's bridge did not report to the restarted agent: $(status_of hB) $(tail -3 "$WORK/hB/bridge.stderr")
B's agent: $(tail -20 "$WORK/hB/agent.stderr")"
is_blocked hB 10.220.0.101 || fail "B's restart lost the fleet's block of 10.220.0.101"
in_range hB 10.220.0.97 || fail "B's restart lost the fleet's range 10.220.0.96/30: $(ranges_in hB)"
in_range hB 10.220.0.99 && fail "B's restart blocked its NeverBlock= address 10.220.0.99: $(ranges_in hB)"
cscli decisions add -i 10.220.0.78 -d 30m >/dev/null || fail "cscli decisions add .78: $(tail -3 "$CS/cscli.log")"
wait_for "is_blocked hB 10.220.0.78" 100 || fail "a decision after B's restart did not reach B"
ok "B's agent restarts: its blocks and ranges stay, its bridge reconnects and the next decision reaches it"

for ns in hA hB hC; do
	kill -TERM "${BRIDGE_PIDS[$ns]}"
	wait "${BRIDGE_PIDS[$ns]}" || fail "the bridge of $ns did not stop cleanly"
	kill -TERM "${AGENT_PIDS[$ns]}"
	wait "${AGENT_PIDS[$ns]}" || fail "the agent of $ns did not stop cleanly"
done
ok "bridges and agents stop cleanly"
