//! System-wide verbs: `events`, `system df|prune|check`, `info`, `version`.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Subcommand;
use engine::{Engine, Event, EventFilter, EventType, Timestamp, human_duration, human_size};
use serde_json::{Value, json};

use crate::render;

#[derive(Debug, Subcommand)]
pub(crate) enum SystemCommand {
    /// Get real time events (follows new ones until interrupted, or until --until).
    Events {
        /// Show events since this time (Unix seconds, RFC 3339, or a duration like 10m).
        #[arg(long)]
        since: Option<String>,
        /// Stop at this time.
        #[arg(long)]
        until: Option<String>,
        /// `type=`, `container=`, `image=`, `event=`, `label=`, `volume=`.
        #[arg(short, long = "filter")]
        filter: Vec<String>,
        /// `json` or a Go template (`{{json .}}`, `{{.Action}}`).
        #[arg(long)]
        format: Option<String>,
    },
    /// Manage berth.
    System {
        #[command(subcommand)]
        command: SystemSub,
    },
    /// Display system-wide information.
    Info {
        /// Go template over the info object (`{{.ServerVersion}}`), or `json`.
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Show the berth version information.
    Version {
        /// Go template (`{{.Server.Version}}`), or `json`.
        #[arg(short, long)]
        format: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SystemSub {
    /// Show disk usage.
    Df {
        /// Detailed information on space usage.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Remove stopped containers and, with --volumes, unused anonymous volumes.
    ///
    /// Images are not pruned yet.
    Prune {
        /// Remove every image no container uses, not only dangling ones.
        #[arg(short, long)]
        all: bool,
        /// Prune anonymous volumes no container uses.
        #[arg(long)]
        volumes: bool,
        /// Do not prompt for confirmation.
        #[arg(short, long)]
        force: bool,
        /// `until=TIME`, `label=K[=V]`, `label!=K[=V]`.
        #[arg(long = "filter")]
        filter: Vec<String>,
    },
    /// Find and repair what killed commands or monitors left.
    ///
    /// Compares the records with the filesystem, mounts, runtime state, cgroups and processes;
    /// waits for create, run and rm in progress. Exits 1 when a problem remains.
    Check {
        /// Only report.
        #[arg(long)]
        dry_run: bool,
    },
}

pub(crate) fn dispatch(engine: &Engine, command: &SystemCommand) -> Result<i32> {
    match command {
        SystemCommand::Events {
            since,
            until,
            filter,
            format,
        } => events(
            engine,
            since.as_deref(),
            until.as_deref(),
            filter,
            format.as_deref(),
        ),
        SystemCommand::Info { format } => info(engine, format.as_deref()),
        SystemCommand::Version { format } => version(format.as_deref()),
        SystemCommand::System { command } => match command {
            SystemSub::Df { verbose } => df(engine, *verbose),
            SystemSub::Prune {
                all,
                volumes,
                force,
                filter,
            } => prune(engine, *all, *volumes, *force, filter),
            SystemSub::Check { dry_run } => check(engine, *dry_run),
        },
    }
}

/// How often `events` looks for new ones.
const EVENT_POLL: Duration = Duration::from_millis(100);

fn events(
    engine: &Engine,
    since: Option<&str>,
    until: Option<&str>,
    filters: &[String],
    format: Option<&str>,
) -> Result<i32> {
    let now = Timestamp::now();
    let since = since.map(|s| engine::parse_time(s, now)).transpose()?;
    let until = until.map(|s| engine::parse_time(s, now)).transpose()?;
    let mut filter = EventFilter {
        // Without --since or --until Docker shows only what happens from now on; with only
        // --until, the log up to then.
        since: since.or(until.is_none().then_some(now)),
        until,
        ..EventFilter::default()
    }
    .parse(filters)?;
    let format = match format {
        Some("json") => Some("{{json .}}"),
        f => f,
    };
    let mut out = std::io::stdout().lock();
    loop {
        for e in engine.events(&filter)? {
            filter.after = Some(e.seq);
            match format {
                Some(f) => writeln!(out, "{}", render::template(f, &event_json(&e))?)?,
                None => writeln!(out, "{}", event_line(&e))?,
            }
        }
        out.flush()?;
        if until.is_some_and(|u| Timestamp::now() > u) {
            return Ok(0);
        }
        std::thread::sleep(EVENT_POLL);
    }
}

/// Docker's text line: `TIME TYPE ACTION ID (k=v, k=v)`, attributes sorted by key.
fn event_line(e: &Event) -> String {
    let attrs: Vec<String> = e
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut line = format!(
        "{} {} {} {}",
        e.time.to_rfc3339(),
        e.kind.as_str(),
        e.action,
        e.actor
    );
    if !attrs.is_empty() {
        line.push_str(&format!(" ({})", attrs.join(", ")));
    }
    line
}

/// Docker's event message object, as `{{json .}}` prints it.
fn event_json(e: &Event) -> Value {
    let mut v = json!({
        "Type": e.kind.as_str(),
        "Action": e.action,
        "Actor": {"ID": e.actor, "Attributes": e.attributes},
        "scope": "local",
        "time": e.time.secs(),
        "timeNano": e.time.nanos(),
    });
    if e.kind == EventType::Container {
        v["status"] = json!(e.action);
        v["id"] = json!(e.actor);
        v["from"] = json!(e.attributes.get("image").cloned().unwrap_or_default());
    }
    v
}

fn df(engine: &Engine, verbose: bool) -> Result<i32> {
    let u = engine.disk_usage()?;
    let mut out = std::io::stdout().lock();
    let reclaim = |r: i64, total: i64| {
        if total > 0 {
            format!("{} ({}%)", human_size(r), r * 100 / total)
        } else {
            human_size(r)
        }
    };
    let img_total: i64 = u.images.iter().map(|(i, _)| i.size).sum();
    let img_unused: i64 = u
        .images
        .iter()
        .filter(|(_, n)| *n == 0)
        .map(|(i, _)| i.size)
        .sum();
    let ctr_total: i64 = u.containers.iter().map(|(_, s)| s.rw).sum();
    let ctr_idle: i64 = u
        .containers
        .iter()
        .filter(|(c, _)| !c.state.status.is_active())
        .map(|(_, s)| s.rw)
        .sum();
    let vol_total: i64 = u.volumes.iter().map(|(_, s)| *s).sum();
    let vol_unused: i64 = u
        .volumes
        .iter()
        .filter(|(v, _)| v.ref_count == 0)
        .map(|(_, s)| *s)
        .sum();
    let count = |n: usize| n.to_string();
    let rows = vec![
        header("TYPE|TOTAL|ACTIVE|SIZE|RECLAIMABLE"),
        vec![
            "Images".to_owned(),
            count(u.images.len()),
            count(u.images.iter().filter(|(_, n)| *n > 0).count()),
            human_size(img_total),
            reclaim(img_unused, img_total),
        ],
        vec![
            "Containers".to_owned(),
            count(u.containers.len()),
            count(
                u.containers
                    .iter()
                    .filter(|(c, _)| c.state.status.is_active())
                    .count(),
            ),
            human_size(ctr_total),
            reclaim(ctr_idle, ctr_total),
        ],
        vec![
            "Local Volumes".to_owned(),
            count(u.volumes.len()),
            count(u.volumes.iter().filter(|(v, _)| v.ref_count > 0).count()),
            human_size(vol_total),
            reclaim(vol_unused, vol_total),
        ],
        vec![
            "Build Cache".to_owned(),
            "0".to_owned(),
            "0".to_owned(),
            "0B".to_owned(),
            "0B".to_owned(),
        ],
    ];
    if !verbose {
        render::tabwrite(&mut out, &rows)?;
        return Ok(0);
    }
    let now = Timestamp::now();
    let ago = |t: Timestamp| format!("{} ago", human_duration(now.secs() - t.secs()));
    writeln!(out, "Images space usage:\n")?;
    let mut rows = vec![header("REPOSITORY|TAG|IMAGE ID|CREATED|SIZE|CONTAINERS")];
    for (i, users) in &u.images {
        let id = i
            .config_digest
            .hex()
            .get(..12)
            .unwrap_or_default()
            .to_owned();
        let created = i.created.map_or_else(|| "N/A".to_owned(), ago);
        // Tags only: digest references are not rows (Docker shows RepoTags here).
        let mut names: Vec<String> = i
            .names
            .iter()
            .filter(|n| !n.contains('@'))
            .cloned()
            .collect();
        if names.is_empty() {
            names.push("<none>:<none>".to_owned());
        }
        for n in names {
            let (repo, tag) = n.rsplit_once(':').unwrap_or((&n, "<none>"));
            rows.push(vec![
                repo.to_owned(),
                tag.to_owned(),
                id.clone(),
                created.clone(),
                human_size(i.size),
                users.to_string(),
            ]);
        }
    }
    render::tabwrite(&mut out, &rows)?;
    writeln!(out, "\nContainers space usage:\n")?;
    let mut rows = vec![header(
        "CONTAINER ID|IMAGE|COMMAND|LOCAL VOLUMES|SIZE|CREATED|STATUS|NAMES",
    )];
    for (c, s) in &u.containers {
        let mut cmd = engine::bundle::args(&c.config).join(" ");
        if cmd.chars().count() > 20 {
            cmd = cmd.chars().take(19).collect::<String>() + "…";
        }
        let volumes = c
            .mounts
            .iter()
            .filter(|m| m.kind == engine::MountKind::Volume)
            .count();
        rows.push(vec![
            c.id.short().to_owned(),
            c.image.clone(),
            format!("\"{cmd}\""),
            volumes.to_string(),
            human_size(s.rw),
            ago(c.created),
            engine::status_text(c, now),
            c.name.clone(),
        ]);
    }
    render::tabwrite(&mut out, &rows)?;
    writeln!(out, "\nLocal Volumes space usage:\n")?;
    let mut rows = vec![header("VOLUME NAME|LINKS|SIZE")];
    for (v, size) in &u.volumes {
        rows.push(vec![
            v.name.clone(),
            v.ref_count.to_string(),
            human_size(*size),
        ]);
    }
    render::tabwrite(&mut out, &rows)?;
    writeln!(out, "\nBuild cache usage: 0B")?;
    Ok(0)
}

/// A table's title row from `A|B|C`.
fn header(titles: &str) -> Vec<String> {
    titles.split('|').map(str::to_owned).collect()
}

fn prune(
    engine: &Engine,
    all: bool,
    volumes: bool,
    force: bool,
    filters: &[String],
) -> Result<i32> {
    if !force {
        let mut warning = "WARNING! This will remove:\n  - all stopped containers\n".to_owned();
        if volumes {
            warning.push_str("  - all anonymous volumes not used by at least one container\n");
        }
        warning.push_str(if all {
            "  - all images without at least one container associated to them\n"
        } else {
            "  - all dangling images\n"
        });
        eprint!("{warning}\nAre you sure you want to continue? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let mut out = std::io::stdout().lock();
    let containers = engine.prune_containers(filters)?;
    let mut reclaimed = containers.reclaimed;
    if !containers.removed.is_empty() {
        writeln!(out, "Deleted Containers:")?;
        for id in &containers.removed {
            writeln!(out, "{id}")?;
        }
        writeln!(out)?;
    }
    if volumes {
        let v = engine.prune_volumes(filters, false)?;
        reclaimed += v.reclaimed;
        if !v.removed.is_empty() {
            writeln!(out, "Deleted Volumes:")?;
            for name in &v.removed {
                writeln!(out, "{name}")?;
            }
            writeln!(out)?;
        }
    }
    // Images last: the containers removed above may have been their only users.
    let (images, freed) = engine.prune_images_filtered(all, filters)?;
    super::image::write_deleted_images(&mut out, &images)?;
    reclaimed = reclaimed.saturating_add(i64::try_from(freed).unwrap_or(i64::MAX));
    writeln!(out, "Total reclaimed space: {}", human_size(reclaimed))?;
    Ok(0)
}

fn check(engine: &Engine, dry_run: bool) -> Result<i32> {
    let findings = engine.check(!dry_run)?;
    let mut out = std::io::stdout().lock();
    let mut unrepaired = 0;
    for f in &findings {
        let what = f.problem.describe();
        match &f.repair {
            Some(Ok(done)) => writeln!(out, "{what}: repaired: {done}")?,
            Some(Err(e)) => {
                unrepaired += 1;
                writeln!(out, "{what}: repair failed: {e}")?;
            }
            None => {
                if !matches!(f.problem, engine::Problem::ImageMissing { .. }) {
                    unrepaired += 1;
                }
                writeln!(out, "{what}")?;
            }
        }
    }
    if findings.is_empty() {
        writeln!(out, "no problems found")?;
    }
    Ok(i32::from(unrepaired > 0))
}

fn info(engine: &Engine, format: Option<&str>) -> Result<i32> {
    let i = engine.info()?;
    let mut out = std::io::stdout().lock();
    match format {
        Some("json") => writeln!(out, "{i}")?,
        Some(f) => writeln!(out, "{}", render::template(f, &i)?)?,
        None => {
            let s = |k: &str| match &i[k] {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            let runtimes: BTreeSet<&String> = i["Runtimes"]
                .as_object()
                .map(|m| m.keys().collect())
                .unwrap_or_default();
            let runtimes: Vec<&str> = runtimes.into_iter().map(String::as_str).collect();
            let mem = i["MemTotal"].as_i64().unwrap_or(0);
            write!(
                out,
                "Client:\n Version:    {v}\n Context:    default\n Debug Mode: false\n\n\
                 Server:\n Containers: {}\n  Running: {}\n  Paused: {}\n  Stopped: {}\n \
                 Images: {}\n Server Version: {v}\n Storage Driver: {}\n Logging Driver: {}\n \
                 Cgroup Driver: {}\n Cgroup Version: {}\n Runtimes: {}\n Default Runtime: {}\n \
                 Security Options:\n  seccomp\n   Profile: builtin\n Kernel Version: {}\n \
                 Operating System: {}\n OSType: {}\n Architecture: {}\n CPUs: {}\n \
                 Total Memory: {}\n Name: {}\n Docker Root Dir: {}\n",
                s("Containers"),
                s("ContainersRunning"),
                s("ContainersPaused"),
                s("ContainersStopped"),
                s("Images"),
                s("Driver"),
                s("LoggingDriver"),
                s("CgroupDriver"),
                s("CgroupVersion"),
                runtimes.join(" "),
                s("DefaultRuntime"),
                s("KernelVersion"),
                s("OperatingSystem"),
                s("OSType"),
                s("Architecture"),
                s("NCPU"),
                engine::bytes_size(mem),
                s("Name"),
                s("DockerRootDir"),
                v = s("ServerVersion"),
            )?;
        }
    }
    Ok(0)
}

fn version(format: Option<&str>) -> Result<i32> {
    let server = engine::version();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let v = json!({
        "Client": {"Version": env!("CARGO_PKG_VERSION"), "Os": "linux", "Arch": arch},
        "Server": server,
    });
    let mut out = std::io::stdout().lock();
    match format {
        Some("json") => writeln!(out, "{v}")?,
        Some(f) => writeln!(out, "{}", render::template(f, &v)?)?,
        None => {
            let version = env!("CARGO_PKG_VERSION");
            let Some(kernel) = v["Server"]["KernelVersion"].as_str() else {
                bail!("read kernel version");
            };
            write!(
                out,
                "Client:\n Version:           {version}\n OS/Arch:           linux/{arch}\n\n\
                 Server:\n Engine:\n  Version:          {version}\n  OS/Arch:          linux/{arch}\n  \
                 Kernel Version:   {kernel}\n  Daemon:           none (a monitor per container)\n \
                 berth-runtime:\n  Version:          {version}\n"
            )?;
        }
    }
    Ok(0)
}
