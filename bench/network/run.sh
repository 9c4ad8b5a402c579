#!/usr/bin/env bash
# Network throughput (issue 5, acceptance 6): iperf3 (Debian) TCP throughput
#   veth    two plain network namespaces joined by a veth pair (the ceiling)
#   bridge  two berth containers on one user bridge network, by the server's name
#   publish a berth container's published port, from the engine namespace's loopback
# Everything runs in network namespaces this script creates (berth-test-<pid>-bench-net*),
# removed on exit with everything berth made. Usage: bench/network/run.sh [SECONDS] [ROUNDS]
# Needs root, iperf3, busybox-static, and berth built (target/release or target/debug).
# Not measured: docker's published port (dockerd in a test namespace), see the README.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-5}
rounds=${2:-3}
name="berth-test-$$-bench-net"
berth_bin=${BERTH_BIN:-target/release/berth}
[ -x "$berth_bin" ] || berth_bin=target/debug/berth
scratch=/tmp/$name
B=(nsenter --net=/run/netns/$name "$berth_bin" --root "$scratch/root" --run-root "/run/$name")
in_ns() { nsenter --net=/run/netns/"$1" -- "${@:2}"; }

cleanup() {
  set +e
  for c in srv cli pub; do "${B[@]}" rm -f "$c" >/dev/null 2>&1; done
  "${B[@]}" network rm benchnet >/dev/null 2>&1
  "${B[@]}" system check >/dev/null 2>&1
  for p in $(pgrep -f "/run/$name" || true); do kill -9 "$p" 2>/dev/null; done
  for ns in "$name" "$name-a" "$name-b"; do ip netns delete "$ns" 2>/dev/null; done
  grep -o "[^ ]*$name[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$scratch" "/run/$name"
}
trap cleanup EXIT INT TERM

mkdir -p "$scratch/rootfs/bin" "$scratch/rootfs/etc" "$scratch/rootfs/tmp"
cp /bin/busybox "$scratch/rootfs/bin/"
for a in sh sleep; do ln -sf busybox "$scratch/rootfs/bin/$a"; done
cp "$(command -v iperf3)" "$scratch/rootfs/bin/"
for lib in $(ldd "$(command -v iperf3)" | grep -o '/[^ ]*'); do
  mkdir -p "$scratch/rootfs$(dirname "$lib")"; cp -L "$lib" "$scratch/rootfs$lib"
done
echo "root:x:0:0:root:/:/bin/sh" > "$scratch/rootfs/etc/passwd"

for ns in "$name" "$name-a" "$name-b"; do ip netns add "$ns"; in_ns "$ns" ip link set lo up; done
tar -C "$scratch/rootfs" -c . | "${B[@]}" import - iperf >/dev/null

gbps() { python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9, 2))'; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# veth: the same pair of processes in two plain namespaces.
in_ns "$name" ip link add bb-a netns "$name-a" type veth peer name bb-b netns "$name-b"
in_ns "$name-a" ip addr add 10.200.0.1/24 dev bb-a; in_ns "$name-a" ip link set bb-a up
in_ns "$name-b" ip addr add 10.200.0.2/24 dev bb-b; in_ns "$name-b" ip link set bb-b up
in_ns "$name-a" iperf3 -s -D -1 >/dev/null 2>&1 || true

"${B[@]}" network create --subnet 10.201.0.0/24 benchnet >/dev/null
"${B[@]}" run -d --name srv --network benchnet iperf iperf3 -s >/dev/null
"${B[@]}" run -d --name pub --network benchnet -p 5202:5201 iperf iperf3 -s >/dev/null
sleep 1

declare -A results
for r in $(seq "$rounds"); do
  in_ns "$name-a" iperf3 -s -D -1 >/dev/null 2>&1
  sleep 0.3
  results[veth]+="$(in_ns "$name-b" iperf3 -c 10.200.0.1 -t "$secs" -J | gbps) "
  results[bridge]+="$("${B[@]}" run --rm --network benchnet iperf iperf3 -c srv -t "$secs" -J | gbps) "
  results[publish]+="$(in_ns "$name" iperf3 -c 127.0.0.1 -p 5202 -t "$secs" -J | gbps) "
done
echo "iperf3 TCP, ${secs}s x ${rounds} rounds, Gbit/s (median; all runs)"
v=$(echo "${results[veth]}" | tr ' ' '\n' | grep . | median)
for k in veth bridge publish; do
  m=$(echo "${results[$k]}" | tr ' ' '\n' | grep . | median)
  printf "%-8s %8s   x veth %.2f   (%s)\n" "$k" "$m" "$(echo "$m / $v" | bc -l)" "${results[$k]}"
done
