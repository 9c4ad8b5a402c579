//! A private berth installation for one end-to-end test: `--root` under a `berth-test-` temp
//! dir and `--run-root` under `/run`, a busybox image imported from the host's busybox-static,
//! and a `Drop` that removes every container, lazily unmounts what is left under either root
//! and deletes both, so a failing test leaves nothing behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::describe;

/// `target/<profile>/berth`, next to berth-runtime.
#[must_use]
pub fn berth_binary() -> PathBuf {
    crate::runtime_binary().with_file_name("berth")
}

/// One test's berth roots.
#[derive(Debug)]
pub struct BerthRoots {
    /// `--root`.
    pub root: PathBuf,
    /// `--run-root`.
    pub run_root: PathBuf,
    /// Scratch space (holds `root`), removed on drop.
    pub scratch: PathBuf,
}

impl BerthRoots {
    /// Fresh roots named after `tag`.
    ///
    /// # Panics
    /// When the scratch directory cannot be created.
    #[must_use]
    pub fn new(tag: &str) -> Self {
        let name = crate::unique_name(tag);
        let scratch = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&scratch)
            .unwrap_or_else(|e| panic!("create {}: {e}", scratch.display()));
        Self {
            root: scratch.join("root"),
            run_root: Path::new("/run").join(&name),
            scratch,
        }
    }

    /// `berth --root .. --run-root .. ARGS`, stdin from /dev/null, run to completion.
    ///
    /// # Panics
    /// When berth cannot be spawned.
    #[must_use]
    pub fn cmd(&self, args: &[&str]) -> Output {
        Command::new(berth_binary())
            .arg("--root")
            .arg(&self.root)
            .arg("--run-root")
            .arg(&self.run_root)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("spawn berth: {e}"))
    }

    /// [`cmd`](Self::cmd) that must succeed; returns its stdout.
    ///
    /// # Panics
    /// When berth fails.
    #[must_use]
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(out.status.success(), "berth {args:?}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Imports the busybox rootfs as image `name`, after `customize` edited the rootfs.
    ///
    /// # Panics
    /// When tar or the import fails.
    pub fn import_busybox_with(&self, name: &str, customize: impl FnOnce(&Path)) {
        let rootfs = self.scratch.join(format!("rootfs-{name}"));
        crate::busybox_rootfs(&rootfs);
        customize(&rootfs);
        let tarball = self.scratch.join(format!("{name}.tar"));
        // Large rootfs files are hard links into a cache other tests link from at the same
        // time, which changes their ctime: GNU tar then warns "file changed as we read it" and
        // exits 1 although the content is whole (with --create, 1 means only that).
        let status = Command::new("tar")
            .arg("--warning=no-file-changed")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tarball)
            .arg(".")
            .status()
            .unwrap_or_else(|e| panic!("run tar: {e}"));
        assert!(
            matches!(status.code(), Some(0 | 1)),
            "tar the busybox rootfs: {status}"
        );
        let _ = self.ok(&["import", &tarball.to_string_lossy(), name]);
    }

    /// `berth inspect -f FORMAT OBJECT`, trimmed.
    #[must_use]
    pub fn inspect(&self, format: &str, object: &str) -> String {
        self.ok(&["inspect", "-f", format, object])
            .trim()
            .to_owned()
    }

    /// Mount points under either root.
    #[must_use]
    pub fn mounts(&self) -> Vec<PathBuf> {
        crate::mounts()
            .into_iter()
            .map(|m| m.point)
            .filter(|p| p.starts_with(&self.scratch) || p.starts_with(&self.run_root))
            .collect()
    }

    /// Full ids of every container (`ps -aq --no-trunc`).
    #[must_use]
    pub fn containers(&self) -> Vec<String> {
        self.ok(&["ps", "-aq", "--no-trunc"])
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for BerthRoots {
    fn drop(&mut self) {
        for id in self.containers() {
            let _ = self.cmd(&["rm", "-f", &id]);
        }
        let mut mounts = self.mounts();
        mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for m in mounts {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
        let _ = std::fs::remove_dir_all(&self.run_root);
    }
}

/// The directory of the v1 hierarchy `controller` (or cgroup2's, for `""`) whose name is `id`,
/// searched a few levels deep under `/sys/fs/cgroup`.
#[must_use]
pub fn cgroup_dir(controller: &str, id: &str) -> Option<PathBuf> {
    fn find(dir: &Path, id: &str, depth: u32) -> Option<PathBuf> {
        for e in std::fs::read_dir(dir).ok()?.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let p = e.path();
            if e.file_name().to_string_lossy() == id {
                return Some(p);
            }
            if depth > 0
                && let Some(found) = find(&p, id, depth - 1)
            {
                return Some(found);
            }
        }
        None
    }
    let base = Path::new("/sys/fs/cgroup").join(controller);
    find(&base, id, 4)
}

/// Polls `f` every 20 ms until it holds; fails the test after 20 s.
///
/// # Panics
/// On timeout.
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
