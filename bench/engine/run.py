#!/usr/bin/env python3
"""Engine benchmark: berth against podman and docker (issue 3, acceptance 5).

Measures, with the same busybox image imported into each engine:

  run     `E run --rm --network none IMAGE true`
  exec    `E exec CTR true` on a running `sleep 3600` container
  idle    N idle `E run -d --network none IMAGE sleep 3600` containers: memory of the
          per-container monitor (berth's `berth monitor`, podman's conmon, docker's
          containerd-shim-runc-v2), RSS, PSS and USS (Private_Clean + Private_Dirty of
          /proc/PID/smaps_rollup), median over the containers
  ps      `E ps` with those N containers running

Engines alternate run by run (A B C, then B C A, ...) after unmeasured warm-up rounds, so drift
on a noisy machine hits all of them alike; tables give median, p90, min and ratios of medians.

Isolation: everything is named berth-test-<pid>-bench-engine (the pid right after the prefix,
as testutil names things, so its janitor leaves a live run alone). The script creates a network
namespace of that name and enters it itself (setns), so every engine CLI and daemon it starts
runs there; containers all use `--network none`. dockerd runs on its own socket over its own
containerd (own root, state, sockets, CRI off) with no bridge, no iptables, no forwarding or
masquerading; podman gets its own containers.conf/storage.conf/registries.conf, --root,
--runroot, cgroupfs, a file events log and file locks; berth gets its own --root/--run-root.
Persistent state lives in /tmp/<name>, runtime state in /run/<name> (short: podman's runroot
and socket paths have length limits), on a tmpfs mounted there when /run itself is not one (as
on an ordinary host; --run-on-disk keeps it on the disk). On exit, error, Ctrl-C or SIGTERM every container is
removed, the daemons are stopped, leftover processes of the run are killed, mounts below the
two dirs are detached, the cgroups, the netns and the dirs are removed, and the script checks
that nothing of the run is left (a warning names whatever is).

Stdlib only. Needs root, Debian's podman, docker.io, containerd, runc, busybox-static,
iproute2 and util-linux, and a berth binary (`cargo build --release -p berth`).
"""

import argparse
import concurrent.futures
import ctypes
import hashlib
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no root-owned __pycache__ in the tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from rootfs import busybox_rootfs  # noqa: E402 - bench/common, found through the line above

PREFIX = "berth-test-{}-bench-engine".format(os.getpid())
NETNS_DIR = "/run/netns"
CGROUP_ROOT = "/sys/fs/cgroup"
CLONE_NEWNET = 0x40000000
SHIM_SOCKET_DIR = "/run/containerd/s"  # containerd 1.6 puts runc v2 shim sockets here
ENGINES = ("berth", "podman", "docker")
# The parent of a container's init, by /proc/PID/comm (15 characters at most).
MONITOR_COMM = {"berth": {"berth", "berth-monitor"}, "podman": {"conmon"},
                "docker": {"containerd-shim"}}
MONITOR_NAME = {"berth": "berth monitor", "containerd-shim": "containerd-shim-runc-v2"}
CALL_TIMEOUT = 120  # seconds for one engine CLI call
READY_TIMEOUT = 30  # seconds for a daemon to answer on its socket
REMOVERS = 4  # concurrent `rm -f` calls when removing the idle containers


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- processes


def run_quiet(argv, env=None, timeout=CALL_TIMEOUT, check=True):
    """Run argv with output captured; raise BenchError naming it when it fails."""
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError("{}: timed out after {} s".format(" ".join(argv), timeout))
    if check and p.returncode != 0:
        raise BenchError("{}: exit {}: {}".format(" ".join(argv), p.returncode,
                                                   (p.stderr or p.stdout).strip()[-2000:]))
    return p


class CallTimeout(Exception):
    pass


def on_alarm(_signum, _frame):
    raise CallTimeout


def timed(argv, env, errfile):
    """Wall ms of argv run to completion, output discarded; raise on failure.

    The wait blocks in waitpid, with SIGALRM as the watchdog: subprocess's wait with a timeout
    polls with doubling sleeps (1, 2, 4 ... 50 ms) and so rounds every figure up to the end of
    the sleep it finished in (a 17 ms call measured 32 ms)."""
    errfile.seek(0)
    errfile.truncate()
    previous = signal.signal(signal.SIGALRM, on_alarm)
    p = None
    try:
        signal.setitimer(signal.ITIMER_REAL, CALL_TIMEOUT)
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=errfile, env=env)
        rc = p.wait()
        dt = (time.perf_counter() - t0) * 1000.0
    except CallTimeout:
        if p is not None:
            p.kill()
            p.wait()
        raise BenchError("{}: timed out after {} s".format(" ".join(argv), CALL_TIMEOUT))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if rc != 0:
        errfile.seek(0)
        msg = errfile.read().decode(errors="replace").strip()[-2000:]
        raise BenchError("{}: exit {}: {}".format(" ".join(argv), rc, msg))
    return dt


def read(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def pids():
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            yield int(entry)


def ppid_and_comm(pid):
    stat = read("/proc/{}/stat".format(pid))
    if not stat:
        return None, None
    comm = stat[stat.index("(") + 1:stat.rindex(")")]
    return int(stat[stat.rindex(")") + 2:].split()[1]), comm


def is_zombie(pid):
    stat = read("/proc/{}/stat".format(pid))
    return not stat or stat[stat.rindex(")") + 2:].startswith(("Z", "X"))


def smaps_rollup_kib(pid):
    """RSS, PSS and USS (Private_Clean + Private_Dirty) in KiB of one process."""
    fields = {}
    for line in read("/proc/{}/smaps_rollup".format(pid)).splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
            fields[parts[0][:-1]] = int(parts[1])
    if "Rss" not in fields:
        raise BenchError("no /proc/{}/smaps_rollup".format(pid))
    return (fields["Rss"], fields.get("Pss", 0),
            fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0))


def smaps_by_mapping(pid):
    """{mapping name: [Rss, Private KiB]} of one process, from /proc/PID/smaps; anonymous
    mappings are [anon], the binary and libraries by file name."""
    out = {}
    current = None
    for line in read("/proc/{}/smaps".format(pid)).splitlines():
        parts = line.split()
        if not parts:
            continue
        if not parts[0].endswith(":") or len(parts) >= 6 and "-" in parts[0]:
            name = parts[5] if len(parts) >= 6 else "[anon]"
            if name.startswith("/"):
                # berth runs from a detached mount of its binary: the path is just "/".
                name = os.path.basename(name) or "(own binary)"
            current = out.setdefault(name, [0, 0])
        elif current is not None and parts[0] == "Rss:":
            current[0] += int(parts[1])
        elif current is not None and parts[0] in ("Private_Clean:", "Private_Dirty:"):
            current[1] += int(parts[1])
    return out


def wait_until(what, predicate, timeout=READY_TIMEOUT, proc=None, logfile=None):
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise BenchError("{} exited with {}: {}".format(what, proc.returncode, tail(logfile)))
        if time.monotonic() > deadline:
            raise BenchError("timed out waiting for {}: {}".format(what, tail(logfile)))
        time.sleep(0.05)


def tail(path, lines=15):
    if not path:
        return ""
    return "\n".join(read(path).splitlines()[-lines:])


def connectable(sock):
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(sock)
        return True
    except OSError:
        return False
    finally:
        s.close()


def stop_daemon(proc, name, grace):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        log("warning: {} did not stop in {} s; killing it".format(name, grace))
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- the sandbox


class Sandbox:
    """The run's name, dirs, netns and cgroup parent, and the sweep that removes them."""

    def __init__(self):
        self.name = PREFIX
        self.dir = os.path.join(tempfile.gettempdir(), PREFIX)
        self.run = os.path.join("/run", PREFIX)
        self.netns = os.path.join(NETNS_DIR, PREFIX)
        self.netns_made = False
        self.host_netns_fd = None
        self.my_cgroups = self_cgroups()
        self.berth_ids = set()  # full ids of every berth container ever created

    def create(self, run_tmpfs):
        os.makedirs(self.dir, mode=0o700)
        os.makedirs(self.run, mode=0o700)
        if run_tmpfs:
            # Runtime state on a tmpfs, as /run is on an ordinary host (on this machine /run is
            # the root ext4 file system); the sweep unmounts it.
            run_quiet(["mount", "-t", "tmpfs", "-o", "mode=0700,size=1g", self.name, self.run])
        run_quiet(["ip", "netns", "add", self.name])
        self.netns_made = True
        run_quiet(["nsenter", "--net=" + self.netns, "ip", "link", "set", "lo", "up"])
        # Enter it ourselves: everything spawned from here on runs in it, with no wrapper
        # process on any timed call.
        libc = ctypes.CDLL(None, use_errno=True)
        self.host_netns_fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        fd = os.open(self.netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise BenchError("setns {}: {}".format(self.netns, os.strerror(ctypes.get_errno())))
        finally:
            os.close(fd)

    def subdir(self, rel, under=None):
        path = os.path.join(under or self.dir, rel)
        os.makedirs(path, exist_ok=True)
        return path

    def cgroup_parent(self, engine):
        return "/{}/{}".format(self.name, engine)

    def owned_processes(self):
        """Live processes of this run: their command line names one of its dirs, they are in
        its netns, or in one of its cgroups (the cgroup parent, or a berth container's), and
        the descendants of those (a container's processes, whatever their cgroup)."""
        me = os.getpid()
        children = {}
        marks = [self.dir.encode(), self.run.encode()]
        try:
            ns = os.stat(self.netns) if self.netns_made else None
        except OSError:
            ns = None
        out = []
        for pid in pids():
            if pid == me or pid <= 1 or is_zombie(pid):
                continue
            try:
                with open("/proc/{}/cmdline".format(pid), "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            ppid, _ = ppid_and_comm(pid)
            children.setdefault(ppid, []).append(pid)
            owned = any(m in cmdline for m in marks)
            if not owned and ns is not None:
                try:
                    st = os.stat("/proc/{}/ns/net".format(pid))
                    owned = (st.st_dev, st.st_ino) == (ns.st_dev, ns.st_ino)
                except OSError:
                    pass
            if not owned:
                for line in read("/proc/{}/cgroup".format(pid)).splitlines():
                    path = line.split(":", 2)[-1]
                    if path == "/" + self.name or path.startswith("/{}/".format(self.name)) or \
                            os.path.basename(path) in self.berth_ids:
                        owned = True
                        break
            if owned:
                out.append(pid)
        todo = list(out)
        while todo:
            for child in children.get(todo.pop(), []):
                if child not in out:
                    out.append(child)
                    todo.append(child)
        return out

    def mounts(self):
        out = []
        for line in read("/proc/self/mountinfo").splitlines():
            point = unescape(line.split(" ")[4])
            if any(point == d or point.startswith(d + "/") for d in (self.dir, self.run)):
                out.append(point)
        return out

    def cgroups(self):
        """This run's cgroup directories: the cgroup parent in each hierarchy, and berth
        containers' cgroups (named by container id, below this script's own cgroup)."""
        out = []
        for h in hierarchies():
            top = os.path.join(h, self.name)
            if os.path.isdir(top):
                out.append(top)
            mine = self.my_cgroups.get(h)
            if mine is not None:
                for cid in self.berth_ids:
                    path = os.path.join(mine, cid)
                    if os.path.isdir(path):
                        out.append(path)
        return out

    def sweep(self):
        """Kill, unmount, remove. Returns what is still left."""
        problems = []
        deadline = time.monotonic() + 15
        shim_sockets = set()
        while True:
            left = self.owned_processes()
            if not left:
                break
            if time.monotonic() > deadline:
                problems.append("processes still alive: {}".format(describe_pids(left)))
                break
            for pid in left:
                shim_sockets.update(shim_socket(pid))
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.1)
        for sock in shim_sockets:
            try:
                os.unlink(sock)
            except FileNotFoundError:
                pass
            except OSError as e:
                problems.append("remove {}: {}".format(sock, e))
        for _ in range(10):
            mounts = self.mounts()
            if not mounts:
                break
            for m in sorted(mounts, key=lambda p: -p.count("/")):
                subprocess.run(["umount", "-l", m], stderr=subprocess.DEVNULL)
        problems += ["still mounted: " + m for m in self.mounts()]
        if self.netns_made and os.path.exists(self.netns):
            # Ours stays alive while this process is in it; the name goes away.
            if self.host_netns_fd is not None:
                libc = ctypes.CDLL(None, use_errno=True)
                libc.setns(self.host_netns_fd, CLONE_NEWNET)
            p = subprocess.run(["ip", "netns", "delete", self.name], capture_output=True, text=True)
            if p.returncode != 0:
                problems.append("ip netns delete {}: {}".format(self.name, p.stderr.strip()))
        for cg in self.cgroups():
            err = remove_cgroup_tree(cg)
            if err:
                problems.append(err)
        for d in (self.dir, self.run):
            if os.path.exists(d):
                shutil.rmtree(d, ignore_errors=True)
                if os.path.exists(d):
                    problems.append("could not remove " + d)
        return problems

    def leftovers(self):
        """What of this run still exists (checked after the sweep)."""
        left = []
        procs = self.owned_processes()
        if procs:
            left.append("processes: " + describe_pids(procs))
        left += ["mount " + m for m in self.mounts()]
        if os.path.exists(self.netns):
            left.append("netns " + self.netns)
        left += ["cgroup " + c for c in self.cgroups()]
        left += [d for d in (self.dir, self.run) if os.path.exists(d)]
        return left


def is_tmpfs(path):
    """Whether the mount that holds `path` is a tmpfs (the longest mount point above it)."""
    best, fstype = "", ""
    for line in read("/proc/self/mountinfo").splitlines():
        fields = line.split(" ")
        point = unescape(fields[4])
        kind = fields[fields.index("-") + 1]
        if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, fstype = point, kind
    return fstype == "tmpfs"


def describe_pids(pids_):
    out = []
    for pid in pids_:
        _, comm = ppid_and_comm(pid)
        out.append("{} ({})".format(pid, comm))
    return ", ".join(out)


def unescape(field):
    out, i = bytearray(), 0
    raw = field.encode()
    while i < len(raw):
        if raw[i:i + 1] == b"\\" and len(raw) >= i + 4 and all(48 <= c <= 55 for c in raw[i + 1:i + 4]):
            out.append(int(raw[i + 1:i + 4], 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return out.decode(errors="replace")


def hierarchies():
    try:
        names = os.listdir(CGROUP_ROOT)
    except OSError:
        return []
    return [os.path.join(CGROUP_ROOT, n) for n in sorted(names)
            if os.path.exists(os.path.join(CGROUP_ROOT, n, "cgroup.procs"))]


def self_cgroups():
    """This process's cgroup directory in each mounted hierarchy."""
    out = {}
    by_ctrl = {}
    for line in read("/proc/self/cgroup").splitlines():
        hid, ctrls, path = line.split(":", 2)
        for c in ctrls.split(",") if ctrls else ["unified"]:
            by_ctrl[c.replace("name=", "")] = path
    for h in hierarchies():
        base = os.path.basename(h)
        path = None
        for c in base.split(","):
            if c in by_ctrl:
                path = by_ctrl[c]
        if path is not None:
            out[h] = os.path.join(h, path.lstrip("/"))
    return out


def remove_cgroup_tree(path):
    try:
        subs = [e.path for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return None
    except OSError as e:
        return "cgroup {}: {}".format(path, e)
    for sub in subs:
        err = remove_cgroup_tree(sub)
        if err:
            return err
    deadline = time.monotonic() + 5
    while True:
        try:
            os.rmdir(path)
            return None
        except FileNotFoundError:
            return None
        except OSError as e:
            if time.monotonic() > deadline:
                return "remove cgroup {}: {}".format(path, e)
            time.sleep(0.05)


def shim_socket(pid):
    """containerd 1.6 runc v2 shim: its socket is /run/containerd/s/<sha256 of ADDR/NS/ID>."""
    try:
        with open("/proc/{}/cmdline".format(pid), "rb") as f:
            args = f.read().decode(errors="replace").split("\0")
    except OSError:
        return []
    if not args or "containerd-shim" not in args[0]:
        return []

    def flag(name):
        return args[args.index(name) + 1] if name in args[:-1] else None

    addr, ns, cid = flag("-address"), flag("-namespace"), flag("-id")
    if not (addr and ns and cid):
        return []
    key = os.path.join(addr, ns, cid).encode()
    return [os.path.join(SHIM_SOCKET_DIR, hashlib.sha256(key).hexdigest())]


# ---------------------------------------------------------------- engines


class Engine:
    """One engine's CLI with its private state, and the samples measured for it."""

    name = None

    def __init__(self, sandbox):
        self.sb = sandbox
        self.image = "{}-busybox:latest".format(PREFIX)
        self.argv = []
        self.env = dict(os.environ)
        self.samples = {}  # measure -> [ms]
        self.mem = []  # (rss, pss, uss) KiB per monitor
        self.monitor_comms = set()
        self.breakdown = {}  # one monitor's memory by mapping
        self.names = []  # containers this run made (names), removed at the end

    def cmd(self, *args):
        return self.argv + list(args)

    def start(self, tarball):
        run_quiet(self.cmd("import", tarball, self.image), env=self.env)

    def run_rm(self):
        return self.cmd("run", "--rm", "--network", "none", self.image, "true")

    def run_d(self, name, *argv):
        return self.cmd("run", "-d", "--name", name, "--network", "none", self.image, *argv)

    def rm_f(self, names):
        return self.cmd("rm", "-f", *names)

    def init_pids(self, names):
        out = run_quiet(self.cmd("inspect", "-f", "{{.State.Pid}}", *names), env=self.env).stdout
        return [int(x) for x in out.split()]

    def ps(self):
        return self.cmd("ps")

    def count_running(self):
        out = run_quiet(self.cmd("ps", "-q"), env=self.env).stdout
        return len(out.split())

    def remove(self, names):
        """rm -f in batches, REMOVERS at a time; per container when a batch fails."""

        def batch(names_):
            p = run_quiet(self.rm_f(names_), env=self.env, check=False, timeout=600)
            if p.returncode == 0:
                return []
            problems_ = []
            for n in names_:
                q = run_quiet(self.rm_f([n]), env=self.env, check=False)
                if q.returncode != 0 and not absent(q.stderr):
                    problems_.append("{} rm -f {}: {}".format(self.name, n, q.stderr.strip()))
            return problems_

        batches = [names[i:i + 25] for i in range(0, len(names), 25)]
        with concurrent.futures.ThreadPoolExecutor(REMOVERS) as pool:
            return [p for problems in pool.map(batch, batches) for p in problems]

    def track(self):
        """Note the ids of the containers made so far, where the sweep needs them."""

    def close(self):
        """Remove every container of this run; returns problems."""
        return []

    def daemons(self):
        """(name, pid) of the engine's long-running daemons, for their memory."""
        return []


def absent(stderr):
    s = stderr.lower()
    return "no such container" in s or "no container with name" in s or "not found" in s


class Berth(Engine):
    name = "berth"

    def __init__(self, sandbox, binary):
        super().__init__(sandbox)
        self.root = sandbox.subdir("berth")
        self.run_root = sandbox.subdir("b", under=sandbox.run)
        self.argv = [binary]
        self.env["BERTH_ROOT"] = self.root
        self.env["BERTH_RUN_ROOT"] = self.run_root

    def track(self):
        """Record berth's container ids, so the sweep finds their cgroups by name."""
        p = run_quiet(self.cmd("ps", "-aq", "--no-trunc"), env=self.env, check=False)
        self.sb.berth_ids.update(p.stdout.split())

    def close(self):
        p = run_quiet(self.cmd("ps", "-aq", "--no-trunc"), env=self.env, check=False)
        ids = p.stdout.split()
        self.sb.berth_ids.update(ids)
        try:  # the store's container dirs, should `ps` fail
            self.sb.berth_ids.update(os.listdir(os.path.join(self.root, "containers")))
        except OSError:
            pass
        problems = []
        for cid in ids:
            q = run_quiet(self.rm_f([cid]), env=self.env, check=False)
            if q.returncode != 0:
                problems.append("berth rm -f {}: {}".format(cid, q.stderr.strip()))
        return problems


class Podman(Engine):
    name = "podman"

    def __init__(self, sandbox):
        super().__init__(sandbox)
        conf = sandbox.subdir("podman/conf")
        self.graphroot = sandbox.subdir("podman/graph")
        self.runroot = sandbox.subdir("p", under=sandbox.run)
        if len(self.runroot) > 50:
            raise BenchError("podman runroot {} is longer than 50 characters".format(self.runroot))
        self.tmpdir = sandbox.subdir("podman/tmp")
        nofile, nproc = hard_limits()
        ulimits = []
        if nofile:
            ulimits.append('"nofile={0}:{0}"'.format(nofile))
        if nproc:
            ulimits.append('"nproc={0}:{0}"'.format(nproc))
        q = json.dumps
        # rootful podman defaults nofile/nproc to 1048576, above this machine's hard limits
        # (no CAP_SYS_RESOURCE); crun refuses the hybrid cgroup host, so runc; file locks, so
        # that no /dev/shm/libpod_lock is shared with other podman users of the machine.
        containers = "\n".join([
            "[containers]",
            "default_ulimits = [{}]".format(", ".join(ulimits)),
            'log_driver = "k8s-file"',
            "[engine]",
            'runtime = "runc"',
            'cgroup_manager = "cgroupfs"',
            'events_logger = "file"',
            "events_logfile_path = {}".format(q(os.path.join(self.tmpdir, "events.log"))),
            "tmp_dir = {}".format(q(self.tmpdir)),
            "static_dir = {}".format(q(os.path.join(self.graphroot, "libpod"))),
            "volume_path = {}".format(q(os.path.join(self.graphroot, "volumes"))),
            "image_copy_tmp_dir = {}".format(q(self.tmpdir)),
            'lock_type = "file"',
            "[network]",
            "network_config_dir = {}".format(q(sandbox.subdir("podman/net"))),
            "",
        ])
        storage = '[storage]\ndriver = "overlay"\ngraphroot = {}\nrunroot = {}\n'.format(
            q(self.graphroot), q(self.runroot))
        files = {"containers.conf": containers, "storage.conf": storage,
                 "registries.conf": "unqualified-search-registries = []\n"}
        for name, text in files.items():
            with open(os.path.join(conf, name), "w") as f:
                f.write(text)
        self.env.update({
            "CONTAINERS_CONF": os.path.join(conf, "containers.conf"),
            "CONTAINERS_STORAGE_CONF": os.path.join(conf, "storage.conf"),
            "CONTAINERS_REGISTRIES_CONF": os.path.join(conf, "registries.conf"),
            "TMPDIR": self.tmpdir,
        })
        self.argv = ["podman", "--root", self.graphroot, "--runroot", self.runroot,
                     "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs",
                     "--events-backend", "file", "--tmpdir", self.tmpdir,
                     # runc's state of these containers here, not in the host's /run/runc
                     "--runtime-flag", "root=" + sandbox.subdir("pr", under=sandbox.run)]
        self.image = "localhost/" + self.image

    def run_rm(self):
        return self.cmd("run", "--rm", "--network", "none", "--cgroup-parent",
                        self.sb.cgroup_parent("podman"), self.image, "true")

    def run_d(self, name, *argv):
        return self.cmd("run", "-d", "--name", name, "--network", "none", "--cgroup-parent",
                        self.sb.cgroup_parent("podman"), self.image, *argv)

    def rm_f(self, names):
        return self.cmd("rm", "-f", "-t", "0", *names)

    def close(self):
        p = run_quiet(self.cmd("rm", "-a", "-f", "-t", "0"), env=self.env, check=False, timeout=300)
        return [] if p.returncode == 0 else ["podman rm -a -f: " + p.stderr.strip()]


class Docker(Engine):
    name = "docker"

    def __init__(self, sandbox):
        super().__init__(sandbox)
        self.cdir = sandbox.subdir("containerd")
        self.crun = sandbox.subdir("c", under=sandbox.run)
        self.csock = os.path.join(self.crun, "containerd.sock")
        self.ddir = sandbox.subdir("docker")
        self.dsock = os.path.join(sandbox.run, "docker.sock")
        self.containerd = None
        self.dockerd = None
        self.env["DOCKER_CONFIG"] = sandbox.subdir("docker-cli")
        self.env["DOCKER_HOST"] = "unix://" + self.dsock
        self.argv = ["docker"]

    def start(self, tarball):
        q = json.dumps
        config = os.path.join(self.cdir, "config.toml")
        with open(config, "w") as f:
            f.write("\n".join([
                "version = 2",
                "root = {}".format(q(os.path.join(self.cdir, "root"))),
                "state = {}".format(q(os.path.join(self.crun, "state"))),
                'disabled_plugins = ["io.containerd.grpc.v1.cri", '
                '"io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", '
                '"io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]',
                "[grpc]", "  address = {}".format(q(self.csock)),
                "[ttrpc]", "  address = {}".format(q(self.csock + ".ttrpc")),
                "[debug]", '  address = ""', '  level = "warn"',
                "[metrics]", '  address = ""',
                "[plugins]", '  [plugins."io.containerd.internal.v1.opt"]',
                "    path = {}".format(q(os.path.join(self.cdir, "opt"))), ""]))
        clog = os.path.join(self.cdir, "containerd.log")
        with open(clog, "w") as out:
            self.containerd = subprocess.Popen(["containerd", "--config", config],
                                               stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        wait_until("containerd", lambda: connectable(self.csock), proc=self.containerd, logfile=clog)
        # Our own daemon.json, so the host's /etc/docker/daemon.json is never read, and the
        # trust key here (20.10 otherwise writes /etc/docker/key.json).
        dconf = os.path.join(self.ddir, "daemon.json")
        with open(dconf, "w") as f:
            json.dump({"deprecated-key-path": os.path.join(self.ddir, "key.json")}, f)
        dlog = os.path.join(self.ddir, "dockerd.log")
        argv = ["dockerd", "--config-file", dconf, "--containerd", self.csock,
                "--containerd-namespace", self.sb.name,
                "--containerd-plugins-namespace", self.sb.name + "-plugins",
                "--data-root", os.path.join(self.ddir, "data"),
                "--exec-root", self.sb.subdir("d", under=self.sb.run),
                "--pidfile", os.path.join(self.sb.run, "dockerd.pid"),
                "--host", "unix://" + self.dsock,
                "--bridge", "none", "--iptables=false", "--ip-forward=false", "--ip-masq=false",
                "--userland-proxy=false", "--exec-opt", "native.cgroupdriver=cgroupfs",
                "--cgroup-parent", self.sb.cgroup_parent("docker")]
        with open(dlog, "w") as out:
            self.dockerd = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        wait_until("dockerd", lambda: run_quiet(["docker", "version"], env=self.env,
                                                check=False, timeout=10).returncode == 0,
                   proc=self.dockerd, logfile=dlog)
        super().start(tarball)

    def daemons(self):
        return [(n, p.pid) for n, p in (("dockerd", self.dockerd), ("containerd", self.containerd))
                if p is not None and p.poll() is None]

    def close(self):
        problems = []
        if self.dockerd is not None and self.dockerd.poll() is None:
            p = run_quiet(self.cmd("ps", "-aq", "--no-trunc"), env=self.env, check=False)
            ids = p.stdout.split()
            if ids:
                problems += self.remove(ids)
        stop_daemon(self.dockerd, "dockerd", 30)
        stop_daemon(self.containerd, "containerd", 15)
        return problems


def hard_limits():
    """Hard RLIMIT_NOFILE, and hard RLIMIT_NPROC capped at kernel.pid_max."""
    import resource
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    try:
        pid_max = int(read("/proc/sys/kernel/pid_max").strip())
    except ValueError:
        pid_max = None
    inf = resource.RLIM_INFINITY
    nofile = None if nofile == inf else nofile
    nproc = None if nproc == inf else nproc
    if pid_max is not None:
        nproc = pid_max if nproc is None else min(nproc, pid_max)
    return nofile, nproc


# ---------------------------------------------------------------- the image


def busybox_tarball(sb):
    """A busybox rootfs tarball from Debian's busybox-static, as testutil builds it."""
    rootfs = sb.subdir("rootfs")
    try:
        busybox_rootfs(rootfs)
    except (RuntimeError, subprocess.CalledProcessError) as e:
        raise BenchError("busybox rootfs: {}".format(e))
    tarball = os.path.join(sb.dir, "busybox.tar")
    run_quiet(["tar", "-C", rootfs, "-cf", tarball, "."])
    return tarball


# ---------------------------------------------------------------- measures


def rounds(engines, args):
    """(measured?, engine): by default alternating, the order rotated each round; with
    --blocks all calls of one engine back to back. args.gap seconds of idle time go before each
    call, so that work an engine leaves running in the background after its CLI returned
    (dockerd, containerd, podman's cleanup processes) is not billed to the next engine on a
    2-CPU machine."""
    k = len(engines)
    if args.blocks:
        order = [(r >= args.warmup, e) for e in engines for r in range(args.warmup + args.n)]
    else:
        order = [(r >= args.warmup, engines[(r + i) % k])
                 for r in range(args.warmup + args.n) for i in range(k)]
    for measured, e in order:
        time.sleep(args.gap)
        yield measured, e


def measure_run(engines, args, errfile):
    log("run --rm: {} warm-up + {} rounds".format(args.warmup, args.n))
    for measured, e in rounds(engines, args):
        dt = timed(e.run_rm(), e.env, errfile)
        if measured:
            e.samples.setdefault("run", []).append(dt)
    for e in engines:
        e.track()


def measure_exec(engines, args, errfile):
    for e in engines:
        name = "{}-exec".format(PREFIX)
        e.names.append(name)
        run_quiet(e.run_d(name, "sleep", "3600"), env=e.env)
        e.track()
    log("exec: {} warm-up + {} rounds".format(args.warmup, args.n))
    for measured, e in rounds(engines, args):
        dt = timed(e.cmd("exec", "{}-exec".format(PREFIX), "true"), e.env, errfile)
        if measured:
            e.samples.setdefault("exec", []).append(dt)
    for e in engines:
        problems = e.remove(["{}-exec".format(PREFIX)])
        if problems:
            raise BenchError("; ".join(problems))
        e.names.remove("{}-exec".format(PREFIX))


def measure_idle(engines, args, errfile):
    count = args.containers
    log("idle: starting {} `sleep 3600` containers per engine".format(count))
    for i in range(count):
        for e in engines:
            name = "{}-idle-{}".format(PREFIX, i)
            e.names.append(name)
            dt = timed(e.run_d(name, "sleep", "3600"), e.env, errfile)
            e.samples.setdefault("run -d", []).append(dt)
        if (i + 1) % 50 == 0:
            log("  {} of {}".format(i + 1, count))
    for e in engines:
        e.track()
    time.sleep(args.settle)
    for e in engines:
        running = e.count_running()
        if running != count:
            raise BenchError("{}: {} containers running, expected {}".format(e.name, running, count))
        seen = set()
        for i in range(0, count, 50):
            names = e.names[i:i + 50]
            for init in e.init_pids(names):
                mon, _ = ppid_and_comm(init)
                if mon is None or mon in seen:
                    raise BenchError("{}: container init {} has no monitor of its own".format(
                        e.name, init))
                seen.add(mon)
                _, comm = ppid_and_comm(mon)
                e.monitor_comms.add(comm)
                e.mem.append(smaps_rollup_kib(mon))
                last = mon
        # The monitor started last: the one that found the most containers already there.
        e.breakdown = smaps_by_mapping(last)
        if not e.monitor_comms <= MONITOR_COMM[e.name]:
            log("warning: {}'s container inits have parents {} (expected {})".format(
                e.name, sorted(e.monitor_comms), " or ".join(sorted(MONITOR_COMM[e.name]))))
        e.daemon_mem = [(n, smaps_rollup_kib(p)) for n, p in e.daemons()]
    log("ps: {} warm-up + {} rounds with {} containers each".format(args.warmup, args.n, count))
    for measured, e in rounds(engines, args):
        dt = timed(e.ps(), e.env, errfile)
        if measured:
            e.samples.setdefault("ps", []).append(dt)
    log("idle: removing the containers")
    for e in engines:
        problems = e.remove(list(e.names))
        if problems:
            raise BenchError("; ".join(problems))
        e.names = []


# ---------------------------------------------------------------- report


def pct(values, p):
    """Nearest-rank percentile."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))
    return s[k]


def time_table(engines, measure, title, target):
    rows = [e for e in engines if e.samples.get(measure)]
    if not rows:
        return []
    med = {e.name: statistics.median(e.samples[measure]) for e in rows}
    refs = [r for r in ("podman", "docker") if r in med]
    cols = ["engine", "median ms", "p90 ms", "min ms"] + ["× " + r for r in refs]
    lines = ["### " + title, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for e in rows:
        s = e.samples[measure]
        row = ["**berth**" if e.name == "berth" else e.name,
               "{:.1f}".format(med[e.name]), "{:.1f}".format(pct(s, 90)), "{:.1f}".format(min(s))]
        row += ["{:.2f}".format(med[e.name] / med[r]) for r in refs]
        lines.append("| " + " | ".join(row) + " |")
    if target:
        lines += ["", target]
    return lines + [""]


def mem_table(engines, count):
    rows = [e for e in engines if e.mem]
    if not rows:
        return []
    lines = ["### Per-container monitor memory, {} idle `sleep 3600` containers per engine".format(
        count), "",
        "| engine | monitor | RSS MiB | PSS MiB | USS MiB | RSS p90 | USS p90 | USS × podman | USS × docker |",
        "|---|---|---|---|---|---|---|---|---|"]
    uss = {e.name: statistics.median([m[2] for m in e.mem]) for e in rows}
    for e in rows:
        rss = [m[0] for m in e.mem]
        pss = [m[1] for m in e.mem]
        us = [m[2] for m in e.mem]

        def mib(v):
            return "{:.2f}".format(v / 1024.0)

        ratio = ["{:.2f}".format(uss[e.name] / uss[r]) if r in uss and uss[r] else "–"
                 for r in ("podman", "docker")]
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            "**berth**" if e.name == "berth" else e.name,
            " / ".join(MONITOR_NAME.get(c, c) for c in sorted(e.monitor_comms)),
            mib(statistics.median(rss)), mib(statistics.median(pss)), mib(statistics.median(us)),
            mib(pct(rss, 90)), mib(pct(us, 90)), *ratio))
    lines += ["", "Target: berth ≤ 1 MiB RSS and ≤ 0.25 MiB USS per monitor. Medians over the "
              "containers; USS = Private_Clean + Private_Dirty of /proc/PID/smaps_rollup."]
    if count >= 10:
        tenth = max(1, count // 10)
        trend = []
        for e in rows:
            us = [m[2] for m in e.mem]
            trend.append("{} {:.2f} → {:.2f}".format(
                e.name, statistics.mean(us[:tenth]) / 1024.0, statistics.mean(us[-tenth:]) / 1024.0))
        lines.append("Mean USS MiB of the first and the last tenth of the monitors started (does a "
                     "monitor's memory grow with the containers already there?): {}.".format(
                         ", ".join(trend)))
    for e in rows:
        top = sorted(e.breakdown.items(), key=lambda kv: -kv[1][0])[:5]
        if top:
            lines.append("{}'s last monitor by mapping (RSS/private KiB): {}.".format(
                e.name, ", ".join("{} {}/{}".format(k, v[0], v[1]) for k, v in top)))
    for e in rows:
        for name, (rss, pss, us) in getattr(e, "daemon_mem", []):
            base = getattr(e, "daemon_base", {}).get(name)
            since = "" if base is None else ", up from {:.1f} MiB USS with none".format(
                base[2] / 1024.0)
            lines.append("{} also runs {}: {:.1f} MiB RSS, {:.1f} MiB USS with {} containers{}.".format(
                e.name, name, rss / 1024.0, us / 1024.0, count, since))
    return lines + [""]


def uptime():
    return read("/proc/loadavg").split()[:3]


def render(engines, args, load_before, load_after, berth_bin):
    out = ["## berth vs podman vs docker ({})".format(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())),
           "",
           "Kernel {}, {} CPUs; load average {} before, {} after. n = {} per engine after {} "
           "warm-up rounds, {}, {} s idle before each call; runtime state on {}. berth: {}; "
           "podman {}; docker CLI {} against dockerd {} over containerd {} (runc {}).".format(
               os.uname().release, os.cpu_count(), " ".join(load_before), " ".join(load_after),
               args.n, args.warmup,
               "each engine's calls back to back (--blocks)" if args.blocks
               else "engines alternated call by call", args.gap,
               "a tmpfs" if args.run_tmpfs else "/run's file system", berth_bin, version(["podman", "--version"]),
               version(["docker", "--version"]), version(["dockerd", "--version"]),
               version(["containerd", "--version"], 2), version(["runc", "--version"])),
           ""]
    out += time_table(engines, "run", "`run --rm --network none busybox true`",
                      "Target: berth ≤ 0.1× podman.")
    out += time_table(engines, "exec", "`exec CTR true` on a running `sleep` container",
                      "Target: berth ≤ 0.25× docker.")
    out += mem_table(engines, args.containers)
    out += time_table(engines, "ps", "`ps` with {} running containers".format(args.containers),
                      "Target: berth ≤ 0.5× docker.")
    out += time_table(engines, "run -d", "`run -d --network none busybox sleep 3600`, "
                      "while 0 to {} containers run (informational)".format(args.containers - 1), None)
    return "\n".join(out)


def version(argv, field=None):
    try:
        s = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    words = s.split()
    if field is not None:
        return words[field] if len(words) > field else s
    for w in words:
        if w[:1].isdigit():
            return w.rstrip(",")
    return s


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=30, help="measured runs per engine and measure (30)")
    ap.add_argument("--warmup", type=int, default=3, help="unmeasured rounds first (3)")
    ap.add_argument("--containers", type=int, default=200,
                    help="idle containers per engine for memory and ps (200)")
    ap.add_argument("--gap", type=float, default=0.1,
                    help="idle seconds before each timed call (0.1)")
    ap.add_argument("--blocks", action="store_true",
                    help="run each engine's calls back to back instead of alternating "
                    "(warm caches; see README)")
    ap.add_argument("--settle", type=float, default=3.0,
                    help="seconds to let idle containers settle before reading memory (3)")
    ap.add_argument("--berth", default="target/release/berth",
                    help="berth binary (default target/release/berth: cargo build --release -p berth)")
    ap.add_argument("--only", help="comma-separated subset of berth,podman,docker")
    ap.add_argument("--skip", default="", help="comma-separated measures to skip: run,exec,idle")
    ap.add_argument("--json", help="also write raw samples to this file")
    ap.add_argument("--run-on-disk", action="store_true",
                    help="keep the engines' runtime state (/run/<name>) on /run's own file "
                    "system even when that is not a tmpfs")
    args = ap.parse_args()

    if os.geteuid() != 0:
        sys.exit("bench/engine: needs root")
    wanted = args.only.split(",") if args.only else list(ENGINES)
    for w in wanted:
        if w not in ENGINES:
            sys.exit("bench/engine: unknown engine {} (berth, podman, docker)".format(w))
    skip = set(filter(None, args.skip.split(",")))
    if skip - {"run", "exec", "idle"}:
        sys.exit("bench/engine: unknown measure in --skip: {}".format(",".join(skip)))
    if args.n < 1 or args.containers < 1:
        sys.exit("bench/engine: -n and --containers must be at least 1")
    berth_bin = os.path.abspath(args.berth)
    if "berth" in wanted and not os.access(berth_bin, os.X_OK):
        sys.exit("bench/engine: no berth binary at {} (build it: cargo build --release -p berth, "
                 "or pass --berth PATH)".format(berth_bin))
    need = {"ip": "iproute2", "nsenter": "util-linux", "tar": "tar", "umount": "mount"}
    if "podman" in wanted:
        need.update({"podman": "podman", "runc": "runc", "conmon": "conmon"})
    if "docker" in wanted:
        need.update({"docker": "docker.io", "dockerd": "docker.io", "containerd": "containerd",
                     "runc": "runc"})
    for prog, pkg in need.items():
        if shutil.which(prog) is None:
            sys.exit("bench/engine: {} not found: install the Debian package {}".format(prog, pkg))

    stop = {"sig": None}

    def on_signal(signum, _frame):
        stop["sig"] = signum
        raise KeyboardInterrupt

    # SIGINT too: a shell without job control starts background commands with it ignored,
    # and Python then installs no KeyboardInterrupt handler.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    sb = Sandbox()
    engines = []
    errfile = tempfile.TemporaryFile()
    failure = None
    report = None
    load_before = uptime()
    try:
        args.run_tmpfs = not args.run_on_disk and not is_tmpfs("/run")
        sb.create(args.run_tmpfs)
        tarball = busybox_tarball(sb)
        for w in wanted:
            e = {"berth": lambda: Berth(sb, berth_bin), "podman": lambda: Podman(sb),
                 "docker": lambda: Docker(sb)}[w]()
            engines.append(e)
            log("{}: importing busybox".format(w))
            e.start(tarball)
            e.daemon_base = {n: smaps_rollup_kib(p) for n, p in e.daemons()}
        if "run" not in skip:
            measure_run(engines, args, errfile)
        if "exec" not in skip:
            measure_exec(engines, args, errfile)
        if "idle" not in skip:
            measure_idle(engines, args, errfile)
        report = render(engines, args, load_before, uptime(), berth_bin)
    except KeyboardInterrupt:
        failure = "interrupted" + (" by signal {}".format(stop["sig"]) if stop["sig"] else "")
    except (BenchError, OSError) as e:
        failure = str(e)
    finally:
        # Ctrl-C during the cleanup must not leave things half removed.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        log("cleaning up")
        problems = []
        for e in engines:
            try:
                problems += e.close()
            except (BenchError, OSError) as err:
                problems.append("{}: {}".format(e.name, err))
        problems += sb.sweep()
        left = sb.leftovers()
        for p in problems:
            log("cleanup: " + p)
        if left:
            log("WARNING: left behind: " + "; ".join(left))
        else:
            log("cleanup: nothing left behind (processes, mounts, netns, cgroups, dirs)")
    if report:
        print(report)
    if args.json and engines:
        with open(args.json, "w") as f:
            json.dump({e.name: {"ms": e.samples, "monitor_kib_rss_pss_uss": e.mem}
                       for e in engines}, f, indent=1)
    if failure:
        sys.exit("bench/engine: " + failure)
    if left:
        sys.exit(1)  # the warning above says what


if __name__ == "__main__":
    main()
