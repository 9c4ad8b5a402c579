//! Command-line definition (Docker's verbs and flags) and dispatch to the engine.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use engine::{Engine, Paths};

use crate::render;

mod attach;
pub(crate) mod container;
mod format;
mod image;
mod limits;
mod network;
mod process;
mod ps;
mod registry;
mod run;
mod stats;
mod storage;
mod system;
mod update;

pub(crate) use container::ContainerCommand;
use run::RunArgs;

/// berth: a daemonless container engine with Docker's command line.
#[derive(Debug, Parser)]
#[command(name = "berth", version)]
pub(crate) struct Cli {
    /// Persistent state root.
    #[arg(
        long,
        env = "BERTH_ROOT",
        default_value = "/var/lib/berth",
        global = true
    )]
    pub(crate) root: PathBuf,
    /// Runtime state root (a tmpfs).
    #[arg(
        long,
        env = "BERTH_RUN_ROOT",
        default_value = "/run/berth",
        global = true
    )]
    pub(crate) run_root: PathBuf,
    #[command(subcommand)]
    pub(crate) command: Command,
}

impl Cli {
    pub(crate) fn paths(&self) -> Paths {
        Paths::new(&self.root, &self.run_root)
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    #[command(flatten)]
    Image(image::ImageCommand),
    #[command(flatten)]
    Container(container::ContainerCommand),
    #[command(flatten)]
    Ps(ps::PsCommand),
    #[command(flatten)]
    Process(process::ProcessCommand),
    #[command(flatten)]
    System(system::SystemCommand),
    #[command(flatten)]
    Storage(storage::StorageCommand),
    #[command(flatten)]
    Update(update::UpdateCommand),
    #[command(flatten)]
    Attach(attach::AttachCommand),
    #[command(flatten)]
    Registry(registry::RegistryCommand),
    #[command(flatten)]
    Network(network::NetworkFamily),
    /// Run a command in a new container.
    #[command(disable_help_flag = true)]
    Run(Box<RunArgs>),
    /// Docker-shaped JSON of containers or images.
    Inspect {
        /// Go-template subset: text with `{{.Field.Sub}}` and `{{json .Field}}`.
        #[arg(short, long)]
        format: Option<String>,
        /// Containers (tried first) or images.
        #[arg(required = true)]
        objects: Vec<String>,
    },
    /// Per-container monitor (internal; started by `run`).
    #[command(hide = true)]
    Monitor {
        /// Full container id (with `--standby`, it comes on stdout).
        #[arg(required_unless_present = "standby")]
        id: Option<String>,
        /// Start before the container exists and wait for it (see the engine's
        /// `monitor_start`).
        #[arg(long)]
        standby: bool,
        /// The container exited with this code (from the idle monitor).
        #[arg(long, allow_hyphen_values = true)]
        exited: Option<i32>,
        /// Restart backoff in effect, in milliseconds.
        #[arg(long, default_value_t = 0)]
        backoff_ms: u64,
        /// Run one health check.
        #[arg(long)]
        health: bool,
        /// The attach client on stdin records the exit itself.
        #[arg(long)]
        exit_client: bool,
    },
}

/// Runs a verb; returns the exit code.
pub(crate) fn dispatch(cli: &Cli, paths: &Paths) -> Result<i32> {
    if let Some(code) = network::serve_dns(&cli.command, paths) {
        return Ok(code);
    }
    // `run` starts the container's monitor first: its exec overlaps opening the store and
    // creating the container.
    let standby = match &cli.command {
        Command::Run(args) => Some(engine::spawn_standby(paths, !args.detach)?),
        _ => None,
    };
    let engine = Engine::open(paths).context("open engine state")?;
    let mut stdout = std::io::stdout().lock();
    match &cli.command {
        Command::Image(c) => return image::dispatch(&engine, c),
        Command::Container(c) => return container::dispatch(&engine, c),
        Command::Ps(c) => return ps::dispatch(&engine, c),
        Command::Process(c) => return process::dispatch(&engine, c),
        Command::System(c) => return system::dispatch(&engine, c),
        Command::Storage(c) => return storage::dispatch(&engine, c),
        Command::Attach(c) => return attach::dispatch(&engine, c),
        Command::Registry(c) => return registry::dispatch(&engine, c),
        Command::Network(c) => return network::dispatch(&engine, c),
        Command::Run(args) => return run::run(&engine, args, standby),
        Command::Update(c) => return update::dispatch(&engine, c),
        Command::Inspect { format, objects } => {
            return inspect_each(objects, format.as_deref(), &mut stdout, |o| {
                engine.inspect(o)
            });
        }
        Command::Monitor { .. } => {}
    }
    Ok(0)
}

/// Prints the objects `lookup` finds as one JSON array (or each through the `-f` template);
/// like Docker, each missing one is an error line and makes the exit code 1.
pub(crate) fn inspect_each(
    objects: &[String],
    format: Option<&str>,
    out: &mut dyn Write,
    lookup: impl Fn(&str) -> engine::Result<serde_json::Value>,
) -> Result<i32> {
    let mut found = Vec::new();
    let mut code = 0;
    for o in objects {
        match lookup(o) {
            Ok(v) => found.push(v),
            Err(e @ engine::EngineError::NotFound { .. }) => {
                eprintln!("berth: {e}");
                code = 1;
            }
            Err(e) => return Err(e).with_context(|| format!("inspect {o}")),
        }
    }
    match format {
        Some(f) => {
            for v in &found {
                writeln!(out, "{}", render::template(f, v)?)?;
            }
        }
        None => render::json(out, &found)?,
    }
    Ok(code)
}

/// Docker's multi-container verbs: each container's name on success, one error line per
/// failure, and exit status 1 when any failed.
pub(crate) fn each(
    containers: &[String],
    out: &mut dyn Write,
    mut f: impl FnMut(&str) -> engine::Result<()>,
) -> Result<i32> {
    let mut code = 0;
    for c in containers {
        match f(c) {
            Ok(()) => writeln!(out, "{c}")?,
            Err(e) => {
                eprintln!("berth: {}", runtime::error::chain(&e));
                code = 1;
            }
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_verb_definition_is_consistent() {
        // clap checks each subcommand (unique flag names, e.g. -h for hostname needs the
        // generated help flag disabled) only when it is parsed; check them all here.
        super::Cli::command().debug_assert();
    }
}
