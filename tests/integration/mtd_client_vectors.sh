#!/bin/bash
# mtd-client follows the agent's computation byte for byte: profiles for the
# per-client vectors of tests/unit/test_client_schedule.c (docs/schedule.md,
# vectors 4 and 5) give the same doors, window and knock ports through
# `mtd-client port --at`. It links libcrypto and libc only (ldd), and a
# profile that is not owner-only, or not a profile, is a one-line error. No
# network, no agent.
source "$(dirname "$0")/lib.bash"
CLIENT=$BUILD_DIR/mtd-client
[ -x "$CLIENT" ] || fail "build first: $CLIENT"

# Only libcrypto, libc, the loader and the vDSO (and the sanitizers' runtime
# in a sanitized build: MTD_TEST_SANITIZED).
libs=$(ldd "$CLIENT" | awk '{ print $1 }' | sed 's|.*/||' | sort | tr '\n' ' ')
for lib in $libs; do
	case $lib in
	linux-vdso.so.* | linux-gate.so.* | ld-linux*.so.* | libc.so.* | libcrypto.so.*) ;;
	libasan.so.* | libubsan.so.* | libstdc++.so.* | libm.so.* | libgcc_s.so.* | libpthread.so.* | \
		libdl.so.* | librt.so.*)
		[ -n "${MTD_TEST_SANITIZED:-}" ] ||
			fail "mtd-client links $lib (ldd: $libs); it may link libcrypto and libc only"
		;;
	*) fail "mtd-client links $lib (ldd: $libs); it may link libcrypto and libc only" ;;
	esac
done
grep -q 'libcrypto.so' <<<"$libs" || fail "mtd-client does not link libcrypto? ldd: $libs"
ok "mtd-client links only: $libs"

dir=$(mktemp -d /tmp/mtd-client-vectors.XXXXXX)
trap 'rm -rf "$dir"' EXIT

# profile FILE SERVICE CLIENT FIRST-LAST INTERVAL KEYHEX HOST...
profile() {
	local file=$1 service=$2 client=$3 ports=$4 interval=$5 key=$6 h
	shift 6
	{
		echo "[Profile]"
		echo "Version=1"
		echo "Service=$service"
		echo "Client=$client"
		for h in "$@"; do echo "Host=$h"; done
		echo "Protocol=tcp"
		echo "PublicPorts=$ports"
		echo "Interval=$interval"
		echo "Grace=5s"
		echo "Auth=knock"
		echo "Key=$key"
	} >"$file"
	chmod 0600 "$file"
}

key_0_31=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
# Vector 4: service web, 20000-29999, epoch 28333334 of a 60 s interval.
at=@1700000040
profile "$dir/alice" web alice 20000-29999 60s $key_0_31 203.0.113.5 "web-b.example 198.51.100.7"
profile "$dir/bob" web bob 20000-29999 1min $key_0_31 203.0.113.5

# expect_port WANT ARGS...: stdout of mtd-client port ARGS is exactly WANT
expect_port() {
	local want=$1 got
	shift
	got=$("$CLIENT" port "$@" 2>/dev/null) || fail "mtd-client port $* exited $?"
	[ "$got" = "$want" ] || fail "mtd-client port $*: '$got', not '$want'"
}
expect_port 24574 "$dir/alice" --at $at
expect_port 24574 "$dir/alice" --at 2023-11-14T22:14:05Z
expect_port 23447 "$dir/alice" --at $at --host web-b.example
expect_port 23447 "$dir/alice" --at $at --host 198.51.100.7
expect_port 21195 "$dir/alice" --at @1699999980
expect_port 21530 "$dir/alice" --at @1700000100
expect_port 23844 "$dir/bob" --at $at
expect_port "$(printf '24574\n29756\n28345\n21371')" "$dir/alice" --at $at --candidates 4
ok "vector 4: the doors of alice on two hosts and of bob, and alice's window"

all=$("$CLIENT" port "$dir/alice" --at $at --all) || fail "port --all exited $?"
want_a="host 203.0.113.5
host_id 203.0.113.5
epoch 28333334
from 2023-11-14T22:14:00Z
until 2023-11-14T22:15:00Z
door 24574
window 24574 29756 28345 21371
knock 20816
previous_door 21195
previous_knock 28082
next_door 21530
next_knock 22952"
[ "$(sed -n 1,12p <<<"$all")" = "$want_a" ] || fail "port --all, host a: $all"
b=$(sed -n '14,$p' <<<"$all")
for line in "host web-b.example" "host_id 198.51.100.7" "door 23447" "knock 27944" \
	"previous_door 27906" "previous_knock 26471" "next_door 26527" "next_knock 20651"; do
	grep -qx "$line" <<<"$b" || fail "port --all, host b lacks '$line': $b"
done
all=$("$CLIENT" port "$dir/bob" --at $at --all) || fail "port --all exited $?"
for line in "door 23844" "knock 24938" "previous_door 23660" "previous_knock 25240" \
	"next_door 21430" "next_knock 25207"; do
	grep -qx "$line" <<<"$all" || fail "bob's port --all lacks '$line': $all"
done
ok "vector 4: every door and knock port of epochs 28333333..28333335 with --all"

# Vector 5 (service ssh, client ops-1, host-a, 40000-40009, epoch 1234567890
# of a 1 s interval) is computed under the 12-byte key "mtd-test-key": shorter
# than any client key may be (16 bytes), so mtd-client refuses that profile,
# with the line that says why.
profile "$dir/ops" ssh ops-1 40000-40009 1s "$(printf mtd-test-key | od -An -tx1 | tr -d ' \n')" \
	host-a
out=$("$CLIENT" port "$dir/ops" --at @1234567890 2>&1)
rc=$?
[ $rc -eq 1 ] || fail "a 12-byte key: exit $rc, not 1: $out"
[ "$out" = "mtd-client: $dir/ops:11: Key=: 12 bytes; a key has 16 to 1024 bytes (hex)" ] ||
	fail "a 12-byte key: $out"
ok "vector 5's 12-byte key is refused: $out"

# Owner-only, like ssh's keys.
chmod 0640 "$dir/alice"
out=$("$CLIENT" port "$dir/alice" 2>&1)
rc=$?
[ $rc -eq 1 ] || fail "a 0640 profile: exit $rc, not 1: $out"
[ "$(wc -l <<<"$out")" -eq 1 ] || fail "a 0640 profile: more than one line: $out"
assert_contains "$out" "$dir/alice: owner uid $(id -u), mode 0640: a secret must not be accessible" \
	"the refusal of a 0640 profile"
ok "a profile readable by the group is refused: $out"

# The command line: usage errors exit 2, one line.
chmod 0600 "$dir/alice"
for args in "bogus" "port" "port $dir/alice --at yesterday" "port $dir/alice --host 192.0.2.9" \
	"forward $dir/alice" "port $dir/alice --candidates 0" \
	"forward $dir/alice --listen 127.0.0.1:1 --max-connections 1025"; do
	# shellcheck disable=SC2086 # the words split on purpose
	out=$("$CLIENT" $args 2>&1)
	rc=$?
	[ $rc -eq 2 ] || fail "mtd-client $args: exit $rc, not 2: $out"
	[ "$(wc -l <<<"$out")" -eq 1 ] || fail "mtd-client $args: more than one line: $out"
done
"$CLIENT" --help | grep -q "mtd-client forward PROFILE --listen" || fail "--help lacks forward"
out=$("$CLIENT" knock "$dir/bob" --host 192.0.2.9 2>&1)
[ $? -eq 2 ] || fail "knock --host of no host: $out"
ok "usage errors are one line, exit 2"

echo "$TEST_NAME: $CHECKS checks passed"
