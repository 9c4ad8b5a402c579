//! Support for the shared cgroup suite: a Drop guard per test cgroup, a helper process (this
//! same test binary re-run in helper mode) that tests move into a cgroup and then tell to act,
//! and polling with deadlines.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::Once;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use cgroups::{CgroupManager, ManagerOptions, new_manager};

/// The cgroup root under test: `BERTH_CGROUP_ROOT` or `/sys/fs/cgroup`.
pub(crate) fn root() -> PathBuf {
    std::env::var_os("BERTH_CGROUP_ROOT")
        .map_or_else(|| PathBuf::from("/sys/fs/cgroup"), PathBuf::from)
}

/// Environment variable that turns the `helper_entry` test into a helper process.
pub(crate) const HELPER_ENV: &str = "BERTH_CG_HELPER";

/// Prints a line the UML runner collects: a test that could not run its check here.
pub(crate) fn skip(test: &str, why: &str) {
    println!("SUITE-SKIP: {test}: {why}");
}

/// A test cgroup named `/berth-test-…` that kills its tasks and removes itself on drop.
pub(crate) struct TestCgroup {
    pub(crate) mgr: Box<dyn CgroupManager>,
    pub(crate) name: String,
}

impl TestCgroup {
    pub(crate) fn new(root: &Path, tag: &str) -> Self {
        static SWEEP: Once = Once::new();
        SWEEP.call_once(|| sweep(root));
        let name = testutil::unique_name(tag);
        let opts = ManagerOptions {
            root: root.to_owned(),
            cgroups_path: Some(format!("/{name}")),
            container_id: name.clone(),
            systemd: false,
            caller_cgroups: None,
        };
        let mgr = new_manager(&opts).expect("new_manager");
        Self { mgr, name }
    }

    /// The directory of `controller` (`""` for v2).
    pub(crate) fn dir(&self, controller: &str) -> PathBuf {
        let paths = self.mgr.paths();
        paths
            .get(controller)
            .or_else(|| paths.get(""))
            .cloned()
            .unwrap_or_else(|| panic!("no directory for {controller} in {paths:?}"))
    }

    pub(crate) fn is_v2(&self) -> bool {
        self.mgr.hierarchy() == cgroups::Hierarchy::V2
    }

    /// Reads an interface file of `controller`'s directory.
    pub(crate) fn read(&self, controller: &str, file: &str) -> String {
        let p = self.dir(controller).join(file);
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
            .trim()
            .to_owned()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = self.mgr.kill_all(libc::SIGKILL);
        let _ = wait_until(Duration::from_secs(5), || {
            self.mgr.pids().map(|p| p.is_empty()).unwrap_or(true)
        });
        if let Err(e) = self.mgr.destroy() {
            eprintln!("cleanup of {} failed: {e}", self.name);
        }
    }
}

/// Removes empty `berth-test-<pid>-…` cgroups left by earlier runs whose process is gone.
fn sweep(root: &Path) {
    let mut dirs = vec![root.to_owned()];
    if let Ok(rd) = std::fs::read_dir(root) {
        dirs.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(testutil::PREFIX) else {
                continue;
            };
            let pid = rest.split('-').next().unwrap_or("");
            if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }
}

/// Polls `f` until true or `timeout`; returns whether it became true.
pub(crate) fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut step = Duration::from_millis(2);
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(step);
        step = (step * 2).min(Duration::from_millis(50));
    }
}

/// A helper process: this test binary running `helper_entry` with [`HELPER_ENV`] set. It waits
/// for `go` on stdin before acting, so a test can move it into a cgroup first.
pub(crate) struct Helper {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Helper {
    pub(crate) fn spawn(mode: &str) -> Self {
        let exe = std::env::current_exe().expect("current_exe");
        let mut child = Command::new(exe)
            .args([
                "helper_entry",
                "--exact",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env(HELPER_ENV, mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn helper");
        let stdout = child.stdout.take().expect("helper stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            lines: rx,
        }
    }

    pub(crate) fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid")
    }

    /// Tells the helper to start.
    pub(crate) fn go(&mut self) {
        let stdin = self.stdin.as_mut().expect("helper stdin");
        stdin.write_all(b"go\n").expect("write go");
        stdin.flush().expect("flush go");
    }

    /// Closes stdin: the helper cleans up and exits.
    pub(crate) fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next line the helper prints that starts with `HELPER <word>`.
    pub(crate) fn expect(&self, word: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let prefix = format!("HELPER {word}");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(&prefix) => return l,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!("helper printed no {prefix:?} within {timeout:?}")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("helper exited before printing {prefix:?}")
                }
            }
        }
    }

    /// Waits (bounded) for the helper to exit.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut status = None;
        let ok = wait_until(timeout, || {
            status = self.child.try_wait().expect("try_wait");
            status.is_some()
        });
        assert!(
            ok,
            "helper {} did not exit within {timeout:?}",
            self.child.id()
        );
        status.expect("status")
    }

    pub(crate) fn killed_by(status: ExitStatus) -> Option<i32> {
        status.signal()
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The helper side. Modes: `idle`, `spin`, `alloc:<MiB>`, `forks:<n>`, `open:<path>,<path>`.
pub(crate) fn helper_main(mode: &str) -> ! {
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    let out = |s: String| {
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "HELPER {s}");
        let _ = o.flush();
    };
    let wait_stdin = || {
        let mut l = String::new();
        while std::io::stdin().read_line(&mut l).is_ok_and(|n| n > 0) {
            l.clear();
        }
    };
    let (name, arg) = mode.split_once(':').unwrap_or((mode, ""));
    match name {
        "idle" => {
            out("ready".into());
            wait_stdin();
        }
        "spin" => {
            out("ready".into());
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        "alloc" => {
            let mib: usize = arg.parse().unwrap_or(64);
            let mut keep: Vec<Vec<u8>> = Vec::new();
            for i in 0..mib {
                keep.push(vec![1u8; 1 << 20]);
                if i % 8 == 0 {
                    out(format!("allocated {i}"));
                }
            }
            out(format!("alloc-done {}", keep.len()));
            wait_stdin();
        }
        "forks" => {
            let n: usize = arg.parse().unwrap_or(32);
            let mut kids = Vec::new();
            let mut errno = 0;
            for _ in 0..n {
                match Command::new("/bin/sleep")
                    .arg("1000")
                    .stdin(Stdio::null())
                    .spawn()
                {
                    Ok(c) => kids.push(c),
                    Err(e) => {
                        errno = e.raw_os_error().unwrap_or(-1);
                        break;
                    }
                }
            }
            out(format!("forks ok={} errno={errno}", kids.len()));
            wait_stdin();
            for k in &mut kids {
                let _ = k.kill();
                let _ = k.wait();
            }
        }
        "open" => {
            for p in arg.split(',') {
                match std::fs::File::open(p) {
                    Ok(_) => out(format!("open {p} ok")),
                    Err(e) => out(format!("open {p} errno={}", e.raw_os_error().unwrap_or(-1))),
                }
            }
            out("open-done".into());
            wait_stdin();
        }
        other => out(format!("unknown mode {other}")),
    }
    std::process::exit(0)
}
