//! `berth run` (and later `create`): Docker's flags become a [`CreateRequest`] — Docker's
//! `Config` and `HostConfig`, exactly what the Engine API's `POST /containers/create` carries —
//! so the CLI and `berth serve` share one engine call.

use anyhow::Result;
use engine::{Config, CreateRequest, Engine, HostConfig};

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
    /// OCI runtime binary (path or name in PATH: runc, crun, berth-runtime) instead of the
    /// in-process runtime.
    #[arg(long)]
    runtime: Option<String>,
    /// Image.
    image: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    cmd: Vec<String>,
}

impl CreateArgs {
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
            ..Config::default()
        };
        let host_config = HostConfig {
            auto_remove: self.rm,
            network_mode: self.network.clone().unwrap_or_default(),
            runtime: self.runtime.clone().unwrap_or_default(),
            ..HostConfig::default()
        };
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
    #[command(flatten)]
    create: CreateArgs,
}

pub(crate) fn run(engine: &Engine, args: &RunArgs) -> Result<i32> {
    let mut started = engine.run(&args.create.request()?)?;
    if args.detach {
        println!("{}", started.container.id);
        return Ok(0);
    }
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    Ok(engine.attach(&mut started, &mut out, &mut err)?)
}
