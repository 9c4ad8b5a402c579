//! cgroup management for berth: one [`CgroupManager`] interface with cgroup v1, v2 and hybrid back
//! ends. Knows nothing of containers beyond a cgroup path and an OCI `LinuxResources` block.
//!
//! Entry points: [`Hierarchy::detect`] says which layout a cgroup root holds; [`new_manager`]
//! returns the manager for one container's cgroup, placed by runc's cgroupfs rules for
//! `linux.cgroupsPath` (see [`ManagerOptions`]). Values are converted by the pure functions in
//! [`convert`]; usage comes back as [`Stats`], serialised like runc's `events --stats`.
//!
//! On a hybrid host every controller a v1 hierarchy holds is managed there; controllers only the
//! cgroup2 mount at `<root>/unified` holds (hugetlb, on the development machine) are managed in a
//! directory below it. On v2 device rules are enforced by a hand-assembled eBPF program.
#![warn(missing_docs)]

mod bpf;
pub mod convert;
mod detect;
mod dirs;
mod error;
mod files;
mod path;
mod stats;
#[allow(unsafe_code)]
mod sys;
mod v1;
mod v2;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use detect::Hierarchy;
pub use error::CgroupError;
pub use stats::{
    Blkio, BlkioEntry, Cpu, CpuUsage, Hugetlb, Memory, MemoryEntry, MemoryEvents, Pids, Stats,
    Throttling,
};

/// The cgroup root the kernel conventionally mounts.
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

/// Where and how to manage one container's cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagerOptions {
    /// The cgroup root (normally [`DEFAULT_ROOT`]); tests point it elsewhere.
    pub root: PathBuf,
    /// OCI `linux.cgroupsPath`. Absolute: below each hierarchy's root. Relative: below the
    /// calling process's own cgroup (on v2 its parent, as runc places it). `None` or empty: the
    /// container id, relative.
    pub cgroups_path: Option<String>,
    /// The container id (the default cgroup name).
    pub container_id: String,
    /// Use the systemd driver (not supported; [`new_manager`] refuses it).
    pub systemd: bool,
    /// The `/proc/self/cgroup` text of the process a relative path is placed against; `None`
    /// reads the calling process's own now. A runtime records its own at create time so that
    /// later verbs, run from any cgroup, find the same directories.
    pub caller_cgroups: Option<String>,
}

impl ManagerOptions {
    /// Options for `cgroups_path` under the default root with the cgroupfs driver.
    #[must_use]
    pub fn new(container_id: impl Into<String>, cgroups_path: Option<String>) -> Self {
        Self {
            root: PathBuf::from(DEFAULT_ROOT),
            cgroups_path,
            container_id: container_id.into(),
            systemd: false,
            caller_cgroups: None,
        }
    }
}

/// One container's cgroup (a directory per v1 hierarchy, or one unified directory).
///
/// Nothing is created until [`apply`](CgroupManager::apply) or [`set`](CgroupManager::set).
/// Every method may be called from another process than the one that created the cgroup (as
/// `berth-runtime update` / `delete` do): state lives in the cgroup filesystem.
pub trait CgroupManager: Send + Sync + std::fmt::Debug {
    /// The layout this manager drives.
    fn hierarchy(&self) -> Hierarchy;

    /// Creates the cgroup directories (every available controller) and moves `pid` in. A pid of
    /// 0 or below only creates the directories.
    fn apply(&self, pid: i32) -> Result<(), CgroupError>;

    /// Creates the cgroup directories and opens what lets a process that is being forked put
    /// *itself* into the cgroup, which is much cheaper than [`apply`](CgroupManager::apply):
    /// writing another process's pid to `cgroup.procs` takes the kernel's global threadgroup
    /// lock for writing, and taking it waits for an RCU grace period (about 10 ms on the
    /// development machine), while a single-threaded process writing `0` to a v1 `tasks` file,
    /// or a child that `clone3(CLONE_INTO_CGROUP)` starts inside a cgroup2 directory, takes no
    /// such lock. Limits are still applied with [`set`](CgroupManager::set).
    fn self_join(&self) -> Result<SelfJoin, CgroupError>;

    /// Moves `pid`, a process `exec` starts in the live container whose init is `init_pid`,
    /// into the container's cgroup. On v2 a container that manages its own sub-cgroups
    /// (systemd, docker-in-docker: init moved into a child and controllers enabled for children)
    /// admits no task at its top (`EBUSY`); the process then joins init's cgroup, as runc does.
    fn apply_exec(&self, pid: i32, init_pid: i32) -> Result<(), CgroupError> {
        let _ = init_pid;
        self.apply(pid)
    }

    /// Applies resource limits, at create time and on `update`. Creates missing directories.
    fn set(&self, resources: &oci_spec::runtime::LinuxResources) -> Result<(), CgroupError>;

    /// Every process in the cgroup and its descendants, sorted.
    fn pids(&self) -> Result<Vec<i32>, CgroupError>;

    /// Freezes every task and waits until the kernel reports the cgroup frozen.
    fn freeze(&self) -> Result<(), CgroupError>;

    /// Thaws the cgroup and waits until the kernel reports it thawed.
    fn thaw(&self) -> Result<(), CgroupError>;

    /// Whether the cgroup is frozen.
    fn is_frozen(&self) -> Result<bool, CgroupError>;

    /// Sends `signal` to every task: freeze, signal, thaw, so that no task forks past the
    /// signal. On v2 `SIGKILL` uses `cgroup.kill` where the kernel has it.
    fn kill_all(&self, signal: i32) -> Result<(), CgroupError>;

    /// Usage figures.
    fn stats(&self) -> Result<Stats, CgroupError>;

    /// How many tasks the kernel OOM killer has killed in this cgroup.
    fn oom_kill_count(&self) -> Result<u64, CgroupError>;

    /// Removes every directory the cgroup has (and ancestors this manager created, if empty),
    /// children first, retrying for about a second while tasks leave. Does not kill tasks: call
    /// [`kill_all`](CgroupManager::kill_all) first. Removing a missing cgroup succeeds.
    fn destroy(&self) -> Result<(), CgroupError>;

    /// Controller -> directory; on v2 (and for the unified part of a hybrid) the key is `""`.
    fn paths(&self) -> BTreeMap<String, PathBuf>;
}

/// What a forked child needs to enter a cgroup by itself (see [`CgroupManager::self_join`]).
#[derive(Debug, Default)]
pub struct SelfJoin {
    /// The cgroup2 directory (pure v2, or the unified part of a hybrid layout), for the fork
    /// itself: `clone3` with `CLONE_INTO_CGROUP` and this descriptor.
    pub clone_into: Option<std::os::fd::OwnedFd>,
    /// v1 `tasks` files, open for writing: [`SelfJoin::join_v1`] in the child.
    tasks: Vec<(PathBuf, std::os::fd::OwnedFd)>,
}

impl SelfJoin {
    /// Moves the calling process into every v1 hierarchy by writing `0` (itself) to each
    /// `tasks` file. Only for a single-threaded process: `tasks` moves one thread.
    ///
    /// Errors: the kernel refused a move (the file is named).
    pub fn join_v1(&self) -> Result<(), CgroupError> {
        for (path, fd) in &self.tasks {
            rustix::io::write(fd, b"0").map_err(|e| CgroupError::Write {
                path: path.clone(),
                value: "0".into(),
                source: e.into(),
            })?;
        }
        Ok(())
    }

    fn open(
        dir: Option<&std::path::Path>,
        tasks: &[&std::path::Path],
    ) -> Result<Self, CgroupError> {
        use rustix::fs::{Mode, OFlags};
        let open = |path: &std::path::Path, flags: OFlags| {
            rustix::fs::open(path, flags | OFlags::CLOEXEC, Mode::empty()).map_err(|e| {
                CgroupError::Open {
                    path: path.to_owned(),
                    source: e.into(),
                }
            })
        };
        Ok(Self {
            clone_into: dir
                .map(|d| open(d, OFlags::RDONLY | OFlags::DIRECTORY))
                .transpose()?,
            tasks: tasks
                .iter()
                .map(|d| {
                    let path = d.join("tasks");
                    open(&path, OFlags::WRONLY).map(|fd| (path, fd))
                })
                .collect::<Result<_, _>>()?,
        })
    }
}

/// The manager for the cgroup `opts` names, for the layout found at `opts.root`.
pub fn new_manager(opts: &ManagerOptions) -> Result<Box<dyn CgroupManager>, CgroupError> {
    if opts.systemd {
        return Err(CgroupError::SystemdUnsupported);
    }
    let cg_path = path::CgroupPath::new(opts.cgroups_path.as_deref(), &opts.container_id)?;
    let hierarchy = Hierarchy::detect(&opts.root)?;
    tracing::debug!(root = %opts.root.display(), ?hierarchy, ?cg_path, "new cgroup manager");
    let own = match &opts.caller_cgroups {
        Some(text) => path::parse_proc_cgroup(text),
        None => path::own_cgroups()?,
    };
    Ok(match hierarchy {
        Hierarchy::V2 => Box::new(v2::V2Manager::new(&opts.root, &cg_path, &own)),
        Hierarchy::V1 | Hierarchy::Hybrid => Box::new(v1::V1Manager::new(
            &opts.root,
            &cg_path,
            &own,
            hierarchy == Hierarchy::Hybrid,
        )?),
    })
}

/// The manager of the cgroup a process is in, given that process's `/proc/<pid>/cgroup` text
/// (`proc_cgroup`): for reading usage, listing pids or freezing a container whose cgroup some
/// other runtime placed. Nothing is created.
pub fn process_manager(
    root: &std::path::Path,
    proc_cgroup: &str,
) -> Result<Box<dyn CgroupManager>, CgroupError> {
    let own = path::parse_proc_cgroup(proc_cgroup);
    let hierarchy = Hierarchy::detect(root)?;
    let cg_path = path::CgroupPath::Own;
    Ok(match hierarchy {
        Hierarchy::V2 => Box::new(v2::V2Manager::new(root, &cg_path, &own)),
        Hierarchy::V1 | Hierarchy::Hybrid => Box::new(v1::V1Manager::new(
            root,
            &cg_path,
            &own,
            hierarchy == Hierarchy::Hybrid,
        )?),
    })
}

/// The calling process's `/proc/self/cgroup` text, to record as
/// [`ManagerOptions::caller_cgroups`].
pub fn caller_cgroups() -> Result<String, CgroupError> {
    let p = std::path::Path::new("/proc/self/cgroup");
    std::fs::read_to_string(p).map_err(|e| CgroupError::read(p, e))
}

/// How many device-filter BPF programs are attached directly to the cgroup v2 directory `dir`
/// (diagnostics: after any number of `set` calls with device rules this is 1).
pub fn attached_device_programs(dir: &std::path::Path) -> Result<usize, CgroupError> {
    v2::devices::attached_count(dir)
}
