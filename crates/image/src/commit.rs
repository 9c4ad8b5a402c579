//! Commit: a container's overlay upper directory becomes a new gzip-compressed layer on top of
//! its image, with a new config (the caller's runtime config, a history entry, the layer's
//! DiffID) and manifest, all stored in the content store.
//!
//! The upper directory is read without following symlinks: directories are listed by path
//! (the caller pauses a running container so none is swapped for a symlink mid-walk), files are
//! opened `O_NOFOLLOW`. Overlay's own markers are turned back into the layer format of the OCI
//! image spec: a 0:0 character device (a deleted file) becomes a `.wh.<name>` entry, a directory
//! with `trusted.overlay.opaque=y` gets a `.wh..wh..opq` entry. Other `trusted.overlay.*`
//! xattrs are overlay's bookkeeping and are dropped; the rest travel as PAX `SCHILY.xattr.*`
//! records.

use crate::content::ContentError;
use crate::digest::{DiffId, Digest, DigestWriter};
use crate::manifest::{MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, ManifestError, parse_config};
use crate::media::{DOCKER_LAYER_GZIP, DOCKER_MANIFEST, OCI_LAYER_GZIP};
use crate::store::{Image, ImageStore};
use crate::unpack::OPAQUE_XATTR;
use crate::unpack::path::{OPAQUE_MARKER, WHITEOUT_PREFIX};
use rustix::fs::OFlags;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Errors of commit.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Reading the upper directory or writing the layer failed.
    #[error("commit: layer from {path}")]
    Layer {
        /// The entry being read.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Reading the base image's documents or storing a blob failed.
    #[error("commit: {what}")]
    Store {
        /// Which blob.
        what: &'static str,
        /// The cause.
        #[source]
        source: ContentError,
    },
    /// A base or generated document does not parse.
    #[error("commit: {what}")]
    Document {
        /// Which document.
        what: &'static str,
        /// The cause.
        #[source]
        source: ManifestError,
    },
    /// A base document is not the JSON object it should be.
    #[error("commit: base {what} is not a JSON object")]
    NotAnObject {
        /// Which document.
        what: &'static str,
    },
    /// Serializing a new document failed.
    #[error("commit: serialize the new {what}")]
    Serialize {
        /// Config or manifest.
        what: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The container has no snapshot directory.
    #[error("commit: container {id} has no snapshot")]
    NoSnapshot {
        /// The container.
        id: String,
    },
}

/// What to record in the new image.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// The image config's `config` object (Docker's Config: Cmd, Env, ...).
    pub config: serde_json::Map<String, Value>,
    /// `author`.
    pub author: Option<String>,
    /// The history entry's `comment` (`docker commit -m`).
    pub comment: Option<String>,
    /// The history entry's `created_by` (the container's command).
    pub created_by: String,
    /// RFC 3339 creation time.
    pub created: String,
}

/// The digests of a committed image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The new manifest.
    pub manifest: Digest,
    /// The new config (the image id).
    pub config: Digest,
    /// The new layer blob.
    pub layer: Digest,
    /// Its DiffID.
    pub diff_id: DiffId,
}

impl ImageStore {
    /// Commits container `id`'s upper directory as a layer on top of `base`.
    ///
    /// # Errors
    /// The upper directory cannot be read, a blob cannot be stored, or a base document is
    /// malformed. Blobs written before a failure are left for the garbage collector.
    pub fn commit(
        &self,
        id: &str,
        base: &Image,
        opts: &CommitOptions,
    ) -> Result<Committed, CommitError> {
        let upper = self
            .snapshots()
            .dir(id)
            .map_err(|_| CommitError::NoSnapshot { id: id.to_owned() })?
            .join("upper");
        if !upper.is_dir() {
            return Err(CommitError::NoSnapshot { id: id.to_owned() });
        }
        let store_err = |what| move |source| CommitError::Store { what, source };
        let layer_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CommitError::Layer { path, source }
        };

        let writer = self.content().writer(None).map_err(store_err("layer"))?;
        let gz = flate2::write::GzEncoder::new(writer, flate2::Compression::default());
        let mut tar = tar::Builder::new(DigestWriter::new(gz));
        tar.follow_symlinks(false);
        write_diff(&upper, &mut tar)?;
        let hashed = tar.into_inner().map_err(layer_err(&upper))?;
        let (diff, _, gz) = hashed.finish();
        let mut writer = gz.finish().map_err(layer_err(&upper))?;
        writer.flush().map_err(layer_err(&upper))?;
        let layer_size = writer.written();
        let layer = writer.commit(None, None).map_err(store_err("layer"))?;
        let diff_id = DiffId(diff);

        let mut config = self.json_object(&base.config_digest, MAX_CONFIG_SIZE, "config")?;
        config.insert("config".into(), Value::Object(opts.config.clone()));
        config.insert("created".into(), json!(opts.created));
        if let Some(a) = &opts.author {
            config.insert("author".into(), json!(a));
        }
        config.remove("container_config");
        config.remove("container");
        let mut diff_ids: Vec<Value> = base.diff_ids.iter().map(|d| json!(d.to_string())).collect();
        diff_ids.push(json!(diff_id.to_string()));
        config.insert(
            "rootfs".into(),
            json!({"type": "layers", "diff_ids": diff_ids}),
        );
        let mut entry = serde_json::Map::new();
        entry.insert("created".into(), json!(opts.created));
        entry.insert("created_by".into(), json!(opts.created_by));
        if let Some(a) = &opts.author {
            entry.insert("author".into(), json!(a));
        }
        if let Some(c) = &opts.comment {
            entry.insert("comment".into(), json!(c));
        }
        let mut history = match config.remove("history") {
            Some(Value::Array(h)) => h,
            _ => Vec::new(),
        };
        history.push(Value::Object(entry));
        config.insert("history".into(), Value::Array(history));
        let config_bytes =
            serde_json::to_vec(&config).map_err(|source| CommitError::Serialize {
                what: "config",
                source,
            })?;
        parse_config(&config_bytes).map_err(|source| CommitError::Document {
            what: "new config",
            source,
        })?;
        let config_digest = self
            .content()
            .write_blob(&config_bytes, None)
            .map_err(store_err("config"))?;

        let mut manifest =
            self.json_object(&base.manifest_digest, MAX_MANIFEST_SIZE, "manifest")?;
        let docker = manifest.get("mediaType").and_then(Value::as_str) == Some(DOCKER_MANIFEST);
        let layer_type = if docker {
            DOCKER_LAYER_GZIP
        } else {
            OCI_LAYER_GZIP
        };
        let config_type = base.manifest.config().media_type().to_string();
        manifest.insert(
            "config".into(),
            json!({"mediaType": config_type, "digest": config_digest.to_string(), "size": config_bytes.len()}),
        );
        let mut layers = match manifest.remove("layers") {
            Some(Value::Array(l)) => l,
            _ => Vec::new(),
        };
        layers.push(
            json!({"mediaType": layer_type, "digest": layer.to_string(), "size": layer_size}),
        );
        manifest.insert("layers".into(), Value::Array(layers));
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|source| CommitError::Serialize {
                what: "manifest",
                source,
            })?;
        let manifest_digest = self
            .content()
            .write_blob(&manifest_bytes, None)
            .map_err(store_err("manifest"))?;
        tracing::info!(container = id, manifest = %manifest_digest, layer = %layer, "container committed");
        Ok(Committed {
            manifest: manifest_digest,
            config: config_digest,
            layer,
            diff_id,
        })
    }

    fn json_object(
        &self,
        digest: &Digest,
        limit: u64,
        what: &'static str,
    ) -> Result<serde_json::Map<String, Value>, CommitError> {
        let bytes = self
            .content()
            .read(digest, limit)
            .map_err(|source| CommitError::Store { what, source })?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(CommitError::NotAnObject { what }),
        }
    }
}

/// Writes the tar of an overlay upper directory in the image layer format (see the module
/// docs), entries sorted by name so the same tree gives the same layer.
///
/// # Errors
/// An entry cannot be read or the tar cannot be written.
pub fn write_diff<W: Write>(upper: &Path, tar: &mut tar::Builder<W>) -> Result<(), CommitError> {
    let mut links = HashMap::new();
    walk(upper, Path::new(""), tar, &mut links)
}

fn walk<W: Write>(
    dir: &Path,
    rel: &Path,
    tar: &mut tar::Builder<W>,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<(), CommitError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CommitError::Layer { path, source }
    };
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(err(dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(err(dir))?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let rel = rel.join(&name);
        let md = fs::symlink_metadata(&path).map_err(err(&path))?;
        let ft = md.file_type();
        if ft.is_char_device() && md.rdev() == 0 {
            // Overlay's whiteout: the lower file is deleted.
            let mut wh = WHITEOUT_PREFIX.as_bytes().to_vec();
            wh.extend_from_slice(name.as_bytes());
            let wh_path = rel.with_file_name(OsStr::from_bytes(&wh));
            let mut h = header(&md, tar::EntryType::Regular);
            h.set_size(0);
            h.set_mode(0o644);
            tar.append_data(&mut h, &wh_path, io::empty())
                .map_err(err(&path))?;
            continue;
        }
        let xattrs = xattrs(&path).map_err(err(&path))?;
        if !xattrs.is_empty() {
            let records: Vec<(String, &[u8])> = xattrs
                .iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
                .collect();
            tar.append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
                .map_err(err(&path))?;
        }
        if ft.is_dir() {
            let mut h = header(&md, tar::EntryType::Directory);
            tar.append_data(&mut h, &rel, io::empty())
                .map_err(err(&path))?;
            if is_opaque(&path) {
                let mut h = header(&md, tar::EntryType::Regular);
                h.set_size(0);
                h.set_mode(0o644);
                tar.append_data(&mut h, rel.join(OPAQUE_MARKER), io::empty())
                    .map_err(err(&path))?;
            }
            walk(&path, &rel, tar, links)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(err(&path))?;
            let mut h = header(&md, tar::EntryType::Symlink);
            tar.append_link(&mut h, &rel, &target).map_err(err(&path))?;
        } else if ft.is_file() {
            if md.nlink() > 1 {
                if let Some(first) = links.get(&(md.dev(), md.ino())) {
                    let mut h = header(&md, tar::EntryType::Link);
                    tar.append_link(&mut h, &rel, first).map_err(err(&path))?;
                    continue;
                }
                links.insert((md.dev(), md.ino()), rel.clone());
            }
            let file = File::options()
                .read(true)
                .custom_flags(OFlags::NOFOLLOW.bits() as i32)
                .open(&path)
                .map_err(err(&path))?;
            let mut h = header(&md, tar::EntryType::Regular);
            h.set_size(md.len());
            tar.append_data(&mut h, &rel, file).map_err(err(&path))?;
        } else {
            let kind = if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else if ft.is_fifo() {
                tar::EntryType::Fifo
            } else {
                // Sockets do not belong in an image (docker skips them too).
                continue;
            };
            let mut h = header(&md, kind);
            let dev = md.rdev();
            h.set_device_major(rustix::fs::major(dev))
                .map_err(err(&path))?;
            h.set_device_minor(rustix::fs::minor(dev))
                .map_err(err(&path))?;
            tar.append_data(&mut h, &rel, io::empty())
                .map_err(err(&path))?;
        }
    }
    Ok(())
}

fn header(md: &fs::Metadata, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(md.mode() & 0o7777);
    h.set_uid(u64::from(md.uid()));
    h.set_gid(u64::from(md.gid()));
    h.set_mtime(u64::try_from(md.mtime()).unwrap_or(0));
    h.set_size(0);
    h
}

fn is_opaque(path: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(rustix::fs::lgetxattr(path, OPAQUE_XATTR, &mut buf), Ok(1) if buf[0] == b'y')
}

/// The entry's xattrs except overlay's own (`trusted.overlay.*`).
fn xattrs(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut names = vec![0u8; 4096];
    let n = match rustix::fs::llistxattr(path, &mut names) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        if name.starts_with("trusted.overlay.") {
            continue;
        }
        let mut value = vec![0u8; 64 * 1024];
        match rustix::fs::lgetxattr(path, name.as_str(), &mut value) {
            Ok(len) => {
                value.truncate(len);
                out.push((name, value));
            }
            Err(rustix::io::Errno::NODATA) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}
