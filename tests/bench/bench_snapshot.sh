#!/bin/bash
# Snapshot verification throughput (MB/s, files/s) beside sha256sum over the
# same files, measured in the same run on a warm page cache. The tree is a
# copy of up to BENCH_SNAPSHOT_MB (300) of /usr/lib/x86_64-linux-gnu (real
# libraries under 4 MiB each, so many files), in a temp dir removed
# at exit.
set -u
cd "$(dirname "$0")/../.." || exit 1
MTDCTL=${BUILD:-build}/mtdctl
MB=${BENCH_SNAPSHOT_MB:-300}
RUNS=${BENCH_SNAPSHOT_RUNS:-3}
SRC_LIB=/usr/lib/x86_64-linux-gnu
[ -x "$MTDCTL" ] || { echo "bench_snapshot: build first ($MTDCTL)"; exit 1; }
[ -d "$SRC_LIB" ] || SRC_LIB=/usr/lib
W=$(mktemp -d /tmp/mtd-bench-snapshot.XXXXXX)
trap 'rm -rf "$W"' EXIT

# The tree: regular files and symlinks of the library dir, until MB.
mkdir -p "$W/src"
(cd "$SRC_LIB" && find . -maxdepth 3 \( -type f -o -type l \) ! -perm /6000 -printf '%s %p\n' |
	sort -k2 | awk -v max=$((MB * 1024 * 1024)) '$1 < 4194304 { t += $1; if (t > max) exit; sub(/^[0-9]+ /, ""); print }' |
	tar -cf - --no-recursion -T - | tar -C "$W/src" -xpf -)
"$MTDCTL" keygen --out "$W/k" >/dev/null || exit 1
t0=$(date +%s.%N)
"$MTDCTL" snapshot create --key "$W/k.key" "$W/src" "$W/snap" >/dev/null || exit 1
t1=$(date +%s.%N)
rm -rf "$W/src"
files=$(find "$W/snap/root" -type f | wc -l)
bytes=$(find "$W/snap/root" -type f -printf '%s\n' | awk '{ t += $1 } END { print t }')
mb=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "tree: $files files, $mb MiB (from $SRC_LIB); create took $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s"

# Warm the page cache for both contenders.
find "$W/snap/root" -type f -print0 | xargs -0 cat >/dev/null

best() { sort -g | head -n 1; }
verify_times=""
sha_times=""
for _ in $(seq "$RUNS"); do
	s=$("$MTDCTL" --json snapshot verify --pubkey "$W/k.pub" "$W/snap" |
		sed -n 's/.*"seconds": \([0-9.]*\).*/\1/p')
	[ -n "$s" ] || { echo "bench_snapshot: verify failed"; exit 1; }
	verify_times="$verify_times$s"$'\n'
	a=$(date +%s.%N)
	(cd "$W/snap/root" && find . -type f -print0 | xargs -0 sha256sum >/dev/null) || exit 1
	b=$(date +%s.%N)
	sha_times="$sha_times$(awk -v a="$a" -v b="$b" 'BEGIN { print b - a }')"$'\n'
done
v=$(printf '%s' "$verify_times" | best)
s=$(printf '%s' "$sha_times" | best)
printf '%-34s %9s %10s %10s\n' "best of $RUNS, warm cache" "seconds" "MB/s" "files/s"
printf '%-34s %9.3f %10.0f %10.0f\n' "mtdctl snapshot verify" "$v" \
	"$(awk -v b="$bytes" -v t="$v" 'BEGIN { print b / 1e6 / t }')" \
	"$(awk -v n="$files" -v t="$v" 'BEGIN { print n / t }')"
printf '%-34s %9.3f %10.0f %10.0f\n' "find | xargs sha256sum" "$s" \
	"$(awk -v b="$bytes" -v t="$s" 'BEGIN { print b / 1e6 / t }')" \
	"$(awk -v n="$files" -v t="$s" 'BEGIN { print n / t }')"
echo "(verify also checks the signature, every path, type, mode, owner and symlink, and extra files)"
