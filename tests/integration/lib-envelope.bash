# Shared helpers of the envelope tests (bash, sourced inside the test's own
# mount + network namespaces). Builds envelope-run and the static probe, makes
# a lower directory, and removes every cgroup named $CGNAME on exit.

CHECKS=0
TEST_NAME=$(basename "$0" .sh)
fail() {
	echo "FAIL [$TEST_NAME]: $*" >&2
	exit 1
}
ok() {
	CHECKS=$((CHECKS + 1))
	echo "  ok: $*"
}

CGNAME="mtd-envtest-$$"
T=""

# Every directory named $CGNAME in any cgroup hierarchy: kill what runs in
# it (cgroup.kill, else SIGKILL per pid), then rmdir bottom-up.
envelope_remove_cgroups() {
	local d
	for d in $(find /sys/fs/cgroup -maxdepth 5 -type d -name "$CGNAME" 2>/dev/null); do
		find "$d" -depth -type d | while read -r sub; do
			[ -e "$sub/cgroup.kill" ] && echo 1 >"$sub/cgroup.kill" 2>/dev/null
			for p in $(cat "$sub/cgroup.procs" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
			for _ in $(seq 50); do rmdir "$sub" 2>/dev/null && break; sleep 0.1; done
		done
	done
}

envelope_cleanup() {
	envelope_remove_cgroups
	[ -n "$T" ] && rm -rf "$T"
}

envelope_setup() {
	command -v cc >/dev/null || { echo "skip: cc missing"; exit 77; }
	[ -x /bin/busybox ] || { echo "skip: /bin/busybox (busybox-static) missing"; exit 77; }
	T=$(mktemp -d /tmp/mtd-envtest.XXXXXX)
	chmod 0755 "$T"
	trap envelope_cleanup EXIT
	trap 'exit 1' INT TERM
	make -s -C "$root" BUILD="$BUILD" "$BUILD/tools/envelope-run" >/dev/null ||
		fail "building envelope-run"
	RUNNER=$BUILD/tools/envelope-run
	cc -static -O2 -o "$T/probe" "$root/tests/fixtures/probe.c" || fail "building the static probe"
	LOWER=$T/lower
	mkdir -p "$LOWER/bin"
	cp /bin/busybox "$LOWER/bin/busybox"
	ln -s busybox "$LOWER/bin/sh"
	cp "$T/probe" "$LOWER/probe"
	echo original >"$LOWER/lower-file"
	chmod -R a+rX "$LOWER"
	LOWER_SUM=$(lower_listing)
}

# path, mode, size and content hash of every file of the lower layer
lower_listing() {
	(cd "$LOWER" && find . -printf '%p %m %s %y\n' | sort &&
		find . -type f -exec sha256sum {} + | sort)
}

lower_unchanged() {
	[ "$(lower_listing)" = "$LOWER_SUM" ] || fail "the lower layer changed"
	[ ! -e "$LOWER/probe-wrote" ] || fail "a write reached the lower layer"
}

# run NAME [envelope-run options] -- ARGV: output (stdout+stderr) in $T/NAME
run() {
	local name=$1
	shift
	"$RUNNER" --cgroup-name "$CGNAME" --id "$name" --lower "$LOWER" --exec "$T/probe" --memfd \
		"$@" >"$T/$name" 2>&1
	echo "rc=$?" >>"$T/$name"
}

expect() {
	grep -qxF -- "$2" "$T/$1" || { sed 's/^/    | /' "$T/$1" >&2; fail "$1: expected '$2'"; }
}

envelope_no_leftovers() {
	local left
	left=$(find /sys/fs/cgroup -maxdepth 5 -name "$CGNAME" 2>/dev/null)
	[ -z "$left" ] || fail "cgroups left: $left"
}
