//! Boots a User-Mode Linux guest (Debian's `user-mode-linux`) to run tests on a real, different
//! kernel, such as a pure cgroup v2 one.
//!
//! The host `/` is the guest's read-only root (hostfs), so ordinary test binaries run inside
//! unchanged. The init script mounts proc, sysfs, devtmpfs, tmpfs on `/tmp` and a writable hostfs
//! directory on `/mnt` (the [`UmlRun::results`] directory on the host), runs the caller's shell
//! body and powers off. The guest's exit status does not reach the host: have the body print a
//! marker line and look for it in [`UmlRun::console`].

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Where Debian installs the UML kernel.
pub const LINUX_UML: &str = "/usr/bin/linux.uml";

/// Modules for the UML kernel, for bodies that need overlayfs, veth and the like.
pub const UML_MODULES: &str = "/usr/lib/uml/modules";

/// The UML kernel, if installed.
#[must_use]
pub fn linux_uml() -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var_os("BERTH_LINUX_UML").unwrap_or_else(|| LINUX_UML.into()));
    p.is_file().then_some(p)
}

/// How to boot.
#[derive(Clone, Debug)]
pub struct UmlConfig {
    /// Guest memory in MiB.
    pub mem_mib: u32,
    /// Wall-clock limit for the whole boot, enforced with `timeout(1)`.
    pub timeout: Duration,
    /// Shell commands run as part of init, after the standard mounts.
    pub body: String,
}

impl UmlConfig {
    /// 256 MiB, two minutes.
    #[must_use]
    pub fn new(body: impl Into<String>) -> Self {
        Self {
            mem_mib: 256,
            timeout: Duration::from_secs(120),
            body: body.into(),
        }
    }
}

/// What a boot left behind.
#[derive(Debug)]
pub struct UmlRun {
    /// Everything the guest printed on its console (stdout and stderr of `linux.uml`).
    pub console: String,
    /// `true` when `timeout` had to stop the guest.
    pub timed_out: bool,
    /// Host directory mounted writable at `/mnt` in the guest.
    pub results: PathBuf,
    _dir: tempfile::TempDir,
}

impl UmlRun {
    /// The first console line starting with `prefix`, without the prefix.
    #[must_use]
    pub fn marker(&self, prefix: &str) -> Option<&str> {
        self.console
            .lines()
            .find_map(|l| l.trim_end_matches('\r').strip_prefix(prefix))
    }

    /// A file the guest wrote to `/mnt`.
    pub fn result_file(&self, name: &str) -> io::Result<String> {
        std::fs::read_to_string(self.results.join(name))
    }
}

fn init_script(results: &Path, body: &str) -> String {
    format!(
        r#"#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || mount -t tmpfs tmpfs /dev
[ -c /dev/null ] || for n in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
    IFS=: read name maj min <<EOF_DEV
$n
EOF_DEV
    mknod -m 666 "/dev/$name" c "$maj" "$min"
done
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t hostfs none /mnt -o {results}
echo BERTH-UML-BOOTED
cd /tmp
{body}
echo BERTH-UML-END
sync
echo o > /proc/sysrq-trigger
poweroff -f
"#,
        results = results.display(),
    )
}

/// Boots the guest with `cfg` and waits for it to power off (or for the timeout).
pub fn boot(cfg: &UmlConfig) -> io::Result<UmlRun> {
    let kernel = linux_uml().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, LINUX_UML))?;
    let dir = tempfile::Builder::new().prefix(crate::PREFIX).tempdir()?;
    let results = dir.path().join("results");
    let uml_dir = dir.path().join("uml");
    std::fs::create_dir(&results)?;
    std::fs::create_dir(&uml_dir)?;
    let init = dir.path().join("init.sh");
    std::fs::write(&init, init_script(&results, &cfg.body))?;
    std::fs::set_permissions(&init, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let umid = format!("{}{}", crate::PREFIX, std::process::id());
    let out = Command::new("timeout")
        .arg("--kill-after=5")
        .arg(cfg.timeout.as_secs().max(1).to_string())
        .arg(&kernel)
        .arg(format!("mem={}M", cfg.mem_mib))
        .args(["root=/dev/root", "rootfstype=hostfs", "rootflags=/", "ro"])
        .arg(format!("init={}", init.display()))
        .args(["con=null", "con0=fd:0,fd:1", "quiet", "pty.legacy_count=0"])
        .arg(format!("uml_dir={}", uml_dir.display()))
        .arg(format!("umid={umid}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()?;
    let mut console = String::from_utf8_lossy(&out.stdout).into_owned();
    console.push_str(&String::from_utf8_lossy(&out.stderr));
    // timeout(1) exits 124 when it had to stop the command (137 after --kill-after).
    let timed_out = matches!(out.status.code(), Some(124 | 137));
    Ok(UmlRun {
        console,
        timed_out,
        results,
        _dir: dir,
    })
}
