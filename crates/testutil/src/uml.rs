//! Booting a User-Mode Linux guest (Debian `user-mode-linux`, a pure cgroup v2 kernel) to run a
//! shell script in, for tests of cgroup v2 behaviour on a host that is not v2.
//!
//! The guest's root is the host's `/`, read-only over hostfs, so ordinary test binaries and
//! `target/` run inside unchanged. Its init script mounts proc, sysfs, cgroup2 on
//! `/sys/fs/cgroup` and tmpfs on `/run` (writable; `TMPDIR` points below it), mounts the run's
//! results directory (host side: [`UmlRun::result_file`]) writable at [`GUEST_RESULTS`], runs the
//! caller's script, prints a marker with its exit status on the console (the guest's exit
//! status does not reach the host) and powers off. The host `/tmp` stays visible, read-only.
//!
//! ```no_run
//! let Some(uml) = testutil::Uml::new() else { return };
//! let run = uml.boot(&testutil::UmlConfig::new("echo ok > $BERTH_UML_RESULTS/out"));
//! assert_eq!(run.marker(), Some(0), "{}", run.console());
//! assert_eq!(run.result_file("out").as_deref(), Some("ok\n"));
//! ```

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The UML kernel binary Debian's `user-mode-linux` installs in `/usr/bin`.
pub const UML_BINARY: &str = "linux.uml";

/// Where the guest sees the run's writable results directory (also `$BERTH_UML_RESULTS`).
pub const GUEST_RESULTS: &str = "/run/berth-uml-results";

/// The console line the init script prints after the caller's script: `<MARKER><status>`.
const MARKER: &str = "berth-uml-exit=";

/// The path of `linux.uml` in `$PATH` (or `/usr/bin`), if installed.
#[must_use]
pub fn linux_uml() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join(UML_BINARY))
        .find(|p| p.is_file())
}

/// What to boot: guest memory, a time limit, environment and the script.
#[derive(Clone, Debug)]
pub struct UmlConfig {
    /// Guest memory in MiB.
    pub mem_mib: u32,
    /// The whole boot (kernel, script, power-off) is killed after this long.
    pub timeout: Duration,
    /// Exported in the guest before the script runs.
    pub env: Vec<(String, String)>,
    /// Shell (`/bin/sh`) run as a subshell of the guest's init.
    pub script: String,
}

impl UmlConfig {
    /// 256 MiB, 100 s, no extra environment.
    #[must_use]
    pub fn new(script: impl Into<String>) -> Self {
        Self {
            mem_mib: 256,
            timeout: Duration::from_secs(100),
            env: Vec::new(),
            script: script.into(),
        }
    }
}

/// A `berth-test-` host directory for UML boots, removed on drop. The guest sees it read-only
/// at the same path, so files staged in [`dir`](Uml::dir) before a boot are readable inside.
#[derive(Debug)]
pub struct Uml {
    bin: PathBuf,
    dir: PathBuf,
    boots: AtomicU32,
}

impl Uml {
    /// `None` (with a message on stderr) when `linux.uml` is not installed, except under
    /// `CI=true`, where that is a failure.
    ///
    /// # Panics
    /// Under `CI=true` without `linux.uml`, or when the directory cannot be made.
    #[must_use]
    pub fn new() -> Option<Uml> {
        let Some(bin) = linux_uml() else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{UML_BINARY} not found (Debian package user-mode-linux), and CI=true forbids \
                 skipping"
            );
            eprintln!("skipped: {UML_BINARY} not found (install Debian's user-mode-linux)");
            return None;
        };
        crate::janitor();
        let dir = std::env::temp_dir().join(crate::unique_name("uml"));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        Some(Uml {
            bin,
            dir,
            boots: AtomicU32::new(0),
        })
    }

    /// The host directory (readable in the guest at the same path).
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Boots the guest, runs `cfg.script` and waits for power-off or `cfg.timeout` (then the
    /// guest's whole process group is killed). Every UML process has exited when this returns.
    ///
    /// # Panics
    /// When the boot files cannot be written or `linux.uml` cannot be started.
    #[must_use]
    pub fn boot(&self, cfg: &UmlConfig) -> UmlRun {
        let n = self.boots.fetch_add(1, Ordering::Relaxed);
        let boot_dir = self.dir.join(format!("boot-{n}"));
        let results = boot_dir.join("results");
        let uml_dir = boot_dir.join("uml");
        for d in [&results, &uml_dir] {
            fs::create_dir_all(d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
        }
        let init = boot_dir.join("init.sh");
        fs::write(&init, init_script(cfg, &results))
            .unwrap_or_else(|e| panic!("write {}: {e}", init.display()));
        fs::set_permissions(&init, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", init.display()));
        let console_path = boot_dir.join("console.log");
        let console =
            fs::File::create(&console_path).unwrap_or_else(|e| panic!("create console: {e}"));
        let console_err = console
            .try_clone()
            .unwrap_or_else(|e| panic!("dup console: {e}"));
        let mut cmd = Command::new(&self.bin);
        cmd.arg(format!("mem={}M", cfg.mem_mib))
            .args(["root=/dev/root", "rootfstype=hostfs", "rootflags=/", "ro"])
            .arg(format!("init={}", init.display()))
            .args(["con=null", "con0=fd:0,fd:1", "quiet", "pty.legacy_count=0"])
            .arg(format!("uml_dir={}", uml_dir.display()))
            .arg(format!("umid=berth-{}-{n}", std::process::id()))
            .stdin(Stdio::null())
            .stdout(console)
            .stderr(console_err)
            // UML runs one host process per guest address space; a group kill ends them all.
            .process_group(0);
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        let pgid = i32::try_from(child.id()).unwrap_or(0);
        let mut timed_out = false;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if started.elapsed() < cfg.timeout => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok(None) | Err(_) => {
                    timed_out = true;
                    let _ = crate::sys::kill9(-pgid);
                    let _ = child.wait();
                    break;
                }
            }
        }
        // Helpers that outlive the kernel process would keep the group alive; once killed they
        // are reaped by init (they are the kernel process's children, not ours).
        let _ = crate::sys::kill9(-pgid);
        let gone_by = Instant::now() + Duration::from_secs(5);
        while crate::sys::group_exists(pgid) && Instant::now() < gone_by {
            std::thread::sleep(Duration::from_millis(20));
        }
        let console = fs::read(&console_path).unwrap_or_default();
        UmlRun {
            console: String::from_utf8_lossy(&console).into_owned(),
            results,
            timed_out,
            elapsed: started.elapsed(),
        }
    }
}

impl Drop for Uml {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!("testutil: remove {}: {e}", self.dir.display());
        }
    }
}

/// One finished boot.
#[derive(Debug)]
pub struct UmlRun {
    console: String,
    results: PathBuf,
    timed_out: bool,
    elapsed: Duration,
}

impl UmlRun {
    /// The script's exit status, from the console marker; `None` when the guest never got
    /// there (crash, timeout).
    #[must_use]
    pub fn marker(&self) -> Option<i32> {
        self.console
            .lines()
            .find_map(|l| l.trim().strip_prefix(MARKER)?.parse().ok())
    }

    /// Everything the guest printed on its console (kernel messages and the script's output).
    #[must_use]
    pub fn console(&self) -> &str {
        &self.console
    }

    /// A file the guest wrote in [`GUEST_RESULTS`].
    #[must_use]
    pub fn result_file(&self, name: &str) -> Option<String> {
        fs::read_to_string(self.results.join(name)).ok()
    }

    /// Whether the boot was killed at the time limit.
    #[must_use]
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }

    /// How long the boot took.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
}

/// `'…'` quoting for the guest's `/bin/sh`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn init_script(cfg: &UmlConfig, results: &Path) -> String {
    let mut s = String::from(
        "#!/bin/sh\n\
         # berth-test UML init: generated by testutil::uml.\n\
         export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sysfs /sys\n\
         mount -t cgroup2 cgroup2 /sys/fs/cgroup\n\
         mount -t tmpfs -o mode=755 tmpfs /run\n\
         mkdir -p /run/tmp && chmod 1777 /run/tmp\n",
    );
    let _ = writeln!(s, "mkdir -p {GUEST_RESULTS}");
    let _ = writeln!(
        s,
        "mount -t hostfs -o {} hostfs {GUEST_RESULTS}",
        shell_quote(&results.display().to_string())
    );
    let _ = writeln!(
        s,
        "export TMPDIR=/run/tmp BERTH_UML_RESULTS={GUEST_RESULTS}"
    );
    for (k, v) in &cfg.env {
        let _ = writeln!(s, "export {k}={}", shell_quote(v));
    }
    let _ = writeln!(s, "(\n{}\n)\nrc=$?", cfg.script);
    let _ = writeln!(s, "echo {MARKER}$rc");
    s.push_str("sync\n/bin/busybox poweroff -f\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_script() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
        let mut cfg = UmlConfig::new("true");
        cfg.env.push(("X".into(), "y z".into()));
        let s = init_script(&cfg, Path::new("/tmp/r"));
        assert!(s.contains("export X='y z'\n"));
        assert!(s.contains("mount -t hostfs -o '/tmp/r' hostfs /run/berth-uml-results\n"));
        assert!(s.contains("(\ntrue\n)\nrc=$?\necho berth-uml-exit=$rc\n"));
    }
}
