//! Verbs on a live container's processes: `top`, `port`, `pause`, `unpause`, `rename`, `stats`.

use std::io::Write;

use anyhow::{Result, bail};
use clap::Subcommand;
use engine::Engine;

use crate::render;

#[derive(Debug, Subcommand)]
pub(crate) enum ProcessCommand {
    /// Display the running processes of a container.
    Top {
        /// Container name or id.
        container: String,
        /// Options for the host's `ps` (default `-ef`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_options: Vec<String>,
    },
    /// List port mappings of a container, or look up one private port.
    Port {
        /// Container name or id.
        container: String,
        /// `PRIVATE_PORT[/PROTO]`.
        private_port: Option<String>,
    },
    /// Pause all processes within containers.
    Pause {
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Unpause all processes within containers.
    Unpause {
        /// Containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Rename a container.
    Rename {
        /// Container name or id.
        container: String,
        /// New name.
        new_name: String,
    },
    /// Live resource usage of containers.
    Stats(crate::cli::stats::StatsArgs),
}

pub(crate) fn dispatch(engine: &Engine, command: &ProcessCommand) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    match command {
        ProcessCommand::Top {
            container,
            ps_options,
        } => {
            let top = engine.top(container, ps_options)?;
            let mut rows = vec![top.titles];
            rows.extend(top.processes);
            render::tabwrite_min(&mut out, &rows, 20)?;
        }
        ProcessCommand::Port {
            container,
            private_port,
        } => {
            let ports = engine.ports(container)?;
            match private_port {
                None => {
                    for (private, hosts) in &ports {
                        for h in hosts {
                            writeln!(out, "{private} -> {h}")?;
                        }
                    }
                }
                Some(p) => {
                    let key = if p.contains('/') {
                        p.clone()
                    } else {
                        format!("{p}/tcp")
                    };
                    let (num, proto) = key.split_once('/').unwrap_or((&key, "tcp"));
                    if num.parse::<u16>().is_err() || !matches!(proto, "tcp" | "udp" | "sctp") {
                        bail!("invalid port {p}: expected PRIVATE_PORT[/PROTO]");
                    }
                    match ports.get(&key).filter(|h| !h.is_empty()) {
                        Some(hosts) => {
                            for h in hosts {
                                writeln!(out, "{h}")?;
                            }
                        }
                        None => {
                            eprintln!("berth: no public port '{key}' published for {container}");
                            return Ok(1);
                        }
                    }
                }
            }
        }
        ProcessCommand::Pause { containers } => {
            return super::each(containers, &mut out, |c| engine.pause(c).map(|_| ()));
        }
        ProcessCommand::Unpause { containers } => {
            return super::each(containers, &mut out, |c| engine.unpause(c).map(|_| ()));
        }
        ProcessCommand::Rename {
            container,
            new_name,
        } => {
            engine.rename(container, new_name)?;
        }
        ProcessCommand::Stats(args) => return crate::cli::stats::stats(engine, args),
    }
    Ok(0)
}
