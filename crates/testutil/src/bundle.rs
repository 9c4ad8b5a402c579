//! OCI bundles for tests: a temp dir with `rootfs/` and `config.json`.

use crate::rootfs::busybox_rootfs;
use serde_json::{Value, json};
use std::fs;
use std::path::{Path, PathBuf};

/// An OCI bundle in a `berth-test-` temp dir, removed (after unmounting anything under it) on
/// drop.
#[derive(Debug)]
pub struct Bundle {
    dir: PathBuf,
    spec: Value,
}

/// The configuration `runc spec` (runc 1.1) writes, with `terminal: false` and `args`.
#[must_use]
pub fn default_spec(args: &[&str]) -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": args,
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps,
                "ambient": caps
            },
            "rlimits": [ { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 } ],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": true },
        "hostname": "runc",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
              "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
        ],
        "linux": {
            "resources": { "devices": [ { "allow": false, "access": "rwm" } ] },
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

impl Bundle {
    /// A bundle with the busybox rootfs (see [`busybox_rootfs`]) and [`default_spec`]`(args)`,
    /// in a fresh `berth-test-` directory under the temp dir. Runs the [`janitor`](crate::janitor)
    /// first (once per process).
    ///
    /// # Panics
    /// When the bundle cannot be written.
    #[must_use]
    pub fn busybox(args: &[&str]) -> Bundle {
        crate::janitor();
        let dir = std::env::temp_dir().join(crate::unique_name("bundle"));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let bundle = Bundle {
            dir,
            spec: default_spec(args),
        };
        busybox_rootfs(&bundle.rootfs());
        bundle.write_config();
        bundle
    }

    /// The bundle directory (pass it as `--bundle`).
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// `<bundle>/rootfs`.
    #[must_use]
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// `<bundle>/config.json`.
    #[must_use]
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// The configuration as last written.
    #[must_use]
    pub fn spec(&self) -> &Value {
        &self.spec
    }

    /// Changes the configuration and writes it back to `config.json`:
    /// `bundle.edit(|s| s["process"]["user"]["uid"] = 1000.into())`.
    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) -> &mut Self {
        f(&mut self.spec);
        self.write_config();
        self
    }

    fn write_config(&self) {
        let path = self.config_path();
        let text = serde_json::to_string_pretty(&self.spec)
            .unwrap_or_else(|e| panic!("serialize {}: {e}", path.display()));
        fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        crate::janitor::unmount_under(&self.dir);
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!("testutil: remove bundle {}: {e}", self.dir.display());
        }
    }
}
