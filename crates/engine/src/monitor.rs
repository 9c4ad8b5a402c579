//! `berth monitor <id>`: the per-container process that outlives the CLI. Its busy half lives
//! here (it has the whole engine: store, runtime); its idle half is the small `berth-monitor`
//! binary (crate `berth-monitor`) it execs into once the container runs.
//!
//! ```text
//! berth run/start ── fork, fork, execveat (protected binary) ──> berth monitor --standby
//!                                   (a grandchild: the CLI never waits on the monitor)
//!                                   setsid, child subreaper; stdin = an attach client (or
//!                                   /dev/null), stdout = the control socket
//!                                   store open; `go <id>` (see `monitor_start`)
//!                                   mount, attach.sock, create + start, record Started
//!                                   report `ok` / `err <code> <message>`
//!                                   execve berth-monitor (same pid: init stays its child)
//!                                     relay stdio <-> log + attach clients; init exits
//!                                   execve berth monitor <id> --exited <code>
//!                                   restart policy? record Restarting, back off, start again,
//!                                     execve berth-monitor ... : record Exited, clean up
//! ```
//! The runtime calls are in `create_container`, `start_container` and (through the lifecycle
//! module) `cleanup`, so that another OCI runtime can stand in for them.

use std::fs::{self, File};
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::pipe::PipeFlags;
use rustix::process::{Pid, WaitOptions};

use crate::attach::socket_path;
use crate::containers::Container;
use crate::engine::{POLL, io_err, rootfs_path};
use crate::error::{EngineError, Result};
use crate::id::Timestamp;
use crate::lifecycle::cleanup;
use crate::state::{Status, Transition};
use crate::store::{Paths, Store};

/// Where the monitor was asked to begin.
#[derive(Debug, Clone, Default)]
pub struct MonitorArgs {
    /// Full container id.
    pub id: String,
    /// The container's init exited with this code (from the idle monitor).
    pub exited: Option<i32>,
    /// The restart backoff in effect, in milliseconds.
    pub backoff_ms: u64,
    /// Run one health check and record it (started by the idle monitor).
    pub health: bool,
    /// The attach client on stdin (the `run` that waits) records the exit itself (see
    /// `berth_monitor::Invocation::exit_client`).
    pub exit_client: bool,
    /// Started before the container exists: `id` and `exit_client` come in a `go` line on
    /// stdout (a socket), which also takes the report (see `monitor_start`).
    pub standby: bool,
}

/// First restart delay, doubled per restart, reset after a run of [`BACKOFF_RESET`]: Docker's.
const BACKOFF_START_MS: u64 = 100;
const BACKOFF_MAX_MS: u64 = 60_000;
const BACKOFF_RESET: Duration = Duration::from_secs(10);

/// Runs the monitor; returns its exit status (the container's exit code where it has one).
#[must_use]
pub fn monitor(paths: &Paths, args: &MonitorArgs) -> i32 {
    let mut args = args.clone();
    // Started through a descriptor (`/proc/self/fd/<n>`), the process would be named `<n>`.
    let _ = rustix::thread::set_name(c"berth");
    if args.health {
        return crate::health::check(paths, &args.id);
    }
    if let Some(code) = args.exited {
        return exited(paths, &args.id, code, args.backoff_ms);
    }
    let _ = rustix::process::setsid();
    let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
    // stdout is the report pipe; stdin an attach client (a socket) or /dev/null.
    let ready = rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stdout(), 3).ok();
    let client = rustix::fs::fstat(rustix::stdio::stdin())
        .ok()
        .filter(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Socket
        })
        .and_then(|_| rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stdin(), 3).ok());
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stdout(&null);
    }
    let report = |line: &str| {
        if let Some(fd) = &ready {
            let _ = rustix::io::write(fd, format!("{line}\n").as_bytes());
        }
    };
    let opened = if args.standby {
        // What needs no container, while the CLI creates it.
        let store = Store::open(paths);
        let _ = cgroups::Hierarchy::detect(Path::new(cgroups::DEFAULT_ROOT));
        let Some(line) = ready.as_ref().and_then(|fd| read_line(fd.as_fd())) else {
            // The create failed or the CLI is gone: nothing was made for this monitor.
            return 0;
        };
        match crate::monitor_start::parse_go(&line) {
            Some((id, exit_client)) => {
                args.id = id;
                args.exit_client = exit_client;
            }
            None => {
                report(&format!("err 125 bad hand-over line {:?}", line.trim_end()));
                return 125;
            }
        }
        store.and_then(|store| {
            let c = store.read(|tx| tx.container(&args.id))?;
            Ok((store, c))
        })
    } else {
        open(paths, &args.id)
    };
    let (store, c) = match opened {
        Ok(x) => x,
        Err(e) => {
            report(&format!("err 125 {}", chain(&e)));
            return 125;
        }
    };
    // The monitor's own messages go to the bundle's log (the CLI shows it when no report
    // came), made only when there is one.
    berth_monitor::set_notes(c.bundle.join("monitor.log"));
    match start(paths, &store, &c, true) {
        Ok(running) => {
            report("ok");
            drop(ready);
            let exit_client = args.exit_client && client.is_some();
            idle(
                paths,
                &c,
                running,
                client.into_iter().collect(),
                0,
                exit_client,
            )
        }
        Err((code, e)) => {
            let msg = chain(&e);
            record_start_failure(paths, &store, &c, code, &msg);
            report(&format!("err {code} {msg}"));
            code
        }
    }
}

/// The line `fd` brings (up to `\n` or end of file); `None` at end of file before any byte.
/// The CLI writes one line and then waits for the report, so nothing follows it.
fn read_line(fd: std::os::fd::BorrowedFd<'_>) -> Option<String> {
    let mut line = Vec::new();
    let mut buf = [0u8; 512];
    while !line.ends_with(b"\n") && line.len() < 4096 {
        match rustix::io::read(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => line.extend_from_slice(&buf[..n]),
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => break,
        }
    }
    (!line.is_empty()).then(|| String::from_utf8_lossy(&line).into_owned())
}

fn open(paths: &Paths, id: &str) -> Result<(Store, Container)> {
    let store = Store::open(paths)?;
    let c = store.read(|tx| tx.container(id))?;
    Ok((store, c))
}

fn chain(e: &dyn std::error::Error) -> String {
    runtime::error::chain(e)
}

fn record_start_failure(paths: &Paths, store: &Store, c: &Container, code: i32, msg: &str) {
    berth_monitor::note(&format!("berth monitor: {msg}"));
    cleanup(paths, c);
    let _ = store.write_relaxed(|tx| {
        tx.transition(
            &c.id,
            Transition::StartFailed {
                exit_code: i64::from(code),
                error: msg.to_owned(),
                at: Timestamp::now(),
            },
        )
    });
}

/// A started container: init's pid and the descriptors the idle monitor takes over.
struct Running {
    pid: i32,
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    pty: Option<OwnedFd>,
    stdin: Option<OwnedFd>,
    listen: OwnedFd,
}

/// The idle monitor binary: `berth-monitor` next to the `berth` that runs.
fn idle_binary() -> PathBuf {
    berth_binary().with_file_name("berth-monitor")
}

/// The `berth` binary by its path on disk (this process may run from a protected copy, whose
/// `/proc/self/exe` names no usable path; argv[0] is the path the CLI started).
pub(crate) fn berth_binary() -> PathBuf {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::current_exe().ok())
        .unwrap_or_else(|| PathBuf::from("berth"))
}

/// Mount, attach socket, stdio, create + start, record `Started`. Errors carry Docker's exit
/// code.
fn start(
    paths: &Paths,
    store: &Store,
    c: &Container,
    by_user: bool,
) -> std::result::Result<Running, (i32, EngineError)> {
    let internal = |e| (125, e);
    let idle = idle_binary();
    if !idle.is_file() {
        return Err(internal(io_err("find the monitor binary", &idle)(
            std::io::ErrorKind::NotFound.into(),
        )));
    }
    mount_rootfs(c).map_err(internal)?;
    // Before the runtime makes state: `system check` leaves a live monitor's state alone.
    crate::check::record_monitor(&c.run_dir).map_err(internal)?;
    let sock_path = c.run_dir.join("attach.sock");
    let _ = fs::remove_file(&sock_path);
    let listen: OwnedFd = socket_path(&c.run_dir, "attach.sock")
        .and_then(|(_dir, short)| UnixListener::bind(short))
        .map_err(|e| internal(io_err("listen on", &sock_path)(e)))?
        .into();
    let mut running = Running {
        pid: 0,
        out: None,
        err: None,
        pty: None,
        stdin: None,
        listen,
    };
    let pipe = || {
        rustix::pipe::pipe_with(PipeFlags::CLOEXEC)
            .map_err(|e| internal(io_err("create pipe", &c.run_dir)(e.into())))
    };
    let saved_err = rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stderr(), 3)
        .map_err(|e| internal(io_err("save stderr", &c.bundle)(e.into())))?;
    let console_path = c.run_dir.join("console.sock");
    // Kept open while the runtime connects to a /proc/self/fd path through it.
    let (_console_dir, console_short) = socket_path(&c.run_dir, "console.sock")
        .map_err(|e| internal(io_err("open", &c.run_dir)(e)))?;
    let mut console = None;
    // init inherits the monitor's fds 0-2: point them at the container's stdio for the fork.
    if c.config.tty {
        let _ = fs::remove_file(&console_path);
        console = Some(
            UnixListener::bind(&console_short)
                .map_err(|e| internal(io_err("listen on", &console_path)(e)))?,
        );
    } else {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let _ = rustix::stdio::dup2_stdout(&out_w);
        let _ = rustix::stdio::dup2_stderr(&err_w);
        running.out = Some(out_r);
        running.err = Some(err_r);
        if c.config.open_stdin {
            let (in_r, in_w) = pipe()?;
            let _ = rustix::stdio::dup2_stdin(&in_r);
            running.stdin = Some(in_w);
        }
    }
    let created = crate::network_attach::before_create(store, c)
        .and_then(|()| {
            create_container(paths, c, console.as_ref().map(|_| console_short.as_path()))
        })
        .and_then(|pid| crate::network_attach::plumb(paths, store, c, pid).map(|()| pid))
        .and_then(|pid| start_container(paths, c).map(|()| pid));
    // Only the container may hold the write ends now, so its exit reads as EOF.
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stdout(&null);
    }
    let _ = rustix::stdio::dup2_stderr(&saved_err);
    running.pid = created.map_err(|e| (exit_code_of(&e), e))?;
    if let Some(listener) = console {
        let _ = fs::remove_file(&console_path);
        let (conn, _) = listener
            .accept()
            .map_err(|e| internal(io_err("accept on", &console_path)(e)))?;
        let master = runtime::console::receive_master(conn.as_fd()).map_err(|source| {
            internal(EngineError::Runtime {
                action: format!("receive the terminal of {}", c.id.short()),
                source: Box::new(source),
            })
        })?;
        running.pty = Some(master);
    }
    let now = store
        .write_relaxed(|tx| {
            tx.transition(
                &c.id,
                Transition::Started {
                    pid: running.pid,
                    monitor_pid: rustix::process::getpid().as_raw_nonzero().get(),
                    at: Timestamp::now(),
                    by_user,
                },
            )
        })
        .map_err(internal)?;
    if now.state.stopped_by_user && !by_user {
        // Stopped while the policy restarted it: the stop wins.
        kill_init(running.pid, 9);
    }
    Ok(running)
}

/// Docker's exit code for a failed create/start: 127 when the program is not found, 126 when it
/// cannot be executed, else 125. The in-process runtime reports the errno; an external one only
/// says it in words (runc and crun: "no such file", "permission denied").
fn exit_code_of(e: &EngineError) -> i32 {
    if let EngineError::Runtime { source, .. } = e {
        return match source.program_errno() {
            Some(libc::ENOENT) => 127,
            Some(libc::EACCES | libc::ENOEXEC | libc::EISDIR | libc::EPERM) => 126,
            _ => 125,
        };
    }
    let msg = runtime::error::chain(e).to_lowercase();
    if msg.contains("no such file") || msg.contains("not found") {
        127
    } else if msg.contains("permission denied") {
        126
    } else {
        125
    }
}

/// The runtime's create (through `--runtime`'s binary or in-process): init, a child of this
/// process, waits on its exec fifo.
fn create_container(paths: &Paths, c: &Container, console_socket: Option<&Path>) -> Result<i32> {
    crate::oci::for_container(paths, c).create(c.id.as_str(), &c.bundle, console_socket)
}

/// The runtime's start: init execs the container's program.
fn start_container(paths: &Paths, c: &Container) -> Result<()> {
    crate::oci::for_container(paths, c).start(c.id.as_str())
}

fn kill_init(pid: i32, sig: i32) {
    if let (Some(pid), Some(sig)) = (
        Pid::from_raw(pid),
        rustix::process::Signal::from_named_raw(sig),
    ) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// Replaces this process with the idle monitor; returns only if that fails, after waiting for
/// the container here instead.
fn idle(
    paths: &Paths,
    c: &Container,
    running: Running,
    clients: Vec<OwnedFd>,
    backoff_ms: u64,
    exit_client: bool,
) -> i32 {
    let inherit = |fd: &OwnedFd| {
        let _ = rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty());
        fd.as_raw_fd()
    };
    // This process runs protected: berth-monitor starts `berth` through this descriptor, so
    // that one does too without re-executing itself.
    let exe = runtime::selfexe::protected_exe().ok();
    let (max_size, max_file) = log_limits(c);
    let inv = berth_monitor::Invocation {
        id: c.id.as_str().to_owned(),
        berth: berth_binary().to_string_lossy().into_owned(),
        exe_fd: exe.as_ref().map(inherit),
        root: paths.root.to_string_lossy().into_owned(),
        run_root: paths.run_root.to_string_lossy().into_owned(),
        pid: running.pid,
        log: c.log_path.to_string_lossy().into_owned(),
        max_size,
        max_file,
        out_fd: running.out.as_ref().map(inherit),
        err_fd: running.err.as_ref().map(inherit),
        pty_fd: running.pty.as_ref().map(inherit),
        stdin_fd: running.stdin.as_ref().map(inherit),
        listen_fd: Some(inherit(&running.listen)),
        client_fds: clients.iter().map(inherit).collect(),
        stdin_once: c.config.stdin_once,
        exit_client,
        backoff_ms,
        health_interval_ms: crate::health::effective(c).map_or(0, |h| {
            u64::try_from(h.interval / 1_000_000).unwrap_or(0).max(1)
        }),
    };
    if init_exited(running.pid) {
        // Already over (a short-lived container): relay what is left here rather than start
        // a second program for it. The relay adopts the descriptors the invocation names
        // (the binary's is for the health check, which an exited container does not run).
        drop(exe);
        let _ = (
            running.out.map(IntoRawFd::into_raw_fd),
            running.err.map(IntoRawFd::into_raw_fd),
            running.pty.map(IntoRawFd::into_raw_fd),
            running.stdin.map(IntoRawFd::into_raw_fd),
            running.listen.into_raw_fd(),
            clients.into_iter().map(IntoRawFd::into_raw_fd).count(),
        );
        return match berth_monitor::relay::relay(&inv, false) {
            Ok(r) if r.exit_taken => r.code,
            Ok(r) => exited(paths, c.id.as_str(), r.code, backoff_ms),
            Err(e) => {
                berth_monitor::note(&format!("berth monitor: relay: {e}"));
                let code = berth_monitor::wait_child(inv.pid);
                exited(paths, c.id.as_str(), code, backoff_ms)
            }
        };
    }
    let err = std::process::Command::new(idle_binary())
        .args(inv.to_args())
        .exec();
    berth_monitor::note(&format!(
        "berth monitor: exec {}: {err}",
        idle_binary().display()
    ));
    drop((
        exe,
        running.out,
        running.err,
        running.pty,
        running.stdin,
        clients,
    ));
    let code = berth_monitor::wait_child(running.pid);
    exited(paths, c.id.as_str(), code, backoff_ms)
}

/// `--log-opt max-size` and `max-file` (Docker's defaults: no limit, one file).
fn log_limits(c: &Container) -> (u64, u32) {
    let opts = &c.host_config.log_config.config;
    let size = opts
        .get("max-size")
        .and_then(|s| berth_monitor::jsonlog::parse_size(s))
        .unwrap_or(0);
    let files = opts
        .get("max-file")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    (size, files)
}

/// Whether init (a child of this process) has exited; it stays unreaped.
fn init_exited(pid: i32) -> bool {
    use rustix::process::{Pid, WaitId, WaitIdOptions};
    Pid::from_raw(pid).is_some_and(|p| {
        matches!(
            rustix::process::waitid(
                WaitId::Pid(p),
                WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT,
            ),
            Ok(Some(_))
        )
    })
}

/// Init exited with `code`: record it, and restart by policy or clean up.
fn exited(paths: &Paths, id: &str, code: i32, backoff_ms: u64) -> i32 {
    reap_strays();
    let (store, c) = match open(paths, id) {
        Ok(x) => x,
        Err(e) => {
            berth_monitor::note(&format!("berth monitor: {}", chain(&e)));
            return code;
        }
    };
    berth_monitor::set_notes(c.bundle.join("monitor.log"));
    match settle(paths, &store, &c, code, true) {
        Settled::Restart { ran } => {
            let delay = if ran >= BACKOFF_RESET || backoff_ms == 0 {
                BACKOFF_START_MS
            } else {
                (backoff_ms * 2).min(BACKOFF_MAX_MS)
            };
            restart_after(paths, &store, &c, delay)
        }
        Settled::Done => {
            remove_bundle(&c);
            code
        }
        Settled::NotMine => code,
    }
}

/// What [`settle`] did.
pub(crate) enum Settled {
    /// Recorded `restarting` and cleaned up; the container ran this long.
    Restart { ran: Duration },
    /// Recorded the exit, cleaned up, removed an `--rm` container.
    Done,
    /// The policy restarts the container and the caller may not: nothing recorded.
    NotMine,
}

/// Records that init exited with `code` (`restarting` when the policy says so and `may_restart`,
/// else `exited`), in one transaction, so a concurrent `stop` is either seen here or sees
/// `restarting`; then cleans up, and removes an `--rm` container. The monitor calls it, and so
/// does the `run` that took the exit (see `berth_monitor::Invocation::exit_client`), which may
/// not restart.
pub(crate) fn settle(
    paths: &Paths,
    store: &Store,
    c: &Container,
    code: i32,
    may_restart: bool,
) -> Settled {
    // The monitor's stderr is its log; a `run`'s is the user's terminal.
    let note = |msg: String| {
        if may_restart {
            berth_monitor::note(&format!("berth monitor: {msg}"));
        } else {
            tracing::debug!("{msg}");
        }
    };
    let at = Timestamp::now();
    // An `--rm` container is cleaned up and its directory removed first, and it leaves in the
    // transaction that records its exit (the order of `rm`: cleanup, then the record): one
    // transaction fewer on the way out of every `run --rm`. Its run directory stays until
    // then: the monitor record there tells a concurrent `ps` or `system check` that the exit
    // is being handled (the record still says running). Others record first, so that a
    // concurrent `stop` sees `restarting` before the cleanup.
    let early = c.host_config.auto_remove;
    // The OOM count is read before the cleanup removes the cgroup.
    let oom_killed = if early {
        crate::lifecycle::remove_keeping_run_dir(paths, c)
    } else {
        crate::oom::oom_killed(paths, c)
    };
    let decided = store.write_relaxed(|tx| {
        let now = tx.container_by_id(&c.id)?;
        let st = &now.state;
        let restart = !now.host_config.auto_remove
            && now.host_config.restart_policy.should_restart(
                i64::from(code),
                st.restart_count,
                st.stopped_by_user,
            );
        if restart && !may_restart {
            return Ok(None);
        }
        let t = if restart {
            Transition::Restarting {
                exit_code: i64::from(code),
                oom_killed,
                at,
            }
        } else {
            Transition::Exited {
                exit_code: i64::from(code),
                oom_killed,
                at,
            }
        };
        tx.transition(&c.id, t)?;
        let removed = !restart && now.host_config.auto_remove;
        if removed {
            tx.remove_container(&c.id)?;
        }
        Ok(Some((restart, now.state.started_at, removed)))
    });
    let (restart, started_at, removed) = match decided {
        Ok(Some(d)) => d,
        Ok(None) => return Settled::NotMine,
        Err(e) => {
            note(format!("record exit: {}", chain(&e)));
            (false, None, false)
        }
    };
    if early {
        let _ = fs::remove_dir_all(&c.run_dir);
    } else {
        cleanup(paths, c);
    }
    if restart {
        let ran = started_at.map_or(Duration::ZERO, |s| {
            Duration::from_nanos(u64::try_from(at.nanos() - s.nanos()).unwrap_or(0))
        });
        return Settled::Restart { ran };
    }
    if removed {
        let _ = crate::storage::remove_anonymous_volumes(store, paths, c);
    } else if c.host_config.auto_remove {
        // The exit could not be recorded above; the removal may still go through.
        if let Err(e) = store.write_relaxed(|tx| tx.remove_container(&c.id)) {
            note(format!("remove container: {}", chain(&e)));
        }
        let _ = crate::storage::remove_anonymous_volumes(store, paths, c);
    }
    Settled::Done
}

/// After [`settle`]'s `Done`: an `--rm` container's directory goes, if the exit's cleanup could
/// not remove it. Nothing refers to it any more (its record is gone), so the monitor need not
/// wait for this.
pub(crate) fn remove_bundle(c: &Container) {
    if c.host_config.auto_remove {
        let _ = fs::remove_dir_all(&c.bundle);
    }
}

/// Waits `delay_ms` (giving way to a `stop`), then starts the container again.
fn restart_after(paths: &Paths, store: &Store, c: &Container, delay_ms: u64) -> i32 {
    let deadline = Instant::now() + Duration::from_millis(delay_ms);
    loop {
        let now = match store.read(|tx| tx.container_by_id(&c.id)) {
            Ok(now) => now,
            Err(_) => return 0,
        };
        if now.state.status != Status::Restarting {
            return 0;
        }
        if now.state.stopped_by_user {
            let last = now.state.exit_code.unwrap_or(0);
            let _ = store.write_relaxed(|tx| {
                tx.transition(
                    &c.id,
                    Transition::Exited {
                        exit_code: last,
                        oom_killed: now.state.oom_killed,
                        at: now.state.finished_at.unwrap_or_else(Timestamp::now),
                    },
                )
            });
            return i32::try_from(last).unwrap_or(125);
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
    }
    match start(paths, store, c, false) {
        Ok(running) => idle(paths, c, running, Vec::new(), delay_ms, false),
        Err((code, e)) => {
            record_start_failure(paths, store, c, code, &chain(&e));
            code
        }
    }
}

/// Reaps children left over from the run that ended (processes of its pid namespace
/// reparented to this subreaper).
fn reap_strays() {
    while let Ok(Some(_)) = rustix::process::waitpid(None, WaitOptions::NOHANG) {}
}

fn mount_rootfs(c: &Container) -> Result<()> {
    let spec_path = c.bundle.join("rootfs.json");
    let text = fs::read(&spec_path).map_err(io_err("read", &spec_path))?;
    let v: serde_json::Value =
        serde_json::from_slice(&text).map_err(|source| EngineError::Json {
            action: format!("decode {}", spec_path.display()),
            source,
        })?;
    let path = |v: &serde_json::Value| PathBuf::from(v.as_str().unwrap_or_default());
    let mount = image::Mount {
        lowerdirs: v["lowerdirs"]
            .as_array()
            .map(|a| a.iter().map(path).collect())
            .unwrap_or_default(),
        upperdir: path(&v["upperdir"]),
        workdir: path(&v["workdir"]),
    };
    let target = rootfs_path(c);
    fs::create_dir_all(&target).map_err(io_err("create directory", &target))?;
    // An `--rm` container's writes are thrown away at its exit: its unmount need not wait for
    // them to reach the disk.
    let durability = if c.host_config.auto_remove {
        image::Durability::Volatile
    } else {
        image::Durability::Synced
    };
    image::mount_overlay_with(&mount, &target, durability).map_err(|source| EngineError::Snapshot {
        action: format!("mount rootfs of {}", c.id.short()),
        source: Box::new(source),
    })
}
