//! Image archives, as `docker save` writes and `docker load` reads them.
//!
//! [`save`](crate::ImageStore::save) writes one tarball that is both formats, as Docker 25+
//! does: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/<hex>`) whose blobs are
//! also what the docker-archive `manifest.json` (and the legacy `repositories`) point at. Blobs
//! are the stored ones, unchanged, so a save → load round trip keeps every digest.
//!
//! [`load`](crate::ImageStore::load) reads an OCI layout archive, a new-style docker-archive
//! (Docker 25+, blobs under `blobs/sha256/`) or an old-style one (`<id>/layer.tar`,
//! `<hex>.json`). Every file is streamed into the content store as it is read: a file named by
//! its digest (`blobs/sha256/<hex>`, `<hex>.json`) must hash to that name or the load fails.
//! Then each image is resolved (config parsed, fields type-checked) and unpacked, which checks
//! every layer's DiffID and applies the safe-extraction rules of [`crate::unpack`]. On failure
//! the blobs already written stay unreferenced for the caller's garbage collection, under the
//! writer's [`crate::GcLock`].

mod load;
mod save;

pub use load::LoadedImage;
pub use save::SaveImage;

use crate::content::ContentError;
use crate::manifest::ManifestError;
use crate::store::ImageError;
use std::io;

/// Errors of save and load.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The archive stream could not be read (truncated or not a tar).
    #[error("read archive")]
    Read {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An archive member could not be stored (for a blob named by its digest: the content
    /// does not match the name).
    #[error("archive member {path}")]
    Member {
        /// The member's path in the archive.
        path: String,
        /// The cause.
        #[source]
        source: ContentError,
    },
    /// A member is too large to be the JSON document it should be.
    #[error("archive member {path} is over the {limit}-byte limit")]
    TooLarge {
        /// The member's path.
        path: String,
        /// The limit.
        limit: u64,
    },
    /// A JSON document of the archive does not parse.
    #[error("archive member {path}")]
    Json {
        /// The member's path.
        path: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// An index or manifest of the archive is invalid.
    #[error("archive member {path}")]
    Document {
        /// The member's path.
        path: String,
        /// The cause.
        #[source]
        source: ManifestError,
    },
    /// A document names a file the archive does not hold.
    #[error("{from} names {path}, which the archive does not hold")]
    Missing {
        /// The document naming it.
        from: String,
        /// The missing path.
        path: String,
    },
    /// Neither `index.json` nor `manifest.json`.
    #[error("archive has neither index.json nor manifest.json: not an image archive")]
    NotAnImageArchive,
    /// A loaded image does not resolve or unpack.
    #[error("image {name}")]
    Image {
        /// The image's name or digest.
        name: String,
        /// The cause.
        #[source]
        source: Box<ImageError>,
    },
    /// Writing the archive failed.
    #[error("write archive")]
    Write {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Serializing an archive document failed.
    #[error("serialize {path}")]
    Serialize {
        /// The document.
        path: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A stored blob could not be read while saving.
    #[error("save blob")]
    Blob {
        /// The cause.
        #[source]
        source: ContentError,
    },
}

/// A read error of the archive stream. The tar reader quotes raw header bytes in some of its
/// messages; only the text before the first control character is kept (at most 160
/// characters), so the error stays one printable line.
fn read_error(source: io::Error) -> ArchiveError {
    let msg = source.to_string();
    let clean: String = msg
        .chars()
        .take_while(|c| !c.is_control())
        .take(160)
        .collect();
    if clean.len() == msg.len() {
        return ArchiveError::Read { source };
    }
    ArchiveError::Read {
        source: io::Error::new(source.kind(), clean.trim_end().to_owned()),
    }
}

/// `docker.io/library/busybox:latest` → `busybox:latest`, `docker.io/x/y:1` → `x/y:1`; other
/// references unchanged.
#[must_use]
pub fn familiar_name(name: &str) -> String {
    let short = name.strip_prefix("docker.io/").unwrap_or(name);
    short.strip_prefix("library/").unwrap_or(short).to_owned()
}

/// The fully qualified form of a name: `busybox:latest` → `docker.io/library/busybox:latest`.
#[must_use]
pub fn qualified_name(name: &str) -> String {
    match name.split_once('/') {
        Some((domain, _)) if domain.contains(['.', ':']) || domain == "localhost" => {
            name.to_owned()
        }
        Some(_) => format!("docker.io/{name}"),
        None => format!("docker.io/library/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_between_familiar_and_qualified() {
        for (short, long) in [
            ("busybox:latest", "docker.io/library/busybox:latest"),
            ("me/app:1", "docker.io/me/app:1"),
            ("localhost:5000/x:y", "localhost:5000/x:y"),
            ("quay.io/a/b:c", "quay.io/a/b:c"),
        ] {
            assert_eq!(qualified_name(short), long);
            assert_eq!(familiar_name(long), short);
        }
    }
}
