//! Images in and out: `import` (with `-c`/`-m`), `save`, `load` and `commit`. Each writer
//! holds the image store's writer lock from its first blob until the image is recorded, and on
//! failure collects what it wrote, so a rejected archive or tarball leaves nothing behind.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use image::{CommitOptions, GcLock, ImportOptions, Platform, SaveImage};
use serde_json::{Map, Value};

use crate::changes::apply_changes;
use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::id::{Digest, Timestamp};
use crate::image_verbs::{check_new_reference, image_digest, tree_size};
use crate::images::{Image, NewImage};
use crate::state::Status;
use crate::times::parse_rfc3339;

/// `docker import` options.
#[derive(Debug, Clone, Default)]
pub struct ImportRequest {
    /// `REPOSITORY[:TAG]` to name the image.
    pub reference: Option<String>,
    /// `-c`: Dockerfile instructions for the config.
    pub changes: Vec<String>,
    /// `-m`: the history comment.
    pub message: Option<String>,
}

/// `docker commit` options.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    /// The container (name, id or prefix).
    pub container: String,
    /// `REPOSITORY[:TAG]` to name the image.
    pub reference: Option<String>,
    /// `-c`: Dockerfile instructions applied over the container's config.
    pub changes: Vec<String>,
    /// `-m`: the history comment.
    pub message: Option<String>,
    /// `-a`: the author.
    pub author: Option<String>,
    /// `-p`: freeze a running container while its changes are read.
    pub pause: bool,
}

/// What `load` recorded.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The image.
    pub image: Image,
    /// The names the archive gave it (Docker prints `Loaded image: NAME` for each, else
    /// `Loaded image ID: ID`).
    pub names: Vec<String>,
    /// Names that pointed at another image before, with that image's id (Docker prints
    /// "The image NAME already exists, renaming the old one with ID ID to empty string").
    pub renamed: Vec<(String, Digest)>,
}

/// The image config keys `commit` takes from a container's Config.
const IMAGE_CONFIG_KEYS: [&str; 11] = [
    "User",
    "ExposedPorts",
    "Env",
    "Cmd",
    "Healthcheck",
    "Volumes",
    "WorkingDir",
    "Entrypoint",
    "Labels",
    "StopSignal",
    "OnBuild",
];

impl Engine {
    /// Imports a rootfs tarball as an image: `-c` changes make its config, `-m` its history
    /// comment. The layer is unpacked before the image is recorded, so a hostile tarball fails
    /// here and leaves no blob or layer behind.
    ///
    /// Errors: a bad change, an unreadable or hostile tarball, a bad reference.
    pub fn import_image(&self, tar: impl Read, req: &ImportRequest) -> Result<Image> {
        if let Some(r) = &req.reference {
            check_new_reference(r)?;
        }
        let mut config = Map::new();
        apply_changes(&mut config, &req.changes)?;
        let opts = ImportOptions {
            gzip: false,
            config: Some(config),
            comment: req.message.clone(),
            created: Some(Timestamp::now().to_rfc3339()),
            ..ImportOptions::default()
        };
        let action = "import image";
        self.writing(|_lock| {
            let imported = self
                .images
                .import_rootfs(tar, &opts)
                .map_err(image_err(action))?;
            let img = self
                .images
                .resolve(&imported.manifest, &Platform::host())
                .map_err(image_err(action))?;
            self.images.unpack(&img).map_err(image_err(action))?;
            Ok(self
                .record_image(&imported.manifest, req.reference.as_slice())?
                .0)
        })
    }

    /// `docker save`: writes the images to `out` as one docker-archive + OCI layout tarball.
    /// An image given by name is saved with that name; by id, without names.
    ///
    /// Errors: no such image, or writing fails.
    pub fn save(&self, references: &[String], out: impl Write) -> Result<()> {
        let mut wanted: Vec<SaveImage> = Vec::new();
        for r in references {
            let record = self.store.read(|tx| tx.resolve_image(r))?;
            let normalized = crate::images::normalize_tag(r);
            let name = record
                .names
                .iter()
                .find(|n| **n == normalized || *n == r)
                .cloned();
            let digest = image_digest(&record.digest)?;
            match wanted.iter_mut().find(|w| w.manifest == digest) {
                Some(w) => w.names.extend(name),
                None => wanted.push(SaveImage {
                    manifest: digest,
                    names: name.into_iter().collect(),
                }),
            }
        }
        self.images
            .save(&wanted, out)
            .map_err(|source| EngineError::Archive {
                action: format!("save {}", references.join(" ")),
                source: Box::new(source),
            })
    }

    /// `docker load`: reads an image archive (docker-archive or OCI layout), verifying every
    /// digest and unpacking every layer, and records and names its images.
    ///
    /// Errors: a malformed, corrupt or hostile archive; nothing of it stays on failure.
    pub fn load(&self, input: impl Read) -> Result<Vec<Loaded>> {
        self.writing(|_lock| {
            let found = self
                .images
                .load(input)
                .map_err(|source| EngineError::Archive {
                    action: "load images".into(),
                    source: Box::new(source),
                })?;
            found
                .into_iter()
                .map(|l| {
                    let (image, renamed) = self.record_image(&l.manifest, &l.names)?;
                    Ok(Loaded {
                        image,
                        names: l.names,
                        renamed,
                    })
                })
                .collect()
        })
    }

    /// `docker commit`: the container's filesystem changes become a new layer over its image,
    /// with its Config (plus `-c` changes) as the image config.
    ///
    /// Errors: no such container, a container without an image, a bad change, or the changes
    /// cannot be read or stored.
    pub fn commit(&self, req: &CommitRequest) -> Result<Image> {
        if let Some(r) = &req.reference {
            check_new_reference(r)?;
        }
        let c = self.container(&req.container)?;
        let base_digest = c
            .image_digest
            .clone()
            .ok_or_else(|| EngineError::InvalidValue {
                what: "container to commit (it has no image)",
                value: req.container.clone(),
            })?;
        let base = self
            .images
            .resolve(&image_digest(&base_digest)?, &Platform::host())
            .map_err(image_err("commit: resolve the container's image"))?;
        let full = serde_json::to_value(&c.config).map_err(|source| EngineError::Json {
            action: format!("encode config of container {}", c.id.short()),
            source,
        })?;
        let mut config: Map<String, Value> = IMAGE_CONFIG_KEYS
            .iter()
            .filter_map(|k| full.get(*k).map(|v| ((*k).to_owned(), v.clone())))
            .collect();
        apply_changes(&mut config, &req.changes)?;
        let opts = CommitOptions {
            config,
            author: req.author.clone(),
            comment: req.message.clone(),
            created_by: crate::bundle::args(&c.config).join(" "),
            created: Timestamp::now().to_rfc3339(),
        };
        let freeze = req.pause && c.state.status == Status::Running;
        let oci = crate::oci::for_container(&self.paths, &c);
        if freeze {
            // Recorded first: a commit killed while the container is frozen leaves a record
            // `system check` finds and thaws.
            crate::check::record_process(&c.run_dir, crate::check::COMMIT_FREEZE_FILE)?;
            oci.pause(c.id.as_str())?;
            crate::repair::crash_point("commit-after-pause");
        }
        let result = self.writing(|_lock| {
            let committed = self
                .images
                .commit(c.id.as_str(), &base, &opts)
                .map_err(|source| EngineError::Commit {
                    action: format!("commit container {}", c.id.short()),
                    source: Box::new(source),
                })?;
            // Unpacked now (as docker commit does): `run` and `history` sizes need the layer.
            let img = self
                .images
                .resolve(&committed.manifest, &Platform::host())
                .map_err(image_err("commit: resolve the new image"))?;
            self.images
                .unpack(&img)
                .map_err(image_err("commit: unpack the new layer"))?;
            crate::repair::crash_point("commit-after-layer");
            Ok(self
                .record_image(&committed.manifest, req.reference.as_slice())?
                .0)
        });
        if freeze {
            match oci.resume(c.id.as_str()) {
                Ok(()) => {
                    let _ = std::fs::remove_file(c.run_dir.join(crate::check::COMMIT_FREEZE_FILE));
                }
                Err(e) => tracing::warn!("resume container {} after commit: {e}", c.id.short()),
            }
        }
        result
    }

    /// Runs `f` under the image store's writer lock; when it fails, collects whatever it
    /// wrote (after releasing the lock, so the collector can take it).
    fn writing<T>(&self, f: impl FnOnce(&GcLock) -> Result<T>) -> Result<T> {
        let lock = self
            .images
            .lock_writer()
            .map_err(|source| EngineError::Gc {
                source: Box::new(source),
            })?;
        let result = f(&lock);
        drop(lock);
        if result.is_err()
            && let Err(e) = self.collect_image_garbage()
        {
            tracing::warn!("collect data of a failed image write: {e}");
        }
        result
    }

    /// Records the stored image `manifest` (size, created time and labels from its config) and
    /// points `names` at it. Returns the record and the names taken from another image, with
    /// that image's id.
    pub(crate) fn record_image(
        &self,
        manifest: &image::Digest,
        names: &[String],
    ) -> Result<(Image, Vec<(String, Digest)>)> {
        let img = self
            .images
            .resolve(manifest, &Platform::host())
            .map_err(image_err("record image"))?;
        // Docker's image size: the layers' unpacked bytes (every writer unpacks before this);
        // a layer not unpacked counts its blob's size.
        let size: i64 = img
            .manifest
            .layers()
            .iter()
            .zip(&img.chain_ids)
            .map(|(l, chain)| {
                let dir = self.images.layers().diff_path(chain);
                if dir.is_dir() {
                    tree_size(&dir)
                } else {
                    i64::try_from(l.size()).unwrap_or(i64::MAX)
                }
            })
            .sum();
        let labels: BTreeMap<String, String> = img
            .config
            .config()
            .as_ref()
            .and_then(|c| c.labels().clone())
            .map(|l| l.into_iter().collect())
            .unwrap_or_default();
        let new = NewImage {
            digest: Digest::parse(&manifest.to_string())?,
            config_digest: Digest::parse(&img.config_digest.to_string())?,
            size,
            created: img
                .config
                .created()
                .as_deref()
                .and_then(parse_rfc3339)
                .or_else(|| Some(Timestamp::now())),
            labels,
        };
        self.store.write(|tx| {
            tx.add_image(&new)?;
            let mut renamed = Vec::new();
            for n in names {
                if let Some(old) = tx.tag_image(&new.digest, n)?
                    && old != new.digest
                {
                    let old = tx.image_by_digest(&old)?;
                    renamed.push((n.clone(), old.config_digest));
                }
            }
            Ok((tx.image_by_digest(&new.digest)?, renamed))
        })
    }
}

fn image_err(action: &'static str) -> impl Fn(image::ImageError) -> EngineError {
    move |source| EngineError::Image {
        action: action.into(),
        source: Box::new(source),
    }
}
