//! `berth-runtime`: an OCI runtime with runc's command line. Parses, calls the `runtime`
//! library, renders.

/// `println!` that returns the write error instead of panicking: a closed pipe (`features |
/// head -1`) ends the command quietly instead of with a panic.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}

mod cli;
mod logging;
mod render;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.version {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stdout().lock(),
            "berth-runtime version {}\nspec: 1.2.0\nlibseccomp: {}",
            env!("CARGO_PKG_VERSION"),
            runtime::features::libseccomp_version()
        );
        return ExitCode::SUCCESS;
    }
    logging::init(cli.log.as_deref(), cli.log_format, cli.debug);
    // Verbs that put a process into a container run from a sealed copy of this binary.
    if matches!(
        cli.command,
        Some(Command::Create(_) | Command::Run { .. } | Command::Exec(_))
    ) && let Err(e) = runtime::selfexe::reexec_protected()
    {
        eprintln!("berth-runtime: {}", runtime::error::chain(&e));
        return ExitCode::from(1);
    }
    match dispatch(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            // The reader went away (e.g. `| head`): what a shell reports for SIGPIPE.
            ExitCode::from(141)
        }
        Err(e) => {
            let msg = format!("{e:#}");
            if cli.log.is_some() {
                tracing::error!("{msg}");
            }
            eprintln!("berth-runtime: {msg}");
            ExitCode::from(1)
        }
    }
}

fn exit_code(status: i32) -> u8 {
    u8::try_from(status).unwrap_or(255)
}

fn dispatch(cli: &Cli) -> Result<u8> {
    let root = &cli.root;
    let Some(command) = &cli.command else {
        use clap::CommandFactory;
        Cli::command().print_help().context("print help")?;
        return Ok(0);
    };
    match command {
        Command::Create(a) => {
            let opts = render::create_options(a, cli.systemd_cgroup);
            runtime::container::create(root, &opts)
                .with_context(|| format!("create container {}", a.id))?;
        }
        Command::Run {
            create,
            detach,
            keep,
        } => {
            let opts = render::create_options(create, cli.systemd_cgroup);
            let status = runtime::container::run(root, &opts, *detach, *keep)
                .with_context(|| format!("run container {}", create.id))?;
            return Ok(exit_code(status));
        }
        Command::Start { id } => {
            runtime::container::start(root, id).with_context(|| format!("start container {id}"))?;
        }
        Command::State { id } => {
            let st = runtime::state::ContainerState::load(root, id)
                .with_context(|| format!("state of container {id}"))?;
            outln!("{}", serde_json::to_string_pretty(&st.oci(root))?);
        }
        Command::Kill { all, id, signal } => {
            let sig = render::parse_signal(signal.as_deref().unwrap_or("SIGTERM"))?;
            runtime::container::kill(root, id, sig, *all)
                .with_context(|| format!("kill container {id}"))?;
        }
        Command::Delete { force, id } => {
            runtime::container::delete(root, id, *force)
                .with_context(|| format!("delete container {id}"))?;
        }
        Command::Exec(a) => {
            let process = render::exec_process(root, a)?;
            let opts = runtime::container::ExecOptions {
                console_socket: a.console_socket.clone(),
                pid_file: a.pid_file.clone(),
                detach: a.detach,
                preserve_fds: a.preserve_fds,
            };
            let status = runtime::container::exec(root, &a.id, &process, &opts)
                .with_context(|| format!("exec in container {}", a.id))?;
            return Ok(exit_code(status));
        }
        Command::Ps {
            format,
            id,
            ps_args,
        } => render::ps(root, id, *format, ps_args)?,
        Command::List { format, quiet } => render::list(root, *format, *quiet)?,
        Command::Pause { id } => {
            runtime::container::pause(root, id).with_context(|| format!("pause container {id}"))?
        }
        Command::Resume { id } => runtime::container::resume(root, id)
            .with_context(|| format!("resume container {id}"))?,
        Command::Events {
            interval,
            stats,
            id,
        } => render::events(root, id, interval, *stats)?,
        Command::Update(a) => {
            let r = render::update_resources(root, a)?;
            runtime::container::update(root, &a.id, &r)
                .with_context(|| format!("update container {}", a.id))?;
        }
        Command::Spec { bundle, rootless } => {
            let path = bundle.join("config.json");
            if path.exists() {
                anyhow::bail!("{} already exists; remove it first", path.display());
            }
            let spec = runtime::spec::default_spec(*rootless);
            std::fs::write(&path, serde_json::to_string_pretty(&spec)?)
                .with_context(|| format!("write {}", path.display()))?;
        }
        Command::Features => outln!(
            "{}",
            serde_json::to_string_pretty(&runtime::features::features())?
        ),
    }
    Ok(0)
}
