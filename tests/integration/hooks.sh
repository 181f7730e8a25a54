#!/bin/bash
# OnEvent= hooks (docs/hooks.md), driven by real events: a real connect to a
# decoy, control requests, reloads. The agent in a server namespace with a
# local HTTP listener (busybox httpd, a CGI that keeps each request's body),
# a client namespace that touches the decoy.
#
#   - examples/hooks/webhook POSTs the decoy-hit and source-blocked records:
#     the bodies the listener got are the audit log's lines, byte for byte
#   - web's own OnEvent=* (in its policy) runs for web's records only
#   - a hook on "*" runs as HookUser= (nobody), with no_new_privs, fds 0-2 only
#     (no audit log, no socket of the agent's), an environment of PATH and
#     MTD_EVENT_* only; its stdin is the record of MTD_EVENT_SEQ
#   - a hook exiting 1 gives hook-failed "exit status 1", its stderr is logged
#     with the hook's name; the webhook against an HTTP 500 gives hook-failed
#   - hooks that never read stdin and sleep: killed at HookTimeout=
#     (hook-failed "timeout"), and while they run the loop answers status and
#     the rotation crosses boundaries
#   - a flood beyond HookRate= gives one hook-rate-limited record per hook and
#     window; the runner's own records run no hook
#   - ten hooks for one record: 8 run, 2 wait; a HookUser= that does not exist
#     fails every hook (audited) rather than running it as root
. "$(dirname "$0")/lib.bash"
enter_private_namespaces "$@"
make_work_dir
NETPROBE=$BUILD_DIR/tools/netprobe
[ -x "$NETPROBE" ] || fail "build first: $NETPROBE"
command -v curl >/dev/null || fail "curl is missing (make deps)"
command -v busybox >/dev/null || fail "busybox is missing (make deps)"
NOBODY=$(id -u nobody) || skip "no user nobody"

setup_client_namespace
in_client "$NETPROBE" ping 10.213.0.1 9 300 2>/dev/null
"$NETPROBE" echo-server 10.213.0.1 8022 &
ECHO=$!

# --- the listener: busybox httpd, a CGI that keeps each body ----------------------
WWW=$WORK/www
BODIES=$WORK/bodies
mkdir -p "$WWW/cgi-bin" "$BODIES"
cat >"$WWW/cgi-bin/hook" <<EOF
#!/bin/sh
n=\$(ls "$BODIES" | wc -l)
head -c "\${CONTENT_LENGTH:-0}" >"$BODIES/\$n.json"
printf '%s\n' "\$HTTP_USER_AGENT" >"$BODIES/\$n.agent"
printf 'Content-Type: text/plain\r\n\r\nok\n'
EOF
cat >"$WWW/cgi-bin/broken" <<'EOF'
#!/bin/sh
cat >/dev/null
printf 'Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\nno\n'
EOF
chmod 0755 "$WWW/cgi-bin/hook" "$WWW/cgi-bin/broken"
busybox httpd -f -p 127.0.0.1:8099 -h "$WWW" &
HTTPD=$!
trap 'kill "$ECHO" "$HTTPD" 2>/dev/null; cleanup_work' EXIT
wait_for 'curl -s -o /dev/null --max-time 1 -d x http://127.0.0.1:8099/cgi-bin/hook' ||
	fail "busybox httpd does not answer on 127.0.0.1:8099"
rm -f "$BODIES"/*
ok "a local HTTP listener (busybox httpd) keeps the bodies POSTed to /cgi-bin/hook"

# --- the hooks ----------------------------------------------------------------------
OUT=$WORK/out # written by the hooks, as nobody
HOOKS=$WORK/hooks
mkdir -p "$OUT" "$HOOKS"
chmod 1777 "$OUT"
cat >"$HOOKS/record-all" <<EOF
#!/bin/sh
# every record: who runs it, what it was given, what it holds
o=$OUT/\$MTD_EVENT_SEQ
cat >"\$o.stdin"
id -u >"\$o.uid"
grep NoNewPrivs /proc/self/status >"\$o.nnp"
ls -l /proc/self/fd/ >"\$o.fds"
env >"\$o.env"
printf '%s\n' "\$MTD_EVENT_TYPE" >"\$o.type"
EOF
cat >"$HOOKS/svc" <<EOF
#!/bin/sh
# web's own OnEvent=: the records of service web only
cat >"$OUT/svc.\$MTD_EVENT_SEQ.record"
EOF
cat >"$HOOKS/fail" <<'EOF'
#!/bin/sh
echo "failing on purpose for record $MTD_EVENT_SEQ" >&2
# 100 lines of 1000 bytes: the agent logs the first 4 KiB and counts the rest
i=0
while [ $i -lt 100 ]; do printf '%01000d\n' 0; i=$((i + 1)); done
exit 1
EOF
cat >"$HOOKS/slow" <<EOF
#!/bin/sh
# never reads its stdin; leaves a child in its group too
sleep 300 &
echo \$! >"$OUT/slow-child.\$MTD_EVENT_SEQ"
exec sleep 300
EOF
chmod 0755 "$HOOKS"/*

cat >"$WORK/mtd.conf" <<CONF
[Hooks]
OnEvent=decoy-hit,source-blocked $REPO/examples/hooks/webhook http://127.0.0.1:8099/cgi-bin/hook
OnEvent=source-blocked $REPO/examples/hooks/webhook http://127.0.0.1:8099/cgi-bin/broken
OnEvent=* $HOOKS/record-all  # everything
OnEvent=policy-reload $HOOKS/fail
OnEvent=control-request $HOOKS/slow
HookTimeout=5s
HookRate=6/1h
CONF

write_key "$WORK/keys/web.key"
cat >"$WORK/policies/web.policy" <<EOF
[Service]
Name=web
Backend=10.213.0.1:8022
OnEvent=* $HOOKS/svc

[Rotation]
PublicPorts=20000-20099
Interval=3600s
KeyFile=$WORK/keys/web.key
Decoys=8
DecoyBlock=10min
EOF
write_key "$WORK/keys/fast.key"
cat >"$WORK/policies/fast.policy" <<EOF
[Service]
Name=fast
Backend=10.213.0.1:8022

[Rotation]
PublicPorts=21000-21999
Interval=1s
KeyFile=$WORK/keys/fast.key
EOF
"$MTDCTL" policy check --config "$WORK/mtd.conf" "$WORK/policies" >/dev/null ||
	fail "policy check refuses the global file: $("$MTDCTL" policy check --config "$WORK/mtd.conf" "$WORK/policies" 2>&1)"
start_agent --config "$WORK/mtd.conf"

status() { mtdctl --json status | tr -d ' \n'; }
decoy_of() { status | sed -n "s/.*\"name\":\"$1\",[^]]*\"decoys\":\[\([0-9]*\).*/\1/p"; }
epoch_of() { status | sed -n "s/.*\"name\":\"$1\",\"epoch\":\([0-9]*\).*/\1/p"; }
hooks_json() { status | sed -n 's/.*"hooks":\({[^}]*}\).*/\1/p'; }
audit_lines() { grep -h "\"type\":\"$1\"" "$WORK/log/audit.log"*; }
line_of_seq() { grep -h "\"seq\":$1," "$WORK/log/audit.log"*; }

# --- the hook on "*": sandbox and input ----------------------------------------------
start_seq=$(audit_lines agent-start | tail -n 1 | sed -n 's/.*"seq":\([0-9]*\),.*/\1/p')
[ -n "$start_seq" ] || fail "no agent-start record in the audit log"
wait_for "[ -s '$OUT/$start_seq.type' ]" 100 || fail "the * hook did not run for agent-start (seq $start_seq): $(ls "$OUT")"
[ "$(cat "$OUT/$start_seq.type")" = agent-start ] || fail "MTD_EVENT_TYPE: $(cat "$OUT/$start_seq.type")"
[ "$(cat "$OUT/$start_seq.stdin")" = "$(line_of_seq "$start_seq")" ] ||
	fail "the hook's stdin is not the record: $(cat "$OUT/$start_seq.stdin") vs $(line_of_seq "$start_seq")"
ok "a hook on * gets the agent-start record (seq $start_seq) on stdin, byte for byte, and MTD_EVENT_TYPE"
[ "$(cat "$OUT/$start_seq.uid")" = "$NOBODY" ] || fail "the hook ran as uid $(cat "$OUT/$start_seq.uid"), not nobody ($NOBODY)"
assert_contains "$(cat "$OUT/$start_seq.nnp")" "NoNewPrivs:	1" "the hook runs as nobody ($NOBODY) with no_new_privs"
fds=$(cat "$OUT/$start_seq.fds")
case $fds in *socket:* | *audit* | *control* | *pidfd* | *anon_inode*)
	fail "the hook inherited the agent's fds: $fds" ;;
esac
n_fds=$(grep -c -- '->' <<<"$fds")
[ "$n_fds" -le 4 ] || fail "the hook has $n_fds fds (0-2 and ls's own directory expected): $fds"
ok "the hook holds fds 0-2 only (no socket, no audit log, no pidfd of the agent's)"
env_vars=$(cut -d= -f1 "$OUT/$start_seq.env" | sort | tr '\n' ' ')
[ "$env_vars" = "MTD_EVENT_SEQ MTD_EVENT_TYPE PATH PWD " ] ||
	fail "the hook's environment is not PATH and MTD_EVENT_* (and the shell's PWD): $env_vars"
ok "the hook's environment: PATH, MTD_EVENT_TYPE, MTD_EVENT_SEQ, nothing of the agent's"

# --- the webhook: a real connect to a decoy -------------------------------------------
d=$(decoy_of web)
[ -n "$d" ] || fail "no decoy of web in status: $(status)"
in_client env NETPROBE_SOURCE=10.213.0.2 "$NETPROBE" connect 10.213.0.1 "$d" 1000 ||
	fail "web's decoy $d does not complete a handshake"
wait_for '[ -n "$(audit_lines source-blocked)" ]' || fail "the decoy hit blocked nobody"
wait_for '[ "$(ls "$BODIES" | grep -c json)" -ge 2 ]' 100 ||
	fail "the webhook did not deliver decoy-hit and source-blocked: $(ls "$BODIES")"
for type in decoy-hit source-blocked; do
	want=$(audit_lines "$type" | tail -n 1)
	got=""
	for f in "$BODIES"/*.json; do
		grep -q "\"type\":\"$type\"" "$f" && got=$(cat "$f")
	done
	[ "$got" = "$want" ] || fail "the $type body is not the audit record:
got:  $got
want: $want"
	seq=$(sed -n 's/.*"seq":\([0-9]*\),.*/\1/p' <<<"$want")
	assert_contains "$got" '"source":"10.213.0.2"' "the $type record (seq $seq) POSTed by examples/hooks/webhook is the audit line, fields and all"
done
assert_contains "$(cat "$BODIES"/*.agent)" "mtd-agent-hook/source-blocked" "the webhook's User-Agent names the event type"
# the same record to a listener answering 500: the example fails, the agent audits it
blocked_seq=$(audit_lines source-blocked | tail -n 1 | sed -n 's/.*"seq":\([0-9]*\),.*/\1/p')
wait_for '[ -n "$(audit_lines hook-failed | grep "\"event_seq\":$blocked_seq,")" ]' 100 ||
	fail "the webhook's HTTP 500 was not audited as hook-failed: $(audit_lines hook-failed)"
rec=$(audit_lines hook-failed | grep "\"event_seq\":$blocked_seq,")
assert_contains "$rec" "\"hook\":\"$REPO/examples/hooks/webhook\"" "hook-failed names the program"
assert_contains "$rec" '"reason":"exit status 22"' "an HTTP 500 fails the webhook (curl --fail, 22): hook-failed names event seq $blocked_seq, type and reason"
assert_contains "$rec" '"event_type":"source-blocked"' "hook-failed names the event type"

# --- a policy's own OnEvent=: its service's records only ---------------------------
blocked_seq=$(audit_lines source-blocked | tail -n 1 | sed -n 's/.*"seq":\([0-9]*\),.*/\1/p')
hit_seq=$(audit_lines decoy-hit | tail -n 1 | sed -n 's/.*"seq":\([0-9]*\),.*/\1/p')
wait_for "[ -s '$OUT/svc.$blocked_seq.record' ] && [ -s '$OUT/svc.$hit_seq.record' ]" 100 ||
	fail "web's OnEvent=* did not run for web's source-blocked ($blocked_seq) and decoy-hit ($hit_seq): $(ls "$OUT" | grep svc)"
for f in "$OUT"/svc.*.record; do
	grep -q '"service":"web"' "$f" || fail "web's own hook ran for a record of no service or another: $(cat "$f")"
done
[ ! -e "$OUT/svc.$start_seq.record" ] || fail "web's own hook ran for agent-start"
ok "web's own OnEvent=* runs for web's records only ($(ls "$OUT" | grep -c 'svc\..*\.record') of them), not for agent-start"

# --- a failing hook, its output in the log ---------------------------------------------
mtdctl reload >/dev/null || fail "reload"
reload_seq=$(audit_lines policy-reload | tail -n 1 | sed -n 's/.*"seq":\([0-9]*\),.*/\1/p')
wait_for '[ -n "$(audit_lines hook-failed | grep "\"event_seq\":$reload_seq,")" ]' 100 ||
	fail "a hook exiting 1 was not audited: $(audit_lines hook-failed)"
rec=$(audit_lines hook-failed | grep "\"event_seq\":$reload_seq,")
assert_contains "$rec" "\"hook\":\"$HOOKS/fail\"" "hook-failed names the program"
assert_contains "$rec" '"reason":"exit status 1"' "a hook exiting 1 gives hook-failed, exit status 1"
wait_for 'grep -q "hook $HOOKS/fail\[[0-9]*\]: failing on purpose for record $reload_seq" "$AGENT_LOG"' ||
	fail "the hook's stderr is not in the agent's log: $(tail -n 5 "$AGENT_LOG")"
ok "the hook's stderr is in the agent's log, prefixed with the hook and its pid"
pid=$(sed -n "s|.*hook $HOOKS/fail\[\([0-9]*\)\]: failing on purpose for record $reload_seq\$|\1|p" "$AGENT_LOG")
wait_for 'grep -q "hook $HOOKS/fail\[$pid\]: (96[0-9][0-9][0-9] more bytes of output not logged)" "$AGENT_LOG"' ||
	fail "the hook's output past 4 KiB was not cut and counted: $(grep -c "$HOOKS/fail\[$pid\]" "$AGENT_LOG") lines"
n=$(grep "hook $HOOKS/fail\[$pid\]: " "$AGENT_LOG" | grep -v "more bytes of output not logged" |
	sed "s|^.*hook $HOOKS/fail\[$pid\]: ||" | wc -c) # with a newline per line
[ "$n" -le 4200 ] && [ "$n" -ge 4096 ] || fail "$n bytes of the hook's output logged, want 4 KiB"
ok "a hook's output is logged up to 4 KiB a run, the rest counted: $(grep -o "([0-9]* more bytes of output not logged)" "$AGENT_LOG" | head -n 1)"

# --- hooks that never read their stdin: the loop goes on, the timeout kills ----------
# The reload above started one slow hook (control-request); two more now.
mtdctl reload >/dev/null
mtdctl reload >/dev/null
wait_for '[ "$(ls "$OUT" | grep -c slow-child)" -ge 3 ]' 100 || fail "the slow hooks did not start: $(ls "$OUT")"
running=$(hooks_json | sed -n 's/.*"running":\([0-9]*\).*/\1/p')
[ "${running:-0}" -ge 1 ] || fail "no hook running while the slow ones sleep: $(hooks_json)"
e0=$(epoch_of fast)
wait_for '[ "$(epoch_of fast)" -ge $((e0 + 2)) ]' 100 ||
	fail "the rotation of fast did not cross two boundaries while hooks ran: epoch $e0 -> $(epoch_of fast)"
running=$(hooks_json | sed -n 's/.*"running":\([0-9]*\).*/\1/p')
[ "${running:-0}" -ge 1 ] || fail "the slow hooks ended before two boundaries passed (HookTimeout=5s): $(hooks_json)"
ok "while $running hooks that never read stdin run, status answers and fast crossed two boundaries (epoch $e0 -> $(epoch_of fast))"
slow_seq=$(audit_lines control-request | tail -n 1 | sed -n 's/.*"seq":\([0-9]*\),.*/\1/p')
wait_for '[ -n "$(audit_lines hook-failed | grep "\"event_seq\":$slow_seq,")" ]' 150 ||
	fail "a hook past HookTimeout= was not audited: $(audit_lines hook-failed | tail -n 3)"
rec=$(audit_lines hook-failed | grep "\"event_seq\":$slow_seq,")
assert_contains "$rec" '"reason":"timeout: killed after HookTimeout=5s"' "a hook past HookTimeout=5s is killed, hook-failed says timeout"
for f in "$OUT"/slow-child.*; do
	pid=$(cat "$f")
	wait_for "! kill -0 $pid 2>/dev/null" 50 || fail "the slow hook's own child $pid outlived it (its group was not killed)"
done
ok "the children a slow hook left in its process group are killed with it"

# --- a flood beyond HookRate=6/1h --------------------------------------------------------
for _ in $(seq 1 10); do
	mtdctl reload >/dev/null || fail "reload during the flood"
	mtdctl status >/dev/null || fail "status does not answer during the flood"
done
wait_for '[ "$(audit_lines hook-rate-limited | grep -c "$HOOKS/fail")" -ge 1 ]' 100 ||
	fail "13 reloads, HookRate=6/1h: no hook-rate-limited for the fail hook: $(audit_lines hook-rate-limited)"
for h in fail slow record-all; do
	n=$(audit_lines hook-rate-limited | grep -c "\"hook\":\"$HOOKS/$h\"")
	[ "$n" -eq 1 ] || fail "$h: $n hook-rate-limited records in one window, want 1: $(audit_lines hook-rate-limited)"
done
rec=$(audit_lines hook-rate-limited | grep "$HOOKS/fail")
assert_contains "$rec" '"limit":6' "hook-rate-limited says the limit"
assert_contains "$rec" '"interval":"1h"' "hook-rate-limited says the window"
n_fail=$(audit_lines hook-failed | grep -c "\"hook\":\"$HOOKS/fail\"")
[ "$n_fail" -eq 6 ] || fail "the fail hook ran $n_fail times for 13 reloads, want 6 (HookRate=6/1h)"
n_all=$(ls "$OUT" | grep -c '\.type$')
[ "$n_all" -eq 6 ] || fail "the * hook ran $n_all times, want 6 (HookRate=6/1h)"
grep -l 'hook-' "$OUT"/*.type && fail "a hook ran for the runner's own records"
ok "a flood beyond HookRate=6/1h: each hook ran 6 times, one hook-rate-limited per hook; hook records ran no hook"
assert_contains "$(hooks_json)" '"rate_limited":' "status counts what was rate limited: $(hooks_json)"

# --- at most 8 hooks at once, the rest wait --------------------------------------------
# (HookTimeout=3s: the 8 are seen running, then killed, then the 2 run)
{
	printf '[Hooks]\nHookTimeout=3s\n'
	for i in 1 2 3 4 5 6 7 8 9 10; do printf 'OnEvent=control-request %s %s\n' "$HOOKS/slow" "$i"; done
} >"$WORK/mtd.conf"
mtdctl reload >/dev/null || fail "reload with ten slow hooks"
wait_for '[ "$(hooks_json | sed -n "s/.*\"running\":\([0-9]*\).*/\1/p")" = 0 ]' 100 ||
	fail "the earlier hooks did not end: $(hooks_json)"
mtdctl reload >/dev/null || fail "reload"
wait_for 'hooks_json | grep -q "\"running\":8,\"queued\":2,"' 50 ||
	fail "ten slow hooks for one record: want 8 running and 2 queued: $(hooks_json)"
ok "ten hooks for one record: 8 run at once, 2 wait ($(hooks_json))"
wait_for 'hooks_json | grep -q "\"running\":0,\"queued\":0,"' 200 ||
	fail "the queued hooks did not run and end: $(hooks_json)"
ok "the waiting hooks ran when the first ones ended"

# --- HookUser= that does not exist: every hook fails, none runs as root ---------------
printf '[Hooks]\nHookUser=no-such-user-mtd\nOnEvent=policy-reload %s\n' "$HOOKS/record-all" >"$WORK/mtd.conf"
rm -f "$OUT"/*.type
mtdctl reload >/dev/null || fail "reload with HookUser=no-such-user-mtd"
mtdctl reload >/dev/null || fail "reload"
reload_seq=$(audit_lines policy-reload | tail -n 1 | sed -n 's/.*"seq":\([0-9]*\),.*/\1/p')
wait_for '[ -n "$(audit_lines hook-failed | grep "\"event_seq\":$reload_seq,")" ]' 100 ||
	fail "a hook with a HookUser= that does not exist was not audited"
assert_contains "$(audit_lines hook-failed | grep "\"event_seq\":$reload_seq,")" \
	'"reason":"HookUser=no-such-user-mtd: no such user"' "a HookUser= that does not exist fails every hook, audited"
[ -z "$(ls "$OUT" | grep '\.type$')" ] || fail "a hook ran although HookUser= does not exist"

# --- a bad [Hooks] refuses the reload with file:line ---------------------------------
printf '[Hooks]\nHookTimeout=1s\nOnEvent=decoy-hit webhook\n' >"$WORK/mtd.conf"
assert_contains "$(mtdctl --json reload 2>&1)" "mtd.conf:3" "a bad OnEvent= refuses the reload, naming file and line"

stop_agent || fail "the agent did not stop cleanly"
ok "the agent stops cleanly"
echo "PASS [$TEST_NAME]: $CHECKS checks"
