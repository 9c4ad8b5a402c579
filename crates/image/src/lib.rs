//! Images for berth: a content store of blobs named by digest, OCI and Docker manifests, safe
//! layer unpack into overlay lower directories, overlay snapshots per container, and import of
//! plain rootfs tarballs.
//!
//! This crate knows nothing of processes, containers' lifecycles or image names: the engine keeps
//! names and tags (SQLite) and calls in here with digests. Entry points: [`ContentStore`]
//! (blobs), [`manifest`] (parsing and platform selection), [`LayerStore`] (unpack),
//! [`Snapshots`] (overlay mounts per container), [`import`] (rootfs tarball → image) and the
//! [`ImageStore`] facade that ties them together, with [`archive`] (save/load), [`commit`]
//! (container changes → layer), [`gc`] (collecting what no image uses) and [`registry`] (pull,
//! push and credentials over the OCI distribution API). On disk (under one root):
//! `blobs/sha256/<hex>`, `ingest/`, `layers/<chain-id>/diff`, `containers/<id>/{upper,work}`.
#![warn(missing_docs)]

pub mod archive;
mod chunks;
pub mod commit;
pub mod content;
pub mod digest;
pub mod gc;
pub mod import;
pub mod initlayer;
pub mod manifest;
pub mod media;
pub mod registry;
pub mod snapshot;
mod store;
pub mod unpack;

pub use archive::{ArchiveError, LoadedImage, SaveImage};
pub use commit::{CommitError, CommitOptions, Committed};
pub use content::{ContentError, ContentStore, Info, Writer};
pub use digest::{ChainId, DiffId, Digest, DigestError};
pub use gc::{Collected, GcError, GcLock};
pub use import::{ImportError, ImportOptions, Imported};
pub use manifest::{Manifest, ManifestError, Platform};
pub use snapshot::{
    Durability, Mount, SnapshotError, Snapshots, mount_overlay, mount_overlay_with, open_overlay,
    unmount,
};
pub use store::{Image, ImageError, ImageStore};
pub use unpack::{LayerStore, UnpackError, Unpacked};
