//! `create` and `run`: from a bundle to an init process waiting on the exec fifo.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use rustix::fs::{Mode, OFlags};

use super::launch::{self, Namespaces, ParentSetup};
use crate::error::{Result, RuntimeError};
use crate::spec::{self, Bundle, has_ns, ns_flag};
use crate::state::{self, ContainerState, EXEC_FIFO, Status};
use crate::sync::{self, Tag};
use crate::{hooks, process, rootfs, sys};

/// Options of `create` (and `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Container id.
    pub id: String,
    /// Bundle directory.
    pub bundle: PathBuf,
    /// Unix socket that receives the pty master when `process.terminal` is set.
    pub console_socket: Option<PathBuf>,
    /// File to write init's pid to.
    pub pid_file: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root.
    pub no_pivot: bool,
    /// Do not give the container its own session keyring.
    pub no_new_keyring: bool,
    /// Number of descriptors after stdio (3, 4, ...) passed to the container.
    pub preserve_fds: u32,
    /// `--systemd-cgroup`.
    pub systemd_cgroup: bool,
    /// Socket-activation descriptors (3, 4, ...) the runtime was given with `LISTEN_FDS` (and
    /// `LISTEN_PID` naming it): passed to the container before the preserved ones, with
    /// `LISTEN_FDS=<n>` and `LISTEN_PID=1` in its environment, as runc does.
    pub listen_fds: u32,
    /// The host's `NOTIFY_SOCKET`: see the notify_socket module.
    pub notify_socket: Option<PathBuf>,
}

/// Removes everything a failed create made: processes (via the child guard), cgroup, state dir.
struct CreateGuard {
    state_dir: PathBuf,
    cgroup: Option<Box<dyn cgroups::CgroupManager>>,
    armed: bool,
}

impl Drop for CreateGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.kill_all(libc::SIGKILL);
            if let Err(e) = cg.destroy() {
                tracing::warn!(
                    "remove cgroup of failed container: {}",
                    crate::error::chain(&e)
                );
            }
        }
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

/// Open the namespace files the spec asks to join, naming the field on error.
fn join_fds(spec: &Spec) -> Result<Vec<(LinuxNamespaceType, OwnedFd)>> {
    let mut out = Vec::new();
    let nss = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref());
    for (i, ns) in nss.into_iter().flatten().enumerate() {
        if let Some(path) = ns.path() {
            let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| {
                    RuntimeError::invalid(
                        format!("linux.namespaces[{i}].path"),
                        format!("{}: {e}", path.display()),
                    )
                })?;
            // Otherwise setns fails later, in the child, with a bare EINVAL naming no field.
            let is_ns = rustix::fs::fstatfs(&fd).is_ok_and(|f| f.f_type == libc::NSFS_MAGIC);
            if !is_ns {
                return Err(RuntimeError::invalid(
                    format!("linux.namespaces[{i}].path"),
                    format!("{} is not a namespace file", path.display()),
                ));
            }
            out.push((ns.typ(), fd));
        }
    }
    Ok(out)
}

fn new_ns_flags(spec: &Spec) -> libc::c_int {
    let nss = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref());
    nss.into_iter()
        .flatten()
        .filter(|n| n.path().is_none())
        .fold(0, |acc, n| acc | ns_flag(n.typ()))
}

fn time_offsets(spec: &Spec) -> Option<String> {
    let offs = spec.linux().as_ref()?.time_offsets().as_ref()?;
    let mut s = String::new();
    for (clock, o) in offs {
        let name = clock.as_str();
        s.push_str(&format!(
            "{name} {} {}\n",
            o.secs().unwrap_or(0),
            o.nanosecs().unwrap_or(0)
        ));
    }
    Some(s)
}

/// A created container: init is waiting on the exec fifo.
struct Created {
    /// Init's pid.
    pid: i32,
    sock: OwnedFd,
}

/// Create the container: run everything up to, but not including, the user's program.
pub fn create(root: &Path, opts: &CreateOptions) -> Result<i32> {
    let created = create_inner(root, opts)?;
    drop(created.sock);
    Ok(created.pid)
}

fn create_inner(root: &Path, opts: &CreateOptions) -> Result<Created> {
    create_with_console(root, opts, None)
}

/// Create, with the console either from `--console-socket` or, for `run`, the runtime's own
/// socket (`own_console`).
fn create_with_console(
    root: &Path,
    opts: &CreateOptions,
    own_console: Option<BorrowedFd<'_>>,
) -> Result<Created> {
    state::validate_id(&opts.id)?;
    let bundle = spec::load_bundle(&opts.bundle)?;
    let spec = &bundle.spec;
    let linux = spec.linux().as_ref();
    std::fs::create_dir_all(root).map_err(|e| RuntimeError::io("create state root", root, e))?;
    let seccomp = linux
        .and_then(|l| l.seccomp().as_ref())
        .map(|s| super::seccomp_cache(root).compile(s))
        .transpose()?;
    let joins = join_fds(spec)?;
    let console: Option<OwnedFd> = match own_console {
        Some(fd) => Some(
            fd.try_clone_to_owned()
                .map_err(|e| RuntimeError::sys("duplicate console socket", e))?,
        ),
        None => opts
            .console_socket
            .as_ref()
            .map(|p| {
                UnixStream::connect(p)
                    .map(OwnedFd::from)
                    .map_err(|e| RuntimeError::io("connect to console socket", p, e))
            })
            .transpose()?,
    };
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    if terminal && console.is_none() {
        return Err(RuntimeError::invalid(
            "process.terminal",
            "a terminal needs --console-socket",
        ));
    }

    let state_dir = state::state_dir(root, &opts.id);
    // 0711: a non-root init must be able to reach exec.fifo inside, nobody may list it.
    match std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o711)
        .create(&state_dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(RuntimeError::Exists(opts.id.clone()));
        }
        Err(e) => return Err(RuntimeError::io("create state dir", &state_dir, e)),
    }
    let mut guard = CreateGuard {
        state_dir: state_dir.clone(),
        cgroup: None,
        armed: true,
    };
    // What init runs with differs from the stored config only by runtime-supplied passthrough:
    // socket activation and the notify socket.
    let mut init_spec = bundle.spec.clone();
    if opts.listen_fds > 0
        && let Some(mut process) = init_spec.process().clone()
    {
        let mut env = process.env().clone().unwrap_or_default();
        env.retain(|e| !e.starts_with("LISTEN_FDS=") && !e.starts_with("LISTEN_PID="));
        env.push(format!("LISTEN_FDS={}", opts.listen_fds));
        env.push("LISTEN_PID=1".to_string());
        process.set_env(Some(env));
        init_spec.set_process(Some(process));
    }
    if opts.notify_socket.is_some() {
        crate::notify_socket::prepare(&state_dir, &mut init_spec)?;
    }
    let init_bundle = Bundle {
        dir: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        spec: init_spec,
    };
    let caller_cgroups = cgroups::caller_cgroups()?;
    let cgroup = super::manager_for(
        spec,
        &opts.id,
        opts.systemd_cgroup,
        Some(caller_cgroups.clone()),
    )
    .map_err(|e| match e {
        RuntimeError::Cgroup(e @ cgroups::CgroupError::InvalidPath { .. }) => {
            RuntimeError::invalid("linux.cgroupsPath", crate::error::chain(&e))
        }
        other => other,
    })?;
    let fifo = state_dir.join(EXEC_FIFO);
    rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, Mode::from_raw_mode(0o622))
        .map_err(|e| RuntimeError::io("create", &fifo, e.into()))?;
    // mkfifo is subject to the umask; make sure a non-root init can open it for writing.
    rustix::fs::chmod(&fifo, Mode::from_raw_mode(0o622))
        .map_err(|e| RuntimeError::io("chmod", &fifo, e.into()))?;
    // Init reaches the fifo through a descriptor of the state directory: after pivot_root or
    // chroot no path leads there, and /proc may not be mounted in the container.
    let fifo_fd = rustix::fs::open(
        &state_dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RuntimeError::io("open", &state_dir, e.into()))?;

    let ns = Namespaces {
        join: joins,
        create: new_ns_flags(spec),
        time_offsets: time_offsets(spec),
    };
    let empty = Vec::new();
    let resources = super::effective_resources(spec);
    let userns = has_ns(spec, LinuxNamespaceType::User);
    let cgroupns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|n| {
            n.iter()
                .any(|n| n.typ() == LinuxNamespaceType::Cgroup && n.path().is_none())
        });
    let cgroup_paths = cgroup.paths();
    let init = InitContext {
        bundle: &init_bundle,
        opts,
        fifo_fd: fifo_fd.as_fd(),
        console: console.as_ref().map(|c| c.as_fd()),
        seccomp: seccomp.as_ref(),
        userns,
        cgroupns,
        cgroup_paths: &cgroup_paths,
    };
    let cgroup = guard.cgroup.insert(cgroup);
    let setup = ParentSetup {
        cgroup: cgroup.as_ref(),
        resources: resources.as_ref(),
        init_pid: None,
        uid_mappings: linux
            .and_then(|l| l.uid_mappings().as_ref())
            .unwrap_or(&empty),
        gid_mappings: linux
            .and_then(|l| l.gid_mappings().as_ref())
            .unwrap_or(&empty),
    };
    let mut spawned = launch::spawn(ns, &setup, |sock| container_init(&init, sock))?;
    let pid = spawned.pid;
    let hook_state = |status| super::hook_state(spec, &opts.id, pid, status, &bundle.dir);
    loop {
        let m = launch::expect(spawned.sock.as_fd(), "setting up the container")?;
        match m.tag {
            Tag::RunHooks => {
                if let Some(h) = spec.hooks() {
                    // runtime-tools and crun give these hooks "created"; runc says "creating".
                    let st = hook_state(Status::Created);
                    hooks::run("prestart", h.prestart().as_deref().unwrap_or(&[]), &st)?;
                    hooks::run(
                        "createRuntime",
                        h.create_runtime().as_deref().unwrap_or(&[]),
                        &st,
                    )?;
                }
                sync::send(spawned.sock.as_fd(), Tag::Go, 0, "", None)
                    .map_err(|e| RuntimeError::sys("signal container init", e))?;
            }
            Tag::SeccompFd => {
                let fd =
                    m.fd.ok_or_else(|| RuntimeError::Child("seccomp listener fd missing".into()))?;
                super::send_seccomp_listener(
                    spec,
                    &opts.id,
                    pid,
                    Status::Creating,
                    &bundle.dir,
                    fd.as_fd(),
                )?;
            }
            Tag::Ready => break,
            other => {
                return Err(RuntimeError::Child(format!(
                    "protocol: unexpected {other:?}"
                )));
            }
        }
    }
    let start_time = state::process_start_time(pid)
        .ok_or_else(|| RuntimeError::Child("container init died during setup".into()))?;
    let st = ContainerState {
        id: opts.id.clone(),
        pid,
        init_start_time: start_time,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: state::now_rfc3339(),
        owner: String::new(),
        config: bundle.spec.clone(),
        systemd_cgroup: opts.systemd_cgroup,
        deleting: false,
        notify_socket: opts.notify_socket.clone(),
        caller_cgroups: Some(caller_cgroups),
    };
    st.save(root)?;
    if let Some(pf) = &opts.pid_file {
        state::write_atomic(pf, pid.to_string().as_bytes())?;
    }
    spawned.reap_stage1();
    spawned.guard.disarm();
    guard.armed = false;
    Ok(Created {
        pid,
        sock: spawned.sock,
    })
}

/// `run`: create, start, and (unless detached) wait for the container and, unless `keep`,
/// delete it. Returns the container's exit status (0 when detached).
pub fn run(root: &Path, opts: &CreateOptions, detach: bool, keep: bool) -> Result<i32> {
    // An interactive run (terminal, no console socket): the runtime holds the pty itself,
    // through a socket pair standing in for the console socket.
    let bundle_terminal = std::fs::read(opts.bundle.join("config.json"))
        .ok()
        .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
        .and_then(|v| {
            v.pointer("/process/terminal")
                .and_then(serde_json::Value::as_bool)
        })
        .unwrap_or(false);
    let own_console = bundle_terminal && opts.console_socket.is_none();
    if own_console && detach {
        return Err(RuntimeError::invalid(
            "process.terminal",
            "a detached container with a terminal needs --console-socket",
        ));
    }
    let pair = own_console
        .then(|| {
            rustix::net::socketpair(
                rustix::net::AddressFamily::UNIX,
                rustix::net::SocketType::STREAM,
                rustix::net::SocketFlags::CLOEXEC,
                None,
            )
            .map_err(|e| RuntimeError::sys("socketpair for the terminal", e.into()))
        })
        .transpose()?;
    let created = create_with_console(root, opts, pair.as_ref().map(|(_, theirs)| theirs.as_fd()))?;
    drop(created.sock);
    let master = match &pair {
        Some((ours, _)) => Some(crate::console::receive_master(ours.as_fd())?),
        None => None,
    };
    if let Err(e) = super::start(root, &opts.id) {
        let _ = super::delete(root, &opts.id, true);
        return Err(e);
    }
    if detach {
        return Ok(0);
    }
    let status = match master {
        Some(m) => {
            let opts = crate::console::RelayOptions {
                stdin: true,
                detach_keys: &[],
            };
            match crate::console::relay(m, created.pid, opts)? {
                crate::console::Relayed::Exited(status) => status,
                crate::console::Relayed::Detached(_) => {
                    unreachable!("no detach keys were given")
                }
            }
        }
        None => sys::wait_forwarding(created.pid)
            .map_err(|e| RuntimeError::sys("wait for container", e))?,
    };
    if !keep {
        super::delete(root, &opts.id, true)?;
    }
    Ok(status)
}

/// Everything init needs, borrowed from the parent's stack (init is a fork of it).
struct InitContext<'a> {
    bundle: &'a Bundle,
    opts: &'a CreateOptions,
    fifo_fd: BorrowedFd<'a>,
    console: Option<BorrowedFd<'a>>,
    seccomp: Option<&'a crate::seccomp::Program>,
    userns: bool,
    cgroupns: bool,
    cgroup_paths: &'a std::collections::BTreeMap<String, PathBuf>,
}

/// The container's init: stage 2 of [`launch::spawn`], PID 1 of the container.
fn container_init(ctx: &InitContext<'_>, sock: BorrowedFd<'_>) -> Result<Infallible> {
    let spec = &ctx.bundle.spec;
    let linux = spec.linux().as_ref();
    rustix::process::setsid().map_err(|e| RuntimeError::sys("setsid", e.into()))?;
    if !ctx.opts.no_new_keyring {
        let name = CString::new(format!("_ses.{}", ctx.opts.id))
            .map_err(|_| RuntimeError::invalid("id", "NUL byte"))?;
        match sys::join_session_keyring(&name) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOSYS) | Some(libc::EPERM) | Some(libc::EACCES)
                ) => {}
            Err(e) => return Err(RuntimeError::sys("join session keyring", e)),
        }
    }
    sys::umask(0);
    let rctx = rootfs::RootfsContext {
        spec,
        bundle: &ctx.bundle.dir,
        rootfs: &ctx.bundle.rootfs,
        userns: ctx.userns,
        cgroupns: ctx.cgroupns,
        cgroup_paths: ctx.cgroup_paths,
    };
    // The runtime's hooks at this point run while init waits; without any, nobody waits.
    let runtime_hooks = spec.hooks().as_ref().is_some_and(|h| {
        h.prestart().as_ref().is_some_and(|v| !v.is_empty())
            || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
    });
    let mut before_pivot = || -> Result<()> {
        if runtime_hooks {
            sync::send(sock, Tag::RunHooks, 0, "", None)
                .map_err(|e| RuntimeError::sys("sync with runtime", e))?;
            sync::wait_go(sock).map_err(|e| RuntimeError::sys("wait for hooks", e))?;
        }
        in_container_hooks(ctx, "createContainer", |h| h.create_container().as_ref())
    };
    let mountns = has_ns(spec, LinuxNamespaceType::Mount);
    if mountns {
        rootfs::setup(&rctx, ctx.opts.no_pivot, &mut before_pivot)?;
    } else {
        if spec.mounts().as_ref().is_some_and(|m| !m.is_empty()) {
            tracing::warn!(
                "no mount namespace: the spec's mounts are skipped, they would land on the host"
            );
        }
        before_pivot()?;
        rootfs::chroot_only(&ctx.bundle.rootfs)?;
    }

    if has_ns(spec, LinuxNamespaceType::Uts) {
        if let Some(h) = spec.hostname() {
            rustix::system::sethostname(h.as_bytes())
                .map_err(|e| RuntimeError::sys("set hostname", e.into()))?;
        }
        if let Some(d) = spec.domainname() {
            rustix::system::setdomainname(d.as_bytes())
                .map_err(|e| RuntimeError::sys("set domainname", e.into()))?;
        }
    }
    for (k, v) in linux
        .and_then(|l| l.sysctl().as_ref())
        .into_iter()
        .flatten()
    {
        let path = format!("/proc/sys/{}", k.replace('.', "/"));
        std::fs::write(&path, v).map_err(|e| RuntimeError::io("set linux.sysctl via", path, e))?;
    }
    let Some(process) = spec.process().as_ref() else {
        // No process: the container can be created; `start` refuses it (runtime spec) and
        // removes this init.
        sync::send(sock, Tag::Ready, 0, "", None)
            .map_err(|e| RuntimeError::sys("report ready", e))?;
        loop {
            rustix::event::pause();
        }
    };
    if process.terminal().unwrap_or(false)
        && let Some(console) = ctx.console
    {
        setup_terminal(
            console,
            process
                .console_size()
                .map(|b| (b.height() as u16, b.width() as u16)),
            true,
        )?;
    }
    if mountns {
        rootfs::finish(spec)?;
    }
    if let Some(p) = linux.and_then(|l| l.personality().as_ref()) {
        process::apply_personality(p)?;
    }
    finalize_and_exec(
        process,
        sock,
        ctx.seccomp,
        Some(ctx.fifo_fd),
        ctx.opts.listen_fds + ctx.opts.preserve_fds,
        || in_container_hooks(ctx, "startContainer", |h| h.start_container().as_ref()),
    )
}

/// Run createContainer or startContainer hooks from inside the container. Both see the state
/// "created": the user's program has not been executed yet (runtime spec, State), as runc says.
fn in_container_hooks(
    ctx: &InitContext<'_>,
    kind: &'static str,
    select: impl FnOnce(&oci_spec::runtime::Hooks) -> Option<&Vec<oci_spec::runtime::Hook>>,
) -> Result<()> {
    let spec = &ctx.bundle.spec;
    if let Some(h) = spec.hooks().as_ref().and_then(select) {
        let st = super::hook_state(
            spec,
            &ctx.opts.id,
            std::process::id() as i32,
            Status::Created,
            &ctx.bundle.dir,
        );
        hooks::run(kind, h, &st)?;
    }
    Ok(())
}

/// Make the pty the process's terminal and hand its master to the console socket.
pub(crate) fn setup_terminal(
    console: BorrowedFd<'_>,
    size: Option<(u16, u16)>,
    bind_console: bool,
) -> Result<()> {
    let (master, slave_path) = rootfs::open_pty()?;
    if let Some((rows, cols)) = size {
        sys::set_winsize(master.as_fd(), rows, cols)
            .map_err(|e| RuntimeError::sys("set console size", e))?;
    }
    if bind_console {
        rootfs::bind_console(&slave_path)?;
    }
    sync::send_with_fd(console, b"/dev/ptmx", Some(master.as_fd()))
        .map_err(|e| RuntimeError::sys("send pty master to console socket", e))?;
    drop(master);
    let slave = rustix::fs::open(&slave_path, OFlags::RDWR, Mode::empty())
        .map_err(|e| RuntimeError::io("open", &slave_path, e.into()))?;
    sys::set_controlling_tty(slave.as_fd())
        .map_err(|e| RuntimeError::sys("set controlling terminal", e))?;
    for target in 0..3 {
        // SAFETY-free: dup2 onto stdio numbers via rustix's owned-fd API.
        let mut t = match target {
            0 => rustix::stdio::dup2_stdin(&slave),
            1 => rustix::stdio::dup2_stdout(&slave),
            _ => rustix::stdio::dup2_stderr(&slave),
        };
        if let Err(e) = t.as_mut() {
            return Err(RuntimeError::sys(
                "attach stdio to terminal",
                std::io::Error::from(*e),
            ));
        }
    }
    Ok(())
}

/// The last steps every container process takes: limits, labels, identity, capabilities,
/// no_new_privs, seccomp, working directory; then (for init) wait for `start`, and exec.
pub(crate) fn finalize_and_exec(
    process: &oci_spec::runtime::Process,
    sock: BorrowedFd<'_>,
    seccomp: Option<&crate::seccomp::Program>,
    fifo: Option<BorrowedFd<'_>>,
    preserve_fds: u32,
    after_start: impl FnOnce() -> Result<()>,
) -> Result<Infallible> {
    let nnp = process.no_new_privileges().unwrap_or(false);
    // Nothing but stdio and the preserved descriptors may reach the program (CVE-2024-21626).
    // Done first, while no seccomp profile can refuse close_range.
    sys::cloexec_from(3 + preserve_fds)
        .map_err(|e| RuntimeError::sys("close inherited descriptors", e))?;
    // The working directory is entered while still root and before any seccomp profile, which
    // may refuse getcwd (used to check the directory is inside the root).
    process::enter_cwd(process.cwd())?;
    process::apply_rlimits(process)?;
    process::apply_attributes(process)?;
    let install_seccomp = |p: &crate::seccomp::Program| -> Result<()> {
        if let Some(listener) = p.install()? {
            sync::send(sock, Tag::SeccompFd, 0, "", Some(listener.as_fd()))
                .map_err(|e| RuntimeError::sys("send seccomp listener", e))?;
        }
        Ok(())
    };
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it before dropping caps.
    let mut late_seccomp = None;
    if let Some(p) = seccomp
        && (!nnp || p.needs_listener())
    {
        if !nnp {
            install_seccomp(p)?;
        } else {
            late_seccomp = Some(p);
        }
    }
    process::apply_identity_and_caps(process)?;
    if nnp {
        rustix::thread::set_no_new_privs(true)
            .map_err(|e| RuntimeError::sys("set no_new_privs", e.into()))?;
    }
    if let Some(p) = late_seccomp {
        install_seccomp(p)?;
    }
    let env = process::environment(process);
    let args = process.args().clone().unwrap_or_default();
    let arg0 = args
        .first()
        .ok_or_else(|| RuntimeError::invalid("process.args", "empty"))?;
    let path = process::find_executable(arg0, &env)?;
    sys::umask(process.user().umask().unwrap_or(0o022));
    if let Some(fifo) = fifo {
        sync::send(sock, Tag::Ready, 0, "", None)
            .map_err(|e| RuntimeError::sys("report ready", e))?;
        let f = rustix::fs::openat(
            fifo,
            EXEC_FIFO,
            OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| RuntimeError::io("open exec fifo", EXEC_FIFO, e.into()))?;
        rustix::io::write(&f, b"0").map_err(|e| RuntimeError::sys("write exec fifo", e.into()))?;
        drop(f);
        after_start()?;
    }
    // The program starts with default signal dispositions, not the runtime's (SIGPIPE ignored).
    sys::reset_signals();
    if let Some(p) = seccomp
        && nnp
        && !p.needs_listener()
    {
        // As close to execve as possible, so the profile need not allow the runtime's calls.
        p.install()?;
    }
    Err(process::exec(&path, &args, &env))
}
