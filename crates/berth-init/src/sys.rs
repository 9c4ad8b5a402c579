//! The libc calls std does not wrap: signal masks, `sigwaitinfo`, `kill`, `waitpid`. Declared by
//! hand because the crate has no dependencies (it is compiled by rustc alone).

use std::ffi::c_int;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// `SIGCHLD` on Linux.
pub(crate) const SIGCHLD: c_int = 17;

const SIG_SETMASK: c_int = 2;
const WNOHANG: c_int = 1;

/// Signals raised by the faulting instruction itself, or job-control stops from a terminal:
/// they must keep their default action (blocking a synchronous fault would loop forever).
const SYNCHRONOUS: [c_int; 9] = [4, 5, 6, 7, 8, 11, 31, 21, 22];

/// glibc's `sigset_t`: 1024 bits.
#[repr(C)]
pub(crate) struct SigSet([u64; 16]);

/// glibc's `siginfo_t`: 128 bytes, `si_signo` first.
#[repr(C)]
struct SigInfo {
    signo: c_int,
    rest: [c_int; 31],
}

unsafe extern "C" {
    fn sigfillset(set: *mut SigSet) -> c_int;
    fn sigdelset(set: *mut SigSet, sig: c_int) -> c_int;
    fn sigprocmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
    fn sigwaitinfo(set: *const SigSet, info: *mut SigInfo) -> c_int;
    fn kill(pid: c_int, sig: c_int) -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
}

/// Blocks every asynchronous signal in this (single-threaded) process; returns the blocked set.
pub(crate) fn block_async_signals() -> Result<SigSet, ()> {
    let mut set = SigSet([0; 16]);
    // SAFETY: `set` is a live, writable sigset_t-sized buffer owned by this frame.
    unsafe {
        sigfillset(&raw mut set);
    }
    for sig in SYNCHRONOUS {
        // SAFETY: as above; `sig` is a valid signal number.
        unsafe {
            sigdelset(&raw mut set, sig);
        }
    }
    // SAFETY: `set` was initialised by sigfillset; a null `old` is allowed.
    let rc = unsafe { sigprocmask(SIG_SETMASK, &raw const set, std::ptr::null_mut()) };
    if rc == 0 { Ok(set) } else { Err(()) }
}

/// Makes `cmd`'s child clear its inherited signal mask before it execs.
pub(crate) fn unblock_signals_in_child(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only calls sigprocmask, which
    // is async-signal-safe; it allocates nothing and takes no lock. `EMPTY` is a static, valid
    // (all-zero, i.e. empty) sigset_t.
    unsafe {
        cmd.pre_exec(|| {
            static EMPTY: SigSet = SigSet([0; 16]);
            if sigprocmask(SIG_SETMASK, &raw const EMPTY, std::ptr::null_mut()) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// Waits for one signal of `set` (blocked beforehand); returns its number, or -1 when
/// interrupted.
pub(crate) fn wait_signal(set: &SigSet) -> c_int {
    let mut info = SigInfo {
        signo: 0,
        rest: [0; 31],
    };
    // SAFETY: `set` is an initialised sigset_t; `info` is a writable siginfo_t-sized buffer.
    let rc = unsafe { sigwaitinfo(set, &raw mut info) };
    if rc < 0 { -1 } else { info.signo }
}

/// Sends `sig` to `pid`; a process already gone is not an error worth reporting.
pub(crate) fn send(pid: c_int, sig: c_int) {
    // SAFETY: kill takes plain integers and touches no memory of this process.
    unsafe {
        kill(pid, sig);
    }
}

/// Reaps one exited child without blocking: `(pid, wait status)`, or `None` when none is left.
pub(crate) fn reap_any() -> Option<(c_int, c_int)> {
    let mut status: c_int = 0;
    // SAFETY: `status` is a writable int owned by this frame.
    let pid = unsafe { waitpid(-1, &raw mut status, WNOHANG) };
    (pid > 0).then_some((pid, status))
}
