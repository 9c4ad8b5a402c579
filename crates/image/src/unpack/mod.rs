//! Unpacking layers: a (compressed) layer tar becomes `layers/<chain-id>/diff`, an overlay lower
//! directory, exactly once.
//!
//! Flow: sniff the compression (gzip, zstd or none; the media type must name a layer) → hash
//! the uncompressed stream (the DiffID) while the safe `extract` step writes entries into a
//! private staging directory → check the DiffID against the image config → `rename(2)` the
//! staging directory to its chain id. A failure at any step removes the staging directory, so a
//! truncated or hostile layer never leaves a named layer behind; two concurrent unpacks of the
//! same layer both succeed and one tree wins the rename.

mod extract;
pub mod path;

use crate::chunks::{CHUNK, ChunkReader, ChunkSender, chunk_channel, fill};
use crate::digest::{ChainId, DiffId, Digester};
use crate::media::Compression;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub use extract::OPAQUE_XATTR;

/// Errors of layer unpacking.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The layer stream could not be read or decompressed (truncated or corrupt).
    #[error("read layer stream")]
    Read {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A tar header field is malformed.
    #[error("layer entry {path}: bad header")]
    Header {
        /// The entry.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Creating an entry failed.
    #[error("layer entry {path}: {op}")]
    Entry {
        /// The entry.
        path: String,
        /// What was being done.
        op: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A parent of the entry is a symlink or a file: berth never writes through one.
    #[error(
        "layer entry {path}: parent component {component:?} is not a directory (symlink or file)"
    )]
    NotADirectory {
        /// The entry.
        path: String,
        /// The offending component.
        component: String,
    },
    /// A hard link whose target climbs out of the layer.
    #[error("layer entry {path}: hard link target {target:?} escapes the layer")]
    LinkEscapes {
        /// The entry.
        path: String,
        /// Its target.
        target: String,
    },
    /// A hard link whose target is not an earlier entry of the layer.
    #[error("layer entry {path}: hard link to {target:?}")]
    LinkTarget {
        /// The entry.
        path: String,
        /// Its target.
        target: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A link entry without a target.
    #[error("layer entry {path}: link without a target")]
    MissingLinkName {
        /// The entry.
        path: String,
    },
    /// A whiteout naming nothing usable.
    #[error("layer entry {path}: invalid whiteout")]
    BadWhiteout {
        /// The entry.
        path: String,
    },
    /// An entry type berth does not unpack (sparse files, ...).
    #[error("layer entry {path}: unsupported entry type {kind}")]
    UnsupportedEntry {
        /// The entry.
        path: String,
        /// The tar type.
        kind: String,
    },
    /// The media type is not a layer berth can unpack.
    #[error("unsupported layer media type {media_type:?}")]
    MediaType {
        /// The media type.
        media_type: String,
    },
    /// The uncompressed stream does not hash to the config's DiffID.
    #[error("layer diff id mismatch: expected {expected}, got {actual}")]
    DiffIdMismatch {
        /// From the image config.
        expected: DiffId,
        /// Of the bytes unpacked.
        actual: DiffId,
    },
    /// The caller's check of the layer's blob failed (see [`LayerStore::unpack_verified`]).
    #[error("verify layer blob")]
    Verify {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The layer store's directories could not be made, renamed or removed.
    #[error("{op} {path}")]
    Store {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl UnpackError {
    fn entry(path: &str, op: &'static str, e: rustix::io::Errno) -> UnpackError {
        UnpackError::Entry {
            path: path.to_owned(),
            op,
            source: io::Error::from(e),
        }
    }
}

/// The directory of unpacked layers: `<root>/<chain-id hex>/diff`, plus `diffid` and (above
/// the bottom layer) `parent` files beside each `diff`.
#[derive(Debug, Clone)]
pub struct LayerStore {
    root: PathBuf,
}

static STAGING: AtomicU64 = AtomicU64::new(0);

/// What [`LayerStore::unpack`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unpacked {
    /// This call unpacked the layer.
    Created,
    /// It was already there (or a concurrent unpack won the race).
    AlreadyPresent,
}

impl LayerStore {
    /// Opens (creating if needed) the layer directory `root` (`<berth root>/layers`).
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn open(root: impl Into<PathBuf>) -> Result<LayerStore, UnpackError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|source| UnpackError::Store {
            op: "create",
            path: root.clone(),
            source,
        })?;
        Ok(LayerStore { root })
    }

    /// The layer directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `layers/<chain-id hex>/diff`, whether or not it exists.
    #[must_use]
    pub fn diff_path(&self, chain: &ChainId) -> PathBuf {
        self.root.join(chain.0.hex()).join("diff")
    }

    /// Whether the layer stack `chain` is unpacked.
    #[must_use]
    pub fn contains(&self, chain: &ChainId) -> bool {
        self.diff_path(chain).is_dir()
    }

    /// Unpacks `blob` (a layer of media type `media_type`, compressed or not) as `diff_id` on top
    /// of `parent`, unless the resulting chain id is already present. The blob's own digest is
    /// not checked here (the content store did that when naming it); the uncompressed stream
    /// must hash to `diff_id`.
    ///
    /// # Errors
    /// Unknown media type, a corrupt or truncated stream, a hostile entry (see [`path`] for the
    /// policy), a DiffID mismatch, or an I/O error. Nothing is named on error.
    pub fn unpack(
        &self,
        blob: impl Read,
        media_type: &str,
        parent: Option<&ChainId>,
        diff_id: &DiffId,
    ) -> Result<(ChainId, Unpacked), UnpackError> {
        self.unpack_verified(
            BufReader::with_capacity(64 * 1024, blob),
            media_type,
            parent,
            diff_id,
            || Ok(()),
        )
    }

    /// As [`unpack`](Self::unpack) of a buffered stream (a registry pull hands over its
    /// download buffers as they are), streaming: `verify` runs after the stream was extracted
    /// (before its DiffID is compared) and before the layer is named, so a registry pull can check the
    /// compressed blob's digest (and name the blob) first; its error fails the unpack
    /// ([`UnpackError::Verify`]) and nothing is named. Not called when the layer is already
    /// present.
    ///
    /// # Errors
    /// As [`unpack`](Self::unpack), or `verify` failed.
    pub fn unpack_verified(
        &self,
        blob: impl BufRead,
        media_type: &str,
        parent: Option<&ChainId>,
        diff_id: &DiffId,
        verify: impl FnOnce() -> io::Result<()>,
    ) -> Result<(ChainId, Unpacked), UnpackError> {
        let chain = ChainId::of(parent, diff_id);
        if self.contains(&chain) {
            return Ok((chain, Unpacked::AlreadyPresent));
        }
        let declared =
            Compression::of_media_type(media_type).ok_or_else(|| UnpackError::MediaType {
                media_type: media_type.to_owned(),
            })?;
        let n = STAGING.fetch_add(1, Ordering::Relaxed);
        let staging = self.root.join(format!(
            ".staging-{}-{n}-{}",
            std::process::id(),
            chain.0.hex()
        ));
        let result = self.unpack_into(&staging, blob, declared, parent, diff_id, verify);
        let result =
            result.and_then(
                |()| match fs::rename(&staging, self.root.join(chain.0.hex())) {
                    Ok(()) => Ok(Unpacked::Created),
                    // Another unpack of the same layer got there first: its tree is as good as ours.
                    Err(e)
                        if matches!(
                            rustix::io::Errno::from_io_error(&e),
                            Some(rustix::io::Errno::EXIST | rustix::io::Errno::NOTEMPTY)
                        ) =>
                    {
                        Ok(Unpacked::AlreadyPresent)
                    }
                    Err(source) => Err(UnpackError::Store {
                        op: "rename",
                        path: staging.clone(),
                        source,
                    }),
                },
            );
        if !matches!(result, Ok(Unpacked::Created)) {
            remove_staging(&staging);
        }
        let how = result?;
        tracing::info!(chain_id = %chain, diff_id = %diff_id, ?how, "layer unpacked");
        Ok((chain, how))
    }

    fn unpack_into(
        &self,
        staging: &Path,
        blob: impl BufRead,
        declared: Compression,
        parent: Option<&ChainId>,
        diff_id: &DiffId,
        verify: impl FnOnce() -> io::Result<()>,
    ) -> Result<(), UnpackError> {
        let diff = staging.join("diff");
        for dir in [staging, diff.as_path()] {
            fs::create_dir(dir).map_err(|source| UnpackError::Store {
                op: "create",
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let root = fs::File::open(&diff).map_err(|source| UnpackError::Store {
            op: "open",
            path: diff.clone(),
            source,
        })?;
        let actual = extract_buffered(blob, declared, std::os::fd::AsFd::as_fd(&root))?;
        // The blob's own check first: wrong bytes from a registry are a digest mismatch of
        // the blob, not a puzzling DiffID mismatch.
        verify().map_err(|source| UnpackError::Verify { source })?;
        if actual != *diff_id {
            return Err(UnpackError::DiffIdMismatch {
                expected: diff_id.clone(),
                actual,
            });
        }
        let mut meta = vec![("diffid", diff_id.to_string())];
        if let Some(p) = parent {
            meta.push(("parent", p.to_string()));
        }
        for (name, value) in meta {
            let path = staging.join(name);
            fs::write(&path, value).map_err(|source| UnpackError::Store {
                op: "write",
                path,
                source,
            })?;
        }
        Ok(())
    }

    /// Removes an unpacked layer (the caller knows no image or container uses it).
    ///
    /// # Errors
    /// It exists but cannot be removed.
    pub fn remove(&self, chain: &ChainId) -> Result<(), UnpackError> {
        let path = self.root.join(chain.0.hex());
        match fs::remove_dir_all(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(UnpackError::Store {
                op: "remove",
                path,
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Removes staging directories of dead processes (a crash mid-unpack). Call at start-up.
    pub fn clean_staging(&self) -> usize {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return 0;
        };
        let mut removed = 0;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(".staging-") else {
                continue;
            };
            let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
            if !pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists()) {
                remove_staging(&e.path());
                removed += 1;
            }
        }
        removed
    }
}

fn remove_staging(staging: &Path) {
    // remove_dir_all does not follow symlinks, so a hostile tree cannot redirect it.
    if let Err(e) = fs::remove_dir_all(staging)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %staging.display(), error = %e, "could not remove layer staging directory");
    }
}

/// Decompresses `blob` and extracts it into the directory `root`, returning the DiffID (sha256
/// of the whole uncompressed stream, read to its end so trailing padding and the compressor's
/// checksum are verified too).
///
/// # Errors
/// As [`LayerStore::unpack`].
pub fn extract_stream(
    blob: impl Read,
    declared: Compression,
    root: std::os::fd::BorrowedFd<'_>,
) -> Result<DiffId, UnpackError> {
    extract_buffered(BufReader::with_capacity(64 * 1024, blob), declared, root)
}

/// Uncompressed chunks in flight between decompression and extraction.
const DEPTH: usize = 4;

/// [`extract_stream`] of a stream that is buffered already.
///
/// Two threads share the work: this one decompresses and hashes (the DiffID), a second one
/// parses the tar and writes the files, fed through a bounded [`chunk_channel`]. Inflate and
/// the file system calls are each about half of an unpack's CPU time, so on two cores the
/// layer lands in about half the time.
fn extract_buffered(
    mut blob: impl BufRead,
    declared: Compression,
    root: std::os::fd::BorrowedFd<'_>,
) -> Result<DiffId, UnpackError> {
    // Four bytes tell gzip and zstd apart, however the first read of the stream was cut.
    let mut head = Vec::with_capacity(4);
    (&mut blob)
        .take(4)
        .read_to_end(&mut head)
        .map_err(|source| UnpackError::Read { source })?;
    let sniffed = Compression::sniff(&head);
    if sniffed != declared {
        // Registries and `docker save` mislabel layers now and then; the bytes decide.
        tracing::debug!(
            ?declared,
            ?sniffed,
            "layer compression differs from its media type"
        );
    }
    let stream = io::Cursor::new(head).chain(blob);
    let mut plain: Box<dyn Read + '_> = match sniffed {
        Compression::None => Box::new(stream),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(stream)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(stream)
                .map_err(|source| UnpackError::Read { source })?,
        ),
    };
    let (tx, mut rx) = chunk_channel(DEPTH);
    let failed = AtomicBool::new(false);
    let mut digester = Digester::new();
    let (streamed, extracted) = std::thread::scope(|s| {
        let extractor = s.spawn(|| {
            let result = extract_tar(&mut rx, root);
            // Before the receiver goes: a failed send then always finds the flag set.
            failed.store(result.is_err(), Ordering::SeqCst);
            drop(rx);
            result
        });
        let streamed = pump(&mut plain, tx, &mut digester, &failed);
        let extracted = extractor.join().unwrap_or_else(|_| {
            Err(UnpackError::Read {
                source: io::Error::other("layer extraction thread panicked"),
            })
        });
        (streamed, extracted)
    });
    match (streamed, extracted) {
        // A hostile or unwritable entry: the extractor stopped first, and says why.
        (_, Err(e)) if !matches!(e, UnpackError::Read { .. }) => Err(e),
        // A corrupt or cut stream, which the extractor saw only as an early end.
        (Err(source), _) => Err(UnpackError::Read { source }),
        (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(())) => Ok(DiffId(digester.finish())),
    }
}

/// Reads `plain` to its end, hashing every byte and handing the chunks to the extractor. When
/// the extractor stops early the rest is still read and hashed (the tar's end-of-archive padding
/// and the compressor's trailer count too), unless it stopped because it `failed`.
fn pump(
    plain: &mut impl Read,
    tx: ChunkSender,
    digester: &mut Digester,
    failed: &AtomicBool,
) -> io::Result<()> {
    loop {
        let mut chunk = tx.chunk();
        let n = fill(plain, chunk.space())?;
        if n == 0 {
            return Ok(());
        }
        chunk.set_len(n);
        digester.update(chunk.filled());
        if tx.send(chunk).is_err() {
            break;
        }
    }
    drop(tx);
    if failed.load(Ordering::SeqCst) {
        return Ok(());
    }
    let mut rest = vec![0; CHUNK];
    loop {
        let n = fill(plain, &mut rest)?;
        if n == 0 {
            return Ok(());
        }
        digester.update(&rest[..n]);
    }
}

/// The extractor's half: the tar entries of `stream` written below `root`.
fn extract_tar(
    stream: &mut ChunkReader,
    root: std::os::fd::BorrowedFd<'_>,
) -> Result<(), UnpackError> {
    let mut archive = tar::Archive::new(stream);
    let mut extractor = extract::Extractor::new(root);
    let entries = archive
        .entries()
        .map_err(|source| UnpackError::Read { source })?;
    for entry in entries {
        let mut entry = entry.map_err(|source| UnpackError::Read { source })?;
        extractor.entry(&mut entry)?;
    }
    extractor.finish()
}
