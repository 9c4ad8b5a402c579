"""The busybox root filesystem the benchmarks run, as testutil's fixture builds it.

Imported by bench/*/run.py through their own directory's `../common` on sys.path.
"""

import os
import shutil
import subprocess

BUSYBOX = "/bin/busybox"  # Debian busybox-static


def busybox_rootfs(rootfs):
    """Fill `rootfs` (created if missing) with the static busybox, one symlink per applet of
    `busybox --list-full`, /etc/passwd and /etc/group. Raises RuntimeError when busybox is
    missing or not static."""
    busybox = shutil.which("busybox") or BUSYBOX
    ldd = subprocess.run(["ldd", busybox], capture_output=True, text=True)
    if "not a dynamic executable" not in (ldd.stdout + ldd.stderr):
        raise RuntimeError("{} is not static: install busybox-static".format(busybox))
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    shutil.copy2(busybox, os.path.join(rootfs, "bin", "busybox"))
    applets = subprocess.run([busybox, "--list-full"], capture_output=True, text=True, check=True)
    for path in applets.stdout.split():
        name = os.path.basename(path)
        if name == "busybox":
            continue  # a self-link would replace the binary
        link = os.path.join(rootfs, "bin", name)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    with open(os.path.join(rootfs, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    with open(os.path.join(rootfs, "etc", "group"), "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")
