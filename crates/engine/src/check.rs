//! `berth system check`'s view of the store: what in the records disagrees with SQLite's own
//! checks, the filesystem, or the process table. Reported as data; repair is the caller's (a
//! crash leaves only things on this list, and each has one obvious repair).

use std::collections::HashSet;
use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::containers::Container;
use crate::error::{EngineError, Result};
use crate::filter::ContainerFilter;
use crate::id::{ContainerId, Digest, is_full_hex_id};
use crate::state::Status;
use crate::store::Store;
use crate::volumes::{LOCAL_DRIVER, VolumeFilter};

/// One inconsistency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "kebab-case")]
pub enum Problem {
    /// SQLite's integrity or foreign-key check failed (a line of its report).
    Database {
        /// The line.
        detail: String,
    },
    /// A container record whose bundle directory is gone (killed after commit, before mkdir;
    /// or deleted by hand). Repair: remove the record.
    BundleMissing {
        /// Container id.
        id: ContainerId,
        /// The missing directory.
        path: PathBuf,
    },
    /// A bundle directory with no record (killed after mkdir, before commit; or mid-`rm`).
    /// Repair: unmount anything below it and delete it.
    OrphanBundle {
        /// The directory.
        path: PathBuf,
    },
    /// A container recorded as running, paused or restarting whose process and monitor are
    /// both gone (the monitor was killed). Repair: record it as exited (or dead) and clean up
    /// its cgroup and mounts.
    ProcessGone {
        /// Container id.
        id: ContainerId,
        /// Recorded status.
        status: Status,
        /// Recorded container pid.
        pid: Option<i32>,
        /// Recorded monitor pid.
        monitor_pid: Option<i32>,
    },
    /// A container recorded as running or paused whose monitor is gone while its process
    /// still runs (the monitor was killed): nobody drains its output or records its exit.
    /// Repair: kill it, clean up, record it as exited.
    MonitorGone {
        /// Container id.
        id: ContainerId,
        /// The container's live pid.
        pid: i32,
    },
    /// A running container frozen by a `commit` that was killed before it thawed it.
    /// Repair: thaw it.
    FrozenByCommit {
        /// Container id.
        id: ContainerId,
    },
    /// Runtime state (an OCI runtime's state directory) for a container with no record or one
    /// that is not running (killed mid-`rm` or mid-start). Repair: the runtime's forced
    /// delete (kills leftovers, removes the cgroup).
    OrphanRuntimeState {
        /// The state directory.
        path: PathBuf,
    },
    /// A container's rootfs still mounted although the container is not running or has no
    /// record. Repair: unmount it and remove its run directory.
    OrphanMount {
        /// The mount point.
        path: PathBuf,
    },
    /// A container created from an image record that is gone (after `rmi -f`). Informational.
    ImageMissing {
        /// Container id.
        id: ContainerId,
        /// The image's manifest digest.
        digest: Digest,
    },
    /// A local volume whose directory is gone. Repair: recreate it empty or remove the record.
    VolumeDirMissing {
        /// Volume name.
        name: String,
        /// The missing directory.
        path: PathBuf,
    },
    /// A volume directory with no record. Repair: delete it (or re-register it).
    OrphanVolumeDir {
        /// The directory.
        path: PathBuf,
    },
    /// A container veth (`bv...`) or a network bridge in the engine's network namespace that
    /// no running container or network record owns. Repair: delete the link.
    StrayLink {
        /// Interface name.
        name: String,
    },
    /// A running container's endpoint whose veth does not exist (a `network connect` killed
    /// before it plumbed). Repair: remove the endpoint record, freeing its addresses.
    EndpointUnplumbed {
        /// Container id.
        id: ContainerId,
        /// Network name.
        network: String,
    },
    /// berth's nftables table does not hold what the store says it should (rules of a
    /// container or network that is gone, or missing ones). Repair: render it again.
    FirewallStale {
        /// Rules found.
        found: usize,
        /// Rules wanted.
        wanted: usize,
    },
}

impl Store {
    /// Everything inconsistent in the store, the root's directories and the process table.
    pub fn check(&self) -> Result<Vec<Problem>> {
        let mut problems: Vec<Problem> = self
            .integrity_problems()?
            .into_iter()
            .map(|detail| Problem::Database { detail })
            .collect();
        let (containers, images, volumes) = self.read(|tx| {
            let images: HashSet<Digest> = tx.list_images()?.into_iter().map(|i| i.digest).collect();
            Ok((
                tx.list_containers(&ContainerFilter::default())?,
                images,
                tx.list_volumes(&VolumeFilter::default())?,
            ))
        })?;
        let paths = self.paths();
        let mut known = HashSet::new();
        for c in &containers {
            known.insert(c.id.as_str().to_owned());
            problems.extend(container_problems(c, &images));
        }
        for path in subdirs(&paths.containers_dir())? {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if is_full_hex_id(&name) && !known.contains(&name) {
                problems.push(Problem::OrphanBundle { path });
            }
        }
        let mut known = HashSet::new();
        for v in &volumes {
            known.insert(v.name.clone());
            if v.driver == LOCAL_DRIVER && !v.mountpoint.is_dir() {
                problems.push(Problem::VolumeDirMissing {
                    name: v.name.clone(),
                    path: v.mountpoint.clone(),
                });
            }
        }
        for path in subdirs(&paths.volumes_dir())? {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !known.contains(&name) {
                problems.push(Problem::OrphanVolumeDir { path });
            }
        }
        Ok(problems)
    }
}

fn container_problems(c: &Container, images: &HashSet<Digest>) -> Vec<Problem> {
    let mut out = Vec::new();
    if !c.bundle.is_dir() {
        out.push(Problem::BundleMissing {
            id: c.id.clone(),
            path: c.bundle.clone(),
        });
    }
    let s = &c.state;
    let monitor = s.monitor_pid.is_some_and(|p| monitor_alive(p, &c.run_dir));
    match s.pid.filter(|p| is_alive(*p)) {
        _ if !s.status.is_active() || monitor => {}
        None => out.push(Problem::ProcessGone {
            id: c.id.clone(),
            status: s.status,
            pid: s.pid,
            monitor_pid: s.monitor_pid,
        }),
        Some(pid) => out.push(Problem::MonitorGone {
            id: c.id.clone(),
            pid,
        }),
    }
    if let Some(d) = c.image_digest.as_ref().filter(|d| !images.contains(*d)) {
        out.push(Problem::ImageMissing {
            id: c.id.clone(),
            digest: d.clone(),
        });
    }
    out
}

/// Whether a process with this pid exists and has not exited (a zombie, dead but not yet
/// reaped by its parent, is not alive; a reused pid reads as alive: see [`monitor_alive`] for
/// the guarded check).
pub fn is_alive(pid: i32) -> bool {
    let Some(p) = rustix::process::Pid::from_raw(pid) else {
        return false;
    };
    let exists = match rustix::process::test_kill_process(p) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    };
    exists && !matches!(stat_field(pid, 3).as_deref(), Some("Z" | "X"))
}

/// Field `n` (1-based, as proc(5) numbers them; n >= 3) of `/proc/<pid>/stat`.
fn stat_field(pid: i32, n: usize) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or `)`.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    rest.split_whitespace().nth(n - 3).map(str::to_owned)
}

/// The file in a container's run directory naming its monitor: `<pid> <start time>`.
const MONITOR_FILE: &str = "monitor";

/// Field 22 of `/proc/<pid>/stat`: the process's start time in clock ticks since boot. With
/// the pid it names one process for the life of the system.
#[must_use]
pub fn start_time(pid: i32) -> Option<u64> {
    stat_field(pid, 22)?.parse().ok()
}

/// Records the calling process as the monitor of the container whose run directory is
/// `run_dir` (written before the store names its pid, replaced atomically).
pub(crate) fn record_monitor(run_dir: &Path) -> Result<()> {
    record_process(run_dir, MONITOR_FILE)
}

/// The file in a container's run directory naming a `commit` that froze the container:
/// `<pid> <start time>`, removed once it thawed it.
pub(crate) const COMMIT_FREEZE_FILE: &str = "commit-freeze";

/// Writes `<pid> <start time>` of this process to `run_dir/name` (atomically).
pub(crate) fn record_process(run_dir: &Path, name: &str) -> Result<()> {
    let pid = rustix::process::getpid().as_raw_nonzero().get();
    let start = start_time(pid).unwrap_or(0);
    let tmp = run_dir.join(format!(".{name}.tmp"));
    let path = run_dir.join(name);
    fs::create_dir_all(run_dir).map_err(|source| EngineError::Io {
        action: "create directory",
        path: run_dir.to_owned(),
        source,
    })?;
    fs::write(&tmp, format!("{pid} {start}\n"))
        .and_then(|()| fs::rename(&tmp, &path))
        .map_err(|source| EngineError::Io {
            action: "record process in",
            path,
            source,
        })
}

/// Whether the process recorded in `run_dir/name` by [`record_process`] still runs.
pub(crate) fn recorded_process_alive(run_dir: &Path, name: &str) -> bool {
    recorded(run_dir, name)
        .is_some_and(|(pid, start)| is_alive(pid) && start_time(pid) == Some(start))
}

/// Whether the monitor recorded with pid `pid` for the container whose run directory is
/// `run_dir` still runs: the pid lives and its start time is the one the monitor recorded, so
/// a pid the kernel gave to another process is not taken for the monitor. Without a record
/// (the monitor already cleaned up its run directory, or wrote none) the process must be a
/// `berth` monitor by its command line.
#[must_use]
pub fn monitor_alive(pid: i32, run_dir: &Path) -> bool {
    if !is_alive(pid) {
        return false;
    }
    match recorded_monitor(run_dir) {
        Some((p, start)) if p == pid => start_time(pid) == Some(start),
        _ => fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmd| {
            let id = run_dir
                .file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or_default();
            let args: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
            args.contains(&&b"monitor"[..]) && !id.is_empty() && args.contains(&id)
        }),
    }
}

/// A pidfd of the monitor `pid` of `run_dir` while it runs (checked once the descriptor pins
/// the process, so the pid cannot have been reused); `None` when it is gone.
pub(crate) fn pin_monitor(pid: i32, run_dir: &Path) -> Option<OwnedFd> {
    let p = rustix::process::Pid::from_raw(pid)?;
    let fd = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()?;
    monitor_alive(pid, run_dir).then_some(fd)
}

/// Waits up to `timeout` for the process of `pidfd` to exit (a zombie counts, as in
/// [`is_alive`]); `true` once it has.
pub(crate) fn wait_pidfd(pidfd: &OwnedFd, timeout: Duration) -> bool {
    use rustix::event::{PollFd, PollFlags};
    let timeout = rustix::event::Timespec::try_from(timeout).ok();
    let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
    loop {
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(n) => return n > 0,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return false,
        }
    }
}

/// Whether the monitor recorded in `run_dir` (whatever the store says) still runs.
pub(crate) fn monitor_recorded_alive(run_dir: &Path) -> bool {
    recorded_monitor(run_dir)
        .is_some_and(|(pid, start)| is_alive(pid) && start_time(pid) == Some(start))
}

/// The `(pid, start time)` a monitor recorded in `run_dir`.
fn recorded_monitor(run_dir: &Path) -> Option<(i32, u64)> {
    recorded(run_dir, MONITOR_FILE)
}

fn recorded(run_dir: &Path, name: &str) -> Option<(i32, u64)> {
    let text = fs::read_to_string(run_dir.join(name)).ok()?;
    let mut it = text.split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(EngineError::Io {
                action: "list directory",
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| EngineError::Io {
            action: "list directory",
            path: dir.to_owned(),
            source,
        })?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zombies_and_reused_pids_are_not_alive() {
        let me = std::process::id() as i32;
        assert!(is_alive(me));
        assert!(start_time(me).is_some());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        // Exited but not reaped: a zombie.
        while stat_field(pid, 3).as_deref() != Some("Z") {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!is_alive(pid));
        child.wait().unwrap();
        assert!(!is_alive(pid));

        let dir = tempfile::tempdir().unwrap();
        let run_dir = dir.path().join("0".repeat(64));
        record_monitor(&run_dir).unwrap();
        assert!(monitor_alive(me, &run_dir));
        assert!(monitor_recorded_alive(&run_dir));
        // The same pid with another start time is another process.
        fs::write(run_dir.join(MONITOR_FILE), format!("{me} 1\n")).unwrap();
        assert!(!monitor_alive(me, &run_dir));
        assert!(!monitor_recorded_alive(&run_dir));
        // No record: only a `berth monitor <id>` command line counts.
        fs::remove_file(run_dir.join(MONITOR_FILE)).unwrap();
        assert!(!monitor_alive(me, &run_dir));
    }
}
