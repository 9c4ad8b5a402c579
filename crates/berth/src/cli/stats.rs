//! `stats`: a live table of containers' usage like `docker stats` (CPU from two readings a
//! second apart), or one table with `--no-stream`.

use std::time::Duration;

use anyhow::Result;
use engine::{Container, Engine, PsOptions, StatsSample, human_size};
use serde_json::{Value, json};

use crate::render;

/// `docker stats`'s flags.
#[derive(Debug, clap::Args)]
pub(crate) struct StatsArgs {
    /// All containers (default: running only).
    #[arg(short, long)]
    all: bool,
    /// Print one table and exit.
    #[arg(long)]
    no_stream: bool,
    /// Do not truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// `table`, `json`, or a Go template (`table {{.Name}}\t{{.CPUPerc}}`).
    #[arg(long)]
    format: Option<String>,
    /// Containers (default: every running one).
    containers: Vec<String>,
}

const DEFAULT_FORMAT: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// Between two readings (Docker's daemon samples once a second).
const INTERVAL: Duration = Duration::from_secs(1);

pub(crate) fn stats(engine: &Engine, args: &StatsArgs) -> Result<i32> {
    let format = match args.format.as_deref() {
        None | Some("table") => DEFAULT_FORMAT,
        Some(f) => f,
    };
    let mut previous: Vec<(String, Option<StatsSample>)> = Vec::new();
    loop {
        let list = containers(engine, args)?;
        let samples: Vec<Option<StatsSample>> =
            list.iter().map(|c| engine.stats_sample(c).ok()).collect();
        let first = previous.is_empty() && !list.is_empty();
        if first {
            previous = list
                .iter()
                .zip(&samples)
                .map(|(c, s)| (c.id.to_string(), s.clone()))
                .collect();
            std::thread::sleep(INTERVAL);
            continue;
        }
        let rows: Vec<Value> = list
            .iter()
            .zip(&samples)
            .map(|(c, now)| {
                let before = previous
                    .iter()
                    .find(|(id, _)| *id == c.id.as_str())
                    .and_then(|(_, s)| s.as_ref());
                // Docker's `.Container` is the name or id as the user gave it.
                let given = args
                    .containers
                    .iter()
                    .find(|g| engine.container(g).is_ok_and(|x| x.id == c.id));
                let mut r = row(c, before, now.as_ref(), args.no_trunc);
                if let Some(g) = given {
                    r["Container"] = json!(g);
                }
                r
            })
            .collect();
        let mut buf = Vec::new();
        if !args.no_stream {
            // Clear the screen and home the cursor, as docker stats does each refresh.
            buf.extend_from_slice(b"\x1b[2J\x1b[H");
        }
        render::formatted(&mut buf, format, &headers(), &rows)?;
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(&buf)?;
            out.flush()?;
        }
        if args.no_stream {
            return Ok(0);
        }
        previous = list
            .iter()
            .zip(samples)
            .map(|(c, s)| (c.id.to_string(), s))
            .collect();
        std::thread::sleep(INTERVAL);
    }
}

fn containers(engine: &Engine, args: &StatsArgs) -> Result<Vec<Container>> {
    if args.containers.is_empty() {
        return Ok(engine.ps_with(&PsOptions {
            all: args.all,
            ..PsOptions::default()
        })?);
    }
    let mut out = Vec::new();
    for c in &args.containers {
        out.push(engine.container(c)?);
    }
    Ok(out)
}

fn headers() -> Value {
    json!({
        "Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
        "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
        "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
    })
}

fn row(
    c: &Container,
    before: Option<&StatsSample>,
    now: Option<&StatsSample>,
    no_trunc: bool,
) -> Value {
    let id = if no_trunc {
        c.id.to_string()
    } else {
        c.id.short().to_owned()
    };
    let zero = StatsSample::default();
    let s = now.unwrap_or(&zero);
    let cpu = match before {
        Some(b) => cpu_percent(b, s),
        None => 0.0,
    };
    #[allow(clippy::cast_precision_loss)]
    let mem_pct = if s.mem_limit == 0 {
        0.0
    } else {
        s.mem_usage as f64 / s.mem_limit as f64 * 100.0
    };
    let dec = |v: u64| human_size(i64::try_from(v).unwrap_or(i64::MAX));
    json!({
        "BlockIO": format!("{} / {}", dec(s.blk_read), dec(s.blk_write)),
        "CPUPerc": format!("{cpu:.2}%"),
        "Container": id,
        "ID": id,
        "MemPerc": format!("{mem_pct:.2}%"),
        "MemUsage": format!("{} / {}", bytes_size(s.mem_usage), bytes_size(s.mem_limit)),
        "Name": c.name,
        "NetIO": format!("{} / {}", dec(s.net_rx), dec(s.net_tx)),
        "PIDs": s.pids.to_string(),
    })
}

/// Docker's binary memory sizes (`1.465MiB`).
fn bytes_size(v: u64) -> String {
    engine::bytes_size(i64::try_from(v).unwrap_or(i64::MAX))
}

/// Docker's CPU %: the container's share of the host's CPU time between two readings, times
/// the number of CPUs (100% is one CPU busy).
fn cpu_percent(before: &StatsSample, now: &StatsSample) -> f64 {
    let cpu = now.cpu_ns.saturating_sub(before.cpu_ns);
    let system = now.system_ns.saturating_sub(before.system_ns);
    if system == 0 {
        return 0.0;
    }
    #[allow(clippy::cast_precision_loss)]
    let pct = cpu as f64 / system as f64 * f64::from(now.online_cpus) * 100.0;
    pct
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_share_scales_by_cpus() {
        let a = StatsSample {
            cpu_ns: 0,
            system_ns: 0,
            online_cpus: 2,
            ..StatsSample::default()
        };
        let b = StatsSample {
            cpu_ns: 500,
            system_ns: 2000,
            online_cpus: 2,
            ..StatsSample::default()
        };
        assert!((cpu_percent(&a, &b) - 50.0).abs() < 1e-9);
    }
}
