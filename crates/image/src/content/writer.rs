//! Writing a blob: hash while writing into `ingest/`, name it only once verified.

use super::{ContentError, ContentStore};
use crate::digest::{Digest, Digester};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A blob being written: bytes go to a private file in `ingest/` and are hashed on the way.
/// [`commit`](Writer::commit) names the blob; dropping the writer without committing removes
/// the ingest file. Registry pull streams a response body into a `Writer` (via `io::copy`).
#[derive(Debug)]
pub struct Writer {
    store: ContentStore,
    path: PathBuf,
    file: Option<File>,
    digester: Digester,
    limit: Option<u64>,
}

impl Writer {
    pub(super) fn create(store: ContentStore, limit: Option<u64>) -> Result<Writer, ContentError> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // The pid first: clean_ingest keeps files of live processes.
        let path = store
            .ingest_dir()
            .join(format!("{}-{n}-{nanos}", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)
            .map_err(|source| ContentError::Io {
                op: "create",
                path: path.clone(),
                source,
            })?;
        Ok(Writer {
            store,
            path,
            file: Some(file),
            digester: Digester::new(),
            limit,
        })
    }

    /// Bytes written so far.
    #[must_use]
    pub fn written(&self) -> u64 {
        self.digester.len()
    }

    /// An I/O error of this writer's ingest file, for callers wrapping a failed `write`.
    #[must_use]
    pub fn io_error(&self, source: io::Error) -> ContentError {
        ContentError::Io {
            op: "write",
            path: self.path.clone(),
            source,
        }
    }

    /// Verifies and names the blob. The digest of the bytes written must equal `expected` and
    /// their count `size` (each when given); otherwise the ingest file is removed and nothing is
    /// named. When the blob already exists (another writer won), this one is discarded and the
    /// call succeeds: the content is the same by construction.
    ///
    /// # Errors
    /// [`ContentError::DigestMismatch`], [`ContentError::SizeMismatch`], or an I/O error.
    pub fn commit(
        mut self,
        expected: Option<&Digest>,
        size: Option<u64>,
    ) -> Result<Digest, ContentError> {
        let Some(mut file) = self.file.take() else {
            return Err(self.io_error(io::Error::from(io::ErrorKind::BrokenPipe)));
        };
        let digester = std::mem::take(&mut self.digester);
        let actual_size = digester.len();
        let actual = digester.finish();
        if let Some(expected) = expected
            && *expected != actual
        {
            return Err(ContentError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        if let Some(size) = size
            && size != actual_size
        {
            return Err(ContentError::SizeMismatch {
                digest: actual,
                expected: size,
                actual: actual_size,
            });
        }
        file.flush().map_err(|e| self.io_error(e))?;
        file.sync_all().map_err(|e| self.io_error(e))?;
        drop(file);
        let target = self.store.blob_path(&actual);
        if target.exists() {
            tracing::debug!(digest = %actual, "blob already present; discarding duplicate");
            return Ok(actual);
        }
        // rename(2) is atomic: readers see no blob or the whole blob. A concurrent writer of the
        // same digest may rename over us; the bytes are identical, so either wins.
        fs::rename(&self.path, &target).map_err(|source| ContentError::Io {
            op: "rename",
            path: target.clone(),
            source,
        })?;
        if let Ok(dir) = File::open(self.store.blob_dir()) {
            // Make the new name durable; a failure here only risks losing a re-fetchable blob.
            let _ = dir.sync_all();
        }
        tracing::debug!(digest = %actual, size = actual_size, "blob committed");
        Ok(actual)
    }
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(limit) = self.limit
            && self.digester.len() + buf.len() as u64 > limit
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                ContentError::TooLarge { limit },
            ));
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::BrokenPipe))?;
        let n = file.write(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // After a successful commit the path was renamed away (or is a discarded duplicate);
        // either way nothing under this ingest name should remain.
        let _ = fs::remove_file(&self.path);
    }
}
