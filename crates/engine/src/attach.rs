//! The attach client: what `run` (without `-d`), `start -a` and `attach` do with the monitor's
//! attach socket (`<run dir>/attach.sock`, frames in [`berth_monitor::proto`]). It copies the
//! container's output to this process's stdout/stderr and its own stdin to the container, puts
//! a terminal in raw mode for `-t`, forwards window-size changes and (with `--sig-proxy`)
//! signals, and ends on the container's exit code, the detach keys, or a lost monitor.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_monitor::proto::{self, Decoder};
use runtime::console::{DetachMatcher, RawMode, write_all};
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;

use crate::containers::Container;
use crate::engine::{Engine, POLL, io_err};
use crate::error::{EngineError, Result};
use crate::state::Status;
use crate::sys::SignalFd;

/// A unix socket path for `name` in `dir` short enough for `sockaddr_un` (108 bytes): the path
/// itself, or `/proc/<this pid>/fd/<dir fd>/<name>` while the returned descriptor stays open
/// (the run root plus a 64-character id easily pass the limit). The pid rather than `self`
/// lets a child (a runtime binary given a `--console-socket`) reach it too.
pub(crate) fn socket_path(dir: &Path, name: &str) -> std::io::Result<(Option<OwnedFd>, PathBuf)> {
    let full = dir.join(name);
    if full.as_os_str().len() < 100 {
        return Ok((None, full));
    }
    let fd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    let path = PathBuf::from(format!(
        "/proc/{}/fd/{}/{name}",
        std::process::id(),
        fd.as_raw_fd()
    ));
    Ok((Some(fd), path))
}

/// Docker's default detach sequence: ctrl-p, ctrl-q.
pub const DEFAULT_DETACH_KEYS: &[u8] = &[0x10, 0x11];

/// How an attach session behaves.
#[derive(Debug, Clone)]
pub struct AttachOptions {
    /// Send this process's stdin to the container.
    pub stdin: bool,
    /// The container has a terminal: raw mode here, window size there.
    pub tty: bool,
    /// The key sequence that detaches (empty: none).
    pub detach_keys: Vec<u8>,
    /// Forward SIGINT, SIGTERM, ... to the container (ignored with a terminal, where the keys
    /// reach it through the pty).
    pub sig_proxy: bool,
}

/// How an attach session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachEnd {
    /// The container exited with this code.
    Exited(i32),
    /// The user typed the detach keys; the container runs on.
    Detached,
    /// The monitor closed the connection without an exit code (it was killed, or the session
    /// was one of several and the container is being removed).
    Closed,
}

/// Parses `--detach-keys`: comma-separated `a`-`z` and `ctrl-<x>` with `<x>` one of `a`-`z`,
/// `@`, `[`, `\`, `]`, `^`, `_` (Docker's syntax). An empty string disables detaching.
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>> {
    let bad = || EngineError::InvalidValue {
        what: "detach keys",
        value: s.to_owned(),
    };
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|k| {
            if let Some(c) = k.strip_prefix("ctrl-") {
                let &[c] = c.as_bytes() else {
                    return Err(bad());
                };
                match c.to_ascii_lowercase() {
                    c @ b'a'..=b'z' => Ok(c - b'a' + 1),
                    b'@' => Ok(0),
                    c @ (b'[' | b'\\' | b']' | b'^' | b'_') => Ok(c - b'@'),
                    _ => Err(bad()),
                }
            } else {
                match k.as_bytes() {
                    &[c] if c.is_ascii_graphic() => Ok(c),
                    _ => Err(bad()),
                }
            }
        })
        .collect()
}

/// The size of the terminal on stdin (or stdout) as a resize frame.
fn size_frame() -> Option<Vec<u8>> {
    [rustix::stdio::stdin(), rustix::stdio::stdout()]
        .into_iter()
        .find_map(|fd| rustix::termios::tcgetwinsize(fd).ok())
        .filter(|ws| ws.ws_row > 0 && ws.ws_col > 0)
        .map(|ws| proto::resize(ws.ws_row, ws.ws_col))
}

impl Engine {
    /// Connects to the attach socket of a running container (waiting while it restarts).
    ///
    /// Errors: no such container, or it is not running.
    pub fn attach_socket(&self, reference: &str) -> Result<(Container, UnixStream)> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let c = self.container(reference)?;
            let path = c.run_dir.join("attach.sock");
            match c.state.status {
                Status::Running | Status::Paused => {
                    if let Ok((_dir, short)) = socket_path(&c.run_dir, "attach.sock")
                        && let Ok(s) = UnixStream::connect(&short)
                    {
                        return Ok((c, s));
                    }
                }
                Status::Restarting => {}
                from => {
                    return Err(EngineError::IllegalTransition {
                        id: c.id.short().to_owned(),
                        action: "attach to",
                        from,
                    });
                }
            }
            if Instant::now() >= deadline {
                return Err(io_err("connect to", &path)(
                    std::io::ErrorKind::TimedOut.into(),
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Runs an attach session on `sock` with this process's stdio until the container exits,
    /// the user detaches, or the monitor goes away.
    ///
    /// Errors: the terminal or the signal mask cannot be set up.
    pub fn attach_session(&self, sock: &UnixStream, opts: &AttachOptions) -> Result<AttachEnd> {
        let stdin = rustix::stdio::stdin();
        let (stdout, stderr) = (rustix::stdio::stdout(), rustix::stdio::stderr());
        let sock_err = |e: Errno| io_err("attach", Path::new("attach.sock"))(e.into());
        let _raw = (opts.tty && opts.stdin && rustix::termios::isatty(stdin))
            .then(|| RawMode::enter(stdin))
            .flatten();
        let mut signals = vec![libc::SIGWINCH];
        if opts.sig_proxy && !opts.tty {
            signals.extend(runtime::PROXIED_SIGNALS);
        }
        let sigs =
            SignalFd::new(&signals).map_err(io_err("block signals", Path::new("signalfd")))?;
        if opts.tty
            && let Some(f) = size_frame()
        {
            write_all(sock.as_fd(), &f).map_err(io_err("attach", Path::new("")))?;
        }
        let mut matcher = DetachMatcher::new(&opts.detach_keys);
        let mut frames = Decoder::default();
        let mut stdin_open = opts.stdin;
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let mut fds = [
                PollFd::new(sock, PollFlags::IN),
                PollFd::new(&sigs.fd, PollFlags::IN),
                PollFd::new(
                    &stdin,
                    if stdin_open {
                        PollFlags::IN
                    } else {
                        PollFlags::empty()
                    },
                ),
            ];
            match rustix::event::poll(&mut fds, None) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(sock_err(e)),
            }
            let (s, g, i) = (fds[0].revents(), fds[1].revents(), fds[2].revents());
            if !s.is_empty() {
                let n = match rustix::io::read(sock, &mut buf) {
                    Ok(n) => n,
                    Err(Errno::INTR | Errno::AGAIN) => continue,
                    Err(_) => 0,
                };
                if n == 0 {
                    return Ok(AttachEnd::Closed);
                }
                frames.push(&buf[..n]);
                while let Ok(Some((kind, payload))) = frames.next_frame() {
                    match kind {
                        proto::STDOUT => {
                            let _ = write_all(stdout, &payload);
                        }
                        proto::STDERR => {
                            let _ = write_all(stderr, &payload);
                        }
                        proto::EXIT => {
                            return Ok(AttachEnd::Exited(proto::to_int(&payload).unwrap_or(125)));
                        }
                        _ => {}
                    }
                }
            }
            if !g.is_empty() {
                for sig in sigs.read() {
                    let frame = if sig == libc::SIGWINCH {
                        if !opts.tty {
                            continue;
                        }
                        match size_frame() {
                            Some(f) => f,
                            None => continue,
                        }
                    } else {
                        proto::int(proto::SIGNAL, sig)
                    };
                    let _ = write_all(sock.as_fd(), &frame);
                }
            }
            if !i.is_empty() {
                let n = match rustix::io::read(stdin, &mut buf) {
                    Ok(n) => n,
                    Err(Errno::INTR | Errno::AGAIN) => continue,
                    Err(_) => 0,
                };
                if n == 0 {
                    stdin_open = false;
                    let _ = write_all(sock.as_fd(), &proto::encode(proto::CLOSE_STDIN, &[]));
                    continue;
                }
                let (data, detach) = matcher.feed(&buf[..n]);
                if !data.is_empty() {
                    let _ = write_all(sock.as_fd(), &proto::encode(proto::STDIN, &data));
                }
                if detach {
                    return Ok(AttachEnd::Detached);
                }
            }
        }
    }

    /// For the `run` whose monitor left it the exit (`Started::takes_exit`), once the session
    /// saw [`AttachEnd::Exited`]: records the exit, cleans up and removes an `--rm` container,
    /// as the monitor would, then tells the monitor on `sock` and waits for it to end. This
    /// saves starting `berth` again in the monitor for every short `run`. If the restart
    /// policy (changed by `update` meanwhile) restarts the container, nothing is done here:
    /// the monitor, seeing the session end, restarts it.
    ///
    /// Errors: no such container.
    pub fn take_exit(&self, reference: &str, code: i32, sock: &UnixStream) -> Result<()> {
        crate::repair::crash_point("take-exit");
        let c = self.container(reference)?;
        let monitor = c
            .state
            .monitor_pid
            .and_then(|p| crate::check::pin_monitor(p, &c.run_dir));
        if let crate::monitor::Settled::Done =
            crate::monitor::settle(&self.paths, &self.store, &c, code, false)
        {
            // The monitor ends while this makes sure the `--rm` container's files are gone.
            let _ = write_all(sock.as_fd(), &proto::encode(proto::EXIT_DONE, &[]));
            crate::monitor::remove_bundle(&c);
            if let Some(fd) = monitor {
                crate::check::wait_pidfd(&fd, Duration::from_secs(10));
            }
        }
        Ok(())
    }

    /// Waits until the container is no longer running (nor restarting) and its monitor is
    /// gone; returns its exit code.
    ///
    /// Errors: no such container.
    pub fn wait(&self, reference: &str) -> Result<i64> {
        let c = self.container(reference)?;
        loop {
            if self.wait_exit(&c, Duration::from_secs(3600))? {
                let now = self.store.read(|tx| tx.container_by_id(&c.id))?;
                return Ok(now.state.exit_code.unwrap_or(0));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_like_docker() {
        assert_eq!(
            parse_detach_keys("ctrl-p,ctrl-q").unwrap(),
            DEFAULT_DETACH_KEYS
        );
        assert_eq!(parse_detach_keys("ctrl-a,x").unwrap(), [1, b'x']);
        assert_eq!(parse_detach_keys("ctrl-@,ctrl-[").unwrap(), [0, 27]);
        assert!(parse_detach_keys("").unwrap().is_empty());
        for bad in ["ctrl-", "ctrl-pp", "xy", "ctrl-1"] {
            assert!(parse_detach_keys(bad).is_err(), "{bad}");
        }
    }
}
