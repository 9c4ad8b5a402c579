//! Storage verbs: `volume create|ls|inspect|rm|prune`, `cp`, `diff`, `export`.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use engine::{CopyOptions, CopyPath, Engine, NewVolume, Volume, VolumeFilter};
use serde_json::{Value, json};

use crate::render;

#[derive(Debug, Subcommand)]
pub(crate) enum StorageCommand {
    /// Manage volumes.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Copy files between a container and the host (`CONTAINER:PATH`, a host path, or `-` for
    /// a tar stream on stdin/stdout).
    Cp {
        /// Archive mode: keep uid/gid of files copied into the container.
        #[arg(short, long)]
        archive: bool,
        /// Follow a symlink that is the source.
        #[arg(short = 'L', long)]
        follow_link: bool,
        /// No "Successfully copied" line (there is none unless stderr is a terminal).
        #[arg(short, long)]
        quiet: bool,
        /// Source.
        src: String,
        /// Destination.
        dest: String,
    },
    /// List the files a container added (A), changed (C) or deleted (D).
    Diff {
        /// Container name or id.
        container: String,
    },
    /// Write a container's file system as a tar archive (to stdout unless -o).
    Export {
        /// Write to this file instead of stdout.
        #[arg(short, long)]
        output: Option<String>,
        /// Container name or id.
        container: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum VolumeCommand {
    /// Create a volume.
    Create {
        /// Driver (only `local`).
        #[arg(short, long, default_value = "local")]
        driver: String,
        /// Labels (`KEY=VALUE`).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Driver options: `type=`, `device=`, `o=` (what the volume mounts).
        #[arg(short, long = "opt")]
        opt: Vec<String>,
        /// Name (random when omitted).
        name: Option<String>,
    },
    /// List volumes.
    #[command(alias = "list")]
    Ls {
        /// Only names.
        #[arg(short, long)]
        quiet: bool,
        /// `dangling=true|false`, `name=`, `label=KEY[=VALUE]`, `driver=`.
        #[arg(short, long = "filter")]
        filters: Vec<String>,
        /// Go template, or `json`.
        #[arg(long)]
        format: Option<String>,
    },
    /// Show volumes as JSON.
    Inspect {
        /// Go template.
        #[arg(short, long)]
        format: Option<String>,
        /// Volumes.
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove volumes.
    #[command(alias = "remove")]
    Rm {
        /// No error for volumes that do not exist.
        #[arg(short, long)]
        force: bool,
        /// Volumes.
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove unused volumes (anonymous ones unless -a).
    Prune {
        /// Named volumes too.
        #[arg(short, long)]
        all: bool,
        /// Do not ask.
        #[arg(short, long)]
        force: bool,
        /// `label=KEY[=VALUE]`, `label!=KEY[=VALUE]`.
        #[arg(long = "filter")]
        filters: Vec<String>,
    },
}

pub(crate) fn dispatch(engine: &Engine, command: &StorageCommand) -> Result<i32> {
    let mut stdout = std::io::stdout().lock();
    match command {
        StorageCommand::Volume(v) => return volume(engine, v, &mut stdout),
        StorageCommand::Cp {
            archive,
            follow_link,
            quiet,
            src,
            dest,
        } => {
            let opts = CopyOptions {
                archive: *archive,
                follow_link: *follow_link,
            };
            let (from, to) = (CopyPath::parse(src), CopyPath::parse(dest));
            if from == CopyPath::Stdio && to == CopyPath::Stdio {
                bail!("cp: \"-\" cannot be both source and destination");
            }
            let mut stdin = std::io::stdin().lock();
            let bytes = engine
                .copy(&from, &to, opts, &mut stdin, &mut stdout)
                .with_context(|| format!("cp {src} {dest}"))?;
            if !*quiet && to != CopyPath::Stdio && std::io::stderr().is_terminal() {
                let size = engine::human_size(i64::try_from(bytes).unwrap_or(i64::MAX));
                eprintln!("Successfully copied {size} to {dest}");
            }
        }
        StorageCommand::Diff { container } => {
            for c in engine.diff(container)? {
                writeln!(stdout, "{} {}", c.kind, c.path)?;
            }
        }
        StorageCommand::Export { output, container } => match output {
            Some(path) => {
                let tmp = format!("{path}.berth-tmp-{}", std::process::id());
                let result = std::fs::File::create(&tmp)
                    .with_context(|| format!("create {tmp}"))
                    .and_then(|mut f| {
                        engine.export(container, &mut f)?;
                        f.sync_all().with_context(|| format!("write {tmp}"))
                    })
                    .and_then(|()| {
                        std::fs::rename(&tmp, path).with_context(|| format!("rename to {path}"))
                    });
                if result.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
                result?;
            }
            None => {
                if atty_stdout() {
                    bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
                }
                engine.export(container, &mut stdout)?;
            }
        },
    }
    Ok(0)
}

fn atty_stdout() -> bool {
    std::io::stdout().is_terminal()
}

fn labels(list: &[String]) -> BTreeMap<String, String> {
    list.iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// Docker's volume object (`volume inspect`, the Engine API).
fn volume_json(v: &Volume) -> Value {
    let or_null = |m: &BTreeMap<String, String>| {
        if m.is_empty() { Value::Null } else { json!(m) }
    };
    json!({
        "CreatedAt": v.created.to_rfc3339(),
        "Driver": v.driver,
        "Labels": or_null(&v.labels),
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Options": or_null(&v.options),
        "Scope": "local",
    })
}

/// `volume ls --format` fields: Labels joined as `k=v,...` like Docker's formatter.
fn volume_row(v: &Volume) -> Value {
    let labels: Vec<String> = v.labels.iter().map(|(k, l)| format!("{k}={l}")).collect();
    json!({
        "Name": v.name, "Driver": v.driver, "Mountpoint": v.mountpoint, "Scope": "local",
        "Labels": labels.join(","), "CreatedAt": v.created.to_rfc3339(),
    })
}

/// `--filter driver=` is the engine's to know only when it has drivers; here it names `local`.
fn split_driver(filters: &[String]) -> (Vec<String>, Vec<String>) {
    let mut drivers = Vec::new();
    let mut rest = Vec::new();
    for f in filters {
        match f.strip_prefix("driver=") {
            Some(d) => drivers.push(d.to_owned()),
            None => rest.push(f.clone()),
        }
    }
    (drivers, rest)
}

fn volume(engine: &Engine, command: &VolumeCommand, out: &mut dyn Write) -> Result<i32> {
    match command {
        VolumeCommand::Create {
            driver,
            labels: l,
            opt,
            name,
        } => {
            let v = engine.volume_create(&NewVolume {
                name: name.clone(),
                driver: Some(driver.clone()),
                labels: labels(l),
                options: labels(opt),
            })?;
            writeln!(out, "{}", v.name)?;
        }
        VolumeCommand::Ls {
            quiet,
            filters,
            format,
        } => {
            let (drivers, rest) = split_driver(filters);
            let filter = VolumeFilter::parse(&rest)?;
            let mut list = engine.volumes(&filter)?;
            list.retain(|v| drivers.is_empty() || drivers.contains(&v.driver));
            if *quiet {
                for v in &list {
                    writeln!(out, "{}", v.name)?;
                }
            } else if let Some(f) = format {
                for v in &list {
                    let row = volume_row(v);
                    if f == "json" {
                        writeln!(out, "{row}")?;
                    } else {
                        writeln!(out, "{}", render::template(f, &row)?)?;
                    }
                }
            } else {
                // Docker's tabwriter: cells padded by 3, at least 10 wide.
                let width = list
                    .iter()
                    .map(|v| v.driver.len())
                    .chain(["DRIVER".len()])
                    .max()
                    .map_or(10, |w| (w + 3).max(10));
                writeln!(out, "{:<width$}VOLUME NAME", "DRIVER")?;
                for v in &list {
                    writeln!(out, "{:<width$}{}", v.driver, v.name)?;
                }
            }
        }
        VolumeCommand::Inspect { format, volumes } => {
            return super::inspect_each(volumes, format.as_deref(), out, |name| {
                engine.volume(name).map(|v| volume_json(&v))
            });
        }
        VolumeCommand::Rm { force, volumes } => {
            for name in volumes {
                engine.volume_remove(name, *force)?;
                writeln!(out, "{name}")?;
            }
        }
        VolumeCommand::Prune {
            all,
            force,
            filters,
        } => {
            if !*force && !confirm(*all)? {
                return Ok(0);
            }
            let pruned = engine.prune_volumes(filters, *all)?;
            if !pruned.removed.is_empty() {
                writeln!(out, "Deleted Volumes:")?;
                for name in &pruned.removed {
                    writeln!(out, "{name}")?;
                }
                writeln!(out)?;
            }
            writeln!(
                out,
                "Total reclaimed space: {}",
                engine::human_size(pruned.reclaimed)
            )?;
        }
    }
    Ok(0)
}

/// Docker's prune prompt on stderr; true on `y`.
fn confirm(all: bool) -> Result<bool> {
    let what = if all {
        "all local volumes"
    } else {
        "anonymous local volumes"
    };
    eprint!(
        "WARNING! This will remove {what} not used by at least one container.\nAre you sure you want to continue? [y/N] "
    );
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "Yes"))
}
