#!/bin/bash
# The example policies run (issue 14, item 9): each of policies/examples/
# {web,dns,ssh}.policy is loaded as shipped, with only what must differ on a
# test host rewritten (Snapshot= and SnapshotKey= to this test's signed
# snapshot, web's AddressPool= off the test's own 10.213.0.0/24 link; the
# demo keys are copied beside them, so KeyFile= stays), with a real snapshot
# of the daemon it names built from Debian's package (scripts/deps unpacks
# nginx and unbound in /var/cache/mtd-agent), and serves:
#   web: Debian's nginx answers an HTTP GET through the public port, 200 and
#        the page;
#   dns: Debian's unbound answers a query for a local-data name through the
#        public UDP port (busybox nslookup; no network needed);
#   ssh: a host service: a stand-in on its Backend=127.0.0.1:22 (no sshd on
#        the test host; netprobe's echo-server) answers through the public
#        port, with route_localnet=1 on the client's interface as the example
#        says.
# The client follows each schedule with `mtdctl port`/`mtdctl connect
# --policy` from its own namespace. Runs in private namespaces; everything is
# removed on exit, also on failure. Needs root, busybox-static, `make deps`.
set -u
. "$(dirname "$0")/lib.bash"
enter_private_namespaces "$@"

NGINX_DIR=${MTD_NGINX_DIR:-/var/cache/mtd-agent/nginx}
UNBOUND_DIR=${MTD_UNBOUND_DIR:-/var/cache/mtd-agent/unbound}
[ -x "$NGINX_DIR/usr/sbin/nginx" ] || skip "no nginx in $NGINX_DIR (make deps)"
[ -x "$UNBOUND_DIR/usr/sbin/unbound" ] || skip "no unbound in $UNBOUND_DIR (make deps)"
NETPROBE=$BUILD_DIR/tools/netprobe
[ -x "$NETPROBE" ] || fail "build the test tools first: $NETPROBE"

STANDIN=""
make_work_dir
trap '[ -n "$STANDIN" ] && kill "$STANDIN" 2>/dev/null; cleanup_work' EXIT
setup_client_namespace
mkdir -p "$WORK/snapshots"
"$MTDCTL" keygen --out "$WORK/keys/snap" >/dev/null || fail "keygen"

# tree_with_binary TREE BINARY [LIBDIR]: BINARY at its path in TREE with its
# library closure (LIBDIR: where libraries the host lacks were unpacked)
tree_with_binary() {
	local t=$1 bin=$2 libdir=${3:-} dest lib
	dest=${bin#"${libdir%/usr/lib/*}"}
	mkdir -p "$t$(dirname "$dest")" "$t/dev" "$t/proc" "$t/etc" "$t/run"
	cp "$bin" "$t$dest"
	LD_LIBRARY_PATH=$libdir ldd "$bin" | grep "not found" &&
		fail "$bin: libraries neither on the host nor unpacked in $libdir (make deps)"
	for lib in $(LD_LIBRARY_PATH=$libdir ldd "$bin" | grep -o '/[^ ]*'); do
		case "$lib" in "${libdir%/usr/lib/*}"/*) dest=${lib#"${libdir%/usr/lib/*}"} ;; *) dest=$lib ;; esac
		mkdir -p "$t$(dirname "$dest")"
		cp -L "$lib" "$t$dest"
	done
	printf 'passwd: files\ngroup: files\nhosts: files\n' >"$t/etc/nsswitch.conf"
}

# --- web: Debian's nginx ------------------------------------------------------------
t=$WORK/web-tree
tree_with_binary "$t" "$NGINX_DIR/usr/sbin/nginx" "$NGINX_DIR/usr/lib/x86_64-linux-gnu"
mkdir -p "$t/etc/nginx" "$t/var/lib/nginx" "$t/var/log/nginx" "$t/var/www/html"
printf 'root:x:0:0::/root:/bin/sh\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n' >"$t/etc/passwd"
printf 'root:x:0:\nwww-data:x:33:\n' >"$t/etc/group"
echo "<h1>the web example serves</h1>" >"$t/var/www/html/index.html"
# As Debian's nginx.conf: the master (root inside) hands its workers to
# www-data; what it writes (pid, temporary files, the compiled-in error log
# path) is under the example's Writable=.
cat >"$t/etc/nginx/nginx.conf" <<'CONF'
user www-data;
worker_processes 2;
pid /run/nginx.pid;
error_log stderr notice;
events { worker_connections 64; }
http {
	types { text/html html; }
	access_log off;
	client_body_temp_path /var/lib/nginx/body;
	proxy_temp_path /var/lib/nginx/proxy;
	fastcgi_temp_path /var/lib/nginx/fastcgi;
	uwsgi_temp_path /var/lib/nginx/uwsgi;
	scgi_temp_path /var/lib/nginx/scgi;
	server {
		listen 8080;
		root /var/www/html;
	}
}
CONF
chmod -R go-w "$t"
"$MTDCTL" snapshot create --key "$WORK/keys/snap.key" "$t" "$WORK/snapshots/web" >/dev/null ||
	fail "web snapshot create"

# --- dns: Debian's unbound ----------------------------------------------------------
t=$WORK/dns-tree
tree_with_binary "$t" "$UNBOUND_DIR/usr/sbin/unbound" "$UNBOUND_DIR/usr/lib/x86_64-linux-gnu"
mkdir -p "$t/etc/unbound" "$t/var/lib/unbound"
# Debian's postinst makes the unbound user; a snapshot needs it in its own
# /etc/passwd (docs/snapshot.md, "A daemon from a Debian package")
printf 'root:x:0:0::/root:/bin/sh\nunbound:x:101:101::/var/lib/unbound:/usr/sbin/nologin\n' >"$t/etc/passwd"
printf 'root:x:0:\nunbound:x:101:\n' >"$t/etc/group"
cat >"$t/etc/unbound/unbound.conf" <<'CONF'
server:
	interface: 0.0.0.0
	port: 5353
	do-ip6: no
	do-tcp: no
	do-daemonize: no
	username: ""
	chroot: ""
	pidfile: ""
	use-syslog: no
	logfile: ""
	verbosity: 1
	num-threads: 1
	access-control: 0.0.0.0/0 allow
	local-zone: "example.test." static
	local-data: "www.example.test. 300 IN A 192.0.2.80"
remote-control:
	control-enable: no
CONF
chmod -R go-w "$t"
"$MTDCTL" snapshot create --key "$WORK/keys/snap.key" "$t" "$WORK/snapshots/dns" >/dev/null ||
	fail "dns snapshot create"

# --- the policies, as shipped but for the snapshot and the test link ----------------
cp -r "$REPO/policies/examples/keys" "$WORK/policies/keys"
chmod 0600 "$WORK/policies/keys/"*.key
for name in web dns ssh; do
	sed -e "s|^Snapshot=.*|Snapshot=$WORK/snapshots/$name|" \
		-e "s|^SnapshotKey=.*|SnapshotKey=$WORK/keys/snap.pub|" \
		-e "s|^AddressPool=10.213.0.0/24|AddressPool=10.218.0.0/24|" \
		"$REPO/policies/examples/$name.policy" >"$WORK/policies/$name.policy"
	diff "$REPO/policies/examples/$name.policy" "$WORK/policies/$name.policy" |
		grep '^>' | sed "s|^> |  $name.policy rewritten: |"
done
"$MTDCTL" policy check "$WORK/policies" >/dev/null || fail "the examples do not validate"

# ssh's backend: a stand-in on 127.0.0.1:22 (no sshd on the test host)
# and, as the example says, route_localnet on the interface clients come in by
echo 1 >/proc/sys/net/ipv4/conf/veth-srv/route_localnet
"$NETPROBE" echo-server 127.0.0.1 22 &
STANDIN=$!
wait_for "ss -ltn | grep -q '127.0.0.1:22 '" 50 || fail "the ssh stand-in did not start"

start_agent
healthy() { json_instances | grep -q "\"id\":\"$1-[0-9]*\"[^}]*\"state\":\"healthy\""; }
wait_for "healthy web" 200 || fail "nginx (web) did not become healthy: $(json_instances)"
reply=$(http_get web "$WORK/policies/web.policy" 10.213.0.1 /)
assert_contains "$reply" "HTTP/1.1 200 OK" "web: nginx answers GET / through the public port"
assert_contains "$reply" "the web example serves" "web: the page from the snapshot"

wait_for "json_instances | grep -q '\"id\":\"dns-[0-9]*\"[^}]*\"state\":\"healthy\"'" 200 ||
	fail "unbound (dns) did not start: $(json_instances)"
# HealthCheck=none: the first query may race unbound's start; retry a few
dns_query() {
	local port
	port=$("$MTDCTL" port dns --policy "$WORK/policies/dns.policy" 2>/dev/null) || return 1
	in_client timeout 3 busybox nslookup -timeout=1 -retry=1 -port="$port" \
		www.example.test 10.213.0.1 2>&1
}
for _ in $(seq 10); do
	reply=$(dns_query)
	case "$reply" in *192.0.2.80*) break ;; esac
	sleep 0.3
done
case "$reply" in *192.0.2.80*) ;; *) grep -h 'seccomp-violation' "$WORK/log/audit.log"* | head -n 3 >&2 ;; esac
assert_contains "$reply" "192.0.2.80" "dns: unbound answers www.example.test through the public UDP port"

reply=$(echo "SSH-2.0-examples-test" | in_client timeout 8 "$MTDCTL" connect ssh \
	--policy "$WORK/policies/ssh.policy" 10.213.0.1 2>&1)
assert_contains "$reply" "SSH-2.0-examples-test" "ssh: the backend answers through the public port"

stop_agent || fail "the agent did not stop cleanly"
echo "examples: $CHECKS checks passed"
