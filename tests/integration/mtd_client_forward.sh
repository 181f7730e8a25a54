#!/bin/bash
# mtd-client forward and connect on their own (no agent), in a network
# namespace of their own: a profile with Auth=none whose range is one port of
# 127.0.0.1, where a file server listens.
#   - parallel downloads through the forwarder all arrive whole, and never
#     more connections than --max-connections reach the server at once;
#   - a host that refuses moves the connection on to the profile's next host;
#   - nothing answering: the local connection is closed, the forwarder runs on;
#   - SIGTERM with connections open: every one closed, exit 0;
#   - connect passes the end of stdin on (a half close) and prints the reply;
#   - knock sends what docs/schedule.md says, as an independent HMAC checks.
. "$(dirname "$0")/lib.bash"
CLIENT=$BUILD_DIR/mtd-client
[ -x "$CLIENT" ] || fail "build first: $CLIENT"
command -v curl >/dev/null || skip "curl is not installed"
command -v python3 >/dev/null || skip "python3 is not installed"
enter_private_namespaces "$@"
make_work_dir

pids=()
stop_pids() {
	[ ${#pids[@]} -gt 0 ] || return 0
	kill "${pids[@]}" 2>/dev/null
	wait "${pids[@]}" 2>/dev/null
}
trap 'stop_pids; cleanup_work' EXIT

profile() { # FILE RANGE [HOST...]
	local file=$1 range=$2 h
	shift 2
	[ $# -gt 0 ] || set -- 127.0.0.1
	{
		printf '[Profile]\nVersion=1\nService=files\nClient=tester\n'
		for h in "$@"; do echo "Host=$h"; done
	} >"$file"
	cat >>"$file" <<PROFILE
PublicPorts=$range
Interval=1s
Auth=none
Key=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
PROFILE
	chmod 0600 "$file"
}
serve() { # PORT
	python3 -m http.server "$1" --bind 127.0.0.1 --directory "$WORK/www" >>"$WORK/http.log" 2>&1 &
	server=$!
	pids+=($server)
	wait_for "ss -ltn | grep -q '127.0.0.1:$1 '" 100 || fail "the file server on $1 did not start"
}
# Small socket buffers (this namespace's own), and a reader that takes curl's
# output at RATE bytes/s (curl's --limit-rate lets short transfers burst): the
# relayed connections stay open while the reader is slow.
sysctl -qw net.ipv4.tcp_rmem="4096 16384 65536" net.ipv4.tcp_wmem="4096 16384 65536"
slow_sink() { # RATE OUT
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
' "$@"
}
mkdir -p "$WORK/www"
head -c $((1024 * 1024)) /dev/urandom >"$WORK/www/data.bin"
echo "hello from the door" >"$WORK/www/small.txt"
want=$(sha256sum <"$WORK/www/data.bin")

# --- bounded parallel relays -----------------------------------------------------
profile "$WORK/one.profile" 45000
serve 45000
server45000=$server
"$CLIENT" forward "$WORK/one.profile" --listen 127.0.0.1:18080 --max-connections 2 \
	2>"$WORK/forward.log" &
fwd=$!
pids+=($fwd)
wait_for "grep -q 'listening on' '$WORK/forward.log'" 50 || fail "the forwarder did not start: $(cat "$WORK/forward.log")"
dl=()
download() { # N
	set -o pipefail
	curl -s --fail --max-time 60 http://127.0.0.1:18080/data.bin | slow_sink 524288 "$WORK/got$1"
}
for i in 1 2 3 4 5 6; do
	download $i &
	dl+=($!)
done
most=0
while :; do
	n=$(ss -Htn state established '( dport = :45000 )' | wc -l)
	[ "$n" -gt "$most" ] && most=$n
	alive=0
	for p in "${dl[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
	[ $alive -eq 1 ] || break
	sleep 0.05
done
for i in 1 2 3 4 5 6; do
	wait "${dl[$((i - 1))]}" || fail "download $i through the forwarder failed: $(tail -n 5 "$WORK/forward.log")"
	[ "$(sha256sum <"$WORK/got$i")" = "$want" ] || fail "download $i differs"
done
[ "$most" -le 2 ] || fail "$most connections to the server at once, more than --max-connections 2"
[ "$most" -ge 1 ] || fail "no connection to the server was ever seen"
ok "6 parallel downloads arrive whole through a forwarder of at most 2 connections (at most $most seen)"

# --- SIGTERM with a connection open ------------------------------------------------
curl -s --max-time 60 http://127.0.0.1:18080/data.bin | slow_sink 65536 "$WORK/slow" &
slow=$!
wait_for "ss -Htn state established '( dport = :45000 )' | grep -q ." 50 || fail "the slow download did not start"
kill -TERM "$fwd"
wait "$fwd"
rc=$?
[ $rc -eq 0 ] || fail "the forwarder exited $rc on SIGTERM"
wait "$slow"
[ "$(stat -c %s "$WORK/slow")" -lt $((1024 * 1024)) ] || fail "the slow download completed although the forwarder stopped"
grep -q 'closed: the forwarder stops' "$WORK/forward.log" || fail "the open connection was not closed: $(cat "$WORK/forward.log")"
ok "SIGTERM closes the open connection and exits 0"

# --- a host that refuses: the next host of the profile ------------------------------
profile "$WORK/two.profile" 46000 127.0.0.2 127.0.0.1
"$CLIENT" forward "$WORK/two.profile" --listen 127.0.0.1:18081 2>"$WORK/forward2.log" &
fwd=$!
pids+=($fwd)
wait_for "grep -q 'listening on' '$WORK/forward2.log'" 50 || fail "the second forwarder did not start"
got=$(curl -s --max-time 20 http://127.0.0.1:18081/small.txt)
[ -z "$got" ] || fail "a reply with nothing listening: $got"
wait_for "grep -q 'no door of files answered' '$WORK/forward2.log'" 50 ||
	fail "the forwarder did not say that no door answered: $(cat "$WORK/forward2.log")"
kill -0 "$fwd" || fail "the forwarder stopped when no door answered"
ok "nothing listening: the local connection is closed, the forwarder runs on"
# The server listens on 127.0.0.1 only: 127.0.0.2, the first host, refuses.
serve 46000
for i in 1 2 3 4; do
	got=$(curl -s --fail --max-time 20 http://127.0.0.1:18081/small.txt) ||
		fail "connection $i with the first host refusing: $(tail -n 5 "$WORK/forward2.log")"
	[ "$got" = "hello from the door" ] || fail "connection $i: '$got'"
	sleep 0.6
done
grep -q 'connection [0-9]*: 127.0.0.1 door 46000' "$WORK/forward2.log" ||
	fail "no connection went to the second host: $(cat "$WORK/forward2.log")"
ok "with the first host refusing, the forwarder reaches the service on the second"

# --- connect: stdio and a half close ------------------------------------------------
out=$(printf 'GET /small.txt HTTP/1.0\r\n\r\n' | timeout 20 "$CLIENT" connect "$WORK/two.profile" 2>&1) ||
	fail "mtd-client connect exited $?: $out"
assert_contains "$out" "hello from the door" "connect relays stdin/stdout and passes stdin's end on"
kill "$server45000"
wait "$server45000" 2>/dev/null
out=$(timeout 20 "$CLIENT" connect "$WORK/one.profile" </dev/null 2>&1)
rc=$?
[ $rc -eq 1 ] || fail "connect with nothing listening exited $rc: $out"
assert_contains "$out" "no door answered" "connect with nothing listening says so, exit 1"

# --- knock: the datagram, checked by an independent implementation -------------
# A one-port range: the knock port is 47000 in every epoch. The receiver
# checks the layout of docs/schedule.md ("Knock packets") and the MAC with
# Python's hmac, and that two knocks carry different nonces.
profile "$WORK/knock.profile" 47000
sed -i 's/^Auth=none$/Auth=knock/' "$WORK/knock.profile"
python3 -c '
import hashlib, hmac, socket, struct, sys, time
key = bytes(range(32))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 47000))
s.settimeout(10)
open(sys.argv[1], "w").close()
nonces = set()
for _ in range(2):
    p, src = s.recvfrom(2048)
    name = b"tester"
    body_len = 4 + 1 + 1 + len(name) + 8 + 16 + 1
    assert len(p) == body_len + 32, len(p)
    assert p[:4] == b"MTDK" and p[4] == 1 and p[5] == len(name), p[:6]
    assert p[6:6 + len(name)] == name
    (t,) = struct.unpack(">Q", p[6 + len(name):14 + len(name)])
    assert abs(t - time.time()) < 5, t
    nonce = p[14 + len(name):30 + len(name)]
    assert p[30 + len(name)] == 0
    label = b"mtd-knock-packet-v1\x00files\x00127.0.0.1\x00"
    assert hmac.compare_digest(p[body_len:], hmac.new(key, label + p[:body_len], hashlib.sha256).digest())
    nonces.add(nonce)
assert len(nonces) == 2
print("ok")
' "$WORK/knock.ready" >"$WORK/knock.out" 2>&1 &
receiver=$!
wait_for "[ -e '$WORK/knock.ready' ]" 50 || fail "the knock receiver did not start: $(cat "$WORK/knock.out")"
"$CLIENT" knock "$WORK/knock.profile" 2>/dev/null || fail "mtd-client knock exited $?"
"$CLIENT" knock "$WORK/knock.profile" --host 127.0.0.1 2>/dev/null || fail "mtd-client knock --host exited $?"
wait "$receiver" || fail "the knocks are not what docs/schedule.md says: $(cat "$WORK/knock.out")"
ok "mtd-client knock: layout, time, fresh nonces and MAC as an independent HMAC finds them"
out=$("$CLIENT" knock "$WORK/one.profile" 2>&1)
[ $? -eq 1 ] || fail "knock with Auth=none: $out"
assert_contains "$out" "takes no knock" "knock refuses a profile with Auth=none"

echo "$TEST_NAME: $CHECKS checks passed"
