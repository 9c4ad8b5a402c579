//! Building the container's file-system view inside its new mount namespace: root propagation,
//! the spec's mounts, device nodes, /dev symlinks, pivot_root, masked and read-only paths.
//!
//! Runs in the container's init (stage 2), single-threaded, before the user's program is exec'd.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};
use rustix::fs::{Mode, OFlags};

use crate::error::{Result, RuntimeError};
use crate::mounts::{self, MountOptions};
use crate::paths::{self, create_file_in_root, mkdir_all_in_root, open_in_root, proc_fd_path};
use crate::sys;

/// What rootfs setup needs besides the spec.
pub(crate) struct RootfsContext<'a> {
    pub(crate) spec: &'a Spec,
    pub(crate) bundle: &'a Path,
    pub(crate) rootfs: &'a Path,
    /// The container is in a user namespace: device nodes are bind-mounted, not created.
    pub(crate) userns: bool,
    /// The container has its own cgroup namespace.
    pub(crate) cgroupns: bool,
    /// Controller -> absolute host directory of the container's cgroups.
    pub(crate) cgroup_paths: &'a BTreeMap<String, PathBuf>,
}

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Translate `MS_*` flags that mount_setattr also knows into `MOUNT_ATTR_*` bits: (set, clear).
fn ms_to_attr(flags: libc::c_ulong) -> (u64, u64) {
    use mounts::attr;
    let mut set = 0;
    let mut clear = 0;
    for (ms, a) in [
        (libc::MS_RDONLY, attr::RDONLY),
        (libc::MS_NOSUID, attr::NOSUID),
        (libc::MS_NODEV, attr::NODEV),
        (libc::MS_NOEXEC, attr::NOEXEC),
        (libc::MS_NODIRATIME, attr::NODIRATIME),
    ] {
        if flags & ms != 0 {
            set |= a;
        }
    }
    if flags & libc::MS_NOATIME != 0 {
        set |= attr::NOATIME;
        clear |= attr::ATIME_MASK;
    } else if flags & libc::MS_STRICTATIME != 0 {
        set |= attr::STRICTATIME;
        clear |= attr::ATIME_MASK;
    } else if flags & libc::MS_RELATIME != 0 {
        clear |= attr::ATIME_MASK;
    }
    (set, clear)
}

/// Prepare and populate the root, then switch into it. Returns once the process's root is the
/// container's root.
pub(crate) fn setup(
    ctx: &RootfsContext<'_>,
    no_pivot: bool,
    before_pivot: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    let linux = ctx.spec.linux().as_ref();
    // 1. Stop mount events from propagating back to the host.
    let requested = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(mounts::propagation_flag);
    let prop = requested.unwrap_or(libc::MS_SLAVE | libc::MS_REC);
    // A shared "/" would make pivot_root fail: slave now, the requested propagation after.
    let root_prop = if prop & libc::MS_SHARED != 0 {
        libc::MS_SLAVE | libc::MS_REC
    } else {
        prop
    };
    sys::mount(None, c"/", None, root_prop, None)
        .map_err(|e| RuntimeError::sys("set propagation of /", e))?;
    // pivot_root refuses a shared parent of the new root and an unbindable mount cannot be
    // bound: make the mount holding the rootfs private when (and only when) it is shared or
    // unbindable (rootfsPropagation "unbindable" just made it so). A slave parent stays a slave, so
    // that the rootfs bind below is one too and rootfsPropagation "rslave" (the default) keeps
    // receiving the host's mount events under the rootfs.
    if let Some(parent) = mount_point_of(ctx.rootfs).filter(|p| is_shared_or_unbindable(p)) {
        let p = cstr(&parent).map_err(|e| RuntimeError::io("mount point", &parent, e))?;
        sys::mount(None, &p, None, libc::MS_PRIVATE, None)
            .map_err(|e| RuntimeError::io("make the rootfs's parent mount private", &parent, e))?;
    }

    // 2. The rootfs must be a mount point of its own for pivot_root.
    let rootfs_c = cstr(ctx.rootfs).map_err(|e| RuntimeError::io("rootfs path", ctx.rootfs, e))?;
    sys::mount(
        Some(&rootfs_c),
        &rootfs_c,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .map_err(|e| RuntimeError::io("bind-mount rootfs onto itself", ctx.rootfs, e))?;
    let root = rustix::fs::open(
        ctx.rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RuntimeError::io("open rootfs", ctx.rootfs, e.into()))?;

    // 3. The spec's mounts, in order.
    for (i, m) in ctx.spec.mounts().iter().flatten().enumerate() {
        let field = || {
            format!(
                "mounts[{i}] ({} on {})",
                m.typ().as_deref().unwrap_or("bind"),
                m.destination().display()
            )
        };
        // Every failure names the mount it came from (e.g. a bind source that does not exist).
        mount_one(ctx, root.as_fd(), m).map_err(|e| match e {
            RuntimeError::Sys { op, source } => RuntimeError::Sys {
                op: format!("{}: {op}", field()),
                source,
            },
            RuntimeError::Io { op, path, source } => RuntimeError::Sys {
                op: format!("{}: {op} {}", field(), path.display()),
                source,
            },
            other => other,
        })?;
    }

    // 4. Devices and /dev symlinks.
    create_devices(ctx, root.as_fd())?;
    dev_symlinks(root.as_fd());

    before_pivot()?;

    // 5. Switch root.
    if no_pivot {
        move_root(ctx.rootfs)?;
    } else {
        pivot_root(ctx.rootfs)?;
    }
    if let Some(prop) = requested {
        sys::mount(None, c"/", None, prop, None)
            .map_err(|e| RuntimeError::sys("set rootfs propagation", e))?;
    }
    Ok(())
}

/// After the switch: masked paths, read-only paths, read-only root. Runs inside the new root.
pub(crate) fn finish(spec: &Spec) -> Result<()> {
    let root = rustix::fs::open(
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RuntimeError::io("open", "/", e.into()))?;
    let linux = spec.linux().as_ref();
    for p in linux
        .and_then(|l| l.readonly_paths().as_ref())
        .into_iter()
        .flatten()
    {
        readonly_path(root.as_fd(), Path::new(p))
            .map_err(|e| RuntimeError::io("make read-only", p, e))?;
    }
    for p in linux
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
    {
        mask_path(root.as_fd(), Path::new(p)).map_err(|e| RuntimeError::io("mask", p, e))?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        let fd = rustix::fs::open(
            "/",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| RuntimeError::io("open", "/", e.into()))?;
        sys::mount_setattr(fd.as_fd(), false, mounts::attr::RDONLY, 0)
            .map_err(|e| RuntimeError::sys("remount / read-only", e))?;
    }
    Ok(())
}

fn readonly_path(root: BorrowedFd<'_>, p: &Path) -> io::Result<()> {
    let fd = match open_in_root(root, p, OFlags::PATH) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    let path = cstr(&proc_fd_path(&fd))?;
    sys::mount(Some(&path), &path, None, libc::MS_BIND | libc::MS_REC, None)?;
    let fd = open_in_root(root, p, OFlags::PATH)?;
    sys::mount_setattr(fd.as_fd(), true, mounts::attr::RDONLY, 0)
}

fn mask_path(root: BorrowedFd<'_>, p: &Path) -> io::Result<()> {
    let fd = match open_in_root(root, p, OFlags::PATH) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    let target = cstr(&proc_fd_path(&fd))?;
    let st = rustix::fs::fstat(&fd)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory {
        sys::mount(
            Some(c"tmpfs"),
            &target,
            Some(c"tmpfs"),
            libc::MS_RDONLY,
            Some(c"mode=755,size=0"),
        )
    } else {
        sys::mount(Some(c"/dev/null"), &target, None, libc::MS_BIND, None)
    }
}

fn mount_one(ctx: &RootfsContext<'_>, root: BorrowedFd<'_>, m: &Mount) -> Result<()> {
    let opts = mounts::parse_options(m.options().as_deref().unwrap_or(&[]));
    let typ = m.typ().as_deref().unwrap_or("");
    let dest = m.destination();
    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroup(ctx, root, dest, &opts);
    }
    if opts.is_bind() || typ == "bind" {
        return mount_bind(ctx, root, m, &opts);
    }
    let target = mkdir_all_in_root(root, dest, 0o755)
        .map_err(|e| RuntimeError::sys("create mount point", e))?;
    let source = m
        .source()
        .as_ref()
        .map_or_else(|| typ.to_string(), |s| s.to_string_lossy().into_owned());
    let tp = cstr(&proc_fd_path(&target)).map_err(|e| RuntimeError::sys("target", e))?;
    let src = cstring(&source).map_err(|e| RuntimeError::sys("source", e))?;
    let fst = cstring(typ).map_err(|e| RuntimeError::sys("type", e))?;
    let data = (!opts.data.is_empty())
        .then(|| cstring(&opts.data))
        .transpose()
        .map_err(|e| RuntimeError::sys("data", e))?;
    let copy_from = if opts.tmpcopyup && typ == "tmpfs" {
        Some(
            open_in_root(root, dest, OFlags::RDONLY | OFlags::DIRECTORY)
                .map_err(|e| RuntimeError::sys("open for tmpcopyup", e))?,
        )
    } else {
        None
    };
    let flags = opts.flags & !(libc::MS_REMOUNT);
    match sys::mount(Some(&src), &tp, Some(&fst), flags, data.as_deref()) {
        Ok(()) => {}
        // sysfs cannot be mounted by a process that does not own the network namespace; bind the
        // host's instead, as runc does for rootless containers.
        Err(e) if typ == "sysfs" && e.raw_os_error() == Some(libc::EPERM) => {
            sys::mount(Some(c"/sys"), &tp, None, libc::MS_BIND | libc::MS_REC, None)
                .map_err(|e| RuntimeError::sys("bind /sys", e))?;
        }
        Err(e) => return Err(RuntimeError::sys("mount", e)),
    }
    if let Some(src_dir) = copy_from {
        let new =
            open_in_root(root, dest, OFlags::PATH).map_err(|e| RuntimeError::sys("reopen", e))?;
        copy_tree(&proc_fd_path(&src_dir), &proc_fd_path(&new))
            .map_err(|e| RuntimeError::sys("tmpcopyup", e))?;
    }
    after_mount(root, dest, &opts, false)
}

/// Propagation changes and recursive attributes that apply once a mount is in place.
fn after_mount(
    root: BorrowedFd<'_>,
    dest: &Path,
    opts: &MountOptions,
    remount_flags: bool,
) -> Result<()> {
    if remount_flags || !opts.propagation.is_empty() || opts.rec_set != 0 || opts.rec_clear != 0 {
        let fd = open_in_root(root, dest, OFlags::PATH)
            .map_err(|e| RuntimeError::sys("reopen mount", e))?;
        if remount_flags {
            let (set, clear) = ms_to_attr(opts.flags);
            if set != 0 || clear != 0 {
                sys::mount_setattr(fd.as_fd(), false, set, clear)
                    .map_err(|e| RuntimeError::sys("set bind mount flags", e))?;
            }
        }
        if opts.rec_set != 0 || opts.rec_clear != 0 {
            sys::mount_setattr(fd.as_fd(), true, opts.rec_set, opts.rec_clear)
                .map_err(|e| RuntimeError::sys("set recursive mount attributes", e))?;
        }
        let tp = cstr(&proc_fd_path(&fd)).map_err(|e| RuntimeError::sys("target", e))?;
        for p in &opts.propagation {
            sys::mount(None, &tp, None, *p, None)
                .map_err(|e| RuntimeError::sys("set propagation", e))?;
        }
    }
    Ok(())
}

fn mount_bind(
    ctx: &RootfsContext<'_>,
    root: BorrowedFd<'_>,
    m: &Mount,
    opts: &MountOptions,
) -> Result<()> {
    let source = m
        .source()
        .as_ref()
        .ok_or_else(|| RuntimeError::invalid("mounts[].source", "a bind mount needs a source"))?;
    let source = if source.is_absolute() {
        source.clone()
    } else {
        ctx.bundle.join(source)
    };
    let src_fd = rustix::fs::open(&source, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| RuntimeError::io("open bind source", &source, e.into()))?;
    let st = rustix::fs::fstat(&src_fd)
        .map_err(|e| RuntimeError::io("stat bind source", &source, e.into()))?;
    let is_dir = rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory;
    let target = if is_dir {
        mkdir_all_in_root(root, m.destination(), 0o755)
    } else {
        create_file_in_root(root, m.destination())
    }
    .map_err(|e| RuntimeError::sys("create mount point", e))?;
    let sp = cstr(&proc_fd_path(&src_fd)).map_err(|e| RuntimeError::sys("source", e))?;
    let tp = cstr(&proc_fd_path(&target)).map_err(|e| RuntimeError::sys("target", e))?;
    let flags = libc::MS_BIND | (opts.flags & libc::MS_REC);
    sys::mount(Some(&sp), &tp, None, flags, None)
        .map_err(|e| RuntimeError::sys("bind mount", e))?;
    after_mount(root, m.destination(), opts, true)
}

/// The OCI `cgroup` mount: on cgroup v1 a tmpfs with one directory per hierarchy, on v2 the
/// unified hierarchy. With a cgroup namespace the file systems are mounted fresh (the kernel shows
/// the namespace's root); without one, the container's own directories are bind-mounted.
fn mount_cgroup(
    ctx: &RootfsContext<'_>,
    root: BorrowedFd<'_>,
    dest: &Path,
    opts: &MountOptions,
) -> Result<()> {
    let hier = host_cgroup_mounts().map_err(|e| RuntimeError::sys("read mountinfo", e))?;
    let target = mkdir_all_in_root(root, dest, 0o755)
        .map_err(|e| RuntimeError::sys("create mount point", e))?;
    let flags =
        opts.flags & (libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RELATIME);
    let pure_v2 = hier.len() == 1
        && hier[0].fstype == "cgroup2"
        && hier[0].mount_point == Path::new("/sys/fs/cgroup");
    if pure_v2 {
        mount_hierarchy(ctx, root, dest, &hier[0], flags)?;
    } else {
        let tp = cstr(&proc_fd_path(&target)).map_err(|e| RuntimeError::sys("target", e))?;
        sys::mount(
            Some(c"tmpfs"),
            &tp,
            Some(c"tmpfs"),
            flags,
            Some(c"mode=755"),
        )
        .map_err(|e| RuntimeError::sys("mount cgroup tmpfs", e))?;
        for h in &hier {
            let Some(name) = h.mount_point.file_name() else {
                continue;
            };
            mount_hierarchy(ctx, root, &dest.join(name), h, flags)?;
        }
    }
    if opts.flags & libc::MS_RDONLY != 0 {
        let fd =
            open_in_root(root, dest, OFlags::PATH).map_err(|e| RuntimeError::sys("reopen", e))?;
        sys::mount_setattr(fd.as_fd(), true, mounts::attr::RDONLY, 0)
            .map_err(|e| RuntimeError::sys("make cgroup mounts read-only", e))?;
    }
    Ok(())
}

fn mount_hierarchy(
    ctx: &RootfsContext<'_>,
    root: BorrowedFd<'_>,
    dest: &Path,
    h: &HostCgroupMount,
    flags: libc::c_ulong,
) -> Result<()> {
    let target = mkdir_all_in_root(root, dest, 0o755)
        .map_err(|e| RuntimeError::sys("create cgroup mount point", e))?;
    let tp = cstr(&proc_fd_path(&target)).map_err(|e| RuntimeError::sys("target", e))?;
    if ctx.cgroupns {
        let fst = cstring(&h.fstype).map_err(|e| RuntimeError::sys("type", e))?;
        let data = cstring(&h.options).map_err(|e| RuntimeError::sys("data", e))?;
        let data = (!h.options.is_empty()).then_some(data.as_c_str());
        sys::mount(Some(&fst), &tp, Some(&fst), flags, data).map_err(|e| {
            RuntimeError::sys(format!("mount {} hierarchy", h.mount_point.display()), e)
        })?;
    } else {
        // The container's own directory in this hierarchy, or the hierarchy's root when the
        // manager made none there.
        let src = ctx
            .cgroup_paths
            .values()
            .find(|p| p.starts_with(&h.mount_point))
            .cloned()
            .unwrap_or_else(|| h.mount_point.clone());
        let sp = cstr(&src).map_err(|e| RuntimeError::sys("source", e))?;
        sys::mount(
            Some(&sp),
            &tp,
            None,
            libc::MS_BIND | libc::MS_REC | flags,
            None,
        )
        .map_err(|e| RuntimeError::sys(format!("bind cgroup {}", src.display()), e))?;
    }
    Ok(())
}

/// The mount point (from /proc/self/mountinfo) of the mount that holds `path`.
fn mount_point_of(path: &Path) -> Option<PathBuf> {
    let real = std::fs::canonicalize(path).ok()?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|mp| PathBuf::from(mp.replace("\\040", " ")))
        .filter(|mp| real.starts_with(mp))
        .max_by_key(|mp| mp.as_os_str().len())
}

/// Whether the mount at mount point `point` is shared or unbindable (a `shared:N` or
/// `unbindable` optional field in /proc/self/mountinfo; the last mount at a point is the visible
/// one, hence the reverse).
fn is_shared_or_unbindable(point: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return true;
    };
    info.lines()
        .rev()
        .filter_map(|l| l.split_once(" - ").map(|(pre, _)| pre))
        .map(|pre| pre.split(' ').collect::<Vec<_>>())
        .find(|f| {
            f.get(4)
                .map(|mp| PathBuf::from(mp.replace("\\040", " ")))
                .as_deref()
                == Some(point)
        })
        .is_none_or(|f| {
            f.iter()
                .skip(6)
                .any(|o| o.starts_with("shared:") || *o == "unbindable")
        })
}

/// Without a mount namespace nothing may be mounted (it would land on the host): only change
/// root into the rootfs.
pub(crate) fn chroot_only(rootfs: &Path) -> Result<()> {
    rustix::process::chroot(rootfs).map_err(|e| RuntimeError::io("chroot", rootfs, e.into()))?;
    rustix::process::chdir("/").map_err(|e| RuntimeError::sys("chdir /", e.into()))
}

struct HostCgroupMount {
    mount_point: PathBuf,
    fstype: String,
    /// Super options that select the hierarchy (`cpu`, `name=systemd`); empty for cgroup2.
    options: String,
}

fn host_cgroup_mounts() -> io::Result<Vec<HostCgroupMount>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        let (Some(mp), Some(fstype), Some(sopts)) = (pre.get(4), post.first(), post.get(2)) else {
            continue;
        };
        if *fstype != "cgroup" && *fstype != "cgroup2" {
            continue;
        }
        let options = if *fstype == "cgroup" {
            sopts
                .split(',')
                .filter(|o| !matches!(*o, "rw" | "ro" | "relatime" | "nosuid" | "nodev" | "noexec"))
                .collect::<Vec<_>>()
                .join(",")
        } else {
            String::new()
        };
        out.push(HostCgroupMount {
            mount_point: PathBuf::from(mp),
            fstype: (*fstype).to_string(),
            options,
        });
    }
    Ok(out)
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let ft = entry.file_type()?;
        let dst = to.join(entry.file_name());
        let meta = entry.metadata()?;
        if ft.is_dir() {
            std::fs::create_dir(&dst)?;
            copy_tree(&entry.path(), &dst)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &dst)?;
            continue;
        } else if ft.is_file() {
            std::fs::copy(entry.path(), &dst)?;
        } else {
            continue;
        }
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(meta.mode()))?;
        std::os::unix::fs::lchown(&dst, Some(meta.uid()), Some(meta.gid()))?;
    }
    Ok(())
}

/// runc's default device nodes, present in every container.
fn default_devices() -> Vec<(PathBuf, LinuxDeviceType, i64, i64)> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(p, ma, mi)| (PathBuf::from(p), LinuxDeviceType::C, ma, mi))
    .collect()
}

fn create_devices(ctx: &RootfsContext<'_>, root: BorrowedFd<'_>) -> Result<()> {
    let spec_devices: &[LinuxDevice] = ctx
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_deref())
        .unwrap_or(&[]);
    for (path, typ, major, minor) in default_devices() {
        if spec_devices.iter().any(|d| d.path() == &path) {
            continue;
        }
        make_device(ctx, root, &path, typ, major, minor, 0o666, 0, 0)
            .map_err(|e| RuntimeError::io("create device", &path, e))?;
    }
    for (i, d) in spec_devices.iter().enumerate() {
        make_device(
            ctx,
            root,
            d.path(),
            d.typ(),
            d.major(),
            d.minor(),
            d.file_mode().unwrap_or(0o666),
            d.uid().unwrap_or(0),
            d.gid().unwrap_or(0),
        )
        .map_err(|e| RuntimeError::Sys {
            op: format!("linux.devices[{i}] ({}): create", d.path().display()),
            source: e,
        })?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn make_device(
    ctx: &RootfsContext<'_>,
    root: BorrowedFd<'_>,
    path: &Path,
    typ: LinuxDeviceType,
    major: i64,
    minor: i64,
    mode: u32,
    uid: u32,
    gid: u32,
) -> io::Result<()> {
    let rel = paths::relative(path);
    let parent = rel.parent().unwrap_or(Path::new(""));
    let name = rel
        .file_name()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let dir = mkdir_all_in_root(root, parent, 0o755)?;
    if ctx.userns {
        // Device nodes cannot be created in a user namespace: bind the host's.
        let target = create_file_in_root(root, path)?;
        let src = cstr(path)?;
        let tp = cstr(&proc_fd_path(&target))?;
        return sys::mount(Some(&src), &tp, None, libc::MS_BIND, None);
    }
    let kind = match typ {
        LinuxDeviceType::C | LinuxDeviceType::U => rustix::fs::FileType::CharacterDevice,
        LinuxDeviceType::B => rustix::fs::FileType::BlockDevice,
        LinuxDeviceType::P => rustix::fs::FileType::Fifo,
        LinuxDeviceType::A => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
    };
    let dev = rustix::fs::makedev(major as u32, minor as u32);
    let _ = rustix::fs::unlinkat(&dir, name, rustix::fs::AtFlags::empty());
    rustix::fs::mknodat(&dir, name, kind, Mode::from_raw_mode(mode & 0o7777), dev)?;
    rustix::fs::chownat(
        &dir,
        name,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}

fn dev_symlinks(root: BorrowedFd<'_>) {
    let Ok(dev) = open_in_root(root, Path::new("/dev"), OFlags::PATH | OFlags::DIRECTORY) else {
        return;
    };
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        // An existing entry (from the image or a mount) wins, as with runc.
        let _ = rustix::fs::symlinkat(target, &dev, name);
    }
    // /dev/ptmx must be the devpts instance's multiplexer of this container.
    let is_dev = rustix::fs::statat(&dev, "ptmx", rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
        .map(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::CharacterDevice
        })
        .unwrap_or(false);
    if !is_dev {
        let _ = rustix::fs::unlinkat(&dev, "ptmx", rustix::fs::AtFlags::empty());
        let _ = rustix::fs::symlinkat("pts/ptmx", &dev, "ptmx");
    }
}

fn pivot_root(rootfs: &Path) -> Result<()> {
    let old = rustix::fs::open(
        "/",
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RuntimeError::io("open", "/", e.into()))?;
    let new = rustix::fs::open(
        rootfs,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RuntimeError::io("open", rootfs, e.into()))?;
    rustix::process::fchdir(&new).map_err(|e| RuntimeError::io("chdir", rootfs, e.into()))?;
    // pivot_root(".", ".") stacks the old root on top of the new one; no put_old directory is
    // needed inside the rootfs (see pivot_root(2), NOTES).
    rustix::process::pivot_root(".", ".")
        .map_err(|e| RuntimeError::io("pivot_root", rootfs, e.into()))?;
    rustix::process::fchdir(&old).map_err(|e| RuntimeError::sys("chdir to old root", e.into()))?;
    // Make the old root a slave so that unmounting it does not reach the host.
    sys::mount(None, c".", None, libc::MS_SLAVE | libc::MS_REC, None)
        .map_err(|e| RuntimeError::sys("make old root a slave mount", e))?;
    rustix::mount::unmount(".", rustix::mount::UnmountFlags::DETACH)
        .map_err(|e| RuntimeError::sys("detach old root", e.into()))?;
    rustix::process::chdir("/").map_err(|e| RuntimeError::sys("chdir /", e.into()))?;
    Ok(())
}

fn move_root(rootfs: &Path) -> Result<()> {
    rustix::process::chdir(rootfs).map_err(|e| RuntimeError::io("chdir", rootfs, e.into()))?;
    let rootfs_c = cstr(rootfs).map_err(|e| RuntimeError::io("rootfs path", rootfs, e))?;
    sys::mount(Some(&rootfs_c), c"/", None, libc::MS_MOVE, None)
        .map_err(|e| RuntimeError::io("move rootfs to /", rootfs, e))?;
    rustix::process::chroot(".").map_err(|e| RuntimeError::sys("chroot", e.into()))?;
    rustix::process::chdir("/").map_err(|e| RuntimeError::sys("chdir /", e.into()))?;
    Ok(())
}

/// Open the pty multiplexer of the container's devpts and return (master, slave path).
pub(crate) fn open_pty() -> Result<(OwnedFd, PathBuf)> {
    let master = rustix::pty::openpt(
        rustix::pty::OpenptFlags::RDWR
            | rustix::pty::OpenptFlags::NOCTTY
            | rustix::pty::OpenptFlags::CLOEXEC,
    )
    .map_err(|e| RuntimeError::io("open", "/dev/ptmx", e.into()))?;
    rustix::pty::unlockpt(&master).map_err(|e| RuntimeError::sys("unlockpt", e.into()))?;
    let name = rustix::pty::ptsname(&master, Vec::new())
        .map_err(|e| RuntimeError::sys("ptsname", e.into()))?;
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(name.as_bytes()));
    Ok((master, path))
}

/// Bind the pty slave over /dev/console so the container sees its terminal there.
pub(crate) fn bind_console(slave: &Path) -> Result<()> {
    let root = rustix::fs::open(
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RuntimeError::io("open", "/", e.into()))?;
    let target = create_file_in_root(root.as_fd(), Path::new("/dev/console"))
        .map_err(|e| RuntimeError::io("create", "/dev/console", e))?;
    let src = cstr(slave).map_err(|e| RuntimeError::io("pty path", slave, e))?;
    let tp = cstr(&proc_fd_path(&target))
        .map_err(|e| RuntimeError::io("console path", "/dev/console", e))?;
    sys::mount(Some(&src), &tp, None, libc::MS_BIND, None)
        .map_err(|e| RuntimeError::io("bind console", "/dev/console", e))
}
