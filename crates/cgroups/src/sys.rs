//! The crate's only unsafe code: `kill(2)` for signals rustix does not name.

use std::io;

/// Sends `signal` (any number, real-time ones included) to `pid`.
pub(crate) fn kill(pid: i32, signal: i32) -> io::Result<()> {
    // SAFETY: kill(2) takes two integers and touches no memory of ours; a bad pid or signal is
    // reported through errno, never undefined behaviour.
    let r = unsafe { libc::kill(pid, signal) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
