//! Extracting tar entries into a layer directory without ever resolving a path through a
//! symlink: every object is created relative to a directory fd that was itself opened one
//! component at a time with `O_NOFOLLOW | O_DIRECTORY`, so neither `..`, an absolute path nor a
//! symlink planted by an earlier entry can lead a write outside the layer.

use super::UnpackError;
use super::path::{Action, LayerPath, classify, contain, link_target};
use crate::chunks::fill;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags, makedev};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// A regular file entry: created, never opened through an existing name or symlink.
const NEW_FILE: OFlags = OFlags::WRONLY
    .union(OFlags::CREATE)
    .union(OFlags::EXCL)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// The xattr overlay reads to make a directory opaque.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Extracts into one layer root; remembers directory mtimes to set last (creating children
/// changes a directory's mtime).
pub(crate) struct Extractor<'a> {
    root: BorrowedFd<'a>,
    dir_times: Vec<(LayerPath, Timestamps)>,
    last_dir: LastDir,
    /// File contents pass through here: one `write(2)` per chunk, not per 8 KiB.
    buf: Vec<u8>,
}

/// The directory the previous entry was made in (or, after a directory entry, that directory),
/// still open. Tar writers emit a directory's entries together, so most entries find their
/// parent here instead of walking from the root one `openat` per component.
///
/// Reusing the fd is safe because an entry only ever creates or removes children of its own
/// parent: the previous entry cannot have replaced the directory it worked in, so the cached
/// fd is still the directory at that path. Every entry sets the cache anew.
#[derive(Default)]
struct LastDir {
    path: Vec<Vec<u8>>,
    fd: Option<OwnedFd>,
}

impl LastDir {
    /// The cached fd when it is the directory at `comps`.
    fn take(&mut self, comps: &[Vec<u8>]) -> Option<OwnedFd> {
        let fd = self.fd.take()?;
        (self.path == comps).then_some(fd)
    }

    fn put(&mut self, comps: &[Vec<u8>], fd: OwnedFd) {
        if self.path != comps {
            self.path.clear();
            self.path.extend_from_slice(comps);
        }
        self.fd = Some(fd);
    }
}

/// Size of [`Extractor`]'s copy buffer.
const COPY_BUF: usize = 256 << 10;

fn io_err(e: Errno) -> io::Error {
    io::Error::from(e)
}

fn times(mtime: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

impl<'a> Extractor<'a> {
    pub(crate) fn new(root: BorrowedFd<'a>) -> Self {
        Extractor {
            root,
            dir_times: Vec::new(),
            last_dir: LastDir::default(),
            buf: Vec::new(),
        }
    }

    /// [`open_dir`](Self::open_dir) with creation, through the [`LastDir`] cache; hand the
    /// fd back with `self.last_dir.put`.
    fn parent_dir(&mut self, comps: &[Vec<u8>], entry: &str) -> Result<OwnedFd, UnpackError> {
        match self.last_dir.take(comps) {
            Some(fd) => Ok(fd),
            None => self.open_dir(comps, true, entry),
        }
    }

    /// Opens the directory at `comps` below the root, one component at a time without
    /// following symlinks; missing directories are created (0755, root-owned) when `create`.
    fn open_dir(
        &self,
        comps: &[Vec<u8>],
        create: bool,
        entry: &str,
    ) -> Result<OwnedFd, UnpackError> {
        let mut cur = rustix::fs::openat(self.root, ".", DIR_FLAGS, Mode::empty())
            .map_err(|e| UnpackError::entry(entry, "open layer root", e))?;
        for c in comps {
            let name = OsStr::from_bytes(c);
            let next = match rustix::fs::openat(&cur, name, DIR_FLAGS, Mode::empty()) {
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(&cur, name, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(UnpackError::entry(entry, "create parent", e)),
                    }
                    rustix::fs::openat(&cur, name, DIR_FLAGS, Mode::empty())
                }
                other => other,
            };
            cur = match next {
                Ok(fd) => fd,
                // ELOOP: a symlink; ENOTDIR: a file. Either way, not a directory we may enter.
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    return Err(UnpackError::NotADirectory {
                        path: entry.to_owned(),
                        component: String::from_utf8_lossy(c).into_owned(),
                    });
                }
                Err(e) => return Err(UnpackError::entry(entry, "open parent", e)),
            };
        }
        Ok(cur)
    }

    /// Extracts one entry.
    pub(crate) fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        match classify(contain(&raw)) {
            Action::Skip => Ok(()),
            Action::Invalid => Err(UnpackError::BadWhiteout { path: shown }),
            Action::Opaque(dir) => {
                let fd = self.parent_dir(dir.components(), &shown)?;
                rustix::fs::fsetxattr(&fd, OPAQUE_XATTR, b"y", XattrFlags::empty())
                    .map_err(|e| UnpackError::entry(&shown, "set opaque xattr", e))?;
                self.last_dir.put(dir.components(), fd);
                Ok(())
            }
            Action::Whiteout(target) => {
                let Some((parent, name)) = target.split_last() else {
                    return Err(UnpackError::BadWhiteout { path: shown });
                };
                let dir = self.parent_dir(parent, &shown)?;
                remove_existing(&dir, name, false, &shown)?;
                rustix::fs::mknodat(
                    &dir,
                    name,
                    FileType::CharacterDevice,
                    Mode::empty(),
                    makedev(0, 0),
                )
                .map_err(|e| UnpackError::entry(&shown, "create whiteout", e))?;
                rustix::fs::chownat(
                    &dir,
                    name,
                    Some(rustix::fs::Uid::ROOT),
                    Some(rustix::fs::Gid::ROOT),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| UnpackError::entry(&shown, "chown whiteout", e))?;
                self.last_dir.put(parent, dir);
                Ok(())
            }
            Action::Create(path) => self.create(entry, kind, &path, &shown),
        }
    }

    fn create<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        kind: tar::EntryType,
        path: &LayerPath,
        shown: &str,
    ) -> Result<(), UnpackError> {
        let xattrs = xattrs(entry, shown)?;
        let header = entry.header().clone();
        let mode = header.mode().map_err(|source| UnpackError::Header {
            path: shown.to_owned(),
            source,
        })? & 0o7777;
        let uid = header.uid().map_err(|source| UnpackError::Header {
            path: shown.to_owned(),
            source,
        })?;
        let gid = header.gid().map_err(|source| UnpackError::Header {
            path: shown.to_owned(),
            source,
        })?;
        let mtime = header.mtime().map_err(|source| UnpackError::Header {
            path: shown.to_owned(),
            source,
        })?;
        let owner = (
            rustix::fs::Uid::from_raw(u32::try_from(uid).unwrap_or(u32::MAX)),
            rustix::fs::Gid::from_raw(u32::try_from(gid).unwrap_or(u32::MAX)),
        );

        let Some((parent, name)) = path.split_last() else {
            // The root entry (`./`): only a directory may describe it.
            if kind.is_dir() {
                let fd = self.open_dir(&[], false, shown)?;
                set_fd_meta(&fd, owner, mode, &xattrs, shown)?;
                self.dir_times.push((path.clone(), times(mtime)));
            }
            return Ok(());
        };
        let dir = self.parent_dir(parent, shown)?;
        // A directory entry's children most likely come next.
        let mut made_dir = None;
        match kind {
            tar::EntryType::Directory => {
                // Create first and look only when the name is taken: the common case costs
                // one call.
                let made = match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) => true,
                    Err(Errno::EXIST) => false,
                    Err(e) => return Err(UnpackError::entry(shown, "mkdir", e)),
                };
                if !made && !remove_existing(&dir, name, true, shown)? {
                    rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o700))
                        .map_err(|e| UnpackError::entry(shown, "mkdir", e))?;
                }
                let fd = rustix::fs::openat(&dir, name, DIR_FLAGS, Mode::empty())
                    .map_err(|e| UnpackError::entry(shown, "open directory", e))?;
                set_fd_meta(&fd, owner, mode, &xattrs, shown)?;
                self.dir_times.push((path.clone(), times(mtime)));
                made_dir = Some(fd);
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let fd = replacing(&dir, name, shown, || {
                    rustix::fs::openat(&dir, name, NEW_FILE, Mode::from_raw_mode(0o600))
                })?
                .map_err(|e| UnpackError::entry(shown, "create file", e))?;
                let mut file = File::from(fd);
                self.copy_contents(entry, &mut file, shown)?;
                set_fd_meta(file.as_fd(), owner, mode, &xattrs, shown)?;
                rustix::fs::futimens(&file, &times(mtime))
                    .map_err(|e| UnpackError::entry(shown, "set times", e))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| UnpackError::MissingLinkName {
                        path: shown.to_owned(),
                    })?
                    .into_owned();
                // The target is stored verbatim: it is data, resolved only inside the container.
                replacing(&dir, name, shown, || {
                    rustix::fs::symlinkat(OsStr::from_bytes(&target), &dir, name)
                })?
                .map_err(|e| UnpackError::entry(shown, "symlink", e))?;
                self.finish_at(&dir, name, owner, None, &xattrs, mtime, shown)?;
            }
            tar::EntryType::Link => {
                let raw_target = entry
                    .link_name_bytes()
                    .ok_or_else(|| UnpackError::MissingLinkName {
                        path: shown.to_owned(),
                    })?
                    .into_owned();
                let target_shown = String::from_utf8_lossy(&raw_target).into_owned();
                let target = link_target(&raw_target).ok_or_else(|| UnpackError::LinkEscapes {
                    path: shown.to_owned(),
                    target: target_shown.clone(),
                })?;
                let Some((tparent, tname)) = target.split_last() else {
                    return Err(UnpackError::LinkEscapes {
                        path: shown.to_owned(),
                        target: target_shown,
                    });
                };
                if target == *path {
                    return Ok(());
                }
                let tdir = self.open_dir(tparent, false, shown).map_err(|e| match e {
                    UnpackError::Entry { source, .. } => UnpackError::LinkTarget {
                        path: shown.to_owned(),
                        target: target_shown.clone(),
                        source,
                    },
                    other => other,
                })?;
                // linkat without AT_SYMLINK_FOLLOW links the target itself, never what a symlink
                // there points to; the target's directory was reached without following any.
                replacing(&dir, name, shown, || {
                    rustix::fs::linkat(&tdir, tname, &dir, name, AtFlags::empty())
                })?
                .map_err(|e| UnpackError::LinkTarget {
                    path: shown.to_owned(),
                    target: target_shown,
                    source: io_err(e),
                })?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let major = header
                    .device_major()
                    .map_err(|source| UnpackError::Header {
                        path: shown.to_owned(),
                        source,
                    })?
                    .unwrap_or(0);
                let minor = header
                    .device_minor()
                    .map_err(|source| UnpackError::Header {
                        path: shown.to_owned(),
                        source,
                    })?
                    .unwrap_or(0);
                replacing(&dir, name, shown, || {
                    rustix::fs::mknodat(&dir, name, ft, Mode::empty(), makedev(major, minor))
                })?
                .map_err(|e| UnpackError::entry(shown, "mknod", e))?;
                self.finish_at(&dir, name, owner, Some(mode), &xattrs, mtime, shown)?;
            }
            // Metadata entries the tar reader has already applied, or that mean nothing here.
            tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => {}
            other => {
                return Err(UnpackError::UnsupportedEntry {
                    path: shown.to_owned(),
                    kind: format!("{other:?}"),
                });
            }
        }
        match made_dir {
            Some(fd) => self.last_dir.put(path.components(), fd),
            None => self.last_dir.put(parent, dir),
        }
        Ok(())
    }

    /// Copies a regular file's contents from the archive into `file`.
    fn copy_contents<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        file: &mut File,
        shown: &str,
    ) -> Result<(), UnpackError> {
        if self.buf.is_empty() {
            self.buf = vec![0; COPY_BUF];
        }
        loop {
            let n = fill(entry, &mut self.buf).map_err(|source| UnpackError::Read { source })?;
            if n == 0 {
                return Ok(());
            }
            file.write_all(&self.buf[..n])
                .map_err(|source| UnpackError::Entry {
                    path: shown.to_owned(),
                    op: "write file",
                    source,
                })?;
        }
    }

    /// Ownership, mode, xattrs and times of a just-created non-regular entry (symlink or node),
    /// by name in `dir` without following it.
    #[allow(clippy::too_many_arguments)]
    fn finish_at(
        &self,
        dir: &OwnedFd,
        name: &OsStr,
        owner: (rustix::fs::Uid, rustix::fs::Gid),
        mode: Option<u32>,
        xattrs: &[(String, Vec<u8>)],
        mtime: u64,
        shown: &str,
    ) -> Result<(), UnpackError> {
        rustix::fs::chownat(
            dir,
            name,
            Some(owner.0),
            Some(owner.1),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| UnpackError::entry(shown, "chown", e))?;
        if let Some(mode) = mode {
            // mknodat's mode was cut by the umask. The name is a node we just made in a
            // staging directory no one else writes to, so following it is not a concern.
            rustix::fs::chmodat(dir, name, Mode::from_raw_mode(mode), AtFlags::empty())
                .map_err(|e| UnpackError::entry(shown, "chmod", e))?;
        }
        if !xattrs.is_empty() {
            // No fd can carry xattrs for a symlink or device: name it via the directory fd's
            // /proc link, which resolves to exactly that directory, and use the l* variant.
            let via = format!("/proc/self/fd/{}/", dir.as_raw_fd());
            let mut p = via.into_bytes();
            p.extend_from_slice(name.as_bytes());
            for (key, value) in xattrs {
                rustix::fs::lsetxattr(
                    OsStr::from_bytes(&p),
                    key.as_str(),
                    value,
                    XattrFlags::empty(),
                )
                .map_err(|e| UnpackError::entry(shown, "set xattr", e))?;
            }
        }
        rustix::fs::utimensat(dir, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| UnpackError::entry(shown, "set times", e))
    }

    /// Sets directory times, deepest first, once all entries are in place.
    pub(crate) fn finish(self) -> Result<(), UnpackError> {
        let mut dirs = self.dir_times;
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().len()));
        for (path, t) in &dirs {
            let shown = path.display();
            let fd = match Extractor::new(self.root).open_dir(path.components(), false, &shown) {
                Ok(fd) => fd,
                // A later entry replaced the directory: nothing to date.
                Err(UnpackError::NotADirectory { .. }) => continue,
                Err(e) => return Err(e),
            };
            rustix::fs::futimens(&fd, t).map_err(|e| UnpackError::entry(&shown, "set times", e))?;
        }
        Ok(())
    }
}

fn set_fd_meta(
    fd: impl AsFd,
    owner: (rustix::fs::Uid, rustix::fs::Gid),
    mode: u32,
    xattrs: &[(String, Vec<u8>)],
    shown: &str,
) -> Result<(), UnpackError> {
    rustix::fs::fchown(&fd, Some(owner.0), Some(owner.1))
        .map_err(|e| UnpackError::entry(shown, "chown", e))?;
    // After chown: chown clears set-id bits.
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
        .map_err(|e| UnpackError::entry(shown, "chmod", e))?;
    for (key, value) in xattrs {
        rustix::fs::fsetxattr(&fd, key.as_str(), value, XattrFlags::empty())
            .map_err(|e| UnpackError::entry(shown, "set xattr", e))?;
    }
    Ok(())
}

/// The entry's extended attributes (PAX `SCHILY.xattr.*`), minus `trusted.overlay.*`: overlay
/// metadata (redirects, metacopy, opacity) is berth's to write, never a layer's.
fn xattrs<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    shown: &str,
) -> Result<Vec<(String, Vec<u8>)>, UnpackError> {
    let mut out = Vec::new();
    let Some(exts) = entry
        .pax_extensions()
        .map_err(|source| UnpackError::Header {
            path: shown.to_owned(),
            source,
        })?
    else {
        return Ok(out);
    };
    for ext in exts {
        let ext = ext.map_err(|source| UnpackError::Header {
            path: shown.to_owned(),
            source,
        })?;
        let Ok(key) = ext.key() else { continue };
        if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
            if name.starts_with("trusted.overlay.") {
                tracing::debug!(
                    path = shown,
                    xattr = name,
                    "dropping overlay xattr from layer"
                );
                continue;
            }
            out.push((name.to_owned(), ext.value_bytes().to_vec()));
        }
    }
    Ok(out)
}

/// Runs `make` (which creates `name` in `dir`, failing with `EEXIST` when the name is taken);
/// when the name is taken, makes room with [`remove_existing`] and runs it once more. Trying
/// first spares a `stat` per entry: in a fresh layer nothing is ever in the way.
fn replacing<T>(
    dir: &OwnedFd,
    name: &OsStr,
    shown: &str,
    mut make: impl FnMut() -> Result<T, Errno>,
) -> Result<Result<T, Errno>, UnpackError> {
    match make() {
        Err(Errno::EXIST) => {
            remove_existing(dir, name, false, shown)?;
            Ok(make())
        }
        other => Ok(other),
    }
}

/// Makes room for a new entry `name` in `dir`: a directory is kept when `keep_dir` (and `true`
/// returned), anything else is removed (directories recursively, without following symlinks).
fn remove_existing(
    dir: &OwnedFd,
    name: &OsStr,
    keep_dir: bool,
    shown: &str,
) -> Result<bool, UnpackError> {
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(false),
        Err(e) => return Err(UnpackError::entry(shown, "stat", e)),
    };
    let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
    if is_dir && keep_dir {
        return Ok(true);
    }
    if is_dir {
        remove_all_at(dir, name).map_err(|e| UnpackError::entry(shown, "remove directory", e))?;
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty())
            .map_err(|e| UnpackError::entry(shown, "unlink", e))?;
    }
    Ok(false)
}

/// `rm -r` of `name` in `dir` through fds only.
fn remove_all_at(dir: &OwnedFd, name: &OsStr) -> Result<(), Errno> {
    let fd = rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty())?;
    let entries = rustix::fs::Dir::read_from(&fd)?;
    for ent in entries {
        let ent = ent?;
        let child = ent.file_name().to_bytes();
        if child == b"." || child == b".." {
            continue;
        }
        let child = OsStr::from_bytes(child);
        if ent.file_type() == FileType::Directory {
            remove_all_at(&fd, child)?;
        } else {
            rustix::fs::unlinkat(&fd, child, AtFlags::empty())?;
        }
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}
