//! Resolving paths inside a container's root without ever leaving it.
//!
//! Every lookup goes through `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` from a descriptor
//! of the root, so `..` and absolute symlinks planted in the rootfs resolve inside it. Mounts then
//! target the opened descriptor (`/proc/self/fd/N`) rather than a path string, so a symlink swapped
//! in after the check (CVE-2021-30465) cannot redirect the mount.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Strip the leading `/` and any `.`/`..` that try to climb above the root, so that the path is
/// relative to the container root.
#[must_use]
pub fn relative(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Open `path` (as the container sees it) inside `root`.
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let rel = relative(path);
    let rel = if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    };
    loop {
        match rustix::fs::openat2(root, &rel, flags | OFlags::CLOEXEC, Mode::empty(), RESOLVE) {
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => continue,
            r => return r.map_err(io::Error::from),
        }
    }
}

/// Make sure a directory exists at `path` inside `root` (creating missing components with `mode`)
/// and return an `O_PATH` descriptor of it.
pub fn mkdir_all_in_root(root: BorrowedFd<'_>, path: &Path, mode: u32) -> io::Result<OwnedFd> {
    // Usually it exists already (a mount point the image has): one lookup. Else the parent is
    // made the same way and the last component created in it.
    match open_in_root(root, path, OFlags::PATH | OFlags::DIRECTORY) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        r => return r,
    }
    let rel = relative(path);
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        return open_in_root(root, path, OFlags::PATH | OFlags::DIRECTORY);
    };
    let parent = mkdir_all_in_root(root, parent, mode)?;
    match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(mode)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    open_in_root(root, &rel, OFlags::PATH | OFlags::DIRECTORY)
}

/// Make sure a regular file (or, if something else is already there, that thing) exists at `path`
/// inside `root`, creating parent directories; returns an `O_PATH` descriptor of it.
pub fn create_file_in_root(root: BorrowedFd<'_>, path: &Path) -> io::Result<OwnedFd> {
    if let Ok(fd) = open_in_root(root, path, OFlags::PATH) {
        return Ok(fd);
    }
    let rel = relative(path);
    if let Some(parent) = rel.parent() {
        mkdir_all_in_root(root, parent, 0o755)?;
    }
    let rel_ref: &Path = &rel;
    let fd = rustix::fs::openat2(
        root,
        rel_ref,
        OFlags::CREATE | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o755),
        RESOLVE,
    )?;
    drop(fd);
    open_in_root(root, path, OFlags::PATH)
}

/// The `/proc/self/fd/N` path through which a syscall that only takes paths reaches exactly the
/// object `fd` refers to.
#[must_use]
pub fn proc_fd_path(fd: impl AsFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_never_climbs() {
        assert_eq!(relative(Path::new("/a/../../b")), PathBuf::from("b"));
        assert_eq!(relative(Path::new("../../etc")), PathBuf::from("etc"));
        assert_eq!(relative(Path::new("/")), PathBuf::new());
    }

    #[test]
    fn symlinks_stay_inside_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/", root.join("escape")).unwrap();
        std::os::unix::fs::symlink("../../../../", root.join("etc/up")).unwrap();
        let rootfd =
            rustix::fs::open(&root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        // Creating through a symlink to "/" lands inside the root, not on the host.
        mkdir_all_in_root(rootfd.as_fd(), Path::new("/escape/berth-made"), 0o755).unwrap();
        assert!(root.join("berth-made").is_dir());
        mkdir_all_in_root(rootfd.as_fd(), Path::new("/etc/up/tmp/x"), 0o755).unwrap();
        assert!(root.join("tmp/x").is_dir());
        create_file_in_root(rootfd.as_fd(), Path::new("/escape/file")).unwrap();
        assert!(root.join("file").is_file());
    }
}
