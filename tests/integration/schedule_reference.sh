#!/bin/bash
# docs/schedule.md's Python reference, as printed, gives the doc's vectors
# (schedule_reference.py says which ones). Offline: no namespace, no root.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
command -v python3 >/dev/null || { echo "SKIP [schedule_reference]: python3 missing" >&2; exit 77; }
python3 "$here/schedule_reference.py" "$root" || exit 1
echo "schedule_reference: the doc's reference gives the doc's vectors 1 to 6"
