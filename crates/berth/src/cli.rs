//! Command-line definition (Docker's verbs and flags) and dispatch to the engine.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use engine::{Engine, ExecOptions, Paths, RunOptions};

use crate::render;

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
    /// Import a rootfs tarball (a file, or - for stdin) as an image.
    Import {
        /// Tarball path or `-`.
        file: String,
        /// `REPOSITORY[:TAG]`.
        reference: Option<String>,
    },
    /// List images.
    Images {
        /// Only image ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Run a command in a new container.
    Run(RunArgs),
    /// List containers.
    Ps {
        /// All containers (default: running only).
        #[arg(short, long)]
        all: bool,
        /// Only ids.
        #[arg(short, long)]
        quiet: bool,
        /// Do not truncate output.
        #[arg(long)]
        no_trunc: bool,
    },
    /// Print a container's logs.
    Logs {
        /// Follow the output.
        #[arg(short, long)]
        follow: bool,
        /// Container name or id.
        container: String,
    },
    /// Stop running containers (SIGTERM, then SIGKILL).
    Stop {
        /// Seconds to wait before killing.
        #[arg(short = 't', long = "time", default_value_t = 10)]
        time: u64,
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
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Run a command in a running container.
    Exec(ExecArgs),
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
        /// Full container id.
        id: String,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// Run in the background and print the container id.
    #[arg(short, long)]
    detach: bool,
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
    /// Image.
    image: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    cmd: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ExecArgs {
    /// Return once the process runs.
    #[arg(short, long)]
    detach: bool,
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

/// Runs a verb; returns the exit code.
pub(crate) fn dispatch(cli: &Cli, paths: &Paths) -> Result<i32> {
    let engine = Engine::open(paths).context("open engine state")?;
    let mut stdout = std::io::stdout().lock();
    match &cli.command {
        Command::Import { file, reference } => {
            let input: Box<dyn Read> = if file == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                Box::new(std::fs::File::open(file).with_context(|| format!("open {file}"))?)
            };
            let image = engine.import(std::io::BufReader::new(input), reference.as_deref())?;
            writeln!(stdout, "{}", image.config_digest)?;
        }
        Command::Images { quiet } => render::images(&mut stdout, &engine.images()?, *quiet)?,
        Command::Run(args) => return run(&engine, args),
        Command::Ps {
            all,
            quiet,
            no_trunc,
        } => render::ps(&mut stdout, &engine.ps(*all)?, *quiet, *no_trunc)?,
        Command::Logs { follow, container } => {
            let mut stderr = std::io::stderr();
            engine.logs(container, *follow, &mut stdout, &mut stderr)?;
        }
        Command::Stop { time, containers } => {
            for c in containers {
                engine.stop(c, Duration::from_secs(*time))?;
                writeln!(stdout, "{c}")?;
            }
        }
        Command::Kill { signal, containers } => {
            let sig = render::signal(signal)?;
            for c in containers {
                engine.kill(c, sig)?;
                writeln!(stdout, "{c}")?;
            }
        }
        Command::Rm { force, containers } => {
            for c in containers {
                engine.remove(c, *force)?;
                writeln!(stdout, "{c}")?;
            }
        }
        Command::Exec(args) => {
            let opts = ExecOptions {
                cmd: args.cmd.clone(),
                env: args.env.clone(),
                workdir: args.workdir.clone(),
                user: args.user.clone(),
                detach: args.detach,
            };
            return Ok(engine.exec(&args.container, &opts)?);
        }
        Command::Inspect { format, objects } => {
            return inspect(&engine, objects, format.as_deref(), &mut stdout);
        }
        Command::Monitor { .. } => {}
    }
    Ok(0)
}

fn run(engine: &Engine, args: &RunArgs) -> Result<i32> {
    let opts = RunOptions {
        image: args.image.clone(),
        name: args.name.clone(),
        cmd: args.cmd.clone(),
        entrypoint: args.entrypoint.clone(),
        env: args.env.clone(),
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        auto_remove: args.rm,
        network: args.network.clone(),
    };
    let mut started = engine.run(&opts)?;
    if args.detach {
        println!("{}", started.container.id);
        return Ok(0);
    }
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    Ok(engine.attach(&mut started, &mut out, &mut err)?)
}

/// Prints the objects found as one JSON array; like Docker, each missing one is an error line
/// and makes the exit code 1.
fn inspect(
    engine: &Engine,
    objects: &[String],
    format: Option<&str>,
    out: &mut dyn Write,
) -> Result<i32> {
    let mut found = Vec::new();
    let mut code = 0;
    for o in objects {
        match engine.inspect(o) {
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
