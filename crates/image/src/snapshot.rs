//! Overlay snapshots: one writable layer per container on top of the image's unpacked layers.
//!
//! `prepare` makes `containers/<id>/upper` and `work` and returns the overlay [`Mount`] spec
//! (lowerdirs top first). [`mount_overlay`] mounts it with the new mount API, one
//! `fsconfig(lowerdir+)` call per layer, so the one-page limit of classic mount data does not
//! cap the number of layers; kernels without `lowerdir+` (before 6.8) fall back to `mount(2)`
//! when the option string fits in a page.

use rustix::io::Errno;
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, UnmountFlags};
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Errors of snapshots and overlay mounts.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The container id cannot name a directory.
    #[error("invalid container id {id:?}")]
    InvalidId {
        /// The id given.
        id: String,
    },
    /// An overlay needs at least one lower directory.
    #[error("overlay needs at least one lower layer")]
    NoLayers,
    /// A snapshot directory could not be made or removed.
    #[error("{op} {path}")]
    Dir {
        /// What was being done.
        op: &'static str,
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A mount step failed.
    #[error("overlay mount on {target}: {step}")]
    Mount {
        /// The mount point.
        target: PathBuf,
        /// The step (`fsconfig lowerdir+ <path>`, `fsmount`...).
        step: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The classic mount data would exceed a page and the kernel lacks `lowerdir+`.
    #[error("overlay mount on {target}: {layers} layers do not fit in one page of mount options")]
    TooManyLayers {
        /// The mount point.
        target: PathBuf,
        /// The layer count.
        layers: usize,
    },
}

/// An overlay mount: what `mount -t overlay` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Read-only layers, topmost first (`layers/<chain-id>/diff`).
    pub lowerdirs: Vec<PathBuf>,
    /// The container's writable layer.
    pub upperdir: PathBuf,
    /// Overlay's scratch directory (same filesystem as `upperdir`).
    pub workdir: PathBuf,
}

impl Mount {
    /// The mount type, `overlay`.
    pub const FSTYPE: &'static str = "overlay";

    /// The classic comma-separated option string (`lowerdir=a:b,upperdir=..,workdir=..`), as
    /// an OCI `mounts[]` entry or `mount -o` takes it. Only usable while it fits in a page; see
    /// [`mount_overlay`] for any number of layers.
    #[must_use]
    pub fn options(&self) -> String {
        let lowers: Vec<String> = self
            .lowerdirs
            .iter()
            .map(|p| escape(&p.to_string_lossy()))
            .collect();
        format!(
            "lowerdir={},upperdir={},workdir={}",
            lowers.join(":"),
            escape(&self.upperdir.to_string_lossy()),
            escape(&self.workdir.to_string_lossy())
        )
    }
}

/// Overlay splits options on `,` and lowerdirs on `:`; both are escaped with `\`.
fn escape(p: &str) -> String {
    p.replace('\\', "\\\\")
        .replace(':', "\\:")
        .replace(',', "\\,")
}

/// A container id usable as a directory name: 1–128 of `[A-Za-z0-9_.-]`, not starting with `.`
/// or `-`.
#[must_use]
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with(['.', '-'])
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The per-container snapshot directories: `<root>/<id>/{upper,work}` (`<berth root>/containers`).
#[derive(Debug, Clone)]
pub struct Snapshots {
    root: PathBuf,
}

impl Snapshots {
    /// Opens (creating if needed) the containers directory.
    ///
    /// # Errors
    /// It cannot be created.
    pub fn open(root: impl Into<PathBuf>) -> Result<Snapshots, SnapshotError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|source| SnapshotError::Dir {
            op: "create",
            path: root.clone(),
            source,
        })?;
        Ok(Snapshots { root })
    }

    /// `<root>/<id>`.
    ///
    /// # Errors
    /// An id that cannot name a directory.
    pub fn dir(&self, id: &str) -> Result<PathBuf, SnapshotError> {
        if !valid_id(id) {
            return Err(SnapshotError::InvalidId { id: id.to_owned() });
        }
        Ok(self.root.join(id))
    }

    /// Creates (or reuses) the container's upper and work directories and returns the mount
    /// spec over `lowerdirs` (topmost first).
    ///
    /// # Errors
    /// No lower layers, a bad id, or the directories cannot be made.
    pub fn prepare(&self, id: &str, lowerdirs: Vec<PathBuf>) -> Result<Mount, SnapshotError> {
        if lowerdirs.is_empty() {
            return Err(SnapshotError::NoLayers);
        }
        let dir = self.dir(id)?;
        let (upperdir, workdir) = (dir.join("upper"), dir.join("work"));
        for d in [&upperdir, &workdir] {
            fs::create_dir_all(d).map_err(|source| SnapshotError::Dir {
                op: "create",
                path: d.clone(),
                source,
            })?;
        }
        Ok(Mount {
            lowerdirs,
            upperdir,
            workdir,
        })
    }

    /// Removes the container's snapshot directory (unmount it first).
    ///
    /// # Errors
    /// A bad id, or the directory exists and cannot be removed.
    pub fn remove(&self, id: &str) -> Result<(), SnapshotError> {
        let dir = self.dir(id)?;
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(SnapshotError::Dir {
                op: "remove",
                path: dir,
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

fn mount_err(target: &Path, step: String, e: Errno) -> SnapshotError {
    SnapshotError::Mount {
        target: target.to_path_buf(),
        step,
        source: io::Error::from(e),
    }
}

/// Whether the upper layer's writes must reach the disk when the overlay is synced or
/// unmounted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Normal: `sync`, `fsync` and the unmount sync the upper filesystem.
    Synced,
    /// Overlay's `volatile` option (Linux 5.10): no sync ever reaches the upper filesystem,
    /// so the unmount does not wait for its journal. For containers removed when they exit
    /// (`--rm`), whose writes nobody reads after a crash; kernels without the option mount
    /// [`Durability::Synced`].
    Volatile,
}

/// Mounts `m` on `target` (an existing directory).
///
/// # Errors
/// The kernel refuses a step; [`SnapshotError::TooManyLayers`] on an old kernel with a layer
/// list longer than a page.
pub fn mount_overlay(m: &Mount, target: &Path) -> Result<(), SnapshotError> {
    mount_overlay_with(m, target, Durability::Synced)
}

/// [`mount_overlay`] with the upper layer's [`Durability`].
///
/// # Errors
/// As [`mount_overlay`].
pub fn mount_overlay_with(
    m: &Mount,
    target: &Path,
    durability: Durability,
) -> Result<(), SnapshotError> {
    let volatile = durability == Durability::Volatile;
    // A volatile mount leaves `work/incompat/volatile` behind, and the kernel refuses to mount
    // the same upper again (volatile or not) until it is gone: it cannot tell an unmount from
    // a crash. Only an `--rm` container mounts volatile, and one that a crash interrupted is
    // removed, not mounted again; a restarted one was unmounted cleanly.
    let _ = fs::remove_dir_all(m.workdir.join("work/incompat"));
    let mnt = match overlay_fd(m, target, volatile)? {
        Some(fd) => fd,
        // No `lowerdir+` (kernel < 6.8): classic mount data, if it fits.
        None => return mount_classic(m, target, volatile),
    };
    rustix::mount::move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| mount_err(target, "move_mount".to_owned(), e))?;
    tracing::info!(target = %target.display(), layers = m.lowerdirs.len(), "overlay mounted");
    Ok(())
}

/// Makes `m` as a detached mount: a descriptor of the merged tree's root that is attached
/// nowhere, so nothing can see it and nothing is left to unmount: the mount goes away with
/// the last descriptor (`cp` from a stopped container, `export`, volume copy-up). Needs the
/// new mount API with `lowerdir+` (Linux 6.8).
///
/// # Errors
/// The kernel refuses a step.
pub fn open_overlay(m: &Mount) -> Result<OwnedFd, SnapshotError> {
    let what = Path::new("(detached)");
    overlay_fd(m, what, false)?.ok_or_else(|| SnapshotError::Mount {
        target: what.to_path_buf(),
        step: "fsconfig lowerdir+".to_owned(),
        source: io::Error::from(Errno::INVAL),
    })
}

/// fsopen, one `lowerdir+` per layer, fsmount; `None` when the kernel has no `lowerdir+`.
fn overlay_fd(m: &Mount, target: &Path, volatile: bool) -> Result<Option<OwnedFd>, SnapshotError> {
    if m.lowerdirs.is_empty() {
        return Err(SnapshotError::NoLayers);
    }
    let fs_fd = rustix::mount::fsopen(Mount::FSTYPE, FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| mount_err(target, "fsopen overlay".to_owned(), e))?;
    for (i, lower) in m.lowerdirs.iter().enumerate() {
        match rustix::mount::fsconfig_set_string(&fs_fd, "lowerdir+", lower.as_path()) {
            Ok(()) => {}
            Err(Errno::INVAL) if i == 0 => return Ok(None),
            Err(e) => {
                return Err(mount_err(
                    target,
                    format!("fsconfig lowerdir+ {}", lower.display()),
                    e,
                ));
            }
        }
    }
    for (key, path) in [("upperdir", &m.upperdir), ("workdir", &m.workdir)] {
        rustix::mount::fsconfig_set_string(&fs_fd, key, path.as_path())
            .map_err(|e| mount_err(target, format!("fsconfig {key} {}", path.display()), e))?;
    }
    if volatile {
        // Unknown before 5.10: the mount is then an ordinary synced one.
        let _ = rustix::mount::fsconfig_set_flag(&fs_fd, "volatile");
    }
    rustix::mount::fsconfig_create(&fs_fd)
        .map_err(|e| mount_err(target, "fsconfig create".to_owned(), e))?;
    rustix::mount::fsmount(
        &fs_fd,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::empty(),
    )
    .map(Some)
    .map_err(|e| mount_err(target, "fsmount".to_owned(), e))
}

fn mount_classic(m: &Mount, target: &Path, volatile: bool) -> Result<(), SnapshotError> {
    if volatile {
        match mount_data(m, target, &format!("{},volatile", m.options())) {
            // Before 5.10 the option is unknown (or it made the data too long): without it.
            Err(SnapshotError::Mount { source, .. })
                if source.raw_os_error() == Some(Errno::INVAL.raw_os_error()) => {}
            Err(SnapshotError::TooManyLayers { .. }) => {}
            done => return done,
        }
    }
    mount_data(m, target, &m.options())
}

fn mount_data(m: &Mount, target: &Path, data: &str) -> Result<(), SnapshotError> {
    if data.len() >= 4096 {
        return Err(SnapshotError::TooManyLayers {
            target: target.to_path_buf(),
            layers: m.lowerdirs.len(),
        });
    }
    rustix::mount::mount(
        "overlay",
        target,
        Mount::FSTYPE,
        rustix::mount::MountFlags::empty(),
        Some(
            std::ffi::CString::new(data)
                .map_err(|_| SnapshotError::TooManyLayers {
                    target: target.to_path_buf(),
                    layers: m.lowerdirs.len(),
                })?
                .as_c_str(),
        ),
    )
    .map_err(|e| mount_err(target, "mount".to_owned(), e))
}

/// Unmounts `target`; with `detach`, lazily (`MNT_DETACH`) even while busy.
///
/// # Errors
/// Not a mount point, or busy without `detach`.
pub fn unmount(target: &Path, detach: bool) -> Result<(), SnapshotError> {
    let flags = if detach {
        UnmountFlags::DETACH
    } else {
        UnmountFlags::empty()
    };
    rustix::mount::unmount(target, flags).map_err(|e| mount_err(target, "umount".to_owned(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_escape_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "-rf",
            ".hidden",
            &"x".repeat(129),
            "a b",
        ] {
            assert!(!valid_id(bad), "{bad:?}");
        }
        for good in ["web", "3f2a9c", "my_app.1-2"] {
            assert!(valid_id(good));
        }
    }

    #[test]
    fn classic_options_escape_separators() {
        let m = Mount {
            lowerdirs: vec!["/l/a:b".into(), "/l/c".into()],
            upperdir: "/u,x".into(),
            workdir: "/w".into(),
        };
        assert_eq!(
            m.options(),
            "lowerdir=/l/a\\:b:/l/c,upperdir=/u\\,x,workdir=/w"
        );
    }
}
