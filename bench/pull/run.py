#!/usr/bin/env python3
"""Pull benchmark: berth against podman and skopeo (issue 4, acceptance 5).

A cold pull from a registry on 127.0.0.1 (Debian's docker-registry, the CNCF distribution
server, with its storage in a temp dir) of:

  minbase   the Debian minbase rootfs (testutil's debootstrap cache,
            /var/cache/berth-test/debian-<suite>-minbase-<YYYYMM>.tar) as one gzip layer
  5-layer   minbase plus four layers of 8 MiB of incompressible files each

pushed once with skopeo. Each measured call starts from an empty store:

  berth     `berth --root R --run-root S pull -q REF`        (blobs verified, layers unpacked)
  podman    `podman --root R --runroot S pull -q --tls-verify=false REF` (overlay storage)
  skopeo    `skopeo copy --src-tls-verify=false docker://REF dir:D`  (blobs only, no unpack)

Tools alternate call by call (A B C, then B C A, ...) after unmeasured warm-up rounds; the table
gives median, min and the ratio of medians against podman.

The stores live on a tmpfs by default (`--disk`: under /tmp). On this machine's ext4, creating
files right after the previous call deleted as many costs more in the kernel's inode allocator
(find_inode_bit, recently_deleted) than everything the tools themselves do, for every tool
alike; the tmpfs measures the tools. Everything is named
berth-test-<pid>-bench-pull (testutil's janitor leaves a live run alone) and removed at the end;
only 127.0.0.1 is contacted.

Stdlib only. Needs root, Debian's docker-registry, skopeo, podman, a berth binary
(`cargo build --release -p berth`) and the minbase cache (made by the berth test suite, or by
`debootstrap --variant=minbase bookworm DIR` tarred to that path).
"""

import argparse
import glob
import gzip
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import io
import time

sys.dont_write_bytecode = True

PREFIX = "berth-test-{}-bench-pull".format(os.getpid())
TOOLS = ("berth", "podman", "skopeo")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def extra_layer(i):
    """A tar of four 2 MiB files of random bytes (incompressible)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        d = tarfile.TarInfo("extra%d" % i)
        d.type = tarfile.DIRTYPE
        d.mode = 0o755
        t.addfile(d)
        for j in range(4):
            data = os.urandom(2 << 20)
            f = tarfile.TarInfo("extra%d/blob%d" % (i, j))
            f.size = len(data)
            f.mode = 0o644
            t.addfile(f, io.BytesIO(data))
    return buf.getvalue()


def write_layout(layout, name, tars):
    """An OCI layout holding one image of the gzip-compressed `tars`, as ref `name`."""
    blobs = os.path.join(layout, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)

    def put(b):
        d = sha256(b)
        with open(os.path.join(blobs, d[7:]), "wb") as f:
            f.write(b)
        return d

    layers = []
    for t in tars:
        gz = gzip.compress(t, compresslevel=6, mtime=0)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       "digest": put(gz), "size": len(gz)})
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(t) for t in tars]},
    }).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": put(config), "size": len(config)},
        "layers": layers,
    }).encode()
    index_path = os.path.join(layout, "index.json")
    index = {"schemaVersion": 2, "manifests": []}
    if os.path.exists(index_path):
        with open(index_path) as f:
            index = json.load(f)
    index["manifests"].append({
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": put(manifest),
        "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": name}})
    with open(index_path, "w") as f:
        json.dump(index, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    return sum(l["size"] for l in layers), sum(len(t) for t in tars)


class Bench:
    def __init__(self, args):
        self.args = args
        self.dir = os.path.join("/tmp", PREFIX)
        self.run_dir = os.path.join("/run", PREFIX)
        self.registry = None
        self.n = 0

    def cleanup_store(self, path):
        # podman's overlay storage may hold mounts (none for a pull, but be sure).
        subprocess.run(["umount", "-R", "-l", path], stderr=subprocess.DEVNULL)
        shutil.rmtree(path, ignore_errors=True)

    def start_registry(self):
        port = free_port()
        self.addr = "127.0.0.1:%d" % port
        storage = os.path.join(self.dir, "registry")
        os.makedirs(storage, exist_ok=True)
        conf = os.path.join(self.dir, "registry.yml")
        with open(conf, "w") as f:
            f.write("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                    "storage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n"
                    % (storage, self.addr))
        self.registry = subprocess.Popen(["docker-registry", "serve", conf],
                                         stdout=subprocess.DEVNULL,
                                         stderr=open(os.path.join(self.dir, "registry.log"), "w"))
        for _ in range(500):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.02)
        raise SystemExit("docker-registry did not start")

    def call(self, tool, ref):
        self.n += 1
        store = os.path.join(self.stores, "%s-%d" % (tool, self.n))
        run = os.path.join(self.run_dir, "%s-%d" % (tool, self.n))
        env = dict(os.environ)
        if tool == "berth":
            conf = os.path.join(self.dir, "berth-registries.json")
            with open(conf, "w") as f:
                f.write("{}")
            env["BERTH_REGISTRY_CONFIG"] = conf
            env["DOCKER_CONFIG"] = os.path.join(self.dir, "docker")
            argv = [self.args.berth, "--root", store, "--run-root", run, "pull", "-q", ref]
        elif tool == "podman":
            argv = ["podman", "--root", store, "--runroot", run, "--storage-driver", "overlay",
                    "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                    "pull", "-q", "--tls-verify=false", ref]
        else:
            argv = ["skopeo", "copy", "-q", "--src-tls-verify=false", "docker://" + ref,
                    "dir:" + store]
        start = time.monotonic()
        out = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        elapsed = time.monotonic() - start
        if tool == "podman":
            subprocess.run(["podman", "--root", store, "--runroot", run, "--storage-driver",
                            "overlay", "system", "reset", "-f"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.cleanup_store(store)
        self.cleanup_store(run)
        if out.returncode != 0:
            raise SystemExit("%s failed: %s" % (" ".join(argv), out.stderr.decode()[-2000:]))
        return elapsed * 1000

    def measure(self, ref, tools):
        samples = {t: [] for t in tools}
        order = list(tools)
        for i in range(self.args.warmup + self.args.n):
            for t in order:
                ms = self.call(t, ref)
                if i >= self.args.warmup:
                    samples[t].append(ms)
            order = order[1:] + order[:1]
        return samples

    def run(self):
        os.makedirs(self.dir, exist_ok=True)
        os.makedirs(self.run_dir, exist_ok=True)
        self.stores = self.dir
        if not self.args.disk:
            self.stores = os.path.join(self.dir, "stores")
            os.makedirs(self.stores, exist_ok=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4g", "tmpfs", self.stores],
                           check=True)
        caches = sorted(glob.glob("/var/cache/berth-test/debian-*-minbase-*.tar"))
        if not caches:
            raise SystemExit("no minbase cache in /var/cache/berth-test (run the berth tests once)")
        with open(caches[-1], "rb") as f:
            minbase = f.read()
        log("building images from %s" % caches[-1])
        layout = os.path.join(self.dir, "layout")
        sizes = {"minbase": write_layout(layout, "minbase", [minbase]),
                 "5-layer": write_layout(layout, "five", [minbase] + [extra_layer(i) for i in range(4)])}
        self.start_registry()
        for name in ("minbase", "five"):
            subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false",
                            "oci:%s:%s" % (layout, name),
                            "docker://%s/bench/%s:1" % (self.addr, name)], check=True)
        tools = [t for t in TOOLS if t in self.args.only.split(",")]
        results = {}
        for label, name in (("minbase", "minbase"), ("5-layer", "five")):
            ref = "%s/bench/%s:1" % (self.addr, name)
            log("measuring %s (%d calls per tool)" % (label, self.args.n))
            results[label] = self.measure(ref, tools)
        print("| image | compressed / unpacked | tool | median ms | min ms | x podman |")
        print("|---|---|---|---|---|---|")
        for label, samples in results.items():
            gz, raw = sizes[label]
            base = statistics.median(samples["podman"]) if "podman" in samples else None
            for t in tools:
                med = statistics.median(samples[t])
                ratio = "%.2f" % (med / base) if base else "-"
                print("| %s | %.1f / %.1f MB | %s | %.0f | %.0f | %s |"
                      % (label, gz / 1e6, raw / 1e6, t, med, min(samples[t]), ratio))
        print("\nn=%d each after %d warm-up, tools alternating, cold store per call on %s"
              % (self.args.n, self.args.warmup, "disk (/tmp)" if self.args.disk else "tmpfs"))
        if self.args.json:
            with open(self.args.json, "w") as f:
                json.dump(results, f)

    def close(self):
        if self.registry:
            self.registry.send_signal(signal.SIGKILL)
            self.registry.wait()
        if not self.args.disk:
            subprocess.run(["umount", os.path.join(self.dir, "stores")], stderr=subprocess.DEVNULL)
        for d in (self.dir, self.run_dir):
            self.cleanup_store(d)
        if os.path.exists(self.dir) or os.path.exists(self.run_dir):
            log("warning: could not remove %s or %s" % (self.dir, self.run_dir))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-n", type=int, default=7, help="measured calls per tool and image")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--berth", default="target/release/berth")
    p.add_argument("--only", default=",".join(TOOLS))
    p.add_argument("--json")
    p.add_argument("--disk", action="store_true", help="stores under /tmp instead of a tmpfs")
    args = p.parse_args()
    args.berth = os.path.abspath(args.berth)
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    bench = Bench(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        bench.run()
    finally:
        bench.close()


if __name__ == "__main__":
    main()
