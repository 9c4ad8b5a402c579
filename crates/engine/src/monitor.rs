//! `berth monitor <id>`: the small per-container process that outlives the CLI.
//!
//! It runs in its own session as a child subreaper, mounts the rootfs, creates and starts the
//! container in-process (the runtime forks init from this single-threaded process, so init is
//! its child), reports `ok` / `err <code> <message>` on its stdout to the `berth run` that
//! spawned it, then drains the container's stdout/stderr pipes into the json-file log, waits
//! for init, records the exit, and cleans up (runtime delete, unmount; everything with `--rm`).
//! No threads: one poll loop.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};

use rustix::event::{PollFd, PollFlags};
use rustix::pipe::PipeFlags;
use rustix::process::{Pid, WaitOptions};

use crate::containers::Container;
use crate::engine::{io_err, rootfs_path};
use crate::error::{EngineError, Result};
use crate::id::Timestamp;
use crate::lifecycle::cleanup;
use crate::state::Transition;
use crate::store::{Paths, Store};

/// Runs the monitor of container `id`; returns the container's exit code (the monitor's own).
#[must_use]
pub fn monitor(paths: &Paths, id: &str) -> i32 {
    let _ = rustix::process::setsid();
    let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
    let ready = rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stdout(), 3).ok();
    let report = |line: &str| {
        if let Some(fd) = &ready {
            let _ = rustix::io::write(fd, format!("{line}\n").as_bytes());
        }
    };
    let store = match Store::open(paths) {
        Ok(s) => s,
        Err(e) => {
            report(&format!("err 125 {}", chain(&e)));
            return 125;
        }
    };
    let c = match store.read(|tx| tx.container(id)) {
        Ok(c) => c,
        Err(e) => {
            report(&format!("err 125 {}", chain(&e)));
            return 125;
        }
    };
    let pid = match start(paths, &store, &c) {
        Ok(started) => started,
        Err((code, e)) => {
            let msg = chain(&e);
            eprintln!("berth monitor: {msg}");
            cleanup(paths, &c);
            let _ = store.write(|tx| {
                tx.transition(
                    &c.id,
                    Transition::StartFailed {
                        exit_code: i64::from(code),
                        error: msg.clone(),
                        at: Timestamp::now(),
                    },
                )
            });
            report(&format!("err {code} {msg}"));
            return code;
        }
    };
    report("ok");
    drop(ready);
    let (out, err) = pid.pipes;
    if let Err(e) = drain(&c, out, err) {
        eprintln!("berth monitor: {}", chain(&e));
    }
    let code = wait(pid.pid);
    if let Err(e) = store.write(|tx| {
        tx.transition(
            &c.id,
            Transition::Exited {
                exit_code: i64::from(code),
                oom_killed: crate::oom::oom_killed(paths, &c),
                at: Timestamp::now(),
            },
        )
    }) {
        eprintln!("berth monitor: record exit: {}", chain(&e));
    }
    cleanup(paths, &c);
    if c.host_config.auto_remove {
        if let Err(e) = store.write(|tx| tx.remove_container(&c.id)) {
            eprintln!("berth monitor: remove container: {}", chain(&e));
        }
        let _ = crate::storage::remove_anonymous_volumes(&store, paths, &c);
        let _ = fs::remove_dir_all(&c.bundle);
    }
    code
}

struct Running {
    pid: i32,
    pipes: (OwnedFd, OwnedFd),
}

fn chain(e: &dyn std::error::Error) -> String {
    runtime::error::chain(e)
}

/// Mount, create, start, record `Started`. Errors carry Docker's exit code.
fn start(
    paths: &Paths,
    store: &Store,
    c: &Container,
) -> std::result::Result<Running, (i32, EngineError)> {
    let internal = |e| (125, e);
    mount_rootfs(c).map_err(internal)?;
    // Before the runtime makes state: `system check` leaves a live monitor's state alone.
    crate::check::record_monitor(&c.run_dir).map_err(internal)?;
    let pipe = || {
        rustix::pipe::pipe_with(PipeFlags::CLOEXEC)
            .map_err(|e| io_err("create pipe", &c.log_path)(e.into()))
    };
    let (out_r, out_w) = pipe().map_err(internal)?;
    let (err_r, err_w) = pipe().map_err(internal)?;
    let saved_err = rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stderr(), 3)
        .map_err(|e| internal(io_err("save stderr", &c.bundle)(e.into())))?;
    // init inherits the monitor's fds 0-2: point 1 and 2 at the pipes for the runtime's fork.
    let _ = rustix::stdio::dup2_stdout(&out_w);
    let _ = rustix::stdio::dup2_stderr(&err_w);
    drop((out_w, err_w));
    let oci = crate::oci::for_container(paths, c);
    let created = oci
        .create(c.id.as_str(), &c.bundle, None)
        .and_then(|pid| oci.start(c.id.as_str()).map(|()| pid));
    // Only the container may hold the write ends now, so its exit reads as EOF.
    if let Ok(null) = File::open("/dev/null") {
        let _ = rustix::stdio::dup2_stdout(&null);
    }
    let _ = rustix::stdio::dup2_stderr(&saved_err);
    let pid = created.map_err(|e| {
        // runc and crun say "no such file", the in-process runtime "No such file".
        let msg = runtime::error::chain(&e).to_lowercase();
        let code = if msg.contains("no such file") || msg.contains("not found") {
            127
        } else if msg.contains("permission denied") {
            126
        } else {
            125
        };
        (code, e)
    })?;
    store
        .write(|tx| {
            tx.transition(
                &c.id,
                Transition::Started {
                    pid,
                    monitor_pid: rustix::process::getpid().as_raw_nonzero().get(),
                    at: Timestamp::now(),
                    by_user: true,
                },
            )
        })
        .map_err(internal)?;
    Ok(Running {
        pid,
        pipes: (out_r, err_r),
    })
}

fn mount_rootfs(c: &Container) -> Result<()> {
    let spec_path = c.bundle.join("rootfs.json");
    let text = fs::read(&spec_path).map_err(io_err("read", &spec_path))?;
    let v: serde_json::Value =
        serde_json::from_slice(&text).map_err(|source| EngineError::Json {
            action: format!("decode {}", spec_path.display()),
            source,
        })?;
    let path = |v: &serde_json::Value| std::path::PathBuf::from(v.as_str().unwrap_or_default());
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
    image::mount_overlay(&mount, &target).map_err(|source| EngineError::Snapshot {
        action: format!("mount rootfs of {}", c.id.short()),
        source: Box::new(source),
    })
}

/// Copies both pipes into the json-file log until both reach EOF (init and everything in its
/// pid namespace have exited).
fn drain(c: &Container, out: OwnedFd, err: OwnedFd) -> Result<()> {
    let mut log = OpenOptions::new()
        .append(true)
        .create(true)
        .open(&c.log_path)
        .map_err(io_err("open log", &c.log_path))?;
    let mut streams = [
        (Some(out), "stdout", Vec::new()),
        (Some(err), "stderr", Vec::new()),
    ];
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let mut fds: Vec<PollFd<'_>> = Vec::new();
        let mut which = Vec::new();
        for (i, (fd, _, _)) in streams.iter().enumerate() {
            if let Some(fd) = fd {
                fds.push(PollFd::new(fd, PollFlags::IN));
                which.push(i);
            }
        }
        if fds.is_empty() {
            return Ok(());
        }
        match rustix::event::poll(&mut fds, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(io_err("poll container output", &c.log_path)(e.into())),
        }
        let ready: Vec<usize> = fds
            .iter()
            .zip(&which)
            .filter(|(f, _)| !f.revents().is_empty())
            .map(|(_, &i)| i)
            .collect();
        drop(fds);
        for i in ready {
            let (fd_slot, stream, partial) = &mut streams[i];
            let Some(fd) = fd_slot.as_ref() else { continue };
            let n = match rustix::io::read(fd.as_fd(), &mut buf) {
                Ok(n) => n,
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => continue,
                Err(_) => 0,
            };
            if n == 0 {
                if !partial.is_empty() {
                    write_line(&mut log, stream, partial);
                }
                *fd_slot = None;
                continue;
            }
            partial.extend_from_slice(&buf[..n]);
            while let Some(nl) = partial.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = partial.drain(..=nl).collect();
                write_line(&mut log, stream, &mut line);
            }
            // Docker splits lines longer than 16 KiB.
            if partial.len() >= 16 * 1024 {
                write_line(&mut log, stream, partial);
            }
        }
    }
}

fn write_line(log: &mut File, stream: &str, data: &mut Vec<u8>) {
    let entry = serde_json::json!({
        "log": String::from_utf8_lossy(data),
        "stream": stream,
        "time": Timestamp::now().to_rfc3339(),
    });
    data.clear();
    let _ = writeln!(log, "{entry}");
}

/// Waits for init; Docker's exit code (128 + signal when killed).
fn wait(pid: i32) -> i32 {
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
