#!/bin/bash
# mtdctl's command line: every command listed by `mtdctl --help` answers
# `COMMAND --help` with its own usage and exit 0 (two-word commands too), and
# a wrong word is a one-line usage error with exit 2. No agent is needed.
source "$(dirname "$0")/lib.bash"
[ -x "$MTDCTL" ] || fail "build first: $MTDCTL"

help=$("$MTDCTL" --help) || fail "mtdctl --help exited $?"
# The command names: the words of each command line before its arguments.
mapfile -t names < <(printf '%s\n' "$help" | awk '
	/^Commands/ { in_commands = 1; next }
	/^Options/ { in_commands = 0 }
	in_commands && /^  [a-z]/ {
		line = substr($0, 3)
		sub(/  .*/, "", line)          # the summary follows two spaces
		n = split(line, words, " ")
		name = words[1]
		if (n >= 2 && words[2] ~ /^[a-z]+$/) name = name " " words[2]
		if (!seen[name]++) print name
	}')
[ "${#names[@]}" -ge 18 ] || fail "only ${#names[@]} commands found in mtdctl --help"

for name in "${names[@]}"; do
	# shellcheck disable=SC2086 # two-word names split on purpose
	out=$("$MTDCTL" $name --help 2>/dev/null)
	rc=$?
	[ $rc -eq 0 ] || fail "mtdctl $name --help exited $rc: $out"
	printf '%s\n' "$out" | head -n 1 | grep -q "^usage: mtdctl .* $name" ||
		fail "mtdctl $name --help does not print its usage on stdout: $out"
	# The same row of the table gives both: the form of `mtdctl --help`
	# (first line of the command there) is the one COMMAND --help shows.
	form=$(printf '%s\n' "$help" | grep -m 1 "^  $name\( \|$\)" | sed 's/^  //; s/  .*//')
	printf '%s\n' "$out" | head -n 1 | grep -qF -- "] $form" ||
		fail "mtdctl $name --help: '$(printf '%s\n' "$out" | head -n 1)' lacks '$form'"
done
ok "${#names[@]} commands answer COMMAND --help with their usage from --help, exit 0"

# A group word alone with --help lists its commands.
out=$("$MTDCTL" audit --help) || fail "mtdctl audit --help exited $?"
for sub in show init verify; do
	printf '%s\n' "$out" | grep -q "audit $sub" || fail "audit --help lacks 'audit $sub': $out"
done
ok "a group's --help lists its subcommands"

check_usage_error() {
	local expect=$1
	shift
	local out rc
	out=$("$MTDCTL" "$@" 2>&1)
	rc=$?
	[ $rc -eq 2 ] || fail "mtdctl $* exited $rc, not 2: $out"
	[ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || fail "mtdctl $*: more than one line: $out"
	printf '%s\n' "$out" | grep -q -- "$expect" || fail "mtdctl $*: '$out' lacks '$expect'"
}
check_usage_error "unknown command 'bogus'" bogus
check_usage_error "unknown subcommand 'bogus'; expected list, show, check" policy bogus
check_usage_error "audit: expected show, init, verify" audit
check_usage_error "status takes no arguments" status extra
check_usage_error "audit show: unexpected argument '--bogus'" audit show --bogus
ok "wrong words are one-line usage errors, exit 2"

# A two-word command's arguments start after its second word: each parses
# exactly what follows it (an off-by-one would take the word itself, or skip
# the first argument).
check_usage_error "policy list takes no arguments" policy list extra
check_usage_error "policy show: expected one service name" policy show a b
check_usage_error "audit init: unexpected argument 'x'" audit init x
check_usage_error "audit verify: unknown option '--bogus'" audit verify --bogus
check_usage_error "snapshot create: expected SRC DEST" snapshot create --key k a
check_usage_error "snapshot verify: unexpected argument 'b'" snapshot verify --pubkey p a b
"$MTDCTL" policy check "$REPO/policies/examples" >/dev/null ||
	fail "mtdctl policy check policies/examples exited $?"
ok "two-word commands parse the arguments after their second word"
echo "$TEST_NAME: $CHECKS checks passed"
