//! Verbs that create, start and attach to containers: `create`, `start`, `restart`, `attach`,
//! `wait`.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;
use engine::Engine;

use super::run::{CreateArgs, attach_options, session};

#[derive(Debug, Subcommand)]
pub(crate) enum AttachCommand {
    /// Create a new container (without starting it).
    #[command(disable_help_flag = true)]
    Create(Box<CreateArgs>),
    /// Start stopped or created containers.
    Start {
        /// Attach to the container's output (and with -i, its input).
        #[arg(short, long)]
        attach: bool,
        /// Attach the container's stdin.
        #[arg(short, long)]
        interactive: bool,
        /// Keys that detach from the container (default `ctrl-p,ctrl-q`).
        #[arg(long)]
        detach_keys: Option<String>,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Restart containers.
    Restart {
        /// Seconds to wait before killing.
        #[arg(short = 't', long = "time", default_value_t = 10)]
        time: u64,
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Attach to a running container's input and output.
    Attach {
        /// Keys that detach from the container (default `ctrl-p,ctrl-q`).
        #[arg(long)]
        detach_keys: Option<String>,
        /// Do not attach stdin.
        #[arg(long)]
        no_stdin: bool,
        /// Forward received signals to the container (not with a terminal).
        #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true",
              action = clap::ArgAction::Set)]
        sig_proxy: bool,
        /// Container.
        container: String,
    },
    /// Block until containers stop, then print their exit codes.
    Wait {
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
}

pub(crate) fn dispatch(engine: &Engine, command: &AttachCommand) -> Result<i32> {
    let mut stdout = std::io::stdout().lock();
    match command {
        AttachCommand::Create(args) => {
            let req = args.request()?;
            args.ensure_image(engine)?;
            let c = engine.create(&req)?;
            writeln!(stdout, "{}", c.id)?;
        }
        AttachCommand::Start {
            attach,
            interactive,
            detach_keys,
            containers,
        } => {
            if (*attach || *interactive) && containers.len() > 1 {
                anyhow::bail!("you cannot start and attach multiple containers at once");
            }
            if *attach || *interactive {
                let started = engine.start(&containers[0], true)?;
                let c = &started.container;
                let opts = attach_options(
                    *interactive && c.config.open_stdin,
                    c.config.tty,
                    detach_keys.as_deref(),
                    true,
                )?;
                let sock = started.attach.context("no attach connection")?;
                drop(stdout);
                return session(engine, c.id.as_str(), sock, &opts, started.takes_exit);
            }
            return super::each(containers, &mut stdout, |c| {
                engine.start(c, false).map(|_| ())
            });
        }
        AttachCommand::Restart { time, containers } => {
            return super::each(containers, &mut stdout, |c| {
                engine.restart(c, Duration::from_secs(*time)).map(|_| ())
            });
        }
        AttachCommand::Attach {
            detach_keys,
            no_stdin,
            sig_proxy,
            container,
        } => {
            let (c, sock) = engine.attach_socket(container)?;
            let opts = attach_options(
                !no_stdin && c.config.open_stdin,
                c.config.tty,
                detach_keys.as_deref(),
                *sig_proxy,
            )?;
            drop(stdout);
            return session(engine, c.id.as_str(), sock, &opts, false);
        }
        AttachCommand::Wait { containers } => {
            let mut failed = false;
            for name in containers {
                match engine.wait(name) {
                    Ok(code) => writeln!(stdout, "{code}")?,
                    Err(e) => {
                        eprintln!("berth: {e}");
                        failed = true;
                    }
                }
            }
            return Ok(i32::from(failed));
        }
    }
    Ok(0)
}
