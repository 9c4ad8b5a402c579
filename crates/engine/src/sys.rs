//! The engine's unsafe operations: receiving signals as data (for the attach client), a
//! forked keeper for the terminal of a detached `exec -t`, and the detached start of a monitor.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Signals blocked and delivered on a descriptor instead; the old mask comes back on drop.
pub(crate) struct SignalFd {
    pub(crate) fd: OwnedFd,
    old: libc::sigset_t,
}

impl SignalFd {
    /// Blocks `signals` and returns a non-blocking signalfd that reads them.
    pub(crate) fn new(signals: &[libc::c_int]) -> io::Result<SignalFd> {
        // SAFETY: sigset_t is plain data; sigemptyset initialises both sets before any use.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` and `old` are valid, exclusively borrowed sigset_t values for each call;
        // signalfd(-1, ...) creates a new descriptor and only reads `set`.
        let fd = unsafe {
            libc::sigemptyset(&mut set);
            libc::sigemptyset(&mut old);
            for s in signals {
                libc::sigaddset(&mut set, *s);
            }
            libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old);
            libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            // SAFETY: `old` holds the mask sigprocmask returned above.
            unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
            return Err(e);
        }
        // SAFETY: signalfd returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(SignalFd { fd, old })
    }

    /// The signals delivered since the last call.
    pub(crate) fn read(&self) -> Vec<i32> {
        let mut out = Vec::new();
        // struct signalfd_siginfo is 128 bytes; ssi_signo is its first field.
        let mut info = [0u8; 128];
        while let Ok(128) = rustix::io::read(&self.fd, &mut info) {
            out.push(i32::from_ne_bytes([info[0], info[1], info[2], info[3]]));
        }
        out
    }
}

impl Drop for SignalFd {
    fn drop(&mut self) {
        // SAFETY: `old` is the mask saved when the signals were blocked.
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// Keeps `master` open in a forked process that reads and discards the terminal's output until
/// every slave side is closed, so a process whose `exec -t` session detached keeps its
/// terminal (closing the last master would hang it up). The keeper has /dev/null for stdio
/// and its own session, so it holds nothing of the caller's terminal.
pub(crate) fn keep_terminal(master: OwnedFd) -> io::Result<()> {
    let null = c"/dev/null";
    // SAFETY: the child runs only async-signal-safe calls (sigprocmask, setsid, open, dup2,
    // read, _exit) on descriptors and a stack buffer it owns, then exits without returning.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let fd = master.as_raw_fd();
        let mut buf = [0u8; 4096];
        // SAFETY: as above; `buf` outlives every read into it.
        unsafe {
            // The relay left termination signals blocked; the keeper takes them normally.
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            libc::setsid();
            let n = libc::open(null.as_ptr(), libc::O_RDWR);
            if n >= 0 {
                libc::dup2(n, 0);
                libc::dup2(n, 1);
                libc::dup2(n, 2);
            }
            loop {
                let r = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
                if r == 0 || (r < 0 && *libc::__errno_location() != libc::EINTR) {
                    libc::_exit(0);
                }
            }
        }
    }
    drop(master);
    Ok(())
}

/// Starts `exe` (a descriptor of an executable, see `runtime::selfexe::protected_exe`) with
/// `argv` and `envp` as a grandchild that nobody waits for: the intermediate child exits at
/// once, so the new process is reparented to the nearest subreaper (or init) and outlives the
/// caller whatever happens to it, in a session of its own. Its stdio are `stdio`; signal
/// dispositions and mask start clean. If the exec fails, the grandchild writes `err 125 <reason>` to its stdout (the
/// caller's report pipe) and exits 125.
pub(crate) fn spawn_detached(
    exe: std::os::fd::BorrowedFd<'_>,
    argv: &[std::ffi::CString],
    envp: &[std::ffi::CString],
    stdio: [std::os::fd::BorrowedFd<'_>; 3],
) -> io::Result<()> {
    // Everything the children touch is made here: after fork they only make
    // async-signal-safe calls.
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    let fds = stdio.map(|fd| fd.as_raw_fd());
    // A subreaper (a monitor starting a network's DNS server) would inherit the grandchild
    // when the middle child exits, and keep it as a zombie once it ends: step aside meanwhile.
    let subreaper = rustix::process::child_subreaper().ok().flatten().is_some();
    if subreaper {
        let _ = rustix::process::set_child_subreaper(None);
    }
    let res = fork_twice_and_exec(exe, &argv_ptrs, &envp_ptrs, fds);
    if subreaper {
        let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
    }
    res
}

/// What the detached children need, made before the first clone: they share the caller's
/// memory and only read this.
struct Detach {
    exe: libc::c_int,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    fds: [libc::c_int; 3],
    /// Top of the grandchild's stack.
    grandchild_stack: *mut libc::c_void,
}

/// Stack of each detached child: they run a few calls before they exec or exit.
const CHILD_STACK: usize = 64 * 1024;

/// The children are `clone(CLONE_VM | CLONE_VFORK)` copies, as posix_spawn makes them: no copy
/// of the caller's page tables to make and tear down (a `fork` of a large process costs
/// milliseconds; this is on the path of every `berth run`), and the caller stays suspended
/// until the middle child has exited, which it does once the grandchild has exec'd or failed.
fn fork_twice_and_exec(
    exe: std::os::fd::BorrowedFd<'_>,
    argv_ptrs: &[*const libc::c_char],
    envp_ptrs: &[*const libc::c_char],
    fds: [i32; 3],
) -> io::Result<()> {
    let mut middle_stack = vec![0u8; CHILD_STACK];
    let mut grandchild_stack = vec![0u8; CHILD_STACK];
    let top = |stack: &mut Vec<u8>| -> *mut libc::c_void {
        // SAFETY: CHILD_STACK is within the allocation; the stack grows down from its end,
        // rounded down to the 16 bytes the ABI wants.
        let end = unsafe { stack.as_mut_ptr().add(CHILD_STACK) };
        end.wrapping_sub(end as usize % 16).cast()
    };
    let detach = Detach {
        exe: exe.as_raw_fd(),
        argv: argv_ptrs.as_ptr(),
        envp: envp_ptrs.as_ptr(),
        fds,
        grandchild_stack: top(&mut grandchild_stack),
    };
    // No signal handler may run in a child that shares our memory: everything stays blocked
    // until the grandchild has reset every handler.
    // SAFETY: sigset_t is plain data, initialised by sigfillset/sigprocmask before use.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: both sets are valid and exclusively borrowed.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    // SAFETY: `middle` gets a stack of its own and a pointer to `detach`, both alive until
    // clone returns: with CLONE_VFORK that is after the middle child has exited. It and the
    // grandchild only read `detach` and make async-signal-safe calls.
    let pid = unsafe {
        libc::clone(
            middle,
            top(&mut middle_stack),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            std::ptr::from_ref(&detach).cast_mut().cast(),
        )
    };
    let cloned = io::Error::last_os_error();
    // SAFETY: `old` is the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    if pid < 0 {
        return Err(cloned);
    }
    let mut status = 0;
    // SAFETY: waits for the child cloned above; `status` is a valid out pointer.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(io::Error::other("fork the monitor failed"))
    }
}

/// The middle child: starts the grandchild and exits, 0 when it started.
extern "C" fn middle(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Detach` the caller keeps alive while we run (see above).
    let d = unsafe { &*arg.cast::<Detach>() };
    // SAFETY: as in `fork_twice_and_exec`: a stack of its own, `arg` alive until we exit.
    let pid = unsafe {
        libc::clone(
            grandchild,
            d.grandchild_stack,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            arg,
        )
    };
    // SAFETY: _exit ends this process only.
    unsafe { libc::_exit(i32::from(pid < 0)) }
}

/// The grandchild: its own session and stdio, default signal handling, then exec.
extern "C" fn grandchild(arg: *mut libc::c_void) -> libc::c_int {
    let failed = b"err 125 exec the monitor failed\n";
    // SAFETY: `arg` is the caller's `Detach`, alive until we exec or exit (CLONE_VFORK); every
    // call below is async-signal-safe and touches only kernel state of this process, locals
    // and the caller's prepared argv/envp.
    unsafe {
        let d = &*arg.cast::<Detach>();
        // Out of the caller's session and process group: no signal meant for the caller's
        // terminal reaches it.
        libc::setsid();
        // A source that is itself 0..2 could be overwritten by an earlier dup2: copy all
        // three above 2 first.
        let high = d.fds.map(|fd| libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3));
        for (target, fd) in high.iter().enumerate() {
            libc::dup2(*fd, target as libc::c_int);
        }
        // Handlers are the caller's code on the caller's memory: default them before any
        // signal can arrive. Rust ignores SIGPIPE; an ignored signal would stay ignored across
        // exec.
        for sig in 1..=libc::SIGRTMAX() {
            let mut act: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut act) == 0
                && (act.sa_sigaction != libc::SIG_DFL || sig == libc::SIGPIPE)
            {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::syscall(
            libc::SYS_execveat,
            d.exe,
            c"".as_ptr(),
            d.argv,
            d.envp,
            libc::AT_EMPTY_PATH,
        );
        libc::write(1, failed.as_ptr().cast(), failed.len());
        libc::_exit(125)
    }
}
