//! Tar streams out of and into trees reached through a directory descriptor (a container's
//! root, a detached overlay mount, a host directory): `cp`, `export` and volume copy-up.
//!
//! Every path is resolved with `openat2(RESOLVE_IN_ROOT)` from the tree's descriptor
//! (`runtime::paths`), so `..` and symlinks planted in a container (`ln -s / /escape`) resolve
//! inside it, never on the host. Objects are opened `O_PATH|O_NOFOLLOW` and acted on through
//! their descriptor; new files are created `O_CREAT|O_EXCL|O_NOFOLLOW`; ownership, modes and
//! times are set on descriptors, or with `AT_SYMLINK_NOFOLLOW` on a symlink itself. Devices and
//! fifos are never opened.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use runtime::paths::{mkdir_all_in_root, open_in_root, proc_fd_path};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, Timespec, Timestamps};

use crate::error::ErrorKind;

/// A failure reading or writing a tree or a tar stream.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A file-system call failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path, as the tree sees it.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A tar entry would replace a directory with something else.
    #[error("cannot overwrite directory {path} with non-directory")]
    OverwriteDir {
        /// The path.
        path: PathBuf,
    },
    /// A directory entry would replace a file.
    #[error("cannot overwrite non-directory {path} with directory")]
    OverwriteNonDir {
        /// The path.
        path: PathBuf,
    },
    /// `cp` of a directory onto a file.
    #[error("cannot copy directory {path} onto a file")]
    DirOntoFile {
        /// The source.
        path: PathBuf,
    },
    /// A path that ends in `/` names something that is not a directory.
    #[error("{path}: not a directory")]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// `cp` into a read-only volume or root file system.
    #[error("{what} is marked read-only")]
    ReadOnly {
        /// `mounted volume` or `container rootfs`.
        what: &'static str,
    },
    /// The destination, or its parent, must be an existing directory.
    #[error("destination directory {path} must exist")]
    NoDestination {
        /// The path.
        path: PathBuf,
    },
}

impl ArchiveError {
    /// The engine's error class of this failure.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Io { source, .. } => match source.kind() {
                io::ErrorKind::NotFound => ErrorKind::NotFound,
                io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
                    ErrorKind::InvalidArgument
                }
                _ => ErrorKind::Internal,
            },
            _ => ErrorKind::InvalidArgument,
        }
    }
}

type Result<T, E = ArchiveError> = std::result::Result<T, E>;

fn io_at(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ArchiveError {
    let path = path.to_path_buf();
    move |source| ArchiveError::Io { op, path, source }
}

fn errno_at(op: &'static str, path: &Path) -> impl FnOnce(rustix::io::Errno) -> ArchiveError {
    let path = path.to_path_buf();
    move |e| ArchiveError::Io {
        op,
        path,
        source: e.into(),
    }
}

/// What a path given by the user names, with Docker's `cp` spellings: a trailing `/` (must be
/// a directory) and a trailing `/.` (the directory's content, not the directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserPath {
    /// The path, absolute in its tree, without the trailing `/` or `/.`.
    pub(crate) path: PathBuf,
    /// Ends with `/` or `/.`.
    pub(crate) dir_only: bool,
    /// Ends with `/.`.
    pub(crate) contents: bool,
}

impl UserPath {
    /// Splits `raw` (relative paths are taken from `cwd`).
    pub(crate) fn parse(raw: &str, cwd: &Path) -> UserPath {
        let contents = raw == "." || raw.ends_with("/.");
        let dir_only = contents || raw.ends_with('/');
        let p = Path::new(raw);
        let path = if p.is_absolute() {
            p.to_path_buf()
        } else {
            cwd.join(p)
        };
        UserPath {
            path,
            dir_only,
            contents,
        }
    }

    /// The last component: the name a copy of it gets.
    pub(crate) fn base(&self) -> OsString {
        let mut last = OsString::from("/");
        for c in self.path.components() {
            match c {
                Component::Normal(n) => last = n.to_os_string(),
                Component::ParentDir => last = OsString::from(".."),
                _ => {}
            }
        }
        last
    }
}

/// `lstat` (or `stat` with `follow`) of `path` inside `root`; `None` when it does not exist.
pub(crate) fn stat_in(root: BorrowedFd<'_>, path: &Path, follow: bool) -> Result<Option<Stat>> {
    let flags = if follow {
        OFlags::PATH
    } else {
        OFlags::PATH | OFlags::NOFOLLOW
    };
    match open_in_root(root, path, flags) {
        Ok(fd) => rustix::fs::fstat(&fd)
            .map(Some)
            .map_err(errno_at("stat", path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_at("open", path)(e)),
    }
}

/// Opens the directory `dir` (an `O_PATH` descriptor is fine) for reading and returns it with
/// its entry names (without `.` and `..`) in byte order, the order of Docker's walks.
pub(crate) fn read_dir_sorted(
    dir: BorrowedFd<'_>,
    shown: &Path,
) -> Result<(OwnedFd, Vec<OsString>)> {
    let rd = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno_at("open directory", shown))?;
    let mut names: Vec<OsString> = Vec::new();
    for entry in rustix::fs::Dir::read_from(&rd).map_err(errno_at("read directory", shown))? {
        let entry = entry.map_err(errno_at("read directory", shown))?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    names.sort();
    Ok((rd, names))
}

/// Writes objects of a tree as tar entries.
pub(crate) struct TarWriter<W: Write> {
    builder: tar::Builder<W>,
    /// First archive name of each multiply-linked file, for hard-link entries.
    links: HashMap<(u64, u64), PathBuf>,
}

impl<W: Write> TarWriter<W> {
    /// A writer into `out`.
    pub(crate) fn new(out: W) -> Self {
        let mut builder = tar::Builder::new(out);
        builder.follow_symlinks(false);
        TarWriter {
            builder,
            links: HashMap::new(),
        }
    }

    /// Adds `path` of `root` (following a final symlink with `follow`) under `name`, or, with
    /// `name` `None`, the entries of the directory it names under their own names.
    pub(crate) fn add_path(
        &mut self,
        root: BorrowedFd<'_>,
        path: &Path,
        follow: bool,
        name: Option<&Path>,
    ) -> Result<()> {
        let flags = if follow {
            OFlags::PATH
        } else {
            OFlags::PATH | OFlags::NOFOLLOW
        };
        let fd = open_in_root(root, path, flags).map_err(io_at("open", path))?;
        let st = rustix::fs::fstat(&fd).map_err(errno_at("stat", path))?;
        match name {
            Some(name) => self.add(&fd, &st, name),
            None => self.add_children(&fd, path, Path::new("")),
        }
    }

    fn add_children(&mut self, dir: &OwnedFd, shown: &Path, prefix: &Path) -> Result<()> {
        let (rd, names) = read_dir_sorted(dir.as_fd(), shown)?;
        for n in names {
            let child_shown = shown.join(&n);
            let fd = match rustix::fs::openat(
                &rd,
                n.as_os_str(),
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                // Gone since the listing (a running container).
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(errno_at("open", &child_shown)(e)),
            };
            let st = rustix::fs::fstat(&fd).map_err(errno_at("stat", &child_shown))?;
            self.add(&fd, &st, &prefix.join(&n))?;
        }
        Ok(())
    }

    fn header(st: &Stat, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(u64::from(st.st_uid));
        h.set_gid(u64::from(st.st_gid));
        h.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
        h.set_size(0);
        h
    }

    fn add(&mut self, fd: &OwnedFd, st: &Stat, name: &Path) -> Result<()> {
        let kind = FileType::from_raw_mode(st.st_mode);
        let err = |e: io::Error| io_at("write archive entry", name)(e);
        match kind {
            FileType::Directory => {
                let mut h = Self::header(st, tar::EntryType::Directory);
                let mut dir_name = name.as_os_str().to_os_string();
                dir_name.push("/");
                self.builder
                    .append_data(&mut h, Path::new(&dir_name), io::empty())
                    .map_err(err)?;
                self.add_children(fd, name, name)
            }
            FileType::RegularFile => {
                if st.st_nlink > 1 {
                    let key = (st.st_dev, st.st_ino);
                    if let Some(first) = self.links.get(&key) {
                        let mut h = Self::header(st, tar::EntryType::Link);
                        let first = first.clone();
                        return self.builder.append_link(&mut h, name, first).map_err(err);
                    }
                    self.links.insert(key, name.to_path_buf());
                }
                let file = File::open(proc_fd_path(fd)).map_err(io_at("open", name))?;
                let size = u64::try_from(st.st_size).unwrap_or(0);
                let mut h = Self::header(st, tar::EntryType::Regular);
                h.set_size(size);
                // A file that shrinks while it is read (a running container) is padded, one that
                // grows is cut: the header's size must hold.
                let data = file.take(size).chain(io::repeat(0)).take(size);
                self.builder.append_data(&mut h, name, data).map_err(err)
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(fd, "", Vec::new())
                    .map_err(errno_at("read link", name))?;
                let mut h = Self::header(st, tar::EntryType::Symlink);
                self.builder
                    .append_link(&mut h, name, OsStr::from_bytes(target.as_bytes()))
                    .map_err(err)
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                let t = match kind {
                    FileType::CharacterDevice => tar::EntryType::Char,
                    FileType::BlockDevice => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                };
                let mut h = Self::header(st, t);
                if t != tar::EntryType::Fifo {
                    h.set_device_major(rustix::fs::major(st.st_rdev))
                        .map_err(err)?;
                    h.set_device_minor(rustix::fs::minor(st.st_rdev))
                        .map_err(err)?;
                }
                self.builder
                    .append_data(&mut h, name, io::empty())
                    .map_err(err)
            }
            // Sockets (and anything unknown) have no tar form; Docker skips them too.
            _ => Ok(()),
        }
    }

    /// Writes the end of the archive and returns the writer.
    pub(crate) fn finish(self) -> Result<W> {
        self.builder
            .into_inner()
            .map_err(io_at("finish archive", Path::new("")))
    }
}

/// A reader or writer that counts the bytes through it (`cp` reports the size of its stream).
#[derive(Debug)]
pub(crate) struct Counted<T> {
    /// The wrapped reader or writer.
    pub(crate) inner: T,
    /// Bytes read or written so far.
    pub(crate) bytes: u64,
}

impl<T> Counted<T> {
    pub(crate) fn new(inner: T) -> Self {
        Counted { inner, bytes: 0 }
    }
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// How [`extract`] writes.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExtractOptions {
    /// Keep the archive's uid/gid (`cp -a`, copy-up); else files belong to the caller (root).
    pub(crate) preserve_owner: bool,
    /// Rename the first component of every entry: `(from, to)` (`cp dir newname`).
    pub(crate) rename: Option<(OsString, OsString)>,
}

/// Entry name -> a clean path relative to the extraction root (never climbing above it), with
/// the rename applied.
fn entry_path(raw: &Path, rename: Option<&(OsString, OsString)>) -> PathBuf {
    let rel = runtime::paths::relative(raw);
    match rename {
        Some((from, to)) => {
            let mut comps = rel.components();
            match comps.next() {
                Some(Component::Normal(first)) if first == from.as_os_str() => {
                    Path::new(to).join(comps.as_path())
                }
                _ => rel,
            }
        }
        None => rel,
    }
}

/// Extracts the tar stream `input` into the tree `dest` (a directory descriptor that acts as
/// the root for every path and symlink in the archive, as Docker's chrooted untar does).
pub(crate) fn extract(dest: BorrowedFd<'_>, input: impl Read, opts: &ExtractOptions) -> Result<()> {
    let mut archive = tar::Archive::new(input);
    let mut dirs: Vec<(PathBuf, tar::Header)> = Vec::new();
    let entries = archive
        .entries()
        .map_err(io_at("read archive", Path::new("-")))?;
    for entry in entries {
        let mut entry = entry.map_err(io_at("read archive", Path::new("-")))?;
        let raw = entry
            .path()
            .map_err(io_at("read archive", Path::new("-")))?
            .into_owned();
        let rel = entry_path(&raw, opts.rename.as_ref());
        let Some(base) = rel.file_name().map(OsStr::to_os_string) else {
            continue;
        };
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        let parent = mkdir_all_in_root(dest, parent_rel, 0o755)
            .map_err(io_at("create directory", parent_rel))?;
        let header = entry.header().clone();
        let kind = header.entry_type();
        let existing = rustix::fs::statat(&parent, base.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
            .ok()
            .map(|st| FileType::from_raw_mode(st.st_mode));
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        if kind == tar::EntryType::Directory {
            match existing {
                Some(FileType::Directory) => {}
                Some(_) => return Err(ArchiveError::OverwriteNonDir { path: rel }),
                None => rustix::fs::mkdirat(&parent, base.as_os_str(), Mode::from_raw_mode(0o700))
                    .map_err(errno_at("create directory", &rel))?,
            }
            dirs.push((rel, header));
            continue;
        }
        if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        match existing {
            Some(FileType::Directory) => return Err(ArchiveError::OverwriteDir { path: rel }),
            Some(_) => rustix::fs::unlinkat(&parent, base.as_os_str(), AtFlags::empty())
                .map_err(errno_at("remove", &rel))?,
            None => {}
        }
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let fd = rustix::fs::openat(
                    &parent,
                    base.as_os_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(errno_at("create", &rel))?;
                let mut file = File::from(fd);
                io::copy(&mut entry, &mut file).map_err(io_at("write", &rel))?;
                set_meta(file.as_fd(), &header, mode, opts, &rel)?;
            }
            tar::EntryType::Symlink => {
                let target = header
                    .link_name()
                    .map_err(io_at("read archive", &rel))?
                    .unwrap_or_default()
                    .into_owned();
                rustix::fs::symlinkat(&target, &parent, base.as_os_str())
                    .map_err(errno_at("create symlink", &rel))?;
                if opts.preserve_owner {
                    let (uid, gid) = owner(&header);
                    rustix::fs::chownat(
                        &parent,
                        base.as_os_str(),
                        Some(uid),
                        Some(gid),
                        AtFlags::SYMLINK_NOFOLLOW,
                    )
                    .map_err(errno_at("chown", &rel))?;
                }
                let t = times(&header);
                let _ =
                    rustix::fs::utimensat(&parent, base.as_os_str(), &t, AtFlags::SYMLINK_NOFOLLOW);
            }
            tar::EntryType::Link => {
                let target = header
                    .link_name()
                    .map_err(io_at("read archive", &rel))?
                    .unwrap_or_default()
                    .into_owned();
                let target = entry_path(&target, opts.rename.as_ref());
                let (Some(tbase), tparent) =
                    (target.file_name(), target.parent().unwrap_or(Path::new("")))
                else {
                    continue;
                };
                let tdir = open_in_root(dest, tparent, OFlags::PATH | OFlags::DIRECTORY)
                    .map_err(io_at("open", tparent))?;
                rustix::fs::linkat(&tdir, tbase, &parent, base.as_os_str(), AtFlags::empty())
                    .map_err(errno_at("create hard link", &rel))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let dev = rustix::fs::makedev(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                rustix::fs::mknodat(
                    &parent,
                    base.as_os_str(),
                    ft,
                    Mode::from_raw_mode(mode),
                    dev,
                )
                .map_err(errno_at("create node", &rel))?;
                let fd = rustix::fs::openat(
                    &parent,
                    base.as_os_str(),
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(errno_at("open", &rel))?;
                if opts.preserve_owner {
                    let (uid, gid) = owner(&header);
                    rustix::fs::chownat(&fd, "", Some(uid), Some(gid), AtFlags::EMPTY_PATH)
                        .map_err(errno_at("chown", &rel))?;
                }
            }
            // GNU sparse files, long-name records already applied, unknown types: skipped.
            _ => {}
        }
    }
    // Directory modes and times last: adding entries changed their mtimes, and a read-only
    // directory must still take its entries.
    for (rel, header) in dirs.iter().rev() {
        let fd = open_in_root(
            dest,
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
        )
        .map_err(io_at("open directory", rel))?;
        let mode = header.mode().unwrap_or(0o755) & 0o7777;
        set_meta(fd.as_fd(), header, mode, opts, rel)?;
    }
    Ok(())
}

/// Extracts the tar stream `input` into the directory `dest`, which acts as the root of every
/// entry name and symlink: nothing is written outside it (`cp -`; a fuzz target). With
/// `preserve_owner` the entries' uid/gid are kept, else files belong to the caller.
///
/// # Errors
/// A malformed stream, an entry that would replace a directory with a file or the reverse, or
/// a failing file-system call.
pub fn extract_into(dest: BorrowedFd<'_>, input: impl Read, preserve_owner: bool) -> Result<()> {
    let opts = ExtractOptions {
        preserve_owner,
        rename: None,
    };
    extract(dest, input, &opts)
}

fn owner(h: &tar::Header) -> (rustix::fs::Uid, rustix::fs::Gid) {
    let uid = u32::try_from(h.uid().unwrap_or(0)).unwrap_or(0);
    let gid = u32::try_from(h.gid().unwrap_or(0)).unwrap_or(0);
    (
        rustix::fs::Uid::from_raw(uid),
        rustix::fs::Gid::from_raw(gid),
    )
}

fn times(h: &tar::Header) -> Timestamps {
    let secs = i64::try_from(h.mtime().unwrap_or(0)).unwrap_or(0);
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Owner (with `preserve_owner`), mode (after the owner: chown clears set-id bits) and times
/// of an opened object.
fn set_meta(
    fd: BorrowedFd<'_>,
    h: &tar::Header,
    mode: u32,
    opts: &ExtractOptions,
    rel: &Path,
) -> Result<()> {
    if opts.preserve_owner {
        let (uid, gid) = owner(h);
        rustix::fs::fchown(fd, Some(uid), Some(gid)).map_err(errno_at("chown", rel))?;
    }
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode)).map_err(errno_at("chmod", rel))?;
    rustix::fs::futimens(fd, &times(h)).map_err(errno_at("set times", rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A raw ustar entry: the tar crate refuses to write `..` names and link targets itself.
    fn raw_entry(out: &mut Vec<u8>, name: &str, kind: u8, link: &str, data: &[u8]) {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }

    #[test]
    fn hostile_entries_stay_inside_the_destination() {
        let tmp = tempfile::tempdir().unwrap();
        let (dest, outside) = (tmp.path().join("dest"), tmp.path().join("outside"));
        std::fs::create_dir(&dest).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), "keep").unwrap();
        let mut tar = Vec::new();
        raw_entry(&mut tar, "../outside/secret", b'0', "", b"overwritten");
        raw_entry(&mut tar, "/abs", b'0', "", b"a");
        raw_entry(&mut tar, "up", b'2', "../..", b"");
        raw_entry(&mut tar, "up/root", b'2', "/", b"");
        raw_entry(
            &mut tar,
            "up/root/outside/secret",
            b'0',
            "",
            b"through links",
        );
        raw_entry(&mut tar, "hard", b'1', "../outside/secret", b"");
        tar.extend_from_slice(&[0; 1024]);
        let fd = rustix::fs::open(&dest, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        extract(fd.as_fd(), &tar[..], &ExtractOptions::default()).unwrap();
        // Every name, link target and hard link is taken inside dest.
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(dest.join("hard")).unwrap().ino(),
            std::fs::metadata(dest.join("outside/secret"))
                .unwrap()
                .ino()
        );
        assert_eq!(
            std::fs::read_to_string(outside.join("secret")).unwrap(),
            "keep"
        );
        assert_eq!(
            std::fs::read(dest.join("outside/secret")).unwrap(),
            b"through links"
        );
        assert_eq!(std::fs::read(dest.join("abs")).unwrap(), b"a");
        assert_eq!(
            std::fs::read_link(dest.join("up")).unwrap(),
            Path::new("../..")
        );
    }

    #[test]
    fn user_paths_keep_dockers_trailing_forms() {
        let cwd = Path::new("/work");
        let p = UserPath::parse("/a/b/.", cwd);
        assert!(p.contents && p.dir_only);
        assert_eq!(p.base(), "b");
        let p = UserPath::parse("rel/x/", cwd);
        assert!(p.dir_only && !p.contents);
        assert_eq!(p.path, Path::new("/work/rel/x/"));
        assert_eq!(p.base(), "x");
        assert_eq!(UserPath::parse("/", cwd).base(), "/");
    }

    #[test]
    fn entry_names_stay_inside_and_rename_the_first_component() {
        let r = (OsString::from("src"), OsString::from("dst"));
        assert_eq!(entry_path(Path::new("src/a"), Some(&r)), Path::new("dst/a"));
        assert_eq!(
            entry_path(Path::new("../../etc/x"), None),
            Path::new("etc/x")
        );
        assert_eq!(entry_path(Path::new("/abs/y"), None), Path::new("abs/y"));
        assert_eq!(
            entry_path(Path::new("srcx/a"), Some(&r)),
            Path::new("srcx/a")
        );
    }

    #[test]
    fn round_trip_keeps_links_modes_and_never_writes_through_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("d")).unwrap();
        std::fs::write(src.join("d/f"), b"data").unwrap();
        std::fs::hard_link(src.join("d/f"), src.join("d/g")).unwrap();
        std::os::unix::fs::symlink("/", src.join("escape")).unwrap();
        let open = |p: &Path| {
            rustix::fs::open(p, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap()
        };
        let mut w = TarWriter::new(Vec::new());
        w.add_path(open(&src).as_fd(), Path::new("/"), false, None)
            .unwrap();
        let tar = w.finish().unwrap();

        let dst = tmp.path().join("dst");
        std::fs::create_dir(&dst).unwrap();
        extract(open(&dst).as_fd(), &tar[..], &ExtractOptions::default()).unwrap();
        assert_eq!(std::fs::read(dst.join("d/g")).unwrap(), b"data");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(dst.join("d/f")).unwrap().ino(),
            std::fs::metadata(dst.join("d/g")).unwrap().ino()
        );
        assert_eq!(
            std::fs::read_link(dst.join("escape")).unwrap(),
            Path::new("/")
        );

        // A second archive writing through the planted `escape -> /` lands inside dst.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, "escape/berth-archive-test", &b"hi"[..])
            .unwrap();
        let tar = b.into_inner().unwrap();
        extract(open(&dst).as_fd(), &tar[..], &ExtractOptions::default()).unwrap();
        assert!(dst.join("berth-archive-test").is_file());
        assert!(!Path::new("/berth-archive-test").exists());
    }
}
