//! The cgroup v2 back end: one directory in the unified hierarchy.
//!
//! Its resource writers, freezer and stats are free functions over a directory, because a
//! hybrid host's v1 manager uses them for the controllers only the cgroup2 mount holds.

pub(crate) mod devices;
pub(crate) mod set;
pub(crate) mod stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::dirs;
use crate::error::CgroupError;
use crate::files;
use crate::path::CgroupPath;
use crate::{CgroupManager, Hierarchy, Stats};

/// How long freeze and thaw wait for `cgroup.events` to agree.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// A cgroup in the unified hierarchy.
#[derive(Debug)]
pub(crate) struct V2Manager {
    mount: PathBuf,
    dir: PathBuf,
    created: Mutex<Vec<PathBuf>>,
}

impl V2Manager {
    pub(crate) fn new(mount: &Path, path: &CgroupPath, own: &BTreeMap<String, String>) -> Self {
        let own = own.get("").map_or("/", String::as_str);
        Self {
            mount: mount.to_owned(),
            dir: match path {
                CgroupPath::Own => path.place(mount, "/", own),
                _ => path.place(mount, "/", relative_base(own)),
            },
            created: Mutex::new(Vec::new()),
        }
    }

    fn ensure(&self) -> Result<(), CgroupError> {
        let made = dirs::create(&self.mount, &self.dir, |_| Ok(()))?;
        enable_controllers(&self.mount, &self.dir, None)?;
        if let Ok(mut c) = self.created.lock() {
            c.extend(made);
        }
        Ok(())
    }
}

/// The cgroup a relative cgroups path is placed below on v2: the *parent* of the caller's own
/// cgroup `own`, as runc's fs2 driver does. The caller's cgroup has tasks (the caller, at least),
/// and the kernel's no-internal-processes rule forbids enabling controllers for the children of
/// a non-root cgroup with tasks: a container directly below it would get no controllers.
fn relative_base(own: &str) -> &str {
    let own = own.trim_end_matches('/');
    match own.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &own[..i],
    }
}

/// Enables controllers in `cgroup.subtree_control` of every ancestor of `dir` from `mount` down,
/// so that `dir` gets their interface files: all the parent offers, or only those in `only`.
/// Controllers already enabled are left alone; one the kernel refuses (busy, threaded) is
/// skipped, and a later write to its files reports it.
pub(crate) fn enable_controllers(
    mount: &Path,
    dir: &Path,
    only: Option<&[&str]>,
) -> Result<(), CgroupError> {
    let Ok(rel) = dir.strip_prefix(mount) else {
        return Ok(());
    };
    let mut cur = mount.to_path_buf();
    for c in rel.components() {
        let available = files::read(&cur, "cgroup.controllers")?;
        let enabled = files::read(&cur, "cgroup.subtree_control")?;
        let enabled: Vec<&str> = enabled.split_whitespace().collect();
        for ctrl in available.split_whitespace() {
            if enabled.contains(&ctrl) || only.is_some_and(|o| !o.contains(&ctrl)) {
                continue;
            }
            if let Err(e) = files::write(&cur, "cgroup.subtree_control", &format!("+{ctrl}")) {
                tracing::debug!(error = %e, ctrl, "controller not enabled");
            }
        }
        cur.push(c);
    }
    Ok(())
}

/// The unified-hierarchy directory (below `mount`) of process `pid`, from `/proc/<pid>/cgroup`.
fn init_cgroup(mount: &Path, pid: i32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = crate::path::parse_proc_cgroup(&text).remove("")?;
    Some(mount.join(path.trim_start_matches('/')))
}

/// Writes `cgroup.freeze` and waits for `cgroup.events` to report the state.
pub(crate) fn set_frozen(dir: &Path, frozen: bool) -> Result<(), CgroupError> {
    if !files::exists(dir, "cgroup.freeze") {
        return Err(CgroupError::unsupported("cgroup.freeze"));
    }
    files::write(dir, "cgroup.freeze", if frozen { "1" } else { "0" })?;
    let reached = dirs::wait_for(FREEZE_TIMEOUT, || Ok(is_frozen(dir)? == frozen))?;
    if reached {
        Ok(())
    } else {
        Err(CgroupError::FreezeTimeout {
            path: dir.to_owned(),
            state: if frozen { "frozen" } else { "thawed" },
            waited: FREEZE_TIMEOUT,
        })
    }
}

/// `frozen` from `cgroup.events`.
pub(crate) fn is_frozen(dir: &Path) -> Result<bool, CgroupError> {
    let ev = files::read_flat_keyed(dir, "cgroup.events")?;
    Ok(ev.get("frozen") == Some(&1))
}

/// Sends `signal` to each pid, ignoring tasks that already exited.
pub(crate) fn signal_all(pids: &[i32], signal: i32) -> Result<(), CgroupError> {
    for &pid in pids {
        match crate::sys::kill(pid, signal) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(source) => {
                return Err(CgroupError::Signal {
                    pid,
                    signal,
                    source,
                });
            }
        }
    }
    Ok(())
}

impl CgroupManager for V2Manager {
    fn hierarchy(&self) -> Hierarchy {
        Hierarchy::V2
    }

    fn apply(&self, pid: i32) -> Result<(), CgroupError> {
        self.ensure()?;
        if pid > 0 {
            files::write(&self.dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    fn self_join(&self) -> Result<crate::SelfJoin, CgroupError> {
        self.ensure()?;
        crate::SelfJoin::open(Some(&self.dir), &[])
    }

    fn apply_exec(&self, pid: i32, init_pid: i32) -> Result<(), CgroupError> {
        let err = match self.apply(pid) {
            Err(e @ CgroupError::Write { .. })
                if matches!(&e, CgroupError::Write { source, .. }
                    if source.raw_os_error() == Some(libc::EBUSY)) =>
            {
                e
            }
            other => return other,
        };
        // Only a cgroup inside the container's own: init's, as this process sees it.
        match init_cgroup(&self.mount, init_pid) {
            Some(dir) if dir.starts_with(&self.dir) && dir != self.dir => {
                tracing::debug!(dir = %dir.display(), "container cgroup busy; joining init's");
                files::write(&dir, "cgroup.procs", &pid.to_string())
            }
            _ => Err(err),
        }
    }

    fn set(&self, r: &oci_spec::runtime::LinuxResources) -> Result<(), CgroupError> {
        self.ensure()?;
        set::all(&self.dir, r)
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        files::pids_recursive(&self.dir)
    }

    fn freeze(&self) -> Result<(), CgroupError> {
        set_frozen(&self.dir, true)
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        set_frozen(&self.dir, false)
    }

    fn is_frozen(&self) -> Result<bool, CgroupError> {
        is_frozen(&self.dir)
    }

    fn kill_all(&self, signal: i32) -> Result<(), CgroupError> {
        if !self.dir.exists() {
            return Ok(());
        }
        if signal == libc::SIGKILL && files::exists(&self.dir, "cgroup.kill") {
            return files::write(&self.dir, "cgroup.kill", "1");
        }
        let was_frozen = is_frozen(&self.dir)?;
        let froze = !was_frozen && set_frozen(&self.dir, true).is_ok();
        let res = self.pids().and_then(|p| signal_all(&p, signal));
        if froze {
            // A thaw failure must not hide a signal failure.
            if let Err(e) = set_frozen(&self.dir, false) {
                if res.is_ok() {
                    return Err(e);
                }
                tracing::warn!(error = %e, "thaw after kill failed");
            }
        }
        res
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        stats::read(&self.dir)
    }

    fn oom_kill_count(&self) -> Result<u64, CgroupError> {
        let ev = files::read_flat_keyed(&self.dir, "memory.events")?;
        Ok(ev.get("oom_kill").copied().unwrap_or(0))
    }

    fn destroy(&self) -> Result<(), CgroupError> {
        dirs::remove_tree(&self.dir, Instant::now() + dirs::REMOVE_TIMEOUT)?;
        if let Ok(c) = self.created.lock() {
            dirs::remove_created_ancestors(&c, &self.dir);
        }
        Ok(())
    }

    fn paths(&self) -> BTreeMap<String, PathBuf> {
        BTreeMap::from([(String::new(), self.dir.clone())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_go_below_the_callers_parent() {
        assert_eq!(relative_base("/"), "/");
        assert_eq!(relative_base("/init.scope"), "/");
        assert_eq!(
            relative_base("/system.slice/containerd.service"),
            "/system.slice"
        );
        let own = BTreeMap::from([(String::new(), "/a/b".to_owned())]);
        let m = V2Manager::new(Path::new("/cg"), &CgroupPath::Relative("x".into()), &own);
        assert_eq!(m.dir, Path::new("/cg/a/x"));
        let m = V2Manager::new(Path::new("/cg"), &CgroupPath::Absolute("y/x".into()), &own);
        assert_eq!(m.dir, Path::new("/cg/y/x"));
        // A process's own cgroup, exactly (process_manager).
        let m = V2Manager::new(Path::new("/cg"), &CgroupPath::Own, &own);
        assert_eq!(m.dir, Path::new("/cg/a/b"));
    }
}
