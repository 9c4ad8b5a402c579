//! Image verbs: `images`, `history`, `tag`, `rmi`, `import`, `save`, `load`, `commit`, and the
//! `image` group (`ls`, `inspect`, `rm`, `prune`, ...).

use std::io::{IsTerminal, Read, Write};

use anyhow::{Context, Result, bail};
use clap::{ArgAction, Args, Subcommand};
use engine::{
    CommitRequest, Engine, HistoryEntry, Image, ImageFilter, ImportRequest, Timestamp,
    human_duration, human_size,
};
use serde_json::{Value, json};

use super::format::print_rows;
use crate::render;

#[derive(Debug, Subcommand)]
pub(crate) enum ImageCommand {
    /// Import a rootfs tarball (a file, or - for stdin) as an image.
    Import(ImportArgs),
    /// List images.
    Images(ListArgs),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(TagArgs),
    /// Remove one or more images.
    Rmi(RmiArgs),
    /// Save one or more images to a tar archive (docker-archive and OCI layout).
    Save(SaveArgs),
    /// Load images from a tar archive (docker-archive or OCI layout).
    Load(LoadArgs),
    /// Create a new image from a container's changes.
    Commit(CommitArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageGroup),
}

/// `berth image ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum ImageGroup {
    /// List images.
    #[command(visible_alias = "list")]
    Ls(ListArgs),
    /// Display detailed information on one or more images.
    Inspect {
        /// Go-template subset: text with `{{.Field.Sub}}` and `{{json .Field}}`.
        #[arg(short, long)]
        format: Option<String>,
        /// Images.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove one or more images.
    #[command(visible_alias = "remove")]
    Rm(RmiArgs),
    /// Download an image from a registry.
    Pull(super::registry::PullArgs),
    /// Upload an image to a registry.
    Push(super::registry::PushArgs),
    /// Remove unused images.
    Prune {
        /// Remove all images without a container, not just dangling ones.
        #[arg(short, long)]
        all: bool,
        /// Do not prompt for confirmation.
        #[arg(short, long)]
        force: bool,
        /// Filters (`until=`, `label=`).
        #[arg(long)]
        filter: Vec<String>,
    },
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(TagArgs),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Import a rootfs tarball as an image.
    Import(ImportArgs),
    /// Save images to a tar archive.
    Save(SaveArgs),
    /// Load images from a tar archive.
    Load(LoadArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// Tarball path or `-`.
    file: String,
    /// `REPOSITORY[:TAG]`.
    reference: Option<String>,
    /// Apply a Dockerfile instruction to the image config (CMD, ENTRYPOINT, ENV, EXPOSE,
    /// LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL).
    #[arg(short, long)]
    change: Vec<String>,
    /// Commit message.
    #[arg(short, long)]
    message: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// `REPOSITORY[:TAG]` to list.
    reference: Option<String>,
    /// Show all images (default hides intermediate images; berth has none).
    #[arg(short, long)]
    all: bool,
    /// Only image ids.
    #[arg(short, long)]
    quiet: bool,
    /// Show digests.
    #[arg(long)]
    digests: bool,
    /// Do not truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Filters: dangling=, label=, reference=, before=, since=.
    #[arg(short, long)]
    filter: Vec<String>,
    /// `table`, `table TEMPLATE`, `json` or `TEMPLATE`.
    #[arg(long)]
    format: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct HistoryArgs {
    /// Image.
    image: String,
    /// Sizes and dates in human-readable form.
    #[arg(short = 'H', long, action = ArgAction::Set, default_value_t = true, num_args = 0..=1, default_missing_value = "true")]
    human: bool,
    /// Do not truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Only image ids.
    #[arg(short, long)]
    quiet: bool,
    /// `table`, `table TEMPLATE`, `json` or `TEMPLATE`.
    #[arg(long)]
    format: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct TagArgs {
    /// Source image.
    source: String,
    /// New reference.
    target: String,
}

#[derive(Debug, Args)]
pub(crate) struct RmiArgs {
    /// Force removal.
    #[arg(short, long)]
    force: bool,
    /// Accepted for compatibility: berth has no untagged parents to keep.
    #[arg(long)]
    no_prune: bool,
    /// Images.
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct SaveArgs {
    /// Write to this file instead of stdout.
    #[arg(short, long)]
    output: Option<String>,
    /// Images.
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// Read from this file instead of stdin.
    #[arg(short, long)]
    input: Option<String>,
    /// Suppress the load output.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CommitArgs {
    /// Container.
    container: String,
    /// `REPOSITORY[:TAG]`.
    reference: Option<String>,
    /// Author.
    #[arg(short, long)]
    author: Option<String>,
    /// Apply a Dockerfile instruction to the image config.
    #[arg(short, long)]
    change: Vec<String>,
    /// Commit message.
    #[arg(short, long)]
    message: Option<String>,
    /// Pause the container while committing.
    #[arg(short, long, action = ArgAction::Set, default_value_t = true, num_args = 0..=1, default_missing_value = "true")]
    pause: bool,
}

pub(crate) fn dispatch(engine: &Engine, command: &ImageCommand) -> Result<i32> {
    let mut stdout = std::io::stdout().lock();
    let out = &mut stdout;
    match command {
        ImageCommand::Import(a) => import(engine, a, out),
        ImageCommand::Images(a) => list(engine, a, out),
        ImageCommand::History(a) => history(engine, a, out),
        ImageCommand::Tag(a) => tag(engine, a),
        ImageCommand::Rmi(a) => rmi(engine, a, out),
        ImageCommand::Save(a) => save(engine, a),
        ImageCommand::Load(a) => load(engine, a, out),
        ImageCommand::Commit(a) => commit(engine, a, out),
        ImageCommand::Image(g) => match g {
            ImageGroup::Ls(a) => list(engine, a, out),
            ImageGroup::Inspect { format, images } => {
                super::inspect_each(images, format.as_deref(), out, |i| engine.inspect_image(i))
            }
            ImageGroup::Rm(a) => rmi(engine, a, out),
            ImageGroup::Prune { all, force, filter } => prune(engine, *all, *force, filter, out),
            ImageGroup::Tag(a) => tag(engine, a),
            ImageGroup::History(a) => history(engine, a, out),
            ImageGroup::Import(a) => import(engine, a, out),
            ImageGroup::Save(a) => save(engine, a),
            ImageGroup::Load(a) => load(engine, a, out),
            ImageGroup::Pull(a) => super::registry::pull(engine, a),
            ImageGroup::Push(a) => super::registry::push(engine, a),
        },
    }
}

fn import(engine: &Engine, a: &ImportArgs, out: &mut dyn Write) -> Result<i32> {
    let input: Box<dyn Read> = if a.file == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(&a.file).with_context(|| format!("open {}", a.file))?)
    };
    let req = ImportRequest {
        reference: a.reference.clone(),
        changes: a.change.clone(),
        message: a.message.clone(),
    };
    let image = engine.import_image(std::io::BufReader::new(input), &req)?;
    writeln!(out, "{}", image.config_digest)?;
    Ok(0)
}

fn short_id(img: &Image, no_trunc: bool) -> String {
    if no_trunc {
        img.config_digest.to_string()
    } else {
        img.config_digest
            .hex()
            .get(..12)
            .unwrap_or_default()
            .to_owned()
    }
}

/// Docker's `CreatedAt`: `2024-05-01 12:00:00 +0000 UTC`.
pub(crate) fn created_at(t: Timestamp) -> String {
    let s = t.to_rfc3339();
    let date = s.get(..10).unwrap_or_default();
    let time = s.get(11..19).unwrap_or_default();
    format!("{date} {time} +0000 UTC")
}

fn since(t: Option<Timestamp>) -> String {
    t.map_or_else(
        || "N/A".to_owned(),
        |t| format!("{} ago", human_duration(Timestamp::now().secs() - t.secs())),
    )
}

const IMAGE_COLUMNS: [(&str, &str); 7] = [
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("ID", "IMAGE ID"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
];

fn list(engine: &Engine, a: &ListArgs, out: &mut dyn Write) -> Result<i32> {
    let mut filter = ImageFilter::parse(&a.filter)?;
    if let Some(r) = &a.reference {
        filter.references.push(r.clone());
    }
    let images = engine.list_images(&filter)?;
    if a.quiet {
        for img in &images {
            writeln!(out, "{}", short_id(img, a.no_trunc))?;
        }
        return Ok(0);
    }
    let mut rows = Vec::new();
    for img in &images {
        let digests: Vec<&String> = img.names.iter().filter(|n| n.contains('@')).collect();
        let tags: Vec<(String, String)> = img
            .names
            .iter()
            .filter(|n| !n.contains('@') && filter.matches_name(n))
            .map(|n| render::split_reference(n))
            .collect();
        let tags = if tags.is_empty() {
            // Named by digest only (a tag moved on): Docker shows the repository, no tag.
            let mut repos: Vec<(String, String)> = digests
                .iter()
                .filter_map(|d| d.split_once('@'))
                .map(|(repo, _)| (repo.to_owned(), "<none>".to_owned()))
                .collect();
            repos.dedup();
            if repos.is_empty() {
                repos.push(("<none>".to_owned(), "<none>".to_owned()));
            }
            repos
        } else {
            tags
        };
        for (repo, tag) in tags {
            let digest = digests
                .iter()
                .find(|d| d.starts_with(&format!("{repo}@")))
                .and_then(|d| d.split_once('@'))
                .map_or("<none>", |(_, d)| d);
            rows.push(json!({
                "Containers": "N/A",
                "CreatedAt": img.created.map(created_at).unwrap_or_default(),
                "CreatedSince": since(img.created),
                "Digest": digest,
                "ID": short_id(img, a.no_trunc),
                "Repository": repo,
                "SharedSize": "N/A",
                "Size": human_size(img.size),
                "Tag": tag,
                "UniqueSize": "N/A",
                "VirtualSize": human_size(img.size),
            }));
        }
    }
    let default = if a.digests {
        "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    print_rows(out, a.format.as_deref(), &rows, &IMAGE_COLUMNS, default)?;
    let _ = a.all;
    Ok(0)
}

fn history(engine: &Engine, a: &HistoryArgs, out: &mut dyn Write) -> Result<i32> {
    let rows: Vec<HistoryEntry> = engine.history(&a.image)?;
    let id = |h: &HistoryEntry| {
        if a.no_trunc || h.id.starts_with('<') {
            h.id.clone()
        } else {
            h.id.trim_start_matches("sha256:")
                .get(..12)
                .unwrap_or(&h.id)
                .to_owned()
        }
    };
    if a.quiet {
        for h in &rows {
            writeln!(out, "{}", id(h))?;
        }
        return Ok(0);
    }
    let values: Vec<Value> = rows
        .iter()
        .map(|h| {
            let mut created_by = h.created_by.clone();
            if !a.no_trunc && created_by.chars().count() > 45 {
                created_by = created_by.chars().take(44).collect::<String>() + "…";
            }
            let (created, size) = if a.human {
                (since(h.created), human_size(h.size))
            } else {
                (
                    h.created.map(Timestamp::to_rfc3339).unwrap_or_default(),
                    h.size.to_string(),
                )
            };
            json!({
                "ID": id(h),
                "CreatedSince": created,
                "CreatedAt": h.created.map(Timestamp::to_rfc3339).unwrap_or_default(),
                "CreatedBy": created_by,
                "Size": size,
                "Comment": h.comment,
            })
        })
        .collect();
    print_rows(
        out,
        a.format.as_deref(),
        &values,
        &[
            ("ID", "IMAGE"),
            ("CreatedSince", "CREATED"),
            ("CreatedAt", "CREATED AT"),
            ("CreatedBy", "CREATED BY"),
            ("Size", "SIZE"),
            ("Comment", "COMMENT"),
        ],
        "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
    )?;
    Ok(0)
}

fn tag(engine: &Engine, a: &TagArgs) -> Result<i32> {
    engine.tag(&a.source, &a.target)?;
    Ok(0)
}

/// Docker's rmi: each image independently; failures are printed and make the exit code 1.
fn rmi(engine: &Engine, a: &RmiArgs, out: &mut dyn Write) -> Result<i32> {
    let _ = a.no_prune;
    let mut code = 0;
    for reference in &a.images {
        match engine.remove_image(reference, a.force) {
            Ok(r) => {
                for u in &r.untagged {
                    writeln!(out, "Untagged: {u}")?;
                }
                if let Some(d) = &r.deleted {
                    writeln!(out, "Deleted: {}", d.config_digest)?;
                }
            }
            Err(e) => {
                eprintln!("berth: {}", error_chain(&e));
                code = 1;
            }
        }
    }
    Ok(code)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}

fn prune(
    engine: &Engine,
    all: bool,
    force: bool,
    filter: &[String],
    out: &mut dyn Write,
) -> Result<i32> {
    let filter = ImageFilter::parse(filter)?;
    if !force {
        let what = if all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        };
        write!(
            out,
            "WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] "
        )?;
        out.flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
            return Ok(0);
        }
    }
    let (removals, reclaimed) = engine.prune_images(all, &filter)?;
    write_deleted_images(out, &removals)?;
    writeln!(
        out,
        "Total reclaimed space: {}",
        human_size(i64::try_from(reclaimed).unwrap_or(i64::MAX))
    )?;
    Ok(0)
}

/// Docker's "Deleted Images:" section of `image prune` and `system prune` (nothing when
/// nothing was removed).
pub(crate) fn write_deleted_images(
    out: &mut dyn Write,
    removals: &[engine::ImageRemoval],
) -> Result<()> {
    if removals.is_empty() {
        return Ok(());
    }
    writeln!(out, "Deleted Images:")?;
    for r in removals {
        for u in &r.untagged {
            writeln!(out, "untagged: {u}")?;
        }
        if let Some(d) = &r.deleted {
            writeln!(out, "deleted: {}", d.config_digest)?;
        }
    }
    writeln!(out)?;
    Ok(())
}

fn save(engine: &Engine, a: &SaveArgs) -> Result<i32> {
    match &a.output {
        Some(path) => {
            let file = std::fs::File::create(path).with_context(|| format!("create {path}"))?;
            let result = engine.save(&a.images, std::io::BufWriter::new(file));
            if result.is_err() {
                let _ = std::fs::remove_file(path);
            }
            result?;
        }
        None => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            engine.save(&a.images, std::io::BufWriter::new(stdout.lock()))?;
        }
    }
    Ok(0)
}

fn load(engine: &Engine, a: &LoadArgs, out: &mut dyn Write) -> Result<i32> {
    let input: Box<dyn Read> = match &a.input {
        Some(path) => Box::new(std::fs::File::open(path).with_context(|| format!("open {path}"))?),
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            Box::new(stdin.lock())
        }
    };
    let loaded = engine.load(std::io::BufReader::new(input))?;
    if !a.quiet {
        for l in &loaded {
            for (name, old) in &l.renamed {
                writeln!(
                    out,
                    "The image {name} already exists, renaming the old one with ID {old} to empty string"
                )?;
            }
            if l.names.is_empty() {
                writeln!(out, "Loaded image ID: {}", l.image.config_digest)?;
            }
            for n in &l.names {
                writeln!(out, "Loaded image: {n}")?;
            }
        }
    }
    Ok(0)
}

fn commit(engine: &Engine, a: &CommitArgs, out: &mut dyn Write) -> Result<i32> {
    let req = CommitRequest {
        container: a.container.clone(),
        reference: a.reference.clone(),
        changes: a.change.clone(),
        message: a.message.clone(),
        author: a.author.clone(),
        pause: a.pause,
    };
    let image = engine.commit(&req)?;
    writeln!(out, "{}", image.config_digest)?;
    Ok(0)
}
