//! The small half of berth's per-container monitor.
//!
//! `berth monitor <id>` (in the engine) does the start work with the whole engine at hand (the
//! store, the runtime), then replaces itself with the `berth-monitor` binary of this crate: a
//! process of well under 1 MiB that relays the container's stdio to the json-file log and to
//! attach clients, and waits for the container's init; when init exits it execs `berth monitor`
//! again to record the exit and apply the restart policy.
//!
//! This library holds what both halves and the attach client must agree on, and knows nothing
//! of the store or the runtime: [`proto`] (frames on the attach socket), [`jsonlog`] (Docker's
//! json-file lines, their timestamps and rotation) and [`Invocation`] (the idle monitor's
//! arguments).
#![warn(missing_docs)]

pub mod jsonlog;
pub mod proto;
pub mod relay;
#[allow(unsafe_code)]
mod sys;

pub use sys::adopt;

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

static NOTES: OnceLock<PathBuf> = OnceLock::new();

/// Sends the monitor's own messages (not the container's output) to `path`, appended, the file
/// made at the first message: most monitors never have one to write. Before this, and when the
/// file cannot be opened, they go to stderr. The first call wins.
pub fn set_notes(path: PathBuf) {
    let _ = NOTES.set(path);
    std::panic::set_hook(Box::new(|info| note(&format!("berth monitor: {info}"))));
}

/// Writes one message line (see [`set_notes`]).
pub fn note(msg: &str) {
    let line = format!("{msg}\n");
    let file = NOTES.get().and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok()
    });
    let _ = match file {
        Some(mut f) => f.write_all(line.as_bytes()),
        None => std::io::stderr().write_all(line.as_bytes()),
    };
}

/// What the idle monitor is given across `execve`: descriptors by number, the rest as text.
/// Encoded as `key=value` arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    /// Full container id.
    pub id: String,
    /// The `berth` binary to exec when the container exits (its path, for `argv[0]`).
    pub berth: String,
    /// A descriptor of that binary to execute it by (one a container cannot write, so the
    /// `berth` started through it runs protected without re-executing itself).
    pub exe_fd: Option<i32>,
    /// `--root` of that berth.
    pub root: String,
    /// `--run-root` of that berth.
    pub run_root: String,
    /// Host pid of the container's init (a child of the monitor).
    pub pid: i32,
    /// The json-file log.
    pub log: String,
    /// Rotate the log when it would grow past this many bytes (0: never).
    pub max_size: u64,
    /// Log files kept, the current one included (at least 1).
    pub max_file: u32,
    /// Read end of the container's stdout pipe.
    pub out_fd: Option<i32>,
    /// Read end of the container's stderr pipe.
    pub err_fd: Option<i32>,
    /// The pty master of a container with a terminal (stdout and stdin both).
    pub pty_fd: Option<i32>,
    /// Write end of the container's stdin pipe (`-i` without a terminal).
    pub stdin_fd: Option<i32>,
    /// The listening attach socket.
    pub listen_fd: Option<i32>,
    /// Attach clients already connected (the `run`/`start -a` that started the container).
    pub client_fds: Vec<i32>,
    /// Close the container's stdin when the first client that sent stdin leaves (`StdinOnce`).
    pub stdin_once: bool,
    /// The first of `client_fds` (the `run` that started the container and waits for it) takes
    /// the exit: after [`proto::EXIT`] the monitor waits for its [`proto::EXIT_DONE`] and ends,
    /// and hands the exit to `berth` only if that client goes away without it.
    pub exit_client: bool,
    /// The restart backoff in effect, in milliseconds, handed back on exit.
    pub backoff_ms: u64,
    /// Run `berth monitor <id> --health` this often (0: no health check).
    pub health_interval_ms: u64,
}

impl Invocation {
    /// Where the monitor's own messages go (see [`set_notes`]): `monitor.log` beside the
    /// json-file log, in the container's directory.
    #[must_use]
    pub fn notes_path(&self) -> PathBuf {
        std::path::Path::new(&self.log).with_file_name("monitor.log")
    }

    /// The arguments (after the program name).
    #[must_use]
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec![
            format!("id={}", self.id),
            format!("berth={}", self.berth),
            format!("root={}", self.root),
            format!("run-root={}", self.run_root),
            format!("pid={}", self.pid),
            format!("log={}", self.log),
            format!("max-size={}", self.max_size),
            format!("max-file={}", self.max_file),
            format!("stdin-once={}", u8::from(self.stdin_once)),
            format!("exit-client={}", u8::from(self.exit_client)),
            format!("backoff-ms={}", self.backoff_ms),
            format!("health-interval-ms={}", self.health_interval_ms),
        ];
        let fds = [
            ("out", self.out_fd),
            ("err", self.err_fd),
            ("pty", self.pty_fd),
            ("stdin", self.stdin_fd),
            ("listen", self.listen_fd),
            ("exe", self.exe_fd),
        ];
        for (k, v) in fds {
            if let Some(fd) = v {
                a.push(format!("{k}={fd}"));
            }
        }
        for fd in &self.client_fds {
            a.push(format!("client={fd}"));
        }
        a
    }

    /// Parses what [`Invocation::to_args`] made, ignoring keys it does not know; the error
    /// names the first bad argument.
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Self, String> {
        let mut inv = Invocation::default();
        for arg in args {
            let Some((k, v)) = arg.split_once('=') else {
                return Err(arg);
            };
            let num = |v: &str| v.parse::<i64>().map_err(|_| arg.clone());
            let fd = |v: &str| v.parse::<i32>().map(Some).map_err(|_| arg.clone());
            match k {
                "id" => inv.id = v.to_owned(),
                "berth" => inv.berth = v.to_owned(),
                "root" => inv.root = v.to_owned(),
                "run-root" => inv.run_root = v.to_owned(),
                "log" => inv.log = v.to_owned(),
                "pid" => inv.pid = v.parse().map_err(|_| arg.clone())?,
                "max-size" => inv.max_size = v.parse().map_err(|_| arg.clone())?,
                "max-file" => inv.max_file = v.parse().map_err(|_| arg.clone())?,
                "stdin-once" => inv.stdin_once = num(v)? != 0,
                "exit-client" => inv.exit_client = num(v)? != 0,
                "backoff-ms" => inv.backoff_ms = v.parse().map_err(|_| arg.clone())?,
                "health-interval-ms" => {
                    inv.health_interval_ms = v.parse().map_err(|_| arg.clone())?;
                }
                "out" => inv.out_fd = fd(v)?,
                "err" => inv.err_fd = fd(v)?,
                "pty" => inv.pty_fd = fd(v)?,
                "stdin" => inv.stdin_fd = fd(v)?,
                "listen" => inv.listen_fd = fd(v)?,
                "exe" => inv.exe_fd = fd(v)?,
                "client" => inv.client_fds.extend(fd(v)?),
                // A newer berth may pass more: an older monitor still relays and waits (a
                // monitor that gave up would orphan the container).
                _ => {}
            }
        }
        if inv.id.is_empty() || inv.berth.is_empty() || inv.pid <= 0 {
            return Err("id=, berth= and pid= are required".into());
        }
        inv.max_file = inv.max_file.max(1);
        Ok(inv)
    }
}

/// Waits for child `pid`; Docker's exit code: its status, or 128 + the signal that killed it
/// (125 when it cannot be waited for).
#[must_use]
pub fn wait_child(pid: i32) -> i32 {
    use rustix::process::{Pid, WaitOptions};
    let Some(pid) = Pid::from_raw(pid) else {
        return 125;
    };
    loop {
        match rustix::process::waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, status))) => {
                if let Some(code) = status.exit_status() {
                    return code;
                }
                if let Some(sig) = status.terminating_signal() {
                    return 128 + sig;
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            Ok(None) | Err(_) => return 125,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocation_round_trips() {
        let inv = Invocation {
            id: "abc".into(),
            berth: "/usr/bin/berth".into(),
            exe_fd: Some(4),
            root: "/var/lib/berth".into(),
            run_root: "/run/berth".into(),
            pid: 42,
            log: "/x/y-json.log".into(),
            max_size: 1024,
            max_file: 3,
            out_fd: Some(5),
            err_fd: Some(6),
            pty_fd: None,
            stdin_fd: Some(7),
            listen_fd: Some(8),
            client_fds: vec![9, 10],
            stdin_once: true,
            exit_client: true,
            backoff_ms: 200,
            health_interval_ms: 30_000,
        };
        assert_eq!(Invocation::parse(inv.to_args()).unwrap(), inv);
        assert!(Invocation::parse(["pid=x".to_owned()]).is_err());
        let mut newer = inv.to_args();
        newer.push("from-the-future=1".into());
        assert_eq!(Invocation::parse(newer).unwrap(), inv);
        assert!(Invocation::parse(["id=a".to_owned()]).is_err());
    }
}
