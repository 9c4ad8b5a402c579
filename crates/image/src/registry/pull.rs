//! Pull: reference → manifest (HEAD, then GET only when not already stored) → the platform's
//! manifest from an index → config → layers, downloaded in parallel.
//!
//! Each layer's response body is written into a content-store [`Writer`] (hashed
//! on the way) and, through the same bytes, decompressed and extracted into a staging
//! directory while it downloads. When the stream ends, the blob must match its descriptor's
//! digest and size (then it is named), and the unpacked tree its config's DiffID (then it is
//! renamed into `layers/`): nothing becomes visible unverified. Blobs and layers already
//! present are skipped, so a pull that failed half-way resumes from what it verified.

use super::RegistryError;
use super::client::{Body, Session, wait_before_retry};
use super::reference::Reference;
use crate::chunks::{CHUNK, ChunkSender, chunk_channel, fill};
use crate::content::{ContentError, Writer};
use crate::digest::{ChainId, DiffId, Digest};
use crate::manifest::{
    MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, Manifest, Platform, descriptor_digest, parse_manifest,
    select_platform,
};
use crate::media;
use crate::store::ImageStore;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// What a pull wants.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The platform to pick from an index.
    pub platform: Platform,
}

/// A layer's state, as Docker's progress shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerState {
    /// Blob and unpacked layer were already there.
    Exists,
    /// Queued behind other downloads.
    Waiting,
    /// Bytes arriving (and being unpacked).
    Downloading,
    /// Checking the blob's digest.
    Verifying,
    /// Unpacking a blob that was already stored.
    Extracting,
    /// Verified and unpacked.
    Complete,
    /// A transfer failed; trying again after this many seconds.
    Retrying {
        /// The wait.
        seconds: u64,
    },
}

/// One progress report of a layer.
#[derive(Debug, Clone)]
pub struct LayerProgress {
    /// The layer blob.
    pub layer: Digest,
    /// Its state.
    pub state: LayerState,
    /// Bytes received.
    pub current: u64,
    /// The blob's size.
    pub total: u64,
}

/// Progress callback of a pull (called from the download threads).
pub type PullProgress<'a> = &'a (dyn Fn(&LayerProgress) + Sync);

/// What [`pull`] stored.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The digest the reference resolved to (an index or a manifest).
    pub top: Digest,
    /// The platform's image manifest.
    pub manifest: Digest,
    /// Whether anything was fetched (`false`: everything was already stored).
    pub downloaded: bool,
}

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// Pulls `reference` from the first of its endpoints that has it: a mirror that cannot be
/// reached, does not know the image or fails on the network is skipped for the next endpoint
/// (the registry itself last), as dockerd does. See [`pull`].
///
/// # Errors
/// As [`pull`], from the last endpoint tried; [`RegistryError::Blocked`] when the registry is
/// blocked and has no mirror.
pub fn pull_from_endpoints(
    store: &ImageStore,
    client: &super::Client,
    reference: &Reference,
    credentials: Option<super::Credentials>,
    opts: &PullOptions,
    progress: PullProgress<'_>,
) -> Result<Pulled, RegistryError> {
    let endpoints = client.endpoints(reference, "pull");
    let mut last = RegistryError::Blocked {
        registry: reference.registry.clone(),
    };
    for (i, endpoint) in endpoints.iter().enumerate() {
        let fallback = endpoint.mirror && i + 1 < endpoints.len();
        let result = client
            .open(reference, endpoint, credentials.clone(), "pull", &[])
            .and_then(|session| pull(store, &session, reference, opts, progress));
        match result {
            Err(e)
                if fallback
                    && (e.is_transient()
                        || matches!(
                            e,
                            RegistryError::ManifestUnknown { .. }
                                | RegistryError::Unauthorized { .. }
                                | RegistryError::Denied { .. }
                                | RegistryError::Status { .. }
                        )) =>
            {
                tracing::info!(mirror = %endpoint.base, error = %e, "pull from mirror failed; trying the next endpoint");
                last = e;
            }
            other => return other,
        }
    }
    Err(last)
}

/// Pulls `reference` through `session` into `store`: every blob verified, every layer
/// unpacked. The caller records the image (and holds the store's writer lock).
///
/// # Errors
/// Unknown manifest, auth or transport failures (after retries), a blob that does not match
/// its digest or size, an unusable manifest, a hostile layer.
pub fn pull(
    store: &ImageStore,
    session: &Session,
    reference: &Reference,
    opts: &PullOptions,
    progress: PullProgress<'_>,
) -> Result<Pulled, RegistryError> {
    let mut downloaded = false;
    let (top, bytes, media_type) = fetch_manifest(
        store,
        session,
        reference,
        &reference.object(),
        reference.digest.as_ref(),
        None,
        &mut downloaded,
    )?;
    let manifest_err = |digest: &Digest| {
        let what = digest.to_string();
        move |source| RegistryError::Manifest { what, source }
    };
    let mut manifest_digest = top.clone();
    if let Manifest::Index(index) =
        parse_manifest(&bytes, media_type.as_deref()).map_err(manifest_err(&top))?
    {
        let d = select_platform(&index, &opts.platform).map_err(manifest_err(&top))?;
        let inner = descriptor_digest(d).map_err(manifest_err(&top))?;
        let (_, inner_bytes, _) = fetch_manifest(
            store,
            session,
            reference,
            &inner.to_string(),
            Some(&inner),
            Some(d.size()),
            &mut downloaded,
        )?;
        parse_manifest(&inner_bytes, Some(d.media_type().as_ref()))
            .map_err(manifest_err(&inner))?;
        manifest_digest = inner;
    }
    // The config: needed before the layers (their DiffIDs).
    let manifest = match store
        .content()
        .read(&manifest_digest, MAX_MANIFEST_SIZE)
        .map_err(|source| RegistryError::Content {
            what: format!("manifest {manifest_digest}"),
            source,
        })
        .and_then(|b| parse_manifest(&b, None).map_err(manifest_err(&manifest_digest)))?
    {
        Manifest::Image(m) => m,
        Manifest::Index(_) => {
            return Err(RegistryError::NestedIndex {
                digest: manifest_digest,
            });
        }
    };
    let config = descriptor_digest(manifest.config()).map_err(manifest_err(&manifest_digest))?;
    if !store.content().contains(&config) {
        let size = manifest.config().size();
        if size > MAX_CONFIG_SIZE {
            return Err(RegistryError::TooLarge {
                what: format!("image config {config}"),
                size,
                limit: MAX_CONFIG_SIZE,
            });
        }
        fetch_blob(store, session, &config, size, None, progress)?;
        downloaded = true;
    }
    let image = store
        .resolve(&manifest_digest, &opts.platform)
        .map_err(|source| RegistryError::Image { source })?;
    let jobs = layer_jobs(store, &image, progress)?;
    downloaded |= jobs
        .iter()
        .any(|j| matches!(j.kind, JobKind::BlobOnly | JobKind::Full));
    run_jobs(store, session, &jobs, progress)?;
    Ok(Pulled {
        top,
        manifest: manifest_digest,
        downloaded,
    })
}

/// The repository's tags (`GET /v2/<name>/tags/list`, following `Link: <…>; rel="next"`
/// pages), sorted.
///
/// # Errors
/// The registry refuses or the answer is not a tag list.
pub fn tags(session: &Session) -> Result<Vec<String>, RegistryError> {
    #[derive(serde::Deserialize)]
    struct TagList {
        #[serde(default)]
        tags: Option<Vec<String>>,
    }
    let mut url = session.url("tags/list");
    let mut out = Vec::new();
    // A registry that pages forever is cut off: 1000 pages is far more than any real repository.
    for _ in 0..1000 {
        let resp = session.send("GET", &url, &[], Body::Empty, &|| {
            format!("list tags of {}", session.repository())
        })?;
        let next = resp.header("link").and_then(next_link);
        let mut body = Vec::new();
        resp.into_reader()
            .take(MAX_MANIFEST_SIZE + 1)
            .read_to_end(&mut body)
            .map_err(|source| RegistryError::Read {
                what: format!("tags of {}", session.repository()),
                source,
            })?;
        let list: TagList = serde_json::from_slice(&body).map_err(|_| RegistryError::Status {
            what: format!("list tags of {}", session.repository()),
            status: 200,
            message: "the answer is not a tag list".into(),
        })?;
        out.extend(list.tags.unwrap_or_default());
        match next {
            Some(n) => url = session.location(&n)?.to_string(),
            None => break,
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The target of `Link: </v2/x/tags/list?n=100&last=b>; rel="next"`.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

/// Fetches a manifest or index (≤ 4 MiB) by tag or digest, storing it under its digest;
/// returns the digest, bytes and the media type the registry gave.
fn fetch_manifest(
    store: &ImageStore,
    session: &Session,
    reference: &Reference,
    object: &str,
    expected: Option<&Digest>,
    declared_size: Option<u64>,
    downloaded: &mut bool,
) -> Result<(Digest, Vec<u8>, Option<String>), RegistryError> {
    let too_large = |size: u64| RegistryError::TooLarge {
        what: format!("manifest {object}"),
        size,
        limit: MAX_MANIFEST_SIZE,
    };
    if let Some(size) = declared_size
        && size > MAX_MANIFEST_SIZE
    {
        return Err(too_large(size));
    }
    let url = session.url(&format!("manifests/{object}"));
    let headers = [("Accept", MANIFEST_ACCEPT)];
    let not_found = |e: RegistryError| match e {
        RegistryError::Status { status: 404, .. } => RegistryError::ManifestUnknown {
            reference: format!("{}:{object}", reference.name()).replace(":sha256:", "@sha256:"),
        },
        e => e,
    };
    let mut known = expected.cloned();
    if known.is_none() {
        // HEAD first: a tag whose manifest is already stored costs no GET.
        let head = session.send("HEAD", &url, &headers, Body::Empty, &|| {
            format!("HEAD manifest {object}")
        });
        match head {
            Ok(head) => {
                known = head
                    .header("docker-content-digest")
                    .and_then(|d| Digest::parse(d).ok());
            }
            // A registry without HEAD on manifests (405 and the like): ask with GET.
            Err(RegistryError::Status { status, .. }) if status != 404 && status < 500 => {}
            Err(e) => return Err(not_found(e)),
        }
    }
    if let Some(d) = &known
        && let Ok(bytes) = store.content().read(d, MAX_MANIFEST_SIZE)
    {
        return Ok((d.clone(), bytes, None));
    }
    let resp = session
        .send("GET", &url, &headers, Body::Empty, &|| {
            format!("GET manifest {object}")
        })
        .map_err(not_found)?;
    if let Some(len) = resp
        .header("content-length")
        .and_then(|l| l.parse::<u64>().ok())
        && len > MAX_MANIFEST_SIZE
    {
        return Err(too_large(len));
    }
    let media_type = resp
        .header("content-type")
        .map(|c| c.split(';').next().unwrap_or(c).trim().to_owned())
        .filter(|c| media::manifest_kind(c).is_some());
    let mut bytes = Vec::new();
    resp.into_reader()
        .take(MAX_MANIFEST_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| RegistryError::Read {
            what: format!("manifest {object}"),
            source,
        })?;
    if bytes.len() as u64 > MAX_MANIFEST_SIZE {
        return Err(too_large(bytes.len() as u64));
    }
    let digest = store
        .content()
        .write_blob(&bytes, expected)
        .map_err(|source| RegistryError::Content {
            what: format!("manifest {object}"),
            source,
        })?;
    *downloaded = true;
    Ok((digest, bytes, media_type))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobKind {
    /// Blob and layer present.
    Skip,
    /// Blob present, layer not: unpack from the store.
    UnpackLocal,
    /// Layer present, blob not: download and verify only.
    BlobOnly,
    /// Download, verify and unpack.
    Full,
}

#[derive(Debug)]
struct Job {
    kind: JobKind,
    blob: Digest,
    size: u64,
    media_type: String,
    parent: Option<ChainId>,
    diff_id: DiffId,
}

fn layer_jobs(
    store: &ImageStore,
    image: &crate::Image,
    progress: PullProgress<'_>,
) -> Result<Vec<Job>, RegistryError> {
    let mut jobs = Vec::new();
    let mut parent: Option<ChainId> = None;
    for ((layer, diff_id), chain) in image
        .manifest
        .layers()
        .iter()
        .zip(&image.diff_ids)
        .zip(&image.chain_ids)
    {
        let blob = descriptor_digest(layer).map_err(|source| RegistryError::Manifest {
            what: image.manifest_digest.to_string(),
            source,
        })?;
        let media_type = layer.media_type().to_string();
        if media::Compression::of_media_type(&media_type).is_none() {
            return Err(RegistryError::Unpack {
                digest: blob,
                source: crate::UnpackError::MediaType { media_type },
            });
        }
        let kind = match (
            store.content().contains(&blob),
            store.layers().contains(chain),
        ) {
            (true, true) => JobKind::Skip,
            (true, false) => JobKind::UnpackLocal,
            (false, true) => JobKind::BlobOnly,
            (false, false) => JobKind::Full,
        };
        let state = if kind == JobKind::Skip {
            LayerState::Exists
        } else {
            LayerState::Waiting
        };
        progress(&LayerProgress {
            layer: blob.clone(),
            state,
            current: 0,
            total: layer.size(),
        });
        jobs.push(Job {
            kind,
            blob,
            size: layer.size(),
            media_type,
            parent: parent.clone(),
            diff_id: diff_id.clone(),
        });
        parent = Some(chain.clone());
    }
    Ok(jobs)
}

fn run_jobs(
    store: &ImageStore,
    session: &Session,
    jobs: &[Job],
    progress: PullProgress<'_>,
) -> Result<(), RegistryError> {
    super::client::in_parallel(jobs.len(), session.config().max_concurrent_downloads, |i| {
        run_job(store, session, &jobs[i], progress)
    })
}

fn report(progress: PullProgress<'_>, job: &Job, state: LayerState, current: u64) {
    progress(&LayerProgress {
        layer: job.blob.clone(),
        state,
        current,
        total: job.size,
    });
}

fn run_job(
    store: &ImageStore,
    session: &Session,
    job: &Job,
    progress: PullProgress<'_>,
) -> Result<(), RegistryError> {
    match job.kind {
        JobKind::Skip => Ok(()),
        JobKind::UnpackLocal => {
            report(progress, job, LayerState::Extracting, job.size);
            let blob =
                store
                    .content()
                    .open_blob(&job.blob)
                    .map_err(|source| RegistryError::Content {
                        what: format!("layer {}", job.blob),
                        source,
                    })?;
            store
                .layers()
                .unpack(blob, &job.media_type, job.parent.as_ref(), &job.diff_id)
                .map_err(|source| RegistryError::Unpack {
                    digest: job.blob.clone(),
                    source,
                })?;
            report(progress, job, LayerState::Complete, job.size);
            Ok(())
        }
        JobKind::BlobOnly | JobKind::Full => {
            let unpack = (job.kind == JobKind::Full).then_some(job);
            fetch_blob(store, session, &job.blob, job.size, unpack, progress)?;
            report(progress, job, LayerState::Complete, job.size);
            Ok(())
        }
    }
}

/// Downloads blob `digest` of `size` bytes into the content store (and, for a layer job,
/// unpacks it on the way), retrying transfers that break off.
fn fetch_blob(
    store: &ImageStore,
    session: &Session,
    digest: &Digest,
    size: u64,
    unpack: Option<&Job>,
    progress: PullProgress<'_>,
) -> Result<(), RegistryError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match fetch_blob_once(store, session, digest, size, unpack, progress) {
            Err(e) if e.is_transient() && attempt < session.config().max_attempts => {
                tracing::info!(blob = %digest, error = %e, attempt, "blob download failed; retrying");
                if let Some(job) = unpack {
                    let seconds = super::client::backoff_secs(attempt);
                    report(progress, job, LayerState::Retrying { seconds }, 0);
                }
                wait_before_retry(attempt);
            }
            other => return other,
        }
    }
}

fn fetch_blob_once(
    store: &ImageStore,
    session: &Session,
    digest: &Digest,
    size: u64,
    unpack: Option<&Job>,
    progress: PullProgress<'_>,
) -> Result<(), RegistryError> {
    let url = session.url(&format!("blobs/{digest}"));
    let resp = session.send("GET", &url, &[], Body::Empty, &|| {
        format!("GET blob {digest}")
    })?;
    let writer = store
        .content()
        .writer(Some(size))
        .map_err(|source| RegistryError::Content {
            what: format!("blob {digest}"),
            source,
        })?;
    let download = Download {
        body: resp.into_reader(),
        writer,
        digest,
        size,
        job: unpack,
        progress,
    };
    let abort = AtomicBool::new(false);
    let Some(job) = unpack else {
        return download.run(None, &abort).map(drop);
    };
    report(progress, job, LayerState::Downloading, 0);
    // The download thread reads the socket, hashes and writes the blob and hands each buffer
    // over; this one decompresses (and the unpack a third thread extracts) as it arrives.
    let (tx, rx) = chunk_channel(DOWNLOAD_DEPTH);
    std::thread::scope(|s| {
        let mut handle = Some(s.spawn(|| download.run(Some(tx), &abort)));
        let mut verdict: Option<Result<bool, RegistryError>> = None;
        let unpacked = store.layers().unpack_verified(
            rx,
            &job.media_type,
            job.parent.as_ref(),
            &job.diff_id,
            || {
                // The stream was read to its end: the download's verdict (digest, size) decides.
                let v = handle.take().map_or(Ok(true), join_download);
                let ok = matches!(v, Ok(true));
                verdict = Some(v);
                if ok {
                    Ok(())
                } else {
                    Err(io::Error::other("layer blob rejected"))
                }
            },
        );
        if unpacked.is_err() {
            abort.store(true, Ordering::Relaxed);
        }
        let verdict = match verdict {
            Some(v) => v,
            // Unpack stopped early (a hostile entry, or the layer was already there).
            None => handle.take().map_or(Ok(true), join_download),
        };
        match (verdict, unpacked) {
            // The transfer's own failure explains a broken stream best.
            (Err(e), _) => Err(e),
            (Ok(_), Err(source)) => Err(RegistryError::Unpack {
                digest: digest.clone(),
                source,
            }),
            (Ok(_), Ok(_)) => Ok(()),
        }
    })
}

fn join_download(
    h: std::thread::ScopedJoinHandle<'_, Result<bool, RegistryError>>,
) -> Result<bool, RegistryError> {
    h.join().unwrap_or_else(|_| {
        Err(RegistryError::Read {
            what: "download thread".into(),
            source: io::Error::other("panicked"),
        })
    })
}

/// A blob download: the response body into a content-store writer (hashed on the way), each
/// chunk also handed to the unpacker when there is one.
struct Download<'a> {
    body: Box<dyn Read + Send + Sync + 'static>,
    writer: Writer,
    digest: &'a Digest,
    size: u64,
    job: Option<&'a Job>,
    progress: PullProgress<'a>,
}

/// Downloaded chunks in flight to the decompressor.
const DOWNLOAD_DEPTH: usize = 8;
const REPORT_EVERY: u64 = 512 << 10;

impl Download<'_> {
    /// Reads the whole body and names the blob if its digest and size match. `Ok(false)`:
    /// stopped because `abort` was set (the unpacker failed).
    fn run(
        mut self,
        mut tx: Option<ChunkSender>,
        abort: &AtomicBool,
    ) -> Result<bool, RegistryError> {
        // Without an unpacker (or once it is gone) one buffer of our own is reused.
        let mut own: Option<Box<[u8]>> = None;
        let (mut done, mut reported) = (0u64, 0u64);
        loop {
            if abort.load(Ordering::Relaxed) {
                return Ok(false);
            }
            let mut chunk = tx.as_ref().map(ChunkSender::chunk);
            let buf = match chunk.as_mut() {
                Some(c) => c.space(),
                None => own.get_or_insert_with(|| vec![0; CHUNK].into_boxed_slice()),
            };
            let n = fill(&mut self.body, buf).map_err(|source| RegistryError::Read {
                what: format!("download blob {}", self.digest),
                source,
            })?;
            if n == 0 {
                break;
            }
            if let Err(e) = self.writer.write_all(&buf[..n]) {
                let source = if e.kind() == io::ErrorKind::InvalidData {
                    ContentError::TooLarge { limit: self.size }
                } else {
                    self.writer.io_error(e)
                };
                return Err(RegistryError::Content {
                    what: format!("blob {}", self.digest),
                    source,
                });
            }
            if let (Some(t), Some(mut c)) = (tx.as_ref(), chunk) {
                c.set_len(n);
                // A gone unpacker (the layer was already there) still leaves the blob to name.
                if t.send(c).is_err() {
                    tx = None;
                }
            }
            done += n as u64;
            if let Some(job) = self.job
                && done - reported >= REPORT_EVERY
            {
                reported = done;
                report(self.progress, job, LayerState::Downloading, done);
            }
        }
        drop(tx);
        if let Some(job) = self.job {
            report(self.progress, job, LayerState::Verifying, done);
        }
        self.writer
            .commit(Some(self.digest), Some(self.size))
            .map_err(|source| RegistryError::Content {
                what: format!("blob {}", self.digest),
                source,
            })?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn next_links_are_found_among_others() {
        assert_eq!(
            next_link(r#"</v2/x/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/x/tags/list?n=2&last=b")
        );
        assert_eq!(
            next_link(r#"<a>; rel="prev", <b>; rel="next""#).as_deref(),
            Some("b")
        );
        assert_eq!(next_link(r#"<a>; rel="prev""#), None);
    }
}
