//! The parts of a container's OCI config that come from its settings rather than from Docker's
//! fixed defaults: who the process runs as (`-u`, `--group-add`, HOME from the image's passwd),
//! capabilities, `no_new_privs`, seccomp, rlimits, cgroup resources, devices, sysctls,
//! `--privileged`, `--domainname`, `--shm-size`, `--init`, and the `/etc` file mounts.
//!
//! `apply` edits the config [`crate::bundle::oci_config`] built, so the fixed defaults stay in
//! one place and every setting here is applied (and validated) at create time.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::config::{DeviceMapping, HostConfig};
use crate::containers::Container;
use crate::error::{EngineError, Result};
use crate::{limits, passwd, security};

/// Linux signal names (without `SIG`), numbered from 1.
const SIGNALS: [&str; 31] = [
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
    "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
    "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
];

/// Parses a signal as Docker's `--stop-signal` takes it: `SIGTERM`, `TERM`, `15`,
/// `SIGRTMIN+3`.
#[must_use]
pub fn signal_number(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(i) = SIGNALS.iter().position(|n| *n == name) {
        return i32::try_from(i + 1).ok();
    }
    let rt = |base: i32, off: &str, sign: i32| {
        let off: i32 = if off.is_empty() { 0 } else { off.parse().ok()? };
        let n = base + sign * off;
        (34..=64).contains(&n).then_some(n)
    };
    if let Some(off) = name.strip_prefix("RTMIN") {
        return rt(34, off.trim_start_matches('+'), 1);
    }
    if let Some(off) = name.strip_prefix("RTMAX") {
        return rt(64, off.trim_start_matches('-'), -1);
    }
    None
}

/// The signal `stop` sends first: the container's `StopSignal`, else SIGTERM.
#[must_use]
pub fn stop_signal(c: &Container) -> i32 {
    c.config
        .stop_signal
        .as_deref()
        .and_then(signal_number)
        .unwrap_or(15)
}

/// Checks the settings that can be checked without the image (the CLI's and the API's
/// `create` both get these errors before anything is made).
///
/// Errors: `InvalidArgument` naming the setting.
pub fn validate(config: &crate::Config, h: &HostConfig) -> Result<()> {
    limits::validate(h)?;
    security::security_opts(&h.security_opt)?;
    security::capabilities(h)?;
    security::validate_sysctls(&h.sysctls, &h.network_mode)?;
    if let Some(s) = &config.stop_signal
        && signal_number(s).is_none()
    {
        return Err(EngineError::InvalidSetting {
            what: "stop-signal",
            value: s.clone(),
            reason: "invalid signal".into(),
        });
    }
    for d in &h.devices {
        device(d)?;
    }
    Ok(())
}

/// Applies the container's settings to `spec`, the config `bundle::oci_config` built.
/// `lowerdirs` are the image's layers (topmost first), where `-u` names are looked up;
/// `init_dir` is where the `--init` binary is kept.
///
/// Errors: a setting that does not fit the image (a user name it has no entry for) or the host
/// (a device that is not there).
pub(crate) fn apply(
    spec: &mut Value,
    c: &Container,
    lowerdirs: &[PathBuf],
    init_dir: &Path,
) -> Result<()> {
    let h = &c.host_config;
    validate(&c.config, h)?;
    let passwd_text = passwd::read_from_layers(lowerdirs, "/etc/passwd")?;
    let group_text = passwd::read_from_layers(lowerdirs, "/etc/group")?;
    let user = passwd::resolve(&c.config.user, &h.group_add, &passwd_text, &group_text)?;
    let caps = security::capabilities(h)?;
    let opts = security::security_opts(&h.security_opt)?;

    let process = &mut spec["process"];
    process["user"] = json!({"uid": user.uid, "gid": user.gid});
    if !user.additional_gids.is_empty() {
        process["user"]["additionalGids"] = json!(user.additional_gids);
    }
    if let Some(env) = process["env"].as_array_mut()
        && !env
            .iter()
            .any(|e| e.as_str().is_some_and(|e| e.starts_with("HOME=")))
    {
        env.push(json!(format!("HOME={}", user.home)));
    }
    process["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    process["noNewPrivileges"] = json!(opts.no_new_privileges);
    let rlimits = limits::rlimits(h);
    if !rlimits.is_empty() {
        process["rlimits"] = json!(rlimits);
    }
    if h.init == Some(true)
        && let Some(args) = process["args"].as_array_mut()
    {
        args.splice(0..0, [json!(crate::etcfiles::INIT_PATH), json!("--")]);
    }
    if !c.config.domainname.is_empty() {
        spec["domainname"] = json!(c.config.domainname);
    }

    let mut mounts = crate::etcfiles::mounts(c, init_dir)?;
    if let Some(list) = spec["mounts"].as_array_mut() {
        for m in list.iter_mut() {
            adjust_mount(m, h);
        }
        list.append(&mut mounts);
    }

    let linux = &mut spec["linux"];
    let mut resources = limits::resources(h);
    let mut device_rules = vec![json!({"allow": false, "access": "rwm"})];
    let mut devices = Vec::new();
    if h.privileged {
        device_rules = vec![json!({"allow": true, "access": "rwm"})];
        devices = host_devices(Path::new("/dev"));
        linux["maskedPaths"] = json!([]);
        linux["readonlyPaths"] = json!([]);
    } else {
        for d in &h.devices {
            let (dev, rule) = device(d)?;
            devices.push(dev);
            device_rules.push(rule);
        }
    }
    resources.insert("devices".into(), Value::Array(device_rules));
    linux["resources"] = Value::Object(resources);
    if !devices.is_empty() {
        linux["devices"] = Value::Array(devices);
    }
    if !h.sysctls.is_empty() {
        linux["sysctl"] = json!(h.sysctls);
    }
    if let Some(seccomp) = security::seccomp(h, &opts, &caps) {
        // Caught here rather than at start: a profile the runtime would refuse.
        runtime::seccomp::parse(&seccomp.to_string()).map_err(|e| EngineError::InvalidSetting {
            what: "security-opt",
            value: "seccomp".into(),
            reason: runtime::error::chain(&e),
        })?;
        linux["seccomp"] = seccomp;
    }
    Ok(())
}

/// `--shm-size` on /dev/shm; `--privileged` makes /sys and the cgroup mount writable.
fn adjust_mount(m: &mut Value, h: &HostConfig) {
    let dest = m["destination"].as_str().unwrap_or_default().to_owned();
    let Some(options) = m["options"].as_array_mut() else {
        return;
    };
    if dest == "/dev/shm" && h.shm_size > 0 {
        let size = format!("size={}k", (h.shm_size + 1023) / 1024);
        options.retain(|o| !o.as_str().is_some_and(|o| o.starts_with("size=")));
        options.push(json!(size));
    }
    if h.privileged && (dest == "/sys" || dest == "/sys/fs/cgroup") {
        options.retain(|o| o != "ro");
        options.push(json!("rw"));
    }
}

/// `--device host[:container[:perms]]` as an OCI device and its cgroup rule.
fn device(d: &DeviceMapping) -> Result<(Value, Value)> {
    let bad = |reason: &str| EngineError::InvalidSetting {
        what: "device",
        value: d.path_on_host.clone(),
        reason: reason.to_owned(),
    };
    let perms = if d.cgroup_permissions.is_empty() {
        "rwm"
    } else {
        d.cgroup_permissions.as_str()
    };
    if !perms.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(bad("invalid device mode: permissions are a subset of rwm"));
    }
    let md = std::fs::metadata(&d.path_on_host).map_err(|e| bad(&e.to_string()))?;
    let kind = if md.file_type().is_char_device() {
        "c"
    } else if md.file_type().is_block_device() {
        "b"
    } else {
        return Err(bad("not a device node"));
    };
    let rdev = md.rdev();
    let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
    let path = if d.path_in_container.is_empty() {
        d.path_on_host.as_str()
    } else {
        d.path_in_container.as_str()
    };
    Ok((
        json!({"path": path, "type": kind, "major": major, "minor": minor,
               "fileMode": md.mode() & 0o7777, "uid": 0, "gid": 0}),
        json!({"allow": true, "type": kind, "major": major, "minor": minor, "access": perms}),
    ))
}

/// Every device node under the host's `dir`, as `--privileged` exposes them (runc's rules:
/// not the per-instance pts, shm, mqueue and fd trees, not the console).
fn host_devices(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            if !matches!(
                name.to_str(),
                Some("pts" | "shm" | "fd" | "mqueue" | ".lxc" | ".lxd-mounts" | ".udev")
            ) {
                out.extend(host_devices(&path));
            }
            continue;
        }
        if name == "console" || !(ft.is_char_device() || ft.is_block_device()) {
            continue;
        }
        let mapping = DeviceMapping {
            path_on_host: path.to_string_lossy().into_owned(),
            ..DeviceMapping::default()
        };
        if let Ok((dev, _)) = device(&mapping) {
            out.push(dev);
        }
    }
    out
}

/// The resources `update` applies live, as the runtime's type.
pub(crate) fn live_resources(h: &HostConfig) -> Result<oci_spec::runtime::LinuxResources> {
    let r: Map<String, Value> = limits::resources(h);
    serde_json::from_value(Value::Object(r)).map_err(|source| EngineError::Json {
        action: "encode resources".into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_like_docker() {
        assert_eq!(signal_number("SIGTERM"), Some(15));
        assert_eq!(signal_number("quit"), Some(3));
        assert_eq!(signal_number("9"), Some(9));
        assert_eq!(signal_number("SIGRTMIN+3"), Some(37));
        assert_eq!(signal_number("RTMAX"), Some(64));
        assert_eq!(signal_number("BOGUS"), None);
        assert_eq!(signal_number("0"), None);
    }

    #[test]
    fn devices_from_the_host() {
        let (dev, rule) = device(&DeviceMapping {
            path_on_host: "/dev/null".into(),
            path_in_container: "/dev/mynull".into(),
            cgroup_permissions: "rw".into(),
        })
        .unwrap();
        assert_eq!(dev["path"], "/dev/mynull");
        assert_eq!(
            (dev["major"].as_u64(), dev["minor"].as_u64()),
            (Some(1), Some(3))
        );
        assert_eq!(rule["access"], "rw");
        let bad = |p: &str, perms: &str| {
            device(&DeviceMapping {
                path_on_host: p.into(),
                cgroup_permissions: perms.into(),
                ..DeviceMapping::default()
            })
            .is_err()
        };
        assert!(bad("/dev/null", "rwx"));
        assert!(bad("/etc/hostname", ""));
        assert!(bad("/dev/no-such-device", ""));
    }
}
