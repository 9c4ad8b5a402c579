//! Protection of the runtime binary against being overwritten from inside a container
//! (CVE-2019-5736).
//!
//! A process that joins a container (init, or one started by `exec`) runs the runtime's own
//! binary until it execs the user's program; a hostile container could open it through
//! `/proc/<pid>/exe` and write to it once the runtime exits. Before anything joins a container,
//! the runtime therefore re-executes itself from a binary the container cannot write:
//!
//! 1. if the binary already sits on a read-only mount, nothing is needed;
//! 2. otherwise from a detached, read-only bind mount of itself (`open_tree(OPEN_TREE_CLONE)` +
//!    `mount_setattr(MOUNT_ATTR_RDONLY)` + `execveat`): no copy, the page cache is shared, and
//!    opening `/proc/<pid>/exe` for writing fails with EROFS; the detached mount is in no mount
//!    namespace, so nothing inside a container can reach it to remount it;
//! 3. where the kernel lacks the new mount API, from a sealed memfd copy (runc's original fix).

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};

use crate::error::{Result, RuntimeError};
use crate::sys;

const SEALS: SealFlags = SealFlags::SEAL
    .union(SealFlags::SHRINK)
    .union(SealFlags::GROW)
    .union(SealFlags::WRITE);

/// Whether this process runs from a binary nobody can write: a sealed memfd or a file on a
/// read-only mount.
#[must_use]
pub fn running_protected() -> bool {
    let Ok(exe) = rustix::fs::open(
        "/proc/self/exe",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    if rustix::fs::fcntl_get_seals(&exe).is_ok_and(|s| s.contains(SEALS)) {
        return true;
    }
    rustix::fs::fstatvfs(&exe)
        .is_ok_and(|v| v.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
}

/// Re-execute this process, with the same arguments and environment, from a binary a container
/// cannot write, unless it already runs from one. Returns only on failure.
pub fn reexec_protected() -> Result<()> {
    if running_protected() {
        return Ok(());
    }
    let (argv, envp) = args_and_env();
    if let Some(tree) = read_only_mount() {
        // Only returns on failure; fall back to the copy below.
        let _ = sys::fexecve(tree.as_fd(), &argv, &envp);
    }
    let copy = sealed_copy()?;
    let err = sys::fexecve(copy.as_fd(), &argv, &envp);
    Err(RuntimeError::sys("re-execute from sealed copy", err))
}

/// A descriptor of this process's binary that a container cannot write, for starting another
/// process of it that will join containers: execute it with `execveat(fd, "", AT_EMPTY_PATH)`
/// or through `/proc/self/fd/<fd>`, and the new process runs protected from its first
/// instruction, with no re-execution of its own. This binary itself when it already runs
/// protected, else a read-only detached mount of it, else a sealed copy.
pub fn protected_exe() -> Result<OwnedFd> {
    if running_protected() {
        return rustix::fs::open(
            "/proc/self/exe",
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| RuntimeError::io("open", "/proc/self/exe", e.into()));
    }
    match read_only_mount() {
        Some(tree) => Ok(tree),
        None => sealed_copy(),
    }
}

/// A detached, read-only bind mount of this process's binary.
fn read_only_mount() -> Option<OwnedFd> {
    let tree = rustix::mount::open_tree(
        rustix::fs::CWD,
        "/proc/self/exe",
        rustix::mount::OpenTreeFlags::OPEN_TREE_CLONE
            | rustix::mount::OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .ok()?;
    sys::mount_setattr(tree.as_fd(), false, crate::mounts::attr::RDONLY, 0).ok()?;
    Some(tree)
}

fn args_and_env() -> (Vec<CString>, Vec<CString>) {
    let argv: Vec<CString> = std::env::args_os()
        .filter_map(|a| CString::new(a.as_bytes()).ok())
        .collect();
    (argv, environ())
}

/// This process's environment as `execve` takes it (`KEY=value`), for starting another
/// process of its binary.
#[must_use]
pub fn environ() -> Vec<CString> {
    std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect()
}

/// A sealed memfd copy of this process's binary (runc's original fix).
fn sealed_copy() -> Result<OwnedFd> {
    let exe = rustix::fs::open(
        "/proc/self/exe",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RuntimeError::io("open", "/proc/self/exe", e.into()))?;
    let memfd = rustix::fs::memfd_create(
        "berth-runtime",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .map_err(|e| RuntimeError::sys("memfd_create", e.into()))?;
    let size = rustix::fs::fstat(&exe)
        .map_err(|e| RuntimeError::io("stat", "/proc/self/exe", e.into()))?
        .st_size as usize;
    let mut left = size;
    while left > 0 {
        match rustix::fs::sendfile(&memfd, &exe, None, left) {
            Ok(0) => break,
            Ok(n) => left -= n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(RuntimeError::sys("copy runtime binary", e.into())),
        }
    }
    rustix::fs::fcntl_add_seals(&memfd, SEALS)
        .map_err(|e| RuntimeError::sys("seal runtime binary copy", e.into()))?;
    Ok(memfd)
}
