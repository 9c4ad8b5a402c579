//! The content store: immutable blobs (manifests, configs, compressed layers) named by their
//! digest under `blobs/sha256/<hex>`.
//!
//! A blob becomes visible only through [`Writer::commit`], which renames a fully written,
//! fsynced file from `ingest/` into place after its digest (and expected size) matched. Readers
//! therefore never see a partial blob, a crash leaves at most an orphan in `ingest/`
//! ([`ContentStore::clean_ingest`]), and two writers of the same blob both succeed with one file.
//! The store knows nothing of manifests or layers: it is the "content" half of containerd's
//! content/snapshot split, and unpack joins the two.

mod writer;

pub use writer::Writer;

use crate::digest::{Digest, DigestError};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Errors of the content store.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// A store directory could not be created or read.
    #[error("content store directory {path}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// No blob with this digest.
    #[error("blob {digest} not found")]
    NotFound {
        /// The digest asked for.
        digest: Digest,
    },
    /// A blob file could not be opened, read, written or removed.
    #[error("{op} blob file {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The bytes written do not hash to the expected digest; nothing was named.
    #[error("blob digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest the caller expected.
        expected: Digest,
        /// The digest of the bytes written.
        actual: Digest,
    },
    /// The bytes written are not as many as expected; nothing was named.
    #[error("blob {digest}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The digest of the bytes written.
        digest: Digest,
        /// The size the caller expected.
        expected: u64,
        /// The bytes written.
        actual: u64,
    },
    /// A blob grew beyond the size it was declared to have (a stream sent too much).
    #[error("blob larger than its declared {limit} bytes")]
    TooLarge {
        /// The declared size.
        limit: u64,
    },
    /// A file in `blobs/sha256` is not named by a digest.
    #[error("stray file in content store")]
    Stray {
        /// The cause.
        #[source]
        source: DigestError,
    },
}

/// What the store knows about a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The blob's digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// A content store rooted at a directory holding `blobs/sha256/` and `ingest/`.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    /// Opens (creating the directories if needed) the store at `root`.
    ///
    /// # Errors
    /// A directory cannot be created.
    pub fn open(root: impl Into<PathBuf>) -> Result<ContentStore, ContentError> {
        let store = ContentStore { root: root.into() };
        for dir in [store.blob_dir(), store.ingest_dir()] {
            fs::create_dir_all(&dir).map_err(|source| ContentError::Dir { path: dir, source })?;
        }
        Ok(store)
    }

    /// The store's root directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn ingest_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }

    /// Where the blob `digest` lives (whether or not it exists).
    #[must_use]
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blob_dir().join(digest.hex())
    }

    /// Size and digest of a committed blob.
    ///
    /// # Errors
    /// [`ContentError::NotFound`] when absent.
    pub fn info(&self, digest: &Digest) -> Result<Info, ContentError> {
        let path = self.blob_path(digest);
        match fs::symlink_metadata(&path) {
            Ok(md) if md.is_file() => Ok(Info {
                digest: digest.clone(),
                size: md.len(),
            }),
            Ok(_) => Err(ContentError::NotFound {
                digest: digest.clone(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ContentError::NotFound {
                digest: digest.clone(),
            }),
            Err(source) => Err(ContentError::Io {
                op: "stat",
                path,
                source,
            }),
        }
    }

    /// Whether the blob is present.
    #[must_use]
    pub fn contains(&self, digest: &Digest) -> bool {
        self.info(digest).is_ok()
    }

    /// Opens a committed blob for reading.
    ///
    /// # Errors
    /// [`ContentError::NotFound`] when absent.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, ContentError> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                ContentError::NotFound {
                    digest: digest.clone(),
                }
            } else {
                ContentError::Io {
                    op: "open",
                    path,
                    source,
                }
            }
        })
    }

    /// Reads a whole blob, refusing one larger than `limit` bytes (manifests and configs are
    /// read this way; layers are streamed with [`open_blob`](Self::open_blob)).
    ///
    /// # Errors
    /// Absent, unreadable, or larger than `limit`.
    pub fn read(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, ContentError> {
        let file = self.open_blob(digest)?;
        let mut bytes = Vec::new();
        file.take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|source| ContentError::Io {
                op: "read",
                path: self.blob_path(digest),
                source,
            })?;
        if bytes.len() as u64 > limit {
            return Err(ContentError::TooLarge { limit });
        }
        Ok(bytes)
    }

    /// Removes a blob. Removing an absent blob is not an error (deletion is idempotent so a
    /// garbage collector may repeat it after a crash).
    ///
    /// # Errors
    /// The file exists but cannot be removed.
    pub fn delete(&self, digest: &Digest) -> Result<(), ContentError> {
        let path = self.blob_path(digest);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ContentError::Io {
                op: "remove",
                path,
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Every committed blob, in no particular order.
    ///
    /// # Errors
    /// The blob directory cannot be read, or holds a file not named by a digest.
    pub fn walk(&self) -> Result<Vec<Info>, ContentError> {
        let dir = self.blob_dir();
        let entries = fs::read_dir(&dir).map_err(|source| ContentError::Dir {
            path: dir.clone(),
            source,
        })?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| ContentError::Dir {
                path: dir.clone(),
                source,
            })?;
            let name = entry.file_name();
            let digest = Digest::from_hex(&name.to_string_lossy())
                .map_err(|source| ContentError::Stray { source })?;
            let md = entry.metadata().map_err(|source| ContentError::Io {
                op: "stat",
                path: entry.path(),
                source,
            })?;
            out.push(Info {
                digest,
                size: md.len(),
            });
        }
        Ok(out)
    }

    /// A writer for a new blob. `size_limit`, when known (from a descriptor), bounds how much
    /// may be written, so a hostile stream cannot fill the disk.
    ///
    /// # Errors
    /// The ingest file cannot be created.
    pub fn writer(&self, size_limit: Option<u64>) -> Result<Writer, ContentError> {
        Writer::create(self.clone(), size_limit)
    }

    /// Writes `bytes` as a blob and returns its digest (it must equal `expected` when given).
    ///
    /// # Errors
    /// As [`Writer::commit`].
    pub fn write_blob(
        &self,
        bytes: &[u8],
        expected: Option<&Digest>,
    ) -> Result<Digest, ContentError> {
        let mut w = self.writer(Some(bytes.len() as u64))?;
        io::Write::write_all(&mut w, bytes).map_err(|source| w.io_error(source))?;
        w.commit(expected, Some(bytes.len() as u64))
    }

    /// Removes ingest files left by writers of dead processes (a crash mid-write). Call at
    /// start-up; files of live writers stay.
    ///
    /// # Errors
    /// The ingest directory cannot be read.
    pub fn clean_ingest(&self) -> Result<usize, ContentError> {
        let dir = self.ingest_dir();
        let entries = fs::read_dir(&dir).map_err(|source| ContentError::Dir {
            path: dir.clone(),
            source,
        })?;
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let pid = name
                .to_string_lossy()
                .split('-')
                .next()
                .and_then(|p| p.parse::<u32>().ok());
            let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
            if !alive && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests;
