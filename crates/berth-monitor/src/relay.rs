//! The relay loop of the idle monitor: the container's output to the json-file log and to
//! attach clients, their input to the container, until the container's init exits. The
//! `berth-monitor` binary runs it after `execve`; `berth monitor` runs it in-process when the
//! container has already exited by the time it would exec (a short-lived container need not
//! wait for a second program to start).

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::process::Pid;

use crate::Invocation;
use crate::jsonlog::{self, Writer};
use crate::proto::{self, Decoder};
use crate::sys;

/// How [`relay`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relayed {
    /// Init's exit code, Docker style (128 + signal when killed).
    pub code: i32,
    /// The client that takes the exit (see [`Invocation::exit_client`]) recorded it; otherwise
    /// `berth monitor <id> --exited <code>` must.
    pub exit_taken: bool,
}

/// Relays until the container's init exits, adopting the descriptors `inv` names (they must
/// be open and owned by nobody else). `trim`: drop the page-table entries of the code that
/// start-up used (the idle binary, which may idle for months). Errors: the monitor could not
/// be set up (init not a child of this process, a bad descriptor); init is not waited for.
pub fn relay(inv: &Invocation, trim: bool) -> std::io::Result<Relayed> {
    let mut m = Monitor::new(inv)?;
    if trim {
        sys::trim_code();
    }
    let code = m.run();
    let exit_taken = m.exit_taken();
    Ok(Relayed { code, exit_taken })
}

/// A command that runs `berth`: through the descriptor berth handed over when there is one (see
/// [`Invocation::exe_fd`]), named by its path in `argv[0]` either way.
pub fn berth(inv: &Invocation) -> std::process::Command {
    let mut c = match inv.exe_fd {
        Some(fd) => std::process::Command::new(format!("/proc/self/fd/{fd}")),
        None => std::process::Command::new(&inv.berth),
    };
    c.arg0(&inv.berth);
    c
}

/// One output of the container: a pipe, or the pty master.
struct Stream {
    fd: OwnedFd,
    kind: u8,
    partial: Vec<u8>,
    done: bool,
}

struct Client {
    sock: OwnedFd,
    frames: Decoder,
    sent_stdin: bool,
    alive: bool,
    /// This client records the exit (`Invocation::exit_client`).
    takes_exit: bool,
}

struct Monitor {
    pid: i32,
    pidfd: OwnedFd,
    log: Option<Writer>,
    streams: Vec<Stream>,
    pty: Option<OwnedFd>,
    input: Option<OwnedFd>,
    pending: Vec<u8>,
    /// Close the container's stdin once `pending` is written.
    closing: bool,
    listen: Option<OwnedFd>,
    clients: Vec<Client>,
    stdin_once: bool,
    health: Option<Health>,
}

/// The periodic `berth monitor <id> --health`.
struct Health {
    every: Duration,
    next: Instant,
    /// The check running now, and a pidfd that turns readable when it exits.
    running: Option<(std::process::Child, OwnedFd)>,
    command: std::process::Command,
}

impl Health {
    fn start(&mut self) {
        self.next = Instant::now() + self.every;
        if self.running.is_some() {
            return;
        }
        let Ok(child) = self.command.spawn() else {
            return;
        };
        let pidfd = Pid::from_raw(child.id().cast_signed()).and_then(|p| {
            rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
        });
        match pidfd {
            Some(fd) => self.running = Some((child, fd)),
            None => {
                let mut child = child;
                let _ = child.wait();
            }
        }
    }

    fn reap(&mut self) {
        if let Some((mut child, _)) = self.running.take() {
            let _ = child.wait();
        }
    }
}

/// What one poll round saw.
enum Ready {
    Exit,
    Accept,
    Stream(usize),
    Client(usize),
    Input,
    HealthDue,
    HealthDone,
}

impl Monitor {
    fn new(inv: &Invocation) -> std::io::Result<Monitor> {
        let pid = Pid::from_raw(inv.pid).ok_or(Errno::SRCH)?;
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
        let health = (inv.health_interval_ms > 0).then(|| {
            let mut command = berth(inv);
            command
                .args([
                    "--root",
                    &inv.root,
                    "--run-root",
                    &inv.run_root,
                    "monitor",
                    &inv.id,
                ])
                .arg("--health")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null());
            let every = Duration::from_millis(inv.health_interval_ms);
            Health {
                every,
                next: Instant::now() + every,
                running: None,
                command,
            }
        });
        let log = match Writer::open(inv.log.as_ref(), inv.max_size, inv.max_file) {
            Ok(w) => Some(w),
            Err(e) => {
                crate::note(&format!("berth-monitor: open log {}: {e}", inv.log));
                None
            }
        };
        let mut streams = Vec::new();
        let mut pty = None;
        let mut input = inv.stdin_fd.and_then(sys::adopt);
        if let Some(master) = inv.pty_fd.and_then(sys::adopt) {
            streams.push(Stream {
                fd: master.try_clone()?,
                kind: proto::STDOUT,
                partial: Vec::new(),
                done: false,
            });
            input = Some(master.try_clone()?);
            pty = Some(master);
        }
        for (fd, kind) in [(inv.out_fd, proto::STDOUT), (inv.err_fd, proto::STDERR)] {
            if let Some(fd) = fd.and_then(sys::adopt) {
                streams.push(Stream {
                    fd,
                    kind,
                    partial: Vec::new(),
                    done: false,
                });
            }
        }
        if let Some(fd) = &input {
            rustix::fs::fcntl_setfl(fd, rustix::fs::OFlags::NONBLOCK)?;
        }
        let adopt_cloexec = |fd: OwnedFd| -> std::io::Result<OwnedFd> {
            rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)?;
            Ok(fd)
        };
        let listen = inv
            .listen_fd
            .and_then(sys::adopt)
            .map(adopt_cloexec)
            .transpose()?;
        let mut clients = Vec::new();
        for (i, fd) in inv
            .client_fds
            .iter()
            .filter_map(|&n| sys::adopt(n))
            .enumerate()
        {
            clients.push(Client {
                sock: adopt_cloexec(fd)?,
                frames: Decoder::default(),
                sent_stdin: false,
                alive: true,
                takes_exit: inv.exit_client && i == 0,
            });
        }
        for s in &streams {
            rustix::io::fcntl_setfd(&s.fd, rustix::io::FdFlags::CLOEXEC)?;
        }
        for fd in input.iter().chain(pty.iter()) {
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
        }
        Ok(Monitor {
            pid: inv.pid,
            pidfd,
            log,
            streams,
            pty,
            input,
            pending: Vec::new(),
            closing: false,
            listen,
            clients,
            stdin_once: inv.stdin_once,
            health,
        })
    }

    /// Relays until init exits; returns its exit code.
    fn run(&mut self) -> i32 {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            for ready in self.poll() {
                match ready {
                    Ready::Exit => return self.finish(&mut buf),
                    Ready::Accept => self.accept(),
                    Ready::Stream(i) => self.read_stream(i, &mut buf),
                    Ready::Client(i) => self.read_client(i, &mut buf),
                    Ready::Input => self.flush_input(),
                    Ready::HealthDue => {
                        if let Some(h) = &mut self.health {
                            h.start();
                        }
                    }
                    Ready::HealthDone => {
                        if let Some(h) = &mut self.health {
                            h.reap();
                        }
                    }
                }
            }
            self.streams.retain(|s| !s.done);
            self.clients.retain(|c| c.alive);
        }
    }

    fn poll(&self) -> Vec<Ready> {
        let mut fds = vec![PollFd::new(&self.pidfd, PollFlags::IN)];
        let mut what = vec![Ready::Exit];
        if let Some(l) = &self.listen {
            fds.push(PollFd::new(l, PollFlags::IN));
            what.push(Ready::Accept);
        }
        for (i, s) in self.streams.iter().enumerate() {
            fds.push(PollFd::new(&s.fd, PollFlags::IN));
            what.push(Ready::Stream(i));
        }
        // While stdin data waits for the container, take no more from the clients.
        let take_input = self.pending.is_empty();
        for (i, c) in self.clients.iter().enumerate() {
            let flags = if take_input {
                PollFlags::IN
            } else {
                PollFlags::empty()
            };
            fds.push(PollFd::new(&c.sock, flags));
            what.push(Ready::Client(i));
        }
        if let Some(fd) = self.input.as_ref().filter(|_| !take_input) {
            fds.push(PollFd::new(fd, PollFlags::OUT));
            what.push(Ready::Input);
        }
        if let Some((_, fd)) = self.health.as_ref().and_then(|h| h.running.as_ref()) {
            fds.push(PollFd::new(fd, PollFlags::IN));
            what.push(Ready::HealthDone);
        }
        let timeout = self.health.as_ref().and_then(|h| {
            rustix::event::Timespec::try_from(h.next.saturating_duration_since(Instant::now())).ok()
        });
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => {
                crate::note(&format!("berth-monitor: poll: {e}"));
                return vec![Ready::Exit];
            }
        }
        let seen: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        let mut ready: Vec<Ready> = what
            .into_iter()
            .zip(seen)
            .filter_map(|(w, s)| s.then_some(w))
            .collect();
        if self
            .health
            .as_ref()
            .is_some_and(|h| h.next <= Instant::now())
        {
            ready.push(Ready::HealthDue);
        }
        ready
    }

    fn accept(&mut self) {
        let Some(l) = &self.listen else { return };
        if let Ok(sock) = rustix::net::accept_with(l, rustix::net::SocketFlags::CLOEXEC) {
            self.clients.push(Client {
                sock,
                frames: Decoder::default(),
                sent_stdin: false,
                alive: true,
                takes_exit: false,
            });
        }
    }

    fn read_stream(&mut self, i: usize, buf: &mut [u8]) {
        let n = match rustix::io::read(&self.streams[i].fd, &mut *buf) {
            Ok(n) => n,
            Err(Errno::INTR | Errno::AGAIN) => return,
            // EIO on a pty master: every slave is closed.
            Err(_) => 0,
        };
        if n == 0 {
            self.end_stream(i);
            return;
        }
        let kind = self.streams[i].kind;
        self.broadcast(&proto::encode(kind, &buf[..n]));
        self.log(i, &buf[..n]);
    }

    fn end_stream(&mut self, i: usize) {
        let s = &mut self.streams[i];
        let rest = std::mem::take(&mut s.partial);
        let kind = s.kind;
        s.done = true;
        if !rest.is_empty() {
            self.write_log(kind, &rest);
        }
    }

    /// Appends output to the log, one entry per line (Docker splits lines over 16 KiB).
    fn log(&mut self, i: usize, data: &[u8]) {
        let kind = self.streams[i].kind;
        let mut partial = std::mem::take(&mut self.streams[i].partial);
        partial.extend_from_slice(data);
        let mut start = 0;
        while let Some(nl) = partial[start..].iter().position(|&b| b == b'\n') {
            let end = start + nl + 1;
            self.write_log(kind, &partial[start..end]);
            start = end;
        }
        partial.drain(..start);
        if partial.len() >= 16 * 1024 {
            self.write_log(kind, &partial);
            partial.clear();
        }
        self.streams[i].partial = partial;
    }

    fn write_log(&mut self, kind: u8, data: &[u8]) {
        let stream = if kind == proto::STDERR {
            "stderr"
        } else {
            "stdout"
        };
        if let Some(w) = &mut self.log
            && let Err(e) = w.write(&jsonlog::line(stream, data, jsonlog::now_nanos()))
        {
            crate::note(&format!("berth-monitor: write log: {e}"));
        }
    }

    fn broadcast(&mut self, frame: &[u8]) {
        for c in self.clients.iter_mut().filter(|c| c.alive) {
            if write_all(c.sock.as_fd(), frame).is_err() {
                c.hang_up();
            }
        }
    }

    fn read_client(&mut self, i: usize, buf: &mut [u8]) {
        let n = match rustix::io::read(&self.clients[i].sock, &mut *buf) {
            Ok(n) => n,
            Err(Errno::INTR | Errno::AGAIN) => return,
            Err(_) => 0,
        };
        if n == 0 {
            if self.clients[i].sent_stdin && self.stdin_once {
                self.close_stdin();
            }
            self.clients[i].hang_up();
            return;
        }
        self.clients[i].frames.push(&buf[..n]);
        loop {
            let frame = match self.clients[i].frames.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(proto::TooLarge) => {
                    self.clients[i].hang_up();
                    break;
                }
            };
            match frame {
                (proto::STDIN, data) => {
                    self.clients[i].sent_stdin = true;
                    if self.input.is_some() {
                        self.pending.extend_from_slice(&data);
                    }
                }
                (proto::CLOSE_STDIN, _) if self.stdin_once => self.close_stdin(),
                (proto::RESIZE, p) => {
                    if let (Some(pty), Some((rows, cols))) = (&self.pty, proto::to_size(&p)) {
                        let ws = rustix::termios::Winsize {
                            ws_row: rows,
                            ws_col: cols,
                            ws_xpixel: 0,
                            ws_ypixel: 0,
                        };
                        let _ = rustix::termios::tcsetwinsize(pty, ws);
                    }
                }
                (proto::SIGNAL, p) => {
                    let sig = proto::to_int(&p).and_then(rustix::process::Signal::from_named_raw);
                    if let (Some(sig), Some(pid)) = (sig, Pid::from_raw(self.pid)) {
                        let _ = rustix::process::kill_process(pid, sig);
                    }
                }
                _ => {}
            }
        }
        self.flush_input();
    }

    /// Closes the container's stdin pipe once what the clients sent is written (a terminal has
    /// no end of input but its own ^D).
    fn close_stdin(&mut self) {
        if self.pty.is_none() {
            self.closing = true;
            self.flush_input();
        }
    }

    fn flush_input(&mut self) {
        let Some(fd) = &self.input else {
            self.pending.clear();
            return;
        };
        while !self.pending.is_empty() {
            match rustix::io::write(fd, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return,
                Err(_) => {
                    self.pending.clear();
                    self.input = None;
                    return;
                }
            }
        }
        if self.closing {
            self.input = None;
        }
    }

    /// Init exited: reap it, take what is left in the pipes, tell the clients, return its code.
    fn finish(&mut self, buf: &mut [u8]) -> i32 {
        let code = crate::wait_child(self.pid);
        // A check still running has nothing left to check.
        if let Some((mut child, _)) = self.health.as_mut().and_then(|h| h.running.take()) {
            let _ = child.kill();
            let _ = child.wait();
        }
        for i in 0..self.streams.len() {
            let _ = rustix::fs::fcntl_setfl(&self.streams[i].fd, rustix::fs::OFlags::NONBLOCK);
            while !self.streams[i].done {
                match rustix::io::read(&self.streams[i].fd, &mut *buf) {
                    Ok(n) if n > 0 => {
                        let kind = self.streams[i].kind;
                        self.broadcast(&proto::encode(kind, &buf[..n]));
                        self.log(i, &buf[..n]);
                    }
                    Err(Errno::INTR) => {}
                    _ => self.end_stream(i),
                }
            }
        }
        self.broadcast(&proto::int(proto::EXIT, code));
        code
    }
}

/// How long the client that took the exit may take to record it before `berth` is handed it.
const EXIT_TAKEOVER: Duration = Duration::from_secs(30);

impl Monitor {
    /// After [`Monitor::finish`]: whether the client that took the exit (if one did and is
    /// still here) says it recorded it. Its hang-up without that, or silence for
    /// [`EXIT_TAKEOVER`], leaves the exit to `berth`.
    fn exit_taken(&mut self) -> bool {
        let Some(c) = self.clients.iter_mut().find(|c| c.alive && c.takes_exit) else {
            return false;
        };
        let deadline = Instant::now() + EXIT_TAKEOVER;
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let timeout = rustix::event::Timespec::try_from(left).ok();
            let mut fds = [PollFd::new(&c.sock, PollFlags::IN)];
            match rustix::event::poll(&mut fds, timeout.as_ref()) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(_) => return false,
            }
            let n = match rustix::io::read(&c.sock, &mut buf) {
                Ok(0) => return false,
                Ok(n) => n,
                Err(Errno::INTR | Errno::AGAIN) => continue,
                Err(_) => return false,
            };
            c.frames.push(&buf[..n]);
            while let Ok(Some((kind, _))) = c.frames.next_frame() {
                if kind == proto::EXIT_DONE {
                    return true;
                }
            }
        }
    }
}

impl Client {
    fn hang_up(&mut self) {
        self.sent_stdin = false;
        self.alive = false;
        self.frames = Decoder::default();
        let _ = rustix::net::shutdown(&self.sock, rustix::net::Shutdown::Both);
    }
}

fn write_all(fd: std::os::fd::BorrowedFd<'_>, mut data: &[u8]) -> rustix::io::Result<()> {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(0) => return Err(Errno::PIPE),
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
