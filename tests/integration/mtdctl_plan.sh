#!/bin/bash
# mtdctl policy check --plan: on the example policies (a managed service with
# decoys, a host service, a managed UDP one), each port it prints now, in
# grace and from the next boundary is the one `mtdctl port --at` computes for
# that time; the envelope, backend and limits are the policy's; nothing is
# applied (no nftables table appears in the namespace); a set that does not
# load fails exactly as `policy check` does. No agent.
source "$(dirname "$0")/lib.bash"
enter_private_namespaces
make_work_dir

command -v jq >/dev/null || skip "needs jq"
[ -z "$(nft list tables)" ] || fail "the new network namespace already has tables"

# The examples with their keys closed to others (a KeyFile= must be).
dir=$WORK/policies
cp -r "$REPO/policies/examples/." "$dir/"
chmod 0600 "$dir"/keys/*.key

# 5 s after a boundary of every example (30 s, 1 min, 5 min intervals):
# inside each one's grace (10 s, 15 s, 1 min).
at=1796651405 # 2026-12-07 13:50:05 UTC
plan=$("$MTDCTL" --json policy check --plan "$dir" --at "@$at") ||
	fail "policy check --plan --json exited $?: $plan"
[ "$(jq -r .ok <<<"$plan")" = true ] || fail "plan not ok: $plan"
[ "$(jq -r .at_usec <<<"$plan")" = "${at}000000" ] || fail "at_usec is not --at: $plan"
[ "$(jq -r '.services | map(.service) | join(",")' <<<"$plan")" = "dns,ssh,web" ] ||
	fail "services: $(jq -c '.services | map(.service)' <<<"$plan")"
ok "--plan --json lists every service of the examples"

port_at() { # SERVICE UNIX_SECONDS
	"$MTDCTL" port "$1" --policy "$dir" --at "@$2" 2>/dev/null
}
for service in dns ssh web; do
	s=$(jq -c --arg s "$service" '.services[] | select(.service == $s)' <<<"$plan")
	interval=$(jq -r .policy.rotation.interval_usec <<<"$s")
	grace=$(jq -r .policy.rotation.grace_usec <<<"$s")
	boundary=$(jq -r .schedule.now.boundary_usec <<<"$s")
	next_boundary=$(jq -r .schedule.now.next_boundary_usec <<<"$s")
	now_port=$(jq -r .schedule.now.port <<<"$s")
	next_port=$(jq -r .schedule.next.port <<<"$s")
	grace_port=$(jq -r .schedule.now.grace_port <<<"$s")

	# The epoch arithmetic: at lies in [boundary, next boundary), one interval.
	[ $((boundary % interval)) -eq 0 ] && [ "$boundary" -le "${at}000000" ] &&
		[ "${at}000000" -lt "$next_boundary" ] &&
		[ $((next_boundary - boundary)) -eq "$interval" ] ||
		fail "$service: boundary $boundary, next $next_boundary, interval $interval, at $at"
	[ "$(jq -r .schedule.next.boundary_usec <<<"$s")" = "$next_boundary" ] ||
		fail "$service: the next epoch does not start at the next boundary: $s"
	[ "$(jq -r .schedule.next.epoch <<<"$s")" = \
		$(($(jq -r .schedule.now.epoch <<<"$s") + 1)) ] || fail "$service: next epoch: $s"

	# The ports: what a client computes for the same times.
	want=$(port_at "$service" "$at") || fail "$service: mtdctl port --at @$at failed"
	[ "$now_port" = "$want" ] || fail "$service: plan says $now_port now, mtdctl port $want"
	want=$(port_at "$service" $((next_boundary / 1000000))) || fail "$service: port at next"
	[ "$next_port" = "$want" ] ||
		fail "$service: plan says $next_port next, mtdctl port at the boundary $want"
	prev=$(port_at "$service" $((boundary / 1000000 - 1))) || fail "$service: port before"
	# at is 5 s past the boundary, inside every example's grace.
	[ $((at * 1000000 - boundary)) -lt "$grace" ] || fail "$service: at is not in grace"
	if [ "$prev" != "$now_port" ]; then
		[ "$grace_port" = "$prev" ] ||
			fail "$service: grace port $grace_port, the previous epoch's port is $prev"
	else
		[ "$grace_port" = 0 ] || fail "$service: grace port $grace_port equals the port"
	fi
	[ "$(jq -r .schedule.next.grace_port <<<"$s")" = "$([ "$now_port" != "$next_port" ] &&
		echo "$now_port" || echo 0)" ] || fail "$service: next grace port: $s"

	# Decoys: Decoys= of them, none a port a client tries now or next.
	decoys=$(jq -r .policy.rotation.decoys <<<"$s")
	for when in now next; do
		[ "$(jq ".schedule.$when.decoys | length" <<<"$s")" = "$decoys" ] ||
			fail "$service: $when: not $decoys decoys: $s"
		jq -e --argjson p "$now_port" --argjson n "$next_port" \
			".schedule.$when.decoys | all(. != \$p and . != \$n)" <<<"$s" >/dev/null ||
			fail "$service: a decoy is the port: $s"
	done
done
ok "ports now, in grace and from the next boundary match mtdctl port --at, decoys as many as Decoys="

# The human form says the same, with the one-line offline caveat.
text=$("$MTDCTL" policy check --plan "$dir" --at "@$at") || fail "--plan exited $?: $text"
grep -q "^note: .*bound on its host.*not known offline" <<<"$text" ||
	fail "no line saying host-bound ports are not known offline: $text"
web_port=$(jq -r '.services[] | select(.service == "web") | .schedule.now.port' <<<"$plan")
for line in "^web (managed service" "^  port now:    $web_port " "^ssh (host service" \
	"^  backend:     127.0.0.1:22$" "^  snapshot:    /var/lib/mtd/snapshots/web$" \
	"^  exec:        /usr/sbin/nginx -g 'daemon off; master_process on;'$" \
	"^  user:        root (no User=), group (the user's)$" \
	"^  egress:      udp/53 192.0.2.53/32, tcp/443 198.51.100.0/24$" \
	"^  cgroup:      MemoryMax=256M TasksMax=64 CPUQuota=50%$" \
	"^  lifetime:    MaxLifetime=15min MaxLifetimeJitter=2min StandbyInstances=1$" \
	"^  response:    OnCompromise=quarantine OnUnhealthy=kill$" \
	"^  limits:      ReplaceBurst=5 ReplaceInterval=1min DecoyBlock=10min$" \
	"^  syscalls:    @system-service (others: errno; on a violation: quarantine"; do
	grep -q -- "$line" <<<"$text" || fail "the plan lacks '$line': $text"
done
ok "the human plan shows ports, envelope, backend and limits, and the offline caveat"

[ -z "$(nft list tables)" ] || fail "--plan created nftables tables: $(nft list tables)"
ok "nothing applied: no nftables table in the namespace"

# A set that does not load (a range overlapping web's, no KeyFile=; a key
# open to others): the same output and status as policy check.
printf '[Service]\nName=web2\nBackend=127.0.0.1:80\n[Rotation]\nPublicPorts=20000-20010\n' \
	>"$dir/bad.policy"
chmod 0644 "$dir/keys/ssh.key"
for json in "" --json; do
	# shellcheck disable=SC2086 # empty or one word
	want=$("$MTDCTL" $json policy check "$dir" 2>&1)
	want_rc=$?
	# shellcheck disable=SC2086
	got=$("$MTDCTL" $json policy check --plan "$dir" --at "@$at" 2>&1)
	got_rc=$?
	[ "$want_rc" -ne 0 ] || fail "policy check passed a bad set: $want"
	[ "$got_rc" = "$want_rc" ] && [ "$got" = "$want" ] ||
		fail "--plan $json on a bad set: exit $got_rc '$got', policy check: exit $want_rc '$want'"
done
ok "a set that does not load: --plan prints and exits as policy check ($want_rc)"

check_usage() { # EXPECT ARGS...
	local expect=$1 out rc
	shift
	out=$("$MTDCTL" policy check "$@" 2>&1)
	rc=$?
	[ $rc -eq 2 ] && grep -q -- "$expect" <<<"$out" || fail "policy check $*: exit $rc: $out"
}
check_usage "--plan takes one directory" --plan "$dir" "$dir"
check_usage "--at goes with --plan" --at @0 "$dir"
check_usage "--at: 'x' is not a time" --plan "$dir" --at x
ok "usage errors exit 2"
echo "$TEST_NAME: $CHECKS checks passed"
