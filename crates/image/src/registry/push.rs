//! Push: the stored blobs of an image (config and layers, unchanged, so digests stay equal),
//! then its manifest under a tag. A blob the registry has (HEAD) is skipped; one another
//! repository of the same registry holds is mounted from there; others are uploaded in one
//! `PUT`, or in `PATCH` chunks when large. An index is pushed after those of its manifests
//! that are stored here.

use super::RegistryError;
use super::client::{Body, Session};
use crate::content::ContentError;
use crate::digest::Digest;
use crate::manifest::{MAX_MANIFEST_SIZE, Manifest, descriptor_digest, parse_manifest};
use crate::media;
use crate::store::ImageStore;

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// The tag to put the manifest under (`None`: by digest only).
    pub tag: Option<String>,
    /// Repositories of the same registry to try mounting blobs from.
    pub mount_from: Vec<String>,
    /// Blobs larger than this go up in `PATCH` chunks of this size.
    pub chunk_size: u64,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            tag: None,
            mount_from: Vec::new(),
            chunk_size: 32 << 20,
        }
    }
}

/// A blob's state, as Docker's push progress shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushState {
    /// Queued.
    Waiting,
    /// Uploading.
    Pushing,
    /// Uploaded.
    Pushed,
    /// The registry had it.
    Exists,
    /// Mounted from another repository.
    Mounted {
        /// The repository.
        from: String,
    },
}

/// One progress report of a pushed blob.
#[derive(Debug, Clone)]
pub struct PushProgress {
    /// The blob.
    pub blob: Digest,
    /// Its state.
    pub state: PushState,
    /// Bytes sent.
    pub current: u64,
    /// Its size.
    pub total: u64,
}

/// What [`push`] did.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The manifest's digest (as stored here and in the registry).
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// Pushes the stored image `manifest` (a manifest or index digest) to `session`'s repository.
///
/// # Errors
/// A blob missing here, auth or transport failures, or the registry refusing a blob or the
/// manifest.
pub fn push(
    store: &ImageStore,
    session: &Session,
    manifest: &Digest,
    opts: &PushOptions,
    progress: &(dyn Fn(&PushProgress) + Sync),
) -> Result<Pushed, RegistryError> {
    let bytes = read_manifest(store, manifest)?;
    let parsed = parse_manifest(&bytes, None).map_err(|source| RegistryError::Manifest {
        what: manifest.to_string(),
        source,
    })?;
    let media_type = match &parsed {
        Manifest::Index(index) => {
            for d in index.manifests() {
                let child = descriptor_digest(d).map_err(|source| RegistryError::Manifest {
                    what: manifest.to_string(),
                    source,
                })?;
                if store.content().contains(&child) {
                    let child_opts = PushOptions {
                        tag: None,
                        ..opts.clone()
                    };
                    push(store, session, &child, &child_opts, progress)?;
                }
            }
            index
                .media_type()
                .as_ref()
                .map_or(media::OCI_INDEX.to_owned(), ToString::to_string)
        }
        Manifest::Image(m) => {
            let mut blobs = Vec::new();
            for d in m.layers().iter().chain(std::iter::once(m.config())) {
                let digest = descriptor_digest(d).map_err(|source| RegistryError::Manifest {
                    what: manifest.to_string(),
                    source,
                })?;
                if !blobs.iter().any(|(b, _)| *b == digest) {
                    blobs.push((digest, d.size()));
                }
            }
            push_blobs(store, session, &blobs, opts, progress)?;
            m.media_type()
                .as_ref()
                .map_or(media::OCI_MANIFEST.to_owned(), ToString::to_string)
        }
    };
    let object = opts.tag.clone().unwrap_or_else(|| manifest.to_string());
    let url = session.url(&format!("manifests/{object}"));
    session.send(
        "PUT",
        &url,
        &[("Content-Type", media_type.as_str())],
        Body::Bytes(&bytes),
        &|| format!("PUT manifest {object}"),
    )?;
    Ok(Pushed {
        digest: manifest.clone(),
        size: bytes.len() as u64,
    })
}

fn read_manifest(store: &ImageStore, digest: &Digest) -> Result<Vec<u8>, RegistryError> {
    store
        .content()
        .read(digest, MAX_MANIFEST_SIZE)
        .map_err(|source| RegistryError::Content {
            what: format!("manifest {digest}"),
            source,
        })
}

fn push_blobs(
    store: &ImageStore,
    session: &Session,
    blobs: &[(Digest, u64)],
    opts: &PushOptions,
    progress: &(dyn Fn(&PushProgress) + Sync),
) -> Result<(), RegistryError> {
    for (blob, size) in blobs {
        progress(&PushProgress {
            blob: blob.clone(),
            state: PushState::Waiting,
            current: 0,
            total: *size,
        });
    }
    super::client::in_parallel(blobs.len(), session.config().max_concurrent_uploads, |i| {
        let (blob, size) = &blobs[i];
        let state = push_blob(store, session, blob, *size, opts, progress)?;
        progress(&PushProgress {
            blob: blob.clone(),
            state,
            current: *size,
            total: *size,
        });
        Ok(())
    })
}

fn push_blob(
    store: &ImageStore,
    session: &Session,
    blob: &Digest,
    size: u64,
    opts: &PushOptions,
    progress: &(dyn Fn(&PushProgress) + Sync),
) -> Result<PushState, RegistryError> {
    let info = store
        .content()
        .info(blob)
        .map_err(|source| RegistryError::Content {
            what: format!("blob {blob}"),
            source,
        })?;
    if info.size != size {
        return Err(RegistryError::Content {
            what: format!("blob {blob}"),
            source: ContentError::SizeMismatch {
                digest: blob.clone(),
                expected: size,
                actual: info.size,
            },
        });
    }
    let head_url = session.url(&format!("blobs/{blob}"));
    match session.send("HEAD", &head_url, &[], Body::Empty, &|| {
        format!("HEAD blob {blob}")
    }) {
        Ok(_) => return Ok(PushState::Exists),
        Err(RegistryError::Status { status: 404, .. }) => {}
        Err(e) => return Err(e),
    }
    let uploads = session.url("blobs/uploads/");
    let mut location = None;
    for from in opts
        .mount_from
        .iter()
        .filter(|r| r.as_str() != session.repository())
    {
        let url = format!("{uploads}?mount={blob}&from={from}");
        let resp = session.send("POST", &url, &[], Body::Empty, &|| {
            format!("mount blob {blob} from {from}")
        })?;
        if resp.status() == 201 {
            return Ok(PushState::Mounted { from: from.clone() });
        }
        location = resp.header("location").map(str::to_owned);
        if location.is_some() {
            break;
        }
    }
    let location = match location {
        Some(l) => l,
        None => {
            let resp = session.send("POST", &uploads, &[], Body::Empty, &|| {
                format!("start upload of blob {blob}")
            })?;
            resp.header("location").map(str::to_owned).ok_or_else(|| {
                RegistryError::BadLocation {
                    location: String::new(),
                }
            })?
        }
    };
    progress(&PushProgress {
        blob: blob.clone(),
        state: PushState::Pushing,
        current: 0,
        total: size,
    });
    let path = store.content().blob_path(blob);
    let mut url = session.location(&location)?;
    let what = || format!("upload blob {blob}");
    let mut sent = 0;
    if size > opts.chunk_size {
        while sent < size {
            let len = opts.chunk_size.min(size - sent);
            let range = format!("{sent}-{}", sent + len - 1);
            let resp = session.send(
                "PATCH",
                url.as_str(),
                &[
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Range", &range),
                ],
                Body::File {
                    path: &path,
                    offset: sent,
                    len,
                },
                &what,
            )?;
            sent += len;
            progress(&PushProgress {
                blob: blob.clone(),
                state: PushState::Pushing,
                current: sent,
                total: size,
            });
            if let Some(l) = resp.header("location") {
                url = session.location(l)?;
            }
        }
    }
    url.query_pairs_mut()
        .append_pair("digest", &blob.to_string());
    let body = if sent < size {
        Body::File {
            path: &path,
            offset: 0,
            len: size,
        }
    } else {
        Body::Bytes(&[])
    };
    session.send(
        "PUT",
        url.as_str(),
        &[("Content-Type", "application/octet-stream")],
        body,
        &what,
    )?;
    Ok(PushState::Pushed)
}
