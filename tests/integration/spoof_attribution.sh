#!/bin/bash
# A hostile instance frames its neighbour. Instance "a" (tests/fixtures/probe
# spoof, static, unprivileged) sends UDP with the addresses of instance "b"
# (and the rest of b's pools) as its source, bound with IP_FREEBIND and
# IPV6_FREEBIND, which need no privilege. Checks, on the agent's side: every
# such packet is dropped as spoofed by a's envelope, charged to a (the link it
# came in on), so a crosses EgressAlertThreshold= and is replaced, while b,
# whose address was written on the packets, is never charged, replaced or
# quarantined. IPv4 and IPv6.
. "$(dirname "$0")/lib.bash"
command -v cc >/dev/null || skip "cc is missing"
enter_private_namespaces "$@"
make_work_dir
setup_client_namespace

make_probe_snapshot

VICTIM4="10.215.0.0 10.215.0.1 10.215.0.2 10.215.0.3"
VICTIM6="fd00:215:: fd00:215::1 fd00:215::2 fd00:215::3"
write_service() { # NAME PORTS POOL4 POOL6 EXEC
	write_probe_service "$1" "$2" "$5" "[Service] User=probe" "[Rotation] AddressPool=$3" \
		"[Rotation] AddressPool=$4" "SystemCalls=@network-io" "EgressAlertThreshold=5"
}
write_service b 21000-21999 10.215.0.0/30 fd00:215::/126 "/bin/probe sleep"
# shellcheck disable=SC2086
write_service a 22000-22999 10.216.0.0/24 fd00:216::/120 \
	"/bin/probe spoof 10.213.0.2 fd00:213::2 9999 3 $VICTIM4 $VICTIM6"
"$MTDCTL" policy check "$WORK/policies" >/dev/null || fail "the test policies do not validate"

start_agent
instance_of() { # SERVICE: the id of its instance
	json_instances | sed 's/},{/}\n{/g' | grep "\"service\":\"$1\"" | head -n 1 |
		sed -n 's/.*"id":"\([^"]*\)".*/\1/p'
}
wait_for '[ -n "$(instance_of b)" ]' 100 || fail "b never started: $(mtdctl instances)"
victim=$(instance_of b)
victim_addresses=$(json_instances | sed 's/},{/}\n{/g' | grep "\"id\":\"$victim\"")

wait_for 'mtdctl audit show | grep "instance-replace" | grep -q "\"service\":\"a\""' 150 ||
	fail "a sent $(echo $VICTIM4 $VICTIM6 | wc -w)x3 spoofed packets and was not replaced: $(mtdctl audit show | tail -n 5)"
log=$(mtdctl audit show)
replace=$(printf '%s\n' "$log" | grep "instance-replace" | grep '"service":"a"' | head -n 1)
assert_contains "$replace" '"reason":"egress"' "a is replaced for its egress"
assert_contains "$replace" '"spoofed":true' "the evidence says the source was spoofed"
assert_contains "$replace" '"link":"mtdi' "the evidence names the link the packets came in on"
# give any wrong attribution time to add up for b
sleep 2
log=$(mtdctl audit show)
printf '%s\n' "$log" | grep -E "instance-replace|instance-quarantined|egress" | grep -q '"service":"b"' &&
	fail "b was charged for packets a sent with its address: $(printf '%s\n' "$log" | grep '"service":"b"' | tail -n 3)"
[ "$(instance_of b)" = "$victim" ] || fail "b's instance changed: $victim -> $(instance_of b)"
case "$victim_addresses" in *10.215.0.*fd00:215:*) ;; *) fail "b's addresses are not in the spoofed range: $victim_addresses" ;; esac
ok "b ($victim, whose addresses a wrote on its packets) is never charged, replaced or quarantined"
echo "$TEST_NAME: $CHECKS checks passed"
