//! Garbage collection of blobs and unpacked layers no image uses any more, and the lock that
//! keeps it from racing writers.
//!
//! The engine knows which manifests are still wanted (its image records, and the images of
//! existing containers); this module walks from those roots through indexes, manifests and
//! configs, and deletes every other blob in `blobs/` and every layer directory in `layers/`
//! whose chain id no root reaches. A writer (load, import, commit) holds [`GcLock`] shared from
//! its first blob until the engine has recorded the image; the collector takes it exclusively,
//! so blobs that are written but not yet recorded are never collected.

use crate::content::ContentError;
use crate::digest::{ChainId, Digest};
use crate::manifest::{
    MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, Manifest, descriptor_digest, diff_ids, parse_config,
    parse_manifest,
};
use crate::store::ImageStore;
use crate::unpack::UnpackError;
use rustix::fs::{FlockOperation, flock};
use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::path::PathBuf;

/// Errors of garbage collection.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// The lock file could not be opened or locked.
    #[error("lock {path}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Listing or deleting blobs failed.
    #[error("collect blobs")]
    Content {
        /// The cause.
        #[source]
        source: ContentError,
    },
    /// The layers directory could not be listed.
    #[error("list layer directory {path}")]
    ListLayers {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An unpacked layer could not be removed.
    #[error("remove layer {chain}")]
    RemoveLayer {
        /// Its chain id.
        chain: ChainId,
        /// The cause.
        #[source]
        source: UnpackError,
    },
}

/// A held lock on the store's `gc.lock` (shared for writers, exclusive for the collector);
/// released on drop.
#[derive(Debug)]
pub struct GcLock {
    _file: File,
}

/// What a collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collected {
    /// Blobs deleted.
    pub blobs: Vec<Digest>,
    /// Bytes of the deleted blobs.
    pub bytes: u64,
    /// Unpacked layers removed.
    pub layers: Vec<ChainId>,
}

impl ImageStore {
    fn lock(&self, op: FlockOperation) -> Result<GcLock, GcError> {
        let path = self.root().join("gc.lock");
        let err = |source| GcError::Lock {
            path: path.clone(),
            source,
        };
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(err)?;
        flock(&file, op).map_err(|e| err(io::Error::from(e)))?;
        Ok(GcLock { _file: file })
    }

    /// Takes the writers' (shared) lock: hold it from the first blob written until the image
    /// is recorded by the engine, so a concurrent collection cannot delete those blobs.
    ///
    /// # Errors
    /// The lock file cannot be opened or locked.
    pub fn lock_writer(&self) -> Result<GcLock, GcError> {
        self.lock(FlockOperation::LockShared)
    }

    /// Deletes every blob and unpacked layer not reachable from `roots` (manifest or index
    /// digests), plus leftovers of crashed writers (`ingest/`, layer staging directories).
    /// Waits for writers holding [`lock_writer`](Self::lock_writer). A root whose manifest is
    /// missing or unreadable keeps what it can reach and is otherwise skipped.
    ///
    /// # Errors
    /// The lock cannot be taken, or a blob or layer cannot be listed or removed.
    pub fn collect_garbage(&self, roots: &[Digest]) -> Result<Collected, GcError> {
        let _lock = self.lock(FlockOperation::LockExclusive)?;
        let (blobs, chains) = self.reachable(roots);
        let mut collected = Collected::default();
        for info in self
            .content()
            .walk()
            .map_err(|source| GcError::Content { source })?
        {
            if blobs.contains(&info.digest) {
                continue;
            }
            self.content()
                .delete(&info.digest)
                .map_err(|source| GcError::Content { source })?;
            collected.bytes += info.size;
            collected.blobs.push(info.digest);
        }
        let layers_dir = self.layers().root().to_path_buf();
        let entries = fs::read_dir(&layers_dir).map_err(|source| GcError::ListLayers {
            path: layers_dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Staging directories are the unpacker's (`clean_staging` below).
            let Ok(digest) = Digest::from_hex(&name) else {
                continue;
            };
            let chain = ChainId(digest);
            if chains.contains(&chain) {
                continue;
            }
            self.layers()
                .remove(&chain)
                .map_err(|source| GcError::RemoveLayer {
                    chain: chain.clone(),
                    source,
                })?;
            collected.layers.push(chain);
        }
        let _ = self.content().clean_ingest();
        self.layers().clean_staging();
        if !collected.blobs.is_empty() || !collected.layers.is_empty() {
            tracing::info!(
                blobs = collected.blobs.len(),
                bytes = collected.bytes,
                layers = collected.layers.len(),
                "image garbage collected"
            );
        }
        Ok(collected)
    }

    /// Blobs and chain ids reachable from `roots`.
    fn reachable(&self, roots: &[Digest]) -> (HashSet<Digest>, HashSet<ChainId>) {
        let mut blobs = HashSet::new();
        let mut chains = HashSet::new();
        let mut todo: Vec<Digest> = roots.to_vec();
        while let Some(d) = todo.pop() {
            if !blobs.insert(d.clone()) {
                continue;
            }
            let Ok(bytes) = self.content().read(&d, MAX_MANIFEST_SIZE) else {
                continue;
            };
            match parse_manifest(&bytes, None) {
                Ok(Manifest::Index(index)) => {
                    todo.extend(
                        index
                            .manifests()
                            .iter()
                            .filter_map(|m| descriptor_digest(m).ok()),
                    );
                }
                Ok(Manifest::Image(m)) => {
                    blobs.extend(m.layers().iter().filter_map(|l| descriptor_digest(l).ok()));
                    let Ok(config) = descriptor_digest(m.config()) else {
                        continue;
                    };
                    blobs.insert(config.clone());
                    let ids = self
                        .content()
                        .read(&config, MAX_CONFIG_SIZE)
                        .ok()
                        .and_then(|b| parse_config(&b).ok())
                        .and_then(|c| diff_ids(&c).ok());
                    chains.extend(ids.map(|ids| ChainId::chain(&ids)).unwrap_or_default());
                }
                Err(_) => {}
            }
        }
        (blobs, chains)
    }
}
