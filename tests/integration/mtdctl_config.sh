#!/bin/bash
# mtdctl policy check and the global file (mtd.conf, [Decoys], [Hooks]):
# --config FILE checks FILE with the set; a good file passes and --plan shows
# its NeverBlock= list and its hooks; a bad one fails (exit 1) with one line per error, each
# naming the file and line, every error of it and of the set reported; a
# missing --config file is an error. Without --config the default
# /etc/mtd/mtd.conf is checked when it exists and ignored when it does not
# (/etc is an overlay of this private mount namespace: the host's is not
# touched). No agent.
source "$(dirname "$0")/lib.bash"
enter_private_namespaces
make_work_dir

command -v jq >/dev/null || skip "needs jq"

dir=$WORK/policies
cp -r "$REPO/policies/examples/." "$dir/"
chmod 0600 "$dir"/keys/*.key

cat >"$WORK/good.conf" <<'CONF'
# the team's scanners and the bastion
[Decoys]
NeverBlock=192.0.2.0/24 2001:db8:1::/48
NeverBlock=198.51.100.7
UDPBlockLimit=8/10s
[Hooks]
OnEvent=decoy-hit,instance-* /usr/share/mtd/hooks/webhook http://192.0.2.9/hook
HookRate=5/10s
CONF
out=$("$MTDCTL" policy check --config "$WORK/good.conf" "$dir" 2>&1) ||
	fail "policy check --config good.conf exited $?: $out"
grep -qx "ok: global file $WORK/good.conf" <<<"$out" || fail "no ok line for the global file: $out"
json=$("$MTDCTL" --json policy check --config "$WORK/good.conf" "$dir") ||
	fail "--json policy check --config good.conf exited $?: $json"
[ "$(jq -r '.ok, .config' <<<"$json" | tr '\n' ' ')" = "true $WORK/good.conf " ] ||
	fail "--json report: $json"
ok "a good global file passes with the set"

plan=$("$MTDCTL" policy check --config "$WORK/good.conf" --plan "$dir") ||
	fail "--plan with --config exited $?: $plan"
for line in "^global file: $WORK/good.conf$" \
	"^  never block: 192.0.2.0/24 2001:db8:1::/48 198.51.100.7/32 (no decoy" \
	"^  UDP blocks:  at most 8 sources per 10s (UDPBlockLimit=)$" \
	"^  hooks:       1 OnEvent= hook, as nobody, killed after 10s, at most 5 runs each per 10s$" \
	"^    decoy-hit,instance-\* /usr/share/mtd/hooks/webhook http://192.0.2.9/hook$" \
	"^  never block: none (NeverBlock=), 192.0.2.0/24 2001:db8:1::/48 198.51.100.7/32 (global" \
	"^  decoy block: DecoyBlock=10min, x2 per repeat within DecoyRepeatWindow=1d, up to DecoyBlockMax=1d$"; do
	grep -q -- "$line" <<<"$plan" || fail "the plan lacks '$line': $plan"
done
[ "$("$MTDCTL" --json policy check --config "$WORK/good.conf" --plan "$dir" |
	jq -c '.globals.never_block')" = '["192.0.2.0/24","2001:db8:1::/48","198.51.100.7/32"]' ] ||
	fail "--plan --json lacks the global NeverBlock= list"
ok "--plan shows the global file and each decoy service's NeverBlock= lists"

cat >"$WORK/bad.conf" <<'CONF'
[Decoys]
NeverBlock=10.1.2.3/8 192.0.2.1
UDPBlockLimit=32
Whitelist=10.0.0.0/8
[Service]
CONF
printf '[Service]\nName=broken\n' >"$dir/broken.policy"
out=$("$MTDCTL" policy check --config "$WORK/bad.conf" "$dir" 2>&1)
rc=$?
[ $rc -eq 1 ] || fail "policy check with bad.conf exited $rc, not 1: $out"
want="$WORK/bad.conf:2: Decoys.NeverBlock: \"10.1.2.3/8\": host bits set after the /8 prefix (the network is 10.0.0.0/8)
$WORK/bad.conf:3: Decoys.UDPBlockLimit: \"32\": expected SOURCES/SPAN (e.g. 32/1min)
$WORK/bad.conf:4: Decoys.Whitelist: unknown key
$WORK/bad.conf:5: unknown section \"Service\" (expected [Agent], [Decoys] or [Hooks])"
got=$(grep "^$WORK/bad.conf" <<<"$out")
[ "$got" = "$want" ] || fail "errors of bad.conf:
--- expected
$want
--- got
$got"
grep -q "^$dir/broken.policy:" <<<"$out" || fail "the set's errors are missing: $out"
tail -n 1 <<<"$out" | grep -qx "mtdctl: policy check: [0-9]* errors" || fail "no count line: $out"
rm "$dir/broken.policy"
ok "a bad global file: exit 1, one line per error with file and line, the set's errors too"

out=$("$MTDCTL" policy check --config "$WORK/none.conf" "$dir" 2>&1)
rc=$?
[ $rc -eq 1 ] && grep -qx "$WORK/none.conf: cannot read: No such file or directory" <<<"$out" ||
	fail "a missing --config file: exit $rc: $out"
ok "a missing --config file is an error"

out=$("$MTDCTL" policy check "$dir" --config 2>&1)
rc=$?
[ $rc -eq 2 ] && [ "$out" = "mtdctl: policy check: --config needs a FILE (see mtdctl --help)" ] ||
	fail "--config without FILE: exit $rc: $out"
ok "--config without FILE is a one-line usage error, exit 2"

# The default path, in an overlay of /etc private to this mount namespace.
mkdir -p "$WORK/etc-upper" "$WORK/etc-work"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$WORK/etc-upper,workdir=$WORK/etc-work" /etc ||
	fail "cannot overlay /etc in the test's mount namespace"
rm -rf /etc/mtd
out=$("$MTDCTL" policy check "$dir" 2>&1) || fail "no /etc/mtd/mtd.conf: exited $?: $out"
grep -q "global file" <<<"$out" && fail "a global file reported though none exists: $out"
mkdir -p /etc/mtd
cp "$WORK/bad.conf" /etc/mtd/mtd.conf
out=$("$MTDCTL" policy check "$dir" 2>&1)
rc=$?
[ $rc -eq 1 ] && grep -q "^/etc/mtd/mtd.conf:3: Decoys.UDPBlockLimit: " <<<"$out" ||
	fail "a bad /etc/mtd/mtd.conf without --config: exit $rc: $out"
cp "$WORK/good.conf" /etc/mtd/mtd.conf
out=$("$MTDCTL" policy check "$dir" 2>&1) || fail "a good /etc/mtd/mtd.conf: exited $?: $out"
grep -qx "ok: global file /etc/mtd/mtd.conf" <<<"$out" || fail "default file not reported: $out"
ok "without --config, /etc/mtd/mtd.conf is checked when it exists, ignored when absent"
umount /etc

echo "$TEST_NAME: $CHECKS checks passed"
