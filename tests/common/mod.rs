//! Helpers shared by the runtime end-to-end test targets (`runtime_lifecycle`,
//! `runtime_security`): state queries, waiting on processes by pidfd, and the "failed cleanly"
//! check.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use testutil::{Bundle, Runtime, describe};

/// A container id unique to this test process: `berth-test-<pid>-<n>-<tag>`.
pub(crate) fn cid(tag: &str) -> String {
    testutil::unique_name(tag)
}

/// Stdout as text.
pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stderr as text.
pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `state <id>` parsed, failing the test unless it succeeds.
pub(crate) fn state(rt: &Runtime, id: &str) -> Value {
    let out = rt.ok(&["state", id]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("state {id} is not JSON ({e}): {}", describe(&out)))
}

/// The `status` field of `state <id>`.
pub(crate) fn status(rt: &Runtime, id: &str) -> String {
    state(rt, id)["status"].as_str().unwrap_or("?").to_owned()
}

/// The init pid `state <id>` reports.
pub(crate) fn init_pid(rt: &Runtime, id: &str) -> i32 {
    let pid = state(rt, id)["pid"].as_i64().unwrap_or(0);
    i32::try_from(pid).unwrap_or(0)
}

/// `create --bundle <bundle> <id>` (plus `extra` before the id), failing the test on error.
pub(crate) fn create(rt: &Runtime, bundle: &Bundle, id: &str, extra: &[&str]) -> Output {
    let b = bundle.path().to_string_lossy().into_owned();
    let mut args = vec!["create", "--bundle", &b];
    args.extend_from_slice(extra);
    args.push(id);
    rt.ok(&args)
}

/// `run -d --bundle <bundle> <id>`, failing the test on error.
pub(crate) fn run_detached(rt: &Runtime, bundle: &Bundle, id: &str) {
    let b = bundle.path().to_string_lossy().into_owned();
    rt.ok(&["run", "-d", "--bundle", &b, id]);
}

/// A pidfd of `pid`; None when the process is gone.
pub(crate) fn pidfd(pid: i32) -> Option<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid)?;
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
}

/// Waits until the process behind `fd` exits; false on timeout.
pub(crate) fn wait_pidfd(fd: &OwnedFd, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let ts = rustix::event::Timespec::try_from(left).ok();
        let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
        match rustix::event::poll(&mut fds, ts.as_ref()) {
            Ok(n) if n > 0 => return true,
            _ => {}
        }
    }
}

/// Waits (by pidfd) until `pid` exits; true when it is gone within `timeout`.
pub(crate) fn wait_pid_exit(pid: i32, timeout: Duration) -> bool {
    match pidfd(pid) {
        Some(fd) => wait_pidfd(&fd, timeout),
        None => true,
    }
}

/// Polls `cond` (a check of state the runtime or kernel reports) every 10 ms until it holds or
/// `timeout` passes; returns whether it held.
pub(crate) fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Pids of processes whose root directory is `root` (or below it): a container's processes,
/// seen from the host. Used to prove a failed create left no process behind.
pub(crate) fn procs_rooted_in(root: &Path) -> Vec<i32> {
    let Ok(root) = fs::canonicalize(root) else {
        return Vec::new();
    };
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/root")).is_ok_and(|r| r.starts_with(&root))
        })
        .collect()
}

/// Asserts that a runtime command failed the way bad input must: exit status 1, one line on
/// stderr that names `field`, and nothing of container `id` left: no state dir, no mount,
/// cgroup or netns naming it, no process rooted in `rootfs`.
pub(crate) fn assert_clean_failure(
    rt: &Runtime,
    out: &Output,
    id: &str,
    rootfs: &Path,
    field: &str,
) {
    assert_eq!(out.status.code(), Some(1), "{}", describe(out));
    let err = stderr(out);
    let msg = err.trim_end_matches('\n');
    assert!(!msg.is_empty(), "no error message: {}", describe(out));
    assert!(
        !msg.contains('\n'),
        "error is not one line:\n{msg}\n(full output: {})",
        describe(out)
    );
    assert!(msg.contains(field), "error does not name {field:?}: {msg}");
    assert_nothing_left(rt, id, rootfs);
}

/// Asserts nothing of container `id` is left: state dir, mounts, cgroups, netns, processes.
pub(crate) fn assert_nothing_left(rt: &Runtime, id: &str, rootfs: &Path) {
    let state_dir = rt.root.join(id);
    assert!(
        !state_dir.exists(),
        "state dir {} left behind",
        state_dir.display()
    );
    let leaks = testutil::leaks_of(id);
    assert!(leaks.is_empty(), "{id} left behind: {leaks:#?}");
    let procs = procs_rooted_in(rootfs);
    assert!(
        procs.is_empty(),
        "processes left in {}: {procs:?}",
        rootfs.display()
    );
}

/// The cgroup v1 directory of `pid` for `controller` (as /proc/<pid>/cgroup names it).
pub(crate) fn cgroup_dir(pid: i32, controller: &str) -> std::path::PathBuf {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/cgroup: {e}"));
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        if ctrls.split(',').any(|c| c == controller) {
            let base = if ctrls.is_empty() { "unified" } else { ctrls };
            return Path::new("/sys/fs/cgroup")
                .join(base)
                .join(path.trim_start_matches('/'));
        }
    }
    panic!("pid {pid} has no {controller} cgroup:\n{text}")
}

/// Reads a cgroup file, trimmed.
pub(crate) fn cg_read(dir: &Path, file: &str) -> String {
    let p = dir.join(file);
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_owned()
}

/// contest's key=value output.
pub(crate) fn kv(out: &Output) -> BTreeMap<String, String> {
    testutil::parse_kv(&stdout(out))
}

/// Writes `text` to `<bundle>/<name>` and returns the path.
pub(crate) fn bundle_file(bundle: &Bundle, name: &str, text: &str) -> std::path::PathBuf {
    let p = bundle.path().join(name);
    fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    p
}
