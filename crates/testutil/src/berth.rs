//! [`BerthCli`]: the `berth` binary under private `--root` / `--run-root` directories named with
//! the test prefix, torn down on drop (containers removed, stray mounts detached, dirs removed).

use crate::runtime::{describe, runtime_binary};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// One test's `berth`: its roots live in `<tmp>/berth-test-<pid>-<n>-<tag>/root` and
/// `/run/berth-test-<pid>-<n>-<tag>`; `scratch` is free for the test's own files.
#[derive(Debug)]
pub struct BerthCli {
    /// `--root`.
    pub root: PathBuf,
    /// `--run-root`.
    pub run_root: PathBuf,
    /// The test's private directory (holds `root`).
    pub scratch: PathBuf,
}

impl BerthCli {
    /// Fresh roots for the test `tag`.
    ///
    /// # Panics
    /// The scratch directory cannot be created.
    #[must_use]
    pub fn new(tag: &str) -> BerthCli {
        let name = crate::unique_name(tag);
        let scratch = std::env::temp_dir().join(&name);
        let b = BerthCli {
            root: scratch.join("root"),
            run_root: Path::new("/run").join(&name),
            scratch,
        };
        std::fs::create_dir_all(&b.scratch)
            .unwrap_or_else(|e| panic!("create {}: {e}", b.scratch.display()));
        b
    }

    /// `target/<profile>/berth`.
    #[must_use]
    pub fn binary() -> PathBuf {
        runtime_binary().with_file_name("berth")
    }

    /// A `berth` command with this test's roots.
    #[must_use]
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(Self::binary());
        c.arg("--root")
            .arg(&self.root)
            .arg("--run-root")
            .arg(&self.run_root)
            .args(args);
        c
    }

    /// Runs `berth args` with stdin closed.
    ///
    /// # Panics
    /// berth cannot be spawned.
    #[must_use]
    pub fn cmd(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("spawn berth: {e}"))
    }

    /// Runs `berth args` with `input` on stdin.
    ///
    /// # Panics
    /// berth cannot be spawned.
    #[must_use]
    pub fn cmd_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn berth: {e}"));
        let mut stdin = child.stdin.take();
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            if let Some(s) = stdin.as_mut() {
                // berth may stop reading early (a rejected archive): a broken pipe is expected.
                let _ = s.write_all(&input);
            }
        });
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("wait for berth: {e}"));
        let _ = writer.join();
        out
    }

    /// Runs `berth args` and asserts success.
    ///
    /// # Panics
    /// berth fails.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.cmd(args);
        assert!(out.status.success(), "berth {args:?}: {}", describe(&out));
        out
    }

    /// Stdout of a successful `berth args`.
    ///
    /// # Panics
    /// berth fails.
    #[must_use]
    pub fn stdout(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.ok(args).stdout).into_owned()
    }

    /// Mounts under either root.
    #[must_use]
    pub fn mounts(&self) -> Vec<PathBuf> {
        crate::mounts()
            .into_iter()
            .map(|m| m.point)
            .filter(|p| p.starts_with(&self.scratch) || p.starts_with(&self.run_root))
            .collect()
    }
}

impl Drop for BerthCli {
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
