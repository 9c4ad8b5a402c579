//! A container record and its image config become an OCI runtime config (`config.json`) with
//! Docker's defaults: its 14 capabilities, masked and read-only /proc paths, a private /dev,
//! new pid/ipc/uts/mount namespaces and (for `--network none`) a new network namespace.

use std::path::Path;

use serde_json::{Value, json};

use crate::config::Config;
use crate::containers::Container;
use crate::error::{EngineError, Result};

/// Docker's default capability set (moby `oci/caps/defaults.go`).
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Docker's masked paths (moby `oci/defaults.go`).
const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The process arguments Docker runs: Entrypoint followed by Cmd.
#[must_use]
pub fn args(config: &Config) -> Vec<String> {
    let mut args = config.entrypoint.clone().unwrap_or_default();
    args.extend(config.cmd.clone().unwrap_or_default());
    args
}

/// The OCI config of `c`, whose rootfs is mounted at `rootfs`.
///
/// Docker's fixed defaults only: `container_spec::apply` adds the user, capabilities, seccomp,
/// resources and the other per-container settings.
///
/// Errors: `InvalidArgument` for an empty command.
pub fn oci_config(c: &Container, rootfs: &Path) -> Result<Value> {
    let args = args(&c.config);
    if args.is_empty() {
        return Err(EngineError::InvalidValue {
            what: "command (no command specified)",
            value: String::new(),
        });
    }
    let mut env = vec![DEFAULT_PATH.to_owned()];
    for e in &c.config.env {
        let key = e.split('=').next().unwrap_or(e);
        env.retain(|x: &String| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
        env.push(format!("HOSTNAME={}", c.config.hostname));
    }
    // Docker's TERM for a container with a terminal, unless the user set one.
    if c.config.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".to_owned());
    }
    let cwd = if c.config.working_dir.is_empty() {
        "/".to_owned()
    } else {
        c.config.working_dir.clone()
    };
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if c.host_config.network_mode != "host" {
        namespaces.push(json!({"type": "network"}));
    }
    let caps = DEFAULT_CAPABILITIES;
    Ok(json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": c.config.tty,
            // Replaced by container_spec::apply with the user resolved in the image.
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": env,
            "cwd": cwd,
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps,
            },
            "noNewPrivileges": false
        },
        "root": {"path": rootfs, "readonly": c.host_config.readonly_rootfs},
        "hostname": c.config.hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": namespaces,
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entrypoint_then_cmd() {
        let c = Config {
            entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
            cmd: Some(vec!["echo hi".into()]),
            ..Config::default()
        };
        assert_eq!(args(&c), ["/bin/sh", "-c", "echo hi"]);
    }
}
