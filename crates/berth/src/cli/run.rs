//! `berth run` (and later `create`): Docker's flags become a [`CreateRequest`] — Docker's
//! `Config` and `HostConfig`, exactly what the Engine API's `POST /containers/create` carries —
//! so the CLI and `berth serve` share one engine call.

use anyhow::Result;
use engine::config::HealthConfig;
use engine::{AttachEnd, AttachOptions, Config, CreateRequest, Engine, HostConfig, RestartPolicy};

/// Flags of `run` that `create` shares.
#[derive(Debug, clap::Args)]
pub(crate) struct CreateArgs {
    /// Remove the container when it exits.
    #[arg(long)]
    rm: bool,
    /// Container name.
    #[arg(long)]
    name: Option<String>,
    /// Environment variables (`KEY=VALUE`).
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    workdir: Option<String>,
    /// `UID[:GID]`.
    #[arg(short, long)]
    user: Option<String>,
    /// Overwrite the image's entrypoint.
    #[arg(long)]
    entrypoint: Option<String>,
    /// `none` (default) or `host`.
    #[arg(long)]
    network: Option<String>,
    /// Keep stdin open.
    #[arg(short, long)]
    pub(crate) interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub(crate) tty: bool,
    /// Restart policy: `no`, `always`, `on-failure[:N]`, `unless-stopped`.
    #[arg(long, default_value = "no")]
    restart: String,
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
    /// Image.
    image: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    cmd: Vec<String>,
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

    /// The request these flags make, as the docker CLI would send it.
    pub(crate) fn request(&self) -> Result<CreateRequest> {
        let config = Config {
            image: self.image.clone(),
            cmd: (!self.cmd.is_empty()).then(|| self.cmd.clone()),
            // `--entrypoint ""` clears the image's entrypoint (Docker sends `[""]`).
            entrypoint: self.entrypoint.as_ref().map(|e| vec![e.clone()]),
            env: self.env.clone(),
            working_dir: self.workdir.clone().unwrap_or_default(),
            user: self.user.clone().unwrap_or_default(),
            tty: self.tty,
            open_stdin: self.interactive,
            // Docker: an attached stdin closes the container's when it ends.
            stdin_once: self.interactive,
            attach_stdin: self.interactive,
            attach_stdout: true,
            attach_stderr: true,
            ..Config::default()
        };
        let mut config = config;
        config.healthcheck = self.healthcheck()?;
        let mut host_config = HostConfig {
            auto_remove: self.rm,
            network_mode: self.network.clone().unwrap_or_default(),
            restart_policy: RestartPolicy::parse(&self.restart)?,
            ..HostConfig::default()
        };
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
        Ok(CreateRequest {
            name: self.name.clone(),
            config,
            host_config,
        })
    }
}

/// `run`'s own flags on top of `create`'s.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// Run in the background and print the container id.
    #[arg(short, long)]
    detach: bool,
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

pub(crate) fn run(engine: &Engine, args: &RunArgs) -> Result<i32> {
    let mut req = args.create.request()?;
    // Docker's run -d attaches nothing, so stdin stays open for later attaches.
    req.config.stdin_once &= !args.detach;
    let opts = attach_options(
        args.create.interactive,
        args.create.tty,
        args.detach_keys.as_deref(),
        args.sig_proxy,
    )?;
    let started = engine.run(&req, !args.detach)?;
    match started.attach {
        Some(sock) if !args.detach => {
            session(engine, &started.container.id.to_string(), sock, &opts)
        }
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

/// Runs an attach session; the exit code is the container's (0 after detaching).
pub(crate) fn session(
    engine: &Engine,
    id: &str,
    sock: std::os::unix::net::UnixStream,
    opts: &AttachOptions,
) -> Result<i32> {
    Ok(match engine.attach_session(sock, opts)? {
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
