//! Running the peers' CLIs with a deadline, and daemons with a Drop guard.

use std::fs::{self, File};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};

/// What a finished command printed and how it ended.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The command line, for messages.
    pub(crate) line: String,
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) elapsed: Duration,
}

impl Outcome {
    /// Panics with the whole outcome unless the command exited 0.
    pub(crate) fn ok(self) -> Self {
        assert!(self.status.success(), "command failed:\n{self}");
        self
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$ {}\n{} after {:?}\n--- stdout\n{}--- stderr\n{}---",
            self.line, self.status, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` with stdin from /dev/null and stdout/stderr into files under `log_dir` (files, not
/// pipes: a monitor that inherits them, such as conmon, cannot then block the read), in its own
/// process group that is killed when `timeout` passes.
pub(crate) fn run(cmd: &mut Command, log_dir: &Path, timeout: Duration) -> Outcome {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let line = command_line(cmd);
    let out_path = log_dir.join(format!("cmd-{n}.out"));
    let err_path = log_dir.join(format!("cmd-{n}.err"));
    let start = Instant::now();
    let mut child =
        spawn(cmd, &out_path, &err_path).unwrap_or_else(|e| panic!("spawn `{line}`: {e}"));
    let status = wait_deadline(&mut child, start + timeout);
    let timed_out = status.is_none();
    let read = |p: &PathBuf| fs::read_to_string(p).unwrap_or_default();
    let outcome = Outcome {
        line,
        status: status.unwrap_or_else(|| {
            kill_group(&child, Signal::KILL);
            child.wait().unwrap_or_else(|e| panic!("wait: {e}"))
        }),
        stdout: read(&out_path),
        stderr: read(&err_path),
        elapsed: start.elapsed(),
    };
    assert!(
        !timed_out,
        "command timed out after {timeout:?}:\n{outcome}"
    );
    outcome
}

fn spawn(cmd: &mut Command, out: &Path, err: &Path) -> io::Result<Child> {
    cmd.stdin(Stdio::null())
        .stdout(File::create(out)?)
        .stderr(File::create(err)?)
        .process_group(0)
        .spawn()
}

fn wait_deadline(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn kill_group(child: &Child, signal: Signal) {
    // The child leads its own group (process_group(0)); its pid is > 1, so this never becomes
    // kill(-1, ...).
    if let Some(pgid) = i32::try_from(child.id()).ok().and_then(Pid::from_raw)
        && pgid != Pid::INIT
    {
        let _ = kill_process_group(pgid, signal);
    }
}

fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A long-running peer daemon with its output in a log file. Dropping it stops it: SIGTERM to
/// its process group, SIGKILL after a grace period.
pub(crate) struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `cmd` in its own process group, logging to `log`.
    pub(crate) fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf) -> Self {
        let child = spawn(cmd, &log, &log.with_extension("stderr"))
            .unwrap_or_else(|e| panic!("start {name} (`{}`): {e}", command_line(cmd)));
        Self { name, child, log }
    }

    /// Polls `ready` until it answers true; fails early with the log when the daemon dies.
    pub(crate) fn wait_ready(&mut self, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let start = Instant::now();
        loop {
            if ready() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited before it was ready ({status}):\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            assert!(
                start.elapsed() < timeout,
                "{} not ready after {timeout:?}:\n{}",
                self.name,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last lines the daemon wrote, for failure messages.
    pub(crate) fn log_tail(&self) -> String {
        let mut text = String::new();
        for path in [self.log.clone(), self.log.with_extension("stderr")] {
            let content = fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = content.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            text.push_str(&format!("--- {}\n{}\n", path.display(), tail.join("\n")));
        }
        text
    }

    /// Stops the daemon: SIGTERM, then SIGKILL after `grace`.
    pub(crate) fn stop(&mut self, grace: Duration) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        kill_group(&self.child, Signal::TERM);
        if wait_deadline(&mut self.child, Instant::now() + grace).is_none() {
            kill_group(&self.child, Signal::KILL);
            let _ = self.child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}
