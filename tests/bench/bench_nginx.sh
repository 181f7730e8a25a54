#!/bin/bash
# make bench: Debian's nginx under load through the agent (issue 16), beside
#   (b) the same nginx run directly on the host side of the client's veth,
#   (a) the same nginx in a network namespace behind a veth with a plain DNAT
#       (a table of this bench's own) and no agent,
# and through the agent: nginx as a managed service (snapshot of the binary's
# library closure, as in examples.sh), Interval=2s, Grace=1s, MaxLifetime=10s (a planned
# replacement every ~10 s, StandbyInstances=1, DrainTimeout=5s), then the
# same with one compromise replacement every 10 s (`mtdctl quarantine` of
# the serving instance).
#
# The load: wrk (1 thread, 32 keep-alive connections) in the client
# namespace, in 1-s runs, each to the public port of the moment (`mtdctl
# port`: a client that follows the schedule); the same 1-s runs against (a)
# and (b). Beside it tests/tools/http-prober sends one request on a new
# connection every 10 ms to the port of the moment and counts the failed
# ones (refused, reset, timeout, bad answer). Printed: requests/s of the
# three (total requests / total time of the runs, and the worst 1-s run),
# wrk's errors, the prober's failures, the boundaries passed (the agent's
# timed changes) and the replacements (instance-replaced in the audit log).
# (a) has a topology of its own that mirrors the agent's (client namespace,
# router namespace with the DNAT, server namespace), so it also runs in
# turns with the agent: 3 s through the agent, 3 s to (a), with the prober
# and the agent's own work going on in both; the ratio of the two is the
# data path's cost, the machine's other load weighing on both alike. (a) and
# (b) also run alone before and after the agent's runs (their figures are of
# both); agent/(a alone) adds the agent's own work (launches, conntrack
# polls) to the cost. Targets: through the agent >= 90% of (a); 0 failed
# requests with planned replacements; with compromises, failures only as
# resets (never a timeout).
. "$(dirname "$0")/../integration/lib.bash"
SECONDS_PLANNED=${MTD_BENCH_NGINX_SECONDS:-56}
SECONDS_COMPROMISE=${MTD_BENCH_NGINX_COMPROMISE_SECONDS:-31}
SECONDS_BASE=${MTD_BENCH_NGINX_BASE_SECONDS:-8}
NGINX_DIR=${MTD_NGINX_DIR:-/var/cache/mtd-agent/nginx}
enter_private_namespaces "$@"
[ -x "$NGINX_DIR/usr/sbin/nginx" ] || skip "no nginx in $NGINX_DIR (make deps)"
command -v wrk >/dev/null || skip "no wrk (make deps)"
PROBER=$BUILD_DIR/tools/http-prober
[ -x "$PROBER" ] || fail "build the test tools first: $PROBER"
make_work_dir
NGINX_PIDS=""
trap 'for p in $NGINX_PIDS; do kill "$p" 2>/dev/null; done; cleanup_work' EXIT
setup_client_namespace
NGINX_LIBS=$NGINX_DIR/usr/lib/x86_64-linux-gnu

# nginx_conf LISTEN PREFIX USER: one worker (the other core is wrk's),
# keep-alive connections that last a whole run
nginx_conf() {
	cat <<CONF
${3:+user $3;}
worker_processes 1;
pid $2/run/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
	types { text/html html; }
	access_log off;
	keepalive_requests 1000000;
	client_body_temp_path $2/var/lib/nginx/body;
	proxy_temp_path $2/var/lib/nginx/proxy;
	fastcgi_temp_path $2/var/lib/nginx/fastcgi;
	uwsgi_temp_path $2/var/lib/nginx/uwsgi;
	scgi_temp_path $2/var/lib/nginx/scgi;
	server {
		listen $1;
		root $2/var/www/html;
	}
}
CONF
}

# nginx_tree DIR: the document root and the directories nginx writes
nginx_tree() {
	mkdir -p "$1/etc/nginx" "$1/var/lib/nginx" "$1/var/log/nginx" "$1/var/www/html" "$1/run"
	echo "<h1>served by nginx</h1>" >"$1/var/www/html/index.html"
}

# start_nginx DIR [NETNS]: nginx on DIR/etc/nginx/nginx.conf, in the
# foreground (its pid in NGINX_PIDS)
start_nginx() {
	local run=()
	[ -n "${2:-}" ] && run=(ip netns exec "$2")
	"${run[@]}" env LD_LIBRARY_PATH="$NGINX_LIBS" "$NGINX_DIR/usr/sbin/nginx" -p "$1" \
		-c "$1/etc/nginx/nginx.conf" -g "daemon off; master_process on;" 2>>"$WORK/nginx.log" &
	NGINX_PIDS="$NGINX_PIDS $!"
}

# load_runs SECONDS PORT-COMMAND [NAME [NETNS ADDRESS]]: wrk in 1-s runs
# from NETNS (cli) to ADDRESS (10.213.0.1), each to the port
# PORT-COMMAND prints; prints "rps R worst W requests N errors E timeouts T
# non2xx X runs K" (errors: wrk's connect, read and write errors, a reset
# among them; timeouts: requests without an answer within 2 s). With NAME
# the runs add to those of earlier calls with that NAME, and the summary is
# of them all.
load_runs() {
	local end=$((SECONDS + $1)) port out runs=$WORK/wrk.runs.${3:-agent}
	local netns=${4:-cli} address=${5:-10.213.0.1}
	[ -n "${3:-}" ] || : >"$runs"
	while [ $SECONDS -lt $end ]; do
		port=$(eval "$2")
		out=$(ip netns exec "$netns" wrk -t1 -c32 -d1s --timeout 2s "http://$address:$port/" 2>&1)
		echo "$out" | awk '
			/requests in/ { n = $1; d = $4; sub(/s,?$/, "", d);
				if (d ~ /ms$/) { sub(/ms$/, "", d); d /= 1000 } }
			/Socket errors/ { gsub(/,/, ""); e = $4 + $6 + $8; t = $10 }
			/Non-2xx/ { x = $NF }
			END { printf "%d %s %d %d %d\n", n, d, e + 0, x + 0, t + 0 }' >>"$runs"
	done
	awk '{ n += $1; d += $2; e += $3; x += $4; t += $5; r = ($2 > 0) ? $1 / $2 : 0;
		if (NR == 1 || r < w) w = r }
		END { printf "rps %d worst %d requests %d errors %d timeouts %d non2xx %d runs %d\n",
			(d > 0) ? n / d : 0, w, n, e, t, x, NR }' "$runs"
}
field_of() { sed -n "s/^\(.* \)\{0,1\}$1 \([0-9]*\).*/\2/p" <<<"$2"; }

echo "bench_nginx: wrk -t1 -c32 in 1-s runs; (b) nginx directly, (a) behind a plain DNAT, then through the agent"

# --- (b) the same nginx directly, on the host side of the client's veth ----------------------
d=$WORK/direct
nginx_tree "$d"
nginx_conf 10.213.0.1:8081 "$d" "nobody nogroup" >"$d/etc/nginx/nginx.conf"
start_nginx "$d"
wait_for 'in_client "$BUILD_DIR/tools/netprobe" connect 10.213.0.1 8081 200' 50 || fail "nginx (b) did not start: $(cat "$WORK/nginx.log")"
direct=$(load_runs "$SECONDS_BASE" 'echo 8081' direct)
echo "  (b) nginx directly, before:            $direct"

# --- (a) the same nginx in a namespace behind a veth and a plain DNAT, no agent --------------
# A topology of its own that mirrors the agent's (client namespace, a veth
# to a router namespace that DNATs, a veth to the server's namespace), so
# that (a) can run while the agent runs, in turns with it, without the
# agent's rules seeing its packets.
ip netns add rta
ip netns add clia
ip netns add plain
ip link add veth-rta type veth peer name veth-clia netns clia
ip link set veth-rta netns rta
ip -n rta addr add 10.217.0.1/24 dev veth-rta
ip -n rta link set veth-rta up
ip -n clia addr add 10.217.0.2/24 dev veth-clia
ip -n clia link set veth-clia up
ip -n clia link set lo up
ip -n rta link add veth-plain type veth peer name veth-nginx netns plain
ip -n rta addr add 10.216.0.1/30 dev veth-plain
ip -n rta link set veth-plain up
ip -n rta link set lo up
ip -n plain addr add 10.216.0.2/30 dev veth-nginx
ip -n plain link set veth-nginx up
ip -n plain link set lo up
ip -n plain route add default via 10.216.0.1
ip netns exec rta sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward'
ip netns exec rta nft -f - <<'NFT' || fail "the plain DNAT table"
table ip bench_plain {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr 10.217.0.1 tcp dport 8082 dnat to 10.216.0.2:8080
	}
}
NFT
a=$WORK/plain
nginx_tree "$a"
nginx_conf 10.216.0.2:8080 "$a" "nobody nogroup" >"$a/etc/nginx/nginx.conf"
start_nginx "$a" plain
wait_for 'ip netns exec clia "$BUILD_DIR/tools/netprobe" connect 10.217.0.1 8082 200' 50 || fail "nginx (a) did not start: $(cat "$WORK/nginx.log")"
plain=$(load_runs "$SECONDS_BASE" 'echo 8082' plain clia 10.217.0.1)
echo "  (a) nginx behind a plain DNAT, before: $plain"

# --- through the agent: nginx as a managed service ---------------------------------------------
t=$WORK/web-tree
mkdir -p "$WORK/snapshots"
"$MTDCTL" keygen --out "$WORK/keys/snap" >/dev/null || fail "keygen"
mkdir -p "$t/usr/sbin" "$t/dev" "$t/proc" "$t/etc" "$t/run"
cp "$NGINX_DIR/usr/sbin/nginx" "$t/usr/sbin/nginx"
# its library closure, at the paths the dynamic linker looks (libraries the
# host lacks come from the unpacked packages, as in examples.sh)
LD_LIBRARY_PATH=$NGINX_LIBS ldd "$NGINX_DIR/usr/sbin/nginx" | grep -q "not found" &&
	fail "nginx: libraries neither on the host nor in $NGINX_LIBS (make deps)"
for lib in $(LD_LIBRARY_PATH=$NGINX_LIBS ldd "$NGINX_DIR/usr/sbin/nginx" | grep -o '/[^ ]*'); do
	dest=${lib#"$NGINX_DIR"}
	mkdir -p "$t$(dirname "$dest")"
	cp -L "$lib" "$t$dest"
done
nginx_tree "$t"
printf 'root:x:0:0::/root:/bin/sh\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n' >"$t/etc/passwd"
printf 'root:x:0:\nwww-data:x:33:\n' >"$t/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files\n' >"$t/etc/nsswitch.conf"
nginx_conf 8080 "" www-data >"$t/etc/nginx/nginx.conf"
chmod -R go-w "$t"
"$MTDCTL" snapshot create --key "$WORK/keys/snap.key" "$t" "$WORK/snapshots/web" >"$WORK/snapshot.log" 2>&1 ||
	fail "snapshot create: $(cat "$WORK/snapshot.log")"
write_key "$WORK/keys/web.key"
P=$WORK/policies/web.policy
cat >"$P" <<POLICY
[Service]
Name=web
Snapshot=$WORK/snapshots/web
SnapshotKey=$WORK/keys/snap.pub
Exec=/usr/sbin/nginx -g "daemon off; master_process on;"
ListenPort=8080/tcp
MaxLifetime=10s
StandbyInstances=1
DrainTimeout=5s
HealthCheck=tcp
HealthInterval=1s
HealthTimeout=1s
HealthFailures=3
OnCompromise=quarantine
QuarantineMax=256M
ReplaceBurst=20

[Rotation]
PublicPorts=20000-29999
Interval=2s
Grace=1s
KeyFile=$WORK/keys/web.key
AddressPool=10.214.0.0/24

[Envelope]
SystemCalls=@system-service
SystemCallDefault=errno
OnSyscallViolation=quarantine
Writable=/var/lib/nginx /run /var/log/nginx
Capabilities=CAP_NET_BIND_SERVICE CAP_SETUID CAP_SETGID CAP_CHOWN
MemoryMax=256M
TasksMax=64
WritableSize=64M
LimitNOFILE=4096
POLICY
out=$("$MTDCTL" policy check "$WORK/policies" 2>&1) || fail "the bench policy does not validate: $out"
start_agent --remove-table-on-stop
healthy() { json_instances | grep -q '"id":"web-[0-9]*"[^}]*"state":"healthy"[^}]*"role":"serving"'; }
serving() { json_instances | grep -o '"id":"web-[0-9]*"[^}]*"role":"serving"' | sed 's/"id":"\([^"]*\)".*/\1/' | head -n 1; }
wait_for 'healthy && [ -n "$(mtdctl port web --policy "$P" 2>/dev/null)" ]' 300 || fail "nginx did not become healthy: $(json_instances)"
port_now() { mtdctl port web --policy "$P" 2>/dev/null | grep -o '[0-9]*' | head -n 1; }
changes() { mtdctl --json status | tr -d ' \n' | grep -o '"changes":{"count":[0-9]*' | grep -o '[0-9]*$'; }
replaced() { mtdctl --json audit show | grep '"type":"instance-replaced"' | grep -c -- "$1"; }

# agent_run NAME SECONDS [quarantine]: load and prober together
agent_run() {
	local c0 r0 q0 load load_a probe quarantines=0 next
	c0=$(changes)
	r0=$(replaced '"reason":"max-lifetime"')
	q0=$(replaced '"reason":"manual"')
	in_client "$PROBER" 10.213.0.1 "$WORK/keys/web.key" web 20000-29999 2 "$2" >"$WORK/probe.$1" &
	probe=$!
	if [ "${3:-}" = quarantine ]; then
		(
			sleep 5
			while :; do
				mtdctl quarantine "$(serving)" >/dev/null 2>&1
				sleep 10
			done
		) &
		quarantines=$!
	fi
	# In turns: 3 s through the agent, 3 s to (a) (with the prober and the
	# agent's own work going on in both), so that the machine's other load
	# weighs on both alike.
	: >"$WORK/wrk.runs.$1"
	: >"$WORK/wrk.runs.$1-a"
	local end=$((SECONDS + $2))
	while [ $SECONDS -lt $end ]; do
		load=$(load_runs 3 port_now "$1")
		load_a=$(load_runs 3 'echo 8082' "$1-a" clia 10.217.0.1)
	done
	wait "$probe"
	[ "$quarantines" != 0 ] && kill "$quarantines" 2>/dev/null && wait "$quarantines" 2>/dev/null
	echo "  through the agent ($1): $load"
	echo "  (a) in turns with it:   $load_a"
	echo "    prober: $(grep '^summary:' "$WORK/probe.$1" | sed 's/^summary: //')"
	grep '^fail' "$WORK/probe.$1" | sort | uniq -c | sort -rn | head -n 5 | sed 's/^/      /'
	echo "    boundaries and grace ends passed: $(($(changes) - c0)); replacements: max-lifetime $(($(replaced '"reason":"max-lifetime"') - r0)), quarantine $(($(replaced '"reason":"manual"') - q0))"
	echo "    the agent's switches at the boundaries (its own clock): $(mtdctl --json status | tr -d ' \n' |
		grep -o '"switch_late_usec":[0-9]*' | grep -o '[0-9]*$' | sort -n |
		awk '{ v[NR] = $1 } END { printf "median %d us late, worst %d us (last %d changes)", v[int(NR / 2) + 1], v[NR], NR }')"
	echo "$load" >"$WORK/load.$1"
	echo "$load_a" >"$WORK/load.$1-a"
}
agent_run planned "$SECONDS_PLANNED"
agent_run compromise "$SECONDS_COMPROMISE" quarantine
stop_agent || fail "the agent did not stop cleanly"

# --- (a) and (b) again: the machine's other load changes over two minutes -----------------
direct=$(load_runs "$SECONDS_BASE" 'echo 8081' direct)
echo "  (b) nginx directly, before and after:            $direct"
plain=$(load_runs "$SECONDS_BASE" 'echo 8082' plain clia 10.217.0.1)
echo "  (a) nginx behind a plain DNAT, before and after: $plain"

agent=$(cat "$WORK/load.planned")
turns=$(cat "$WORK/load.planned-a")
ra=$(field_of rps "$plain")
rt=$(field_of rps "$turns")
rb=$(field_of rps "$direct")
rx=$(field_of rps "$agent")
echo "bench_nginx: requests/s: agent $rx, (a) plain DNAT $rt in turns with it ($ra alone, before and after), (b) direct $rb;" \
	"agent/(a in turns) = $((rt > 0 ? rx * 100 / rt : 0))% (target >= 90%)," \
	"agent/(a alone) = $((ra > 0 ? rx * 100 / ra : 0))%, agent/(b) = $((rb > 0 ? rx * 100 / rb : 0))%"
