//! Image verbs.

use std::io::{Read, Write};

use anyhow::{Context, Result};
use clap::Subcommand;
use engine::Engine;

use crate::render;

#[derive(Debug, Subcommand)]
pub(crate) enum ImageCommand {
    /// Import a rootfs tarball (a file, or - for stdin) as an image.
    Import {
        /// Tarball path or `-`.
        file: String,
        /// `REPOSITORY[:TAG]`.
        reference: Option<String>,
    },
    /// List images.
    Images {
        /// Only image ids.
        #[arg(short, long)]
        quiet: bool,
    },
}

pub(crate) fn dispatch(engine: &Engine, command: &ImageCommand) -> Result<i32> {
    let mut stdout = std::io::stdout().lock();
    match command {
        ImageCommand::Import { file, reference } => {
            let input: Box<dyn Read> = if file == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                Box::new(std::fs::File::open(file).with_context(|| format!("open {file}"))?)
            };
            let image = engine.import(std::io::BufReader::new(input), reference.as_deref())?;
            writeln!(stdout, "{}", image.config_digest)?;
        }
        ImageCommand::Images { quiet } => render::images(&mut stdout, &engine.images()?, *quiet)?,
    }
    Ok(0)
}
