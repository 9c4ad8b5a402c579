#!/usr/bin/env bash
# First run: install what berth needs from Debian, build berth-runtime, install it to
# /usr/local/bin, make a busybox bundle from Debian's busybox-static and run a container in it.
# Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (containers need namespaces, mounts and cgroups)" >&2
  exit 1
fi
need=()
for pkg in libseccomp-dev pkg-config busybox-static; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi
scripts/build-runtime.sh >/dev/null
install -m 0755 target/small/berth-runtime /usr/local/bin/berth-runtime

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
rm -f "$bundle/config.json"
(cd "$bundle" && berth-runtime spec)
# Non-interactive demo process (the default spec asks for a terminal).
python3 - "$bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
spec = json.load(open(p))
spec["process"]["terminal"] = False
spec["process"]["args"] = ["sh", "-c",
    "echo \"hello from $(hostname): pid $$, uid $(id -u), $(ls /bin | wc -l) busybox applets\"; cat /proc/self/status | grep -E '^(CapEff|NoNewPrivs|Seccomp)'"]
json.dump(spec, open(p, "w"), indent=2)
PY
berth-runtime run --bundle "$bundle" "demo-$$"
echo "berth-runtime is installed in /usr/local/bin; the bundle is $bundle"
