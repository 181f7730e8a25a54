#!/bin/bash
# Managed services end to end: the agent runs busybox httpd as an enveloped
# instance from a signed snapshot, a client in another namespace fetches a
# page through the rotating public port (IPv4 and IPv6), a killed instance is
# replaced from the snapshot at a new address, a tampered snapshot is refused,
# a crash loop backs off, and a clean stop leaves nothing behind.
. "$(dirname "$0")/lib.bash"
[ -x /bin/busybox ] || skip "busybox-static is not installed"
enter_private_namespaces "$@"
make_work_dir
setup_client_namespace
# the root itself may be an overlay (make fresh-check): only new ones count
overlays_before=$(grep -c " overlay " /proc/mounts)

# --- a signed snapshot of busybox httpd ------------------------------------------
T=$WORK/tree
mkdir -p "$T/bin" "$T/www" "$T/etc" "$T/tmp" "$T/dev" "$T/proc" "$WORK/snapshots"
cp /bin/busybox "$T/bin/busybox"
ln -s busybox "$T/bin/sh"
echo "<h1>served from a signed snapshot</h1>" >"$T/www/index.html"
printf 'root:x:0:0::/:/bin/sh\nwww:x:1000:1000::/www:/bin/sh\n' >"$T/etc/passwd"
printf 'root:x:0:\nwww:x:1000:\n' >"$T/etc/group"
chmod -R go-w "$T" # root's alone, whatever the umask
"$MTDCTL" keygen --out "$WORK/keys/snap" >/dev/null || fail "keygen"
"$MTDCTL" snapshot create --key "$WORK/keys/snap.key" "$T" "$WORK/snapshots/web" >/dev/null ||
	fail "snapshot create"
write_key "$WORK/keys/web.key"
write_key "$WORK/keys/crash.key"

cat >"$WORK/policies/web.policy" <<POLICY
[Service]
Name=web
Snapshot=$WORK/snapshots/web
SnapshotKey=$WORK/keys/snap.pub
Exec=/bin/busybox httpd -f -p 8080 -h /www
ListenPort=8080/tcp
User=www
HealthInterval=1s

[Rotation]
PublicPorts=20000-20999
Interval=5s
Grace=2s
KeyFile=$WORK/keys/web.key
AddressPool=10.214.0.0/24
AddressPool=fd00:214::/120

[Envelope]
SystemCalls=@system-service @network-io
MemoryMax=64M
TasksMax=32
POLICY
P=$WORK/policies/web.policy
"$MTDCTL" policy check "$WORK/policies" >/dev/null || fail "the test policy does not validate"

fetch() { # HOST: the page through the service's current public port
	printf 'GET / HTTP/1.0\r\n\r\n' | in_client timeout 8 "$MTDCTL" connect web --policy "$P" "$1" 2>&1
}
instance_field() { # FIELD: of the serving instance, from mtdctl --json instances
	mtdctl --json instances | tr -d ' \n' | sed -n "s/.*\"$1\":\"\{0,1\}\([^\",]*\).*/\1/p" | head -n 1
}
wait_healthy() { # ID-TO-AVOID: wait until an instance other than that one is healthy
	for _ in $(seq 1 100); do
		out=$(mtdctl --json instances | tr -d ' \n')
		case "$out" in *'"state":"healthy"'*)
			id=$(instance_field id)
			[ "$id" != "$1" ] && return 0 ;;
		esac
		sleep 0.1
	done
	return 1
}

start_agent
wait_healthy none || fail "no healthy instance: $(mtdctl instances; tail -5 "$AGENT_LOG")"
ok "the instance starts from the verified snapshot and becomes healthy"

out=$(fetch 10.213.0.1)
assert_contains "$out" "served from a signed snapshot" "IPv4: a client fetches the page through the rotating public port"
out=$(fetch fd00:213::1)
assert_contains "$out" "served from a signed snapshot" "IPv6: the same through the IPv6 public port"

out=$(mtdctl instances)
assert_contains "$out" "10.214.0." "mtdctl instances lists the instance with its pool address"
assert_contains "$out" "healthy" "mtdctl instances shows its health"
first_id=$(instance_field id)
first_pid=$(instance_field pid)
first_address=$(mtdctl --json instances | tr -d ' \n' | sed -n 's/.*"addresses":\["\([^"]*\)".*/\1/p')

# The instance runs in its own pid namespace as the policy's user, confined.
status=$(cat /proc/"$first_pid"/status)
assert_contains "$status" "NoNewPrivs:	1" "the instance runs with no_new_privs"
assert_contains "$status" "Seccomp:	2" "the instance runs under a seccomp filter"
assert_contains "$status" "CapEff:	0000000000000000" "the instance has no capabilities (none in the policy)"
# uid 1000 inside its user namespace: host uid host_ids + 1000 (docs/userns.md)
host_ids=$(mtdctl --json instances | tr -d ' \n' | sed -n 's/.*"host_ids":\([0-9]*\).*/\1/p' | head -n 1)
[ "${host_ids:-0}" -ge $((0x70000000)) ] || fail "no host id range in mtdctl instances: $host_ids"
[ "$(awk '/^Uid:/ {print $2}' /proc/"$first_pid"/status)" = $((host_ids + 1000)) ] ||
	fail "the instance does not run as User=www (host uid $((host_ids + 1000)))"
ok "the instance runs as User=www (uid 1000 inside, host uid $((host_ids + 1000)))"
[ "$(readlink /proc/"$first_pid"/ns/pid)" != "$(readlink /proc/self/ns/pid)" ] || fail "same pid namespace"
[ "$(readlink /proc/"$first_pid"/ns/net)" != "$(readlink /proc/self/ns/net)" ] || fail "same net namespace"
ok "the instance has its own pid and network namespaces"

# --- a dead instance is replaced from the snapshot, at another address --------------
kill -KILL "$first_pid"
wait_healthy "$first_id" || fail "no replacement after the instance was killed"
second_address=$(mtdctl --json instances | tr -d ' \n' | sed -n 's/.*"addresses":\["\([^"]*\)".*/\1/p')
[ -n "$second_address" ] && [ "$second_address" != "$first_address" ] ||
	fail "the replacement kept the address $first_address"
ok "the replacement runs at a new address ($first_address -> $second_address)"
out=$(fetch 10.213.0.1)
assert_contains "$out" "served from a signed snapshot" "the replacement serves through the public port"
out=$(mtdctl audit show)
assert_contains "$out" "killed by SIGKILL" "the instance's death is audited with its signal"
assert_contains "$out" "instance-start " "instance starts are audited"

# --- a crash loop backs off ---------------------------------------------------------------
cat >"$WORK/policies/crash.policy" <<POLICY
[Service]
Name=crash
Snapshot=$WORK/snapshots/web
SnapshotKey=$WORK/keys/snap.pub
Exec=/bin/busybox false
ListenPort=8081/tcp

[Rotation]
PublicPorts=21000-21999
KeyFile=$WORK/keys/crash.key
AddressPool=10.215.0.0/24
POLICY
mtdctl reload >/dev/null || fail "reload with the crashing service"
for _ in $(seq 1 80); do
	mtdctl audit show | grep -q '"delay_usec":1000000' && break
	sleep 0.1
done
out=$(mtdctl audit show)
assert_contains "$out" '"status":"exited 1"' "the crashing instance's exit status is audited"
n=$(echo "$out" | grep -c 'instance-backoff.*"service":"crash"')
[ "$n" -ge 2 ] || fail "expected repeated back-off records, got $n"
assert_contains "$out" '"delay_usec":1000000' "the back-off grows (250ms, 500ms, 1s, ...)"
rm "$WORK/policies/crash.policy"
mtdctl reload >/dev/null || fail "reload without the crashing service"

# --- fail closed: an envelope the table cannot take means no instance -------------------
# 65 Egress= rules are more than the rotator puts in one instance's envelope
# (64): the nftables step fails, and nothing of the instance may run.
write_key "$WORK/keys/wide.key"
{
	printf '[Service]\nName=wide\nSnapshot=%s\nSnapshotKey=%s\n' "$WORK/snapshots/web" "$WORK/keys/snap.pub"
	printf 'Exec=/bin/busybox httpd -f -p 8082 -h /www\nListenPort=8082/tcp\n'
	printf '[Rotation]\nPublicPorts=22000-22999\nKeyFile=%s\nAddressPool=10.216.0.0/24\n' "$WORK/keys/wide.key"
	printf '[Envelope]\n'
	for i in $(seq 1 65); do printf 'Egress=tcp/%d 192.0.2.%d\n' $((1000 + i)) "$i"; done
} >"$WORK/policies/wide.policy"
mtdctl reload >/dev/null || fail "reload with the wide service"
wait_for 'mtdctl audit show | grep -q "\"step\":\"nftables envelope\""' 50 ||
	fail "no instance-start-failed at the nftables step: $(mtdctl audit show | tail -3)"
case "$(mtdctl instances)" in *wide-*) fail "an instance of wide runs without its envelope" ;; esac
ip -o link | grep -q "mtdi.*" && [ "$(ip -o link | grep -c mtdi)" -gt 1 ] &&
	fail "a link was created for an instance that must not start"
ok "when the nftables envelope cannot be installed, no instance starts (audited with the step)"
rm "$WORK/policies/wide.policy"
mtdctl reload >/dev/null || fail "reload without the wide service"

# --- a tampered snapshot is refused -----------------------------------------------------
printf 'x' | dd of="$WORK/snapshots/web/root/www/index.html" bs=1 seek=3 conv=notrunc 2>/dev/null
mtdctl reload >/dev/null || fail "reload"
sleep 0.3
out=$(mtdctl audit show)
assert_contains "$out" "service-failed" "a tampered snapshot is refused and audited"
assert_contains "$out" "root/www/index.html: content differs" "the audit record names the first mismatch"
out=$(mtdctl instances)
assert_contains "$out" "failed" "the service is marked failed"
case "$out" in *healthy*) fail "an instance still runs from the tampered snapshot" ;; esac
ok "no instance runs from the tampered snapshot"
fetch 10.213.0.1 | grep -q "signed snapshot" && fail "the public port still serves the tampered service"
ok "the public port no longer leads anywhere"

# --- a clean stop leaves nothing ------------------------------------------------------
stop_agent || fail "clean stop"
[ -z "$(find /sys/fs/cgroup -maxdepth 6 -name "$INSTANCES_CGROUP" 2>/dev/null)" ] || fail "cgroups remain"
ok "no instance cgroup remains"
ip -o link | grep -q mtdi && fail "an instance link remains"
ok "no instance link remains"
[ "$(grep -c " overlay " /proc/mounts)" -eq "$overlays_before" ] || fail "an overlay mount remains"
ok "no overlay mount remains"
if nft list table inet mtd >/dev/null 2>&1; then # both banks: live and loaded ahead
	maps=$(nft list map inet mtd svc4_0 && nft list map inet mtd svc4_1) || fail "listing svc4_0, svc4_1"
	grep -q "10.214.0" <<<"$maps" && fail "an nft element still routes to an instance"
fi
ok "no nft element routes to an instance"
out=$("$MTDCTL" audit verify --key "$WORK/state/audit-verify.key" "$WORK/log/audit.log") ||
	fail "audit verify: $out"
ok "the audit log verifies"
echo "$TEST_NAME: $CHECKS checks passed"
