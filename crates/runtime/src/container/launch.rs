//! Starting a process inside a container's namespaces: the two-stage fork shared by `create`
//! (the container's init) and `exec`.
//!
//! ```text
//! runtime ──fork──> stage 1: join namespaces by path, create a user namespace (parent writes
//!    │                        its maps), wait for the parent to place it in the cgroup, unshare
//!    │                        the other namespaces, then clone(CLONE_PARENT) ──> stage 2
//!    └── waits for stage 2 directly (CLONE_PARENT made it the runtime's child)
//! ```
//! Stage 2 is PID 1 of a new pid namespace (or a member of the joined one) and already inside
//! the cgroup and every namespace before it runs a single instruction of setup.
//!
//! Where no namespace needs the intermediate (see [`one_stage`]: no user namespace, no pid or
//! user namespace to join, no new time namespace), one `clone3` makes stage 2 directly, born in
//! every new namespace and in the cgroup: one fork and one exit fewer on every container start.

use std::convert::Infallible;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, LinuxResources};

use crate::error::{Result, RuntimeError, chain};
use crate::spec::ns_flag;
use crate::sync::{self, Tag};
use crate::sys::{self, Forked};

/// The namespaces a new process must end up in.
#[derive(Default)]
pub(crate) struct Namespaces {
    /// Existing namespaces to join, with their types.
    pub(crate) join: Vec<(LinuxNamespaceType, OwnedFd)>,
    /// `CLONE_NEW*` flags of namespaces to create.
    pub(crate) create: libc::c_int,
    /// `/proc/self/timens_offsets` content for a new time namespace.
    pub(crate) time_offsets: Option<String>,
}

/// What the parent does between stage 1's hello and its go-ahead.
pub(crate) struct ParentSetup<'a> {
    pub(crate) cgroup: &'a dyn cgroups::CgroupManager,
    /// Resources to apply (create) or none (exec joins an existing cgroup).
    pub(crate) resources: Option<&'a LinuxResources>,
    /// For exec: the container's init, whose cgroup the process joins when the container's
    /// top cgroup admits no tasks (see `CgroupManager::apply_exec`).
    pub(crate) init_pid: Option<i32>,
    pub(crate) uid_mappings: &'a [LinuxIdMapping],
    pub(crate) gid_mappings: &'a [LinuxIdMapping],
}

/// Kills and reaps the processes it holds unless disarmed: no half-made container survives a
/// failed create or exec.
pub(crate) struct ChildGuard(pub(crate) Vec<i32>);

impl ChildGuard {
    pub(crate) fn disarm(&mut self) {
        self.0.clear();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        for pid in self.0.drain(..) {
            if let Some(p) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                let _ = sys::wait_child(pid);
            }
        }
    }
}

/// A stage-2 process and the parent's end of its sync socket.
pub(crate) struct Spawned {
    /// The intermediate process, if there was one, to be reaped with [`Spawned::reap_stage1`].
    pub(crate) stage1: Option<i32>,
    pub(crate) pid: i32,
    /// Declared before `sock` so that on a failed create the children are killed before the
    /// socket closes: a child that saw the hang-up would print a second, confusing error.
    pub(crate) guard: ChildGuard,
    pub(crate) sock: OwnedFd,
}

impl Spawned {
    /// Reap stage 1 if it has exited, and stop guarding it. If it is still exiting, whoever
    /// inherits it (the subreaper or init) reaps it after the runtime exits.
    pub(crate) fn reap_stage1(&mut self) {
        let Some(stage1) = self.stage1 else {
            return;
        };
        if let Some(p) = rustix::process::Pid::from_raw(stage1) {
            let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::NOHANG);
        }
        self.guard.0.retain(|p| *p != stage1);
    }
}

fn write_maps(pid: i32, file: &str, maps: &[LinuxIdMapping]) -> Result<()> {
    if maps.is_empty() {
        return Ok(());
    }
    let content: String = maps
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect();
    let path = format!("/proc/{pid}/{file}");
    std::fs::write(&path, content).map_err(|e| RuntimeError::io("write", path, e))
}

/// Receive the next message, turning a child's error report or a silent death into an error.
pub(crate) fn expect(sock: BorrowedFd<'_>, what: &str) -> Result<sync::Msg> {
    match sync::recv(sock) {
        Ok(Some(m)) if m.tag == Tag::Error => Err(RuntimeError::from_child(m.text, m.value)),
        Ok(Some(m)) => Ok(m),
        Ok(None) => Err(RuntimeError::Child(format!(
            "container process exited while {what}"
        ))),
        Err(e) => Err(RuntimeError::sys(
            format!("read from container process while {what}"),
            e,
        )),
    }
}

/// Fork stages 1 and 2. `stage2` runs in the final process and must exec or fail.
pub(crate) fn spawn(
    ns: Namespaces,
    setup: &ParentSetup<'_>,
    stage2: impl FnOnce(BorrowedFd<'_>) -> Result<Infallible>,
) -> Result<Spawned> {
    let (parent_sock, child_sock) = sync::pair().map_err(|e| RuntimeError::sys("socketpair", e))?;
    // The child enters the cgroup by itself (see `CgroupManager::self_join`): forked into the
    // cgroup2 directory, and writing itself into each v1 hierarchy first thing. Where the
    // kernel refuses the fork into the cgroup (a v2 cgroup that admits no tasks at its top,
    // see `apply_exec`; a kernel before 5.7), the parent moves it, the slow way.
    let join = setup.cgroup.self_join()?;
    if one_stage(&ns) {
        // The cgroup namespace is made after the v1 joins, so that it is rooted there too.
        let born = ns.create & !libc::CLONE_NEWCGROUP;
        let cloned = match &join.clone_into {
            Some(dir) => match sys::clone3(born, Some(dir.as_fd())) {
                Ok(f) => Ok((f, true)),
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => Err(e),
                Err(e) => {
                    tracing::debug!(error = %e, "clone into cgroup refused; moving the child instead");
                    sys::clone3(born, None).map(|f| (f, false))
                }
            },
            None => sys::clone3(born, None).map(|f| (f, true)),
        };
        match cloned {
            Ok((Forked::Child, _)) => {
                drop(parent_sock);
                let res = join.join_v1().map_err(RuntimeError::from).and_then(|()| {
                    drop(join);
                    enter_one_stage(child_sock.as_fd(), &ns)
                });
                if let Err(e) = res {
                    let errno = i64::from(e.program_errno().unwrap_or(0));
                    let _ = sync::send(child_sock.as_fd(), Tag::Error, errno, &chain(&e), None);
                    sys::exit_child(1);
                }
                run_stage2(child_sock.as_fd(), stage2);
            }
            Ok((Forked::Parent(pid), joined)) => {
                drop(child_sock);
                drop(join);
                let guard = ChildGuard(vec![pid]);
                place_and_limit(setup, pid, joined)?;
                sync::send(parent_sock.as_fd(), Tag::Go, 0, "", None)
                    .map_err(|e| RuntimeError::sys("signal container process", e))?;
                return Ok(Spawned {
                    stage1: None,
                    pid,
                    sock: parent_sock,
                    guard,
                });
            }
            // No clone3 (before Linux 5.3): the two stages below.
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {}
            Err(e) => return Err(RuntimeError::sys("create container process", e)),
        }
    }
    let (forked, joined) = match &join.clone_into {
        Some(dir) => match sys::fork_into_cgroup(dir.as_fd()) {
            Ok(f) => (f, true),
            Err(e) => {
                tracing::debug!(error = %e, "fork into cgroup refused; moving the child instead");
                (
                    sys::fork().map_err(|e| RuntimeError::sys("fork", e))?,
                    false,
                )
            }
        },
        None => (sys::fork().map_err(|e| RuntimeError::sys("fork", e))?, true),
    };
    match forked {
        Forked::Child => {
            drop(parent_sock);
            let res = join.join_v1().map_err(RuntimeError::from).and_then(|()| {
                drop(join);
                stage1(child_sock.as_fd(), ns, stage2)
            });
            if let Err(e) = res {
                let errno = i64::from(e.program_errno().unwrap_or(0));
                let _ = sync::send(child_sock.as_fd(), Tag::Error, errno, &chain(&e), None);
                sys::exit_child(1);
            }
            sys::exit_child(0);
        }
        Forked::Parent(stage1_pid) => {
            drop(child_sock);
            drop(join);
            let mut guard = ChildGuard(vec![stage1_pid]);
            place_and_limit(setup, stage1_pid, joined)?;
            let hello = expect(parent_sock.as_fd(), "joining namespaces")?;
            if hello.tag != Tag::Hello {
                return Err(RuntimeError::Child(format!(
                    "protocol: unexpected {:?}",
                    hello.tag
                )));
            }
            if hello.value == 1 {
                write_maps(stage1_pid, "uid_map", setup.uid_mappings)?;
                write_maps(stage1_pid, "gid_map", setup.gid_mappings)?;
            }
            sync::send(parent_sock.as_fd(), Tag::Go, 0, "", None)
                .map_err(|e| RuntimeError::sys("signal container process", e))?;
            let m = expect(parent_sock.as_fd(), "creating namespaces")?;
            if m.tag != Tag::Stage2Pid {
                return Err(RuntimeError::Child(format!(
                    "protocol: unexpected {:?}",
                    m.tag
                )));
            }
            let pid = m.value as i32;
            guard.0.push(pid);
            // Stage 1 is exiting; its teardown (namespace references) can take milliseconds, so
            // it is reaped once the container is ready rather than waited for here.
            Ok(Spawned {
                stage1: Some(stage1_pid),
                pid,
                sock: parent_sock,
                guard,
            })
        }
    }
}

fn stage1(
    sock: BorrowedFd<'_>,
    ns: Namespaces,
    stage2: impl FnOnce(BorrowedFd<'_>) -> Result<Infallible>,
) -> Result<()> {
    let joins_user = ns.join.iter().any(|(t, _)| *t == LinuxNamespaceType::User);
    let setns = |(t, fd): &(LinuxNamespaceType, OwnedFd)| {
        sys::setns(fd.as_fd(), ns_flag(*t)).map_err(|e| {
            RuntimeError::sys(
                format!("join {} namespace", crate::spec::ns_proc_name(*t)),
                e,
            )
        })
    };
    // Joining a user namespace comes first so that the others are entered with its privileges;
    // a new user namespace comes after joining the host-owned ones it is not allowed to enter.
    let (users, others): (Vec<_>, Vec<_>) = ns
        .join
        .iter()
        .partition(|(t, _)| *t == LinuxNamespaceType::User);
    if joins_user {
        users.iter().try_for_each(|j| setns(j))?;
        others.iter().try_for_each(|j| setns(j))?;
    } else {
        others.iter().try_for_each(|j| setns(j))?;
    }
    let new_user = ns.create & libc::CLONE_NEWUSER != 0;
    if new_user {
        sys::unshare(libc::CLONE_NEWUSER)
            .map_err(|e| RuntimeError::sys("create user namespace", e))?;
    }
    sync::send(sock, Tag::Hello, i64::from(new_user), "", None)
        .map_err(|e| RuntimeError::sys("sync with runtime", e))?;
    // Everything but the cgroup namespace can be created while the parent writes the maps and
    // joins us to the cgroup; the cgroup namespace must be rooted at the container's cgroup.
    let rest = ns.create & !(libc::CLONE_NEWUSER | libc::CLONE_NEWCGROUP);
    if rest != 0 {
        sys::unshare(rest).map_err(|e| RuntimeError::sys("create namespaces", e))?;
    }
    if let Some(offsets) = &ns.time_offsets {
        std::fs::write("/proc/self/timens_offsets", offsets)
            .map_err(|e| RuntimeError::io("write", "/proc/self/timens_offsets", e))?;
    }
    sync::wait_go(sock).map_err(|e| RuntimeError::sys("wait for runtime", e))?;
    if new_user || joins_user {
        // Become root of the user namespace (when 0 is mapped).
        let root_uid = rustix::process::Uid::ROOT;
        let root_gid = rustix::process::Gid::ROOT;
        let _ = rustix::thread::set_thread_res_gid(root_gid, root_gid, root_gid);
        let _ = rustix::thread::set_thread_res_uid(root_uid, root_uid, root_uid);
    }
    if ns.create & libc::CLONE_NEWCGROUP != 0 {
        sys::unshare(libc::CLONE_NEWCGROUP)
            .map_err(|e| RuntimeError::sys("create cgroup namespace", e))?;
    }
    // Stage 2 shares the sync socket: it must not speak before stage 1 has reported its pid, or
    // the parent, expecting that pid, reads stage 2's first message instead ("protocol:
    // unexpected RunHooks" under load). Stage 2 waits on this pipe until stage 1 has sent it.
    let (gate_r, gate_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| RuntimeError::sys("pipe", e.into()))?;
    match sys::clone_parent().map_err(|e| RuntimeError::sys("fork container process", e))? {
        Forked::Child => {
            drop(gate_w);
            let mut b = [0u8; 1];
            let opened = loop {
                match rustix::io::read(&gate_r, &mut b) {
                    Err(rustix::io::Errno::INTR) => continue,
                    r => break matches!(r, Ok(1)),
                }
            };
            drop(gate_r);
            if !opened {
                // Stage 1 failed to report the pid and is gone; so is the parent's interest.
                sys::exit_child(1);
            }
            run_stage2(sock, stage2);
        }
        Forked::Parent(pid) => {
            drop(gate_r);
            sync::send(sock, Tag::Stage2Pid, i64::from(pid), "", None)
                .map_err(|e| RuntimeError::sys("report container pid", e))?;
            rustix::io::write(&gate_w, b"1")
                .map_err(|e| RuntimeError::sys("release container process", e.into()))?;
            Ok(())
        }
    }
}

/// Whether stage 2 can be cloned directly: nothing must happen between the creation of its
/// namespaces and its start (a user namespace's id maps, a time namespace's offsets), and no
/// namespace to join applies to children only (pid) or must come first (user).
fn one_stage(ns: &Namespaces) -> bool {
    ns.create & (libc::CLONE_NEWUSER | libc::CLONE_NEWTIME) == 0
        && ns.time_offsets.is_none()
        && !ns.join.iter().any(|(t, _)| {
            matches!(
                t,
                LinuxNamespaceType::User | LinuxNamespaceType::Pid | LinuxNamespaceType::Time
            )
        })
}

/// The one-stage child before stage 2: joins the namespaces to join, waits for the parent to
/// place and limit it, then makes the cgroup namespace (rooted at the cgroup it is in now).
fn enter_one_stage(sock: BorrowedFd<'_>, ns: &Namespaces) -> Result<()> {
    for (t, fd) in &ns.join {
        sys::setns(fd.as_fd(), ns_flag(*t)).map_err(|e| {
            RuntimeError::sys(
                format!("join {} namespace", crate::spec::ns_proc_name(*t)),
                e,
            )
        })?;
    }
    sync::wait_go(sock).map_err(|e| RuntimeError::sys("wait for runtime", e))?;
    if ns.create & libc::CLONE_NEWCGROUP != 0 {
        sys::unshare(libc::CLONE_NEWCGROUP)
            .map_err(|e| RuntimeError::sys("create cgroup namespace", e))?;
    }
    Ok(())
}

/// The parent's part before the go-ahead: move the child into the cgroup when it could not be
/// born there, and apply the resources.
fn place_and_limit(setup: &ParentSetup<'_>, pid: i32, joined: bool) -> Result<()> {
    if !joined {
        match setup.init_pid {
            Some(init) => setup.cgroup.apply_exec(pid, init)?,
            None => setup.cgroup.apply(pid)?,
        }
    }
    if let Some(r) = setup.resources {
        setup.cgroup.set(r)?;
    }
    Ok(())
}

/// Runs stage 2, which execs or fails; a failure is reported on the sync socket (or stderr)
/// and ends the process with the shell's codes.
fn run_stage2(
    sock: BorrowedFd<'_>,
    stage2: impl FnOnce(BorrowedFd<'_>) -> Result<Infallible>,
) -> ! {
    let err = match stage2(sock) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    // After `create` has returned nobody reads the socket: say it on stderr instead.
    let errno = err.program_errno();
    if sync::send(
        sock,
        Tag::Error,
        i64::from(errno.unwrap_or(0)),
        &chain(&err),
        None,
    )
    .is_err()
    {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("berth-runtime: {}\n", chain(&err)).as_bytes(),
        );
    }
    // The shell's codes when the program could not run: 127 not found, 126 not
    // executable.
    sys::exit_child(match errno {
        Some(libc::ENOENT) => 127,
        Some(libc::EACCES | libc::ENOEXEC | libc::EISDIR | libc::EPERM) => 126,
        _ => 1,
    });
}
