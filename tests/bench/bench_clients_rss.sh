#!/bin/bash
# The agent's memory with 64 per-client services of 1,000 clients each
# (64 policies, 64,000 key files in a temporary directory), in a network
# namespace of its own: its RSS once it has programmed every door (the
# current epoch and the next one loaded ahead), its peak (VmHWM: the start,
# the staging, and the readiness poll's `mtdctl status`, which lists every
# client), and how long the start took, against the same agent with the 64
# services on shared keys (KeyFile=) in the same run. Target: RSS <= 64 MB.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$root/$BUILD" ;; esac
AGENT=$BUILD/mtd-agent
MTDCTL=$BUILD/mtdctl
[ "$(id -u)" -eq 0 ] || { echo "bench_clients_rss: skip (needs root)"; exit 0; }
[ -x "$AGENT" ] && [ -x "$MTDCTL" ] || { echo "bench_clients_rss: build first"; exit 1; }

if [ "${MTD_BENCH_IN_NS:-}" != 1 ]; then
	MTD_BENCH_IN_NS=1 exec unshare --net --mount -- bash "$0" "$@"
fi
ip link set lo up
ip addr add 192.0.2.10/24 dev lo

SERVICES=${SERVICES:-64}
CLIENTS=${CLIENTS:-1000}
W=$(mktemp -d /tmp/bench-clients-rss.XXXXXX)
AGENT_PID=""
# the agent's instances cgroup (empty: the services are host services) goes too
trap '[ -n "$AGENT_PID" ] && kill -KILL $AGENT_PID 2>/dev/null; wait $AGENT_PID 2>/dev/null
find /sys/fs/cgroup -maxdepth 6 -depth -type d -path "*/mtd-bench-rss-$$*" -exec rmdir {} \; 2>/dev/null
rm -rf "$W"' EXIT

# run MODE: start an agent on $W/MODE, print "RSS_KB HWM_KB START_MS"
run() {
	local mode=$1 d=$W/$1 t0 t1 rss hwm
	mkdir -p "$d/policies" "$d/state" "$d/run" "$d/log"
	chmod 0755 "$d/run"
	printf '[Agent]\nHostId=bench-host\n' >"$d/mtd.conf"
	for s in $(seq 0 $((SERVICES - 1))); do
		first=$((1500 + s * 1000))
		{
			printf '[Service]\nName=svc%d\nBackend=192.0.2.10:8080\n\n[Rotation]\n' "$s"
			printf 'PublicPorts=%d-%d\nInterval=60s\nGrace=5s\nDecoys=8\n' "$first" $((first + 999))
			if [ "$mode" = clients ]; then
				printf 'ClientKeys=%s/clients/svc%d\nClientAuth=knock\n' "$W" "$s"
			else
				printf 'KeyFile=%s/keys/svc%d.key\n' "$W" "$s"
			fi
		} >"$d/policies/svc$s.policy"
	done
	t0=$(date +%s%N)
	"$AGENT" --policy-dir "$d/policies" --state-dir "$d/state" --runtime-dir "$d/run" \
		--audit-log "$d/log/audit.log" --config "$d/mtd.conf" \
		--instances-cgroup "mtd-bench-rss-$$" --honeypot-port 65500 2>"$d/agent.log" &
	AGENT_PID=$!
	for _ in $(seq 1200); do
		"$MTDCTL" --socket "$d/run/control.sock" status >/dev/null 2>&1 && break
		kill -0 $AGENT_PID 2>/dev/null || { cat "$d/agent.log" >&2; return 1; }
		sleep 0.05
	done
	t1=$(date +%s%N)
	sleep 1 # the next epoch's loading (staging) after the start
	rss=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/$AGENT_PID/status)
	hwm=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/$AGENT_PID/status)
	kill -TERM $AGENT_PID
	wait $AGENT_PID 2>/dev/null
	AGENT_PID=""
	echo "$rss $hwm $(((t1 - t0) / 1000000))"
}

# 64,000 key files of 32 random bytes (one read of /dev/urandom, split)
umask 077
mkdir -m 0700 "$W/clients" "$W/keys"
for s in $(seq 0 $((SERVICES - 1))); do
	mkdir -m 0700 "$W/clients/svc$s"
	head -c $((CLIENTS * 32)) /dev/urandom |
		split -b 32 -a 4 -d --additional-suffix=.key - "$W/clients/svc$s/c"
	od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$W/keys/svc$s.key"
	chmod 0600 "$W/keys/svc$s.key"
done
n=$(find "$W/clients" -name '*.key' | wc -l)

read -r rss_shared hwm_shared ms_shared < <(run shared) || { echo "bench_clients_rss: the shared-key agent failed"; exit 1; }
read -r rss_clients hwm_clients ms_clients < <(run clients) || { echo "bench_clients_rss: the per-client agent failed"; exit 1; }
echo "bench_clients_rss: $SERVICES services; per-client: $n key files"
echo "| agent | RSS (MB) | peak RSS, VmHWM (MB) | start to serving (ms) |"
printf '| %d services, shared keys (KeyFile=) | %.1f | %.1f | %d |\n' "$SERVICES" "$(echo "$rss_shared/1024" | bc -l)" \
	"$(echo "$hwm_shared/1024" | bc -l)" "$ms_shared"
printf '| %d services x %d clients (ClientKeys=, knock) | %.1f | %.1f | %d |\n' "$SERVICES" "$CLIENTS" \
	"$(echo "$rss_clients/1024" | bc -l)" "$(echo "$hwm_clients/1024" | bc -l)" "$ms_clients"
if [ "$rss_clients" -le $((64 * 1024)) ]; then
	echo "target: RSS <= 64 MB: met"
else
	echo "target: RSS <= 64 MB: MISSED"
fi
