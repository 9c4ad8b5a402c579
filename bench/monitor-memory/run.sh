#!/usr/bin/env bash
# Memory of idle per-container monitors: starts N `sleep` containers with berth under private
# roots, then reads /proc/<monitor>/smaps_rollup of each container's monitor (the parent of its
# init): RSS, PSS and USS (Private_Clean + Private_Dirty). Removes everything it made.
# Usage (root): bench/monitor-memory/run.sh [N]   (BERTH=path/to/berth, default target/release)
# berth-monitor is taken from beside BERTH: build it with scripts/build-monitor.sh and copy it
# there to measure the shipping (static) build.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-200}
berth=${BERTH:-target/release/berth}
name=berth-bench-$$
root=/tmp/$name/root run_root=/run/$name
b() { "$berth" --root "$root" --run-root "$run_root" "$@"; }
cleanup() {
  b ps -aq --no-trunc 2>/dev/null | xargs -r "$berth" --root "$root" --run-root "$run_root" rm -f >/dev/null 2>&1 || true
  rm -rf "/tmp/$name" "$run_root"
}
trap cleanup EXIT
mkdir -p "/tmp/$name/rootfs/bin"
cp /bin/busybox "/tmp/$name/rootfs/bin/busybox"
ln -s busybox "/tmp/$name/rootfs/bin/sleep"
tar -C "/tmp/$name/rootfs" -c . | b import - bench >/dev/null
for _ in $(seq "$n"); do b run -d bench sleep 100000 >/dev/null; done
sleep 1
for id in $(b ps -q --no-trunc); do
  pid=$(b inspect -f '{{.State.Pid}}' "$id")
  mon=$(awk '{print $4}' "/proc/$pid/stat")
  awk '/^Rss:/{r=$2} /^Pss:/{p=$2} /^Private_Clean:/{c=$2} /^Private_Dirty:/{d=$2}
       END {print r, p, c + d}' "/proc/$mon/smaps_rollup"
done | awk -v n="$n" '{r += $1; p += $2; u += $3; if ($1 > mr) mr = $1; if ($3 > mu) mu = $3; k++}
  END {printf "%d monitors (of %d containers): mean RSS %.0f KiB (max %d), PSS %.0f KiB, USS %.0f KiB (max %d)\n", k, n, r/k, mr, p/k, u/k, mu}'
