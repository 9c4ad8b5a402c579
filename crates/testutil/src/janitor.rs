//! Removal of what earlier, killed test runs left behind, and detection of leaks.
//!
//! Every object tests create is named with [`unique_name`](crate::unique_name) (or
//! [`unique_link_name`](crate::unique_link_name)), which embeds the pid of the test process that
//! made it: `berth-test-<pid>-...`, `bt-<pid>-...`. Test processes run in parallel (nextest runs
//! one process per test), so the janitor removes an object only when no process with the pid
//! its name carries is alive. Nothing without the prefix is ever touched.

use crate::mountinfo::mounts;
use crate::{PREFIX, sys};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::time::{Duration, Instant, SystemTime};

/// Prefix of network links tests create in the host namespace (names are limited to 15 bytes).
pub const LINK_PREFIX: &str = "bt-";

/// The pids embedded in `name` after each `berth-test-` (and a leading `bt-`).
#[must_use]
pub fn owner_pids(name: &str) -> Vec<u32> {
    let digits = |s: &str| -> Option<u32> {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        if end == 0 || !s[end..].starts_with('-') {
            return None;
        }
        s[..end].parse().ok()
    };
    let mut pids: Vec<u32> = name
        .match_indices(PREFIX)
        .filter_map(|(i, p)| digits(&name[i + p.len()..]))
        .collect();
    if let Some(rest) = name.strip_prefix(LINK_PREFIX) {
        pids.extend(digits(rest));
    }
    pids
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether the object named `name` may be swept: it names owners and none of them is alive.
/// Objects naming no owner are decided by `unowned`.
fn stale(name: &str, unowned: bool) -> bool {
    let owners = owner_pids(name);
    if owners.is_empty() {
        unowned
    } else {
        !owners.into_iter().any(alive)
    }
}

/// Whether `name` belongs to another test process that is still running.
fn owned_by_other_live(name: &str) -> bool {
    let me = std::process::id();
    owner_pids(name).into_iter().any(|p| p != me && alive(p))
}

/// Removes leftovers of earlier runs, once per process: processes whose command line names a
/// `berth-test-` directory, mounts whose mount point contains `berth-test-` (deepest first,
/// detached), `berth-test-*` cgroups in every hierarchy under /sys/fs/cgroup (tasks killed,
/// children first), network namespaces `/run/netns/berth-test-*` (processes in them killed),
/// links named `berth*` or `bt-*`, and `berth-test-*` entries of the temp dir and /run.
///
/// An object whose name carries a pid is removed only when that process is dead; one without is
/// removed only when older than this process (processes and mounts without one: never, except
/// mounts under an old temp dir). Needs root; without it, does nothing.
pub fn janitor() {
    static ONCE: Once = Once::new();
    ONCE.call_once(sweep);
}

/// The janitor's sweep, run now (again): see [`janitor`].
pub fn sweep() {
    if sys::euid() != 0 {
        return;
    }
    sweep_processes();
    let start = process_start();
    // A mount without an owner pid has no age to judge by: it goes only with an old temp dir.
    let mut stale_mounts: Vec<PathBuf> = mounts()
        .into_iter()
        .map(|m| m.point)
        .filter(|p| p.to_string_lossy().contains(PREFIX) && stale(&p.to_string_lossy(), false))
        .collect();
    stale_mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for point in stale_mounts {
        report("unmount", &point, sys::umount_detach(&point));
    }
    for cg in cgroups() {
        if stale(&cg.to_string_lossy(), older_than(&cg, start)) {
            report("remove cgroup", &cg, remove_cgroup(&cg));
        }
    }
    for name in netns() {
        if stale(
            &name,
            older_than(&Path::new("/run/netns").join(&name), start),
        ) {
            // Processes still in it would outlive the name (another janitor, such as the
            // drop-in sandbox's, recognises them by the namespace): kill them first.
            kill_in_netns(&Path::new("/run/netns").join(&name));
            delete_netns(&name);
        }
    }
    for link in links() {
        if stale(&link, true) {
            let _ = Command::new("ip").args(["link", "del", &link]).output();
        }
    }
    sweep_temp_dirs(start);
}

fn report(what: &str, path: &Path, r: io::Result<()>) {
    if let Err(e) = r {
        eprintln!("testutil janitor: {what} {}: {e}", path.display());
    }
}

/// This process and its ancestors, which the janitor never kills.
fn ancestors() -> Vec<u32> {
    let mut chain = vec![std::process::id()];
    let mut pid = std::process::id();
    while let Some(ppid) = fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse::<u32>()
                .ok()
        })
        .filter(|&p| p > 1)
    {
        chain.push(ppid);
        pid = ppid;
    }
    chain
}

fn sweep_processes() {
    let keep = ancestors();
    let Ok(dir) = fs::read_dir("/proc") else {
        return;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        // Only command lines naming a directory of a dead test process; none without an owner.
        if keep.contains(&pid) || !cmdline.contains(PREFIX) || !stale(&cmdline, false) {
            continue;
        }
        if let Ok(pid) = i32::try_from(pid) {
            let _ = sys::kill9(pid);
        }
    }
}

/// Unmounts (detached, deepest first) every mount at or below `dir`.
pub(crate) fn unmount_under(dir: &Path) {
    // Stacked mounts on one point need one pass each.
    for _ in 0..8 {
        let mut under: Vec<_> = mounts()
            .into_iter()
            .filter(|m| m.point.starts_with(dir))
            .collect();
        if under.is_empty() {
            return;
        }
        under.sort_by_key(|m| {
            (
                std::cmp::Reverse(m.point.components().count()),
                std::cmp::Reverse(m.id),
            )
        });
        for m in under {
            let _ = sys::umount_detach(&m.point);
        }
    }
}

/// Mount points of the cgroup hierarchies (v1 controllers and cgroup2) under /sys/fs/cgroup.
fn cgroup_roots() -> Vec<PathBuf> {
    mounts()
        .into_iter()
        .filter(|m| {
            (m.fstype == "cgroup" || m.fstype == "cgroup2") && m.point.starts_with("/sys/fs/cgroup")
        })
        .map(|m| m.point)
        .collect()
}

/// Every cgroup directory whose name starts with `berth-test-` (not descending into them).
fn cgroups() -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if e.file_name().to_string_lossy().starts_with(PREFIX) {
                found.push(e.path());
            } else {
                walk(&e.path(), found);
            }
        }
    }
    let mut found = Vec::new();
    for root in cgroup_roots() {
        walk(&root, &mut found);
    }
    found
}

/// Removes a cgroup directory and its descendants: thaws it, kills its processes, waits for them
/// to leave, then rmdirs (children first).
///
/// # Errors
/// When processes do not leave within 5 seconds or rmdir fails.
pub fn remove_cgroup(dir: &Path) -> io::Result<()> {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup(&e.path())?;
            }
        }
    }
    // Frozen tasks cannot die; thaw first (v1 freezer, v2 cgroup.freeze), ignoring absence.
    let _ = fs::write(dir.join("freezer.state"), "THAWED");
    let _ = fs::write(dir.join("cgroup.freeze"), "0");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        let pids: Vec<i32> = procs
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            let _ = sys::kill9(pid);
        }
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "processes stay in {}: {}",
                dir.display(),
                procs.trim()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // A cgroup whose last task just died can stay busy for a moment.
    loop {
        match fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            other => return other,
        }
    }
}

/// Names of `/run/netns/berth-test-*`.
fn netns() -> Vec<String> {
    let Ok(rd) = fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    rd.flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(PREFIX))
        .collect()
}

/// SIGKILLs every process (this one and its ancestors apart) in the network namespace bound
/// at `path`.
fn kill_in_netns(path: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(ns) = fs::metadata(path) else {
        return;
    };
    let keep = ancestors();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let inside = fs::metadata(entry.path().join("ns/net"))
            .is_ok_and(|m| m.ino() == ns.ino() && m.dev() == ns.dev());
        if inside && u32::try_from(pid).is_ok_and(|p| !keep.contains(&p)) {
            let _ = sys::kill9(pid);
        }
    }
}

/// Deletes `/run/netns/<name>` (`ip netns delete`, or unmount and unlink when ip fails).
pub(crate) fn delete_netns(name: &str) {
    let ok = Command::new("ip")
        .args(["netns", "delete", name])
        .output()
        .is_ok_and(|o| o.status.success());
    let path = Path::new("/run/netns").join(name);
    if !ok && path.exists() {
        let _ = sys::umount_detach(&path);
        report("remove netns", &path, fs::remove_file(&path));
    }
}

/// Names of host links called `berth*` or `bt-*`.
fn links() -> Vec<String> {
    let Ok(out) = Command::new("ip").args(["-o", "link", "show"]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .filter(|n| n.starts_with("berth") || n.starts_with(LINK_PREFIX))
        .collect()
}

/// When this process started, from /proc/self/stat and the boot time in /proc/stat.
fn process_start() -> Option<SystemTime> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    // Field 22 (starttime) is the 20th after the command name, in clock ticks (USER_HZ = 100).
    let ticks: u64 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    let btime: u64 = fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(btime) + Duration::from_millis(ticks * 10))
}

/// Whether `path` changed status (for cgroups and namespaces: was created) before `start`.
fn older_than(path: &Path, start: Option<SystemTime>) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(start) = start else { return false };
    let Ok(md) = fs::metadata(path) else {
        return false;
    };
    let ctime = u64::try_from(md.ctime()).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::from_secs(ctime) < start
}

fn sweep_temp_dirs(start: Option<SystemTime>) {
    for base in [std::env::temp_dir(), PathBuf::from("/run")] {
        let Ok(rd) = fs::read_dir(&base) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with(PREFIX) {
                continue;
            }
            let older = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .zip(start)
                .is_some_and(|(m, s)| m < s);
            if !stale(&name, older) {
                continue;
            }
            let path = e.path();
            unmount_under(&path);
            let r = if e.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            report("remove", &path, r);
        }
    }
}

/// Describes every `berth-test-` mount, cgroup and network namespace and every `berth*`/`bt-*`
/// link still present, except those of other test processes that are still running. Empty when
/// nothing leaked: `assert!(testutil::leaks().is_empty(), "{:?}", testutil::leaks())`.
#[must_use]
pub fn leaks() -> Vec<String> {
    let mut found = Vec::new();
    for m in mounts() {
        let p = m.point.to_string_lossy().into_owned();
        if p.contains(PREFIX) && !owned_by_other_live(&p) {
            found.push(format!("mount {p} ({})", m.fstype));
        }
    }
    for cg in cgroups() {
        let p = cg.to_string_lossy().into_owned();
        if !owned_by_other_live(&p) {
            found.push(format!("cgroup {p}"));
        }
    }
    for n in netns() {
        if !owned_by_other_live(&n) {
            found.push(format!("netns /run/netns/{n}"));
        }
    }
    for l in links() {
        if !owned_by_other_live(&l) {
            found.push(format!("link {l}"));
        }
    }
    found
}

/// [`leaks`] restricted to objects whose description contains `needle` (a test's own names,
/// when other tests of the same process run beside it).
#[must_use]
pub fn leaks_of(needle: &str) -> Vec<String> {
    leaks().into_iter().filter(|l| l.contains(needle)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_read_from_names() {
        assert_eq!(owner_pids("berth-test-123-4-bundle"), vec![123]);
        assert_eq!(
            owner_pids("/tmp/berth-test-7-0-b/rootfs/berth-test-9-1-x"),
            vec![7, 9]
        );
        assert_eq!(owner_pids("bt-4194304-12"), vec![4_194_304]);
        assert!(owner_pids("berth-test-abc").is_empty());
        assert!(
            owner_pids("berth-test-12").is_empty(),
            "a pid must be followed by '-'"
        );
        assert!(owner_pids("berth0").is_empty());
    }

    #[test]
    fn staleness_follows_the_owner() {
        let me = std::process::id();
        assert!(!stale(&format!("berth-test-{me}-0-x"), true));
        // pid_max is at most 4194304, so this pid cannot be alive.
        assert!(stale("berth-test-99999999-0-x", false));
        assert!(stale("berth-test-x", true));
        assert!(!stale("berth-test-x", false));
        assert!(!owned_by_other_live(&format!("berth-test-{me}-0-x")));
    }

    #[test]
    fn process_start_is_in_the_past() {
        let start = process_start();
        assert!(start.is_some_and(|s| s <= SystemTime::now() + Duration::from_secs(1)));
    }
}
