//! Verbs on existing containers.

use std::time::Duration;

use anyhow::Result;
use clap::Subcommand;
use engine::{Engine, ExecOptions};

use crate::render;

#[derive(Debug, Subcommand)]
pub(crate) enum ContainerCommand {
    /// Print a container's logs.
    Logs {
        /// Follow the output.
        #[arg(short, long)]
        follow: bool,
        /// Show timestamps.
        #[arg(short, long)]
        timestamps: bool,
        /// Number of lines from the end (`all`: every line).
        #[arg(short = 'n', long, default_value = "all")]
        tail: String,
        /// Only lines since this time (RFC 3339, Unix seconds, or a duration like 10m).
        #[arg(long)]
        since: Option<String>,
        /// Only lines before this time (same forms as --since).
        #[arg(long)]
        until: Option<String>,
        /// Container name or id.
        container: String,
    },
    /// Stop running containers (SIGTERM, then SIGKILL).
    Stop {
        /// Seconds to wait before killing (default: the container's `--stop-timeout`, else 10).
        #[arg(short = 't', long = "time")]
        time: Option<u64>,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Send a signal to running containers.
    Kill {
        /// Signal name or number.
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove containers.
    Rm {
        /// Kill and remove running containers.
        #[arg(short, long)]
        force: bool,
        /// Remove the anonymous volumes of the containers too.
        #[arg(short, long)]
        volumes: bool,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Run a command in a running container.
    Exec(ExecArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct ExecArgs {
    /// Return once the process runs.
    #[arg(short, long)]
    detach: bool,
    /// Keep stdin open (else the process reads /dev/null).
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    tty: bool,
    /// Keys that detach from the process (default `ctrl-p,ctrl-q`).
    #[arg(long)]
    detach_keys: Option<String>,
    /// Give the process every capability.
    #[arg(long)]
    privileged: bool,
    /// Environment variables (`KEY=VALUE`).
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    workdir: Option<String>,
    /// `UID[:GID]`.
    #[arg(short, long)]
    user: Option<String>,
    /// Container name or id.
    container: String,
    /// Command and arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    cmd: Vec<String>,
}

pub(crate) fn dispatch(engine: &Engine, command: &ContainerCommand) -> Result<i32> {
    let mut stdout = std::io::stdout().lock();
    match command {
        ContainerCommand::Logs {
            follow,
            timestamps,
            tail,
            since,
            until,
            container,
        } => {
            let now = engine::Timestamp::now().nanos();
            let time = |t: &Option<String>| {
                t.as_deref()
                    .map(|t| engine::parse_log_time(t, now))
                    .transpose()
            };
            let opts = engine::LogsOptions {
                follow: *follow,
                timestamps: *timestamps,
                tail: match tail.as_str() {
                    "all" => None,
                    // Docker: a negative count means all.
                    n => match n.parse::<i64>() {
                        Ok(n) => usize::try_from(n).ok(),
                        Err(_) => anyhow::bail!("invalid --tail {n:?}: want a number or all"),
                    },
                },
                since: time(since)?,
                until: time(until)?,
            };
            let mut stderr = std::io::stderr();
            engine.logs(container, &opts, &mut stdout, &mut stderr)?;
        }
        ContainerCommand::Stop { time, containers } => {
            return super::each(containers, &mut stdout, |c| {
                engine
                    .stop_default(c, time.map(Duration::from_secs))
                    .map(|_| ())
            });
        }
        ContainerCommand::Kill { signal, containers } => {
            let sig = render::signal(signal)?;
            return super::each(containers, &mut stdout, |c| engine.kill(c, sig).map(|_| ()));
        }
        ContainerCommand::Rm {
            force,
            volumes,
            containers,
        } => {
            return super::each(containers, &mut stdout, |c| {
                let removed = engine.remove(c, *force)?;
                if *volumes {
                    engine.remove_anonymous_volumes(&removed)?;
                }
                Ok(())
            });
        }
        ContainerCommand::Exec(args) => {
            let opts = ExecOptions {
                cmd: args.cmd.clone(),
                env: args.env.clone(),
                workdir: args.workdir.clone(),
                user: args.user.clone(),
                detach: args.detach,
                interactive: args.interactive,
                tty: args.tty,
                detach_keys: match &args.detach_keys {
                    Some(k) => engine::parse_detach_keys(k)?,
                    None => engine::DEFAULT_DETACH_KEYS.to_vec(),
                },
                privileged: args.privileged,
            };
            return Ok(engine.exec(&args.container, &opts)?);
        }
    }
    Ok(0)
}
