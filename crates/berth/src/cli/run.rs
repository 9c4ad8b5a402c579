//! `berth run` (and later `create`): Docker's flags become a [`CreateRequest`] — Docker's
//! `Config` and `HostConfig`, exactly what the Engine API's `POST /containers/create` carries —
//! so the CLI and `berth serve` share one engine call.
//!
//! Values are taken as strings and parsed here (see `limits`), so that a bad one is one line
//! and exit code 125, as with Docker.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use engine::config::{DeviceMapping, HealthConfig, Ulimit};
use engine::{AttachEnd, AttachOptions, Config, CreateRequest, Engine, HostConfig, RestartPolicy};

use super::limits::{LimitArgs, bad_flag, int_flag, size_flag};

/// Flags of `run` that `create` shares.
#[derive(Debug, clap::Args)]
pub(crate) struct CreateArgs {
    /// Print help (`-h` is `--hostname`, as in Docker).
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Remove the container when it exits.
    #[arg(long)]
    rm: bool,
    /// Container name.
    #[arg(long)]
    name: Option<String>,
    /// Environment variables (`KEY=VALUE`).
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Read environment variables from a file (`KEY=VALUE` lines).
    #[arg(long)]
    env_file: Vec<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    workdir: Option<String>,
    /// `name|uid[:group|gid]`.
    #[arg(short, long)]
    user: Option<String>,
    /// Additional groups to join.
    #[arg(long)]
    group_add: Vec<String>,
    /// Overwrite the image's entrypoint.
    #[arg(long)]
    entrypoint: Option<String>,
    #[command(flatten)]
    net: super::network::NetworkFlags,
    /// Container host name.
    #[arg(short = 'h', long)]
    hostname: Option<String>,
    /// Container NIS domain name.
    #[arg(long)]
    domainname: Option<String>,
    /// Set metadata (`key=value`).
    #[arg(short, long = "label")]
    label: Vec<String>,
    /// Read labels from a file (`key=value` lines).
    #[arg(long)]
    label_file: Vec<String>,
    /// CPU CFS period in microseconds.
    #[arg(long, allow_hyphen_values = true)]
    cpu_period: Option<String>,
    /// CPU CFS quota in microseconds.
    #[arg(long, allow_hyphen_values = true)]
    cpu_quota: Option<String>,
    /// Memory nodes in which to allow execution.
    #[arg(long)]
    cpuset_mems: Option<String>,
    /// Ulimit options (`nofile=1024:2048`).
    #[arg(long)]
    ulimit: Vec<String>,
    /// Size of /dev/shm.
    #[arg(long)]
    shm_size: Option<String>,
    /// Add Linux capabilities.
    #[arg(long)]
    cap_add: Vec<String>,
    /// Drop Linux capabilities.
    #[arg(long)]
    cap_drop: Vec<String>,
    /// Give extended privileges to this container.
    #[arg(long)]
    privileged: bool,
    /// Security options (`no-new-privileges`, `seccomp=unconfined`, `seccomp=FILE`).
    #[arg(long)]
    security_opt: Vec<String>,
    /// Add a host device (`/dev/x[:/dev/y[:rwm]]`).
    #[arg(long)]
    device: Vec<String>,
    /// Namespaced kernel parameters (`net.ipv4.ip_forward=1`).
    #[arg(long)]
    sysctl: Vec<String>,
    /// Run an init inside the container that forwards signals and reaps processes.
    #[arg(long)]
    init: bool,
    /// Signal to stop the container.
    #[arg(long)]
    stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container.
    #[arg(long, allow_hyphen_values = true)]
    stop_timeout: Option<String>,
    /// Disable the OOM killer (processes over `--memory` wait for memory instead of dying).
    #[arg(long)]
    oom_kill_disable: bool,
    #[command(flatten)]
    limits: LimitArgs,
    /// OCI runtime binary (path or name in PATH: runc, crun, berth-runtime) instead of the
    /// in-process runtime.
    #[arg(long)]
    runtime: Option<String>,
    #[command(flatten)]
    storage: Box<StorageFlags>,
    /// Keep stdin open.
    #[arg(short, long)]
    pub(crate) interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub(crate) tty: bool,
    /// Log driver options: `max-size=N[k|m|g]`, `max-file=N`.
    #[arg(long = "log-opt")]
    log_opt: Vec<String>,
    /// Command to run to check health (in a shell).
    #[arg(long)]
    health_cmd: Option<String>,
    /// Time between health checks (e.g. 30s, 1m).
    #[arg(long)]
    health_interval: Option<String>,
    /// Time one health check may take.
    #[arg(long)]
    health_timeout: Option<String>,
    /// Consecutive failures that make the container unhealthy.
    #[arg(long)]
    health_retries: Option<i64>,
    /// Grace period after start during which failures do not count.
    #[arg(long)]
    health_start_period: Option<String>,
    /// Disable any health check (also the image's).
    #[arg(long, conflicts_with_all = ["health_cmd", "health_interval", "health_timeout",
          "health_retries", "health_start_period"])]
    no_healthcheck: bool,
    /// Pull the image before creating: `missing` (when not stored), `always`, `never`.
    #[arg(long, default_value = "missing")]
    pull: String,
    /// Platform to pull (`os/arch[/variant]`) when the image is pulled.
    #[arg(long)]
    platform: Option<String>,
    /// Image.
    image: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    cmd: Vec<String>,
}

/// `KEY=VALUE` lines of an env or label file; blank lines and `#` comments skipped. With
/// `from_env`, a bare `KEY` takes this process's value (and is dropped when unset), as Docker's
/// `--env-file` does.
fn read_kv_file(path: &str, flag: &str, from_env: bool) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(Path::new(path)).with_context(|| format!("{flag}: read {path}"))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('=') {
            bail!("{flag}: {path} line {}: no variable name", n + 1);
        }
        if line.contains('=') || !from_env {
            out.push(line.to_owned());
        } else if let Ok(v) = std::env::var(line.trim_end()) {
            out.push(format!("{}={v}", line.trim_end()));
        }
    }
    Ok(out)
}

/// `--device host[:container[:perms]]`; a second field made only of `rwm` is the permissions.
fn device(spec: &str) -> Result<DeviceMapping> {
    let perms = |s: &str| !s.is_empty() && s.chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, container, mode) = match parts[..] {
        [h] => (h, h, "rwm"),
        [h, p] if perms(p) => (h, h, p),
        [h, c] => (h, c, "rwm"),
        [h, c, p] => (h, c, p),
        _ => return Err(bad_flag("--device", spec, "bad format")),
    };
    if !perms(mode) {
        return Err(bad_flag(
            "--device",
            spec,
            format!("invalid device mode: {mode}"),
        ));
    }
    if !container.starts_with('/') {
        return Err(bad_flag(
            "--device",
            spec,
            "the container path must be absolute",
        ));
    }
    Ok(DeviceMapping {
        path_on_host: host.to_owned(),
        path_in_container: container.to_owned(),
        cgroup_permissions: mode.to_owned(),
    })
}

/// `--security-opt`, with `seccomp=FILE` replaced by the file's content (the API carries the
/// profile itself, as Docker's CLI sends it).
fn security_opts(opts: &[String]) -> Result<Vec<String>> {
    opts.iter()
        .map(|o| match o.split_once(['=', ':']) {
            Some(("seccomp", file)) if file != "unconfined" => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("opening seccomp profile ({file}) failed"))?;
                Ok(format!("seccomp={text}"))
            }
            _ => Ok(o.clone()),
        })
        .collect()
}

impl CreateArgs {
    /// `--health-*` / `--no-healthcheck` as Docker's `Healthcheck` (`None`: the image's).
    fn healthcheck(&self) -> Result<Option<HealthConfig>> {
        if self.no_healthcheck {
            return Ok(Some(HealthConfig {
                test: vec!["NONE".into()],
                ..HealthConfig::default()
            }));
        }
        let dur = |v: &Option<String>| -> Result<i64> {
            Ok(match v {
                Some(s) => engine::parse_duration(s)?,
                None => 0,
            })
        };
        let h = HealthConfig {
            test: self
                .health_cmd
                .as_ref()
                .map(|c| vec!["CMD-SHELL".to_owned(), c.clone()])
                .unwrap_or_default(),
            interval: dur(&self.health_interval)?,
            timeout: dur(&self.health_timeout)?,
            start_period: dur(&self.health_start_period)?,
            start_interval: 0,
            retries: self.health_retries.unwrap_or(0),
        };
        if h.retries < 0 {
            anyhow::bail!("--health-retries cannot be negative");
        }
        Ok((h != HealthConfig::default()).then_some(h))
    }

    /// Pulls the image when `--pull` asks for it (see `registry::ensure_image`).
    pub(crate) fn ensure_image(&self, engine: &Engine) -> Result<()> {
        super::registry::ensure_image(engine, &self.image, &self.pull, self.platform.as_deref())
    }

    /// The request these flags make, as the docker CLI would send it.
    pub(crate) fn request(&self) -> Result<CreateRequest> {
        let mut env = Vec::new();
        for f in &self.env_file {
            env.extend(read_kv_file(f, "--env-file", true)?);
        }
        // `-e KEY` takes KEY from berth's environment, and is dropped when unset (Docker's rule).
        env.extend(self.env.iter().filter_map(|e| {
            if e.contains('=') {
                Some(e.clone())
            } else {
                std::env::var(e).ok().map(|v| format!("{e}={v}"))
            }
        }));
        let mut label_lines = Vec::new();
        for f in &self.label_file {
            label_lines.extend(read_kv_file(f, "--label-file", false)?);
        }
        label_lines.extend(self.label.iter().cloned());
        let labels: BTreeMap<String, String> = label_lines
            .iter()
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap_or((l, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect();
        let stop_timeout = int_flag("--stop-timeout", self.stop_timeout.as_ref())?;
        let config = Config {
            image: self.image.clone(),
            cmd: (!self.cmd.is_empty()).then(|| self.cmd.clone()),
            // `--entrypoint ""` clears the image's entrypoint (Docker sends `[""]`).
            entrypoint: self.entrypoint.as_ref().map(|e| vec![e.clone()]),
            env,
            working_dir: self.workdir.clone().unwrap_or_default(),
            user: self.user.clone().unwrap_or_default(),
            hostname: self.hostname.clone().unwrap_or_default(),
            domainname: self.domainname.clone().unwrap_or_default(),
            labels,
            stop_signal: self.stop_signal.clone(),
            stop_timeout,
            tty: self.tty,
            open_stdin: self.interactive,
            // Docker: an attached stdin closes the container's when it ends.
            stdin_once: self.interactive,
            attach_stdin: self.interactive,
            attach_stdout: true,
            attach_stderr: true,
            ..Config::default()
        };
        let ulimits = self
            .ulimit
            .iter()
            .map(|u| engine::limits::parse_ulimit(u).map_err(|e| bad_flag("--ulimit", u, e)))
            .collect::<Result<Vec<Ulimit>>>()?;
        let sysctls = self
            .sysctl
            .iter()
            .map(|s| {
                s.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .ok_or_else(|| {
                        bad_flag("--sysctl", s, "sysctl must be in the format KEY=VALUE")
                    })
            })
            .collect::<Result<BTreeMap<_, _>>>()?;
        let limits = self.limits.parse()?;
        let mut host_config = HostConfig {
            auto_remove: self.rm,
            runtime: self.runtime.clone().unwrap_or_default(),
            memory: limits.memory.unwrap_or(0),
            memory_swap: limits.memory_swap.unwrap_or(0),
            memory_reservation: limits.memory_reservation.unwrap_or(0),
            oom_kill_disable: self.oom_kill_disable.then_some(true),
            nano_cpus: limits.nano_cpus.unwrap_or(0),
            cpu_shares: limits.cpu_shares.unwrap_or(0),
            cpu_period: int_flag("--cpu-period", self.cpu_period.as_ref())?.unwrap_or(0),
            cpu_quota: int_flag("--cpu-quota", self.cpu_quota.as_ref())?.unwrap_or(0),
            cpuset_cpus: limits.cpuset_cpus.unwrap_or_default(),
            cpuset_mems: self.cpuset_mems.clone().unwrap_or_default(),
            pids_limit: limits.pids_limit,
            ulimits,
            shm_size: size_flag("--shm-size", self.shm_size.as_ref(), false)?.unwrap_or(0),
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            privileged: self.privileged,
            security_opt: security_opts(&self.security_opt)?,
            devices: self
                .device
                .iter()
                .map(|d| device(d))
                .collect::<Result<_>>()?,
            sysctls,
            group_add: self.group_add.clone(),
            init: self.init.then_some(true),
            restart_policy: limits.restart_policy.unwrap_or_default(),
            ..HostConfig::default()
        };
        let mut config = config;
        config.healthcheck = self.healthcheck()?;
        self.storage.apply(&mut config, &mut host_config)?;
        if self.rm && host_config.restart_policy != RestartPolicy::default() {
            anyhow::bail!("conflicting options: --restart and --rm");
        }
        for opt in &self.log_opt {
            let (k, v) = opt
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("invalid --log-opt {opt:?}: want KEY=VALUE"))?;
            let valid = match k {
                "max-size" => berth_monitor::jsonlog::parse_size(v).is_some_and(|n| n > 0),
                "max-file" => v.parse::<u32>().is_ok_and(|n| n > 0),
                _ => anyhow::bail!("unknown log opt {k:?} for the json-file driver"),
            };
            if !valid {
                anyhow::bail!("invalid --log-opt {opt:?}");
            }
            host_config
                .log_config
                .config
                .insert(k.to_owned(), v.to_owned());
        }
        let mut endpoint = engine::EndpointRequest::default();
        self.net
            .apply(&mut config, &mut host_config, &mut endpoint)?;
        Ok(CreateRequest {
            name: self.name.clone(),
            config,
            host_config,
            endpoint,
        })
    }
}

/// Mounts and the root file system: `-v`, `--mount`, `--tmpfs`, `--read-only`,
/// `--volumes-from`.
#[derive(Debug, clap::Args)]
struct StorageFlags {
    /// Bind mount or volume: `/host:/ctr[:opts]`, `name:/ctr[:opts]`, or `/ctr` (anonymous).
    #[arg(short = 'v', long = "volume")]
    volumes: Vec<String>,
    /// `type=bind|volume|tmpfs,source=,target=,readonly,...`.
    #[arg(long = "mount")]
    mounts: Vec<String>,
    /// A tmpfs: `/path[:options]`.
    #[arg(long = "tmpfs")]
    tmpfs: Vec<String>,
    /// Mount the container's root file system read-only.
    #[arg(long)]
    read_only: bool,
    /// The volumes and bind mounts of another container: `CONTAINER[:ro|rw]`.
    #[arg(long = "volumes-from")]
    volumes_from: Vec<String>,
}

impl StorageFlags {
    /// As the docker CLI does: `-v /path` is an anonymous volume (`Config.Volumes`), other
    /// `-v` values are `Binds`; `--mount` values are parsed into `Mounts`.
    fn apply(&self, config: &mut Config, host: &mut HostConfig) -> Result<()> {
        for v in &self.volumes {
            if v.contains(':') {
                host.binds.push(v.clone());
            } else {
                config.volumes.insert(v.clone(), engine::config::Empty {});
            }
        }
        for m in &self.mounts {
            let parsed = engine::parse_mount_flag(m)
                .with_context(|| format!("invalid argument \"{m}\" for \"--mount\" flag"))?;
            host.mounts.push(parsed);
        }
        for t in &self.tmpfs {
            let (path, opts) = t.split_once(':').unwrap_or((t, ""));
            host.tmpfs.insert(path.to_owned(), opts.to_owned());
        }
        host.readonly_rootfs = self.read_only;
        host.volumes_from.clone_from(&self.volumes_from);
        Ok(())
    }
}

/// `run`'s own flags on top of `create`'s.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// Run in the background and print the container id.
    #[arg(short, long)]
    pub(crate) detach: bool,
    /// Keys that detach from the container (default `ctrl-p,ctrl-q`).
    #[arg(long)]
    detach_keys: Option<String>,
    /// Forward received signals to the container (not with a terminal).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true",
          action = clap::ArgAction::Set)]
    sig_proxy: bool,
    #[command(flatten)]
    create: CreateArgs,
}

pub(crate) fn run(
    engine: &Engine,
    args: &RunArgs,
    standby: Option<engine::Standby>,
) -> Result<i32> {
    let mut req = args.create.request()?;
    args.create.ensure_image(engine)?;
    // Docker's run -d attaches nothing, so stdin stays open for later attaches.
    req.config.stdin_once &= !args.detach;
    let opts = attach_options(
        args.create.interactive,
        args.create.tty,
        args.detach_keys.as_deref(),
        args.sig_proxy,
    )?;
    let started = match standby {
        Some(monitor) => engine.run_with_monitor(&req, monitor)?,
        None => engine.run(&req, !args.detach)?,
    };
    match started.attach {
        Some(sock) if !args.detach => session(
            engine,
            &started.container.id.to_string(),
            sock,
            &opts,
            started.takes_exit,
        ),
        _ => {
            println!("{}", started.container.id);
            Ok(0)
        }
    }
}

/// The attach options from the shared flags.
pub(crate) fn attach_options(
    stdin: bool,
    tty: bool,
    detach_keys: Option<&str>,
    sig_proxy: bool,
) -> Result<AttachOptions> {
    Ok(AttachOptions {
        stdin,
        tty,
        detach_keys: match detach_keys {
            Some(k) => engine::parse_detach_keys(k)?,
            None => engine::DEFAULT_DETACH_KEYS.to_vec(),
        },
        sig_proxy,
    })
}

/// Runs an attach session; the exit code is the container's (0 after detaching). With
/// `takes_exit` (see `Started::takes_exit`) this process records the exit.
pub(crate) fn session(
    engine: &Engine,
    id: &str,
    sock: std::os::unix::net::UnixStream,
    opts: &AttachOptions,
    takes_exit: bool,
) -> Result<i32> {
    let end = engine.attach_session(&sock, opts)?;
    if let (AttachEnd::Exited(code), true) = (&end, takes_exit) {
        engine.take_exit(id, *code, &sock)?;
    }
    drop(sock);
    Ok(match end {
        AttachEnd::Exited(code) => {
            // Return once the monitor has recorded the exit (and removed an --rm container),
            // as Docker does; a record already gone is fine.
            let _ = engine.wait(id);
            code
        }
        AttachEnd::Detached => 0,
        // The monitor went away without telling: the store has the last word.
        AttachEnd::Closed => match engine.wait(id) {
            Ok(code) => i32::try_from(code).unwrap_or(125),
            Err(engine::EngineError::NotFound { .. }) => 0,
            Err(e) => return Err(e.into()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_like_docker() {
        let d = device("/dev/fuse").unwrap();
        assert_eq!(
            (d.path_in_container.as_str(), d.cgroup_permissions.as_str()),
            ("/dev/fuse", "rwm")
        );
        let d = device("/dev/fuse:r").unwrap();
        assert_eq!(
            (d.path_in_container.as_str(), d.cgroup_permissions.as_str()),
            ("/dev/fuse", "r")
        );
        let d = device("/dev/fuse:/dev/f:rw").unwrap();
        assert_eq!(
            (d.path_in_container.as_str(), d.cgroup_permissions.as_str()),
            ("/dev/f", "rw")
        );
        assert!(device("/dev/fuse:/dev/f:rwx").is_err());
        assert!(device("/dev/fuse:rel").is_err());
    }
}
