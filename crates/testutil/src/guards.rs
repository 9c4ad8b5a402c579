//! Drop guards for kernel objects tests create: mounts, network namespaces, cgroups, children.

use crate::janitor::{delete_netns, remove_cgroup};
use crate::{PREFIX, sys, unique_name};
use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

/// A mount, detached (`umount2(MNT_DETACH)`) on drop.
#[derive(Debug)]
pub struct MountGuard {
    target: PathBuf,
}

impl MountGuard {
    /// Mounts a fresh tmpfs on `target`.
    ///
    /// # Panics
    /// When the mount fails.
    #[must_use]
    pub fn tmpfs(target: &Path) -> MountGuard {
        sys::mount(
            Path::new("tmpfs"),
            target,
            Some("tmpfs"),
            0,
            Some("size=16m"),
        )
        .unwrap_or_else(|e| panic!("mount tmpfs on {}: {e}", target.display()));
        MountGuard {
            target: target.to_path_buf(),
        }
    }

    /// Bind-mounts `source` on `target`.
    ///
    /// # Panics
    /// When the mount fails.
    #[must_use]
    pub fn bind(source: &Path, target: &Path) -> MountGuard {
        sys::mount(source, target, None, libc::MS_BIND, None)
            .unwrap_or_else(|e| panic!("bind {} on {}: {e}", source.display(), target.display()));
        MountGuard {
            target: target.to_path_buf(),
        }
    }

    /// Takes charge of a mount made elsewhere (by the code under test).
    #[must_use]
    pub fn adopt(target: impl Into<PathBuf>) -> MountGuard {
        MountGuard {
            target: target.into(),
        }
    }

    /// The mount point.
    #[must_use]
    pub fn target(&self) -> &Path {
        &self.target
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        match sys::umount_detach(&self.target) {
            // EINVAL: no longer a mount point (the test unmounted it); ENOENT: gone.
            Err(e) if !matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => {
                eprintln!("testutil: unmount {}: {e}", self.target.display());
            }
            _ => {}
        }
    }
}

/// A named network namespace `/run/netns/berth-test-...` (`ip netns add`), with loopback up,
/// deleted on drop. Run commands in it with [`NetnsGuard::command`], which uses
/// `nsenter --net=` (not `ip netns exec`, which remounts /sys and hides the v1 cgroups).
#[derive(Debug)]
pub struct NetnsGuard {
    name: String,
}

impl NetnsGuard {
    /// Creates the namespace. Runs the [`janitor`](crate::janitor) first.
    ///
    /// # Panics
    /// When `ip netns add` fails.
    #[must_use]
    pub fn new() -> NetnsGuard {
        crate::janitor();
        NetnsGuard::without_janitor()
    }

    /// Creates the namespace without running the janitor first (every [`Berth`](crate::Berth)
    /// makes one: sweeping from each of those test processes would race the janitor tests'
    /// deliberately stale leftovers far more often).
    ///
    /// # Panics
    /// When `ip netns add` fails.
    #[must_use]
    pub(crate) fn without_janitor() -> NetnsGuard {
        let name = unique_name("netns");
        let out = Command::new("ip").args(["netns", "add", &name]).output();
        let out = out.unwrap_or_else(|e| panic!("run ip netns add: {e}"));
        assert!(
            out.status.success(),
            "ip netns add {name}: {}",
            crate::describe(&out)
        );
        let guard = NetnsGuard { name };
        guard.ok(&["ip", "link", "set", "lo", "up"]);
        guard
    }

    /// The namespace's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/<name>`.
    #[must_use]
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// `nsenter --net=<path> -- <program>`, not yet run; add arguments to it.
    #[must_use]
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.path().display()))
            .arg("--")
            .arg(program);
        cmd
    }

    /// Runs `argv` inside the namespace and returns its output, failing the test unless it
    /// exits 0.
    ///
    /// # Panics
    /// When the command cannot run or fails.
    pub fn ok(&self, argv: &[&str]) -> Output {
        let (program, args) = argv
            .split_first()
            .unwrap_or_else(|| panic!("empty command"));
        let out = self.command(program).args(args).output();
        let out = out.unwrap_or_else(|e| panic!("run {argv:?} in {}: {e}", self.name));
        assert!(
            out.status.success(),
            "{argv:?} in {}: {}",
            self.name,
            crate::describe(&out)
        );
        out
    }
}

impl NetnsGuard {
    /// Moves the calling thread into the namespace until the returned guard is dropped (each
    /// test runs on its own thread, so this isolates in-process netlink and sockets).
    ///
    /// # Panics
    /// When setns fails.
    #[must_use]
    pub fn enter(&self) -> NetnsEntered {
        let open = |p: &Path| File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
        let original = open(Path::new("/proc/thread-self/ns/net"));
        sys::setns_net(&open(&self.path()))
            .unwrap_or_else(|e| panic!("enter netns {}: {e}", self.name));
        NetnsEntered { original }
    }
}

/// The calling thread's stay in a [`NetnsGuard`]'s namespace; drop returns it to where it was.
#[derive(Debug)]
pub struct NetnsEntered {
    original: File,
}

impl Drop for NetnsEntered {
    fn drop(&mut self) {
        if let Err(e) = sys::setns_net(&self.original) {
            eprintln!("testutil: return to the original network namespace: {e}");
        }
    }
}

impl Default for NetnsGuard {
    fn default() -> Self {
        NetnsGuard::new()
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        delete_netns(&self.name);
    }
}

/// A cgroup directory, emptied (tasks killed) and removed with its children on drop.
#[derive(Debug)]
pub struct CgroupGuard {
    path: PathBuf,
}

impl CgroupGuard {
    /// Creates `/sys/fs/cgroup/<hierarchy>/<unique name with tag>`; `hierarchy` is a v1
    /// controller directory (`memory`, `pids`, ...) or `unified`.
    ///
    /// # Panics
    /// When the directory cannot be made.
    #[must_use]
    pub fn new(hierarchy: &str, tag: &str) -> CgroupGuard {
        crate::janitor();
        let path = Path::new("/sys/fs/cgroup")
            .join(hierarchy)
            .join(unique_name(tag));
        std::fs::create_dir(&path)
            .unwrap_or_else(|e| panic!("create cgroup {}: {e}", path.display()));
        CgroupGuard { path }
    }

    /// Takes charge of a cgroup made elsewhere; its name must start with `berth-test-`.
    ///
    /// # Panics
    /// When the name lacks the prefix.
    #[must_use]
    pub fn adopt(path: impl Into<PathBuf>) -> CgroupGuard {
        let path = path.into();
        let named = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(PREFIX));
        assert!(named, "cgroup {} is not named {PREFIX}*", path.display());
        CgroupGuard { path }
    }

    /// The cgroup directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        if let Err(e) = remove_cgroup(&self.path) {
            eprintln!("testutil: remove cgroup {}: {e}", self.path.display());
        }
    }
}

/// A child process, killed and reaped on drop.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
}

impl ChildGuard {
    /// Spawns `cmd`.
    ///
    /// # Panics
    /// When it cannot be spawned.
    #[must_use]
    pub fn spawn(cmd: &mut Command) -> ChildGuard {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        ChildGuard { child }
    }

    /// The child's pid.
    #[must_use]
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child itself (to wait on it or take its pipes).
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
