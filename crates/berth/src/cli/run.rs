//! `berth run` (and later `create`): Docker's flags become a [`CreateRequest`] — Docker's
//! `Config` and `HostConfig`, exactly what the Engine API's `POST /containers/create` carries —
//! so the CLI and `berth serve` share one engine call.

use anyhow::{Context, Result};
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
    #[command(flatten)]
    storage: Box<StorageFlags>,
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
        let mut host_config = HostConfig {
            auto_remove: self.rm,
            network_mode: self.network.clone().unwrap_or_default(),
            runtime: self.runtime.clone().unwrap_or_default(),
            ..HostConfig::default()
        };
        let mut config = config;
        self.storage.apply(&mut config, &mut host_config)?;
        Ok(CreateRequest {
            name: self.name.clone(),
            config,
            host_config,
        })
    }
}

/// Mounts and the root file system: `-v`, `--mount`, `--tmpfs`, `--read-only`,
/// `--volumes-from`.
#[derive(Debug, clap::Args)]
struct StorageFlags {
    /// Bind mount or volume: `/host:/ctr[:opts]`, `name:/ctr[:opts]`, or `/ctr` (anonymous).
    #[arg(short = 'v', long = "volume")]
    volumes: Vec<String>,
    /// `type=bind|volume|tmpfs,source=,target=,readonly,...`.
    #[arg(long = "mount")]
    mounts: Vec<String>,
    /// A tmpfs: `/path[:options]`.
    #[arg(long = "tmpfs")]
    tmpfs: Vec<String>,
    /// Mount the container's root file system read-only.
    #[arg(long)]
    read_only: bool,
    /// The volumes and bind mounts of another container: `CONTAINER[:ro|rw]`.
    #[arg(long = "volumes-from")]
    volumes_from: Vec<String>,
}

impl StorageFlags {
    /// As the docker CLI does: `-v /path` is an anonymous volume (`Config.Volumes`), other
    /// `-v` values are `Binds`; `--mount` values are parsed into `Mounts`.
    fn apply(&self, config: &mut Config, host: &mut HostConfig) -> Result<()> {
        for v in &self.volumes {
            if v.contains(':') {
                host.binds.push(v.clone());
            } else {
                config.volumes.insert(v.clone(), engine::config::Empty {});
            }
        }
        for m in &self.mounts {
            let parsed = engine::parse_mount_flag(m)
                .with_context(|| format!("invalid argument \"{m}\" for \"--mount\" flag"))?;
            host.mounts.push(parsed);
        }
        for t in &self.tmpfs {
            let (path, opts) = t.split_once(':').unwrap_or((t, ""));
            host.tmpfs.insert(path.to_owned(), opts.to_owned());
        }
        host.readonly_rootfs = self.read_only;
        host.volumes_from.clone_from(&self.volumes_from);
        Ok(())
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
