//! The cgroup v1 back end (also the hybrid one): a directory per v1 hierarchy, plus on hybrid
//! hosts a directory in the cgroup2 mount at `<root>/unified` for controllers only it holds.

mod set;
mod stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::detect::{self, V1Mount};
use crate::dirs;
use crate::error::CgroupError;
use crate::files;
use crate::path::CgroupPath;
use crate::v2;
use crate::{CgroupManager, Hierarchy, Stats};

/// How long freeze and thaw wait for `freezer.state` to settle.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// One v1 hierarchy's directory for this cgroup.
#[derive(Debug, Clone)]
struct V1Dir {
    controllers: Vec<String>,
    mount: PathBuf,
    dir: PathBuf,
}

/// The cgroup2 part of a hybrid layout.
#[derive(Debug, Clone)]
struct UnifiedDir {
    mount: PathBuf,
    dir: PathBuf,
    /// Controllers the cgroup2 mount offers that no v1 hierarchy holds.
    only_here: Vec<String>,
}

/// A cgroup on a v1 or hybrid host.
#[derive(Debug)]
pub(crate) struct V1Manager {
    hierarchies: Vec<V1Dir>,
    unified: Option<UnifiedDir>,
    created: Mutex<Vec<PathBuf>>,
}

impl V1Manager {
    pub(crate) fn new(
        root: &Path,
        path: &CgroupPath,
        own: &BTreeMap<String, String>,
        hybrid: bool,
    ) -> Result<Self, CgroupError> {
        let mounts = detect::v1_mounts(root)?;
        Ok(Self::from_mounts(root, &mounts, path, own, hybrid))
    }

    fn from_mounts(
        root: &Path,
        mounts: &[V1Mount],
        path: &CgroupPath,
        own: &BTreeMap<String, String>,
        hybrid: bool,
    ) -> Self {
        let hierarchies: Vec<V1Dir> = mounts
            .iter()
            .map(|m| {
                let own = m
                    .controllers
                    .iter()
                    .find_map(|c| own.get(c))
                    .map_or("/", String::as_str);
                V1Dir {
                    controllers: m.controllers.clone(),
                    mount: m.mount_point.clone(),
                    dir: path.place(&m.mount_point, &m.mount_root, own),
                }
            })
            .collect();
        let unified = hybrid.then(|| {
            let mount = root.join("unified");
            let offered = files::read(&mount, "cgroup.controllers").unwrap_or_default();
            let only_here = offered
                .split_whitespace()
                .filter(|c| {
                    !hierarchies
                        .iter()
                        .any(|h| h.controllers.iter().any(|hc| hc == c))
                })
                .map(str::to_owned)
                .collect();
            let own = own.get("").map_or("/", String::as_str);
            UnifiedDir {
                dir: path.place(&mount, "/", own),
                mount,
                only_here,
            }
        });
        Self {
            hierarchies,
            unified,
            created: Mutex::new(Vec::new()),
        }
    }

    /// The directory of `controller`, if a hierarchy holds it.
    fn dir(&self, controller: &str) -> Option<&Path> {
        self.hierarchies
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
            .map(|h| h.dir.as_path())
    }

    /// The unified directory, when it is where `controller` lives.
    fn unified_for(&self, controller: &str) -> Option<&UnifiedDir> {
        self.unified
            .as_ref()
            .filter(|u| u.only_here.iter().any(|c| c == controller))
    }

    /// Creates every directory; a new cpuset directory gets its parent's cpus and mems (the
    /// kernel leaves them empty, and an empty cpuset cannot take tasks).
    fn ensure(&self) -> Result<(), CgroupError> {
        let mut made = Vec::new();
        let res = (|| {
            for h in &self.hierarchies {
                let is_cpuset = h.controllers.iter().any(|c| c == "cpuset");
                made.extend(dirs::create(&h.mount, &h.dir, |d| {
                    if is_cpuset {
                        copy_cpuset_from_parent(d)
                    } else {
                        Ok(())
                    }
                })?);
            }
            if let Some(u) = &self.unified {
                made.extend(dirs::create(&u.mount, &u.dir, |_| Ok(()))?);
            }
            Ok(())
        })();
        if let Ok(mut c) = self.created.lock() {
            c.extend(made);
        }
        res
    }

    /// The directory whose `cgroup.procs` best lists the cgroup's tasks.
    fn task_dir(&self) -> Option<&Path> {
        ["freezer", "pids", "memory", "cpu", "devices"]
            .iter()
            .find_map(|c| self.dir(c))
            .or_else(|| self.hierarchies.first().map(|h| h.dir.as_path()))
    }

    fn freezer(&self) -> Result<&Path, CgroupError> {
        self.dir("freezer")
            .ok_or_else(|| CgroupError::unsupported("freezer controller"))
    }

    fn unique_dirs(&self) -> Vec<&Path> {
        let mut v: Vec<&Path> = self.hierarchies.iter().map(|h| h.dir.as_path()).collect();
        if let Some(u) = &self.unified {
            v.push(&u.dir);
        }
        v.sort();
        v.dedup();
        v
    }
}

fn copy_cpuset_from_parent(dir: &Path) -> Result<(), CgroupError> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if files::read(dir, file)?.trim().is_empty() {
            let value = files::read(parent, file)?;
            files::write(dir, file, value.trim())?;
        }
    }
    Ok(())
}

/// Writes `freezer.state` until it reads back as wanted (a FREEZING cgroup may need the write
/// repeated, as runc does), within [`FREEZE_TIMEOUT`].
fn set_freezer_state(dir: &Path, frozen: bool) -> Result<(), CgroupError> {
    let want = if frozen { "FROZEN" } else { "THAWED" };
    let reached = dirs::wait_for(FREEZE_TIMEOUT, || {
        files::write(dir, "freezer.state", want)?;
        Ok(files::read(dir, "freezer.state")?.trim() == want)
    })?;
    if reached {
        return Ok(());
    }
    if frozen {
        // Do not leave the cgroup half frozen.
        let _ = files::write(dir, "freezer.state", "THAWED");
    }
    Err(CgroupError::FreezeTimeout {
        path: dir.to_owned(),
        state: want,
        waited: FREEZE_TIMEOUT,
    })
}

impl CgroupManager for V1Manager {
    fn hierarchy(&self) -> Hierarchy {
        if self.unified.is_some() {
            Hierarchy::Hybrid
        } else {
            Hierarchy::V1
        }
    }

    fn apply(&self, pid: i32) -> Result<(), CgroupError> {
        self.ensure()?;
        if pid > 0 {
            let pid = pid.to_string();
            for d in self.unique_dirs() {
                files::write(d, "cgroup.procs", &pid)?;
            }
        }
        Ok(())
    }

    fn self_join(&self) -> Result<crate::SelfJoin, CgroupError> {
        self.ensure()?;
        let mut v1: Vec<&Path> = self.hierarchies.iter().map(|h| h.dir.as_path()).collect();
        v1.sort();
        v1.dedup();
        crate::SelfJoin::open(self.unified.as_ref().map(|u| u.dir.as_path()), &v1)
    }

    fn set(&self, r: &oci_spec::runtime::LinuxResources) -> Result<(), CgroupError> {
        self.ensure()?;
        set::all(self, r)
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        match self.task_dir() {
            Some(d) => files::pids_recursive(d),
            None => Ok(Vec::new()),
        }
    }

    fn freeze(&self) -> Result<(), CgroupError> {
        set_freezer_state(self.freezer()?, true)
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        set_freezer_state(self.freezer()?, false)
    }

    fn is_frozen(&self) -> Result<bool, CgroupError> {
        Ok(files::read(self.freezer()?, "freezer.state")?.trim() == "FROZEN")
    }

    fn kill_all(&self, signal: i32) -> Result<(), CgroupError> {
        // Freezing (and thawing) costs milliseconds; an empty cgroup has no task that could
        // fork past the signal, and nothing else enters it but by an explicit move.
        if self.pids()?.is_empty() {
            return Ok(());
        }
        let freezer = self.dir("freezer").filter(|d| d.exists());
        let froze = match freezer {
            Some(d) if files::read(d, "freezer.state")?.trim() == "THAWED" => {
                set_freezer_state(d, true).is_ok()
            }
            _ => false,
        };
        let res = self.pids().and_then(|p| v2::signal_all(&p, signal));
        if let (true, Some(d)) = (froze, freezer)
            && let Err(e) = set_freezer_state(d, false)
        {
            if res.is_ok() {
                return Err(e);
            }
            tracing::warn!(error = %e, "thaw after kill failed");
        }
        res
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        let mut s = stats::read(self)?;
        if let Some(u) = self.unified_for("hugetlb") {
            s.hugetlb = v2::stats::hugetlb(&u.dir)?;
        }
        Ok(s)
    }

    fn oom_kill_count(&self) -> Result<u64, CgroupError> {
        let dir = self
            .dir("memory")
            .ok_or_else(|| CgroupError::unsupported("memory controller"))?;
        let oc = files::read_flat_keyed(dir, "memory.oom_control")?;
        Ok(oc.get("oom_kill").copied().unwrap_or(0))
    }

    fn destroy(&self) -> Result<(), CgroupError> {
        let deadline = Instant::now() + dirs::REMOVE_TIMEOUT;
        let mut first_err = None;
        // Keep going after a failure so that one busy hierarchy does not leak the others.
        for d in self.unique_dirs() {
            if let Err(e) = dirs::remove_tree(d, deadline) {
                tracing::warn!(error = %e, "cgroup removal failed");
                first_err.get_or_insert(e);
            }
        }
        if let Ok(c) = self.created.lock() {
            for h in &self.hierarchies {
                dirs::remove_created_ancestors(
                    &c.iter()
                        .filter(|p| p.starts_with(&h.mount))
                        .cloned()
                        .collect::<Vec<_>>(),
                    &h.dir,
                );
            }
            if let Some(u) = &self.unified {
                dirs::remove_created_ancestors(
                    &c.iter()
                        .filter(|p| p.starts_with(&u.mount))
                        .cloned()
                        .collect::<Vec<_>>(),
                    &u.dir,
                );
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn paths(&self) -> BTreeMap<String, PathBuf> {
        let mut m = BTreeMap::new();
        for h in &self.hierarchies {
            for c in &h.controllers {
                m.insert(c.clone(), h.dir.clone());
            }
        }
        if let Some(u) = &self.unified {
            m.insert(String::new(), u.dir.clone());
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(p: &str, root: &str, c: &[&str]) -> V1Mount {
        V1Mount {
            mount_point: PathBuf::from(p),
            mount_root: root.into(),
            controllers: c.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn places_each_hierarchy() {
        let mounts = [
            mount("/cg/cpu,cpuacct", "/", &["cpu", "cpuacct"]),
            mount("/cg/memory", "/", &["memory"]),
        ];
        let own = crate::path::parse_proc_cgroup("2:cpu,cpuacct:/\n3:memory:/svc\n0::/\n");
        let rel = CgroupPath::new(None, "c1").unwrap_or_else(|e| panic!("{e}"));
        let m = V1Manager::from_mounts(Path::new("/cg"), &mounts, &rel, &own, false);
        let p = m.paths();
        assert_eq!(p["cpu"], Path::new("/cg/cpu,cpuacct/c1"));
        assert_eq!(p["cpuacct"], Path::new("/cg/cpu,cpuacct/c1"));
        assert_eq!(p["memory"], Path::new("/cg/memory/svc/c1"));
        assert!(!p.contains_key(""));
        assert_eq!(m.unique_dirs().len(), 2);
        let abs = CgroupPath::new(Some("/a/b"), "c1").unwrap_or_else(|e| panic!("{e}"));
        let m = V1Manager::from_mounts(Path::new("/cg"), &mounts, &abs, &own, true);
        let p = m.paths();
        assert_eq!(p["memory"], Path::new("/cg/memory/a/b"));
        assert_eq!(p[""], Path::new("/cg/unified/a/b"));
        // A process's own cgroups, per hierarchy (process_manager).
        let m = V1Manager::from_mounts(Path::new("/cg"), &mounts, &CgroupPath::Own, &own, true);
        let p = m.paths();
        assert_eq!(p["cpu"], Path::new("/cg/cpu,cpuacct"));
        assert_eq!(p["memory"], Path::new("/cg/memory/svc"));
        assert_eq!(p[""], Path::new("/cg/unified"));
    }
}
