#!/bin/bash
# Drift and quarantine on the real kernel, with real enveloped instances
# (tests/tools/drift-probe: envelope_spawn, drift_watch on the instance's
# detached tmpfs, cgroup.freeze, quarantine_save, quarantine_inspect).
# Inside an instance a busybox script appends to /etc/passwd (outside
# Writable=), drops an executable script into a Writable= path, writes plain
# data there, deletes a file of the snapshot, and leaves a child running.
# Checks: the watch and the scan report exactly the three drifts with the
# instance's paths; the saved entry holds the written files (mode 0600), the
# whiteout in the manifest, both processes (pid 1 and its child) frozen; every
# file matches MANIFEST (recomputed here with sha256sum) and MANIFEST matches
# the returned hash; a second instance saved under a cap evicts the first;
# a tiny cap truncates; nothing (cgroup, mount, process) is left.
# Runs in its own mount + network namespaces; cgroups mtd-qtest-PID.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$root/$BUILD" ;; esac

[ "$(id -u)" -eq 0 ] || { echo "skip: needs root"; exit 77; }
if [ "${MTD_QTEST_IN_NS:-}" != 1 ]; then
	MTD_QTEST_IN_NS=1 exec unshare --mount --net --propagation private -- bash "$0" "$@"
fi
. "$here/lib-envelope.bash"
CGNAME="mtd-qtest-$$"
command -v jq >/dev/null || { echo "skip: jq missing"; exit 77; }
[ -x /bin/busybox ] || { echo "skip: /bin/busybox missing"; exit 77; }

T=$(mktemp -d /tmp/mtd-qtest.XXXXXX)
chmod 0755 "$T"
trap envelope_cleanup EXIT
trap 'exit 1' INT TERM
make -s -C "$root" BUILD="$BUILD" "$BUILD/tools/drift-probe" >/dev/null || fail "building drift-probe"
PROBE=$BUILD/tools/drift-probe

LOWER=$T/lower
STATE=$T/state
mkdir -p "$LOWER/bin" "$LOWER/etc" "$LOWER/var/cache" "$STATE"
cp /bin/busybox "$LOWER/bin/busybox"
for a in sh mkdir chmod rm sleep printf; do ln -s busybox "$LOWER/bin/$a"; done
echo 'root:x:0:0:root:/:/bin/sh' >"$LOWER/etc/passwd"
echo original >"$LOWER/lower-file"
chmod -R a+rX "$LOWER"
mounts_before=$(wc -l </proc/self/mountinfo)

SCRIPT='read go <&3
echo "evil:x:0:0::/:/bin/sh" >> /etc/passwd
mkdir -p /var/cache/app
printf "#!/bin/sh\necho pwned\n" > /var/cache/app/dropper
chmod +x /var/cache/app/dropper
echo fine > /var/cache/app/data
rm /lower-file
sleep 1000 &
mkdir -p /run && echo ready > /run/ready
wait'

# run NAME ID [--cap N]: output in $T/NAME
run() {
	local name=$1 id=$2
	shift 2
	"$PROBE" --cgroup-name "$CGNAME" --lower "$LOWER" --state "$STATE" --id "$id" \
		--writable /var/cache/app --writable /run "$@" -- "$SCRIPT" >"$T/$name" 2>"$T/$name.err"
	echo "rc=$?" >>"$T/$name"
}
show() { sed 's/^/    | /' "$T/$1" "$T/$1.err" >&2; }

# --- drift ----------------------------------------------------------------------------
run one web-1
expect one "rc=0"
for src in drift scan; do
	expect one "$src write-outside-writable /etc/passwd"
	expect one "$src new-executable /var/cache/app/dropper"
	expect one "$src delete-outside-writable /lower-file"
	n=$(grep -c "^$src " "$T/one")
	[ "$n" -eq 3 ] || { show one; fail "$src: $n reports, expected exactly 3"; }
done
ok "inotify watch and scan: /etc/passwd written, /var/cache/app/dropper executable, /lower-file deleted; nothing for /var/cache/app/data or /run"

# --- the saved entry ----------------------------------------------------------------------
E=$STATE/quarantine/web-1
pid1=$(sed -n 's/^pid=//p' "$T/one")
grep -q '^evil:x:0:0::/:/bin/sh$' "$E/upper/etc/passwd" || fail "the written /etc/passwd is not in the copy"
grep -q '^root:x:0:0:root:/:/bin/sh$' "$E/upper/etc/passwd" || fail "the copied-up /etc/passwd lost its lower content"
grep -q pwned "$E/upper/var/cache/app/dropper" || fail "the dropper is not in the copy"
[ "$(stat -c %a "$E/upper/var/cache/app/dropper")" = 600 ] || fail "the saved dropper is executable on the host"
[ ! -e "$E/upper/lower-file" ] || fail "a whiteout was recreated on the host"
grep -q '^w 0000 0 0 0 - - upper/lower-file$' "$E/MANIFEST" || { cat "$E/MANIFEST" >&2; fail "no whiteout line in MANIFEST"; }
# owner: the instance's root, a host id of its range (docs/userns.md), never 0
owner=$(sed -n 's/^f 0755 \([0-9]*\) \1 [0-9]* [0-9a-f]\{64\} - upper\/var\/cache\/app\/dropper$/\1/p' "$E/MANIFEST")
[ -n "$owner" ] || { cat "$E/MANIFEST" >&2; fail "the dropper's original mode is not in MANIFEST"; }
[ "$owner" -ge $((0x70000000)) ] || fail "the dropper's owner is host id $owner, not one of the instance's range"
ok "entry: written files copied (0600 on the host), whiteout only in MANIFEST with the original modes"

jq -e '.frozen == true' "$E/processes.json" >/dev/null || fail "processes.json: not frozen"
jq -e --argjson p "$pid1" '.processes[] | select(.pid == $p and .comm == "busybox" and .cmdline[0] == "sh" and .nspid[-1] == 1 and (.state | startswith("S")))' \
	"$E/processes.json" >/dev/null || { cat "$E/processes.json" >&2; fail "processes.json: pid 1 ($pid1) missing"; }
jq -e --argjson p "$pid1" '.processes[] | select(.comm == "sleep" and .ppid[0] == $p and .cmdline == ["sleep", "1000"])' \
	"$E/processes.json" >/dev/null || { cat "$E/processes.json" >&2; fail "processes.json: the child missing"; }
[ "$(jq '.processes | length' "$E/processes.json")" -eq 2 ] || fail "processes.json: not exactly two processes"
jq -e --argjson p "$pid1" '.id == "web-1" and .service == "web" and .pid == $p and .truncated == false and (.evidence.first_report | length > 0)' \
	"$E/metadata.json" >/dev/null || fail "metadata.json"
ok "processes.json: pid 1 (busybox sh, host pid $pid1) and its child (sleep 1000), frozen; metadata.json"

# MANIFEST checked independently of the C code
sha=$(sed -n 's/.* manifest=//p' "$T/one")
[ "$(sha256sum <"$E/MANIFEST" | cut -d' ' -f1)" = "$sha" ] || fail "MANIFEST hash differs from the one returned"
[ "$(head -1 "$E/MANIFEST")" = "mtd-quarantine-manifest 1" ] || fail "MANIFEST header"
files=0
while read -r type mode uid gid size hash flags path; do
	[ "$type" = f ] && [ "$hash" != - ] || continue
	[ "$(sha256sum <"$E/$path" | cut -d' ' -f1)" = "$hash" ] || fail "$path: content differs from MANIFEST"
	[ "$(stat -c %s "$E/$path")" = "$size" ] || fail "$path: size differs from MANIFEST"
	files=$((files + 1))
done < <(tail -n +2 "$E/MANIFEST")
# MANIFEST and SUMMARY.json (the save's totals, which hold the MANIFEST's hash) are not listed
listed=$(($(find "$E" -type f ! -name MANIFEST ! -name SUMMARY.json | wc -l)))
[ "$files" -eq "$listed" ] && [ "$files" -ge 4 ] || fail "MANIFEST lists $files files, the entry has $listed"
grep -q "\"sha256\": \"$sha\"" "$E/SUMMARY.json" || fail "SUMMARY.json does not hold the MANIFEST's hash"
expect one "inspect verified=1"
ok "MANIFEST: sha256sum of each of $files files matches, its own hash is the returned one, inspect verifies"

# --- the cap ------------------------------------------------------------------------------
bytes=$(sed -n 's/^saved bytes=\([0-9]*\).*/\1/p' "$T/one")
run two web-2 --cap $((bytes + bytes / 2))
expect two "rc=0"
expect two "evicted=web-1"
[ ! -e "$STATE/quarantine/web-1" ] && [ -d "$STATE/quarantine/web-2" ] || fail "eviction: web-1 still there"
ok "a second instance saved under QuarantineMax=$((bytes + bytes / 2)) evicts the first (web-1)"
run three web-3 --cap 4096
expect three "rc=0"
grep -q '^saved bytes=[0-9]* truncated=1 ' "$T/three" || { show three; fail "a 4 KiB cap did not truncate"; }
expect three "evicted=web-2"
expect three "inspect verified=1"
jq -e '.truncated == true' "$STATE/quarantine/web-3/metadata.json" >/dev/null || fail "metadata.json: truncated"
ok "a 4 KiB cap truncates the copy (metadata says so), evicts web-2, and the entry still verifies"

# --- nothing left ---------------------------------------------------------------------------
envelope_no_leftovers
[ "$(wc -l </proc/self/mountinfo)" -eq "$mounts_before" ] || fail "mounts leaked"
pgrep -f "sleep 1000" | while read -r p; do
	grep -q "$CGNAME" "/proc/$p/cgroup" 2>/dev/null && fail "a process of the instance survived"
done
ok "no cgroup, mount or process of the instances remains"
echo "quarantine_drift: $CHECKS checks passed"
