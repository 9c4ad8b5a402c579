//! `exec`: run another process inside a live container's namespaces and cgroup.

use std::convert::Infallible;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Process;
use rustix::fs::{Mode, OFlags};

use super::create::{finalize_and_exec, setup_terminal};
use super::launch::{self, Namespaces, ParentSetup};
use crate::error::{Result, RuntimeError};
use crate::spec::{ns_proc_name, validate_process};
use crate::state::{self, ContainerState, Status};
use crate::sync::{self, Tag};
use crate::sys;

/// Options of `exec`.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Unix socket that receives the pty master when `process.terminal` is set.
    pub console_socket: Option<PathBuf>,
    /// File to write the new process's pid to.
    pub pid_file: Option<PathBuf>,
    /// Return once the process runs instead of waiting for it.
    pub detach: bool,
    /// Descriptors after stdio passed to the process.
    pub preserve_fds: u32,
}

/// Run `process` in container `id`. Returns its exit status, or 0 once it runs when detached.
pub fn exec(root: &Path, id: &str, process: &Process, opts: &ExecOptions) -> Result<i32> {
    validate_process(process, "process")?;
    let st = ContainerState::load(root, id)?;
    st.require(root, "exec", "running", |s| {
        matches!(s, Status::Running | Status::Created)
    })?;
    let terminal = process.terminal().unwrap_or(false);
    let console = opts
        .console_socket
        .as_ref()
        .map(|p| {
            UnixStream::connect(p).map_err(|e| RuntimeError::io("connect to console socket", p, e))
        })
        .transpose()?;
    if terminal && console.is_none() {
        return Err(RuntimeError::invalid(
            "process.terminal",
            "a terminal needs --console-socket",
        ));
    }
    let linux = st.config.linux().as_ref();
    let seccomp = linux
        .and_then(|l| l.seccomp().as_ref())
        .map(|s| super::seccomp_cache(root).compile(s))
        .transpose()?;
    // Join every namespace the container has, through init's /proc entries.
    let mut join = Vec::new();
    for ns in linux
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
    {
        let path = format!("/proc/{}/ns/{}", st.pid, ns_proc_name(ns.typ()));
        let fd = rustix::fs::open(&path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| RuntimeError::io("open", &path, e.into()))?;
        join.push((ns.typ(), fd));
    }
    // The descriptors are pinned; make sure they belong to the init we recorded.
    if !state::process_alive(st.pid, st.init_start_time) {
        return Err(RuntimeError::WrongState {
            id: id.to_string(),
            status: Status::Stopped.to_string(),
            action: "exec",
            wanted: "running",
        });
    }
    let cgroup = super::cgroup_manager(&st)?;
    let setup = ParentSetup {
        cgroup: cgroup.as_ref(),
        resources: None,
        init_pid: Some(st.pid),
        uid_mappings: &[],
        gid_mappings: &[],
    };
    let ctx = ExecContext {
        process,
        console: console.as_ref().map(|c| c.as_fd()),
        seccomp: seccomp.as_ref(),
        preserve_fds: opts.preserve_fds,
        new_session: terminal,
    };
    let ns = Namespaces {
        join,
        create: 0,
        time_offsets: None,
    };
    let mut spawned = launch::spawn(ns, &setup, |sock| exec_process(&ctx, sock))?;
    // The sync socket is close-on-exec: end of stream means the exec succeeded.
    loop {
        match sync::recv(spawned.sock.as_fd()) {
            Ok(None) => break,
            Ok(Some(m)) if m.tag == Tag::Error => {
                return Err(RuntimeError::from_child(m.text, m.value));
            }
            Ok(Some(m)) if m.tag == Tag::SeccompFd => {
                let fd =
                    m.fd.ok_or_else(|| RuntimeError::Child("seccomp listener fd missing".into()))?;
                super::send_seccomp_listener(
                    &st.config,
                    id,
                    spawned.pid,
                    Status::Running,
                    &st.bundle,
                    fd.as_fd(),
                )?;
            }
            Ok(Some(m)) => {
                return Err(RuntimeError::Child(format!(
                    "protocol: unexpected {:?}",
                    m.tag
                )));
            }
            Err(e) => return Err(RuntimeError::sys("read from exec'd process", e)),
        }
    }
    if let Some(pf) = &opts.pid_file {
        state::write_atomic(pf, spawned.pid.to_string().as_bytes())?;
    }
    spawned.reap_stage1();
    spawned.guard.disarm();
    if opts.detach {
        return Ok(0);
    }
    sys::wait_forwarding(spawned.pid).map_err(|e| RuntimeError::sys("wait for process", e))
}

struct ExecContext<'a> {
    process: &'a Process,
    console: Option<BorrowedFd<'a>>,
    seccomp: Option<&'a crate::seccomp::Program>,
    preserve_fds: u32,
    new_session: bool,
}

fn exec_process(ctx: &ExecContext<'_>, sock: BorrowedFd<'_>) -> Result<Infallible> {
    if ctx.new_session {
        rustix::process::setsid().map_err(|e| RuntimeError::sys("setsid", e.into()))?;
    }
    if let Some(console) = ctx
        .console
        .filter(|_| ctx.process.terminal().unwrap_or(false))
    {
        let size = ctx
            .process
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16));
        setup_terminal(console, size, false)?;
    }
    finalize_and_exec(
        ctx.process,
        sock,
        ctx.seccomp,
        None,
        ctx.preserve_fds,
        || Ok(()),
    )
}
