//! The terminal of `run` without `--console-socket`: the runtime itself receives the pty
//! master and relays between its own terminal and the container's, as runc does for an
//! interactive `runc run`. The relay, raw mode and detach-key matching also serve callers
//! holding a pty master of their own (`berth exec -t`, attach clients).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::event::{PollFd, PollFlags};
use rustix::termios::{OptionalActions, Termios};

use crate::error::{Result, RuntimeError};
use crate::sys;

/// Puts a terminal in raw mode and restores it on drop (also for attach clients).
pub struct RawMode {
    fd: OwnedFd,
    saved: Termios,
}

impl RawMode {
    /// Raw mode on the terminal `fd`; `None` when it is not a terminal or cannot be set.
    #[must_use]
    pub fn enter(fd: BorrowedFd<'_>) -> Option<RawMode> {
        let fd = fd.try_clone_to_owned().ok()?;
        let saved = rustix::termios::tcgetattr(&fd).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&fd, OptionalActions::Now, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(&self.fd, OptionalActions::Now, &self.saved);
    }
}

fn copy_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    if let Ok(ws) = rustix::termios::tcgetwinsize(from) {
        let _ = sys::set_winsize(to, ws.ws_row, ws.ws_col);
    }
}

/// Writes all of `buf` to `fd`, retrying on `EINTR`/`EAGAIN`; a write that takes nothing is
/// `EPIPE`.
///
/// Errors: the first failed write.
pub fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        match rustix::io::write(fd, buf) {
            Ok(0) => return Err(rustix::io::Errno::PIPE.into()),
            Ok(n) => buf = &buf[n..],
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Detach-key matching over a stdin byte stream.
#[derive(Debug)]
pub struct DetachMatcher<'a> {
    keys: &'a [u8],
    matched: usize,
}

impl<'a> DetachMatcher<'a> {
    /// A matcher for `keys` (empty: never detaches).
    #[must_use]
    pub fn new(keys: &'a [u8]) -> DetachMatcher<'a> {
        DetachMatcher { keys, matched: 0 }
    }

    /// Feeds `data`; returns the bytes to send and whether the full sequence was typed. Bytes
    /// of a partial match are held back until the match fails.
    pub fn feed(&mut self, data: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(data.len());
        for &b in data {
            if self.keys.is_empty() {
                out.push(b);
                continue;
            }
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
                continue;
            }
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
                if self.keys.len() == 1 {
                    return (out, true);
                }
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

/// What a [`relay`] does with this process's stdin.
#[derive(Debug, Clone, Copy)]
pub struct RelayOptions<'a> {
    /// Copy stdin to the terminal (raw mode when stdin is one); else stdin is left alone.
    pub stdin: bool,
    /// Typing these keys on stdin ends the relay with [`Relayed::Detached`] (empty: never).
    pub detach_keys: &'a [u8],
}

/// How a [`relay`] ended.
#[derive(Debug)]
pub enum Relayed {
    /// The child exited with this shell-style status (reaped).
    Exited(i32),
    /// The detach keys were typed; the child runs on and this is its terminal's master.
    Detached(OwnedFd),
}

/// Relay stdin -> `master` and `master` -> stdout until child `pid` exits or the detach keys
/// are typed; forward window-size changes and termination signals.
///
/// `pid` must be a child of this process (or of a subreaper chain ending here): it is reaped.
pub fn relay(master: OwnedFd, pid: i32, opts: RelayOptions<'_>) -> Result<Relayed> {
    let stdin = rustix::stdio::stdin();
    let stdout = rustix::stdio::stdout();
    let is_tty = rustix::termios::isatty(stdin);
    let _raw = if is_tty && opts.stdin {
        RawMode::enter(stdin)
    } else {
        None
    };
    if is_tty {
        copy_size(stdin, master.as_fd());
    }
    let sigs = sys::signalfd(&[
        libc::SIGWINCH,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGINT,
    ])
    .map_err(|e| RuntimeError::sys("signalfd", e))?;
    let pidfd = rustix::process::Pid::from_raw(pid)
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok())
        .ok_or_else(|| {
            RuntimeError::Child("container exited before its terminal was attached".into())
        })?;
    let mut matcher = DetachMatcher::new(opts.detach_keys);
    let mut stdin_open = opts.stdin;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let mut fds = [
            PollFd::new(&master, PollFlags::IN),
            PollFd::new(&pidfd, PollFlags::IN),
            PollFd::new(&sigs, PollFlags::IN),
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
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(RuntimeError::sys("poll terminal", e.into())),
        }
        let (m, p, s, i) = (
            fds[0].revents(),
            fds[1].revents(),
            fds[2].revents(),
            fds[3].revents(),
        );
        if m.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
            match rustix::io::read(&master, &mut buf) {
                Ok(n) if n > 0 => {
                    let _ = write_all(stdout, &buf[..n]);
                }
                // EIO: every slave descriptor is closed; the exit follows.
                Ok(_) | Err(_) => {}
            }
        }
        if i.intersects(PollFlags::IN | PollFlags::HUP) {
            match rustix::io::read(stdin, &mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    let (data, detach) = matcher.feed(&buf[..n]);
                    let _ = write_all(master.as_fd(), &data);
                    if detach {
                        return Ok(Relayed::Detached(master));
                    }
                }
            }
        }
        if s.contains(PollFlags::IN) {
            let mut info = [0u8; 128];
            while let Ok(128) = rustix::io::read(&sigs, &mut info) {
                let signo = i32::from_ne_bytes([info[0], info[1], info[2], info[3]]);
                if signo == libc::SIGWINCH {
                    if is_tty {
                        copy_size(stdin, master.as_fd());
                    }
                } else if let Some(sig) = rustix::process::Signal::from_named_raw(signo) {
                    let _ = rustix::process::pidfd_send_signal(&pidfd, sig);
                }
            }
        }
        if p.contains(PollFlags::IN) {
            // Drain what the container wrote before it exited.
            rustix::io::ioctl_fionbio(&master, true).ok();
            while let Ok(n) = rustix::io::read(&master, &mut buf) {
                if n == 0 {
                    break;
                }
                let _ = write_all(stdout, &buf[..n]);
            }
            return sys::reap(pid)
                .map(Relayed::Exited)
                .map_err(|e| RuntimeError::sys("wait for container", e));
        }
    }
}

/// Receive the pty master a container's init sent over `conn` (SCM_RIGHTS): what a
/// `--console-socket` listener does with the connection it accepted.
pub fn receive_master(conn: BorrowedFd<'_>) -> Result<OwnedFd> {
    use std::io::IoSliceMut;
    use std::mem::MaybeUninit;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = rustix::net::RecvAncillaryBuffer::new(&mut space);
    let mut buf = [0u8; 256];
    rustix::net::recvmsg(
        conn,
        &mut [IoSliceMut::new(&mut buf)],
        &mut cmsg,
        rustix::net::RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| RuntimeError::sys("receive pty master", e.into()))?;
    for m in cmsg.drain() {
        if let rustix::net::RecvAncillaryMessage::ScmRights(mut fds) = m
            && let Some(fd) = fds.next()
        {
            return Ok(fd);
        }
    }
    Err(RuntimeError::Child(
        "container init sent no pty master".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_sequence_is_held_back_then_released() {
        let keys = [0x10, 0x11];
        let mut m = DetachMatcher::new(&keys);
        assert_eq!(m.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(m.feed(b"c"), (b"\x10c".to_vec(), false));
        assert_eq!(m.feed(b"\x10\x10"), (b"\x10".to_vec(), false));
        assert_eq!(m.feed(b"\x11rest"), (Vec::new(), true));
        let mut none = DetachMatcher::new(&[]);
        assert_eq!(none.feed(b"\x10\x11"), (b"\x10\x11".to_vec(), false));
    }
}
