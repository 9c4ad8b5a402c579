//! OCI hooks: run a hook binary with the container state on stdin, its own env, and a timeout.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

use crate::error::{Result, RuntimeError};

/// Run `hooks` of `kind` in order, each with `state_json` on stdin. The first failure stops the
/// sequence and is returned.
pub(crate) fn run(kind: &'static str, hooks: &[Hook], state_json: &[u8]) -> Result<()> {
    for (index, h) in hooks.iter().enumerate() {
        run_one(kind, index, h, state_json)?;
    }
    Ok(())
}

/// Run every hook, reporting failures as warnings (poststart, poststop).
pub(crate) fn run_warn(kind: &'static str, hooks: &[Hook], state_json: &[u8]) {
    for (index, h) in hooks.iter().enumerate() {
        if let Err(e) = run_one(kind, index, h, state_json) {
            tracing::warn!("{}", crate::error::chain(&e));
        }
    }
}

fn run_one(kind: &'static str, index: usize, h: &Hook, state_json: &[u8]) -> Result<()> {
    let fail = |reason: String| RuntimeError::Hook {
        kind,
        index,
        path: h.path().clone(),
        reason,
    };
    let mut cmd = Command::new(h.path());
    let args = h.args().clone().unwrap_or_default();
    if let Some((arg0, rest)) = args.split_first() {
        cmd.arg0(arg0).args(rest);
    }
    cmd.env_clear();
    for e in h.env().iter().flatten() {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| fail(format!("start: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(state_json);
    }
    let deadline = h
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t.max(0) as u64));
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_child(&child),
        rustix::process::PidfdFlags::empty(),
    )
    .map_err(|e| fail(format!("pidfd_open: {e}")))?;
    loop {
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if timeout.is_some_and(|t| t.is_zero()) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!(
                "timed out after {}s",
                h.timeout().unwrap_or(0)
            )));
        }
        let mut fds = [rustix::event::PollFd::new(
            &pidfd,
            rustix::event::PollFlags::IN,
        )];
        let ts = timeout.and_then(|t| rustix::event::Timespec::try_from(t).ok());
        match rustix::event::poll(&mut fds, ts.as_ref()) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => break,
            Err(e) => return Err(fail(format!("poll: {e}"))),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("wait: {e}")))?;
    if !out.status.success() {
        // The error is printed as one line: fold the hook's stderr onto it.
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stderr = stderr.split_whitespace().collect::<Vec<_>>().join(" ");
        return Err(fail(if stderr.is_empty() {
            out.status.to_string()
        } else {
            format!("{}: {stderr}", out.status)
        }));
    }
    Ok(())
}
