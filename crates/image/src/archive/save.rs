//! `docker save`: one tarball that is an OCI layout and a docker-archive at once.

use super::{ArchiveError, qualified_name};
use crate::digest::Digest;
use crate::manifest::{Platform, descriptor_digest};
use crate::media::OCI_MANIFEST;
use crate::store::ImageStore;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};

/// An image to save: its stored manifest (or index) digest and the names to record for it.
#[derive(Debug, Clone)]
pub struct SaveImage {
    /// The manifest or index digest.
    pub manifest: Digest,
    /// `repo:tag` names (familiar form); may be empty.
    pub names: Vec<String>,
}

fn write_err(source: io::Error) -> ArchiveError {
    ArchiveError::Write { source }
}

fn header(path: &str, size: u64, dir: bool) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    if dir {
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
    } else {
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
    }
    h.set_size(size);
    h.set_mtime(0);
    // Paths here are short (`blobs/sha256/<64 hex>` is 77 bytes), within ustar's 100.
    let _ = h.set_path(path);
    h.set_cksum();
    h
}

fn add_file<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    bytes: &[u8],
) -> Result<(), ArchiveError> {
    let mut h = header(path, bytes.len() as u64, false);
    tar.append_data(&mut h, path, bytes).map_err(write_err)
}

impl ImageStore {
    /// Writes `images` (this host's platform of each) to `out` as one archive in both the OCI
    /// layout and docker-archive formats.
    ///
    /// # Errors
    /// An image does not resolve, a blob cannot be read, or `out` fails.
    pub fn save(&self, images: &[SaveImage], out: impl Write) -> Result<(), ArchiveError> {
        let mut tar = tar::Builder::new(out);
        for dir in ["blobs/", "blobs/sha256/"] {
            let mut h = header(dir, 0, true);
            tar.append_data(&mut h, dir, io::empty())
                .map_err(write_err)?;
        }
        let mut written = HashSet::new();
        let mut index = Vec::new();
        let mut docker = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for want in images {
            let image = self
                .resolve(&want.manifest, &Platform::host())
                .map_err(|source| ArchiveError::Image {
                    name: want.manifest.to_string(),
                    source: Box::new(source),
                })?;
            let layers: Vec<Digest> = image
                .manifest
                .layers()
                .iter()
                .map(descriptor_digest)
                .collect::<Result<_, _>>()
                .map_err(|source| ArchiveError::Image {
                    name: want.manifest.to_string(),
                    source: Box::new(crate::ImageError::Manifest {
                        digest: image.manifest_digest.clone(),
                        source,
                    }),
                })?;
            let blobs = [image.manifest_digest.clone(), image.config_digest.clone()]
                .into_iter()
                .chain(layers.iter().cloned());
            for d in blobs {
                if written.insert(d.clone()) {
                    self.add_blob(&mut tar, &d)?;
                }
            }
            let size = self
                .content()
                .info(&image.manifest_digest)
                .map_err(|source| ArchiveError::Blob { source })?
                .size;
            let media_type = image
                .manifest
                .media_type()
                .as_ref()
                .map_or_else(|| OCI_MANIFEST.to_owned(), ToString::to_string);
            let descriptor = |annotations: Option<Value>| {
                let mut d = json!({
                    "mediaType": media_type,
                    "digest": image.manifest_digest.to_string(),
                    "size": size,
                });
                if let Some(a) = annotations {
                    d["annotations"] = a;
                }
                d
            };
            let tags: Vec<&String> = want.names.iter().filter(|n| !n.contains('@')).collect();
            if tags.is_empty() {
                index.push(descriptor(None));
            }
            for name in &tags {
                let tag = name.rsplit_once(':').map_or("latest", |(_, t)| t);
                index.push(descriptor(Some(json!({
                    "io.containerd.image.name": qualified_name(name),
                    "org.opencontainers.image.ref.name": tag,
                }))));
                if let (Some((repo, tag)), Some(top)) = (name.rsplit_once(':'), layers.last()) {
                    repositories
                        .entry(repo.to_owned())
                        .or_default()
                        .insert(tag.to_owned(), top.hex().to_owned());
                }
            }
            docker.push(json!({
                "Config": format!("blobs/sha256/{}", image.config_digest.hex()),
                "RepoTags": tags,
                "Layers": layers.iter().map(|l| format!("blobs/sha256/{}", l.hex())).collect::<Vec<_>>(),
            }));
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": crate::media::OCI_INDEX,
            "manifests": index,
        });
        let docs: [(&str, Value); 4] = [
            ("index.json", index),
            ("manifest.json", Value::Array(docker)),
            ("oci-layout", json!({"imageLayoutVersion": "1.0.0"})),
            ("repositories", json!(repositories)),
        ];
        for (path, doc) in docs {
            let bytes = serde_json::to_vec(&doc)
                .map_err(|source| ArchiveError::Serialize { path, source })?;
            add_file(&mut tar, path, &bytes)?;
        }
        tar.into_inner()
            .and_then(|mut w| w.flush())
            .map_err(write_err)
    }

    fn add_blob<W: Write>(
        &self,
        tar: &mut tar::Builder<W>,
        digest: &Digest,
    ) -> Result<(), ArchiveError> {
        let file = self
            .content()
            .open_blob(digest)
            .map_err(|source| ArchiveError::Blob { source })?;
        let size = file
            .metadata()
            .map_err(|source| ArchiveError::Blob {
                source: crate::ContentError::Io {
                    op: "stat",
                    path: self.content().blob_path(digest),
                    source,
                },
            })?
            .len();
        let path = format!("blobs/sha256/{}", digest.hex());
        let mut h = header(&path, size, false);
        tar.append_data(&mut h, &path, file).map_err(write_err)
    }
}
