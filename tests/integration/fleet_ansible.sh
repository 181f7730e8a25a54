#!/bin/bash
# The fleet playbook of docs/fleet.md (examples/ansible/mtd-fleet.yml):
#   - `ansible-playbook --syntax-check` accepts it (and refuses a copy with a
#     misspelt module: the check can fail);
#   - its templates, rendered by Ansible with the example's group_vars, give a
#     policy set and global file that `mtdctl policy check` accepts.
# Offline: no namespace, no network, nothing of the host changed (Ansible's
# own temporary files go to the work directory).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$root/$BUILD" ;; esac
fail() { echo "FAIL [fleet_ansible]: $*" >&2; exit 1; }
[ -x "$BUILD/mtdctl" ] || fail "build first: $BUILD/mtdctl"
command -v ansible-playbook >/dev/null || fail "ansible-playbook missing: run 'make deps' (ansible-core)"
EX=$root/examples/ansible
W=$(mktemp -d /tmp/mtd-ansible.XXXXXX)
trap 'rm -rf "$W"' EXIT
# Ansible keeps its state and temporary files in the work directory
export ANSIBLE_HOME=$W/ansible ANSIBLE_LOCAL_TEMP=$W/tmp ANSIBLE_NOCOLOR=1

out=$(cd "$EX" && timeout 120 ansible-playbook --syntax-check -i inventory.ini mtd-fleet.yml 2>&1) ||
	fail "the playbook fails its syntax check: $out"
echo "  ok: ansible-playbook --syntax-check accepts examples/ansible/mtd-fleet.yml"

cp -r "$EX" "$W/broken"
sed -i '0,/ansible.builtin.template:/s//ansible.builtin.templat:/' "$W/broken/mtd-fleet.yml"
out=$(cd "$W/broken" && timeout 120 ansible-playbook --syntax-check -i inventory.ini mtd-fleet.yml 2>&1) &&
	fail "a misspelt module passed the syntax check"
echo "$out" | grep -q "templat" || fail "the refusal does not name the misspelt module: $out"
echo "  ok: the same check refuses a copy with a misspelt module"

mkdir -p "$W/keys" "$W/policies"
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$W/keys/web.key"
chmod 0600 "$W/keys/web.key"
render() { # TEMPLATE DEST
	(cd "$EX" && timeout 120 ansible localhost -i localhost, -c local -m ansible.builtin.template \
		-a "src=$1 dest=$2" -e @group_vars/all.yml -e "mtd_keys_dir=$W/keys" >"$W/render.log" 2>&1) ||
		fail "rendering $1: $(cat "$W/render.log")"
}
render templates/web.policy.j2 "$W/policies/web.policy"
render templates/mtd.conf.j2 "$W/mtd.conf"
grep -q "^NeverBlock=10.0.0.0/24$" "$W/mtd.conf" || fail "the global file: $(cat "$W/mtd.conf")"
out=$("$BUILD/mtdctl" policy check --config "$W/mtd.conf" "$W/policies" 2>&1) ||
	fail "the rendered set is refused: $out"
echo "  ok: the playbook's templates render a policy set and global file mtdctl policy check accepts"
