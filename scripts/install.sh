#!/usr/bin/env bash
# First run: install what berth (and its tests: tmux) needs from Debian, build `berth`,
# `berth-monitor` and `berth-runtime`, install them to /usr/local/bin, make a busybox image from
# Debian's busybox-static (no registry needed) and run a container from it with `berth run`.
# Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (containers need namespaces, mounts and cgroups)" >&2
  exit 1
fi
need=()
for pkg in libseccomp-dev pkg-config busybox-static tmux nftables; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi
scripts/build-runtime.sh >/dev/null
scripts/build-monitor.sh >/dev/null
cargo build --release -p berth
install -m 0755 target/small/berth-runtime /usr/local/bin/berth-runtime
install -m 0755 target/release/berth /usr/local/bin/berth
# berth finds its per-container monitor next to itself.
install -m 0755 target/small/berth-monitor /usr/local/bin/berth-monitor

bundle=/var/lib/berth/demo-bundle
if [ ! -x "$bundle/rootfs/bin/busybox" ]; then
  rm -rf "$bundle"
  mkdir -p "$bundle/rootfs"/{bin,etc,proc,sys,dev,tmp,root}
  cp /bin/busybox "$bundle/rootfs/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$bundle/rootfs/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$bundle/rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$bundle/rootfs/etc/group"
fi
rm -f "$bundle/config.json"   # left by older versions of this script; `berth-runtime spec` writes one
if ! berth images | awk '$1 == "busybox" && $2 == "latest" { found = 1 } END { exit !found }'; then
  tar -C "$bundle/rootfs" -c . | berth import - busybox:latest >/dev/null
fi
berth run --rm --network none busybox sh -c \
  'echo "hello from container $(hostname): pid $$, uid $(id -u), $(ls /bin | wc -l) busybox applets"'
echo "berth, berth-monitor and berth-runtime are installed in /usr/local/bin"
if [ -t 0 ] && [ -t 1 ]; then
  echo "an interactive busybox shell in a new container (exit to leave, ctrl-p ctrl-q to detach):"
  berth run -it --rm --network none busybox sh
else
  echo "try: berth run -it --rm --network none busybox sh"
fi
