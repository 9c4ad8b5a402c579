#!/usr/bin/env bash
# Network throughput (issue 5, acceptance 6): iperf3 (Debian) TCP throughput
#   veth    two plain network namespaces joined by a veth pair (the ceiling)
#   plainbr two plain network namespaces on a kernel bridge in a third (berth's topology without
#           berth: two veth pairs and a bridge; what any bridge network costs over one pair)
#   bridge  two berth containers on one user bridge network, by the server's name
#   publish a berth container's published port, from the engine namespace's loopback
# Everything runs in network namespaces this script creates (berth-test-<pid>-bench-net*),
# removed on exit with everything berth made. Usage: bench/network/run.sh [SECONDS] [ROUNDS]
# Needs root, iperf3, busybox-static, and berth built (target/release or target/debug).
#   docker  the same iperf3 image in docker (dockerd 20.10 over its own containerd, both in the
#           engine namespace, default bridge, iptables and userland proxy): `docker run -p`,
#           from the namespace's loopback. Skipped (with a note) when dockerd is missing.
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

D=(env DOCKER_HOST="unix:///run/$name/docker.sock" DOCKER_CONFIG="$scratch/docker-cli" docker)
cleanup() {
  set +e
  if [ -n "${dockerd_pid:-}" ]; then
    "${D[@]}" rm -f dpub >/dev/null 2>&1
    kill "$dockerd_pid" 2>/dev/null; wait "$dockerd_pid" 2>/dev/null
    kill "$containerd_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$containerd_pid" 2>/dev/null || break; sleep 0.2; done
  fi
  for d in /sys/fs/cgroup/*/"$name"; do
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  for c in srv cli pub; do "${B[@]}" rm -f "$c" >/dev/null 2>&1; done
  "${B[@]}" network rm benchnet >/dev/null 2>&1
  "${B[@]}" system check >/dev/null 2>&1
  for p in $(pgrep -f "$name" || true); do [ "$p" != $$ ] && kill -9 "$p" 2>/dev/null; done
  for ns in "$name" "$name-a" "$name-b" "$name-c" "$name-d" "$name-e"; do ip netns delete "$ns" 2>/dev/null; done
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

for ns in "$name" "$name-a" "$name-b" "$name-c" "$name-d" "$name-e"; do
  ip netns add "$ns"; in_ns "$ns" ip link set lo up
done
tar -C "$scratch/rootfs" -c . | "${B[@]}" import - iperf >/dev/null

gbps() { python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9, 2))'; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# veth: the same pair of processes in two plain namespaces.
in_ns "$name" ip link add bb-a netns "$name-a" type veth peer name bb-b netns "$name-b"
in_ns "$name-a" ip addr add 10.200.0.1/24 dev bb-a; in_ns "$name-a" ip link set bb-a up
in_ns "$name-b" ip addr add 10.200.0.2/24 dev bb-b; in_ns "$name-b" ip link set bb-b up
in_ns "$name-a" iperf3 -s -D -1 >/dev/null 2>&1 || true
# plainbr: d and e hang off a bridge in c.
in_ns "$name-c" ip link add bb-br type bridge; in_ns "$name-c" ip link set bb-br up
for x in d e; do
  in_ns "$name-c" ip link add "bb-p$x" type veth peer name "bb-$x" netns "$name-$x"
  in_ns "$name-c" ip link set "bb-p$x" master bb-br; in_ns "$name-c" ip link set "bb-p$x" up
  in_ns "$name-$x" ip link set "bb-$x" up
done
in_ns "$name-d" ip addr add 10.203.0.1/24 dev bb-d
in_ns "$name-e" ip addr add 10.203.0.2/24 dev bb-e

"${B[@]}" network create --subnet 10.201.0.0/24 benchnet >/dev/null
"${B[@]}" run -d --name srv --network benchnet iperf iperf3 -s >/dev/null
"${B[@]}" run -d --name pub --network benchnet -p 5202:5201 iperf iperf3 -s >/dev/null
sleep 1

docker_ok=
if command -v dockerd >/dev/null && command -v containerd >/dev/null; then
  mkdir -p "$scratch/containerd" "$scratch/docker" "$scratch/docker-cli" "/run/$name/c"
  cat > "$scratch/containerd/config.toml" <<TOML
version = 2
root = "$scratch/containerd/root"
state = "/run/$name/c/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "/run/$name/c/containerd.sock"
[ttrpc]
  address = "/run/$name/c/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$scratch/containerd/opt"
TOML
  echo "{\"deprecated-key-path\": \"$scratch/docker/key.json\"}" > "$scratch/docker/daemon.json"
  in_ns "$name" containerd --config "$scratch/containerd/config.toml" >"$scratch/containerd.log" 2>&1 &
  containerd_pid=$!
  for _ in $(seq 100); do [ -S "/run/$name/c/containerd.sock" ] && break; sleep 0.1; done
  in_ns "$name" dockerd --config-file "$scratch/docker/daemon.json" \
    --containerd "/run/$name/c/containerd.sock" --containerd-namespace "$name" \
    --containerd-plugins-namespace "$name-plugins" --data-root "$scratch/docker/data" \
    --exec-root "/run/$name/d" --pidfile "/run/$name/dockerd.pid" \
    --host "unix:///run/$name/docker.sock" --bip 10.202.0.1/24 \
    --exec-opt native.cgroupdriver=cgroupfs --cgroup-parent "$name" >"$scratch/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 300); do "${D[@]}" version >/dev/null 2>&1 && break; sleep 0.1; done
  if tar -C "$scratch/rootfs" -c . | "${D[@]}" import - iperf >/dev/null 2>&1 \
    && "${D[@]}" run -d --name dpub -p 5203:5201 iperf iperf3 -s >/dev/null 2>"$scratch/dpub.err"; then
    docker_ok=1
    sleep 1
  else
    echo "docker: not measured ($(tail -1 "$scratch/dpub.err" "$scratch/dockerd.log" 2>/dev/null | tail -1))"
  fi
fi

load0=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A results
for r in $(seq "$rounds"); do
  in_ns "$name-a" iperf3 -s -D -1 >/dev/null 2>&1
  sleep 0.3
  results[veth]+="$(in_ns "$name-b" iperf3 -c 10.200.0.1 -t "$secs" -J | gbps) "
  in_ns "$name-d" iperf3 -s -D -1 >/dev/null 2>&1
  sleep 0.3
  results[plainbr]+="$(in_ns "$name-e" iperf3 -c 10.203.0.1 -t "$secs" -J | gbps) "
  results[bridge]+="$("${B[@]}" run --rm --network benchnet iperf iperf3 -c srv -t "$secs" -J | gbps) "
  results[publish]+="$(in_ns "$name" iperf3 -c 127.0.0.1 -p 5202 -t "$secs" -J | gbps) "
  if [ -n "$docker_ok" ]; then
    results[docker]+="$(in_ns "$name" iperf3 -c 127.0.0.1 -p 5203 -t "$secs" -J | gbps) "
  fi
done
echo "iperf3 TCP, ${secs}s x ${rounds} rounds, Gbit/s (median; all runs)"
v=$(echo "${results[veth]}" | tr ' ' '\n' | grep . | median)
for k in veth plainbr bridge publish ${docker_ok:+docker}; do
  m=$(echo "${results[$k]}" | tr ' ' '\n' | grep . | median)
  printf "%-8s %8s   x veth %.2f   (%s)\n" "$k" "$m" "$(echo "$m / $v" | bc -l)" "${results[$k]}"
done
b=$(echo "${results[bridge]}" | tr ' ' '\n' | grep . | median)
p=$(echo "${results[plainbr]}" | tr ' ' '\n' | grep . | median)
printf "bridge x plainbr %.2f; load average before %s, after %s\n" "$(echo "$b / $p" | bc -l)" \
  "$load0" "$(cut -d' ' -f1-3 /proc/loadavg)"
