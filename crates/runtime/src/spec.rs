//! Loading and validating an OCI bundle's `config.json`.
//!
//! Everything that can be checked without touching the kernel is checked here, in the parent,
//! before any namespace, cgroup or state directory exists: a bad config fails with one line naming
//! the field and leaves nothing behind.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Process, Spec};

use crate::error::{Result, RuntimeError};

/// Parse JSON from `path` into `T`, naming the offending field on error.
pub(crate) fn parse_json_file<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let data = std::fs::read(path).map_err(|e| RuntimeError::io("read", path, e))?;
    let fail = |source| RuntimeError::ParseSpec {
        path: path.to_path_buf(),
        source,
    };
    if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&data)
        && normalize_scheduler_flags(&mut value)
    {
        return serde_path_to_error::deserialize(value).map_err(fail);
    }
    let de = &mut serde_json::Deserializer::from_slice(&data);
    serde_path_to_error::deserialize(de).map_err(fail)
}

/// The runtime spec names two scheduler flags `SCHED_FLAG_RESET_ON_FORK` and
/// `SCHED_FLAG_DL_OVERRUN` (config.md, "Scheduler"); oci-spec 0.10 only accepts its own
/// spellings of them. Renames the spec's spellings in `process.scheduler.flags` (of a config)
/// or `scheduler.flags` (of a process.json); returns whether anything was renamed.
fn normalize_scheduler_flags(v: &mut serde_json::Value) -> bool {
    const ALIASES: [(&str, &str); 2] = [
        ("SCHED_FLAG_RESET_ON_FORK", "SCHED_RESET_ON_FORK"),
        ("SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_D_L_OVERRUN"),
    ];
    let mut changed = false;
    for pointer in ["/process/scheduler/flags", "/scheduler/flags"] {
        let Some(flags) = v.pointer_mut(pointer).and_then(|f| f.as_array_mut()) else {
            continue;
        };
        for flag in flags {
            if let Some((_, ours)) = ALIASES.iter().find(|(spec, _)| flag == spec) {
                *flag = serde_json::Value::from(*ours);
                changed = true;
            }
        }
    }
    changed
}

/// Load a process.json (for `exec --process`) and validate it.
pub fn load_process(path: &Path) -> Result<oci_spec::runtime::Process> {
    let p: oci_spec::runtime::Process = parse_json_file(path)?;
    validate_process(&p, "process")?;
    Ok(p)
}

/// A loaded, validated bundle.
#[derive(Debug)]
pub struct Bundle {
    /// Absolute bundle directory.
    pub dir: PathBuf,
    /// Absolute path of the root file system.
    pub rootfs: PathBuf,
    /// The parsed config.
    pub spec: Spec,
}

/// Load `<bundle>/config.json` and validate it.
pub fn load_bundle(dir: &Path) -> Result<Bundle> {
    let dir = std::path::absolute(dir).map_err(|e| RuntimeError::io("resolve bundle", dir, e))?;
    let spec: Spec = parse_json_file(&dir.join("config.json"))?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| RuntimeError::invalid("root", "missing"))?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        dir.join(root.path())
    };
    match std::fs::metadata(&rootfs) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(RuntimeError::invalid(
                "root.path",
                format!("{} is not a directory", rootfs.display()),
            ));
        }
        Err(e) => {
            return Err(RuntimeError::invalid(
                "root.path",
                format!("{}: {e}", rootfs.display()),
            ));
        }
    }
    validate(&spec)?;
    Ok(Bundle { dir, rootfs, spec })
}

/// Map an OCI namespace type to its `CLONE_NEW*` flag.
#[must_use]
pub fn ns_flag(t: LinuxNamespaceType) -> libc::c_int {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

/// The `/proc/<pid>/ns/<name>` file name of a namespace type.
#[must_use]
pub fn ns_proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Whether the spec asks for (a new or joined) namespace of type `t`.
#[must_use]
pub fn has_ns(spec: &Spec, t: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == t))
}

/// Semantic checks that serde cannot do.
pub fn validate(spec: &Spec) -> Result<()> {
    if let Some(process) = spec.process() {
        validate_process(process, "process")?;
    }
    let Some(linux) = spec.linux() else {
        return Err(RuntimeError::invalid("linux", "missing"));
    };
    let mut seen = HashSet::new();
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        if !seen.insert(ns.typ()) {
            return Err(RuntimeError::invalid(
                format!("linux.namespaces[{i}].type"),
                format!("duplicate namespace {}", ns_proc_name(ns.typ())),
            ));
        }
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                return Err(RuntimeError::invalid(
                    format!("linux.namespaces[{i}].path"),
                    "must be absolute",
                ));
            }
            if let Err(e) = std::fs::metadata(p) {
                return Err(RuntimeError::invalid(
                    format!("linux.namespaces[{i}].path"),
                    format!("{}: {e}", p.display()),
                ));
            }
        }
    }
    let userns = seen.contains(&LinuxNamespaceType::User);
    let new_userns = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
    for (name, maps) in [
        ("linux.uidMappings", linux.uid_mappings()),
        ("linux.gidMappings", linux.gid_mappings()),
    ] {
        match maps {
            Some(m) if !m.is_empty() => {
                if !userns {
                    return Err(RuntimeError::invalid(
                        name,
                        "mappings need a user namespace",
                    ));
                }
                validate_mappings(name, m)?;
            }
            _ if new_userns => {
                return Err(RuntimeError::invalid(
                    name,
                    "a new user namespace needs mappings",
                ));
            }
            _ => {}
        }
    }
    for (key, _) in linux.sysctl().iter().flatten() {
        validate_sysctl(key, &seen)?;
    }
    if linux.time_offsets().is_some() && !seen.contains(&LinuxNamespaceType::Time) {
        return Err(RuntimeError::invalid(
            "linux.timeOffsets",
            "needs a time namespace",
        ));
    }
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        if !d.path().is_absolute() {
            return Err(RuntimeError::invalid(
                format!("linux.devices[{i}].path"),
                "must be absolute",
            ));
        }
    }
    if let Some(prop) = linux.rootfs_propagation()
        && crate::mounts::propagation_flag(prop).is_none()
    {
        return Err(RuntimeError::invalid(
            "linux.rootfsPropagation",
            format!("unknown propagation {prop:?}"),
        ));
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if m.destination().as_os_str().is_empty() {
            return Err(RuntimeError::invalid(
                format!("mounts[{i}].destination"),
                "empty",
            ));
        }
        if m.destination()
            .components()
            .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(RuntimeError::invalid(
                format!("mounts[{i}].destination"),
                "must not contain ..",
            ));
        }
    }
    if let Some(hooks) = spec.hooks() {
        let kinds = [
            ("hooks.prestart", hooks.prestart()),
            ("hooks.createRuntime", hooks.create_runtime()),
            ("hooks.createContainer", hooks.create_container()),
            ("hooks.startContainer", hooks.start_container()),
            ("hooks.poststart", hooks.poststart()),
            ("hooks.poststop", hooks.poststop()),
        ];
        for (kind, list) in kinds {
            for (i, h) in list.iter().flatten().enumerate() {
                if !h.path().is_absolute() {
                    return Err(RuntimeError::invalid(
                        format!("{kind}[{i}].path"),
                        "must be absolute",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Checks on a process (the container's init, or one given to `exec`).
pub fn validate_process(process: &Process, field: &str) -> Result<()> {
    match process.args() {
        Some(a) if !a.is_empty() => {}
        _ => return Err(RuntimeError::invalid(format!("{field}.args"), "empty")),
    }
    if !process.cwd().is_absolute() {
        return Err(RuntimeError::invalid(
            format!("{field}.cwd"),
            "must be an absolute path",
        ));
    }
    if let Some(adj) = process.oom_score_adj()
        && !(-1000..=1000).contains(&adj)
    {
        return Err(RuntimeError::invalid(
            format!("{field}.oomScoreAdj"),
            format!("{adj} is outside -1000..=1000"),
        ));
    }
    let mut seen = HashSet::new();
    for (i, r) in process.rlimits().iter().flatten().enumerate() {
        let f = format!("{field}.rlimits[{i}]");
        if !seen.insert(r.typ().to_string()) {
            return Err(RuntimeError::invalid(f, "duplicate rlimit type"));
        }
        if r.soft() > r.hard() {
            return Err(RuntimeError::invalid(
                f,
                format!("soft limit {} exceeds hard limit {}", r.soft(), r.hard()),
            ));
        }
        crate::process::check_rlimit(r).map_err(|reason| RuntimeError::invalid(f, reason))?;
    }
    if let Some(p) = process.apparmor_profile()
        && !p.is_empty()
        && !crate::process::apparmor_enabled()
    {
        return Err(RuntimeError::invalid(
            format!("{field}.apparmorProfile"),
            "AppArmor is not enabled on this host",
        ));
    }
    if let Some(l) = process.selinux_label()
        && !l.is_empty()
        && !crate::process::selinux_enabled()
    {
        return Err(RuntimeError::invalid(
            format!("{field}.selinuxLabel"),
            "SELinux is not enabled on this host",
        ));
    }
    Ok(())
}

fn validate_mappings(field: &str, maps: &[LinuxIdMapping]) -> Result<()> {
    if maps.len() > 340 {
        return Err(RuntimeError::invalid(field, "more than 340 mappings"));
    }
    for (i, m) in maps.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if m.size() == 0 {
            return Err(RuntimeError::invalid(f, "size is 0"));
        }
        if u64::from(m.container_id()) + u64::from(m.size()) > u64::from(u32::MAX)
            || u64::from(m.host_id()) + u64::from(m.size()) > u64::from(u32::MAX)
        {
            return Err(RuntimeError::invalid(f, "range overflows 32 bits"));
        }
        for (j, o) in maps.iter().enumerate().take(i) {
            let overlap = |a: u32, b: u32| {
                let (a, b, s1, s2) = (
                    u64::from(a),
                    u64::from(b),
                    u64::from(m.size()),
                    u64::from(o.size()),
                );
                a < b + s2 && b < a + s1
            };
            if overlap(m.container_id(), o.container_id()) || overlap(m.host_id(), o.host_id()) {
                return Err(RuntimeError::invalid(f, format!("overlaps {field}[{j}]")));
            }
        }
    }
    Ok(())
}

/// runc's rule: only namespaced sysctls, and only when the container has that namespace (`ns`).
///
/// Errors: `InvalidSpec` naming `linux.sysctl.<key>`.
pub fn validate_sysctl(key: &str, ns: &HashSet<LinuxNamespaceType>) -> Result<()> {
    let field = format!("linux.sysctl.{key}");
    if key.contains("..") || key.contains('\0') || key.starts_with('/') {
        return Err(RuntimeError::invalid(field, "invalid name"));
    }
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let needs = if ipc.contains(&key) || key.starts_with("fs.mqueue.") {
        LinuxNamespaceType::Ipc
    } else if key.starts_with("net.") {
        LinuxNamespaceType::Network
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        LinuxNamespaceType::Uts
    } else {
        return Err(RuntimeError::invalid(
            field,
            "not a namespaced sysctl; refusing to change the host's",
        ));
    };
    if !ns.contains(&needs) {
        return Err(RuntimeError::invalid(
            field,
            format!("needs a {} namespace", ns_proc_name(needs)),
        ));
    }
    Ok(())
}

/// The config `spec` writes: runc's default (a busybox-friendly `sh` with a terminal), or its
/// rootless variant for the calling user.
#[must_use]
pub fn default_spec(rootless: bool) -> serde_json::Value {
    let mut v = serde_json::json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "berth",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    });
    if rootless {
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        let linux = &mut v["linux"];
        linux["namespaces"] = serde_json::json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "user"}]);
        linux["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        linux["gidMappings"] = serde_json::json!([{"containerID": 0, "hostID": gid, "size": 1}]);
        if let Some(o) = linux.as_object_mut() {
            o.remove("resources");
        }
        v["mounts"][2]["options"] = serde_json::json!([
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620"
        ]);
        // runc keeps the read-only cgroup mount (index 6) in its rootless spec.
        v["mounts"][5] = serde_json::json!({"destination": "/sys", "type": "none", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(c: u32, h: u32, s: u32) -> LinuxIdMapping {
        oci_spec::runtime::LinuxIdMappingBuilder::default()
            .container_id(c)
            .host_id(h)
            .size(s)
            .build()
            .unwrap()
    }

    #[test]
    fn mappings_reject_overlap_and_zero() {
        assert!(validate_mappings("m", &[mapping(0, 1000, 10)]).is_ok());
        assert!(validate_mappings("m", &[mapping(0, 1000, 0)]).is_err());
        let e = validate_mappings("m", &[mapping(0, 1000, 10), mapping(5, 5000, 10)]).unwrap_err();
        assert_eq!(e.to_string(), "m[1]: overlaps m[0]");
        assert!(validate_mappings("m", &[mapping(0, u32::MAX - 1, 10)]).is_err());
    }

    #[test]
    fn scheduler_flags_in_the_runtime_specs_spelling_parse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("process.json");
        std::fs::write(
            &path,
            r#"{"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0},
                "scheduler": {"policy": "SCHED_IDLE",
                              "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_DL_OVERRUN"]}}"#,
        )
        .unwrap();
        let p: Process = parse_json_file(&path).unwrap();
        let flags = p.scheduler().as_ref().unwrap().flags().clone().unwrap();
        assert_eq!(flags.len(), 2);
    }

    #[test]
    fn sysctl_needs_its_namespace() {
        let mut ns = HashSet::new();
        assert!(validate_sysctl("net.ipv4.ip_forward", &ns).is_err());
        ns.insert(LinuxNamespaceType::Network);
        assert!(validate_sysctl("net.ipv4.ip_forward", &ns).is_ok());
        assert!(validate_sysctl("vm.swappiness", &ns).is_err());
        assert!(validate_sysctl("kernel.shmmax", &ns).is_err());
    }
}
