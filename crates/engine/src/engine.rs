//! The [`Engine`] facade: one call per CLI verb (and later API endpoint) over the state
//! [`Store`], the [`ImageStore`] and the in-process runtime.
//!
//! `run` creates the record, prepares the overlay snapshot, then spawns `berth monitor <id>`
//! (the current executable), which creates and starts the container and stays with it (see the
//! `monitor` module). The monitor reports the start on its stdout: `ok` or `err <code> <message>`.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use image::{ImageStore, ImportOptions, Platform};

use crate::config::{Config, HostConfig};
use crate::containers::{Container, NewContainer};
use crate::error::{EngineError, Result};
use crate::filter::ContainerFilter;
use crate::id::{Digest, Timestamp};
use crate::images::{Image, NewImage};
use crate::state::{Status, Transition};
use crate::store::{Paths, Store};

/// How often waits on the store (stop, rm, attach) look again.
const POLL: Duration = Duration::from_millis(20);

/// What `berth run` asks for.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Image reference.
    pub image: String,
    /// `--name`.
    pub name: Option<String>,
    /// Arguments after the image (replace the image's Cmd).
    pub cmd: Vec<String>,
    /// `--entrypoint` (an empty string clears the image's).
    pub entrypoint: Option<String>,
    /// `-e K=V`.
    pub env: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u uid[:gid]`.
    pub user: Option<String>,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--network`: `none` (default) or `host`.
    pub network: Option<String>,
}

/// A started container and its monitor (a child of this process until it exits).
#[derive(Debug)]
pub struct Started {
    /// The record as created.
    pub container: Container,
    /// The monitor process; its exit status is the container's exit code.
    pub monitor: Child,
    /// The log file, opened before the monitor started (it survives `--rm`).
    pub log: File,
}

/// The engine: state store, image store and runtime under one pair of roots.
#[derive(Debug)]
pub struct Engine {
    store: Store,
    pub(crate) images: ImageStore,
    pub(crate) paths: Paths,
}

impl Engine {
    /// Opens the state and image stores under `paths`.
    ///
    /// Errors: the stores cannot be opened or created.
    pub fn open(paths: &Paths) -> Result<Engine> {
        let store = Store::open(paths)?;
        let images = ImageStore::open(&paths.root).map_err(|source| EngineError::Image {
            action: "open image store".into(),
            source: Box::new(source),
        })?;
        Ok(Engine {
            store,
            images,
            paths: paths.clone(),
        })
    }

    /// The state store.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The runtime's state root: `<run root>/runtime`.
    #[must_use]
    pub fn runtime_root(&self) -> PathBuf {
        runtime_root(&self.paths)
    }

    /// Imports a rootfs tarball as an image, named `reference` when given.
    ///
    /// Errors: a bad tarball or reference.
    pub fn import(&self, tar: impl Read, reference: Option<&str>) -> Result<Image> {
        let imported = self
            .images
            .import_rootfs(tar, &ImportOptions::default())
            .map_err(|source| EngineError::Image {
                action: "import image".into(),
                source: Box::new(source),
            })?;
        let resolved = self
            .images
            .resolve(&imported.manifest, &Platform::host())
            .map_err(|source| EngineError::Image {
                action: "import image".into(),
                source: Box::new(source),
            })?;
        let size: u64 = resolved.manifest.layers().iter().map(|l| l.size()).sum();
        let new = NewImage {
            digest: Digest::parse(&imported.manifest.to_string())?,
            config_digest: Digest::parse(&imported.config.to_string())?,
            size: i64::try_from(size).unwrap_or(i64::MAX),
            created: Some(Timestamp::now()),
            labels: BTreeMap::new(),
        };
        self.store.write(|tx| {
            tx.add_image(&new)?;
            if let Some(r) = reference {
                tx.tag_image(&new.digest, r)?;
            }
            tx.image_by_digest(&new.digest)
        })
    }

    /// All images.
    ///
    /// Errors: the store cannot be read.
    pub fn images(&self) -> Result<Vec<Image>> {
        self.store.read(|tx| tx.list_images())
    }

    /// Containers, newest first; only active ones unless `all`.
    ///
    /// Errors: the store cannot be read.
    pub fn ps(&self, all: bool) -> Result<Vec<Container>> {
        let mut list = self
            .store
            .read(|tx| tx.list_containers(&ContainerFilter::default()))?;
        if !all {
            list.retain(|c| c.state.status.is_active());
        }
        list.sort_by_key(|c| std::cmp::Reverse(c.created));
        Ok(list)
    }

    /// One container by id, name or id prefix.
    ///
    /// Errors: `NotFound`, or an ambiguous prefix.
    pub fn container(&self, reference: &str) -> Result<Container> {
        self.store.read(|tx| tx.container(reference))
    }

    /// Creates the container (record, snapshot, bundle) and starts its monitor, which runs it.
    /// Returns once the monitor reported the start.
    ///
    /// Errors: a missing image, a taken name, or a start failure (with Docker's exit code).
    pub fn run(&self, opts: &RunOptions) -> Result<Started> {
        let c = self.create(opts)?;
        match self.start_monitor(&c) {
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

    /// An image reference resolved to its stored record and its manifest and config for this
    /// host's platform.
    pub(crate) fn resolve_image(&self, reference: &str) -> Result<(Image, image::Image)> {
        let record = self.store.read(|tx| tx.resolve_image(reference))?;
        let manifest = image::Digest::parse(record.digest.as_str()).map_err(|_| {
            EngineError::InvalidValue {
                what: "image digest",
                value: record.digest.to_string(),
            }
        })?;
        let img = self
            .images
            .resolve(&manifest, &Platform::host())
            .map_err(|source| EngineError::Image {
                action: format!("resolve image {reference}"),
                source: Box::new(source),
            })?;
        Ok((record, img))
    }

    fn create(&self, opts: &RunOptions) -> Result<Container> {
        let (record, img) = self.resolve_image(&opts.image)?;
        let config = merge_config(opts, img.config.config().as_ref());
        let host_config = HostConfig {
            auto_remove: opts.auto_remove,
            network_mode: opts.network.clone().unwrap_or_else(|| "none".into()),
            ..HostConfig::default()
        };
        let mut c = self.store.write(|tx| {
            tx.create_container(NewContainer {
                name: opts.name.clone(),
                image: opts.image.clone(),
                image_digest: Some(record.digest.clone()),
                config,
                host_config,
                mounts: Vec::new(),
            })
        })?;
        // The hostname is the short id, known only now; it lives in the bundle's config.
        c.config.hostname = c.id.short().to_owned();
        if let Err(e) = self.prepare(&c, &img) {
            if let Err(clean) = self.remove(&c.id.to_string(), true) {
                tracing::warn!(
                    "remove container {} after failed create: {clean}",
                    c.id.short()
                );
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
        let spec = serde_json::to_vec_pretty(&crate::bundle::oci_config(c, &rootfs_path(c))?)
            .map_err(|source| EngineError::Json {
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

    fn start_monitor(&self, c: &Container) -> Result<Started> {
        let log = File::open(&c.log_path).map_err(io_err("open log", &c.log_path))?;
        let exe =
            std::env::current_exe().map_err(io_err("find berth", Path::new("/proc/self/exe")))?;
        let monitor_log = c.bundle.join("monitor.log");
        let stderr = File::create(&monitor_log).map_err(io_err("create", &monitor_log))?;
        let mut child = Command::new(exe)
            .arg("--root")
            .arg(&self.paths.root)
            .arg("--run-root")
            .arg(&self.paths.run_root)
            .arg("monitor")
            .arg(c.id.as_str())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(io_err("spawn monitor", &monitor_log))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let line = line.trim_end();
        if line == "ok" {
            return Ok(Started {
                container: c.clone(),
                monitor: child,
                log,
            });
        }
        let _ = child.wait();
        let (code, message) = match line.strip_prefix("err ") {
            Some(rest) => {
                let (code, msg) = rest.split_once(' ').unwrap_or((rest, ""));
                (code.parse().unwrap_or(125), msg.to_owned())
            }
            None => (
                125,
                fs::read_to_string(&monitor_log)
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
            ),
        };
        Err(EngineError::StartFailed {
            id: c.id.short().to_owned(),
            message,
            exit_code: code,
        })
    }

    /// Copies the container's output from `started.log` to `out`/`err` until its monitor exits;
    /// returns the container's exit code.
    ///
    /// Errors: the log cannot be read or the monitor cannot be waited for.
    pub fn attach(
        &self,
        started: &mut Started,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<i32> {
        let mut reader = LogReader::default();
        let path = started.container.log_path.clone();
        loop {
            let status = started
                .monitor
                .try_wait()
                .map_err(io_err("wait for monitor", &path))?;
            reader.copy(&mut started.log, out, err, &path)?;
            if let Some(status) = status {
                reader.copy(&mut started.log, out, err, &path)?;
                return Ok(status.code().unwrap_or(125));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Writes the container's logs to `out`/`err`; with `follow`, until it stops running.
    ///
    /// Errors: no such container, or its log cannot be read.
    pub fn logs(
        &self,
        reference: &str,
        follow: bool,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<()> {
        let c = self.container(reference)?;
        let mut file = File::open(&c.log_path).map_err(io_err("open log", &c.log_path))?;
        let mut reader = LogReader::default();
        loop {
            let active = follow
                && self
                    .store
                    .read(|tx| tx.container_by_id(&c.id))
                    .is_ok_and(|c| c.state.status.is_active());
            reader.copy(&mut file, out, err, &c.log_path)?;
            if !active {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
    }

    /// Sends `signal` to the container's init, recording that the user asked.
    ///
    /// Errors: no such container, or it is not running.
    pub fn kill(&self, reference: &str, signal: i32) -> Result<Container> {
        let c = self.container(reference)?;
        let c = self
            .store
            .write(|tx| tx.transition(&c.id, Transition::StopRequested))?;
        runtime::container::kill(&self.runtime_root(), c.id.as_str(), signal, false).map_err(
            |source| EngineError::Runtime {
                action: format!("kill container {}", c.id.short()),
                source: Box::new(source),
            },
        )?;
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
        let root = self.runtime_root();
        if self.kill(reference, 15).is_ok() && self.wait_exit(&c, timeout)? {
            return self.container(c.id.as_str());
        }
        let _ = runtime::container::kill(&root, c.id.as_str(), 9, true);
        self.wait_exit(&c, Duration::from_secs(30))?;
        self.container(c.id.as_str())
    }

    /// Waits until the monitor recorded the exit and is gone; `false` on timeout.
    fn wait_exit(&self, c: &Container, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.store.read(|tx| tx.container_by_id(&c.id))?;
            // Recording the exit clears `monitor_pid`, but the monitor still cleans up (runtime
            // delete, unmount) after that: wait for the pid the caller saw as well.
            let monitor_gone = now
                .state
                .monitor_pid
                .or(c.state.monitor_pid)
                .is_none_or(|p| !crate::check::is_alive(p));
            if !now.state.status.is_active() && monitor_gone {
                return Ok(true);
            }
            if now.state.status.is_active() && monitor_gone {
                // The monitor died with the container: record what the next command must.
                self.cleanup(&now);
                let _ = self.store.write(|tx| {
                    tx.transition(
                        &now.id,
                        Transition::Exited {
                            exit_code: 137,
                            oom_killed: false,
                            at: Timestamp::now(),
                        },
                    )
                });
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(POLL);
        }
    }

    /// Removes the container: with `force` a running one is killed first. Idempotent cleanup of
    /// runtime state, rootfs mount and directories, then the record.
    ///
    /// Errors: no such container, or it runs and `force` is not set.
    pub fn remove(&self, reference: &str, force: bool) -> Result<Container> {
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
            let _ = runtime::container::kill(&self.runtime_root(), c.id.as_str(), 9, true);
            self.wait_exit(&c, Duration::from_secs(30))?;
        } else if let Some(p) = c.state.monitor_pid
            && crate::check::is_alive(p)
        {
            // The monitor recorded the exit and is cleaning up: let it finish.
            self.wait_exit(&c, Duration::from_secs(30))?;
        }
        self.cleanup(&c);
        let removed = match self.store.write(|tx| tx.remove_container(&c.id)) {
            Ok(r) => r,
            Err(EngineError::NotFound { .. }) => c.clone(),
            Err(e) => return Err(e),
        };
        self.images
            .snapshots()
            .remove(c.id.as_str())
            .map_err(|source| EngineError::Snapshot {
                action: format!("remove directory of container {}", c.id.short()),
                source: Box::new(source),
            })?;
        Ok(removed)
    }

    /// Runtime delete, rootfs unmount and run dir removal; each step tolerates "already done".
    fn cleanup(&self, c: &Container) {
        cleanup(&self.paths, c);
    }
}

/// Runtime delete, rootfs unmount, run dir removal (shared with the monitor).
pub(crate) fn cleanup(paths: &Paths, c: &Container) {
    let root = runtime_root(paths);
    if runtime::state::state_dir(&root, c.id.as_str()).exists()
        && let Err(e) = runtime::container::delete(&root, c.id.as_str(), true)
    {
        tracing::warn!(
            "delete container {}: {}",
            c.id.short(),
            runtime::error::chain(&e)
        );
    }
    let rootfs = rootfs_path(c);
    if is_mountpoint(&rootfs)
        && let Err(e) = image::unmount(&rootfs, true)
    {
        tracing::warn!("unmount {}: {e}", rootfs.display());
    }
    let _ = fs::remove_dir(&rootfs);
    let _ = fs::remove_dir_all(&c.run_dir);
}

/// `<run root>/runtime`: the in-process runtime's state root.
pub(crate) fn runtime_root(paths: &Paths) -> PathBuf {
    paths.run_root.join("runtime")
}

/// Where the container's rootfs is mounted: `<run dir>/rootfs`.
pub(crate) fn rootfs_path(c: &Container) -> PathBuf {
    c.run_dir.join("rootfs")
}

fn is_mountpoint(path: &Path) -> bool {
    let (Ok(a), Some(Ok(b))) = (fs::metadata(path), path.parent().map(fs::metadata)) else {
        return false;
    };
    use std::os::unix::fs::MetadataExt;
    a.dev() != b.dev() || a.ino() == b.ino()
}

fn merge_config(opts: &RunOptions, image: Option<&oci_spec::image::Config>) -> Config {
    let mut c = Config {
        image: opts.image.clone(),
        ..Config::default()
    };
    if let Some(ic) = image {
        c.env = ic.env().clone().unwrap_or_default();
        c.entrypoint = ic.entrypoint().clone();
        c.cmd = ic.cmd().clone();
        c.working_dir = ic.working_dir().clone().unwrap_or_default();
        c.user = ic.user().clone().unwrap_or_default();
    }
    if let Some(ep) = &opts.entrypoint {
        c.entrypoint = (!ep.is_empty()).then(|| vec![ep.clone()]);
        // Docker: a new entrypoint drops the image's Cmd.
        c.cmd = None;
    }
    if !opts.cmd.is_empty() {
        c.cmd = Some(opts.cmd.clone());
    }
    c.env.extend(opts.env.iter().cloned());
    if let Some(w) = &opts.workdir {
        c.working_dir = w.clone();
    }
    if let Some(u) = &opts.user {
        c.user = u.clone();
    }
    c
}

fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    }
    fs::write(path, data).map_err(io_err("write", path))
}

pub(crate) fn io_err(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> EngineError {
    let path = path.to_path_buf();
    move |source| EngineError::Io {
        action,
        path,
        source,
    }
}

/// Decodes Docker json-file lines incrementally.
#[derive(Default)]
struct LogReader {
    partial: Vec<u8>,
}

impl LogReader {
    fn copy(
        &mut self,
        file: &mut File,
        out: &mut dyn Write,
        err: &mut dyn Write,
        path: &Path,
    ) -> Result<()> {
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)
            .map_err(io_err("read log", path))?;
        self.partial.extend_from_slice(&buf);
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            let Ok(entry) = serde_json::from_slice::<serde_json::Value>(&line) else {
                continue;
            };
            let text = entry["log"].as_str().unwrap_or_default();
            let w: &mut dyn Write = if entry["stream"] == "stderr" {
                err
            } else {
                out
            };
            let _ = w.write_all(text.as_bytes());
        }
        let _ = out.flush();
        let _ = err.flush();
        Ok(())
    }
}

/// Status line as `docker ps` prints it: `Up 3 seconds`, `Exited (0) 2 minutes ago`.
#[must_use]
pub fn status_text(c: &Container, now: Timestamp) -> String {
    let ago =
        |t: Option<Timestamp>| human_duration(now.secs() - t.map_or(now.secs(), Timestamp::secs));
    match c.state.status {
        Status::Running => format!("Up {}", ago(c.state.started_at)),
        Status::Paused => format!("Up {} (Paused)", ago(c.state.started_at)),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            c.state.exit_code.unwrap_or(0),
            ago(c.state.finished_at)
        ),
        Status::Created => "Created".into(),
        Status::Restarting => "Restarting".into(),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
    }
}

/// Docker's `units.HumanDuration`: "Less than a second", "3 seconds", "About a minute", ...
#[must_use]
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..60 => format!("{s} seconds"),
        60..120 => "About a minute".into(),
        120..3600 => format!("{} minutes", s / 60),
        3600..7200 => "About an hour".into(),
        7200..172_800 => format!("{} hours", s / 3600),
        172_800..1_209_600 => format!("{} days", s / 86_400),
        1_209_600..5_184_000 => format!("{} weeks", s / 604_800),
        5_184_000..63_072_000 => format!("{} months", s / 2_592_000),
        _ => format!("{} years", s / 31_536_000),
    }
}

/// Docker's `units.HumanSize`: decimal units, 3 significant digits (`4.26MB`).
#[must_use]
pub fn human_size(bytes: i64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let bytes = bytes.max(0);
    #[allow(clippy::cast_precision_loss)]
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        return format!("{bytes}B");
    }
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    format!("{s}{}", UNITS[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_260_000), "4.26MB");
        assert_eq!(human_size(12_345_678), "12.3MB");
        assert_eq!(human_size(123_456_789), "123MB");
    }

    #[test]
    fn durations_like_docker() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
    }

    #[test]
    fn cmd_replaces_and_entrypoint_clears_image_cmd() {
        let opts = RunOptions {
            image: "x".into(),
            cmd: vec!["echo".into(), "hi".into()],
            ..RunOptions::default()
        };
        let c = merge_config(&opts, None);
        assert_eq!(c.cmd, Some(vec!["echo".into(), "hi".into()]));
        let opts = RunOptions {
            entrypoint: Some("/bin/true".into()),
            ..RunOptions::default()
        };
        assert_eq!(
            merge_config(&opts, None).entrypoint,
            Some(vec!["/bin/true".into()])
        );
    }
}
