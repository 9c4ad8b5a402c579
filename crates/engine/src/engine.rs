//! The [`Engine`] facade: one call per CLI verb (and later Engine API endpoint) over the state
//! [`Store`], the [`ImageStore`] and the in-process runtime. The verbs live in one module per
//! family (`lifecycle`, `logs`, ...) as further `impl Engine` blocks.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use image::{ImageStore, Platform};

use crate::containers::Container;
use crate::error::{EngineError, Result};
use crate::images::Image;
use crate::store::{Paths, Store};

/// How often waits on the store (stop, rm, attach) look again.
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// The engine: state store, image store and runtime under one pair of roots.
#[derive(Debug)]
pub struct Engine {
    pub(crate) store: Store,
    pub(crate) images: ImageStore,
    pub(crate) paths: Paths,
}

impl Engine {
    /// Opens the state and image stores under `paths`.
    ///
    /// Errors: the stores cannot be opened or created.
    pub fn open(paths: &Paths) -> Result<Engine> {
        let store = Store::open(paths)?;
        let images = ImageStore::open(&paths.root).map_err(|source| EngineError::Image {
            action: "open image store".into(),
            source: Box::new(source),
        })?;
        Ok(Engine {
            store,
            images,
            paths: paths.clone(),
        })
    }

    /// The state store.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The runtime's state root: `<run root>/runtime`.
    #[must_use]
    pub fn runtime_root(&self) -> PathBuf {
        runtime_root(&self.paths)
    }

    /// Imports a rootfs tarball as an image, named `reference` when given (see
    /// [`import_image`](Self::import_image) for `-c` and `-m`).
    ///
    /// Errors: a bad tarball or reference.
    pub fn import(&self, tar: impl Read, reference: Option<&str>) -> Result<Image> {
        let req = crate::ImportRequest {
            reference: reference.map(str::to_owned),
            ..crate::ImportRequest::default()
        };
        self.import_image(tar, &req)
    }

    /// All images.
    ///
    /// Errors: the store cannot be read.
    pub fn images(&self) -> Result<Vec<Image>> {
        self.store.read(|tx| tx.list_images())
    }

    /// One container by id, name or id prefix.
    ///
    /// Errors: `NotFound`, or an ambiguous prefix.
    pub fn container(&self, reference: &str) -> Result<Container> {
        self.store.read(|tx| tx.container(reference))
    }

    /// An image reference resolved to its stored record and its manifest and config for this
    /// host's platform.
    pub(crate) fn resolve_image(&self, reference: &str) -> Result<(Image, image::Image)> {
        let record = self.store.read(|tx| tx.resolve_image(reference))?;
        let manifest = image::Digest::parse(record.digest.as_str()).map_err(|_| {
            EngineError::InvalidValue {
                what: "image digest",
                value: record.digest.to_string(),
            }
        })?;
        let img = self
            .images
            .resolve(&manifest, &Platform::host())
            .map_err(|source| EngineError::Image {
                action: format!("resolve image {reference}"),
                source: Box::new(source),
            })?;
        Ok((record, img))
    }
}

/// `<run root>/runtime`: the in-process runtime's state root.
pub(crate) fn runtime_root(paths: &Paths) -> PathBuf {
    paths.run_root.join("runtime")
}

/// Where the container's rootfs is mounted: `<run dir>/rootfs`.
pub(crate) fn rootfs_path(c: &Container) -> PathBuf {
    c.run_dir.join("rootfs")
}

pub(crate) fn is_mountpoint(path: &Path) -> bool {
    let (Ok(a), Some(Ok(b))) = (fs::metadata(path), path.parent().map(fs::metadata)) else {
        return false;
    };
    use std::os::unix::fs::MetadataExt;
    a.dev() != b.dev() || a.ino() == b.ino()
}

pub(crate) fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    }
    fs::write(path, data).map_err(io_err("write", path))
}

pub(crate) fn io_err(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> EngineError {
    let path = path.to_path_buf();
    move |source| EngineError::Io {
        action,
        path,
        source,
    }
}
