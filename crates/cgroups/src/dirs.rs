//! Creating and removing cgroup directories.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::CgroupError;
use crate::files;

/// How long [`remove_tree`] keeps retrying a busy cgroup.
pub(crate) const REMOVE_TIMEOUT: Duration = Duration::from_secs(1);

/// Creates `dir` and any missing ancestors below `mount`; returns the directories it made, top
/// first. `init` runs on each new directory before its children are made (v1 cpuset needs its
/// cpus/mems filled before a child can be created or joined).
pub(crate) fn create(
    mount: &Path,
    dir: &Path,
    mut init: impl FnMut(&Path) -> Result<(), CgroupError>,
) -> Result<Vec<PathBuf>, CgroupError> {
    let rel = dir
        .strip_prefix(mount)
        .map_err(|_| CgroupError::InvalidPath {
            path: dir.display().to_string(),
            reason: "not below its hierarchy mount",
        })?;
    let mut made = Vec::new();
    let mut cur = mount.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match std::fs::create_dir(&cur) {
            Ok(()) => {
                made.push(cur.clone());
                init(&cur)?;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(CgroupError::Create { path: cur, source }),
        }
    }
    Ok(made)
}

/// Sleeps for `step` and returns the next, doubled step (capped).
pub(crate) fn backoff(step: Duration) -> Duration {
    std::thread::sleep(step);
    (step * 2).min(Duration::from_millis(100))
}

/// Removes `dir` and every cgroup below it, children first. A cgroup that still has tasks
/// (`EBUSY`) is retried with backoff until `deadline`. A missing directory is not an error.
pub(crate) fn remove_tree(dir: &Path, deadline: Instant) -> Result<(), CgroupError> {
    for sub in files::subdirs(dir)? {
        remove_tree(&sub, deadline)?;
    }
    let started = Instant::now();
    let mut step = Duration::from_millis(1);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                if Instant::now() >= deadline {
                    return Err(CgroupError::RemoveBusy {
                        path: dir.to_owned(),
                        waited: started.elapsed(),
                    });
                }
                step = backoff(step);
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: dir.to_owned(),
                    source,
                });
            }
        }
    }
}

/// Best-effort removal of ancestors this manager created, deepest first; stops quietly at one
/// that is not empty (a sibling lives there) or already gone.
pub(crate) fn remove_created_ancestors(created: &[PathBuf], leaf: &Path) {
    for d in created.iter().rev().filter(|d| d.as_path() != leaf) {
        if let Err(e) = std::fs::remove_dir(d)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::debug!(path = %d.display(), error = %e, "keeping created ancestor cgroup");
            return;
        }
    }
}

/// Polls `check` with backoff until it returns `true` or `timeout` passes; returns the last
/// answer.
pub(crate) fn wait_for(
    timeout: Duration,
    mut check: impl FnMut() -> Result<bool, CgroupError>,
) -> Result<bool, CgroupError> {
    let deadline = Instant::now() + timeout;
    let mut step = Duration::from_millis(1);
    loop {
        if check()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        step = backoff(step);
    }
}
