#!/bin/bash
# mtd-client end to end, in namespaces: a host service (a file server on
# 10.213.0.1:8022) with ClientKeys= and ClientAuth=knock, Interval=2s; its
# clients made by `mtdctl client add`. From the client namespace:
#   - alice's door refuses a connection before any knock;
#   - `mtd-client forward` relays curl's download of a 4 MiB file, read slowly
#     so that it lasts over at least three boundaries, and the checksum
#     matches; the forwarder knocked again after the boundaries;
#   - connections made one after another across boundaries each reach the
#     service (a knock per epoch);
#   - `mtd-client connect` relays stdin/stdout (ssh's ProxyCommand);
#   - bob connects, is revoked (`mtdctl client revoke`, `mtdctl reload`), and
#     then neither his knock admits him nor does he connect; alice still does.
. "$(dirname "$0")/lib.bash"
CLIENT=$BUILD_DIR/mtd-client
[ -x "$CLIENT" ] || fail "build first: $CLIENT"
command -v curl >/dev/null || skip "curl is not installed"
command -v python3 >/dev/null || skip "python3 is not installed"
enter_private_namespaces "$@"
make_work_dir
setup_client_namespace

pids=()
stop_pids() {
	[ ${#pids[@]} -gt 0 ] || return 0
	kill "${pids[@]}" 2>/dev/null
	wait "${pids[@]}" 2>/dev/null
}
trap 'stop_pids; cleanup_work' EXIT

# The file server: a host service's backend.
mkdir -p "$WORK/www"
head -c $((4 * 1024 * 1024)) /dev/urandom >"$WORK/www/data.bin"
echo "served through mtd-client" >"$WORK/www/small.txt"
python3 -m http.server 8022 --bind 10.213.0.1 --directory "$WORK/www" >"$WORK/http.log" 2>&1 &
pids+=($!)
wait_for "ss -ltn | grep -q '10.213.0.1:8022 '" 100 || fail "the file server did not start"

mkdir -m 0700 "$WORK/clients"
cat >"$WORK/mtd.conf" <<CONF
[Agent]
HostId=10.213.0.1
CONF
cat >"$WORK/policies/files.policy" <<POLICY
[Service]
Name=files
Backend=10.213.0.1:8022

[Rotation]
PublicPorts=20000-20999
Interval=2s
Grace=1s
ClientKeys=$WORK/clients
ClientAuth=knock
POLICY
add_client() { # NAME
	"$MTDCTL" client add files "$1" --host 10.213.0.1 --policy "$WORK/policies" \
		--config "$WORK/mtd.conf" --out "$WORK/$1.profile" 2>"$WORK/add.err" ||
		fail "mtdctl client add $1: $(cat "$WORK/add.err")"
}
add_client alice
add_client bob
[ "$(stat -c %a "$WORK/clients/alice.key")" = 600 ] || fail "alice.key is not 0600"
[ "$(stat -c %s "$WORK/clients/alice.key")" = 32 ] || fail "alice.key is not 32 bytes"
[ "$(stat -c %a "$WORK/alice.profile")" = 600 ] || fail "alice.profile is not 0600"
grep -qx "Auth=knock" "$WORK/alice.profile" || fail "the profile lacks Auth=knock: $(cat "$WORK/alice.profile")"
list=$("$MTDCTL" client list files --policy "$WORK/policies") || fail "client list: $list"
fp=$(sha256sum <"$WORK/clients/alice.key" | cut -c1-16)
grep -q "^alice  *$fp " <<<"$list" || fail "client list lacks alice with fingerprint $fp: $list"
ok "client list shows alice with her key's fingerprint ($fp)"
out=$("$MTDCTL" client add files alice --host 10.213.0.1 --policy "$WORK/policies" \
	--config "$WORK/mtd.conf" 2>&1)
[ $? -eq 1 ] || fail "a second alice was added: $out"
assert_contains "$out" "alice is a client of files already" "client add refuses a name that has a key"

start_agent --config "$WORK/mtd.conf"
status=$(mtdctl --json status | tr -d ' \n')
case "$status" in
*'"host_id":"10.213.0.1"'*) ;;
*) skip "this agent does not serve ClientKeys= services yet (no host_id in status: h-doors)" ;;
esac
ok "the agent runs files with ClientKeys= and HostId=10.213.0.1"

# The doors the agent programs are the ones mtd-client computes, at the same
# epoch (the status says which).
for client in alice bob; do
	read -r boundary agent_door < <(mtdctl --json status | python3 -c '
import json, sys
for s in json.load(sys.stdin)["rotation"]["services"]:
    if s["name"] == "files":
        for c in s["clients"]:
            if c["name"] == sys.argv[1]:
                print(s["boundary_usec"] // 1000000, c["door"])
' "$client")
	[ -n "${agent_door:-}" ] || fail "no door of $client in the agent's status"
	mine=$("$CLIENT" port "$WORK/$client.profile" --at "@$boundary" 2>/dev/null)
	[ "$mine" = "$agent_door" ] || fail "$client: the agent's door is $agent_door, mtd-client says $mine"
done
ok "the agent's doors of alice and bob are mtd-client's"

# Before any knock, alice's door looks closed.
door=$("$CLIENT" port "$WORK/alice.profile" 2>/dev/null) || fail "mtd-client port"
if in_client curl -s -o /dev/null --max-time 3 "http://10.213.0.1:$door/small.txt"; then
	fail "alice's door $door answered without a knock"
fi
ok "alice's door ($door) refuses a connection before her knock"

# --- forward: a download across boundaries -------------------------------------
# ip netns exec execs the forwarder: $! is its pid (a function in the
# background would be a subshell, and the signal would miss it).
ip netns exec cli "$CLIENT" forward "$WORK/alice.profile" --listen 127.0.0.1:18080 \
	2>"$WORK/forward.log" &
fwd=$!
pids+=($fwd)
wait_for "grep -q 'listening on' '$WORK/forward.log'" 50 || fail "the forwarder did not start: $(cat "$WORK/forward.log")"
# curl's output is read at 400 KB/s through small socket buffers in the
# client namespace (curl's --limit-rate lets transfers burst), so the relayed
# connection lasts about 10 s: five boundaries of 2 s.
in_client sysctl -qw net.ipv4.tcp_rmem="4096 16384 65536" net.ipv4.tcp_wmem="4096 16384 65536"
epoch_before=$(($(date +%s) / 2))
(
	set -o pipefail
	in_client curl -s --fail --max-time 60 http://127.0.0.1:18080/data.bin |
		python3 -c '
import sys, time
rate, out = int(sys.argv[1]), open(sys.argv[2], "wb")
start, n = time.monotonic(), 0
while True:
    b = sys.stdin.buffer.read1(16384)
    if not b:
        break
    out.write(b)
    n += len(b)
    ahead = n / rate - (time.monotonic() - start)
    if ahead > 0:
        time.sleep(ahead)
' 409600 "$WORK/got.bin"
) || fail "curl through the forwarder failed ($?): $(cat "$WORK/forward.log")"
epoch_after=$(($(date +%s) / 2))
[ "$(sha256sum <"$WORK/got.bin")" = "$(sha256sum <"$WORK/www/data.bin")" ] ||
	fail "the download's checksum differs ($(stat -c %s "$WORK/got.bin") bytes)"
crossed=$((epoch_after - epoch_before))
[ $crossed -ge 3 ] || fail "the download crossed $crossed boundaries, not 3 or more"
knocks=$(grep -c 'forward: knocked on 10.213.0.1' "$WORK/forward.log")
[ "$knocks" -ge 3 ] || fail "the forwarder knocked $knocks times over $crossed boundaries: $(cat "$WORK/forward.log")"
ok "4 MiB through mtd-client forward across $crossed boundaries, checksum equal ($knocks knocks)"

# One connection after another, each in a new epoch.
for i in 1 2 3; do
	got=$(in_client curl -s --fail --max-time 10 http://127.0.0.1:18080/small.txt) ||
		fail "connection $i through the forwarder failed: $(tail -n 5 "$WORK/forward.log")"
	[ "$got" = "served through mtd-client" ] || fail "connection $i: '$got'"
	sleep 2.1
done
doors=$(grep -o 'door [0-9]* (epoch [0-9]*)' "$WORK/forward.log" | sort -u | wc -l)
[ "$doors" -ge 3 ] || fail "the connections used $doors door(s): $(cat "$WORK/forward.log")"
ok "three connections in three epochs reach the service ($doors doors)"

kill -TERM "$fwd"
wait "$fwd"
rc=$?
[ $rc -eq 0 ] || fail "the forwarder exited $rc on SIGTERM"
grep -q 'stopping' "$WORK/forward.log" || fail "the forwarder did not say it stops"
ok "the forwarder stops cleanly on SIGTERM"
grep -q '"client-admitted"' "$WORK/log/audit.log" && grep '"client-admitted"' "$WORK/log/audit.log" |
	grep -q '"alice"' || fail "no client-admitted record of alice in the audit log"
ok "alice's admissions are audited"

# --- connect: stdio, as ssh's ProxyCommand uses it -----------------------------
connect_get() { # PROFILE
	printf 'GET /small.txt HTTP/1.0\r\n\r\n' | in_client timeout 60 "$CLIENT" connect "$1" 2>>"$WORK/connect.log"
}
out=$(connect_get "$WORK/alice.profile") || fail "mtd-client connect exited $?: $(cat "$WORK/connect.log")"
assert_contains "$out" "served through mtd-client" "mtd-client connect relays stdin/stdout to the service"

# --- revocation -----------------------------------------------------------------
out=$(connect_get "$WORK/bob.profile") || fail "bob's connect exited $?: $(cat "$WORK/connect.log")"
assert_contains "$out" "served through mtd-client" "bob connects before his revocation"
grep '"client-admitted"' "$WORK/log/audit.log" | grep -q '"bob"' ||
	fail "bob's knock was not admitted (no client-admitted record)"
"$MTDCTL" client revoke files bob --policy "$WORK/policies" 2>"$WORK/revoke.err" ||
	fail "client revoke: $(cat "$WORK/revoke.err")"
assert_contains "$(cat "$WORK/revoke.err")" "mtdctl reload" "revoke says to reload"
[ -e "$WORK/clients/bob.key" ] && fail "bob.key is still there"
mtdctl reload >/dev/null || fail "mtdctl reload after the revocation"
lines=$(wc -l <"$WORK/log/audit.log")
grep '"client-revoked"' "$WORK/log/audit.log" | grep -q '"bob"' ||
	fail "no client-revoked record of bob after the reload"
out=$(connect_get "$WORK/bob.profile")
rc=$?
[ $rc -eq 1 ] || fail "bob connected after his revocation (exit $rc): $out"
tail -n +"$((lines + 1))" "$WORK/log/audit.log" | grep '"client-admitted"' | grep -q '"bob"' &&
	fail "bob's knock admitted him after his revocation"
ok "revoked bob neither gets admitted by his knock nor connects"
out=$(connect_get "$WORK/alice.profile") || fail "alice's connect after bob's revocation: $(cat "$WORK/connect.log")"
assert_contains "$out" "served through mtd-client" "alice still connects after bob's revocation"

stop_agent || fail "the agent did not stop cleanly"
echo "$TEST_NAME: $CHECKS checks passed"
