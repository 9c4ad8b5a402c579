//! Helpers shared by the feature tests: run a bundle and parse what contest printed, expect a
//! create to fail cleanly, read raw mountinfo, find host namespace inodes.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use testutil::{Bundle, ContainerGuard, Runtime, describe, parse_kv};

/// A busybox bundle running `args`, with `edit` applied to its config.
pub(crate) fn bundle(args: &[&str], edit: impl FnOnce(&mut Value)) -> Bundle {
    let mut b = Bundle::busybox(args);
    b.edit(edit);
    b
}

/// A fresh runtime, a unique container id with its guard.
pub(crate) fn runtime(tag: &str) -> (Runtime, String, ContainerGuard) {
    let rt = Runtime::berth();
    let id = testutil::unique_name(tag);
    let guard = rt.guard(&id);
    (rt, id, guard)
}

/// Runs `bundle` in the foreground (`run`), expects exit 0 and returns its stdout.
pub(crate) fn run_ok(bundle: &Bundle, tag: &str) -> String {
    let (rt, id, _guard) = runtime(tag);
    let out = rt.run(bundle, &id);
    assert!(out.status.success(), "run {id}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `bundle` in the foreground and returns what it printed and its status, whatever that is.
pub(crate) fn run_any(bundle: &Bundle, tag: &str) -> Output {
    let (rt, id, _guard) = runtime(tag);
    rt.run(bundle, &id)
}

/// `contest <args>` in a busybox container configured by `edit`; contest's `key=value` lines.
pub(crate) fn contest(args: &[&str], edit: impl FnOnce(&mut Value)) -> BTreeMap<String, String> {
    let mut argv = vec!["/bin/contest"];
    argv.extend_from_slice(args);
    let b = bundle(&argv, edit);
    parse_kv(&run_ok(&b, args.first().copied().unwrap_or("contest")))
}

/// Like [`contest`], whatever contest's exit status.
pub(crate) fn contest_any(
    args: &[&str],
    edit: impl FnOnce(&mut Value),
) -> BTreeMap<String, String> {
    let mut argv = vec!["/bin/contest"];
    argv.extend_from_slice(args);
    let b = bundle(&argv, edit);
    let out = run_any(&b, "contest");
    parse_kv(&String::from_utf8_lossy(&out.stdout))
}

/// `contest info` in a busybox container configured by `edit`.
pub(crate) fn info(edit: impl FnOnce(&mut Value)) -> BTreeMap<String, String> {
    contest(&["info"], edit)
}

/// `sh -c script` in a busybox container configured by `edit`; its stdout.
pub(crate) fn sh(script: &str, edit: impl FnOnce(&mut Value)) -> String {
    let b = bundle(&["/bin/sh", "-c", script], edit);
    run_ok(&b, "sh")
}

/// Expects `create` of `bundle` to fail; checks the error is one line naming `needle` and that
/// nothing of the container is left (state dir, cgroup, mounts: the guard's leak check). Returns
/// the error line.
pub(crate) fn create_fails(bundle: &Bundle, needle: &str) -> String {
    let (rt, id, guard) = runtime("fail");
    let out = rt.cmd(&[
        OsStr::new("create"),
        OsStr::new("--bundle"),
        bundle.path().as_os_str(),
        OsStr::new(&id),
    ]);
    assert!(
        !out.status.success(),
        "create {id} succeeded: {}",
        describe(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr).trim_end().to_owned();
    assert_eq!(err.lines().count(), 1, "error is not one line: {err}");
    assert!(
        err.starts_with(&format!("berth-runtime: create container {id}: ")),
        "{err}"
    );
    assert!(
        err.contains(needle),
        "error does not name {needle:?}: {err}"
    );
    assert!(
        !rt.root.join(&id).exists(),
        "state dir of failed create left: {err}"
    );
    let listed = rt.ok(&["list", "-q"]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).trim().is_empty(),
        "failed container is still listed"
    );
    drop(guard);
    err
}

/// The host's namespace of `kind` (`net`, `mnt`, ...) as readlink shows it: `net:[4026531840]`.
pub(crate) fn host_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap_or_else(|e| panic!("readlink /proc/self/ns/{kind}: {e}"))
        .display()
        .to_string()
}

/// The namespace a file (a bind-mounted namespace or `/proc/<pid>/ns/<kind>`) refers to, in
/// readlink form.
pub(crate) fn ns_of(kind: &str, path: &Path) -> String {
    let md = std::fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    format!("{kind}:[{}]", md.ino())
}

/// A directory under the temp dir named `berth-test-...`, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(testutil::unique_name(tag));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        TempDir(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    pub(crate) fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One line of /proc/<pid>/mountinfo with the fields contest's `mounts` leaves out.
#[derive(Debug)]
pub(crate) struct RawMount {
    pub(crate) root: String,
    pub(crate) point: String,
    pub(crate) opts: Vec<String>,
    /// Optional fields: `shared:N`, `master:N`, `propagate_from:N`, `unbindable`.
    pub(crate) optional: Vec<String>,
    pub(crate) fstype: String,
    pub(crate) sup: Vec<String>,
}

impl RawMount {
    pub(crate) fn shared(&self) -> bool {
        self.optional.iter().any(|o| o.starts_with("shared:"))
    }
    pub(crate) fn slave(&self) -> bool {
        self.optional.iter().any(|o| o.starts_with("master:"))
    }
    pub(crate) fn has(&self, opt: &str) -> bool {
        self.opts.iter().chain(&self.sup).any(|o| o == opt)
    }
}

/// Parses mountinfo text.
pub(crate) fn parse_raw_mounts(text: &str) -> Vec<RawMount> {
    let split = |s: &str| s.split(',').map(str::to_owned).collect::<Vec<_>>();
    text.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            Some(RawMount {
                root: (*pre.get(3)?).to_owned(),
                point: (*pre.get(4)?).to_owned(),
                opts: split(pre.get(5)?),
                optional: pre.iter().skip(6).map(|s| (*s).to_owned()).collect(),
                fstype: (*post.first()?).to_owned(),
                sup: post.get(2).map_or_else(Vec::new, |s| split(s)),
            })
        })
        .collect()
}

/// The mount at `point` (the last one, which is the visible one), or a panic listing them all.
pub(crate) fn mount_at<'a>(mounts: &'a [RawMount], point: &str) -> &'a RawMount {
    mounts
        .iter()
        .rev()
        .find(|m| m.point == point)
        .unwrap_or_else(|| panic!("no mount at {point} in {mounts:#?}"))
}

/// Adds a new namespace of type `t` to the spec.
pub(crate) fn add_ns(spec: &mut Value, t: &str) {
    if let Some(a) = spec["linux"]["namespaces"].as_array_mut() {
        a.push(serde_json::json!({ "type": t }));
    }
}

/// The capability mask /proc/self/status prints for these capability numbers.
pub(crate) fn cap_mask(caps: &[u32]) -> String {
    format!("{:016x}", caps.iter().fold(0u64, |m, c| m | (1 << c)))
}

/// Runs a detached container (`run -d`) whose process holds it up until deleted; returns the
/// runtime, id, guard and init's host pid.
pub(crate) fn run_detached(bundle: &Bundle, tag: &str) -> (Runtime, String, ContainerGuard, i32) {
    let (rt, id, guard) = runtime(tag);
    rt.ok(&[
        OsStr::new("run"),
        OsStr::new("-d"),
        OsStr::new("--bundle"),
        bundle.path().as_os_str(),
        OsStr::new(&id),
    ]);
    let pid = state(&rt, &id)["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("state of {id} has no pid"));
    (rt, id, guard, i32::try_from(pid).unwrap_or(0))
}

/// `state <id>` as JSON.
pub(crate) fn state(rt: &Runtime, id: &str) -> Value {
    let out = rt.ok(&["state", id]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("state {id}: {e}: {}", describe(&out)))
}

/// Receives one message and the descriptor passed with it (SCM_RIGHTS) from a unix stream, then
/// reads the rest of the stream to its end. Returns the descriptor and all the bytes.
pub(crate) fn recv_fd_and_rest(
    stream: &mut std::os::unix::net::UnixStream,
) -> (Option<std::os::fd::OwnedFd>, Vec<u8>) {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    use std::io::Read;
    let mut buf = vec![0u8; 64 * 1024];
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = rustix::net::recvmsg(
        &*stream,
        &mut [std::io::IoSliceMut::new(&mut buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .unwrap_or_else(|e| panic!("recvmsg: {e}"));
    let mut fd = None;
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = m {
            fd = fds.next();
        }
    }
    buf.truncate(msg.bytes);
    let _ = stream.read_to_end(&mut buf);
    (fd, buf)
}

/// Waits (on a pidfd, at most `timeout`) for process `pid`, not a child of ours, to exit.
pub(crate) fn wait_pid_exit(pid: i32, timeout: std::time::Duration) -> bool {
    let Some(p) = rustix::process::Pid::from_raw(pid) else {
        return true;
    };
    let Ok(fd) = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) else {
        return true; // already gone
    };
    let mut fds = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::IN,
    )];
    let ts = rustix::event::Timespec {
        tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    matches!(rustix::event::poll(&mut fds, Some(&ts)), Ok(n) if n > 0)
}
