//! The [`ImageStore`] facade: one root holding the content store, unpacked layers and container
//! snapshots; resolves manifest → config → layers and makes sure the layers are unpacked.

use crate::content::{ContentError, ContentStore};
use crate::digest::{ChainId, DiffId, Digest};
use crate::import::{ImportError, ImportOptions, Imported, import_rootfs};
use crate::manifest::{
    MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, Manifest, ManifestError, Platform, descriptor_digest,
    diff_ids, parse_config, parse_manifest, select_platform,
};
use crate::snapshot::{Mount, SnapshotError, Snapshots};
use crate::unpack::{LayerStore, UnpackError};
use oci_spec::image::{ImageConfiguration, ImageManifest};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Errors of the image facade.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A blob could not be read or written.
    #[error("image {digest}")]
    Content {
        /// The blob.
        digest: Digest,
        /// The cause.
        #[source]
        source: ContentError,
    },
    /// Opening the store failed.
    #[error("open image store {root}")]
    Open {
        /// The root.
        root: PathBuf,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A manifest, index or config is invalid.
    #[error("image {digest}")]
    Manifest {
        /// The document's digest.
        digest: Digest,
        /// The cause.
        #[source]
        source: ManifestError,
    },
    /// An index points at another index (berth resolves one level).
    #[error("image {digest}: nested index")]
    NestedIndex {
        /// The inner index.
        digest: Digest,
    },
    /// A layer failed to unpack.
    #[error("unpack layer {digest}")]
    Unpack {
        /// The layer blob.
        digest: Digest,
        /// The cause.
        #[source]
        source: UnpackError,
    },
    /// A snapshot could not be prepared or removed.
    #[error("snapshot for container {id}")]
    Snapshot {
        /// The container.
        id: String,
        /// The cause.
        #[source]
        source: SnapshotError,
    },
    /// Import failed.
    #[error("import image")]
    Import {
        /// The cause.
        #[source]
        source: ImportError,
    },
}

/// A resolved single-platform image.
#[derive(Debug, Clone)]
pub struct Image {
    /// The digest of the platform's image manifest.
    pub manifest_digest: Digest,
    /// The manifest.
    pub manifest: ImageManifest,
    /// The config's digest (the image id Docker shows).
    pub config_digest: Digest,
    /// The config.
    pub config: ImageConfiguration,
    /// Docker's `config.Healthcheck` (`Test`, `Interval`, ... as Docker writes them), which the
    /// OCI image config has no field for.
    pub healthcheck: Option<serde_json::Value>,
    /// `rootfs.diff_ids`, bottom first.
    pub diff_ids: Vec<DiffId>,
    /// The chain id of each layer stack, bottom first; the last names the whole image.
    pub chain_ids: Vec<ChainId>,
}

/// Content, layers and snapshots under one root (`/var/lib/berth`).
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
    content: ContentStore,
    layers: LayerStore,
    snapshots: Snapshots,
}

impl ImageStore {
    /// Opens the stores under `root`: `blobs/`, `ingest/`, `layers/`, `containers/`.
    ///
    /// # Errors
    /// A directory cannot be created.
    pub fn open(root: &Path) -> Result<ImageStore, ImageError> {
        let open_err = |source: Box<dyn std::error::Error + Send + Sync>| ImageError::Open {
            root: root.to_path_buf(),
            source,
        };
        Ok(ImageStore {
            root: root.to_path_buf(),
            content: ContentStore::open(root).map_err(|e| open_err(Box::new(e)))?,
            layers: LayerStore::open(root.join("layers")).map_err(|e| open_err(Box::new(e)))?,
            snapshots: Snapshots::open(root.join("containers"))
                .map_err(|e| open_err(Box::new(e)))?,
        })
    }

    /// The root directory holding blobs, layers and snapshots.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The content store.
    #[must_use]
    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    /// The unpacked layers.
    #[must_use]
    pub fn layers(&self) -> &LayerStore {
        &self.layers
    }

    /// The container snapshots.
    #[must_use]
    pub fn snapshots(&self) -> &Snapshots {
        &self.snapshots
    }

    /// Resolves `digest` (an image manifest, or an index from which `platform` is picked) to
    /// its manifest, config and layer chain. Every blob must be in the content store.
    ///
    /// # Errors
    /// A missing blob, an invalid document, no matching platform, or layer/diff id counts that
    /// differ.
    pub fn resolve(&self, digest: &Digest, platform: &Platform) -> Result<Image, ImageError> {
        let manifest_err = |digest: &Digest| {
            let digest = digest.clone();
            move |source| ImageError::Manifest { digest, source }
        };
        let mut manifest_digest = digest.clone();
        let mut manifest = self.manifest(&manifest_digest, None)?;
        if let Manifest::Index(index) = &manifest {
            let d = select_platform(index, platform).map_err(manifest_err(&manifest_digest))?;
            let inner = descriptor_digest(d).map_err(manifest_err(&manifest_digest))?;
            manifest = self.manifest(&inner, Some(d.media_type().as_ref()))?;
            manifest_digest = inner;
        }
        let Manifest::Image(manifest) = manifest else {
            return Err(ImageError::NestedIndex {
                digest: manifest_digest,
            });
        };
        let config_digest =
            descriptor_digest(manifest.config()).map_err(manifest_err(&manifest_digest))?;
        let bytes = self
            .content
            .read(&config_digest, MAX_CONFIG_SIZE)
            .map_err(|source| ImageError::Content {
                digest: config_digest.clone(),
                source,
            })?;
        let config = parse_config(&bytes).map_err(manifest_err(&config_digest))?;
        let healthcheck = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|mut v| {
                v.pointer_mut("/config/Healthcheck")
                    .map(serde_json::Value::take)
            })
            .filter(serde_json::Value::is_object);
        let diff_ids = diff_ids(&config).map_err(manifest_err(&config_digest))?;
        if diff_ids.len() != manifest.layers().len() {
            return Err(ImageError::Manifest {
                digest: manifest_digest,
                source: ManifestError::LayerCount {
                    layers: manifest.layers().len(),
                    diff_ids: diff_ids.len(),
                },
            });
        }
        let chain_ids = ChainId::chain(&diff_ids);
        Ok(Image {
            manifest_digest,
            manifest: *manifest,
            config_digest,
            config,
            healthcheck,
            diff_ids,
            chain_ids,
        })
    }

    fn manifest(&self, digest: &Digest, media_type: Option<&str>) -> Result<Manifest, ImageError> {
        let bytes = self
            .content
            .read(digest, MAX_MANIFEST_SIZE)
            .map_err(|source| ImageError::Content {
                digest: digest.clone(),
                source,
            })?;
        parse_manifest(&bytes, media_type).map_err(|source| ImageError::Manifest {
            digest: digest.clone(),
            source,
        })
    }

    /// Unpacks every layer of `image` not yet unpacked, bottom first.
    ///
    /// # Errors
    /// A missing layer blob or a failed unpack.
    pub fn unpack(&self, image: &Image) -> Result<(), ImageError> {
        let mut parent: Option<&ChainId> = None;
        for ((layer, diff_id), chain) in image
            .manifest
            .layers()
            .iter()
            .zip(&image.diff_ids)
            .zip(&image.chain_ids)
        {
            if !self.layers.contains(chain) {
                let digest = descriptor_digest(layer).map_err(|source| ImageError::Manifest {
                    digest: image.manifest_digest.clone(),
                    source,
                })?;
                let blob =
                    self.content
                        .open_blob(&digest)
                        .map_err(|source| ImageError::Content {
                            digest: digest.clone(),
                            source,
                        })?;
                self.layers
                    .unpack(
                        std::io::BufReader::new(blob),
                        layer.media_type().as_ref(),
                        parent,
                        diff_id,
                    )
                    .map_err(|source| ImageError::Unpack { digest, source })?;
            }
            parent = Some(chain);
        }
        Ok(())
    }

    /// Unpacks `image` and prepares the overlay snapshot of container `id` over its layers.
    ///
    /// # Errors
    /// As [`unpack`](Self::unpack), or the snapshot cannot be made (an image without layers
    /// cannot be mounted).
    pub fn prepare(&self, id: &str, image: &Image) -> Result<Mount, ImageError> {
        self.unpack(image)?;
        let mut lowers: Vec<PathBuf> = image
            .chain_ids
            .iter()
            .rev()
            .map(|c| self.layers.diff_path(c))
            .collect();
        if let Some(top) = image.chain_ids.last() {
            let layer = self.layers.root().join(top.0.hex());
            // Without it the runtime makes the mount points in the container's upper layer.
            match crate::initlayer::ensure(&layer, &lowers) {
                Ok(init) => lowers.insert(0, init),
                Err(e) => tracing::warn!("init layer of {}: {e}", layer.display()),
            }
        }
        self.snapshots
            .prepare(id, lowers)
            .map_err(|source| ImageError::Snapshot {
                id: id.to_owned(),
                source,
            })
    }

    /// Imports a rootfs tarball as an image (see [`import_rootfs`]).
    ///
    /// # Errors
    /// As [`import_rootfs`].
    pub fn import_rootfs(
        &self,
        tar: impl Read,
        opts: &ImportOptions,
    ) -> Result<Imported, ImageError> {
        import_rootfs(&self.content, tar, opts).map_err(|source| ImageError::Import { source })
    }
}
