//! Import of a rootfs tarball as a single-layer image: the tar becomes a layer blob (as-is or
//! gzip-compressed; a gzip or zstd tarball is kept as it came), with an image config (rootfs
//! diff id plus the caller's config) and an OCI manifest, all stored in the content store.

use crate::content::{ContentError, ContentStore};
use crate::digest::{DiffId, Digest, DigestReader};
use crate::manifest::{ManifestError, Platform, parse_config, parse_manifest};
use crate::media::{
    Compression, OCI_CONFIG, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_MANIFEST,
};
use serde_json::{Value, json};
use std::io::{self, BufRead, Read, Write};

/// Errors of import.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Reading the tarball or compressing it failed.
    #[error("import rootfs tarball")]
    Stream {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Storing a blob failed.
    #[error("import: store {what}")]
    Store {
        /// Layer, config or manifest.
        what: &'static str,
        /// The cause.
        #[source]
        source: ContentError,
    },
    /// The generated config or manifest did not parse back (a bug, or bad caller values).
    #[error("import: generated document")]
    Document {
        /// The cause.
        #[source]
        source: ManifestError,
    },
    /// Serializing a document failed.
    #[error("import: serialize {what}")]
    Serialize {
        /// Config or manifest.
        what: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// How to import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Store the layer gzip-compressed (as `docker import` does) instead of as-is.
    pub gzip: bool,
    /// The platform recorded in the config (default: [`Platform::host`]).
    pub platform: Option<Platform>,
    /// `config.Entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// `config.Cmd`.
    pub cmd: Option<Vec<String>>,
    /// `config.Env` (`KEY=value`).
    pub env: Vec<String>,
    /// `config.WorkingDir`.
    pub working_dir: Option<String>,
    /// A whole `config` object (Docker's Config, e.g. from `docker import -c`) to start from;
    /// the fields above are set on top of it.
    pub config: Option<serde_json::Map<String, Value>>,
    /// The history entry's comment (`docker import -m`); a default one when `None`.
    pub comment: Option<String>,
    /// RFC 3339 creation time recorded as the config's `created`.
    pub created: Option<String>,
}

/// The digests of an imported image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The manifest: the image's identity, to be named by the engine.
    pub manifest: Digest,
    /// The config blob.
    pub config: Digest,
    /// The layer blob.
    pub layer: Digest,
    /// The layer's uncompressed digest.
    pub diff_id: DiffId,
}

/// Imports the rootfs tar read from `tar` into `content`.
///
/// # Errors
/// A read or write error; nothing is named for a stream that fails midway.
pub fn import_rootfs(
    content: &ContentStore,
    tar: impl Read,
    opts: &ImportOptions,
) -> Result<Imported, ImportError> {
    let store_err = |what| move |source| ImportError::Store { what, source };
    let stream_err = |source| ImportError::Stream { source };
    let mut tar = io::BufReader::with_capacity(64 * 1024, tar);
    let compression = Compression::sniff(tar.fill_buf().map_err(stream_err)?);
    if compression != Compression::None {
        return import_compressed(content, tar, compression, opts);
    }
    let mut hashed = DigestReader::new(tar);
    let writer = content.writer(None).map_err(store_err("layer"))?;
    let (writer, media_type) = if opts.gzip {
        let mut gz = flate2::write::GzEncoder::new(writer, flate2::Compression::default());
        io::copy(&mut hashed, &mut gz).map_err(stream_err)?;
        (gz.finish().map_err(stream_err)?, OCI_LAYER_GZIP)
    } else {
        let mut w = writer;
        io::copy(&mut hashed, &mut w).map_err(stream_err)?;
        (w, OCI_LAYER)
    };
    let (diff, _, _) = hashed.finish().map_err(stream_err)?;
    let mut writer = writer;
    writer.flush().map_err(stream_err)?;
    let layer_size = writer.written();
    let layer = writer.commit(None, None).map_err(store_err("layer"))?;
    finish_import(content, layer, layer_size, media_type, DiffId(diff), opts)
}

/// A gzip or zstd tarball (`docker import rootfs.tar.gz`) is stored as it came; its DiffID is
/// the digest of the decompressed stream, read back from the stored blob.
fn import_compressed(
    content: &ContentStore,
    mut tar: impl Read,
    compression: Compression,
    opts: &ImportOptions,
) -> Result<Imported, ImportError> {
    let store_err = |what| move |source| ImportError::Store { what, source };
    let stream_err = |source| ImportError::Stream { source };
    let mut writer = content.writer(None).map_err(store_err("layer"))?;
    io::copy(&mut tar, &mut writer).map_err(stream_err)?;
    let layer_size = writer.written();
    let layer = writer.commit(None, None).map_err(store_err("layer"))?;
    let blob = io::BufReader::new(content.open_blob(&layer).map_err(store_err("layer"))?);
    let (plain, media_type): (Box<dyn Read>, _) = match compression {
        Compression::Zstd => (
            Box::new(zstd::stream::read::Decoder::with_buffer(blob).map_err(stream_err)?),
            OCI_LAYER_ZSTD,
        ),
        _ => (
            Box::new(flate2::bufread::MultiGzDecoder::new(blob)),
            OCI_LAYER_GZIP,
        ),
    };
    let mut hashed = DigestReader::new(plain);
    io::copy(&mut hashed, &mut io::sink()).map_err(stream_err)?;
    let (diff, _, _) = hashed.finish().map_err(stream_err)?;
    finish_import(content, layer, layer_size, media_type, DiffId(diff), opts)
}

/// Writes the config and manifest of an imported layer.
fn finish_import(
    content: &ContentStore,
    layer: Digest,
    layer_size: u64,
    media_type: &str,
    diff_id: DiffId,
    opts: &ImportOptions,
) -> Result<Imported, ImportError> {
    let store_err = |what| move |source| ImportError::Store { what, source };
    let platform = opts.platform.clone().unwrap_or_else(Platform::host);
    let mut exec = opts.config.clone().unwrap_or_default();
    if let Some(e) = &opts.entrypoint {
        exec.insert("Entrypoint".into(), json!(e));
    }
    if let Some(c) = &opts.cmd {
        exec.insert("Cmd".into(), json!(c));
    }
    if !opts.env.is_empty() {
        exec.insert("Env".into(), json!(opts.env));
    }
    if let Some(w) = &opts.working_dir {
        exec.insert("WorkingDir".into(), json!(w));
    }
    let mut config = json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "config": Value::Object(exec),
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "history": [{
            "created_by": "berth import",
            "comment": opts.comment.as_deref().unwrap_or("imported from a rootfs tarball"),
        }],
    });
    if let Some(t) = &opts.created {
        config["created"] = json!(t);
        config["history"][0]["created"] = json!(t);
    }
    if let Some(v) = &platform.variant {
        config["variant"] = json!(v);
    }
    let config_bytes = serde_json::to_vec(&config).map_err(|source| ImportError::Serialize {
        what: "config",
        source,
    })?;
    parse_config(&config_bytes).map_err(|source| ImportError::Document { source })?;
    let config_digest = content
        .write_blob(&config_bytes, None)
        .map_err(store_err("config"))?;

    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config_bytes.len()},
        "layers": [{"mediaType": media_type, "digest": layer.to_string(), "size": layer_size}],
    });
    let manifest_bytes =
        serde_json::to_vec(&manifest).map_err(|source| ImportError::Serialize {
            what: "manifest",
            source,
        })?;
    parse_manifest(&manifest_bytes, Some(OCI_MANIFEST))
        .map_err(|source| ImportError::Document { source })?;
    let manifest_digest = content
        .write_blob(&manifest_bytes, None)
        .map_err(store_err("manifest"))?;
    tracing::info!(manifest = %manifest_digest, layer = %layer, "rootfs imported");
    Ok(Imported {
        manifest: manifest_digest,
        config: config_digest,
        layer,
        diff_id,
    })
}
