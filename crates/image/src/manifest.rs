//! Parsing manifests, indexes and image configs (OCI and Docker schema2), and picking a
//! platform's manifest from an index. Pure functions over bytes: the bytes come from the
//! content store (or, later, a registry) and were verified against their digest there.

use crate::digest::{DiffId, Digest, DigestError};
use crate::media::{self, ManifestKind};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use serde::Deserialize;

/// The largest manifest or index berth reads (containerd and the distribution spec use 4 MiB).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;
/// The largest image config berth reads.
pub const MAX_CONFIG_SIZE: u64 = 8 << 20;

/// Errors of manifest and config parsing.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The document is larger than [`MAX_MANIFEST_SIZE`] (or [`MAX_CONFIG_SIZE`]).
    #[error("{what} is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Manifest or config.
        what: &'static str,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The JSON does not parse as the expected document; `field` names where.
    #[error("{what}: field {field}")]
    Field {
        /// Manifest, index or config.
        what: &'static str,
        /// The JSON path of the offending field (`config.Entrypoint`), `.` for the document.
        field: String,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// Neither the media type nor the document's shape say what it is.
    #[error("unsupported manifest media type {media_type:?}")]
    UnsupportedMediaType {
        /// The media type (or `""` when none was given).
        media_type: String,
    },
    /// Docker schema 1 manifests are deprecated and unsigned; berth does not read them.
    #[error("docker schema 1 manifests are not supported")]
    Schema1,
    /// A descriptor or diff id is not a sha256 digest.
    #[error("{what}")]
    Digest {
        /// What holds the digest.
        what: &'static str,
        /// The cause.
        #[source]
        source: DigestError,
    },
    /// No manifest in the index matches the wanted platform.
    #[error("no manifest for platform {platform} (index has: {available})")]
    NoPlatform {
        /// The wanted platform.
        platform: Platform,
        /// The platforms the index lists, comma-separated.
        available: String,
    },
    /// The config's diff ids and the manifest's layers differ in number.
    #[error("manifest has {layers} layers but config has {diff_ids} rootfs.diff_ids")]
    LayerCount {
        /// Layers in the manifest.
        layers: usize,
        /// Diff ids in the config.
        diff_ids: usize,
    },
}

/// A parsed manifest-level document.
#[derive(Debug, Clone)]
pub enum Manifest {
    /// A single-platform image manifest.
    Image(Box<ImageManifest>),
    /// An index / manifest list.
    Index(Box<ImageIndex>),
}

#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "schemaVersion", default)]
    schema_version: Option<u64>,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    layers: Option<serde_json::Value>,
}

fn check_size(what: &'static str, bytes: &[u8], limit: u64) -> Result<(), ManifestError> {
    let size = bytes.len() as u64;
    if size > limit {
        return Err(ManifestError::TooLarge { what, size, limit });
    }
    Ok(())
}

fn from_json<T: for<'de> Deserialize<'de>>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, ManifestError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        ManifestError::Field {
            what,
            field,
            source: e.into_inner(),
        }
    })
}

/// Parses a manifest or index. `media_type` is the one the descriptor (or registry) gave;
/// without it the document's own `mediaType`, then its shape (`manifests` vs `layers`), decide.
///
/// # Errors
/// Over [`MAX_MANIFEST_SIZE`], not JSON of the right shape, schema 1, or an unknown media type.
pub fn parse_manifest(bytes: &[u8], media_type: Option<&str>) -> Result<Manifest, ManifestError> {
    check_size("manifest", bytes, MAX_MANIFEST_SIZE)?;
    let probe: Probe = from_json("manifest", bytes)?;
    if probe.schema_version == Some(1) {
        return Err(ManifestError::Schema1);
    }
    let declared = media_type.or(probe.media_type.as_deref());
    let kind = match declared {
        Some(mt) => {
            media::manifest_kind(mt).ok_or_else(|| ManifestError::UnsupportedMediaType {
                media_type: mt.to_owned(),
            })?
        }
        None if probe.manifests.is_some() => ManifestKind::Index,
        None if probe.layers.is_some() => ManifestKind::Image,
        None => {
            return Err(ManifestError::UnsupportedMediaType {
                media_type: String::new(),
            });
        }
    };
    Ok(match kind {
        ManifestKind::Image => Manifest::Image(Box::new(from_json("image manifest", bytes)?)),
        ManifestKind::Index => Manifest::Index(Box::new(from_json("image index", bytes)?)),
    })
}

/// Parses an image config; a field of the wrong type is named in the error
/// (`image config: field config.Entrypoint: invalid type: string ...`).
///
/// # Errors
/// Over [`MAX_CONFIG_SIZE`] or not a valid config.
pub fn parse_config(bytes: &[u8]) -> Result<ImageConfiguration, ManifestError> {
    check_size("image config", bytes, MAX_CONFIG_SIZE)?;
    from_json("image config", bytes)
}

/// The diff ids of a config's `rootfs.diff_ids`, bottom layer first.
///
/// # Errors
/// A diff id that is not a sha256 digest.
pub fn diff_ids(config: &ImageConfiguration) -> Result<Vec<DiffId>, ManifestError> {
    config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|s| {
            DiffId::parse(s).map_err(|source| ManifestError::Digest {
                what: "rootfs.diff_ids",
                source,
            })
        })
        .collect()
}

/// The digest a descriptor names.
///
/// # Errors
/// Not a sha256 digest.
pub fn descriptor_digest(d: &Descriptor) -> Result<Digest, ManifestError> {
    Digest::try_from(d.digest()).map_err(|source| ManifestError::Digest {
        what: "descriptor digest",
        source,
    })
}

/// An OS / architecture / variant triple, as in an index's `platform` fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// GOARCH spelling: `amd64`, `arm64`, `arm`, `386`, `ppc64le`, `s390x`, `riscv64`.
    pub architecture: String,
    /// `v8`, `v7`...; `None` matches any.
    pub variant: Option<String>,
}

impl Platform {
    /// `linux/<arch>` of the machine berth was built for (GOARCH spelling).
    #[must_use]
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            os: "linux".to_owned(),
            architecture: architecture.to_owned(),
            variant: None,
        }
    }

    /// Parses `os/arch[/variant]`; `None` for anything else.
    #[must_use]
    pub fn parse(s: &str) -> Option<Platform> {
        let mut parts = s.split('/');
        let os = parts.next().filter(|p| !p.is_empty())?;
        let architecture = parts.next().filter(|p| !p.is_empty())?;
        let variant = parts.next().map(str::to_owned);
        if parts.next().is_some() {
            return None;
        }
        Some(Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant,
        })
    }

    fn matches(&self, p: &oci_spec::image::Platform) -> bool {
        let variant_ok = match (&self.variant, p.variant()) {
            (None, _) => true,
            (Some(want), Some(have)) => want == have,
            // arm64 images often omit the default variant v8.
            (Some(want), None) => self.architecture == "arm64" && want == "v8",
        };
        p.os().to_string() == self.os
            && p.architecture().to_string() == self.architecture
            && variant_ok
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The descriptor of the manifest for `platform` in `index`: the first entry that matches
/// (indexes list preferred entries first). Entries without a platform are skipped (attestation
/// manifests and artifacts carry none or `unknown/unknown`).
///
/// # Errors
/// [`ManifestError::NoPlatform`] listing what the index offers.
pub fn select_platform<'a>(
    index: &'a ImageIndex,
    platform: &Platform,
) -> Result<&'a Descriptor, ManifestError> {
    let found = index.manifests().iter().find(|d| {
        d.platform().as_ref().is_some_and(|p| platform.matches(p))
            && media::manifest_kind(d.media_type().as_ref()) == Some(ManifestKind::Image)
    });
    found.ok_or_else(|| {
        let available: Vec<String> = index
            .manifests()
            .iter()
            .filter_map(|d| d.platform().as_ref())
            .map(|p| {
                let mut s = format!("{}/{}", p.os(), p.architecture());
                if let Some(v) = p.variant() {
                    s.push('/');
                    s.push_str(v);
                }
                s
            })
            .collect();
        ManifestError::NoPlatform {
            platform: platform.clone(),
            available: available.join(", "),
        }
    })
}

#[cfg(test)]
mod tests;
