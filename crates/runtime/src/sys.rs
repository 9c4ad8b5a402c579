//! The runtime's only unsafe code: thin wrappers over syscalls that neither std nor rustix offer
//! safely. Every caller-facing function here is safe; each unsafe block says which invariant holds.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Result of [`fork`]/[`clone_parent`]: which side of the fork we are on.
pub(crate) enum Forked {
    /// In the parent; the child's pid in the caller's pid namespace.
    Parent(i32),
    /// In the child.
    Child,
}

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `fork()` the calling process.
///
/// The runtime only forks from single-threaded processes (the CLI is single-threaded and the
/// engine calls it from a single-threaded monitor), so the child may allocate: no other thread can
/// hold the allocator's or any other lock at the moment of the fork.
pub(crate) fn fork() -> io::Result<Forked> {
    // SAFETY: the caller is single-threaded (see above), so the child's copy of every lock is
    // unlocked and the child may run arbitrary Rust code until it execs or exits.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        p => Ok(Forked::Parent(p)),
    }
}

/// `fork()` with the child started inside the cgroup2 directory `cgroup` (`clone3` with
/// `CLONE_INTO_CGROUP`), so nobody has to move it there afterwards. Same single-thread rule as
/// [`fork`].
pub(crate) fn fork_into_cgroup(cgroup: BorrowedFd<'_>) -> io::Result<Forked> {
    clone3(0, Some(cgroup))
}

/// `fork()` through `clone3`: the child is born in the new namespaces of `ns_flags`
/// (`CLONE_NEW*`) and, with `cgroup`, inside that cgroup2 directory (`CLONE_INTO_CGROUP`).
/// Same single-thread rule as [`fork`].
pub(crate) fn clone3(ns_flags: libc::c_int, cgroup: Option<BorrowedFd<'_>>) -> io::Result<Forked> {
    /// `struct clone_args` up to `cgroup` (`CLONE_ARGS_SIZE_VER2`).
    #[repr(C)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let mut flags = u64::from(ns_flags.cast_unsigned());
    if cgroup.is_some() {
        flags |= CLONE_INTO_CGROUP;
    }
    let args = CloneArgs {
        flags,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup.map_or(0, |fd| u64::try_from(fd.as_raw_fd()).unwrap_or(u64::MAX)),
    };
    // SAFETY: `args` is a valid, fully initialised clone_args of the size passed. Without a
    // stack and without CLONE_VM the child continues like a fork()ed one on a copy-on-write copy
    // of the caller's stack; the caller is single-threaded, so no lock is held by another
    // thread, and glibc keeps no pid cache since 2.25.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::from_ref(&args),
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match check(ret)? {
        0 => Ok(Forked::Child),
        p => Ok(Forked::Parent(p as i32)),
    }
}

/// Fork a child whose parent is the caller's parent (`CLONE_PARENT`), so the runtime process that
/// created the intermediate child can wait for it directly. Same single-thread rule as [`fork`].
pub(crate) fn clone_parent() -> io::Result<Forked> {
    let flags = (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: a raw clone with a null stack behaves like fork(): the child continues on a
    // copy-on-write copy of the caller's stack. The caller is single-threaded, so no lock is held
    // by another thread; glibc keeps no pid cache since 2.25, so getpid() stays correct.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match check(ret)? {
        0 => Ok(Forked::Child),
        p => Ok(Forked::Parent(p as i32)),
    }
}

/// `unshare(2)` with the given `CLONE_*` flags.
pub(crate) fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare only changes kernel-side state of this (single-threaded) process; no Rust
    // invariant depends on which namespaces or fs context the process has.
    let ret = unsafe { libc::unshare(flags) };
    check(ret as libc::c_long).map(drop)
}

/// `setns(2)` into the namespace `fd` refers to.
pub(crate) fn setns(fd: BorrowedFd<'_>, nstype: libc::c_int) -> io::Result<()> {
    // SAFETY: fd is a valid open descriptor for the duration of the call (BorrowedFd); setns only
    // changes kernel-side namespace membership.
    let ret = unsafe { libc::setns(fd.as_raw_fd(), nstype) };
    check(ret as libc::c_long).map(drop)
}

/// `personality(2)`; returns the previous persona.
pub(crate) fn personality(persona: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: personality takes a plain integer and touches no memory of ours.
    let ret = unsafe { libc::personality(persona) };
    check(ret as libc::c_long).map(|r| r as libc::c_int)
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, prio)` for the calling process.
pub(crate) fn ioprio_set(prio: libc::c_int) -> io::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    // SAFETY: plain integer arguments; the syscall reads no memory of ours.
    let ret = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio) };
    check(ret).map(drop)
}

/// The kernel's `struct sched_attr` (see sched_setattr(2)).
#[repr(C)]
#[derive(Default)]
pub(crate) struct SchedAttr {
    pub(crate) size: u32,
    pub(crate) sched_policy: u32,
    pub(crate) sched_flags: u64,
    pub(crate) sched_nice: i32,
    pub(crate) sched_priority: u32,
    pub(crate) sched_runtime: u64,
    pub(crate) sched_deadline: u64,
    pub(crate) sched_period: u64,
}

/// `sched_setattr(0, attr, 0)` for the calling thread.
pub(crate) fn sched_setattr(attr: &SchedAttr) -> io::Result<()> {
    // SAFETY: attr points to a live, properly sized and aligned `struct sched_attr` (its size
    // field is set by the caller and the struct is repr(C)); the kernel only reads it.
    let ret = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *const SchedAttr, 0) };
    check(ret).map(drop)
}

/// `execve(path, argv, envp)`: only returns on failure.
pub(crate) fn execve(path: &CString, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // SAFETY: path, every argv and envp entry are NUL-terminated CStrings that outlive the call,
    // and both pointer arrays are NULL-terminated as execve requires.
    unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
    io::Error::last_os_error()
}

/// `_exit(code)`: leave a forked child without running atexit handlers or destructors that belong
/// to the parent's copy of the process state.
pub(crate) fn exit_child(code: i32) -> ! {
    // SAFETY: _exit has no preconditions; skipping destructors is the point in a forked child.
    unsafe { libc::_exit(code) }
}

/// `ioctl(fd, TIOCSCTTY, 0)`: make the terminal on `fd` our controlling terminal.
pub(crate) fn set_controlling_tty(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fd is valid for the call; TIOCSCTTY takes an integer argument, no memory.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
    check(ret as libc::c_long).map(drop)
}

/// `ioctl(fd, TIOCSWINSZ, ws)`: set a terminal's window size.
pub(crate) fn set_winsize(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: fd is valid for the call and ws is a live winsize the kernel only reads.
    let ret = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCSWINSZ,
            &ws as *const libc::winsize,
        )
    };
    check(ret as libc::c_long).map(drop)
}

/// Mark every descriptor >= `from` close-on-exec (`close_range(from, ~0, CLOSE_RANGE_CLOEXEC)`).
pub(crate) fn cloexec_from(from: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range with CLOEXEC does not close anything, it only sets a flag on
    // descriptors, so no OwnedFd held by Rust code is invalidated.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    check(ret).map(drop)
}

/// The kernel's `struct sigaction` for rt_sigaction(2) (not libc's, which refuses signals 32
/// and 33).
#[repr(C)]
#[derive(Default)]
struct KernelSigaction {
    handler: libc::c_ulong,
    flags: libc::c_ulong,
    restorer: libc::c_ulong,
    mask: u64,
}

/// Give every signal its default disposition and unblock them all. Ignored dispositions and the
/// blocked mask survive execve: Rust's std ignores SIGPIPE before `main`, and the caller may have
/// ignored others (32 and 33 included, which libc's sigaction will not touch), so without this
/// the container's program would not start with the defaults runc's programs get. Uses the raw
/// syscall for that reason. Errors are ignored: nothing better can be done about a signal that
/// cannot be reset.
pub(crate) fn reset_signals() {
    let dfl = KernelSigaction::default(); // handler 0 is SIG_DFL
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: `dfl` is a valid kernel sigaction (SIG_DFL, no flags, empty mask) that outlives
        // the call, the old-action pointer may be null, and 8 is the kernel's sigset size. With
        // SIG_DFL no handler of ours can run, so no restorer is needed.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &dfl as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            );
        }
    }
    // SAFETY: `empty` is a valid sigset_t initialised by sigemptyset before use; the old-set
    // pointer may be null.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

/// The kernel's `struct mount_attr` (see mount_setattr(2)).
#[repr(C)]
#[derive(Default)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], {set, clear})` on the mount `fd` is on.
pub(crate) fn mount_setattr(
    fd: BorrowedFd<'_>,
    recursive: bool,
    set: u64,
    clear: u64,
) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        ..MountAttr::default()
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: fd is valid for the call, the path is a NUL-terminated empty string, and attr is a
    // live repr(C) mount_attr whose size is passed alongside; the kernel only reads it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(ret).map(drop)
}

/// `mount(2)` with raw flags and optional data, for the option combinations rustix's typed
/// wrappers do not express (arbitrary `MS_*` sets from a spec).
pub(crate) fn mount(
    source: Option<&std::ffi::CStr>,
    target: &std::ffi::CStr,
    fstype: Option<&std::ffi::CStr>,
    flags: libc::c_ulong,
    data: Option<&std::ffi::CStr>,
) -> io::Result<()> {
    let p = |s: Option<&std::ffi::CStr>| s.map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is either null or a NUL-terminated string borrowed for the duration
    // of the call; the kernel only reads them.
    let ret = unsafe {
        libc::mount(
            p(source),
            target.as_ptr(),
            p(fstype),
            flags,
            p(data).cast::<libc::c_void>(),
        )
    };
    check(ret as libc::c_long).map(drop)
}

/// The termination and user signals a foreground client passes on to the process it runs
/// (`exec`, `attach --sig-proxy`).
pub const PROXIED_SIGNALS: [libc::c_int; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Wait for child `pid` while forwarding the usual termination and job-control signals to it;
/// returns its exit status the way a shell reports it (128 + signal when killed).
///
/// The signals are blocked and taken synchronously with sigwaitinfo, so no handler runs.
pub(crate) fn wait_forwarding(pid: i32) -> io::Result<i32> {
    let forward = PROXIED_SIGNALS
        .into_iter()
        .chain([libc::SIGWINCH, libc::SIGCONT]);
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before any other use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid, exclusively borrowed sigset_t for each call below, and
    // sigprocmask's old-set pointer may be null.
    unsafe {
        libc::sigemptyset(&mut set);
        for s in forward {
            libc::sigaddset(&mut set, s);
        }
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    loop {
        // Reap first: the child may have exited before SIGCHLD was blocked.
        let mut status = 0;
        // SAFETY: status is a valid out-pointer for the duration of the call.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            if libc::WIFEXITED(status) {
                return Ok(libc::WEXITSTATUS(status));
            }
            if libc::WIFSIGNALED(status) {
                return Ok(128 + libc::WTERMSIG(status));
            }
        } else if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: set is initialised above; the siginfo out-pointer may be null.
        let sig = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
        if sig > 0 && sig != libc::SIGCHLD {
            // SAFETY: kill takes plain integers.
            unsafe { libc::kill(pid, sig) };
        }
    }
}

/// Wait for child `pid` to exit, without forwarding anything; returns a shell-style status.
pub(crate) fn wait_child(pid: i32) -> io::Result<i32> {
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out-pointer for the duration of the call.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        if libc::WIFEXITED(status) {
            return Ok(libc::WEXITSTATUS(status));
        }
        if libc::WIFSIGNALED(status) {
            return Ok(128 + libc::WTERMSIG(status));
        }
    }
}

/// `umask(2)`; returns the previous mask.
pub(crate) fn umask(mask: u32) -> u32 {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask)).bits()
}

/// `keyctl(KEYCTL_JOIN_SESSION_KEYRING, name)`: give the container a session keyring of its own.
pub(crate) fn join_session_keyring(name: &std::ffi::CStr) -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;
    // SAFETY: name is a NUL-terminated string borrowed for the duration of the call.
    let ret =
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    check(ret).map(drop)
}

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)`: execute the program `fd` refers to. Only
/// returns on failure.
pub(crate) fn fexecve(fd: BorrowedFd<'_>, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // SAFETY: fd is open for the duration of the call, the path is an empty NUL-terminated
    // string, and both pointer arrays are NULL-terminated arrays of CStrings that outlive the
    // call, as execveat(2) requires.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv_ptrs.as_ptr(),
            envp_ptrs.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    io::Error::last_os_error()
}

/// Block `signals` for this (single-threaded) process and return a signalfd that reports them.
pub(crate) fn signalfd(signals: &[libc::c_int]) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before any other use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid, exclusively borrowed sigset_t for each call; the old-set pointer of
    // sigprocmask may be null.
    let fd = unsafe {
        libc::sigemptyset(&mut set);
        for s in signals {
            libc::sigaddset(&mut set, *s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: signalfd returned a new descriptor that nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// `waitpid(pid, 0)` after the child is known to have exited: its shell-style status.
pub(crate) fn reap(pid: i32) -> io::Result<i32> {
    wait_child(pid)
}
