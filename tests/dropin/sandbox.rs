//! One test's private world: a `berth-test-` temp dir, a network namespace and a cgroup parent,
//! and the sweep that removes all of it (and whatever an earlier, killed run left behind).
//!
//! Ownership is decided by the name alone: `berth-test-<pid>-<n>-dropin-<peer>`. A sweep removes
//! processes, mounts, the netns and cgroups of one name; the janitor sweeps only names whose
//! `<pid>` is no longer alive, so concurrent test processes (ours or another suite's) are safe.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::mount::{UnmountFlags, unmount};
use rustix::process::{Pid, Signal, kill_process};
use sha2::{Digest, Sha256};

/// Marks this suite's resources inside the shared `berth-test-` prefix.
const KIND: &str = "-dropin-";
const NETNS_DIR: &str = "/run/netns";
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// Hard-coded in containerd 1.6 whatever its state dir is: the runc v2 shims' sockets live in
/// `s/<sha256>` below it, and by default ctr's stdio fifos in `fifo/<random>/`.
const CONTAINERD_RUN: &str = "/run/containerd";
/// Marker in the sandbox dir: [`CONTAINERD_RUN`] did not exist when the sandbox was made.
const CONTAINERD_RUN_OURS: &str = "containerd-run-absent-before";
/// Where containerd's runc v2 shims put their sockets.
const SHIM_SOCKET_DIR: &str = "/run/containerd/s";

/// A temp dir, a network namespace and a cgroup parent name, all called [`Sandbox::name`].
/// Dropping it sweeps everything of that name.
pub(crate) struct Sandbox {
    name: String,
    dir: PathBuf,
    netns: PathBuf,
    swept: bool,
}

impl Sandbox {
    /// Runs the janitor, then creates the dir and the netns (with `lo` up) for `peer`.
    pub(crate) fn new(peer: &str) -> Self {
        janitor();
        let name = testutil::unique_name(&format!("dropin-{peer}"));
        let dir = std::env::temp_dir().join(&name);
        let netns = Path::new(NETNS_DIR).join(&name);
        let mut sandbox = Self {
            name,
            dir,
            netns,
            swept: false,
        };
        if let Err(e) = sandbox.create() {
            let leftovers = sandbox.sweep();
            panic!(
                "create sandbox {}: {e} (cleanup: {leftovers:?})",
                sandbox.name
            );
        }
        sandbox
    }

    fn create(&mut self) -> io::Result<()> {
        fs::create_dir(&self.dir)?;
        if !Path::new(CONTAINERD_RUN).exists() {
            // Written before any daemon runs, read by the sweep (also the janitor's).
            fs::write(self.dir.join(CONTAINERD_RUN_OURS), "")?;
        }
        let status = Command::new("ip")
            .args(["netns", "add", &self.name])
            .status()?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "ip netns add {}: {status}",
                self.name
            )));
        }
        let status = Command::new("nsenter")
            .arg(format!("--net={}", self.netns.display()))
            .args(["ip", "link", "set", "lo", "up"])
            .status()?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "set lo up in {}: {status}",
                self.name
            )));
        }
        Ok(())
    }

    /// The resource name: `berth-test-<pid>-<n>-dropin-<peer>`.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// A new subdirectory of the temp dir.
    pub(crate) fn subdir(&self, rel: &str) -> PathBuf {
        let path = self.dir.join(rel);
        if let Err(e) = fs::create_dir_all(&path) {
            panic!("create {}: {e}", path.display());
        }
        path
    }

    /// `nsenter --net=<netns>`: prefix for every daemon (not `ip netns exec`, which remounts
    /// /sys and so hides the v1 cgroup hierarchies from the daemon).
    pub(crate) fn in_netns(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.netns.display()))
            .arg(program);
        cmd
    }

    /// The cgroup parent (absolute cgroup path) for the containers of one peer.
    pub(crate) fn cgroup_parent(&self, peer: &str) -> String {
        format!("/{}/{peer}", self.name)
    }

    /// Removes everything of this name now; returns what could not be removed.
    pub(crate) fn close(mut self) -> Vec<String> {
        self.sweep()
    }

    fn sweep(&mut self) -> Vec<String> {
        self.swept = true;
        sweep(&self.name, &self.dir)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if !self.swept {
            for problem in self.sweep() {
                eprintln!("sandbox {}: {problem}", self.name);
            }
        }
    }
}

/// Sweeps the leftovers of earlier runs of this suite whose test process is gone.
pub(crate) fn janitor() {
    let mut names: Vec<String> = Vec::new();
    let roots = [std::env::temp_dir(), PathBuf::from(NETNS_DIR)];
    let cgroup_roots = cgroup_hierarchies();
    for root in roots.iter().chain(cgroup_roots.iter()) {
        for name in dir_names(root) {
            if is_stale(&name) && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    for name in names {
        let dir = std::env::temp_dir().join(&name);
        for problem in sweep(&name, &dir) {
            eprintln!("janitor {name}: {problem}");
        }
    }
}

/// `berth-test-<pid>-<n>-dropin-...` whose `<pid>` no longer runs.
fn is_stale(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(testutil::PREFIX) else {
        return false;
    };
    if !rest.contains(KIND) {
        return false;
    }
    let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    !Path::new(&format!("/proc/{pid}")).exists()
}

fn dir_names(root: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}

/// Kill, unmount, delete: processes first (they pin mounts and cgroups), then mounts below the
/// dir (deepest first, lazily), the netns, the cgroups, containerd's run dir if the sandbox made
/// it (see [`CONTAINERD_RUN_OURS`]) and finally the dir.
fn sweep(name: &str, dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let netns = Path::new(NETNS_DIR).join(name);
    problems.extend(kill_owned_processes(name, dir, &netns));
    problems.extend(unmount_below(dir));
    if netns.exists() {
        // `ip netns add` bind-mounts the namespace file onto itself in /run/netns.
        let _ = unmount(&netns, UnmountFlags::DETACH);
        if let Err(e) = fs::remove_file(&netns) {
            problems.push(format!("remove {}: {e}", netns.display()));
        }
    }
    for hierarchy in cgroup_hierarchies() {
        let cgroup = hierarchy.join(name);
        if cgroup.exists()
            && let Err(e) = remove_cgroup_tree(&cgroup)
        {
            problems.push(format!("remove cgroup {}: {e}", cgroup.display()));
        }
    }
    if dir.join(CONTAINERD_RUN_OURS).exists() {
        // rmdir only: a dir still holding anyone's socket or fifo stays.
        let root = Path::new(CONTAINERD_RUN);
        for sub in ["s", "fifo"] {
            let _ = fs::remove_dir(root.join(sub));
        }
        let _ = fs::remove_dir(root);
    }
    if dir.exists()
        && let Err(e) = fs::remove_dir_all(dir)
    {
        problems.push(format!("remove {}: {e}", dir.display()));
    }
    problems
}

/// Every v1 hierarchy plus the cgroup2 mount (`/sys/fs/cgroup/<controller>`).
fn cgroup_hierarchies() -> Vec<PathBuf> {
    let root = Path::new(CGROUP_ROOT);
    let mut out: Vec<PathBuf> = dir_names(root)
        .into_iter()
        .map(|n| root.join(n))
        .filter(|p| p.join("cgroup.procs").exists())
        .collect();
    if root.join("cgroup.procs").exists() {
        // A pure cgroup2 host: the root itself is the hierarchy.
        out.push(root.to_path_buf());
    }
    out
}

/// Processes that belong to the sandbox: their command line names the temp dir, they live in
/// the sandbox netns (daemons, shims, conmon) or in one of its cgroups (containers).
fn owned_processes(name: &str, dir: &Path, netns: &Path) -> Vec<Pid> {
    let me = std::process::id();
    let dir_bytes = dir.as_os_str().as_encoded_bytes();
    let netns_id = fs::metadata(netns).ok().map(|m| (m.dev(), m.ino()));
    let cgroup_marker = format!("/{name}");
    let mut out = Vec::new();
    for entry in dir_names(Path::new("/proc")) {
        let Ok(pid) = entry.parse::<u32>() else {
            continue;
        };
        if pid <= 1 || pid == me {
            continue;
        }
        let proc_dir = PathBuf::from("/proc").join(&entry);
        if is_zombie(&proc_dir) {
            continue;
        }
        let by_cmdline = fs::read(proc_dir.join("cmdline"))
            .is_ok_and(|c| c.windows(dir_bytes.len()).any(|w| w == dir_bytes));
        let by_netns = netns_id.is_some_and(|id| {
            fs::metadata(proc_dir.join("ns/net")).is_ok_and(|m| (m.dev(), m.ino()) == id)
        });
        let by_cgroup = fs::read_to_string(proc_dir.join("cgroup")).is_ok_and(|c| {
            c.lines().any(|l| {
                let path = l.splitn(3, ':').nth(2).unwrap_or("");
                path == cgroup_marker || path.starts_with(&format!("{cgroup_marker}/"))
            })
        });
        if (by_cmdline || by_netns || by_cgroup)
            && let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw)
        {
            out.push(pid);
        }
    }
    out
}

fn is_zombie(proc_dir: &Path) -> bool {
    // /proc/PID/stat: "pid (comm) S ..."; comm may hold spaces and parens, so split at the last ')'.
    fs::read_to_string(proc_dir.join("stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

fn kill_owned_processes(name: &str, dir: &Path, netns: &Path) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut shim_sockets = Vec::new();
    let mut problems = Vec::new();
    loop {
        let pids = owned_processes(name, dir, netns);
        if pids.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            problems.push(format!("processes still alive: {pids:?}"));
            break;
        }
        for pid in pids {
            shim_sockets.extend(shim_socket(pid));
            let _ = kill_process(pid, Signal::KILL);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // A killed shim leaves its socket behind, outside the sandbox.
    for socket in shim_sockets {
        if let Err(e) = fs::remove_file(&socket)
            && e.kind() != io::ErrorKind::NotFound
        {
            problems.push(format!("remove {}: {e}", socket.display()));
        }
    }
    problems
}

/// The socket of a containerd runc v2 shim, from its command line
/// (`containerd-shim-runc-v2 -namespace NS -id ID -address ADDR`): containerd 1.6 puts it at
/// `/run/containerd/s/<hex sha256 of "ADDR/NS/ID">`, whatever containerd's state dir is.
fn shim_socket(pid: Pid) -> Option<PathBuf> {
    let cmdline = fs::read(format!("/proc/{}/cmdline", pid.as_raw_pid())).ok()?;
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if !args.first()?.contains("containerd-shim") {
        return None;
    }
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    let key = Path::new(flag("-address")?)
        .join(flag("-namespace")?)
        .join(flag("-id")?);
    let hex = format!("{:x}", Sha256::digest(key.as_os_str().as_encoded_bytes()));
    Some(Path::new(SHIM_SOCKET_DIR).join(hex))
}

/// Mount points at or below `dir`, from /proc/self/mountinfo (field 5, octal-escaped).
fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .filter(|p| p.starts_with(dir))
        .collect()
}

fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let s = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(s, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn unmount_below(dir: &Path) -> Vec<String> {
    for _ in 0..10 {
        let mut mounts = mounts_below(dir);
        if mounts.is_empty() {
            return Vec::new();
        }
        // Deepest first; later mounts of the same path are on top, so reverse the order too.
        mounts.reverse();
        mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for mount in mounts {
            let _ = unmount(&mount, UnmountFlags::DETACH);
        }
    }
    mounts_below(dir)
        .into_iter()
        .map(|m| format!("still mounted: {}", m.display()))
        .collect()
}

/// cgroup directories hold only control files, so remove the subdirectories bottom-up with
/// rmdir; the kernel refuses (EBUSY) while a process is still in one, so retry briefly.
fn remove_cgroup_tree(cgroup: &Path) -> io::Result<()> {
    for entry in fs::read_dir(cgroup)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_cgroup_tree(&entry.path())?;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match fs::remove_dir(cgroup) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Child, Stdio};

    use super::*;

    /// Children that are killed and reaped even when the test fails.
    struct Children(Vec<Child>);

    impl Drop for Children {
        fn drop(&mut self) {
            for child in &mut self.0 {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    fn ok(cmd: &mut Command) {
        let status = cmd.status().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        assert!(status.success(), "{cmd:?}: {status}");
    }

    /// A run killed mid-test leaves a dir with mounts, a netns, a cgroup and processes (one per
    /// way of recognising them); the janitor removes all of it.
    #[test]
    fn janitor_sweeps_a_dead_run() {
        if !testutil::require_root() {
            return;
        }
        let _serial = crate::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        // A pid that is certainly dead: a child we have reaped.
        let mut child = Command::new("true")
            .spawn()
            .unwrap_or_else(|e| panic!("true: {e}"));
        let dead = child.id();
        let _ = child.wait();
        let name = format!("{}{dead}-0-dropin-janitor", testutil::PREFIX);
        assert!(is_stale(&name));
        let dir = std::env::temp_dir().join(&name);
        let netns = Path::new(NETNS_DIR).join(&name);
        let cgroup = Path::new(CGROUP_ROOT).join("pids").join(&name).join("ctr");

        fs::create_dir_all(dir.join("mnt")).unwrap_or_else(|e| panic!("mkdir: {e}"));
        ok(Command::new("mount")
            .args(["-t", "tmpfs", "berth-test", "-o", "size=1m"])
            .arg(dir.join("mnt")));
        fs::create_dir_all(dir.join("mnt/inner")).unwrap_or_else(|e| panic!("mkdir: {e}"));
        ok(Command::new("mount")
            .args(["-t", "tmpfs", "berth-test", "-o", "size=1m"])
            .arg(dir.join("mnt/inner")));
        fs::write(dir.join("file"), "x").unwrap_or_else(|e| panic!("write: {e}"));
        ok(Command::new("ip").args(["netns", "add", &name]));
        fs::create_dir_all(&cgroup).unwrap_or_else(|e| panic!("mkdir {}: {e}", cgroup.display()));

        let spawn = |cmd: &mut Command| cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let mut children = Children(Vec::new());
        children.0.push(spawn(
            Command::new("tail")
                .arg("-f")
                .arg(dir.join("file"))
                .stdout(Stdio::null()),
        ));
        children.0.push(spawn(
            Command::new("nsenter")
                .arg(format!("--net={}", netns.display()))
                .args(["sleep", "600"]),
        ));
        let in_cgroup = spawn(Command::new("sleep").arg("600"));
        // The name is deliberately stale, so a janitor of another test process running right
        // now may remove the cgroup first: recreate it until the process is in.
        let mut joined = Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        for _ in 0..50 {
            let _ = fs::create_dir_all(&cgroup);
            joined = fs::write(cgroup.join("cgroup.procs"), in_cgroup.id().to_string());
            if joined.is_ok() {
                break;
            }
        }
        joined.unwrap_or_else(|e| panic!("join cgroup: {e}"));
        children.0.push(in_cgroup);

        janitor();

        for child in &mut children.0 {
            let status = child.wait().unwrap_or_else(|e| panic!("wait: {e}"));
            assert!(
                status.signal().is_some(),
                "child {} was not killed: {status}",
                child.id()
            );
        }
        assert!(
            mounts_below(&dir).is_empty(),
            "mounts left: {:?}",
            mounts_below(&dir)
        );
        assert!(!dir.exists(), "{} left", dir.display());
        assert!(!netns.exists(), "{} left", netns.display());
        assert!(!cgroup.parent().is_some_and(Path::exists), "cgroup left");
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_mountinfo(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape_mountinfo(r"/tmp/x\134y"), r"/tmp/x\y");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }

    #[test]
    fn only_dead_dropin_runs_are_stale() {
        let me = std::process::id();
        assert!(!is_stale(&format!("berth-test-{me}-0-dropin-docker")));
        assert!(is_stale("berth-test-4194304999-0-dropin-docker"));
        assert!(!is_stale("berth-test-4194304999-0-cgroups"));
        assert!(!is_stale("something-else"));
    }
}
