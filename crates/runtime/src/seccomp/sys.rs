//! The raw system calls of the seccomp module; every `unsafe` block of it lives here.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)`: returns the raw non-negative result (0, a
/// thread id for a failed TSYNC, or the listener fd with `SECCOMP_FILTER_FLAG_NEW_LISTENER`).
///
/// No allocation and no locks: safe to call between fork and exec.
pub(super) fn set_mode_filter(
    flags: libc::c_ulong,
    filter: &[libc::sock_filter],
) -> io::Result<i64> {
    let Ok(len) = u16::try_from(filter.len()) else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    let prog = libc::sock_fprog {
        len,
        // The kernel only reads the instructions (it copies them into its own memory), so handing
        // it a `*mut` made from a shared borrow never leads to a write.
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` is a valid `sock_fprog` whose `filter` points at `len` initialised
    // instructions borrowed from `filter` for the whole call; seccomp(2) only reads through both
    // pointers and keeps neither after returning. The operation and flags are plain integers the
    // kernel validates.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::c_ulong::from(libc::SECCOMP_SET_MODE_FILTER),
            flags,
            &raw const prog,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// [`set_mode_filter`] with `SECCOMP_FILTER_FLAG_NEW_LISTENER`: returns the listener fd.
pub(super) fn set_mode_filter_listener(
    flags: libc::c_ulong,
    filter: &[libc::sock_filter],
) -> io::Result<OwnedFd> {
    if flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER == 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let ret = set_mode_filter(flags, filter)?;
    let Ok(fd) = i32::try_from(ret) else {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    };
    // SAFETY: with SECCOMP_FILTER_FLAG_NEW_LISTENER (checked above) a successful seccomp(2)
    // returns a new file descriptor that nothing else in the process knows about yet, so taking
    // sole ownership of it here is sound.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Test-only process helpers: fork a child that runs a closure, and raw syscalls the tests need
/// without allocating in the forked child.
#[cfg(test)]
pub(super) mod testing {
    use std::ffi::CStr;
    use std::io;

    /// Forks; the child runs `child` and `_exit`s with its return value. Returns the child's pid.
    ///
    /// The test harness is multi-threaded, so `child` must keep to what is safe after fork:
    /// raw syscalls, no allocation, no locks, no panics. Every caller in this module does.
    pub(in crate::seccomp) fn fork(child: impl FnOnce() -> i32) -> io::Result<libc::pid_t> {
        // SAFETY: the child only runs `child`, whose callers restrict it to async-signal-safe work
        // (documented above), and then leaves with `_exit`, never returning into the harness or
        // running destructors that might take locks held by other threads at fork time.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => Err(io::Error::last_os_error()),
            0 => {
                let code = child();
                // SAFETY: `_exit` is async-signal-safe and ends the forked child immediately.
                unsafe { libc::_exit(code) }
            }
            pid => Ok(pid),
        }
    }

    /// `personality(persona)` as a raw syscall, returning the previous persona.
    pub(in crate::seccomp) fn personality(persona: libc::c_ulong) -> io::Result<i64> {
        // SAFETY: personality(2) takes one integer argument and touches no user memory.
        let ret = unsafe { libc::syscall(libc::SYS_personality, persona) };
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(ret)
        }
    }

    /// `getcwd` as a raw syscall into `buf`; returns the length the kernel wrote.
    pub(in crate::seccomp) fn getcwd(buf: &mut [u8]) -> io::Result<i64> {
        // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, which is a live,
        // exclusively borrowed buffer for the whole call.
        let ret = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(ret)
        }
    }

    /// `execve(path, [path], [])`; returns only on failure.
    pub(in crate::seccomp) fn exec(path: &CStr) -> io::Error {
        let argv = [path.as_ptr(), std::ptr::null()];
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        // SAFETY: `path` is NUL-terminated and alive for the call; `argv` and `envp` are
        // NULL-terminated arrays of valid C strings living on this stack frame.
        unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        io::Error::last_os_error()
    }
}
