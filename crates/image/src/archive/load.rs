//! `docker load`: OCI layout and docker-archive (new and old style) tarballs into the store.

use super::{ArchiveError, familiar_name, read_error};
use crate::digest::Digest;
use crate::manifest::{MAX_MANIFEST_SIZE, Manifest, Platform, descriptor_digest, parse_manifest};
use crate::media::{
    Compression, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_MANIFEST,
};
use crate::store::ImageStore;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::io::{self, Read};

/// An image the archive held, now in the content store with its layers unpacked.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// Its manifest (or index) digest: what the engine records.
    pub manifest: Digest,
    /// Its config digest (the image id).
    pub config: Digest,
    /// Names the archive gave it (familiar form, `repo:tag`).
    pub names: Vec<String>,
}

/// One entry of a docker-archive `manifest.json`.
#[derive(Debug, Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

/// The archive's members as read: stored blobs by member path, and the small documents.
#[derive(Default)]
struct Members {
    blobs: HashMap<String, Digest>,
    links: HashMap<String, String>,
    index: Option<Vec<u8>>,
    manifest: Option<Vec<u8>>,
}

impl Members {
    /// The blob a path names, following symlink members (old docker-archives link repeated
    /// layers) a bounded number of times.
    fn blob(&self, from: &str, path: &str) -> Result<Digest, ArchiveError> {
        let mut p = clean(path);
        for _ in 0..8 {
            if let Some(d) = self.blobs.get(&p) {
                return Ok(d.clone());
            }
            match self.links.get(&p) {
                Some(next) => p = next.clone(),
                None => break,
            }
        }
        Err(ArchiveError::Missing {
            from: from.to_owned(),
            path: path.to_owned(),
        })
    }
}

/// A member path without `./` or leading `/`, `..` resolved within the archive.
fn clean(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

/// The digest a member's name claims: `blobs/sha256/<hex>` or an old-style `<hex>.json`.
fn named_digest(path: &str) -> Option<Digest> {
    if let Some(hex) = path.strip_prefix("blobs/sha256/") {
        return Digest::from_hex(hex).ok();
    }
    let hex = path.strip_suffix(".json")?;
    Digest::from_hex(hex).ok()
}

fn read_doc(path: &str, entry: &mut impl Read) -> Result<Vec<u8>, ArchiveError> {
    let mut bytes = Vec::new();
    entry
        .take(MAX_MANIFEST_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_MANIFEST_SIZE {
        return Err(ArchiveError::TooLarge {
            path: path.to_owned(),
            limit: MAX_MANIFEST_SIZE,
        });
    }
    Ok(bytes)
}

impl ImageStore {
    /// Reads an image archive from `input` into the store (see the module docs) and returns
    /// the images it held. Hold [`lock_writer`](Self::lock_writer) around this and the
    /// recording of the result.
    ///
    /// # Errors
    /// A truncated or malformed archive, a blob whose content does not match its name, an
    /// invalid index, manifest or config, or a layer that fails to unpack.
    pub fn load(&self, input: impl Read) -> Result<Vec<LoadedImage>, ArchiveError> {
        let members = self.read_members(input)?;
        let found = if let Some(index) = &members.index {
            self.images_of_index(index)?
        } else if let Some(manifest) = &members.manifest {
            self.images_of_docker_manifest(&members, manifest)?
        } else {
            return Err(ArchiveError::NotAnImageArchive);
        };
        let mut loaded = Vec::new();
        for (manifest, names) in found {
            let shown = names
                .first()
                .cloned()
                .unwrap_or_else(|| manifest.to_string());
            let image_err = |source| ArchiveError::Image {
                name: shown.clone(),
                source: Box::new(source),
            };
            let image = self
                .resolve(&manifest, &Platform::host())
                .map_err(image_err)?;
            self.unpack(&image).map_err(image_err)?;
            loaded.push(LoadedImage {
                manifest,
                config: image.config_digest,
                names,
            });
        }
        Ok(loaded)
    }

    fn read_members(&self, input: impl Read) -> Result<Members, ArchiveError> {
        let mut archive = tar::Archive::new(input);
        let mut members = Members::default();
        let entries = archive.entries().map_err(read_error)?;
        for entry in entries {
            let mut entry = entry.map_err(read_error)?;
            let raw = entry.path_bytes().into_owned();
            let path = clean(&String::from_utf8_lossy(&raw));
            let kind = entry.header().entry_type();
            if kind.is_symlink() {
                if let Some(target) = entry.link_name_bytes().map(std::borrow::Cow::into_owned) {
                    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
                    let target = clean(&format!("{dir}/{}", String::from_utf8_lossy(&target)));
                    members.links.insert(path, target);
                }
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            match path.as_str() {
                "index.json" => members.index = Some(read_doc(&path, &mut entry)?),
                "manifest.json" => members.manifest = Some(read_doc(&path, &mut entry)?),
                "oci-layout" | "repositories" => {}
                _ if path.starts_with("blobs/")
                    || path.ends_with(".tar")
                    || path.ends_with(".json") =>
                {
                    let digest = self.store_member(&path, &mut entry)?;
                    members.blobs.insert(path, digest);
                }
                // Old-style `<id>/json` and `<id>/VERSION`: v1 metadata berth does not need.
                _ => {}
            }
        }
        Ok(members)
    }

    /// Streams one member into the content store; a member named by a digest must match it.
    fn store_member(&self, path: &str, entry: &mut impl Read) -> Result<Digest, ArchiveError> {
        let member_err = |source| ArchiveError::Member {
            path: path.to_owned(),
            source,
        };
        let expected = named_digest(path);
        if let Some(d) = &expected
            && self.content().contains(d)
        {
            // Already stored (and verified when it was): skip the bytes.
            io::copy(entry, &mut io::sink()).map_err(read_error)?;
            return Ok(d.clone());
        }
        let mut writer = self.content().writer(None).map_err(member_err)?;
        io::copy(entry, &mut writer).map_err(read_error)?;
        writer.commit(expected.as_ref(), None).map_err(member_err)
    }

    /// An OCI layout's `index.json`: each entry is an image (or an index), named by its
    /// `io.containerd.image.name` annotation, else a full reference in
    /// `org.opencontainers.image.ref.name`.
    fn images_of_index(&self, index: &[u8]) -> Result<Vec<(Digest, Vec<String>)>, ArchiveError> {
        let doc_err = |source| ArchiveError::Document {
            path: "index.json".into(),
            source,
        };
        let Manifest::Index(index) = parse_manifest(index, Some(OCI_INDEX)).map_err(doc_err)?
        else {
            return Err(ArchiveError::NotAnImageArchive);
        };
        let mut out: Vec<(Digest, Vec<String>)> = Vec::new();
        for m in index.manifests() {
            let digest = descriptor_digest(m).map_err(doc_err)?;
            let path = format!("blobs/sha256/{}", digest.hex());
            if !self.content().contains(&digest) {
                return Err(ArchiveError::Missing {
                    from: "index.json".into(),
                    path,
                });
            }
            let annotations = m.annotations().clone().unwrap_or_default();
            let name = annotations
                .get("io.containerd.image.name")
                .cloned()
                .or_else(|| {
                    annotations
                        .get("org.opencontainers.image.ref.name")
                        .filter(|r| r.contains([':', '/']))
                        .cloned()
                })
                .map(|n| familiar_name(&n));
            match out.iter_mut().find(|(d, _)| *d == digest) {
                Some((_, names)) => names.extend(name),
                None => out.push((digest, name.into_iter().collect())),
            }
        }
        Ok(out)
    }

    /// A docker-archive `manifest.json`: a new manifest is made for each entry from its config
    /// and layer files (compression sniffed from the bytes).
    fn images_of_docker_manifest(
        &self,
        members: &Members,
        manifest: &[u8],
    ) -> Result<Vec<(Digest, Vec<String>)>, ArchiveError> {
        let entries: Vec<DockerEntry> =
            serde_json::from_slice(manifest).map_err(|source| ArchiveError::Json {
                path: "manifest.json".into(),
                source,
            })?;
        let mut out = Vec::new();
        for e in entries {
            let config = members.blob("manifest.json", &e.config)?;
            let config_size = self.blob_size(&config)?;
            let mut layers = Vec::new();
            for l in &e.layers {
                let digest = members.blob("manifest.json", l)?;
                let size = self.blob_size(&digest)?;
                let mut head = [0u8; 8];
                let n = self
                    .content()
                    .open_blob(&digest)
                    .and_then(|mut f| {
                        f.read(&mut head).map_err(|source| crate::ContentError::Io {
                            op: "read",
                            path: self.content().blob_path(&digest),
                            source,
                        })
                    })
                    .map_err(|source| ArchiveError::Blob { source })?;
                let media_type = match Compression::sniff(&head[..n]) {
                    Compression::None => OCI_LAYER,
                    Compression::Gzip => OCI_LAYER_GZIP,
                    Compression::Zstd => OCI_LAYER_ZSTD,
                };
                layers.push(
                    json!({"mediaType": media_type, "digest": digest.to_string(), "size": size}),
                );
            }
            let doc = json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config.to_string(), "size": config_size},
                "layers": layers,
            });
            let bytes = serde_json::to_vec(&doc).map_err(|source| ArchiveError::Json {
                path: "manifest.json".into(),
                source,
            })?;
            let digest =
                self.content()
                    .write_blob(&bytes, None)
                    .map_err(|source| ArchiveError::Member {
                        path: "manifest.json".into(),
                        source,
                    })?;
            let names = e
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|n| familiar_name(n))
                .collect();
            out.push((digest, names));
        }
        Ok(out)
    }

    fn blob_size(&self, digest: &Digest) -> Result<u64, ArchiveError> {
        Ok(self
            .content()
            .info(digest)
            .map_err(|source| ArchiveError::Blob { source })?
            .size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths_are_cleaned() {
        assert_eq!(clean("./blobs/sha256/ab"), "blobs/sha256/ab");
        assert_eq!(clean("/a/../../b"), "b");
        assert_eq!(clean("abc/../def/layer.tar"), "def/layer.tar");
    }

    #[test]
    fn only_digest_names_are_verified() {
        let hex = "a".repeat(64);
        assert!(named_digest(&format!("blobs/sha256/{hex}")).is_some());
        assert!(named_digest(&format!("{hex}.json")).is_some());
        assert!(named_digest("abc/layer.tar").is_none());
        assert!(named_digest("blobs/sha256/nothex").is_none());
    }
}
