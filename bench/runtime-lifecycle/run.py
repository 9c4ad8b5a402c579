#!/usr/bin/env python3
"""Lifecycle benchmark: berth-runtime against runc and crun.

For each runtime it times one container lifecycle,

    RT --root S create --bundle B --pid-file F ID; RT --root S start ID;
    wait for the container's init to exit; RT --root S delete ID

on a busybox bundle whose process is /bin/true. Runtimes alternate run by run
(A B C A B C ...) so drift on a noisy machine hits all of them alike. The script
is a child subreaper (PR_SET_CHILD_SUBREAPER), so the container init, orphaned
when `create` exits, is re-parented to it and is waited for with wait4 on the
pid from --pid-file: no polling of `state`.

Peak RSS comes from extra, untimed runs (--rss-runs) in which each
create/start/delete is started under GNU time (`/usr/bin/time -f %M`): the max
ru_maxrss of those processes (including descendants they waited for, e.g.
runc's `runc init` stages). It is not taken from the timed runs because a
process spawned straight from Python inherits Python's RSS high-water mark
(ru_maxrss survives exec, and vfork/posix_spawn fold the parent's mm into it).
The container init's own ru_maxrss is shown apart: for runc it is the
re-executed runc binary that holds the container until `start`.

crun refuses this host's hybrid cgroup layout (cgroup2 at /sys/fs/cgroup/unified
with only hugetlb). By default the whole benchmark re-executes itself once in a
private mount namespace with that cgroup2 mount unmounted, so every runtime runs
in the same environment and no wrapper is timed. `--host-ns` instead runs runc
and berth-runtime in the host namespace and crun through a per-call `unshare`
wrapper, measures the wrapper alone, and reports crun with that cost subtracted.

Stdlib only. Needs root. Everything it makes is named berth-test-<pid>-bench-* and is
removed at exit (containers force-deleted, state dirs and the bundle removed).
"""

import argparse
import ctypes
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

PR_SET_CHILD_SUBREAPER = 36
UNIFIED = "/sys/fs/cgroup/unified"
IN_NS_ENV = "BERTH_BENCH_IN_PRIVATE_NS"
TIME = "/usr/bin/time"  # GNU time (Debian `time`): ru_maxrss of one small parent's child
# The pid comes right after the prefix, as testutil names things: its janitor (run by tests
# in parallel) then sees a live owner and leaves everything of this run alone.
PREFIX = "berth-test-{}-bench".format(os.getpid())
HIDE_SH = 'umount {u} || exit 1; exec "$0" "$@"'.format(u=UNIFIED)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def is_mountpoint_of(path, fstype):
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                sep = fields.index("-")
                if fields[4] == path and fields[sep + 1] == fstype:
                    return True
    except OSError:
        pass
    return False


def hybrid_cgroups():
    return is_mountpoint_of(UNIFIED, "cgroup2")


class Runtime:
    def __init__(self, name, argv, state, wrapped=False):
        self.name = name
        self.argv = argv  # command prefix, e.g. ["/usr/sbin/runc"]
        self.state = state  # --root dir
        self.wrapped = wrapped  # crun behind the per-call unshare wrapper
        self.times = []  # ms per lifecycle
        self.rss = []  # max KiB over create/start/delete, per run
        self.init_rss = []  # KiB of the container init
        self.ids = set()
        self.verb = "lifecycle"  # or "run"

    def cmd(self, *args):
        return self.argv + ["--root", self.state] + list(args)


def spawn_wait(argv, errfile):
    """Run argv to completion; return (status, rusage) from wait4 on it alone."""
    errfile.seek(0)
    errfile.truncate()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errfile)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
    return p.returncode, ru


def fail(rt, step, errfile):
    errfile.seek(0)
    msg = errfile.read().decode(errors="replace").strip()
    raise RuntimeError("{} {}: {}".format(rt.name, step, msg or "failed"))


def reap_orphans():
    """Reap any other re-parented children (intermediate runtime processes)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def lifecycle(rt, bundle, cid, errfile, mode):
    """One create/start/wait/delete. mode: warmup | timed | rss."""
    pidfile = os.path.join(bundle, "..", "pid-" + cid)
    rssfile = os.path.join(bundle, "..", "rss-" + cid)
    rss = []

    def step(name, argv):
        if mode == "rss":
            argv = [TIME, "-f", "%M", "-o", rssfile] + argv
        rc, _ = spawn_wait(argv, errfile)
        if rc != 0:
            fail(rt, name, errfile)
        if mode == "rss":
            with open(rssfile) as f:
                rss.append(int(f.read().split()[-1]))

    rt.ids.add(cid)
    if rt.verb == "run":
        # `run` creates, starts, waits and deletes in one runtime process.
        t0 = time.perf_counter()
        step("run", rt.cmd("run", "--bundle", bundle, cid))
        t1 = time.perf_counter()
        rt.ids.discard(cid)
        reap_orphans()
        if mode == "timed":
            rt.times.append((t1 - t0) * 1000.0)
        elif mode == "rss":
            os.unlink(rssfile)
            rt.rss.append(max(rss))
        return
    t0 = time.perf_counter()
    step("create", rt.cmd("create", "--bundle", bundle, "--pid-file", pidfile, cid))
    with open(pidfile) as f:
        pid = int(f.read().strip())
    step("start", rt.cmd("start", cid))
    # The init is our child (we are its subreaper) once `create` has exited.
    _, status, ru_i = os.wait4(pid, 0)
    step("delete", rt.cmd("delete", cid))
    t1 = time.perf_counter()
    rt.ids.discard(cid)
    os.unlink(pidfile)
    reap_orphans()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("{}: container exited with status {}".format(rt.name, status))
    if mode == "timed":
        rt.times.append((t1 - t0) * 1000.0)
        rt.init_rss.append(ru_i.ru_maxrss)
    elif mode == "rss":
        os.unlink(rssfile)
        rt.rss.append(max(rss))


def wrapper_cost_ms(n, errfile):
    """Median wall ms of the crun wrapper doing nothing (`exec true`)."""
    argv = ["unshare", "--mount", "--propagation", "slave", "sh", "-c", HIDE_SH, "true"]
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        rc, _ = spawn_wait(argv, errfile)
        samples.append((time.perf_counter() - t0) * 1000.0)
        if rc != 0:
            raise RuntimeError("unshare wrapper failed")
    return statistics.median(samples)


def make_bundle(parent):
    bundle = os.path.join(parent, "bundle")
    busybox_rootfs(os.path.join(bundle, "rootfs"))
    runc = shutil.which("runc")
    if runc:
        subprocess.run([runc, "spec", "--bundle", bundle], check=True)
        with open(os.path.join(bundle, "config.json")) as f:
            spec = json.load(f)
    else:
        raise RuntimeError("runc not found: it generates the bundle's config.json (runc spec)")
    spec["process"]["args"] = ["/bin/true"]
    spec["process"]["terminal"] = False
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(spec, f, indent=2)
    return bundle


def cleanup(runtimes, scratch, errfile):
    for rt in runtimes:
        ids = set(rt.ids)
        try:
            out = subprocess.run(rt.cmd("list", "-q"), capture_output=True, text=True, timeout=30)
            ids.update(x for x in out.stdout.split() if x.startswith(PREFIX))
        except (OSError, subprocess.TimeoutExpired):
            pass
        if os.path.isdir(rt.state):
            ids.update(x for x in os.listdir(rt.state) if x.startswith(PREFIX))
        for cid in sorted(ids):
            try:
                subprocess.run(rt.cmd("delete", "--force", cid), stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                log("warning: could not delete {} {}".format(rt.name, cid))
        shutil.rmtree(rt.state, ignore_errors=True)
    reap_orphans()
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)


def pct(values, p):
    """Nearest-rank percentile."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))
    return s[k]


def rss_floor_kib():
    """ru_maxrss GNU time reports for /bin/true: the floor under every RSS figure."""
    out = subprocess.run([TIME, "-f", "%M", "true"], capture_output=True, text=True)
    return int(out.stderr.split()[-1])


def render(runtimes, args, env_note, wrapper_ms, floor_kib):
    by = {rt.name: rt for rt in runtimes}
    med = {rt.name: statistics.median(rt.times) for rt in runtimes}
    cols = ["runtime", "median ms", "p90 ms", "min ms", "peak RSS MiB", "init RSS MiB"]

    def mib(v):
        return "{:.1f}".format(max(v) / 1024.0) if v else "n/a"

    refs = [r for r in ("runc", "crun") if r in by]
    cols += ["× {}".format(r) for r in refs]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for rt in runtimes:
        row = [rt.name, "{:.1f}".format(med[rt.name]), "{:.1f}".format(pct(rt.times, 90)),
               "{:.1f}".format(min(rt.times)), mib(rt.rss), mib(rt.init_rss)]
        row += ["{:.2f}".format(med[rt.name] / med[r]) for r in refs]
        lines.append("| " + " | ".join(row) + " |")
    what = ("`run` (one call: create, start, wait, delete)" if args.run
            else "Lifecycle `create --pid-file; start; wait; delete`")
    out = [
        what + " of busybox `/bin/true`, "
        "{} runs per runtime after {} warm-up, runtimes alternated run by run. {}".format(
            args.n, args.warmup, env_note),
        "",
    ] + lines
    if wrapper_ms is not None:
        out += ["", "crun ran through a per-call `unshare` wrapper; its times above have the "
                "wrapper's measured cost subtracted: {:.1f} ms per call, {} per run.".format(
                    wrapper_ms, 1 if args.run else 3)]
    out += ["", "Wall time is the whole sequence including process spawn from Python; ratios are "
            "of medians (row ÷ column). Peak RSS: max ru_maxrss of the create/start/delete "
            "processes over {} untimed runs under GNU time (floor: `time true` reports {:.1f} "
            "MiB); init RSS: the container init's ru_maxrss (for runc, the `runc init` re-exec "
            "that waits for `start`).".format(args.rss_runs, floor_kib / 1024.0)]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=50, help="measured runs per runtime (default 50)")
    ap.add_argument("--warmup", type=int, default=3, help="unmeasured runs per runtime first (default 3)")
    ap.add_argument("--rss-runs", type=int, default=5,
                    help="extra untimed runs per runtime under GNU time for peak RSS (default 5)")
    ap.add_argument("--berth", default="target/small/berth-runtime", help="berth-runtime binary")
    ap.add_argument("--runc", default="runc")
    ap.add_argument("--crun", default="crun")
    ap.add_argument("--only", help="comma-separated subset of berth-runtime,runc,crun")
    ap.add_argument("--host-ns", action="store_true",
                    help="no private namespace: crun via per-call unshare wrapper, its cost subtracted")
    ap.add_argument("--run", action="store_true",
                    help="time `RT run --bundle B ID` (one call) instead of create/start/wait/delete")
    ap.add_argument("--json", help="also write raw samples to this file")
    args = ap.parse_args()

    if os.geteuid() != 0:
        sys.exit("runtime-lifecycle: needs root")
    if args.rss_runs and not os.access(TIME, os.X_OK):
        log("no {} (Debian package `time`): peak RSS not measured".format(TIME))
        args.rss_runs = 0

    hybrid = hybrid_cgroups()
    in_ns = os.environ.get(IN_NS_ENV) == "1"
    if hybrid and not args.host_ns and not in_ns:
        # One private mount namespace for the whole run; /sys/fs/cgroup/unified
        # unmounted there only (propagation slave: nothing flows back to the host).
        env = dict(os.environ, **{IN_NS_ENV: "1"})
        argv = ["unshare", "--mount", "--propagation", "slave", "sh", "-c", HIDE_SH,
                sys.executable, os.path.abspath(__file__)] + sys.argv[1:]
        os.execvpe("unshare", argv, env)

    if in_ns:
        env_note = ("All runtimes ran in one private mount namespace with the hybrid host's "
                    "cgroup2 mount ({}) unmounted (crun refuses hybrid mode); cgroup v1 "
                    "controllers as on the host.".format(UNIFIED))
    elif hybrid:
        env_note = "Host mount namespace (hybrid cgroups: v1 controllers + cgroup2 at {}).".format(UNIFIED)
    else:
        env_note = "Host mount namespace."
    env_note += " Kernel {}, {} CPUs.".format(os.uname().release, os.cpu_count())

    # Become the subreaper of the container inits that `create` orphans.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("runtime-lifecycle: prctl(PR_SET_CHILD_SUBREAPER): " + os.strerror(ctypes.get_errno()))

    wanted = args.only.split(",") if args.only else ["berth-runtime", "runc", "crun"]
    tag = PREFIX
    runtimes = []
    for name in wanted:
        path = {"berth-runtime": args.berth, "runc": args.runc, "crun": args.crun}.get(name)
        if path is None:
            sys.exit("runtime-lifecycle: unknown runtime {}".format(name))
        exe = shutil.which(path) if os.sep not in path else (path if os.access(path, os.X_OK) else None)
        if exe is None:
            log("skipping {}: {} not found{}".format(
                name, path, " (build it: cargo build --release -p berth-runtime, or pass --berth PATH)"
                if name == "berth-runtime" else ""))
            continue
        exe = os.path.abspath(exe)
        argv = [exe]
        wrapped = False
        if name == "crun" and hybrid and not in_ns:
            argv = ["unshare", "--mount", "--propagation", "slave", "sh", "-c", HIDE_SH, exe]
            wrapped = True
        runtimes.append(Runtime(name, argv, "/run/{}-{}".format(tag, name), wrapped))
        if args.run:
            runtimes[-1].verb = "run"
    if not runtimes:
        sys.exit("runtime-lifecycle: no runtime to measure")

    scratch = None
    errfile = tempfile.TemporaryFile()
    stop = {"sig": None}

    def on_signal(signum, _frame):
        stop["sig"] = signum
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    wrapper_ms = None
    try:
        scratch = tempfile.mkdtemp(prefix=tag + "-")
        bundle = make_bundle(scratch)
        for rt in runtimes:
            os.makedirs(rt.state, mode=0o700, exist_ok=True)
        log("measuring {} ({} runs each, {} warm-up)".format(
            ", ".join(rt.name for rt in runtimes), args.n, args.warmup))
        seq = 0
        plan = ["warmup"] * args.warmup + ["timed"] * args.n + ["rss"] * args.rss_runs
        for mode in plan:
            for rt in runtimes:
                seq += 1
                lifecycle(rt, bundle, "{}-{}-{}".format(tag, rt.name, seq), errfile, mode)
        if any(rt.wrapped for rt in runtimes):
            wrapper_ms = wrapper_cost_ms(max(args.n, 20), errfile)
            for rt in runtimes:
                if rt.wrapped:
                    calls = 1 if args.run else 3
                    rt.times = [t - calls * wrapper_ms for t in rt.times]
    except KeyboardInterrupt:
        cleanup(runtimes, scratch, errfile)
        sys.exit("runtime-lifecycle: interrupted{}".format(
            " by signal {}".format(stop["sig"]) if stop["sig"] else ""))
    except Exception as e:  # noqa: BLE001 - report once, after cleanup
        cleanup(runtimes, scratch, errfile)
        sys.exit("runtime-lifecycle: {}".format(e))
    cleanup(runtimes, scratch, errfile)

    print(render(runtimes, args, env_note, wrapper_ms, rss_floor_kib() if args.rss_runs else 0))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({rt.name: {"ms": rt.times, "rss_kib": rt.rss, "init_rss_kib": rt.init_rss}
                       for rt in runtimes}, f, indent=1)


if __name__ == "__main__":
    main()
