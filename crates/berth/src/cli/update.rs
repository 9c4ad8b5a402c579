//! `berth update`: change a container's limits and restart policy, live when it runs.

use std::io::Write;

use anyhow::Result;
use clap::Subcommand;
use engine::{Engine, UpdateRequest};

use super::limits::LimitArgs;

#[derive(Debug, Subcommand)]
pub(crate) enum UpdateCommand {
    /// Update configuration of one or more containers.
    Update(UpdateArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct UpdateArgs {
    #[command(flatten)]
    limits: LimitArgs,
    /// Containers.
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Updates each container, printing its name as given; like Docker, a failing one is reported
/// and the others are still updated (exit code 1 then).
pub(crate) fn dispatch(engine: &Engine, command: &UpdateCommand) -> Result<i32> {
    let UpdateCommand::Update(args) = command;
    let req = args.limits.parse()?;
    if req == UpdateRequest::default() {
        anyhow::bail!("you must provide one or more flags when using this command");
    }
    let mut stdout = std::io::stdout().lock();
    let mut code = 0;
    for c in &args.containers {
        match engine.update(c, &req) {
            Ok(_) => writeln!(stdout, "{c}")?,
            Err(e) if args.containers.len() > 1 => {
                eprintln!("berth: update {c}: {}", runtime::error::chain(&e));
                code = 1;
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("update {c}"))),
        }
    }
    Ok(code)
}
