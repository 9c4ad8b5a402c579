//! `ps` with Docker's flags: `-a`, `-q`, `-s`, `-n`, `-l`, `--no-trunc`, `--filter`, `--format`.

use std::io::Write;

use anyhow::Result;
use clap::Subcommand;
use engine::{Container, Engine, PsOptions, Timestamp, human_duration, human_size, status_text};
use serde_json::{Value, json};

use crate::render;

#[derive(Debug, Subcommand)]
pub(crate) enum PsCommand {
    /// List containers.
    Ps(PsArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct PsArgs {
    /// All containers (default: running only).
    #[arg(short, long)]
    all: bool,
    /// Only ids.
    #[arg(short, long)]
    quiet: bool,
    /// Total file sizes.
    #[arg(short, long)]
    size: bool,
    /// The N most recently created containers (all states).
    #[arg(short = 'n', long = "last")]
    last: Option<usize>,
    /// The most recently created container (all states).
    #[arg(short, long)]
    latest: bool,
    /// Do not truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// `key=value`: id, name, label, status, exited, ancestor, before, since, volume, health,
    /// network, expose, publish.
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// `table`, `json`, or a Go template (`table {{.ID}}\t{{.Names}}`).
    #[arg(long)]
    format: Option<String>,
}

/// Docker's default `ps` table.
const DEFAULT_FORMAT: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

pub(crate) fn dispatch(engine: &Engine, command: &PsCommand) -> Result<i32> {
    let PsCommand::Ps(args) = command;
    let opts = PsOptions {
        all: args.all,
        last: if args.latest { Some(1) } else { args.last },
        filters: args.filter.clone(),
    };
    let list = engine.ps_with(&opts)?;
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for c in &list {
            writeln!(out, "{}", id(c, args.no_trunc))?;
        }
        return Ok(0);
    }
    let format = match args.format.as_deref() {
        Some("table") | None => {
            let mut f = DEFAULT_FORMAT.to_owned();
            if args.size {
                f.push_str("\t{{.Size}}");
            }
            f
        }
        Some(f) => f.to_owned(),
    };
    let size = args.size || format.contains(".Size");
    let now = Timestamp::now();
    let rows: Vec<Value> = list
        .iter()
        .map(|c| row(engine, c, now, args.no_trunc, size))
        .collect();
    render::formatted(&mut out, &format, &headers(), &rows)?;
    Ok(0)
}

fn id(c: &Container, no_trunc: bool) -> String {
    if no_trunc {
        c.id.to_string()
    } else {
        c.id.short().to_owned()
    }
}

/// Column titles for each placeholder, as Docker prints them.
fn headers() -> Value {
    json!({
        "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS",
        "Size": "SIZE", "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS",
        "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES",
    })
}

/// One container as Docker's ps formatter sees it.
fn row(engine: &Engine, c: &Container, now: Timestamp, no_trunc: bool, size: bool) -> Value {
    let mut cmd = engine::bundle::args(&c.config).join(" ");
    if !no_trunc && cmd.chars().count() > 20 {
        cmd = cmd.chars().take(19).collect::<String>() + "…";
    }
    let labels: Vec<String> = c
        .config
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mounts: Vec<String> = c
        .mounts
        .iter()
        .map(|m| {
            if m.source.is_empty() {
                m.destination.clone()
            } else {
                m.source.clone()
            }
        })
        .collect();
    let volumes = c
        .mounts
        .iter()
        .filter(|m| m.kind == engine::MountKind::Volume)
        .count();
    let size = if size {
        let s = engine.container_size(c);
        format!(
            "{} (virtual {})",
            human_size(s.rw),
            human_size(s.virtual_size)
        )
    } else {
        String::new()
    };
    json!({
        "Command": format!("\"{cmd}\""),
        "CreatedAt": created_at(c.created),
        "ID": id(c, no_trunc),
        "Image": c.image,
        "Labels": labels.join(","),
        "LocalVolumes": volumes.to_string(),
        "Mounts": mounts.join(","),
        "Names": c.name,
        "Networks": c.host_config.network_mode,
        "Ports": ports(engine, c),
        "RunningFor": format!("{} ago", human_duration(now.secs() - c.created.secs())),
        "Size": size,
        "State": c.state.status.as_str(),
        "Status": status_text(c, now),
    })
}

/// Docker's PORTS cell: `0.0.0.0:8080->80/tcp, ...` for a running container's published ports.
fn ports(engine: &Engine, c: &engine::Container) -> String {
    if matches!(c.host_config.network_mode.as_str(), "" | "none" | "host")
        || !c.state.status.is_active()
    {
        return String::new();
    }
    let Ok(ports) = engine.ports(c.id.as_str()) else {
        return String::new();
    };
    ports
        .iter()
        .flat_map(|(private, hosts)| hosts.iter().map(move |h| format!("{h}->{private}")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Go's `time.Time.String()` in UTC, as Docker's `CreatedAt` shows it:
/// `2024-05-01 10:00:00 +0000 UTC`.
fn created_at(t: Timestamp) -> String {
    let rfc = t.to_rfc3339();
    let (date, time) = rfc.split_once('T').unwrap_or((&rfc, ""));
    let time = time.trim_end_matches('Z');
    let time = time.split('.').next().unwrap_or(time);
    format!("{date} {time} +0000 UTC")
}
