//! Storage verbs over the [`Engine`]: a container's mounts at create (host directories, volume
//! directories, copy-up, OCI `mounts[]`), `volume create|ls|inspect|rm|prune`, `cp`, `diff` and
//! `export`.
//!
//! A container's tree is reached through one descriptor: `/proc/<pid>/root` while it runs (its
//! own mount namespace: volumes and binds included), else a detached overlay mount of its
//! layers (`image::open_overlay`), which is attached nowhere and vanishes with the descriptor,
//! so a killed `berth cp` leaves no mount behind. Paths inside are resolved by `archive` with
//! `RESOLVE_IN_ROOT`.

use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};
use rustix::mount::{MoveMountFlags, OpenTreeFlags};
use serde_json::Value;

use crate::archive::{self, ArchiveError, Counted, ExtractOptions, TarWriter, UserPath};
use crate::containers::{Container, MountKind};
use crate::engine::{Engine, io_err, rootfs_path};
use crate::error::{EngineError, Result};
use crate::mounts::VolumeSource;
use crate::state::Status;
use crate::store::{Paths, Store};
use crate::volumes::{NewVolume, Volume, VolumeFilter};

/// One side of `berth cp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyPath {
    /// A host path (relative to the current directory, or absolute).
    Host(String),
    /// `CONTAINER:PATH`.
    Container {
        /// Name, id or id prefix.
        container: String,
        /// Path inside it.
        path: String,
    },
    /// `-`: a tar stream on stdin or stdout.
    Stdio,
}

impl CopyPath {
    /// Docker's reading of a `cp` argument: `-`, `CONTAINER:PATH`, or a host path (one that
    /// starts with `/` or `.`, or has no `:` before its first `/`).
    #[must_use]
    pub fn parse(arg: &str) -> CopyPath {
        if arg == "-" {
            return CopyPath::Stdio;
        }
        if arg.starts_with('/') || arg.starts_with('.') {
            return CopyPath::Host(arg.to_owned());
        }
        match arg.split_once(':') {
            Some((c, p)) if !c.contains('/') && !c.is_empty() => CopyPath::Container {
                container: c.to_owned(),
                path: p.to_owned(),
            },
            _ => CopyPath::Host(arg.to_owned()),
        }
    }
}

/// `cp` flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyOptions {
    /// `-a`: keep uid/gid of what is copied into a container.
    pub archive: bool,
    /// `-L`: follow a symlink that is the source.
    pub follow_link: bool,
}

/// One line of `berth diff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `A` added, `C` changed, `D` deleted.
    pub kind: char,
    /// Path in the container.
    pub path: String,
}

/// A container's tree: the descriptor of its root.
struct Tree {
    root: OwnedFd,
    /// Its rootfs is reached without its mounts (a stopped container).
    detached: bool,
}

/// The overlay spec the monitor mounts, as `prepare` wrote it (`<bundle>/rootfs.json`).
#[derive(serde::Deserialize)]
struct RootfsSpec {
    lowerdirs: Vec<PathBuf>,
    upperdir: PathBuf,
    workdir: PathBuf,
}

fn read_rootfs_spec(c: &Container) -> Result<image::Mount> {
    let path = c.bundle.join("rootfs.json");
    let text = fs::read(&path).map_err(io_err("read", &path))?;
    let s: RootfsSpec = serde_json::from_slice(&text).map_err(|source| EngineError::Json {
        action: format!("decode {}", path.display()),
        source,
    })?;
    Ok(image::Mount {
        lowerdirs: s.lowerdirs,
        upperdir: s.upperdir,
        workdir: s.workdir,
    })
}

fn open_dir(path: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("open", path)(e.into()))
}

fn copy_err(action: String) -> impl FnOnce(ArchiveError) -> EngineError {
    move |source| EngineError::Copy { action, source }
}

impl Engine {
    /// `<root>/volumes/<name>/_data`.
    fn volume_data(&self, name: &str) -> PathBuf {
        self.paths.volumes_dir().join(name).join("_data")
    }

    fn make_volume_dir(&self, name: &str) -> Result<PathBuf> {
        let data = self.volume_data(name);
        fs::create_dir_all(&data).map_err(io_err("create volume directory", &data))?;
        Ok(data)
    }

    /// Host side of a new container's mounts, then its OCI `mounts[]`: `-v` host directories
    /// made when missing, volume directories, the image's content copied into empty volumes
    /// (Docker's copy-up, unless `nocopy`), then the entries added to `spec`.
    pub(crate) fn prepare_mounts(
        &self,
        c: &Container,
        overlay: &image::Mount,
        spec: &mut Value,
    ) -> Result<()> {
        let planned = crate::mount_flags::plan(&c.config, &c.host_config)?;
        let mut image_root: Option<OwnedFd> = None;
        for p in &planned {
            let Some(row) = c.mounts.iter().find(|r| r.destination == p.destination) else {
                continue;
            };
            match p.kind {
                MountKind::Bind if p.create_source => {
                    let src = Path::new(&row.source);
                    if fs::symlink_metadata(src).is_err() {
                        fs::create_dir_all(src).map_err(io_err("create bind source", src))?;
                    }
                }
                MountKind::Volume => {
                    let data = self.make_volume_dir(&row.source)?;
                    let empty = fs::read_dir(&data)
                        .map_err(io_err("read volume directory", &data))?
                        .next()
                        .is_none();
                    let device = self
                        .store
                        .read(|tx| tx.volume(&row.source))
                        .is_ok_and(|v| !v.options.is_empty());
                    if p.copy && empty && !device {
                        if image_root.is_none() {
                            let fd = image::open_overlay(overlay).map_err(|source| {
                                EngineError::Snapshot {
                                    action: format!("mount rootfs of {}", c.id.short()),
                                    source: Box::new(source),
                                }
                            })?;
                            image_root = Some(fd);
                        }
                        if let Some(root) = &image_root {
                            copy_up(root.as_fd(), &p.destination, &data).map_err(copy_err(
                                format!("copy image content into volume {}", row.source),
                            ))?;
                        }
                    }
                }
                _ => {}
            }
        }
        let sources = self.volume_sources(c)?;
        let entries = crate::mounts::oci_mounts(&planned, &c.mounts, |name| {
            sources.iter().find(|(n, _)| n == name).map_or_else(
                || VolumeSource::Dir(self.volume_data(name)),
                |(_, s)| s.clone(),
            )
        });
        crate::mounts::add_to_spec(spec, entries);
        Ok(())
    }

    /// Where the content of each volume `c` mounts comes from.
    fn volume_sources(&self, c: &Container) -> Result<Vec<(String, VolumeSource)>> {
        let names: Vec<&str> = c
            .mounts
            .iter()
            .filter(|m| m.kind == MountKind::Volume)
            .map(|m| m.source.as_str())
            .collect();
        let volumes = self.store.read(|tx| {
            names
                .iter()
                .map(|n| tx.volume(n))
                .collect::<Result<Vec<_>>>()
        })?;
        Ok(volumes
            .into_iter()
            .map(|v| {
                let dir = self.volume_data(&v.name);
                (v.name, VolumeSource::of(&v.options, dir))
            })
            .collect())
    }

    /// Docker's `Mounts[]` of `inspect`.
    pub(crate) fn mounts_json(&self, c: &Container) -> Vec<Value> {
        let planned = crate::mount_flags::plan(&c.config, &c.host_config).unwrap_or_default();
        c.mounts
            .iter()
            .map(|m| crate::mounts::inspect_json(m, &planned, &self.volume_data(&m.source)))
            .collect()
    }

    /// Removes the anonymous volumes `c` used (`rm -v`, `--rm`), once no container uses them;
    /// named volumes stay.
    ///
    /// Errors: the store cannot be written.
    pub fn remove_anonymous_volumes(&self, c: &Container) -> Result<()> {
        remove_anonymous_volumes(&self.store, &self.paths, c)
    }

    /// `volume create`: records the volume (an existing name is returned as is) and makes its
    /// directory.
    ///
    /// Errors: a bad name or driver, or the directory cannot be made.
    pub fn volume_create(&self, new: &NewVolume) -> Result<Volume> {
        if let Some(d) = new.driver.as_deref()
            && d != crate::volumes::LOCAL_DRIVER
        {
            return Err(EngineError::InvalidValue {
                what: "volume driver (only local)",
                value: d.to_owned(),
            });
        }
        crate::mounts::check_volume_options(&new.options)?;
        let v = self.store.write(|tx| tx.create_volume(new))?;
        self.make_volume_dir(&v.name)?;
        Ok(v)
    }

    /// `volume ls`.
    ///
    /// Errors: the store cannot be read.
    pub fn volumes(&self, filter: &VolumeFilter) -> Result<Vec<Volume>> {
        self.store.read(|tx| tx.list_volumes(filter))
    }

    /// `volume inspect`.
    ///
    /// Errors: `NotFound`.
    pub fn volume(&self, name: &str) -> Result<Volume> {
        self.store.read(|tx| tx.volume(name))
    }

    /// `volume rm`: refuses a volume a container uses; with `force`, a missing one is no error.
    ///
    /// Errors: `NotFound` (without `force`), `Conflict` while in use.
    pub fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        match self.store.write(|tx| tx.remove_volume(name)) {
            Ok(v) => {
                remove_volume_dir(&self.paths, &v.name);
                Ok(())
            }
            Err(EngineError::NotFound { .. }) if force => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The tree of `c`: with its mounts while it runs, its rootfs alone (`mounts` false, or
    /// stopped) otherwise.
    fn open_tree(&self, c: &Container, mounts: bool) -> Result<Tree> {
        let running = matches!(c.state.status, Status::Running | Status::Paused);
        if running {
            let live = match (mounts, c.state.pid) {
                (true, Some(pid)) => open_dir(Path::new(&format!("/proc/{pid}/root"))).ok(),
                // The monitor's overlay mount (not the empty directory under it once it is gone:
                // the opened root must be on another device than the run dir).
                _ => open_dir(&rootfs_path(c)).ok().filter(|fd| {
                    use std::os::unix::fs::MetadataExt;
                    let run_dir = fs::metadata(&c.run_dir).map(|m| m.dev()).ok();
                    rustix::fs::fstat(fd).is_ok_and(|st| Some(st.st_dev) != run_dir)
                }),
            };
            // Check that the pid (or mount) still is this container's after opening it.
            let now = self.container(c.id.as_str())?;
            if let Some(root) = live
                && now.state.pid == c.state.pid
                && matches!(now.state.status, Status::Running | Status::Paused)
            {
                return Ok(Tree {
                    root,
                    detached: false,
                });
            }
        }
        let spec = read_rootfs_spec(c)?;
        let root = image::open_overlay(&spec).map_err(|source| EngineError::Snapshot {
            action: format!("mount rootfs of {}", c.id.short()),
            source: Box::new(source),
        })?;
        if mounts {
            self.attach_mounts(c, root.as_fd())?;
        }
        Ok(Tree {
            root,
            detached: true,
        })
    }

    /// Binds the container's volumes and bind mounts into its detached rootfs mount, as the
    /// runtime would at start (mount points made in the rootfs the same way), so `cp` into a
    /// stopped container reaches them. The clones live in the detached tree only.
    fn attach_mounts(&self, c: &Container, root: BorrowedFd<'_>) -> Result<()> {
        let mut rows: Vec<_> = c
            .mounts
            .iter()
            .filter(|m| m.kind != MountKind::Tmpfs)
            .collect();
        rows.sort_by_key(|m| Path::new(&m.destination).components().count());
        for m in rows {
            let source = match m.kind {
                MountKind::Volume => {
                    let v = self.store.read(|tx| tx.volume(&m.source))?;
                    match VolumeSource::of(&v.options, self.volume_data(&v.name)).bind_path() {
                        Some(p) => p,
                        None => {
                            // A device volume is mounted by the container's runtime only.
                            tracing::warn!(volume = %v.name, "cp does not reach a device volume of a stopped container");
                            continue;
                        }
                    }
                }
                _ => PathBuf::from(&m.source),
            };
            let dest = Path::new(&m.destination);
            let fail = |e: std::io::Error| EngineError::Io {
                action: "mount for copy",
                path: source.clone(),
                source: e,
            };
            let is_dir = fs::metadata(&source).map_err(fail)?.is_dir();
            let target = if is_dir {
                runtime::paths::mkdir_all_in_root(root, dest, 0o755)
            } else {
                runtime::paths::create_file_in_root(root, dest)
            }
            .map_err(fail)?;
            let tree = rustix::mount::open_tree(
                rustix::fs::CWD,
                &source,
                OpenTreeFlags::OPEN_TREE_CLONE
                    | OpenTreeFlags::OPEN_TREE_CLOEXEC
                    | OpenTreeFlags::AT_RECURSIVE,
            )
            .map_err(|e| fail(e.into()))?;
            rustix::mount::move_mount(
                &tree,
                "",
                &target,
                "",
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
            )
            .map_err(|e| fail(e.into()))?;
        }
        Ok(())
    }

    /// `berth cp SRC DST`: Docker's semantics (a file into a directory keeps its name; a
    /// missing destination takes the source's content under the new name; `DIR/.` copies the
    /// content; `-` is a tar stream on `stdin`/`stdout`). Works on running and stopped
    /// containers.
    ///
    /// Returns the size of the tar stream that carried the copy (Docker's "Successfully copied").
    ///
    /// Errors: no such container or path, a directory onto a file, a missing destination
    /// directory, or both sides on the host.
    pub fn copy(
        &self,
        src: &CopyPath,
        dst: &CopyPath,
        opts: CopyOptions,
        stdin: &mut dyn Read,
        stdout: &mut dyn Write,
    ) -> Result<u64> {
        let cwd = std::env::current_dir().map_err(io_err("find", Path::new(".")))?;
        let side = |p: &CopyPath,
                    is_dest: bool|
         -> Result<Option<(String, Tree, UserPath, bool)>> {
            Ok(match p {
                CopyPath::Stdio => None,
                CopyPath::Host(raw) => Some((
                    "host".to_owned(),
                    Tree {
                        root: open_dir(Path::new("/"))?,
                        detached: false,
                    },
                    UserPath::parse(raw, &cwd),
                    false,
                )),
                CopyPath::Container { container, path } => {
                    let c = self.container(container)?;
                    let user_path = UserPath::parse(path, Path::new("/"));
                    if is_dest {
                        check_writable(&c, &user_path.path)
                            .map_err(copy_err(format!("copy to container {}", c.id.short())))?;
                    }
                    let tree = self.open_tree(&c, true)?;
                    if tree.detached {
                        tracing::debug!(id = %c.id.short(), "cp through a detached rootfs mount");
                    }
                    Some((format!("container {}", c.id.short()), tree, user_path, true))
                }
            })
        };
        let in_container = |p: &CopyPath| matches!(p, CopyPath::Container { .. });
        if !in_container(src) && !in_container(dst) {
            return Err(EngineError::InvalidValue {
                what: "copy (one side must be CONTAINER:PATH)",
                value: format!("{src:?} -> {dst:?}"),
            });
        }
        let from = side(src, false)?;
        let to = side(dst, true)?;
        match (from, to) {
            (Some((what, tree, path, _)), None) => {
                let (_, name) = source_entry(tree.root.as_fd(), &path, opts.follow_link)
                    .map_err(copy_err(format!("copy from {what}")))?;
                let mut w = TarWriter::new(Counted::new(stdout));
                w.add_path(
                    tree.root.as_fd(),
                    &path.path,
                    opts.follow_link,
                    name.as_deref(),
                )
                .and_then(|()| w.finish().map(|c| c.bytes))
                .map_err(copy_err(format!("copy from {what}")))
            }
            (None, Some((what, tree, path, _))) => {
                let action = format!("copy to {what}");
                let dir =
                    dest_dir(tree.root.as_fd(), &path.path).map_err(copy_err(action.clone()))?;
                let x = ExtractOptions {
                    preserve_owner: opts.archive,
                    rename: None,
                };
                let mut input = Counted::new(stdin);
                archive::extract(dir.as_fd(), &mut input, &x).map_err(copy_err(action))?;
                Ok(input.bytes)
            }
            (Some((swhat, stree, spath, _)), Some((dwhat, dtree, dpath, dcontainer))) => {
                let action = format!("copy from {swhat} to {dwhat}");
                let (is_dir, name) = source_entry(stree.root.as_fd(), &spath, opts.follow_link)
                    .map_err(copy_err(action.clone()))?;
                let (dir, top) = destination(dtree.root.as_fd(), &dpath, is_dir, name)
                    .map_err(copy_err(action.clone()))?;
                let x = ExtractOptions {
                    preserve_owner: opts.archive && dcontainer,
                    rename: None,
                };
                pipe_copy(
                    stree.root.as_fd(),
                    &spath.path,
                    opts.follow_link,
                    top.as_deref(),
                    dir.as_fd(),
                    &x,
                )
                .map_err(copy_err(action))
            }
            (None, None) => Ok(0),
        }
    }

    /// `berth export`: the container's root file system (its layers merged, without its
    /// volumes and mounts) as a tar stream.
    ///
    /// Errors: no such container, or a file cannot be read.
    pub fn export(&self, reference: &str, out: &mut dyn Write) -> Result<()> {
        let c = self.container(reference)?;
        let tree = self.open_tree(&c, false)?;
        let mut w = TarWriter::new(out);
        w.add_path(tree.root.as_fd(), Path::new("/"), false, None)
            .and_then(|()| w.finish().map(drop))
            .map_err(copy_err(format!("export container {}", c.id.short())))
    }

    /// `berth diff`: what the container changed in its image's file system, from its overlay
    /// upper directory (whiteouts are deletions), in Docker's order.
    ///
    /// Errors: no such container, or its directories cannot be read.
    pub fn diff(&self, reference: &str) -> Result<Vec<Change>> {
        let c = self.container(reference)?;
        let spec = read_rootfs_spec(&c)?;
        let upper = open_dir(&spec.upperdir)?;
        let lowers = spec
            .lowerdirs
            .iter()
            .map(|l| open_dir(l))
            .collect::<Result<Vec<_>>>()?;
        // Mount points the runtime made for the container's own mounts are not changes.
        let stubs = mount_points(&c);
        let mut out = Vec::new();
        let mut changed_dirs = std::collections::HashSet::new();
        walk_upper(
            upper.as_fd(),
            &spec.upperdir,
            Path::new("/"),
            &lowers,
            &stubs,
            &mut changed_dirs,
            &mut out,
        )
        .map_err(copy_err(format!("diff container {}", c.id.short())))?;
        Ok(out)
    }
}

/// The anonymous volumes of `c` that no container uses any more: records, then directories
/// (shared by `rm -v` and the monitor of a `--rm` container).
pub(crate) fn remove_anonymous_volumes(store: &Store, paths: &Paths, c: &Container) -> Result<()> {
    for m in c.mounts.iter().filter(|m| m.kind == MountKind::Volume) {
        let removed = store.write(|tx| {
            let v = match tx.volume(&m.source) {
                Ok(v) => v,
                Err(EngineError::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            if !v.anonymous || v.ref_count > 0 {
                return Ok(None);
            }
            tx.remove_volume(&m.source).map(Some)
        })?;
        if let Some(v) = removed {
            remove_volume_dir(paths, &v.name);
        }
    }
    Ok(())
}

fn remove_volume_dir(paths: &Paths, name: &str) {
    let dir = paths.volumes_dir().join(name);
    if let Err(e) = fs::remove_dir_all(&dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("remove {}: {e}", dir.display());
    }
}

/// Destinations of the bundle's `mounts[]`.
fn mount_points(c: &Container) -> Vec<PathBuf> {
    let Ok(text) = fs::read(c.bundle.join("config.json")) else {
        return Vec::new();
    };
    let Ok(spec) = serde_json::from_slice::<Value>(&text) else {
        return Vec::new();
    };
    spec["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["destination"].as_str().map(PathBuf::from))
        .collect()
}

/// One level of Docker's `changes` walk over the upper directory `dir` (shown as `path`).
fn walk_upper(
    dir: BorrowedFd<'_>,
    host: &Path,
    path: &Path,
    lowers: &[OwnedFd],
    stubs: &[PathBuf],
    changed_dirs: &mut std::collections::HashSet<PathBuf>,
    out: &mut Vec<Change>,
) -> Result<(), ArchiveError> {
    let err = |op: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |e: rustix::io::Errno| ArchiveError::Io {
            op,
            path: p,
            source: e.into(),
        }
    };
    let (rd, names) = archive::read_dir_sorted(dir, host)?;
    for n in names {
        let p = path.join(&n);
        let st = rustix::fs::statat(&rd, n.as_os_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
            .map_err(err("stat", &host.join(&n)))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        let is_dir = ft == FileType::Directory;
        let whiteout = ft == FileType::CharacterDevice && st.st_rdev == 0;
        let lower = lowers
            .iter()
            .find_map(|l| archive::stat_in(l.as_fd(), &p, false).ok().flatten());
        if !whiteout && stubs.contains(&p) && lower.is_none() && is_stub(&rd, &n, &st) {
            continue;
        }
        let kind = if whiteout {
            'D'
        } else if let Some(l) = &lower {
            let same_dir = is_dir
                && FileType::from_raw_mode(l.st_mode) == FileType::Directory
                && l.st_size == st.st_size
                && l.st_mode == st.st_mode
                && l.st_mtime == st.st_mtime
                && l.st_mtime_nsec == st.st_mtime_nsec;
            if same_dir { '-' } else { 'C' }
        } else {
            'A'
        };
        if kind != '-' {
            if is_dir {
                changed_dirs.insert(p.clone());
            }
            if matches!(kind, 'A' | 'D')
                && let Some(parent) = p.parent()
                && parent != Path::new("/")
                && changed_dirs.insert(parent.to_path_buf())
            {
                out.push(Change {
                    kind: 'C',
                    path: parent.to_string_lossy().into_owned(),
                });
            }
            out.push(Change {
                kind,
                path: p.to_string_lossy().into_owned(),
            });
        }
        if is_dir {
            let sub = rustix::fs::openat(
                &rd,
                n.as_os_str(),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(err("open", &host.join(&n)))?;
            walk_upper(
                sub.as_fd(),
                &host.join(&n),
                &p,
                lowers,
                stubs,
                changed_dirs,
                out,
            )?;
        }
    }
    Ok(())
}

/// An empty directory or empty file: a mount point the runtime created.
fn is_stub(dir: &OwnedFd, name: &OsString, st: &rustix::fs::Stat) -> bool {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => st.st_size == 0,
        FileType::Directory => rustix::fs::openat(
            dir,
            name.as_os_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()
        .and_then(|fd| rustix::fs::Dir::read_from(&fd).ok())
        .is_some_and(|mut d| {
            std::iter::from_fn(|| d.next())
                .filter_map(std::result::Result::ok)
                .all(|e| matches!(e.file_name().to_bytes(), b"." | b".."))
        }),
        _ => false,
    }
}

/// Docker's refusal to copy into a read-only volume or root file system (the kernel would
/// refuse it for a running container; a stopped one's detached tree is writable).
fn check_writable(c: &Container, dest: &Path) -> Result<(), ArchiveError> {
    let dest = runtime::paths::relative(dest);
    let covering = c
        .mounts
        .iter()
        .filter(|m| dest.starts_with(runtime::paths::relative(Path::new(&m.destination))))
        .max_by_key(|m| m.destination.len());
    match covering {
        Some(m) if !m.read_write => Err(ArchiveError::ReadOnly {
            what: "mounted volume",
        }),
        None if c.host_config.readonly_rootfs => Err(ArchiveError::ReadOnly {
            what: "container rootfs",
        }),
        _ => Ok(()),
    }
}

/// Checks a `cp` source and returns (is a directory, the archive name of its top entry:
/// `None` for `DIR/.`, the content only).
fn source_entry(
    root: BorrowedFd<'_>,
    path: &UserPath,
    follow: bool,
) -> Result<(bool, Option<PathBuf>), ArchiveError> {
    let st = archive::stat_in(root, &path.path, follow || path.dir_only)?.ok_or_else(|| {
        ArchiveError::Io {
            op: "find",
            path: path.path.clone(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        }
    })?;
    let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
    if path.dir_only && !is_dir {
        return Err(ArchiveError::NotADirectory {
            path: path.path.clone(),
        });
    }
    let name = if path.contents {
        None
    } else {
        Some(PathBuf::from(path.base()))
    };
    Ok((is_dir, name))
}

/// An existing directory to extract a `-` stream into.
fn dest_dir(root: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd, ArchiveError> {
    match archive::stat_in(root, path, true)? {
        Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            runtime::paths::open_in_root(root, path, OFlags::PATH | OFlags::DIRECTORY).map_err(
                |source| ArchiveError::Io {
                    op: "open",
                    path: path.to_path_buf(),
                    source,
                },
            )
        }
        Some(_) => Err(ArchiveError::NotADirectory {
            path: path.to_path_buf(),
        }),
        None => Err(ArchiveError::NoDestination {
            path: path.to_path_buf(),
        }),
    }
}

/// Where a copy goes: the directory to extract into and the name its top entry gets there.
fn destination(
    root: BorrowedFd<'_>,
    dst: &UserPath,
    src_is_dir: bool,
    src_name: Option<PathBuf>,
) -> Result<(OwnedFd, Option<PathBuf>), ArchiveError> {
    match archive::stat_in(root, &dst.path, true)? {
        Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            // Into the directory, under the source's own name (or its content for `DIR/.`).
            Ok((dest_dir(root, &dst.path)?, src_name))
        }
        Some(_) if src_is_dir => Err(ArchiveError::DirOntoFile {
            path: dst.path.clone(),
        }),
        Some(_) if dst.dir_only => Err(ArchiveError::NotADirectory {
            path: dst.path.clone(),
        }),
        _ if dst.dir_only && !src_is_dir => Err(ArchiveError::NoDestination {
            path: dst.path.clone(),
        }),
        // A file replaces a file; a missing destination takes the source under its name.
        _ => {
            let parent = dst.path.parent().unwrap_or(Path::new("/"));
            Ok((dest_dir(root, parent)?, Some(PathBuf::from(dst.base()))))
        }
    }
}

/// Archives `path` of `src` (under `name`) into a pipe on one thread and extracts it into `dir`
/// on this one; returns the size of the stream.
fn pipe_copy(
    src: BorrowedFd<'_>,
    path: &Path,
    follow: bool,
    name: Option<&Path>,
    dir: BorrowedFd<'_>,
    opts: &ExtractOptions,
) -> Result<u64, ArchiveError> {
    let (reader, writer) = std::io::pipe().map_err(|source| ArchiveError::Io {
        op: "create pipe",
        path: PathBuf::new(),
        source,
    })?;
    std::thread::scope(|s| {
        let producer = s.spawn(move || {
            let mut w = TarWriter::new(Counted::new(writer));
            w.add_path(src, path, follow, name)?;
            w.finish().map(|c| c.bytes)
        });
        let extracted = archive::extract(dir, reader, opts);
        let produced = producer.join().unwrap_or_else(|_| {
            Err(ArchiveError::Io {
                op: "archive",
                path: path.to_path_buf(),
                source: std::io::Error::other("archiver panicked"),
            })
        });
        // A producer error explains an extractor's early end better than a broken pipe.
        let bytes = produced?;
        extracted.map(|()| bytes)
    })
}

/// Copies the image's content at `dest` (inside `root`) into the empty volume directory
/// `data`, owners and modes kept, and gives `data` the mode and owner of the image's directory.
fn copy_up(root: BorrowedFd<'_>, dest: &str, data: &Path) -> Result<(), ArchiveError> {
    let dest = Path::new(dest);
    let Some(st) = archive::stat_in(root, dest, true)? else {
        return Ok(());
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Ok(());
    }
    let target = rustix::fs::open(
        data,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ArchiveError::Io {
        op: "open",
        path: data.to_path_buf(),
        source: e.into(),
    })?;
    let x = ExtractOptions {
        preserve_owner: true,
        rename: None,
    };
    pipe_copy(root, dest, true, None, target.as_fd(), &x)?;
    let meta = |e: rustix::io::Errno| ArchiveError::Io {
        op: "set owner and mode of",
        path: data.to_path_buf(),
        source: e.into(),
    };
    rustix::fs::fchown(
        &target,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
    )
    .map_err(meta)?;
    rustix::fs::fchmod(&target, Mode::from_raw_mode(st.st_mode & 0o7777)).map_err(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_walk_reports_like_docker() {
        if !testutil::require_root() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let (lower, upper) = (tmp.path().join("lower"), tmp.path().join("upper"));
        for d in [
            lower.join("a"),
            lower.join("b"),
            upper.join("a"),
            upper.join("b"),
        ] {
            fs::create_dir_all(d).unwrap();
        }
        fs::write(lower.join("a/file1"), "1").unwrap();
        fs::write(lower.join("keep"), "k").unwrap();
        fs::write(upper.join("new"), "n").unwrap();
        fs::write(upper.join("b/x"), "x").unwrap();
        // A whiteout: overlay's 0:0 character device.
        rustix::fs::mknodat(
            rustix::fs::CWD,
            upper.join("a/file1"),
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        // /b is only a parent of a change: same metadata as below, reported through its child.
        let same = fs::metadata(lower.join("b")).unwrap().modified().unwrap();
        let dir = fs::File::open(upper.join("b")).unwrap();
        dir.set_modified(same).unwrap();
        let dir = fs::File::open(upper.join("a")).unwrap();
        dir.set_modified(std::time::UNIX_EPOCH).unwrap();
        let lowers = vec![open_dir(&lower).unwrap()];
        let up = open_dir(&upper).unwrap();
        let mut out = Vec::new();
        walk_upper(
            up.as_fd(),
            &upper,
            Path::new("/"),
            &lowers,
            &[],
            &mut std::collections::HashSet::new(),
            &mut out,
        )
        .unwrap();
        let lines: Vec<String> = out
            .iter()
            .map(|c| format!("{} {}", c.kind, c.path))
            .collect();
        assert_eq!(lines, ["C /a", "D /a/file1", "C /b", "A /b/x", "A /new"]);
    }

    #[test]
    fn cp_arguments_like_docker() {
        assert_eq!(CopyPath::parse("-"), CopyPath::Stdio);
        assert_eq!(
            CopyPath::parse("web:/etc/hosts"),
            CopyPath::Container {
                container: "web".into(),
                path: "/etc/hosts".into()
            }
        );
        assert_eq!(CopyPath::parse("./a:b"), CopyPath::Host("./a:b".into()));
        assert_eq!(CopyPath::parse("/a:b"), CopyPath::Host("/a:b".into()));
        assert_eq!(CopyPath::parse("dir/a:b"), CopyPath::Host("dir/a:b".into()));
        assert_eq!(CopyPath::parse("file"), CopyPath::Host("file".into()));
    }
}
