//! Running an OCI runtime binary (berth-runtime, runc, crun) against a private state root.

use crate::bundle::Bundle;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// How long [`Runtime::cmd`] waits for the runtime before killing it and failing the test.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Path of `berth-runtime`: `$BERTH_RUNTIME` when set, else the binary next to the running test
/// in `target/<profile>/`.
#[must_use]
pub fn runtime_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("BERTH_RUNTIME") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/berth-runtime
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    profile.join("berth-runtime")
}

/// The output of a command as text, for assertion messages.
#[must_use]
pub fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// An OCI runtime binary with a fresh state root (`--root`) in a `berth-test-` dir under /run,
/// removed on drop.
#[derive(Debug)]
pub struct Runtime {
    /// The runtime executable.
    pub bin: PathBuf,
    /// Its state directory, passed as `--root`.
    pub root: PathBuf,
    base: PathBuf,
    calls: AtomicU32,
}

impl Runtime {
    /// [`runtime_binary`] with a fresh state root.
    ///
    /// # Panics
    /// When the binary is missing: `cargo test -p <tests>` does not build other packages'
    /// binaries, so build it first (`cargo build --workspace --bins`, as `.ci/test` does).
    #[must_use]
    pub fn berth() -> Runtime {
        let bin = runtime_binary();
        assert!(
            bin.is_file(),
            "{} is missing: run `cargo build --workspace --bins` first (as .ci/test does) or set \
             BERTH_RUNTIME",
            bin.display()
        );
        Runtime::new(bin)
    }

    /// `bin` (say `"runc"`) with a fresh state root. Runs the [`janitor`](crate::janitor) first.
    ///
    /// # Panics
    /// When the state directory cannot be made.
    #[must_use]
    pub fn new(bin: impl Into<PathBuf>) -> Runtime {
        crate::janitor();
        let base = Path::new("/run").join(crate::unique_name("runtime"));
        let root = base.join("state");
        for dir in [&root, &base.join("io")] {
            fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        }
        Runtime {
            bin: bin.into(),
            root,
            base,
            calls: AtomicU32::new(0),
        }
    }

    /// `<bin> --root <root> <args>`, not yet run.
    #[must_use]
    pub fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root").arg(&self.root).args(args);
        cmd
    }

    /// Runs `<bin> --root <root> <args>` with stdin from /dev/null and stdout and stderr to
    /// files, waits for the runtime to exit (not for containers holding its stdio, so `create`
    /// and `run -d` return) and returns what it printed. Does not check the exit status.
    ///
    /// # Panics
    /// When the runtime cannot be started or runs longer than [`COMMAND_TIMEOUT`].
    pub fn cmd<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let out_path = self.base.join(format!("io/{n}.out"));
        let err_path = self.base.join(format!("io/{n}.err"));
        let create = |p: &Path| {
            fs::File::create(p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()))
        };
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::null())
            .stdout(create(&out_path))
            .stderr(create(&err_path));
        let what = format!("{cmd:?}");
        let status = wait_timeout(&mut cmd, COMMAND_TIMEOUT)
            .unwrap_or_else(|| panic!("{what} ran longer than {COMMAND_TIMEOUT:?}; killed"));
        let read = |p: &Path| fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
        Output {
            status,
            stdout: read(&out_path),
            stderr: read(&err_path),
        }
    }

    /// [`cmd`](Self::cmd), failing the test with the runtime's output unless it exits 0.
    ///
    /// # Panics
    /// When the runtime fails.
    pub fn ok<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        let out = self.cmd(args);
        assert!(
            out.status.success(),
            "{} --root {} {:?} failed: {}",
            self.bin.display(),
            self.root.display(),
            args.iter()
                .map(|a| a.as_ref().to_string_lossy())
                .collect::<Vec<_>>(),
            describe(&out)
        );
        out
    }

    /// `run --bundle <bundle> <id>` in the foreground: the output is the container's.
    pub fn run(&self, bundle: &Bundle, id: &str) -> Output {
        self.cmd(&[
            OsStr::new("run"),
            OsStr::new("--bundle"),
            bundle.path().as_os_str(),
            OsStr::new(id),
        ])
    }

    /// A guard that force-deletes container `id` on drop and checks nothing of it is left.
    #[must_use]
    pub fn guard(&self, id: &str) -> ContainerGuard {
        ContainerGuard {
            bin: self.bin.clone(),
            root: self.root.clone(),
            id: id.to_owned(),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        crate::janitor::unmount_under(&self.base);
        if let Err(e) = fs::remove_dir_all(&self.base) {
            eprintln!("testutil: remove {}: {e}", self.base.display());
        }
    }
}

/// Spawns `cmd` and waits at most `timeout` for it to exit; on timeout kills it and returns None.
///
/// # Panics
/// When the command cannot be spawned.
pub fn wait_timeout(cmd: &mut Command, timeout: Duration) -> Option<std::process::ExitStatus> {
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let pid = i32::try_from(child.id()).unwrap_or(0);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    match rx.recv_timeout(timeout) {
        Ok(status) => Some(status.unwrap_or_else(|e| panic!("wait {pid}: {e}"))),
        Err(_) => {
            let _ = crate::sys::kill9(pid);
            None
        }
    }
}

/// Force-deletes a container on drop (`<bin> --root <root> delete --force <id>`), then fails the
/// test if a state directory, mount, cgroup or network namespace naming the id is left.
#[derive(Debug)]
pub struct ContainerGuard {
    bin: PathBuf,
    root: PathBuf,
    id: String,
}

impl ContainerGuard {
    /// The container id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root")
            .arg(&self.root)
            .args(["delete", "--force", &self.id]);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = wait_timeout(&mut cmd, COMMAND_TIMEOUT);
        let mut left = crate::leaks_of(&self.id);
        let state = self.root.join(&self.id);
        if state.exists() {
            left.push(format!("state dir {}", state.display()));
        }
        if left.is_empty() {
            return;
        }
        // Clean up what can be, so one failure does not spread to later tests.
        for l in &left {
            if let Some(cg) = l.strip_prefix("cgroup ") {
                let _ = crate::janitor::remove_cgroup(Path::new(cg));
            }
        }
        let msg = format!(
            "container {} left behind after delete --force: {left:#?}",
            self.id
        );
        if std::thread::panicking() {
            eprintln!("testutil: {msg}");
        } else {
            panic!("{msg}");
        }
    }
}
