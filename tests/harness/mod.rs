//! The `berth` binary under private roots, shared by the end-to-end test targets
//! (`mod harness;`): each test gets its own `berth-test-` root and run root, and drop removes
//! its containers, mounts and directories.

// Each test target uses its own subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
    /// A scratch directory holding `root`, removed on drop.
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
        let st = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tarball)
            .arg(".")
            .status()
            .expect("run tar");
        assert!(st.success(), "tar busybox rootfs");
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
        let mut mounts = self.mounts();
        mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for m in mounts {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
        let _ = std::fs::remove_dir_all(&self.run_root);
    }
}

/// A command's stdout as text.
pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
