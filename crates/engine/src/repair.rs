//! `berth system check`: the store's problems ([`Store::check`](crate::Store::check)) plus what
//! only the engine can see (runtime state and rootfs mounts nobody owns), each repaired the one
//! obvious way. A `berth` or monitor killed at any point leaves only problems on this list.
//!
//! Something being set up or torn down right now is not a problem: a runtime state directory
//! or mount whose container's monitor lives (by its recorded pid and start time) is skipped.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::check::{Problem, monitor_recorded_alive};
use crate::containers::Container;
use crate::engine::{Engine, is_mountpoint};
use crate::error::Result;
use crate::filter::ContainerFilter;
use crate::id::{ContainerId, Timestamp, is_full_hex_id};
use crate::lifecycle::cleanup;
use crate::state::Transition;
use crate::volumes::NewVolume;

/// The environment variable naming a crash point for tests.
pub const CRASH_AT_ENV: &str = "BERTH_TEST_CRASH_AT";

/// A crash point for the crash tests: when `BERTH_TEST_CRASH_AT` names `point`, the process
/// SIGKILLs itself here, as a user's `kill -9` at that moment would. Points: `create-after-record`,
/// `create-after-prepare`, `rm-after-kill`, `rm-after-cleanup`, `rm-after-record`,
/// `network-connect-after-record`. Without the
/// variable this is one environment lookup.
pub(crate) fn crash_point(point: &str) {
    if std::env::var_os(CRASH_AT_ENV).is_some_and(|v| v == point) {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
}

/// One problem found, and what was done about it.
#[derive(Debug)]
pub struct Finding {
    /// The problem.
    pub problem: Problem,
    /// `Ok(what was done)`, `Err(why it could not be repaired)`; `None` when not asked to
    /// repair or nothing is to be done (informational problems).
    pub repair: Option<std::result::Result<String, String>>,
}

/// `<run root>/operations.lock`: `create`, `run` and `rm` hold it shared while they build or
/// tear down a container; `system check` holds it exclusively, so it never mistakes a half-made
/// container for a crash's leftovers. A killed process's lock goes with it.
const OPERATIONS_LOCK: &str = "operations.lock";

impl Engine {
    /// Holds the operations lock shared (an operation in progress) until dropped.
    pub(crate) fn operation(&self) -> Result<fs::File> {
        self.operations_lock(rustix::fs::FlockOperation::LockShared)
    }

    fn operations_lock(&self, how: rustix::fs::FlockOperation) -> Result<fs::File> {
        let path = self.paths.run_root.join(OPERATIONS_LOCK);
        fs::create_dir_all(&self.paths.run_root).map_err(crate::engine::io_err(
            "create directory",
            &self.paths.run_root,
        ))?;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(crate::engine::io_err("open", &path))?;
        loop {
            match rustix::fs::flock(&file, how) {
                Ok(()) => return Ok(file),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(crate::engine::io_err("lock", &path)(e.into())),
            }
        }
    }

    /// Everything inconsistent, repaired when `repair` is set. Waits for `create`, `run` and
    /// `rm` in progress to finish, and holds new ones off until it is done.
    ///
    /// Errors: the store cannot be read.
    pub fn check(&self, repair: bool) -> Result<Vec<Finding>> {
        let _exclusive = self.operations_lock(rustix::fs::FlockOperation::LockExclusive)?;
        let mut problems = self.store.check()?;
        let containers: HashMap<String, Container> = self
            .store
            .read(|tx| tx.list_containers(&ContainerFilter::default()))?
            .into_iter()
            .map(|c| (c.id.to_string(), c))
            .collect();
        problems.extend(self.runtime_problems(&containers));
        problems.extend(containers.values().filter_map(frozen_by_dead_commit));
        problems.extend(self.network_problems(&containers));
        let mut out = Vec::new();
        for problem in problems {
            let repair = repair
                .then(|| self.repair(&problem, &containers))
                .flatten()
                .map(|r| r.map_err(|e| runtime::error::chain(&e)));
            out.push(Finding { problem, repair });
        }
        Ok(out)
    }

    /// Runtime state directories and rootfs mounts of containers that have no record or are
    /// not running, and whose monitor is not alive. Only what names a bundle under this root
    /// counts: another root sharing the run root is none of this check's business.
    fn runtime_problems(&self, containers: &HashMap<String, Container>) -> Vec<Problem> {
        let ours = |id: &str| {
            self.paths
                .containers_dir()
                .join(id)
                .to_string_lossy()
                .into_owned()
        };
        let owned = |id: &str| {
            let run_dir = self.paths.run_containers_dir().join(id);
            containers
                .get(id)
                .is_some_and(|c| c.state.status.is_active())
                || monitor_recorded_alive(&run_dir)
        };
        let mut out = Vec::new();
        let mut roots = vec![crate::engine::runtime_root(&self.paths)];
        roots.extend(subdirs(&self.paths.run_root.join("runtimes")));
        for root in roots {
            for dir in subdirs(&root) {
                let id = file_name(&dir);
                if is_full_hex_id(&id) && !owned(&id) && names_bundle(&dir, &ours(&id)) {
                    out.push(Problem::OrphanRuntimeState { path: dir });
                }
            }
        }
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for dir in subdirs(&self.paths.run_containers_dir()) {
            let id = file_name(&dir);
            let rootfs = dir.join("rootfs");
            if is_full_hex_id(&id)
                && !owned(&id)
                && mounted_from(
                    &mountinfo,
                    &rootfs,
                    &format!("upperdir={}/upper", ours(&id)),
                )
            {
                out.push(Problem::OrphanMount { path: rootfs });
            }
        }
        out
    }

    /// Repairs one problem; `None` when there is nothing to do.
    fn repair(
        &self,
        problem: &Problem,
        containers: &HashMap<String, Container>,
    ) -> Option<Result<String>> {
        let record = |id: &ContainerId| containers.get(id.as_str());
        Some(match problem {
            Problem::Database { .. } | Problem::ImageMissing { .. } => return None,
            Problem::ProcessGone { id, .. } | Problem::MonitorGone { id, .. } => {
                let c = record(id)?;
                self.reap(c)
                    .map(|()| "killed what was left, recorded as exited".to_owned())
            }
            Problem::BundleMissing { id, .. } => {
                let c = record(id)?;
                self.drop_record(c)
                    .map(|()| "removed the record".to_owned())
            }
            Problem::OrphanBundle { path } => self
                .remove_orphan(&file_name(path))
                .map(|()| "removed".to_owned()),
            Problem::FrozenByCommit { id } => {
                let c = record(id)?;
                crate::oci::for_container(&self.paths, c)
                    .resume(id.as_str())
                    .map(|()| {
                        let _ = fs::remove_file(c.run_dir.join(crate::check::COMMIT_FREEZE_FILE));
                        "thawed".to_owned()
                    })
            }
            Problem::OrphanRuntimeState { path } => {
                let id = file_name(path);
                let runtime = runtime_of(&self.paths, path);
                let oci = crate::oci::for_name(&self.paths, &runtime);
                oci.delete(&id, true)
                    .or_else(|e| {
                        // A runtime that cannot delete its own state (binary gone): remove it.
                        fs::remove_dir_all(path).map_err(|_| e)
                    })
                    .map(|()| "deleted (killed, cgroup removed)".to_owned())
            }
            Problem::OrphanMount { path } => image::unmount(path, true)
                .map_err(|source| crate::EngineError::Snapshot {
                    action: format!("unmount {}", path.display()),
                    source: Box::new(source),
                })
                .map(|()| {
                    if let Some(run_dir) = path.parent() {
                        let _ = fs::remove_dir_all(run_dir);
                    }
                    "unmounted".to_owned()
                }),
            Problem::VolumeDirMissing { path, .. } => fs::create_dir_all(path)
                .map_err(crate::engine::io_err("create directory", path))
                .map(|()| "recreated empty".to_owned()),
            Problem::OrphanVolumeDir { path } => self.adopt_volume(path),
            Problem::StrayLink { .. }
            | Problem::EndpointUnplumbed { .. }
            | Problem::FirewallStale { .. } => self.repair_network(problem),
        })
    }

    /// Kills and cleans up a container whose monitor is gone and records its exit (or removes
    /// it, for `--rm`).
    pub(crate) fn reap(&self, c: &Container) -> Result<()> {
        // Read before cleanup removes the cgroup.
        let oom_killed = crate::oom::oom_killed(&self.paths, c);
        cleanup(&self.paths, c);
        let now = self.store.write(|tx| {
            let now = tx.container_by_id(&c.id)?;
            if !now.state.status.is_active() {
                return Ok(now);
            }
            tx.transition(
                &c.id,
                Transition::Exited {
                    exit_code: 137,
                    oom_killed,
                    at: Timestamp::now(),
                },
            )
        })?;
        if now.host_config.auto_remove {
            // Called by `check` under the exclusive operations lock and by `ps` under none.
            self.remove_held(now.id.as_str(), true)?;
        }
        Ok(())
    }

    /// Removes a record whose bundle is gone.
    fn drop_record(&self, c: &Container) -> Result<()> {
        if c.state.status.is_active() {
            self.reap(c)?;
        }
        cleanup(&self.paths, c);
        match self.store.write(|tx| tx.remove_container(&c.id)) {
            Ok(_) | Err(crate::EngineError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        // Its endpoints went with the record: the default network may need no rules now.
        crate::network_attach::released(&self.paths, c);
        Ok(())
    }

    /// Removes everything of a container id that has no record: its runtime state, rootfs
    /// mount, run directory and bundle.
    fn remove_orphan(&self, id: &str) -> Result<()> {
        let run_dir = self.paths.run_containers_dir().join(id);
        let rootfs = run_dir.join("rootfs");
        if is_mountpoint(&rootfs) {
            let _ = image::unmount(&rootfs, true);
        }
        let _ = fs::remove_dir_all(&run_dir);
        let oci = crate::oci::for_name(&self.paths, "");
        if oci.exists(id) {
            oci.delete(id, true)?;
        }
        self.images
            .snapshots()
            .remove(id)
            .map_err(|source| crate::EngineError::Snapshot {
                action: format!("remove directory of container {id}"),
                source: Box::new(source),
            })
    }

    /// Records a volume directory that has no record (a `volume create` killed before it
    /// committed, or a `volume rm` killed after): its data is kept, never deleted by a check.
    fn adopt_volume(&self, path: &Path) -> Result<String> {
        let name = file_name(path);
        let v = self.store.write(|tx| {
            tx.create_volume(&NewVolume {
                name: Some(name.clone()),
                ..NewVolume::default()
            })
        })?;
        fs::create_dir_all(&v.mountpoint)
            .map_err(crate::engine::io_err("create directory", &v.mountpoint))?;
        Ok("recorded as a volume (data kept)".to_owned())
    }
}

/// The runtime binary whose state root holds `state_dir`: `<run root>/runtimes/<name>/<id>`
/// names an external runtime by file name (resolved in `PATH`); anything else is the
/// in-process runtime.
fn runtime_of(paths: &crate::store::Paths, state_dir: &Path) -> String {
    let runtimes = paths.run_root.join("runtimes");
    match state_dir.parent() {
        Some(root) if root.parent() == Some(runtimes.as_path()) => {
            let name = file_name(root);
            crate::oci::resolve_binary(&name).unwrap_or(name)
        }
        _ => String::new(),
    }
}

/// Whether the runtime state directory `dir` (runc's and berth's `state.json`, crun's
/// `status`) names the bundle `bundle`.
fn names_bundle(dir: &Path, bundle: &str) -> bool {
    ["state.json", "status"].iter().any(|f| {
        // The bundle path (`<root>/containers/<64 hex>`) needs no JSON escaping.
        fs::read_to_string(dir.join(f)).is_ok_and(|t| t.contains(bundle))
    })
}

/// Whether `mountinfo` has a mount at `point` whose options contain `option`.
fn mounted_from(mountinfo: &str, point: &Path, option: &str) -> bool {
    let point = point.to_string_lossy();
    mountinfo.lines().any(|l| {
        let mut f = l.split(' ');
        f.nth(4) == Some(point.as_ref()) && l.contains(option)
    })
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

impl Problem {
    /// One line saying what is wrong, for `system check`.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Problem::Database { detail } => format!("state database: {detail}"),
            Problem::BundleMissing { id, path } => format!(
                "container {}: bundle directory {} is missing",
                id.short(),
                path.display()
            ),
            Problem::OrphanBundle { path } => {
                format!("container directory {} has no record", path.display())
            }
            Problem::ProcessGone { id, status, .. } => format!(
                "container {}: recorded as {status} but its process and monitor are gone",
                id.short()
            ),
            Problem::MonitorGone { id, pid } => format!(
                "container {}: its monitor is gone while its process {pid} runs",
                id.short()
            ),
            Problem::FrozenByCommit { id } => format!(
                "container {}: frozen by a commit that did not finish",
                id.short()
            ),
            Problem::OrphanRuntimeState { path } => format!(
                "runtime state {} belongs to no running container",
                path.display()
            ),
            Problem::OrphanMount { path } => format!(
                "rootfs {} is mounted for no running container",
                path.display()
            ),
            Problem::ImageMissing { id, digest } => format!(
                "container {}: its image {digest} is gone (informational)",
                id.short()
            ),
            Problem::VolumeDirMissing { name, path } => {
                format!("volume {name}: directory {} is missing", path.display())
            }
            Problem::OrphanVolumeDir { path } => {
                format!("volume directory {} has no record", path.display())
            }
            Problem::StrayLink { name } => {
                format!("network interface {name} belongs to no running container or network")
            }
            Problem::EndpointUnplumbed { id, network } => format!(
                "container {}: connected to network {network} but has no interface on it",
                id.short()
            ),
            Problem::FirewallStale { found, wanted } => format!(
                "firewall table inet berth holds {found} rules where the records want {wanted}"
            ),
        }
    }
}

/// A running container whose commit-freeze record names a process that is gone.
fn frozen_by_dead_commit(c: &Container) -> Option<Problem> {
    use crate::check::{COMMIT_FREEZE_FILE, recorded_process_alive};
    (c.state.status == crate::state::Status::Running
        && c.run_dir.join(COMMIT_FREEZE_FILE).exists()
        && !recorded_process_alive(&c.run_dir, COMMIT_FREEZE_FILE))
    .then(|| Problem::FrozenByCommit { id: c.id.clone() })
}
