#!/bin/bash
# What runs is what was verified (issue 12, finding 6). A real instance
# (tests/fixtures/probe show, static) prints what it sees of its snapshot: a
# file, a file that gets renamed over, and a file behind a symlink to a
# directory. Checks, on the agent's side:
#   1. a tree with a group-writable file, or a file of another owner, is
#      refused at load (service-failed naming the path), and starts once fixed;
#   2. after verification, with the instance running, the tree is changed in
#      place (same-size write), by a rename over a file, and by pointing the
#      symlink at the host's /etc; each time a replacement is forced (mtdctl
#      quarantine) and refuses to start, audited with the step and the path,
#      and no instance ever prints the new bytes; a tree only touched
#      (metadata, same bytes) is verified again and the replacement runs the
#      verified bytes;
#   3. the snapshot directory renamed and another signed one put in its
#      place, then its root/ replaced by a symlink to the host's /: new
#      instances still see the verified tree (the lower layer is a clone of
#      the verified directory's fd, not of its path).
. "$(dirname "$0")/lib.bash"
command -v cc >/dev/null || skip "cc is missing"
enter_private_namespaces "$@"
make_work_dir

# --- the tree ---------------------------------------------------------------------
SNAP=$WORK/snapshots/swap
T=$WORK/swap-tree
mkdir -p "$T/bin" "$T/etc" "$T/dev" "$T/proc" "$T/srv/conf" "$WORK/snapshots"
cc -static -O2 -o "$T/bin/probe" "$REPO/tests/fixtures/probe.c" || fail "building the static probe"
printf 'root:x:0:0::/:/bin/sh\nprobe:x:1000:1000::/:/bin/sh\n' >"$T/etc/passwd"
printf 'root:x:0:\nprobe:x:1000:\n' >"$T/etc/group"
echo verified-data-1 >"$T/srv/data"
echo verified-rep-22 >"$T/srv/rep"
echo verified-conf-3 >"$T/srv/conf/name"
ln -s conf "$T/srv/view"
chmod -R go-w "$T"
"$MTDCTL" keygen --out "$WORK/keys/snap" >/dev/null || fail "keygen"
"$MTDCTL" snapshot create --key "$WORK/keys/snap.key" "$T" "$SNAP" >/dev/null ||
	fail "snapshot create"
cp -a "$SNAP" "$WORK/pristine"

write_probe_service swap 20000-20999 "/bin/probe show /srv/data /srv/rep /srv/view/name" \
	"[Service] User=probe" "[Rotation] AddressPool=10.214.0.0/24"
sed -i "s|^Snapshot=.*|Snapshot=$SNAP|" "$WORK/policies/swap.policy"
"$MTDCTL" policy check "$WORK/policies" >/dev/null || fail "the test policy does not validate"

# shown WHAT: how many instances printed the line "show WHAT"
shown() { grep -c "]: show $1\$" "$AGENT_LOG"; }
restore() { rm -rf "$SNAP" && cp -a "$WORK/pristine" "$SNAP"; }
audit() { cat "$WORK/log/audit.log"; }
count() { audit | grep -c "$1"; }

# --- 1. ownership and modes ---------------------------------------------------------
chmod g+w "$SNAP/root/srv/data"
start_agent
wait_for "audit | grep -q '\"type\":\"service-failed\"'" 50 || fail "no service-failed record"
assert_contains "$(audit | grep service-failed)" "root/srv/data: writable by group (0664" \
	"a group-writable file is refused with its path"
[ "$(shown /srv/data=verified-data-1)" -eq 0 ] || fail "an instance ran from a group-writable tree"
chmod g-w "$SNAP/root/srv/data"
chown 1000 "$SNAP/root/srv/conf"
mtdctl reload >/dev/null || fail "reload"
wait_for "[ \"\$(count 'owned by uid 1000')\" -ge 1 ]" 50 || fail "no refusal for another owner"
assert_contains "$(audit | grep service-failed | tail -n 1)" "root/srv/conf: owned by uid 1000" \
	"a directory of another owner is refused with its path"
chown 0 "$SNAP/root/srv/conf"
mtdctl reload >/dev/null || fail "reload"
wait_for "[ \"\$(shown /srv/data=verified-data-1)\" -ge 1 ]" 100 ||
	fail "no instance once the tree is root's again"
ok "refused while a file is group-writable or a directory is uid 1000's (path named); runs once fixed"

# force_replacement: quarantine the serving instance, wait for the outcome
# (a new instance's output, or a refused start); echo "started" or "refused".
force_replacement() {
	local before_show before_fail
	before_show=$(grep -c "]: show_done=1" "$AGENT_LOG")
	before_fail=$(count '"type":"instance-start-failed"')
	mtdctl quarantine swap --reason "snapshot swap test" >/dev/null || fail "quarantine"
	for _ in $(seq 1 100); do
		if [ "$(grep -c "]: show_done=1" "$AGENT_LOG")" -gt "$before_show" ]; then
			echo started
			return
		fi
		if [ "$(count '"type":"instance-start-failed"')" -gt "$before_fail" ]; then
			echo refused
			return
		fi
		sleep 0.1
	done
	echo timeout
}

# refused_with PATH REASON WHAT: the last refused start names the step and PATH
refused_with() {
	local rec
	rec=$(audit | grep '"type":"instance-start-failed"' | tail -n 1)
	assert_contains "$rec" '"step":"snapshot"' "$3: the start is refused at the snapshot step"
	assert_contains "$rec" "$SNAP/root$1: $2" "$3: the audit record names $1"
}

# a fresh, verified start after each swap: the tree put back, verified anew
fresh() {
	restore
	local verified
	verified=$(count '"type":"snapshot-verified"')
	mtdctl reload >/dev/null || fail "reload"
	wait_for "[ \"\$(count '\"type\":\"snapshot-verified\"')\" -gt $verified ]" 50 ||
		fail "the restored snapshot was not verified again"
}

# --- 2. swaps after verification, before a replacement ---------------------------------
printf 'EVIL-DATA-00001' | dd of="$SNAP/root/srv/data" bs=1 conv=notrunc status=none
[ "$(stat -c %s "$SNAP/root/srv/data")" -eq 16 ] || fail "the in-place write changed the size"
[ "$(force_replacement)" = refused ] || fail "a replacement started from a tree written in place"
refused_with /srv/data "content differs" "same-size write in place"
fresh

echo EVIL-REPLACED22 >"$SNAP/root/srv/rep.new"
mv -f "$SNAP/root/srv/rep.new" "$SNAP/root/srv/rep"
[ "$(force_replacement)" = refused ] || fail "a replacement started after a rename over a file"
refused_with /srv/rep "content differs" "rename over a file"
fresh

ln -sfn /etc "$SNAP/root/srv/view"
[ "$(force_replacement)" = refused ] || fail "a replacement started after a symlink swap"
refused_with /srv/view "symlink target differs (/etc, expected conf)" "symlink to the host's /etc"
fresh

for what in "/srv/data=EVIL" "/srv/rep=EVIL" "/srv/view/name=!"; do
	grep -q "]: show $what" "$AGENT_LOG" && fail "an instance saw the swapped $what"
done
ok "same-size write, rename over, symlink to /etc: each replacement refused (audited with the path); no instance saw new bytes"

touch "$SNAP/root/srv/data" "$SNAP/root/srv/conf"
before=$(shown /srv/data=verified-data-1)
[ "$(force_replacement)" = started ] || fail "no replacement after a touch (same bytes)"
[ "$(shown /srv/data=verified-data-1)" -gt "$before" ] || fail "the replacement did not see the verified bytes"
ok "a tree only touched is verified again and the replacement runs the verified bytes"

# --- 3. the snapshot directory swapped under its name ----------------------------------
mv "$SNAP" "$WORK/snapshots/swap.moved"
rm -rf "$T" && mkdir -p "$T/bin" "$T/srv/conf" "$T/etc" &&
	cp "$WORK/pristine/root/bin/probe" "$T/bin/probe" && cp "$WORK/pristine/root/etc/"* "$T/etc/"
echo OTHER-DATA-0001 >"$T/srv/data"
echo OTHER-REP-00022 >"$T/srv/rep"
echo OTHER-CONF-0003 >"$T/srv/conf/name"
ln -s conf "$T/srv/view"
chmod -R go-w "$T"
"$MTDCTL" snapshot create --key "$WORK/keys/snap.key" "$T" "$SNAP" >/dev/null ||
	fail "snapshot create (the other tree)"
before=$(shown /srv/data=verified-data-1)
[ "$(force_replacement)" = started ] || fail "no replacement with the directory renamed"
[ "$(shown /srv/data=verified-data-1)" -gt "$before" ] || fail "the replacement saw another tree"
grep -q "]: show /srv/data=OTHER" "$AGENT_LOG" && fail "an instance saw the tree put in the old place"

rm -rf "$SNAP" && mkdir -p "$SNAP" && ln -s / "$SNAP/root"
mv "$WORK/snapshots/swap.moved/root" "$WORK/snapshots/swap.moved/root.old"
ln -s / "$WORK/snapshots/swap.moved/root"
before=$(shown /srv/data=verified-data-1)
[ "$(force_replacement)" = started ] || fail "no replacement with root/ a symlink to /"
[ "$(shown /srv/data=verified-data-1)" -gt "$before" ] || fail "the replacement saw the host's /"
grep -q "]: show /srv/data=!" "$AGENT_LOG" && fail "an instance saw no /srv/data (the host's /?)"
ok "directory renamed with another signed tree in its place, then root/ a symlink to the host's /: new instances see the verified tree"

stop_agent || fail "the agent did not stop cleanly"
log=$("$MTDCTL" audit verify --key "$WORK/state/audit-verify.key" "$WORK/log/audit.log") ||
	fail "the audit log does not verify: $log"
echo "$TEST_NAME: $CHECKS checks passed"
