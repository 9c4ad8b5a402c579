//! The `berth` binary under private roots, for the end-to-end test targets that drive it
//! (`berth_cli`, `berth_system`, `berth_crash`): a [`Berth`] per test with its own
//! `berth-test-` `--root` and `--run-root`, torn down on drop (containers, mounts, dirs), and
//! probes for what a container can leave behind (mounts, cgroups, processes).

#![allow(dead_code, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use testutil::describe;

/// `target/<profile>/berth`, next to berth-runtime.
pub(crate) fn berth_binary() -> PathBuf {
    testutil::runtime_binary().with_file_name("berth")
}

/// Private `--root` and `--run-root` for one test, torn down on drop.
pub(crate) struct Berth {
    /// `--root`.
    pub(crate) root: PathBuf,
    /// `--run-root`.
    pub(crate) run_root: PathBuf,
    /// Scratch directory holding the root.
    pub(crate) scratch: PathBuf,
}

impl Berth {
    pub(crate) fn new(tag: &str) -> Berth {
        let name = testutil::unique_name(tag);
        let scratch = std::env::temp_dir().join(&name);
        let b = Berth {
            root: scratch.join("root"),
            run_root: Path::new("/run").join(&name),
            scratch,
        };
        std::fs::create_dir_all(&b.scratch).expect("create scratch dir");
        b
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(berth_binary());
        c.arg("--root")
            .arg(&self.root)
            .arg("--run-root")
            .arg(&self.run_root)
            .args(args);
        c
    }

    pub(crate) fn cmd(&self, args: &[&str]) -> Output {
        let mut c = self.command(args);
        c.stdin(std::process::Stdio::null());
        let child = c.output();
        child.expect("spawn berth")
    }

    pub(crate) fn ok(&self, args: &[&str]) -> Output {
        let out = self.cmd(args);
        assert!(out.status.success(), "berth {args:?}: {}", describe(&out));
        out
    }

    /// Imports a busybox rootfs tarball as `name`.
    pub(crate) fn import_busybox(&self, name: &str) -> String {
        let rootfs = self.scratch.join("rootfs");
        testutil::busybox_rootfs(&rootfs);
        let tarball = self.scratch.join("busybox.tar");
        // The rootfs's binaries are hard links into a cache other tests link from at the same
        // time: a link count change (ctime) makes GNU tar report "file changed as we read it".
        // The content is what it was; try again.
        let mut tries = 0;
        loop {
            let st = Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .arg("-cf")
                .arg(&tarball)
                .arg(".")
                .status()
                .expect("run tar");
            tries += 1;
            if st.success() {
                break;
            }
            assert!(tries < 10, "tar busybox rootfs");
        }
        let out = self.ok(&["import", tarball.to_str().expect("utf-8 path"), name]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Mounts under either root.
    pub(crate) fn mounts(&self) -> Vec<PathBuf> {
        testutil::mounts()
            .into_iter()
            .map(|m| m.point)
            .filter(|p| p.starts_with(&self.scratch) || p.starts_with(&self.run_root))
            .collect()
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        let ids = self.cmd(&["ps", "-aq", "--no-trunc"]);
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let _ = self.cmd(&["rm", "-f", id]);
        }
        // What a killed berth or monitor left: orphan runtime state, mounts; then any monitor
        // still running under this run root (its command line names it).
        let _ = self.cmd(&["system", "check"]);
        let run_root = self.run_root.to_string_lossy().into_owned();
        for pid in processes_with(&run_root) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
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

impl Berth {
    /// Private roots with the busybox image imported as `bb`; `None` (the test skips) without
    /// root.
    pub(crate) fn with_busybox(tag: &str) -> Option<Berth> {
        if !testutil::require_root() {
            return None;
        }
        let b = Berth::new(tag);
        b.import_busybox("bb");
        Some(b)
    }

    /// Everything container `id` could have left behind: mounts under the roots, cgroups
    /// named after it, processes naming it; empty when nothing is left.
    pub(crate) fn leftovers(&self, id: &str) -> String {
        let mut out = String::new();
        let mounts: Vec<PathBuf> = self
            .mounts()
            .into_iter()
            .filter(|m| m.to_string_lossy().contains(id))
            .collect();
        if !mounts.is_empty() {
            out.push_str(&format!("mounts {mounts:?} "));
        }
        let cgroups = cgroups_named(id);
        if !cgroups.is_empty() {
            out.push_str(&format!("cgroups {cgroups:?} "));
        }
        let procs = processes_with(id);
        if !procs.is_empty() {
            out.push_str(&format!("processes {procs:?}"));
        }
        out
    }

    /// Asserts that `system check --dry-run` finds nothing.
    pub(crate) fn assert_consistent(&self) {
        let out = self.cmd(&["system", "check", "--dry-run"]);
        assert_eq!(
            stdout(&out),
            "no problems found\n",
            "system check: {}",
            describe(&out)
        );
        assert_eq!(out.status.code(), Some(0));
    }
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Cgroup directories (any hierarchy, any depth up to 4) whose name contains `id`.
pub(crate) fn cgroups_named(id: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, id: &str, depth: u32, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if e.file_name().to_string_lossy().contains(id) {
                out.push(p.clone());
            }
            if depth < 4 {
                walk(&p, id, depth + 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), id, 0, &mut out);
    out
}

/// Processes whose command line mentions `needle`.
pub(crate) fn processes_with(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if pid != std::process::id() && String::from_utf8_lossy(&cmdline).contains(needle) {
            out.push(pid);
        }
    }
    out
}

pub(crate) fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
