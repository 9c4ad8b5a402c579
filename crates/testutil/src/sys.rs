//! The libc calls testutil makes, behind safe wrappers. The only module with `unsafe`.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstr(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The effective user id of this process.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// mount(2) of a filesystem or a bind (`fstype` None) without data.
pub(crate) fn mount(
    source: &Path,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let source = cstr(source)?;
    let target = cstr(target)?;
    let fstype = fstype.map(|t| cstr(Path::new(t))).transpose()?;
    let data = data.map(|d| cstr(Path::new(d))).transpose()?;
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either null (allowed for fstype and data) or a NUL-terminated
    // string owned by a local that outlives the call; mount does not keep them.
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data).cast(),
        )
    })
}

/// umount2(2) with MNT_DETACH: the mount leaves the tree now and is freed when no longer busy.
pub(crate) fn umount_detach(target: &Path) -> io::Result<()> {
    let target = cstr(target)?;
    // SAFETY: `target` is a NUL-terminated string that outlives the call.
    check(unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) })
}

/// Takes an exclusive flock(2) on `file`, waiting for it; released when the file is closed.
pub(crate) fn lock_exclusive(file: &File) -> io::Result<()> {
    // SAFETY: the descriptor is owned by `file`, which is alive for the call.
    check(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) })
}

/// Sends SIGKILL to `pid`.
pub(crate) fn kill9(pid: i32) -> io::Result<()> {
    // SAFETY: kill takes integers only; the callers pass pids they decided to end.
    check(unsafe { libc::kill(pid, libc::SIGKILL) })
}

/// Whether any process (zombies included) is left in process group `pgid`.
pub(crate) fn group_exists(pgid: i32) -> bool {
    // SAFETY: kill takes integers only; signal 0 checks existence and sends nothing.
    let r = unsafe { libc::kill(-pgid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// setns(2) of the calling thread into the network namespace `ns` refers to.
pub(crate) fn setns_net(ns: &File) -> io::Result<()> {
    // SAFETY: the descriptor is owned by `ns`, alive for the call; setns changes only the calling
    // thread's network namespace, which is what the caller asked for.
    check(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) })
}
