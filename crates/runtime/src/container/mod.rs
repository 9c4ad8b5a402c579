//! Container lifecycle operations, one file per verb, over the state in `--root`.

mod create;
mod exec;
mod launch;
mod ops;
mod start;

pub use create::{CreateOptions, create, run};
pub use exec::{ExecOptions, exec};
pub use ops::{delete, kill, list, oom_kills, pause, pids, resume, stats, update};
pub use start::start;

use std::path::Path;

use crate::error::Result;
use crate::state::ContainerState;

/// The cgroup root every manager is built on.
pub(crate) const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The cache of compiled seccomp programs under the state root. Its name is not a valid
/// container id, so no verb ever takes it for a container. Compiling Docker's default profile
/// takes ~13 ms in libseccomp; a cached program loads in microseconds.
pub(crate) fn seccomp_cache(root: &Path) -> crate::seccomp::ProgramCache {
    crate::seccomp::ProgramCache::new(root.join("@seccomp-cache"))
}

/// Rebuild the cgroup manager of a stored container.
pub(crate) fn cgroup_manager(state: &ContainerState) -> Result<Box<dyn cgroups::CgroupManager>> {
    manager_for(
        &state.config,
        &state.id,
        state.systemd_cgroup,
        state.caller_cgroups.clone(),
    )
}

/// The manager for a container's cgroup; `caller_cgroups` as recorded at create (see
/// [`ContainerState::caller_cgroups`]).
pub(crate) fn manager_for(
    spec: &oci_spec::runtime::Spec,
    id: &str,
    systemd: bool,
    caller_cgroups: Option<String>,
) -> Result<Box<dyn cgroups::CgroupManager>> {
    let cgroups_path = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned());
    Ok(cgroups::new_manager(&cgroups::ManagerOptions {
        root: Path::new(CGROUP_ROOT).to_path_buf(),
        cgroups_path,
        container_id: id.to_string(),
        systemd,
        caller_cgroups,
    })?)
}

/// The state JSON hooks get on stdin.
pub(crate) fn hook_state(
    spec: &oci_spec::runtime::Spec,
    id: &str,
    pid: i32,
    status: crate::state::Status,
    bundle: &Path,
) -> Vec<u8> {
    let v = serde_json::json!({
        "ociVersion": spec.version(),
        "id": id,
        "pid": pid,
        "status": status,
        "bundle": bundle,
        "annotations": spec.annotations().clone().unwrap_or_default(),
    });
    v.to_string().into_bytes()
}

/// Hand a seccomp notify listener to the agent at `linux.seccomp.listenerPath`.
pub(crate) fn send_seccomp_listener(
    spec: &oci_spec::runtime::Spec,
    id: &str,
    pid: i32,
    status: crate::state::Status,
    bundle: &Path,
    fd: std::os::fd::BorrowedFd<'_>,
) -> Result<()> {
    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let path = seccomp
        .and_then(|s| s.listener_path().as_ref())
        .ok_or_else(|| crate::RuntimeError::invalid("linux.seccomp.listenerPath", "missing"))?;
    let state: oci_spec::runtime::State =
        serde_json::from_slice(&hook_state(spec, id, pid, status, bundle))
            .map_err(crate::RuntimeError::Encode)?;
    let metadata = seccomp.and_then(|s| s.listener_metadata().as_deref());
    let ps = crate::seccomp::container_process_state(&state, pid, metadata);
    Ok(crate::seccomp::send_to_listener(path, fd, &ps)?)
}

/// The resources the cgroup gets: the spec's, with the device rules runc always adds after the
/// spec's own: mknod of anything, the default nodes, ptys, tun, and every `linux.devices` node.
pub(crate) fn effective_resources(
    spec: &oci_spec::runtime::Spec,
) -> Option<oci_spec::runtime::LinuxResources> {
    use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
    let linux = spec.linux().as_ref()?;
    let mut r = linux.resources().clone().unwrap_or_default();
    let rule = |typ, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut d = LinuxDeviceCgroup::default();
        d.set_allow(true);
        d.set_typ(Some(typ));
        d.set_major(major);
        d.set_minor(minor);
        d.set_access(Some(access.to_string()));
        d
    };
    let mut devices = r.devices().clone().unwrap_or_default();
    for d in linux.devices().iter().flatten() {
        devices.push(rule(d.typ(), Some(d.major()), Some(d.minor()), "rwm"));
    }
    let c = LinuxDeviceType::C;
    devices.extend([
        rule(c, None, None, "m"),
        rule(LinuxDeviceType::B, None, None, "m"),
        rule(c, Some(1), Some(3), "rwm"),
        rule(c, Some(1), Some(8), "rwm"),
        rule(c, Some(1), Some(7), "rwm"),
        rule(c, Some(5), Some(0), "rwm"),
        rule(c, Some(1), Some(5), "rwm"),
        rule(c, Some(1), Some(9), "rwm"),
        rule(c, Some(136), None, "rwm"),
        rule(c, Some(5), Some(2), "rwm"),
        rule(c, Some(10), Some(200), "rwm"),
    ]);
    r.set_devices(Some(devices));
    Some(r)
}
