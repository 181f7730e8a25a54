#!/bin/bash
# Signed snapshots through mtdctl, as root on the real kernel:
#   - keygen (0600 private key, refuses to overwrite)
#   - create from a fixture tree (busybox-static) and from --from-binary
#     (static busybox, dynamic /bin/ls and /usr/bin/env), verify ok
#   - the closure is complete: each runs chrooted in private mount+pid namespaces
#   - tampering (byte, mode, owner, added, removed, symlink, signature, key)
#     exits 1 naming the first mismatch
#   - fifos/devices/setuid refused unless allowed; DEST not empty refused
. "$(dirname "$0")/lib.bash"
enter_private_namespaces "$@"
make_work_dir
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || skip "busybox-static not installed"
if command -v file >/dev/null; then
	file -L "$BUSYBOX" | grep -q "statically linked" || skip "$BUSYBOX is not static"
fi
S=$WORK/snap
cd "$WORK" || fail "cd"

# expect_fail EXPECTED-STDERR-SUBSTRING COMMAND...: exit 1 and the message.
expect_fail() {
	local want=$1 out rc
	shift
	out=$("$@" 2>&1)
	rc=$?
	[ $rc -eq 1 ] || fail "$* exited $rc, want 1: $out"
	case $out in
	*"$want"*) ;;
	*) fail "$*: want '$want' in: $out" ;;
	esac
}

# --- keys ---------------------------------------------------------------------
"$MTDCTL" keygen --out "$WORK/keys/snap" >/dev/null || fail "keygen"
[ "$(stat -c %a "$WORK/keys/snap.key")" = 600 ] || fail "private key not 0600"
grep -q "BEGIN PUBLIC KEY" "$WORK/keys/snap.pub" || fail "public key not PEM"
expect_fail "refusing to overwrite" "$MTDCTL" keygen --out "$WORK/keys/snap"
"$MTDCTL" keygen --out "$WORK/keys/other" >/dev/null || fail "keygen other"
KEY=$WORK/keys/snap.key
PUB=$WORK/keys/snap.pub
ok "keygen: PEM pair, 0600 private key, no overwrite"

# --- a fixture tree -------------------------------------------------------------
mkdir -p src/bin src/etc src/www
cp "$BUSYBOX" src/bin/busybox
ln -s busybox src/bin/sh
ln -s /bin/busybox src/bin/cat
echo "snapshot-test" >src/etc/hostname
echo "<h1>hello</h1>" >src/www/index.html
chown -R 0:0 src
# a tree is root's alone: another owner, or a write bit for group or others,
# is refused at create (and at verify), with the path
chown 33:33 src/www/index.html
expect_fail "src/www/index.html: owned by uid 33" "$MTDCTL" snapshot create --key "$KEY" src "$S"
chown 0:33 src/www/index.html
chmod 0664 src/www/index.html
expect_fail "src/www/index.html: writable by group (0664" "$MTDCTL" snapshot create --key "$KEY" src "$S"
chmod 0644 src/www/index.html
[ -e "$S" ] && fail "a refused create left $S"
ok "create refuses a tree that is not root's alone (owner, group write), naming the path"
"$MTDCTL" snapshot create --key "$KEY" src "$S" >/dev/null || fail "create from a tree"
ls -d "$WORK"/snap.tmp-* >/dev/null 2>&1 && fail "staging directory left behind"
[ "$(stat -c %u:%g "$S/root/www/index.html")" = 0:33 ] || fail "owner not preserved"
[ "$(readlink "$S/root/bin/cat")" = /bin/busybox ] || fail "symlink not preserved"
"$MTDCTL" snapshot verify --pubkey "$PUB" "$S" >/dev/null || fail "verify a fresh snapshot"
ok "create from a tree (owners, symlinks kept) and verify"

out=$(unshare --mount --pid --fork chroot "$S/root" /bin/sh -c 'cat /etc/hostname') ||
	fail "chroot run"
[ "$out" = snapshot-test ] || fail "chroot output: $out"
ok "the snapshot runs chrooted (/bin/sh -> busybox, absolute /bin/cat resolves inside)"

expect_fail "exists and is not empty" "$MTDCTL" snapshot create --key "$KEY" src "$S"
ok "create refuses a non-empty DEST"

# --- tampering: exit 1 naming the first mismatch, then restore ------------------
cp -a "$S" "$WORK/pristine"
restore() { rm -rf "$S" && cp -a "$WORK/pristine" "$S"; }

printf 'X' | dd of="$S/root/etc/hostname" bs=1 seek=3 conv=notrunc status=none
expect_fail "root/etc/hostname: content differs (sha256 " \
	"$MTDCTL" snapshot verify --pubkey "$PUB" "$S"
restore
chmod 0600 "$S/root/etc/hostname"
expect_fail "root/etc/hostname: mode differs (0600, expected 0644)" \
	"$MTDCTL" snapshot verify --pubkey "$PUB" "$S"
restore
chown 0:1 "$S/root/etc/hostname"
expect_fail "root/etc/hostname: owner differs (0:1, expected 0:0)" \
	"$MTDCTL" snapshot verify --pubkey "$PUB" "$S"
restore
chown 1:1 "$S/root/etc/hostname"
expect_fail "root/etc/hostname: owned by uid 1 (a snapshot tree is root's)" \
	"$MTDCTL" snapshot verify --pubkey "$PUB" "$S"
restore
chmod 0666 "$S/root/etc/hostname"
expect_fail "root/etc/hostname: writable by group and others (0666" \
	"$MTDCTL" snapshot verify --pubkey "$PUB" "$S"
restore
echo x >"$S/root/etc/extra"
expect_fail "root/etc/extra: not in the manifest" "$MTDCTL" snapshot verify --pubkey "$PUB" "$S"
restore
rm "$S/root/www/index.html"
expect_fail "root/www/index.html: missing" "$MTDCTL" snapshot verify --pubkey "$PUB" "$S"
restore
ln -sfn /host/evil "$S/root/bin/sh"
expect_fail "root/bin/sh: symlink target differs (/host/evil, expected busybox)" \
	"$MTDCTL" snapshot verify --pubkey "$PUB" "$S"
restore
truncate -s -5 "$S/manifest"
expect_fail "manifest: bad signature" "$MTDCTL" snapshot verify --pubkey "$PUB" "$S"
restore
printf '\x01' | dd of="$S/manifest.sig" bs=1 seek=5 conv=notrunc status=none
expect_fail "manifest: bad signature" "$MTDCTL" snapshot verify --pubkey "$PUB" "$S"
restore
expect_fail "manifest: bad signature" \
	"$MTDCTL" snapshot verify --pubkey "$WORK/keys/other.pub" "$S"
"$MTDCTL" snapshot verify --pubkey "$PUB" "$S" >/dev/null || fail "restored copy verifies"
ok "byte, mode, owner, added, removed, symlink, truncated manifest, signature, wrong key: exit 1 with the first mismatch"

# --- what the policy must allow -------------------------------------------------
mkdir -p special/dev
mkfifo special/dev/fifo
mknod special/dev/null c 1 3
# the fifo or the device, whichever the source directory lists first
expect_fail "not allowed (SnapshotAllowDevices=)" \
	"$MTDCTL" snapshot create --key "$KEY" special "$WORK/special-snap"
[ -e "$WORK/special-snap" ] && fail "a refused create left DEST"
"$MTDCTL" snapshot create --key "$KEY" --allow-devices special "$WORK/special-snap" >/dev/null ||
	fail "create with --allow-devices"
expect_fail "root/dev/fifo: fifo not allowed" \
	"$MTDCTL" snapshot verify --pubkey "$PUB" "$WORK/special-snap"
"$MTDCTL" snapshot verify --pubkey "$PUB" --allow-devices "$WORK/special-snap" >/dev/null ||
	fail "verify with --allow-devices"
mkdir suid
cp "$BUSYBOX" suid/prog
chmod 4755 suid/prog
expect_fail "setuid/setgid file not allowed (SnapshotAllowSetuid=)" \
	"$MTDCTL" snapshot create --key "$KEY" suid "$WORK/suid-snap"
"$MTDCTL" snapshot create --key "$KEY" --allow-setuid suid "$WORK/suid-snap" >/dev/null ||
	fail "create with --allow-setuid"
expect_fail "root/prog: setuid/setgid file not allowed" \
	"$MTDCTL" snapshot verify --pubkey "$PUB" "$WORK/suid-snap"
ok "fifo, device node, setuid refused at create and verify unless allowed"

# --- from a binary's closure ------------------------------------------------------
for bin in "$BUSYBOX" /bin/ls /usr/bin/env; do
	name=$(basename "$bin")
	D=$WORK/from-$name
	"$MTDCTL" snapshot create --key "$KEY" --from-binary "$bin" "$D" >/dev/null ||
		fail "create --from-binary $bin"
	"$MTDCTL" snapshot verify --pubkey "$PUB" "$D" >/dev/null || fail "verify from-$name"
done
out=$(unshare --mount --pid --fork chroot "$WORK/from-busybox/root" /bin/busybox echo static-ok) ||
	fail "chroot busybox"
[ "$out" = static-ok ] || fail "busybox output: $out"
out=$(unshare --mount --pid --fork chroot "$WORK/from-ls/root" /bin/ls /) || fail "chroot ls"
for d in bin dev proc usr; do
	grep -qx "$d" <<<"$out" || fail "ls / in the snapshot lacks $d: $out"
done
out=$(unshare --mount --pid --fork chroot "$WORK/from-env/root" /usr/bin/env -i A=1) ||
	fail "chroot env"
[ "$out" = A=1 ] || fail "env output: $out"
[ "$(find "$WORK/from-ls/root" -type f | wc -l)" -lt 10 ] || fail "closure of ls is not minimal"
ok "--from-binary: static busybox, dynamic ls and env run chrooted from their closures"

"$MTDCTL" snapshot create --key "$KEY" --from-binary /etc/hostname "$WORK/x" 2>/dev/null
[ $? -eq 1 ] || fail "--from-binary of a non-ELF file must fail"
"$MTDCTL" snapshot verify "$S" 2>/dev/null
[ $? -eq 2 ] || fail "usage error must exit 2"
ok "non-ELF --from-binary refused; usage errors exit 2"

echo "snapshot: $CHECKS checks passed"
