#!/bin/bash
# End-to-end: the Debian package (debian/, docs/packaging.md).
# - `dpkg-buildpackage -us -uc -b` in a copy of the tree (nothing of the build
#   reaches the repository) builds a .deb holding the binaries, the unit, the
#   man pages, the examples, the tmpfiles.d and sysusers.d files and the bash
#   completion;
# - lintian on the .changes reports no error (the summary is printed);
# - `dpkg -i` in the booted-systemd container (lib-systemd.bash: an overlay of
#   / that vanishes with it, without group mtd or /etc/mtd) creates group mtd
#   and the directories, installs the unit neither enabled nor started; with
#   a policy written, `systemctl enable --now` runs it and mtdctl answers;
# - the installed completion completes commands, the agent's services, and
#   offers nothing (in time) when the agent is gone or does not answer;
# - installing the package again restarts a running agent (try-restart);
#   removing it stops the agent; purging it forgets that it was enabled.
#
# env: BUILD (unused: the package builds its own binaries)
cd "$(dirname "$0")/../.." || exit 1
. tests/e2e/lib-systemd.bash

UNIT=mtd-agent.service
VERSION=$(sed -n 's/^VERSION := //p' Makefile)
COMPLETION=/usr/share/bash-completion/completions/mtdctl

fail() {
	sd_log "FAIL: $*"
	if [ -n "$SD_PID" ]; then
		sd_in systemctl --no-pager status "$UNIT" >&2 || true
		sd_in journalctl --no-pager -q -n 30 -u "$UNIT" >&2 || true
	fi
	exit 1
}
step() { sd_log "--- $*"; }

for c in dpkg-buildpackage dh lintian; do
	command -v "$c" >/dev/null || {
		sd_log "needs $c (make deps: dpkg-dev, debhelper, lintian)"
		exit 77
	}
done
sd_init

# --- build, in a copy of the tree ----------------------------------------------------
step "dpkg-buildpackage -us -uc -b (version $VERSION)"
P=$SD_DIR/pkg
mkdir -p "$P/src"
if git rev-parse --git-dir >/dev/null 2>&1; then
	# what git tracks or would track, as it is in the work tree
	git ls-files -z -co --exclude-standard |
		while IFS= read -r -d '' f; do
			[ -e "$f" ] && printf '%s\0' "$f"
		done | tar --null -T - -cf - | tar -xf - -C "$P/src" || fail "copying the tree"
else
	tar --exclude=./build --exclude='./build-*' -cf - . | tar -xf - -C "$P/src" ||
		fail "copying the tree"
fi
[ "$(dpkg-parsechangelog -l "$P/src/debian/changelog" -S Version)" = "$VERSION" ] ||
	fail "debian/changelog's version is not the Makefile's $VERSION"
(cd "$P/src" && DEB_BUILD_OPTIONS=parallel=2 dpkg-buildpackage -us -uc -b) >"$P/build.log" 2>&1 ||
	{ tail -n 40 "$P/build.log" >&2; fail "dpkg-buildpackage"; }
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
DEB=$P/mtd-agent_${VERSION}_$arch.deb
CHANGES=$P/mtd-agent_${VERSION}_$arch.changes
[ -f "$DEB" ] && [ -f "$CHANGES" ] || fail "no $DEB or $CHANGES: $(ls "$P")"

dpkg-deb -c "$DEB" | awk '{ print $6 }' | sed 's|^\./|/|' >"$P/contents"
want=(/usr/sbin/mtd-agent /usr/bin/mtdctl "/lib/systemd/system/$UNIT"
	/usr/lib/sysusers.d/mtd-agent.conf /usr/lib/tmpfiles.d/mtd-agent.conf "$COMPLETION"
	/usr/share/doc/mtd-agent/copyright)
for f in docs/*.[58]; do
	want+=("/usr/share/man/man${f##*.}/$(basename "$f").gz")
done
for f in policies/examples/*.policy; do
	want+=("/usr/share/doc/mtd-agent/examples/$(basename "$f")")
done
for f in "${want[@]}"; do
	grep -qx "$f" "$P/contents" || fail "the .deb lacks $f"
done
dpkg-deb --fsys-tarfile "$DEB" | tar -xOf - "./lib/systemd/system/$UNIT" |
	grep -qx 'ExecStart=/usr/sbin/mtd-agent .*' || fail "the unit does not start /usr/sbin/mtd-agent"
sd_log "the .deb holds ${#want[@]} expected files among $(grep -vc '/$' "$P/contents")"

# --- lintian ----------------------------------------------------------------------------
step "lintian"
lintian --pedantic --display-info --tag-display-limit 0 "$CHANGES" >"$P/lintian.log" 2>&1
rc=$?
count() { grep -c "^$1: " "$P/lintian.log"; }
sd_log "lintian $(lintian --version | awk '{ print $2 }'): $(count E) errors, $(count W) warnings," \
	"$(count I) info, $(count P) pedantic"
grep -E '^[EWIPX]: ' "$P/lintian.log" >&2
[ "$(count E)" -eq 0 ] || fail "lintian reports errors"
# 1 is "tags at the fail-on level" (errors, none here), 2 and up its own failure
[ $rc -eq 0 ] || { cat "$P/lintian.log" >&2; fail "lintian exited with $rc"; }

# --- a policy to write once installed (a host service: no snapshot needed) --------------
mkdir -p "$SD_STAGE/root/e2e"
cp "$DEB" "$SD_STAGE/root/e2e/"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$SD_STAGE/root/e2e/e2e.key"
echo >>"$SD_STAGE/root/e2e/e2e.key"
cat >"$SD_STAGE/root/e2e/e2e-alpha.policy" <<-'EOF'
	[Service]
	Name=e2e-alpha
	Backend=127.0.0.1:8080

	[Rotation]
	PublicPorts=20000-20999
	Interval=60s
	KeyFile=/etc/mtd/keys/e2e.key
EOF
# completes the last of WORD... in the container with the installed file;
# every completion runs under `timeout 10`: one that hangs fails the test
cat >"$SD_STAGE/root/e2e/complete" <<-EOF
	#!/bin/bash
	. $COMPLETION || exit 3
	COMP_WORDS=("\$@")
	COMP_CWORD=\$((\$# - 1))
	_mtdctl
	printf '%s\n' "\${COMPREPLY[@]}"
EOF
chmod 0755 "$SD_STAGE/root/e2e/complete"
complete_in() { sd_in timeout 10 /root/e2e/complete mtdctl "$@"; }

step "boot systemd"
sd_boot 60 || fail "boot"

# --- dpkg -i: group, directories, unit installed but neither enabled nor started ---------
step "dpkg -i"
# The container's root is the host's: start from what a fresh host has. A
# container image's policy-rc.d (exit 101: start no service from a package)
# would also keep the maintainer scripts from restarting and stopping the unit.
sd_in sh -c 'getent group mtd >/dev/null && groupdel mtd
	rm -rf /etc/mtd /var/lib/mtd /var/log/mtd /usr/sbin/policy-rc.d'
sd_in dpkg-query -W -f='${Status}' mtd-agent 2>/dev/null | grep -q 'install ok installed' &&
	fail "mtd-agent is already installed in the container's root"
sd_in dpkg -i "/root/e2e/$(basename "$DEB")" >"$P/dpkg.log" 2>&1 || { cat "$P/dpkg.log" >&2; fail "dpkg -i"; }
sd_in dpkg-query -W -f='${Status} ${Version}' mtd-agent | grep -qx "install ok installed $VERSION" ||
	fail "mtd-agent $VERSION is not installed after dpkg -i"
sd_in getent group mtd >/dev/null || fail "the postinst did not create group mtd (sysusers)"
[ "$(sd_in stat -c %a /etc/mtd/keys)" = 700 ] || fail "/etc/mtd/keys is not 0700 (tmpfiles)"
sd_in test -d /etc/mtd/policies || fail "/etc/mtd/policies not created (tmpfiles)"
sd_in test -d /var/lib/mtd/snapshots || fail "/var/lib/mtd/snapshots not created (tmpfiles)"
[ "$(sd_in systemctl show -P FragmentPath "$UNIT")" = "/lib/systemd/system/$UNIT" ] ||
	fail "systemd does not see the unit in /lib/systemd/system"
state=$(sd_in systemctl is-enabled "$UNIT")
[ "$state" = disabled ] || fail "installing enabled the unit ($state)"
state=$(sd_in systemctl is-active "$UNIT")
[ "$state" = inactive ] || fail "installing started the unit ($state)"
sd_in systemd-analyze verify "/lib/systemd/system/$UNIT" || fail "systemd-analyze verify"
sd_in man -w mtdctl >/dev/null || fail "man -w mtdctl finds no page"

# --- the administrator writes a policy and starts it -------------------------------------
step "policy, systemctl enable --now"
sd_in install -m 0600 /root/e2e/e2e.key /etc/mtd/keys/e2e.key || fail "key"
sd_in install -m 0644 /root/e2e/e2e-alpha.policy /etc/mtd/policies/ || fail "policy"
sd_in mtdctl policy check /etc/mtd/policies >/dev/null || fail "mtdctl policy check"
sd_in systemctl enable --now "$UNIT" >/dev/null 2>&1 || fail "systemctl enable --now"
[ "$(sd_in systemctl is-active "$UNIT")" = active ] || fail "not active after enable --now"
[ "$(sd_in systemctl is-enabled "$UNIT")" = enabled ] || fail "not enabled after enable --now"
sd_in mtdctl status >"$P/status.out" 2>&1 || { cat "$P/status.out" >&2; fail "mtdctl status"; }
grep -q mtd-agent "$P/status.out" || fail "mtdctl status does not name the agent"
sd_in mtdctl policy list | grep -qw e2e-alpha || fail "policy list lacks e2e-alpha"

# --- bash completion, installed --------------------------------------------------------------
step "bash completion"
[ "$(sd_in bash -c ". $COMPLETION && complete -p mtdctl")" = "complete -F _mtdctl mtdctl" ] ||
	fail "$COMPLETION does not register _mtdctl for mtdctl"
[ "$(complete_in st)" = status ] || fail "'mtdctl st<TAB>' does not complete to status"
[ "$(complete_in policy s)" = show ] || fail "'mtdctl policy s<TAB>' does not complete to show"
[ "$(complete_in policy show "")" = e2e-alpha ] ||
	fail "'mtdctl policy show <TAB>' does not offer the agent's service"
[ "$(complete_in quarantine e2e)" = e2e-alpha ] ||
	fail "'mtdctl quarantine e2e<TAB>' does not offer the agent's service"
offered=$(complete_in port --)
grep -qx -- --policy <<<"$offered" && grep -qx -- --skew <<<"$offered" ||
	fail "'mtdctl port --<TAB>' does not offer port's options: $offered"
# An agent that accepts and never answers (a SOCK_SEQPACKET socket nobody
# reads): nothing is offered, and the completion returns (timeout 2).
sd_in systemd-run -q --unit=e2e-silent systemd-socket-activate --seqpacket \
	-l /run/e2e-silent.sock sleep 600 || fail "systemd-run a silent socket"
for ((i = 0; i < 50; i++)); do
	sd_in test -S /run/e2e-silent.sock && break
	sleep 0.1
done
offered=$(complete_in --socket /run/e2e-silent.sock policy show "")
rc=$?
[ $rc -eq 0 ] || fail "completing against a silent agent failed or hung (exit $rc)"
[ -z "$offered" ] || fail "completing against a silent agent offered '$offered'"
sd_in systemctl stop e2e-silent.service
# no agent behind the socket: nothing offered
[ "$(complete_in --socket /run/e2e-absent.sock policy show "")" = "" ] ||
	fail "completion offers services with no agent"

# --- install again: a running agent is restarted on the new files --------------------------
step "dpkg -i again (upgrade): try-restart"
pid=$(sd_in systemctl show -P MainPID "$UNIT")
sd_in dpkg -i "/root/e2e/$(basename "$DEB")" >"$P/dpkg.log" 2>&1 || { cat "$P/dpkg.log" >&2; fail "dpkg -i again"; }
[ "$(sd_in systemctl is-active "$UNIT")" = active ] || fail "not active after the upgrade"
[ "$(sd_in systemctl show -P MainPID "$UNIT")" != "$pid" ] || fail "the upgrade did not restart the agent"
[ "$(sd_in systemctl is-enabled "$UNIT")" = enabled ] || fail "the upgrade disabled the unit"

# --- remove stops it, purge forgets it ------------------------------------------------------
step "dpkg -r, dpkg -P"
pid=$(sd_in systemctl show -P MainPID "$UNIT")
sd_in dpkg -r mtd-agent >"$P/dpkg.log" 2>&1 || { cat "$P/dpkg.log" >&2; fail "dpkg -r"; }
state=$(sd_in systemctl is-active "$UNIT")
[ "$state" = inactive ] || fail "the agent runs on after dpkg -r ($state)"
sd_in kill -0 "$pid" 2>/dev/null && fail "the agent's pid $pid survived dpkg -r"
sd_in test -e /usr/sbin/mtd-agent && fail "/usr/sbin/mtd-agent left after dpkg -r"
sd_in test -e /etc/mtd/policies/e2e-alpha.policy || fail "dpkg -r removed the administrator's policy"
sd_in dpkg -P mtd-agent >"$P/dpkg.log" 2>&1 || { cat "$P/dpkg.log" >&2; fail "dpkg -P"; }
sd_in test -L "/etc/systemd/system/multi-user.target.wants/$UNIT" &&
	fail "the enablement symlink is left after purge"
sd_log "debian package e2e ok"
