//! `kill`, `delete`, `list`, `pause`, `resume`, `ps`, `update` and `events --stats`.

use std::path::Path;
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;

use crate::error::{Result, RuntimeError};
use crate::hooks;
use crate::state::{self, ContainerState, OciState, Status};

/// Send `signal` to the container's init, or with `all` to every process in its cgroup.
pub fn kill(root: &Path, id: &str, signal: i32, all: bool) -> Result<()> {
    let st = ContainerState::load(root, id)?;
    let status = st.status(root);
    if all {
        super::cgroup_manager(&st)?.kill_all(signal)?;
        return Ok(());
    }
    if status == Status::Stopped {
        return Err(RuntimeError::WrongState {
            id: id.to_string(),
            status: status.to_string(),
            action: "kill",
            wanted: "created, running or paused",
        });
    }
    signal_init(&st, signal)
}

fn signal_init(st: &ContainerState, signal: i32) -> Result<()> {
    let pid = rustix::process::Pid::from_raw(st.pid)
        .ok_or_else(|| RuntimeError::NotFound(st.id.clone()))?;
    let pidfd = match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return Ok(()),
        Err(e) => return Err(RuntimeError::sys("pidfd_open container init", e.into())),
    };
    // Checked after pidfd_open: the pidfd now pins the process we verified.
    if !state::process_alive(st.pid, st.init_start_time) {
        return Ok(());
    }
    let sig = rustix::process::Signal::from_named_raw(signal)
        .ok_or_else(|| RuntimeError::invalid("signal", format!("unknown signal {signal}")))?;
    match rustix::process::pidfd_send_signal(&pidfd, sig) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(RuntimeError::sys(format!("send signal {signal}"), e.into())),
    }
}

fn wait_exit(st: &ContainerState, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let Some(pid) = rustix::process::Pid::from_raw(st.pid) else {
        return true;
    };
    let Ok(pidfd) = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) else {
        return true;
    };
    if !state::process_alive(st.pid, st.init_start_time) {
        return true;
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let ts = rustix::event::Timespec::try_from(left).ok();
        let mut fds = [rustix::event::PollFd::new(
            &pidfd,
            rustix::event::PollFlags::IN,
        )];
        match rustix::event::poll(&mut fds, ts.as_ref()) {
            Ok(n) if n > 0 => return true,
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => return true,
        }
    }
}

/// Delete container `id`: a stopped or created one always, a running or paused one with `force`.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let mut st = match ContainerState::load(root, id) {
        Ok(st) => st,
        Err(RuntimeError::NotFound(_)) if force => {
            // An aborted create may have left a directory without state.json.
            let dir = state::state_dir(root, id);
            if state::validate_id(id).is_ok() && dir.exists() {
                let _ = std::fs::remove_dir_all(dir);
            }
            return Ok(());
        }
        Err(RuntimeError::NotFound(_)) => {
            let dir = state::state_dir(root, id);
            if state::validate_id(id).is_ok() && dir.is_dir() && !dir.join("state.json").exists() {
                let _ = std::fs::remove_dir_all(dir);
            }
            return Err(RuntimeError::NotFound(id.to_string()));
        }
        Err(e) => return Err(e),
    };
    let status = st.status(root);
    let cg = super::cgroup_manager(&st)?;
    match status {
        Status::Stopped => {}
        Status::Created => {
            signal_init(&st, libc::SIGKILL)?;
            wait_exit(&st, Duration::from_secs(10));
        }
        Status::Running | Status::Paused | Status::Creating => {
            if !force {
                return Err(RuntimeError::WrongState {
                    id: id.to_string(),
                    status: status.to_string(),
                    action: "delete",
                    wanted: "stopped (or use --force)",
                });
            }
            st.deleting = true;
            let _ = st.save(root);
            cg.kill_all(libc::SIGKILL)?;
            signal_init(&st, libc::SIGKILL)?;
            if status == Status::Paused {
                let _ = cg.thaw();
            }
            if !wait_exit(&st, Duration::from_secs(10)) {
                return Err(RuntimeError::Child(format!(
                    "container {id} init did not exit after SIGKILL"
                )));
            }
        }
    }
    // Processes started by exec may outlive init when there is no pid namespace.
    let _ = cg.kill_all(libc::SIGKILL);
    cg.destroy()?;
    if let Some(h) = st
        .config
        .hooks()
        .as_ref()
        .and_then(|h| h.poststop().as_ref())
    {
        let s = super::hook_state(&st.config, id, 0, Status::Stopped, &st.bundle);
        hooks::run_warn("poststop", h, &s);
    }
    let dir = state::state_dir(root, id);
    std::fs::remove_dir_all(&dir).map_err(|e| RuntimeError::io("remove", dir, e))
}

/// The state of every container under `root`, sorted by id.
pub fn list(root: &Path) -> Result<Vec<OciState>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(RuntimeError::io("read", root, e)),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Ok(st) = ContainerState::load(root, &name) {
            out.push(st.oci(root));
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Freeze every process of a running container.
pub fn pause(root: &Path, id: &str) -> Result<()> {
    let st = ContainerState::load(root, id)?;
    st.require(root, "pause", "running", |s| s == Status::Running)?;
    Ok(super::cgroup_manager(&st)?.freeze()?)
}

/// Thaw a paused container.
pub fn resume(root: &Path, id: &str) -> Result<()> {
    let st = ContainerState::load(root, id)?;
    st.require(root, "resume", "paused", |s| s == Status::Paused)?;
    Ok(super::cgroup_manager(&st)?.thaw()?)
}

/// Pids (in the runtime's pid namespace) of every process in the container's cgroup.
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>> {
    let st = ContainerState::load(root, id)?;
    Ok(super::cgroup_manager(&st)?.pids()?)
}

/// Apply new resource limits to a live container and remember them.
pub fn update(root: &Path, id: &str, resources: &LinuxResources) -> Result<()> {
    let mut st = ContainerState::load(root, id)?;
    st.require(root, "update", "created, running or paused", |s| {
        s != Status::Stopped
    })?;
    // Device rules the update does not name stay as created.
    let mut resources = resources.clone();
    let stored = st
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref());
    if resources.devices().is_none() {
        resources.set_devices(stored.and_then(|r| r.devices().clone()));
    }
    let mut config = st.config.clone();
    if let Some(linux) = config.linux_mut() {
        linux.set_resources(Some(resources.clone()));
    }
    // The device filter is replaced as a whole: apply the rules create applied (the spec's plus
    // the runtime's defaults and `linux.devices`), not only the spec's, which deny everything.
    let effective = super::effective_resources(&config).unwrap_or(resources);
    super::cgroup_manager(&st)?.set(&effective)?;
    st.config = config;
    st.save(root)
}

/// Resource usage of container `id`, in the shape of runc's `events --stats` data.
pub fn stats(root: &Path, id: &str) -> Result<cgroups::Stats> {
    let st = ContainerState::load(root, id)?;
    Ok(super::cgroup_manager(&st)?.stats()?)
}

/// How many processes of container `id` the kernel's OOM killer has killed.
pub fn oom_kills(root: &Path, id: &str) -> Result<u64> {
    let st = ContainerState::load(root, id)?;
    Ok(super::cgroup_manager(&st)?.oom_kill_count()?)
}
