//! Container lifecycle: create (record, snapshot, bundle), start (spawn the monitor), kill,
//! stop, remove, and the idempotent cleanup the monitor shares.

use std::fs;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::{Config, HostConfig};
use crate::containers::{Container, NewContainer};
use crate::engine::{Engine, POLL, is_mountpoint, rootfs_path, write_file};
use crate::error::{EngineError, Result};
use crate::state::{Status, Transition};
use crate::store::Paths;

/// What `berth create`/`run` (and the Engine API's `POST /containers/create`) ask for: Docker's
/// `Config` and `HostConfig` as the user gave them; the image's config fills what they leave
/// empty when the container is created.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    /// `--name`; `None` picks a random one.
    pub name: Option<String>,
    /// Portable configuration; `config.image` names the image.
    pub config: Config,
    /// Host configuration (limits, mounts, restart policy, ...).
    pub host_config: HostConfig,
    /// `--ip`, `--ip6`, `--network-alias` on the network `host_config.network_mode` names.
    pub endpoint: crate::networks::EndpointRequest,
}

/// A started container, and the attach connection asked for (already receiving its output).
#[derive(Debug)]
pub struct Started {
    /// The record as created.
    pub container: Container,
    /// Connected to the monitor from before the start, so no output is missed.
    pub attach: Option<UnixStream>,
    /// The monitor leaves the exit to this attach connection: once the session ends with the
    /// container's exit, call [`Engine::take_exit`].
    pub takes_exit: bool,
}

impl Engine {
    /// Creates the container (record, snapshot, bundle) and starts its monitor, which runs it;
    /// with `attach`, an attach connection comes back. Returns once the monitor reported the
    /// start.
    ///
    /// Errors: a missing image, a taken name, or a start failure (with Docker's exit code).
    pub fn run(&self, req: &CreateRequest, attach: bool) -> Result<Started> {
        // The monitor's start (an exec, the store) overlaps the create.
        let standby = self.spawn_monitor(attach)?;
        self.run_with_monitor(req, standby)
    }

    /// [`Engine::run`] with a monitor started earlier ([`crate::spawn_standby`]: `berth run`
    /// starts it before it opens the store); the attach connection is the one it was started
    /// with.
    ///
    /// Errors: as [`Engine::run`].
    pub fn run_with_monitor(
        &self,
        req: &CreateRequest,
        standby: crate::monitor_start::Standby,
    ) -> Result<Started> {
        let _op = self.operation()?;
        let c = self.create(req)?;
        match self.hand_over(standby, &c) {
            Ok(s) => Ok(s),
            Err(e) => {
                if let Err(clean) = self.remove(&c.id.to_string(), true) {
                    tracing::warn!(
                        "remove container {} after failed start: {clean}",
                        c.id.short()
                    );
                }
                Err(e)
            }
        }
    }

    /// Creates the container: the record (status `created`), its overlay snapshot and bundle.
    ///
    /// Errors: a missing image, a taken name, a bad value in the request.
    pub fn create(&self, req: &CreateRequest) -> Result<Container> {
        let _op = self.operation()?;
        let (record, img) = self.resolve_image(&req.config.image)?;
        let config = merge_config(&req.config, img.config.config().as_ref())
            .with_image_healthcheck(img.healthcheck.as_ref());
        let mut host_config = req.host_config.clone();
        if host_config.network_mode.is_empty() {
            // Docker's default, `bridge`, unless BERTH_DEFAULT_NETWORK names another mode
            // (`none` keeps a bare `run` off the host's networking altogether).
            host_config.network_mode = std::env::var("BERTH_DEFAULT_NETWORK")
                .ok()
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "bridge".into());
        }
        crate::container_spec::validate(&config, &host_config)?;
        if !host_config.runtime.is_empty() {
            host_config.runtime = crate::oci::resolve_binary(&host_config.runtime)?;
        }
        let planned = crate::mount_flags::plan(&config, &host_config)?;
        crate::network_attach::check_mode(&self.store, &host_config.network_mode)?;
        if crate::network_attach::mode(&host_config.network_mode)
            == crate::network_attach::Mode::Bridge(crate::networks::DEFAULT_NETWORK)
        {
            crate::network_attach::default_network(&self.store)?;
        }
        let mut c = self.store.write_relaxed(|tx| {
            let mounts = crate::mounts::record_volumes(tx, &planned, &host_config.volumes_from)?;
            let c = tx.create_container(NewContainer {
                name: req.name.clone(),
                image: req.config.image.clone(),
                image_digest: Some(record.digest.clone()),
                config,
                host_config,
                mounts,
            })?;
            crate::network_attach::record(tx, &c, &req.endpoint)?;
            Ok(c)
        })?;
        crate::repair::crash_point("create-after-record");
        // The default hostname is the short id (the host's with `--network host`), known only
        // now; it lives in the bundle's config.
        if c.config.hostname.is_empty() {
            c.config.hostname = if c.host_config.network_mode == "host" {
                rustix::system::uname()
                    .nodename()
                    .to_string_lossy()
                    .into_owned()
            } else {
                c.id.short().to_owned()
            };
        }
        let prepared = self.prepare(&c, &img);
        crate::repair::crash_point("create-after-prepare");
        if let Err(e) = prepared {
            match self.remove(&c.id.to_string(), true) {
                Ok(removed) => {
                    if let Err(clean) = self.remove_anonymous_volumes(&removed) {
                        tracing::warn!("remove volumes of {}: {clean}", c.id.short());
                    }
                }
                Err(clean) => tracing::warn!(
                    "remove container {} after failed create: {clean}",
                    c.id.short()
                ),
            }
            return Err(e);
        }
        Ok(c)
    }

    /// Snapshot dirs, bundle config and an empty log file.
    fn prepare(&self, c: &Container, img: &image::Image) -> Result<()> {
        let id = c.id.as_str();
        let mount = self
            .images
            .prepare(id, img)
            .map_err(|source| EngineError::Image {
                action: format!("prepare rootfs of {}", c.id.short()),
                source: Box::new(source),
            })?;
        let mut spec = crate::bundle::oci_config(c, &rootfs_path(c))?;
        crate::container_spec::apply(&mut spec, c, &mount.lowerdirs, &self.paths.root)?;
        crate::network_attach::write_files(&self.store, c, &mut spec)?;
        self.prepare_mounts(c, &mount, &mut spec)?;
        let spec = serde_json::to_vec_pretty(&spec).map_err(|source| EngineError::Json {
            action: format!("encode config of container {}", c.id.short()),
            source,
        })?;
        let mount_json = serde_json::json!({
            "lowerdirs": mount.lowerdirs, "upperdir": mount.upperdir, "workdir": mount.workdir,
        });
        write_file(&c.bundle.join("config.json"), &spec)?;
        write_file(
            &c.bundle.join("rootfs.json"),
            mount_json.to_string().as_bytes(),
        )?;
        write_file(&c.log_path, b"")?;
        Ok(())
    }

    /// Starts a created or exited container (a running one is left alone); with `attach`, an
    /// attach connection comes back.
    ///
    /// Errors: no such container, it is being removed, or the start failed.
    pub fn start(&self, reference: &str, attach: bool) -> Result<Started> {
        let c = self.container(reference)?;
        match c.state.status {
            Status::Created | Status::Exited => {}
            Status::Running | Status::Paused | Status::Restarting => {
                let attach = if attach {
                    Some(self.attach_socket(reference)?.1)
                } else {
                    None
                };
                return Ok(Started {
                    container: c,
                    attach,
                    takes_exit: false,
                });
            }
            from => {
                return Err(EngineError::IllegalTransition {
                    id: c.id.short().to_owned(),
                    action: "start",
                    from,
                });
            }
        }
        if let Some(p) = c.state.monitor_pid
            && crate::check::monitor_alive(p, &c.run_dir)
        {
            // The last run's monitor is still cleaning up.
            self.wait_exit(&c, Duration::from_secs(30))?;
        }
        self.start_monitor(&c, attach)
    }

    /// Stops (as [`Engine::stop`]) and starts the container again.
    ///
    /// Errors: no such container, or the start failed.
    pub fn restart(&self, reference: &str, timeout: Duration) -> Result<Container> {
        let c = self.container(reference)?;
        // Docker's: the stop of a restart does not remove an `--rm` container.
        let keep = c.host_config.auto_remove && c.state.status.is_active();
        if keep {
            self.store.write(|tx| tx.set_auto_remove(&c.id, false))?;
        }
        let restarted = self
            .stop(c.id.as_str(), timeout)
            .and_then(|_| self.start(c.id.as_str(), false));
        if keep {
            self.store.write(|tx| tx.set_auto_remove(&c.id, true))?;
        }
        let _ = restarted?;
        self.container(c.id.as_str())
    }

    /// Records the exit of a container whose monitor is gone (killed) and cleans up after it:
    /// the container cannot be managed without its monitor. Returns whether it repaired.
    pub(crate) fn repair_orphaned(&self, c: &Container) -> bool {
        let monitor_alive = c
            .state
            .monitor_pid
            .is_some_and(|p| crate::check::monitor_alive(p, &c.run_dir));
        if !c.state.status.is_active() || monitor_alive {
            return false;
        }
        self.reap(c).is_ok()
    }

    /// Sends `signal` to the container's init, recording that the user asked.
    ///
    /// Errors: no such container, or it is not running.
    pub fn kill(&self, reference: &str, signal: i32) -> Result<Container> {
        let c = self.container(reference)?;
        let c = self
            .store
            .write(|tx| tx.transition(&c.id, Transition::StopRequested))?;
        let oci = crate::oci::for_container(&self.paths, &c);
        oci.kill(c.id.as_str(), signal, false)?;
        if signal == 9 && c.state.status == crate::state::Status::Paused {
            // A frozen task dies only once thawed (Docker unpauses after SIGKILL too).
            let _ = oci.resume(c.id.as_str());
        }
        Ok(c)
    }

    /// Stops the container: SIGTERM, then SIGKILL after `timeout`; waits for its exit record.
    ///
    /// Errors: no such container.
    pub fn stop(&self, reference: &str, timeout: Duration) -> Result<Container> {
        let c = self.container(reference)?;
        if !c.state.status.is_active() {
            return Ok(c);
        }
        let signal = crate::container_spec::stop_signal(&c);
        if self.kill(reference, signal).is_ok() && self.wait_exit(&c, timeout)? {
            return self.container(c.id.as_str());
        }
        let oci = crate::oci::for_container(&self.paths, &c);
        let _ = oci.kill(c.id.as_str(), 9, true);
        let _ = oci.resume(c.id.as_str());
        self.wait_exit(&c, Duration::from_secs(30))?;
        self.container(c.id.as_str())
    }

    /// [`stop`](Self::stop) with `docker stop`'s default wait: the container's `--stop-timeout`,
    /// else 10 seconds.
    ///
    /// Errors: no such container.
    pub fn stop_default(&self, reference: &str, timeout: Option<Duration>) -> Result<Container> {
        let timeout = match timeout {
            Some(t) => t,
            None => {
                let c = self.container(reference)?;
                // -1: wait for as long as it takes.
                let secs = c.config.stop_timeout.unwrap_or(10);
                Duration::from_secs(u64::try_from(secs).unwrap_or(u64::from(u32::MAX)))
            }
        };
        self.stop(reference, timeout)
    }

    /// Waits until the monitor recorded the exit and is gone; `false` on timeout.
    pub(crate) fn wait_exit(&self, c: &Container, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        // The monitor still cleans up (runtime delete, unmount, an `--rm` container's files)
        // after recording the exit, when its run dir (which tells it from a process that
        // reuses its pid) may be gone already: held by a pidfd while it is known to be it.
        let pin = |p: i32| (p, crate::check::pin_monitor(p, &c.run_dir));
        let mut monitor = c.state.monitor_pid.map(pin);
        loop {
            let left = || deadline.saturating_duration_since(Instant::now());
            let now = match self.store.read(|tx| tx.container_by_id(&c.id)) {
                Ok(now) => now,
                Err(e @ EngineError::NotFound { .. }) => {
                    // Removed (`--rm`): its monitor may still be removing the bundle.
                    if let Some((_, Some(fd))) = &monitor {
                        crate::check::wait_pidfd(fd, left());
                    }
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            if let Some(p) = now.state.monitor_pid
                && monitor.as_ref().is_none_or(|(seen, _)| *seen != p)
            {
                monitor = Some(pin(p));
            }
            let monitor_gone = match &monitor {
                Some((_, Some(fd))) => crate::check::wait_pidfd(fd, Duration::ZERO),
                _ => true,
            };
            if !now.state.status.is_active() && monitor_gone {
                return Ok(true);
            }
            if now.state.status.is_active() && monitor_gone {
                // The monitor died: record what the next command must.
                self.repair_orphaned(&now);
                return Ok(true);
            }
            if left().is_zero() {
                return Ok(false);
            }
            match &monitor {
                // Wakes as the monitor exits; then the record says how.
                Some((_, Some(fd))) => {
                    crate::check::wait_pidfd(fd, left());
                }
                _ => std::thread::sleep(POLL.min(left())),
            }
        }
    }

    /// Removes the container: with `force` a running one is killed first. Idempotent cleanup of
    /// runtime state, rootfs mount and directories, then the record.
    ///
    /// Errors: no such container, or it runs and `force` is not set.
    pub fn remove(&self, reference: &str, force: bool) -> Result<Container> {
        let _op = self.operation()?;
        self.remove_held(reference, force)
    }

    /// [`Engine::remove`] for a caller that already holds the operations lock (either way).
    pub(crate) fn remove_held(&self, reference: &str, force: bool) -> Result<Container> {
        let c = self.container(reference)?;
        if c.state.status.is_active() {
            if !force {
                return Err(EngineError::IllegalTransition {
                    id: c.id.short().to_owned(),
                    action: "remove",
                    from: c.state.status,
                });
            }
            let _ = self
                .store
                .write(|tx| tx.transition(&c.id, Transition::StopRequested));
            let oci = crate::oci::for_container(&self.paths, &c);
            let _ = oci.kill(c.id.as_str(), 9, true);
            if c.state.status == crate::state::Status::Paused {
                let _ = oci.resume(c.id.as_str());
            }
            crate::repair::crash_point("rm-after-kill");
            if self.exited_or_auto_removed(&c)? {
                return Ok(c);
            }
        } else if c.state.monitor_pid.is_some() {
            // The monitor may have recorded the exit and still be cleaning up: let it finish.
            if self.exited_or_auto_removed(&c)? {
                return Ok(c);
            }
        }
        self.cleanup(&c);
        crate::repair::crash_point("rm-after-cleanup");
        let removed = match self.store.write_relaxed(|tx| tx.remove_container(&c.id)) {
            Ok(r) => r,
            Err(EngineError::NotFound { .. }) => c.clone(),
            Err(e) => return Err(e),
        };
        crate::repair::crash_point("rm-after-record");
        self.images
            .snapshots()
            .remove(c.id.as_str())
            .map_err(|source| EngineError::Snapshot {
                action: format!("remove directory of container {}", c.id.short()),
                source: Box::new(source),
            })?;
        Ok(removed)
    }

    /// Waits for the exit of a container being removed; `true` when its monitor removed it
    /// meanwhile (`--rm`), which is what the caller wanted.
    fn exited_or_auto_removed(&self, c: &Container) -> Result<bool> {
        match self.wait_exit(c, Duration::from_secs(30)) {
            Ok(_) => Ok(false),
            Err(EngineError::NotFound { .. }) if c.host_config.auto_remove => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Runtime delete, rootfs unmount and run dir removal; each step tolerates "already done".
    fn cleanup(&self, c: &Container) {
        cleanup(&self.paths, c);
    }
}
/// Runtime delete, rootfs unmount, run dir removal (shared with the monitor).
pub(crate) fn cleanup(paths: &Paths, c: &Container) {
    tear_down(paths, c, false);
    let _ = fs::remove_dir_all(&c.run_dir);
}

/// The end of an `--rm` container, but for its run directory (whose monitor record tells `ps`
/// and `system check` that the container's monitor still runs, see `monitor::settle`):
/// [`cleanup`]'s steps and the container's directory, upper layer included. Returns whether
/// the kernel OOM-killed one of its processes, read before its cgroup goes.
pub(crate) fn remove_keeping_run_dir(paths: &Paths, c: &Container) -> bool {
    tear_down(paths, c, true)
}

/// Runtime delete on one thread (the OOM count first, when `removing`), the rootfs unmount on
/// another (then, when `removing`, the container's directory: after the unmount, nothing uses
/// its upper layer). The two touch different things; each step tolerates "already done".
fn tear_down(paths: &Paths, c: &Container, removing: bool) -> bool {
    let oom = std::thread::scope(|s| {
        let runtime = s.spawn(|| {
            let oom = removing && crate::oom::oom_killed(paths, c);
            let oci = crate::oci::for_container(paths, c);
            if oci.exists(c.id.as_str())
                && let Err(e) = oci.delete(c.id.as_str(), true)
            {
                tracing::warn!(
                    "delete container {}: {}",
                    c.id.short(),
                    runtime::error::chain(&e)
                );
            }
            oom
        });
        let rootfs = rootfs_path(c);
        if is_mountpoint(&rootfs)
            && let Err(e) = image::unmount(&rootfs, true)
        {
            tracing::warn!("unmount {}: {e}", rootfs.display());
        }
        let _ = fs::remove_dir(&rootfs);
        if removing {
            let _ = fs::remove_dir_all(&c.bundle);
        }
        runtime.join().unwrap_or(false)
    });
    crate::network_attach::released(paths, c);
    oom
}

/// Starts `berth --root R --run-root S <verb...>` for the store at `paths` through `exe_fd` (a
/// descriptor of the berth binary at `exe`, the path that becomes argv[0]) with this process's
/// environment, as a process nobody waits for, in a session of its own (see
/// `sys::spawn_detached`).
pub(crate) fn spawn_berth(
    exe_fd: std::os::fd::BorrowedFd<'_>,
    exe: &Path,
    paths: &Paths,
    verb: &[&std::ffi::OsStr],
    stdio: [std::os::fd::BorrowedFd<'_>; 3],
) -> std::io::Result<()> {
    let head: [&std::ffi::OsStr; 5] = [
        exe.as_os_str(),
        "--root".as_ref(),
        paths.root.as_os_str(),
        "--run-root".as_ref(),
        paths.run_root.as_os_str(),
    ];
    let argv: Vec<std::ffi::CString> = head
        .iter()
        .chain(verb)
        .filter_map(|a| std::ffi::CString::new(a.as_encoded_bytes()).ok())
        .collect();
    crate::sys::spawn_detached(exe_fd, &argv, &runtime::selfexe::environ(), stdio)
}

/// Docker's merge of the user's config over the image's: the user's Entrypoint (even an empty
/// one, from `--entrypoint ""`) drops the image's Cmd; Env, Labels, ExposedPorts and Volumes
/// are unions with the user winning per key; User, WorkingDir, StopSignal and Healthcheck come
/// from the image only when the user left them unset.
fn merge_config(user: &Config, image: Option<&oci_spec::image::Config>) -> Config {
    let mut c = user.clone();
    if let Some(ep) = &c.entrypoint
        && ep.iter().all(String::is_empty)
    {
        c.entrypoint = Some(Vec::new());
    }
    let Some(ic) = image else {
        return c;
    };
    if c.entrypoint.is_none() {
        if c.cmd.as_ref().is_none_or(Vec::is_empty) {
            c.cmd = ic.cmd().clone();
        }
        c.entrypoint = ic.entrypoint().clone();
    }
    let key = |e: &str| e.split('=').next().unwrap_or_default().to_owned();
    let mut env = ic.env().clone().unwrap_or_default();
    env.retain(|e| !c.env.iter().any(|u| key(u) == key(e)));
    env.append(&mut c.env);
    c.env = env;
    for (k, v) in ic.labels().clone().unwrap_or_default() {
        c.labels.entry(k).or_insert(v);
    }
    for p in ic.exposed_ports().clone().unwrap_or_default() {
        c.exposed_ports.entry(p).or_default();
    }
    for v in ic.volumes().clone().unwrap_or_default() {
        c.volumes.entry(v).or_default();
    }
    if c.user.is_empty() {
        c.user = ic.user().clone().unwrap_or_default();
    }
    if c.working_dir.is_empty() {
        c.working_dir = ic.working_dir().clone().unwrap_or_default();
    }
    if c.stop_signal.is_none() {
        c.stop_signal = ic.stop_signal().clone();
    }
    c
}

impl Config {
    /// Docker's merge of the image's `Healthcheck` (`image`, as Docker writes it in the image
    /// config): taken whole when the user gave none, else it fills the test and each setting the
    /// user left at 0.
    fn with_image_healthcheck(mut self, image: Option<&serde_json::Value>) -> Config {
        let Some(img) = image
            .and_then(|v| serde_json::from_value::<crate::config::HealthConfig>(v.clone()).ok())
        else {
            return self;
        };
        let Some(h) = &mut self.healthcheck else {
            self.healthcheck = Some(img);
            return self;
        };
        if h.test.is_empty() {
            h.test = img.test;
        }
        for (mine, theirs) in [
            (&mut h.interval, img.interval),
            (&mut h.timeout, img.timeout),
            (&mut h.start_period, img.start_period),
            (&mut h.start_interval, img.start_interval),
            (&mut h.retries, img.retries),
        ] {
            if *mine == 0 {
                *mine = theirs;
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_healthcheck_fills_what_the_user_left_out() {
        let image = serde_json::json!({
            "Test": ["CMD-SHELL", "check"], "Interval": 5, "Timeout": 6, "Retries": 7
        });
        let c = Config::default().with_image_healthcheck(Some(&image));
        let h = c.healthcheck.unwrap();
        assert_eq!(
            (h.test.len(), h.interval, h.timeout, h.retries),
            (2, 5, 6, 7)
        );
        let user = Config {
            healthcheck: Some(crate::config::HealthConfig {
                interval: 1,
                ..Default::default()
            }),
            ..Config::default()
        };
        let h = user
            .with_image_healthcheck(Some(&image))
            .healthcheck
            .unwrap();
        assert_eq!((h.test[1].as_str(), h.interval, h.retries), ("check", 1, 7));
        // --no-healthcheck stays NONE.
        let none = Config {
            healthcheck: Some(crate::config::HealthConfig {
                test: vec!["NONE".into()],
                ..Default::default()
            }),
            ..Config::default()
        };
        let h = none
            .with_image_healthcheck(Some(&image))
            .healthcheck
            .unwrap();
        assert_eq!(h.test, ["NONE"]);
        assert!(
            Config::default()
                .with_image_healthcheck(None)
                .healthcheck
                .is_none()
        );
    }

    fn image_config() -> oci_spec::image::Config {
        serde_json::from_value(serde_json::json!({
            "Entrypoint": ["/ep"], "Cmd": ["img-cmd"], "Env": ["PATH=/img", "A=img"],
            "WorkingDir": "/w", "User": "1", "Labels": {"l": "img", "m": "img"},
            "ExposedPorts": {"80/tcp": {}}, "StopSignal": "SIGQUIT"
        }))
        .unwrap()
    }

    #[test]
    fn cmd_replaces_and_entrypoint_clears_image_cmd() {
        let ic = image_config();
        let user = Config {
            cmd: Some(vec!["echo".into(), "hi".into()]),
            ..Config::default()
        };
        let c = merge_config(&user, Some(&ic));
        assert_eq!(c.entrypoint, Some(vec!["/ep".into()]));
        assert_eq!(c.cmd, Some(vec!["echo".into(), "hi".into()]));
        let user = Config {
            entrypoint: Some(vec!["/bin/true".into()]),
            ..Config::default()
        };
        let c = merge_config(&user, Some(&ic));
        assert_eq!(c.entrypoint, Some(vec!["/bin/true".into()]));
        assert_eq!(c.cmd, None);
        let user = Config {
            entrypoint: Some(vec![String::new()]),
            ..Config::default()
        };
        assert_eq!(merge_config(&user, Some(&ic)).entrypoint, Some(vec![]));
    }

    #[test]
    fn image_fills_what_the_user_left_unset() {
        let ic = image_config();
        let mut user = Config {
            env: vec!["A=user".into()],
            user: "2".into(),
            ..Config::default()
        };
        user.labels.insert("l".into(), "user".into());
        let c = merge_config(&user, Some(&ic));
        assert_eq!(c.env, ["PATH=/img", "A=user"]);
        assert_eq!((c.user.as_str(), c.working_dir.as_str()), ("2", "/w"));
        assert_eq!(c.labels["l"], "user");
        assert_eq!(c.labels["m"], "img");
        assert!(c.exposed_ports.contains_key("80/tcp"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
    }
}
