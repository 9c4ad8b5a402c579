//! [`Berth`]: the `berth` binary under a test's private `--root` and `--run-root`, named with
//! the [`PREFIX`](crate::PREFIX) so the janitor can sweep them, with a busybox image import
//! and a `Drop` that leaves nothing behind (containers, monitors, mounts, directories) even
//! when the test fails; plus probes for what a container can leave behind.
//!
//! Every `berth` command runs inside a network namespace the test made (`nsenter --net=`):
//! berth's default network is Docker's `bridge`, and no test may create a bridge, veth, nft
//! rule or sysctl in the host's namespace. There is no way to run the test binary outside it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::describe;

/// `target/<profile>/berth`, next to berth-runtime.
#[must_use]
pub fn berth_binary() -> PathBuf {
    crate::runtime_binary().with_file_name("berth")
}

/// One test's `berth`: its roots live in `<tmp>/berth-test-<pid>-<n>-<tag>/root` and
/// `/run/berth-test-<pid>-<n>-<tag>`; `scratch` is free for the test's own files; every
/// command runs in the network namespace `netns`.
#[derive(Debug)]
pub struct Berth {
    /// `--root`.
    pub root: PathBuf,
    /// `--run-root`.
    pub run_root: PathBuf,
    /// The test's private directory (holds `root`), removed on drop.
    pub scratch: PathBuf,
    /// The network namespace every `berth` command runs in; deleted after the containers,
    /// when the last [`Berth`] sharing it ([`Berth::sharing_netns`]) is dropped.
    pub netns: Arc<crate::NetnsGuard>,
}

impl Berth {
    /// Fresh roots for the test `tag`, in a fresh network namespace of their own (loopback
    /// up, nothing else).
    ///
    /// # Panics
    /// The scratch directory or the namespace cannot be created (the namespace needs root:
    /// check [`require_root`](crate::require_root) first).
    #[must_use]
    pub fn new(tag: &str) -> Berth {
        Berth::in_namespace(tag, Arc::new(crate::NetnsGuard::without_janitor()))
    }

    /// Other fresh roots for the test `tag` whose commands run in this one's network
    /// namespace (a second engine reaching the same loopback registry, say).
    #[must_use]
    pub fn sharing_netns(&self, tag: &str) -> Berth {
        Berth::in_namespace(tag, Arc::clone(&self.netns))
    }

    fn in_namespace(tag: &str, netns: Arc<crate::NetnsGuard>) -> Berth {
        let name = crate::unique_name(tag);
        let scratch = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&scratch)
            .unwrap_or_else(|e| panic!("create {}: {e}", scratch.display()));
        // No test reaches a registry off this machine: every registry is blocked unless a
        // test writes its own configuration (see `registry_config`).
        std::fs::write(
            scratch.join("registries.json"),
            r#"{"blocked-registries": ["*"]}"#,
        )
        .unwrap_or_else(|e| panic!("write registry configuration: {e}"));
        Berth {
            root: scratch.join("root"),
            run_root: Path::new("/run").join(&name),
            scratch,
            netns,
        }
    }

    /// Runs `argv` in the test's network namespace, returning its output whatever the exit
    /// status.
    ///
    /// # Panics
    /// The program cannot be spawned.
    #[must_use]
    pub fn in_ns(&self, argv: &[&str]) -> Output {
        let (program, args) = argv
            .split_first()
            .unwrap_or_else(|| panic!("empty command"));
        self.netns
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {argv:?}: {e}"))
    }

    /// Fresh roots with the busybox image imported as `bb`; `None` (the test skips) without
    /// root.
    #[must_use]
    pub fn with_busybox(tag: &str) -> Option<Berth> {
        if !crate::require_root() {
            return None;
        }
        let b = Berth::new(tag);
        b.import_busybox("bb");
        Some(b)
    }

    /// A `berth` command with this test's roots, in its network namespace (stdin inherited
    /// unless the caller sets it).
    #[must_use]
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = self.netns.command(berth_binary());
        c.arg("--root")
            .arg(&self.root)
            .arg("--run-root")
            .arg(&self.run_root)
            .args(args)
            .env(
                "BERTH_REGISTRY_CONFIG",
                self.scratch.join("registries.json"),
            )
            .env("DOCKER_CONFIG", self.scratch.join("docker"));
        c
    }

    /// `berth args` with this test's roots as one shell command line, in its network
    /// namespace (for a terminal multiplexer to run). `args` is pasted as it is.
    #[must_use]
    pub fn shell(&self, args: &str) -> String {
        format!(
            "nsenter --net={} -- {} --root {} --run-root {} {args}",
            self.netns.path().display(),
            berth_binary().display(),
            self.root.display(),
            self.run_root.display()
        )
    }

    /// Replaces this test's registry configuration (dockerd's `daemon.json` keys; the default
    /// blocks every registry).
    ///
    /// # Panics
    /// The file cannot be written.
    pub fn registry_config(&self, json: &str) {
        std::fs::write(self.scratch.join("registries.json"), json)
            .unwrap_or_else(|e| panic!("write registry configuration: {e}"));
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
    pub fn stdout(&self, args: &[&str]) -> String {
        stdout(&self.ok(args))
    }

    /// `berth inspect -f FORMAT OBJECT`, trimmed.
    ///
    /// # Panics
    /// berth fails.
    #[must_use]
    pub fn inspect(&self, format: &str, object: &str) -> String {
        self.stdout(&["inspect", "-f", format, object])
            .trim()
            .to_owned()
    }

    /// Imports a busybox rootfs as image `name`; returns the image id.
    ///
    /// # Panics
    /// The tarball or the import fails.
    pub fn import_busybox(&self, name: &str) -> String {
        self.import_busybox_with(name, |_| {})
    }

    /// Imports a busybox rootfs as image `name` after `customize` edited it; returns the image
    /// id. The tarball is written with the `tar` crate: GNU tar fails with "file changed as we
    /// read it" when another test hard-links the shared busybox binary meanwhile.
    ///
    /// # Panics
    /// The tarball or the import fails.
    pub fn import_busybox_with(&self, name: &str, customize: impl FnOnce(&Path)) -> String {
        let rootfs = self.scratch.join(format!("rootfs-{name}"));
        crate::busybox_rootfs(&rootfs);
        customize(&rootfs);
        let tarball = self.scratch.join(format!("{name}.tar"));
        crate::images::tar_dir(&rootfs, &tarball);
        self.stdout(&["import", &tarball.to_string_lossy(), name])
            .trim()
            .to_owned()
    }

    /// Full ids of every container (`ps -aq --no-trunc`).
    ///
    /// # Panics
    /// berth fails.
    #[must_use]
    pub fn containers(&self) -> Vec<String> {
        self.stdout(&["ps", "-aq", "--no-trunc"])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Mount points under either root.
    #[must_use]
    pub fn mounts(&self) -> Vec<PathBuf> {
        mounts_under(&[&self.scratch, &self.run_root])
    }

    /// Everything container `id` could have left behind: mounts under the roots, cgroups
    /// named after it, processes naming it; empty when nothing is left.
    #[must_use]
    pub fn leftovers(&self, id: &str) -> String {
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
    ///
    /// # Panics
    /// It finds something.
    pub fn assert_consistent(&self) {
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

impl Drop for Berth {
    fn drop(&mut self) {
        let ids = self.cmd(&["ps", "-aq", "--no-trunc"]);
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let _ = self.cmd(&["rm", "-f", id]);
        }
        // What a killed berth or monitor left: orphan runtime state, mounts; then any monitor
        // still running under this run root (its command line names it).
        let _ = self.cmd(&["system", "check"]);
        for pid in processes_with(&self.run_root.to_string_lossy()) {
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

/// A command's stdout as text.
#[must_use]
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Mount points at or below any of `dirs`.
#[must_use]
pub fn mounts_under(dirs: &[&Path]) -> Vec<PathBuf> {
    crate::mounts()
        .into_iter()
        .map(|m| m.point)
        .filter(|p| dirs.iter().any(|d| p.starts_with(d)))
        .collect()
}

/// Cgroup directories (any hierarchy, any depth up to 4) whose name contains `id`.
#[must_use]
pub fn cgroups_named(id: &str) -> Vec<PathBuf> {
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

/// Processes (other than this one) whose command line mentions `needle`.
#[must_use]
pub fn processes_with(needle: &str) -> Vec<u32> {
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

/// Polls `f` every 20 ms for up to 30 s; whether it came to hold.
pub fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` until it holds ([`eventually`]); fails the test on timeout.
///
/// # Panics
/// On timeout.
pub fn wait_until(what: &str, f: impl FnMut() -> bool) {
    assert!(eventually(f), "timed out waiting for {what}");
}
