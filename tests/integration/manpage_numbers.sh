#!/bin/bash
# Every limit and default a man page states is the one the code enforces
# (issue 14, item 9). manpage_numbers.py reads each key's range ("1 to 100",
# "100ms to 1h", "/8 to /30", "at least 10s", "at most 1w", "64 to 256 hex
# digits") and "Default X" out of docs/mtd.policy.5 (roff: .BI, \-, quotes),
# and checks offline with `mtdctl policy check` that each bound is accepted and
# one past it refused with the key named, and with `mtdctl --json policy check
# --plan` that a policy leaving the key out gets the stated default; and each
# option default of docs/mtd-agent.8 against the [default] of
# `mtd-agent --help`, and mtdctl(8)'s --skew bound and --socket default. What
# it cannot read it prints ("not read: ..."); it fails
# when fewer than 80% of a page's stated numbers were checked.
# Offline: no namespace, no network, no root needed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$root/$BUILD" ;; esac
[ -x "$BUILD/mtdctl" ] && [ -x "$BUILD/mtd-agent" ] || { echo "FAIL: build first: $BUILD" >&2; exit 1; }
command -v python3 >/dev/null || { echo "SKIP [manpage_numbers]: python3 missing" >&2; exit 77; }
work=$(mktemp -d /tmp/mtd-manpage.XXXXXX)
trap 'rm -rf "$work"' EXIT
python3 "$here/manpage_numbers.py" "$root" "$BUILD" "$work" || {
	echo "FAIL [manpage_numbers]: a man page and the code disagree (above)" >&2
	exit 1
}
echo "manpage_numbers: the man pages' numbers are the parser's"
