//! runc's command line, as clap types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "berth-runtime",
    about = "berth's OCI runtime: runc's command line, namespaces and cgroups v1/v2",
    disable_version_flag = true
)]
pub(crate) struct Cli {
    /// Root directory for container state (tmpfs recommended).
    #[arg(long, global = true, default_value = "/run/berth-runtime")]
    pub(crate) root: PathBuf,
    /// Log file (default stderr).
    #[arg(long, global = true)]
    pub(crate) log: Option<PathBuf>,
    /// Log format.
    #[arg(long = "log-format", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    /// Debug logging.
    #[arg(long, global = true)]
    pub(crate) debug: bool,
    /// Manage cgroups through systemd (not supported: fails when a container would use it).
    #[arg(long = "systemd-cgroup", global = true)]
    pub(crate) systemd_cgroup: bool,
    /// Accepted for runc compatibility; checkpointing is not supported.
    #[arg(long, global = true, hide = true)]
    pub(crate) criu: Option<String>,
    /// Accepted for runc compatibility (auto-detected).
    #[arg(long, hide = true)]
    pub(crate) rootless: Option<String>,
    /// Print the version.
    #[arg(short = 'v', long = "version")]
    pub(crate) version: bool,
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub(crate) struct CreateArgs {
    /// Path to the bundle directory.
    #[arg(short = 'b', long, default_value = ".")]
    pub(crate) bundle: PathBuf,
    /// Unix socket that receives the pty master.
    #[arg(long = "console-socket")]
    pub(crate) console_socket: Option<PathBuf>,
    /// File to write the container's init pid to.
    #[arg(long = "pid-file")]
    pub(crate) pid_file: Option<PathBuf>,
    /// Do not use pivot_root (for ramfs roots).
    #[arg(long = "no-pivot")]
    pub(crate) no_pivot: bool,
    /// Do not create a new session keyring.
    #[arg(long = "no-new-keyring")]
    pub(crate) no_new_keyring: bool,
    /// Pass N descriptors after stdio to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub(crate) preserve_fds: u32,
    /// Container id.
    pub(crate) id: String,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Create a container (init waits for `start`).
    Create(CreateArgs),
    /// Run the user-defined process of a created container.
    Start { id: String },
    /// Create and start a container.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Detach from the container's process.
        #[arg(short = 'd', long)]
        detach: bool,
        /// Keep the container's state after it exits.
        #[arg(long)]
        keep: bool,
    },
    /// Print a container's state as JSON.
    State { id: String },
    /// Send a signal to a container's init (default SIGTERM).
    Kill {
        /// Signal every process in the container.
        #[arg(short = 'a', long)]
        all: bool,
        id: String,
        signal: Option<String>,
    },
    /// Delete a container and everything it holds.
    Delete {
        /// Kill a running container first.
        #[arg(short = 'f', long)]
        force: bool,
        id: String,
    },
    /// Run a process in a running container.
    Exec(Box<ExecArgs>),
    /// List the processes of a container.
    Ps {
        #[arg(short = 'f', long, value_enum, default_value_t = Format::Table)]
        format: Format,
        id: String,
        /// Options passed to ps(1).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// List containers.
    #[command(alias = "ls")]
    List {
        #[arg(short = 'f', long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Print ids only.
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Print container events (OOM, stats) as JSON lines.
    Events {
        /// Stats interval.
        #[arg(long, default_value = "5s")]
        interval: String,
        /// Print stats once and exit.
        #[arg(long)]
        stats: bool,
        id: String,
    },
    /// Update a container's resource limits.
    Update(Box<UpdateArgs>),
    /// Write a default config.json.
    Spec {
        /// Bundle directory.
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
        /// A spec for a rootless container.
        #[arg(long = "rootless", id = "spec_rootless")]
        rootless: bool,
    },
    /// Print the OCI features document.
    Features,
}

#[derive(Args, Debug)]
pub(crate) struct ExecArgs {
    #[arg(long = "console-socket")]
    pub(crate) console_socket: Option<PathBuf>,
    /// Working directory.
    #[arg(long)]
    pub(crate) cwd: Option<PathBuf>,
    /// Extra environment (KEY=VALUE).
    #[arg(short = 'e', long = "env")]
    pub(crate) env: Vec<String>,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub(crate) tty: bool,
    /// `UID[:GID]`.
    #[arg(short = 'u', long)]
    pub(crate) user: Option<String>,
    /// Additional group ids.
    #[arg(short = 'g', long = "additional-gids")]
    pub(crate) additional_gids: Vec<u32>,
    /// process.json to run instead of the arguments.
    #[arg(short = 'p', long)]
    pub(crate) process: Option<PathBuf>,
    /// Detach.
    #[arg(short = 'd', long)]
    pub(crate) detach: bool,
    #[arg(long = "pid-file")]
    pub(crate) pid_file: Option<PathBuf>,
    /// SELinux label.
    #[arg(long = "process-label")]
    pub(crate) process_label: Option<String>,
    /// AppArmor profile.
    #[arg(long)]
    pub(crate) apparmor: Option<String>,
    /// Set no_new_privs.
    #[arg(long = "no-new-privs")]
    pub(crate) no_new_privs: bool,
    /// Add a capability.
    #[arg(short = 'c', long = "cap")]
    pub(crate) cap: Vec<String>,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub(crate) preserve_fds: u32,
    /// Ignored (runc compatibility: the container's cgroup is always used).
    #[arg(long, hide = true)]
    pub(crate) cgroup: Vec<String>,
    pub(crate) id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub(crate) command: Vec<String>,
}

#[derive(Args, Debug)]
pub(crate) struct UpdateArgs {
    /// JSON file with LinuxResources ("-" for stdin).
    #[arg(short = 'r', long)]
    pub(crate) resources: Option<PathBuf>,
    #[arg(long = "blkio-weight")]
    pub(crate) blkio_weight: Option<u16>,
    #[arg(long = "cpu-period")]
    pub(crate) cpu_period: Option<u64>,
    #[arg(long = "cpu-quota")]
    pub(crate) cpu_quota: Option<i64>,
    #[arg(long = "cpu-share")]
    pub(crate) cpu_share: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    pub(crate) cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime")]
    pub(crate) cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    pub(crate) cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub(crate) cpuset_mems: Option<String>,
    /// Memory limit in bytes (suffixes k, m, g allowed).
    #[arg(short = 'm', long)]
    pub(crate) memory: Option<String>,
    #[arg(long = "memory-reservation")]
    pub(crate) memory_reservation: Option<String>,
    #[arg(long = "memory-swap")]
    pub(crate) memory_swap: Option<String>,
    #[arg(long = "pids-limit")]
    pub(crate) pids_limit: Option<i64>,
    pub(crate) id: String,
}
