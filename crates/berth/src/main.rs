//! `berth`: Docker's command line over the engine. Parses, makes one engine call, renders.

mod cli;
mod render;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let paths = cli.paths();
    if matches!(
        cli.command,
        Command::Monitor { .. } | Command::Container(cli::ContainerCommand::Exec(_))
    ) {
        // The monitor's children and exec'd processes join containers: run from a binary they
        // cannot write.
        if let Err(e) = runtime::selfexe::reexec_protected() {
            eprintln!("berth: {}", runtime::error::chain(&e));
            return ExitCode::from(125);
        }
    }
    if let Command::Monitor {
        id,
        exited,
        backoff_ms,
        health,
        exit_client,
        standby,
    } = &cli.command
    {
        let args = engine::monitor::MonitorArgs {
            id: id.clone().unwrap_or_default(),
            standby: *standby,
            exited: *exited,
            backoff_ms: *backoff_ms,
            health: *health,
            exit_client: *exit_client,
        };
        return code(engine::monitor::monitor(&paths, &args));
    }
    match cli::dispatch(&cli, &paths) {
        Ok(c) => code(c),
        Err(e)
            if e.chain().any(|c| {
                let pipe = std::io::ErrorKind::BrokenPipe;
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == pipe)
                    || c.downcast_ref::<serde_json::Error>()
                        .is_some_and(|j| j.io_error_kind() == Some(pipe))
            }) =>
        {
            // The reader went away (`berth inspect x | head`): end quietly, as a process killed
            // by SIGPIPE would (128 + 13).
            code(141)
        }
        Err(e) => {
            let exit = e
                .chain()
                .find_map(|c| c.downcast_ref::<engine::EngineError>())
                .map_or(125, engine::EngineError::exit_code);
            let msg: Vec<String> = e.chain().map(ToString::to_string).collect();
            // One line, whatever a cause quotes (a tar reader echoes raw header bytes).
            let line: String = msg
                .join(": ")
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            eprintln!("berth: {line}");
            code(exit)
        }
    }
}

fn code(c: i32) -> ExitCode {
    ExitCode::from(u8::try_from(c.clamp(0, 255)).unwrap_or(125))
}
