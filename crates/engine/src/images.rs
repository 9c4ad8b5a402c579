//! Image records: which manifests the store holds and which references (names and tags) point
//! at them. Blobs, layers and snapshots belong to the `image` crate; this module only records
//! digests, so removing a record tells the caller which digest to collect.
//!
//! References are stored as the caller normalized them (the `image` crate's reference parser
//! adds Docker's default registry and `library/`); [`normalize_tag`] only adds `:latest`.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{OptionalExtension, params};

use crate::error::{EngineError, Result};
use crate::events::EventType;
use crate::id::{Digest, Timestamp, is_hex};
use crate::store::Tx;

/// An image to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewImage {
    /// Manifest digest (the record's key).
    pub digest: Digest,
    /// Config digest: Docker's image id.
    pub config_digest: Digest,
    /// Bytes of the unpacked layers (Docker's image size).
    pub size: i64,
    /// The config's `created`.
    pub created: Option<Timestamp>,
    /// The config's labels.
    pub labels: BTreeMap<String, String>,
}

/// An image record with its references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Manifest digest.
    pub digest: Digest,
    /// Config digest: Docker's image id.
    pub config_digest: Digest,
    /// Bytes of the unpacked layers (Docker's image size).
    pub size: i64,
    /// The config's `created`.
    pub created: Option<Timestamp>,
    /// When it entered this store.
    pub added: Timestamp,
    /// The config's labels.
    pub labels: BTreeMap<String, String>,
    /// References pointing at it (tags, and `repo@sha256:…` digest references), sorted.
    pub names: Vec<String>,
}

impl Image {
    /// Whether no tag names it (digest references alone leave an image dangling, as in
    /// Docker: they are what `RepoDigests` shows, not names one runs).
    #[must_use]
    pub fn is_dangling(&self) -> bool {
        self.names.iter().all(|n| n.contains('@'))
    }
}

/// What [`Tx::remove_image`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageRemoval {
    /// References removed.
    pub untagged: Vec<String>,
    /// The image record deleted (the caller may now collect its blobs), if it was.
    pub deleted: Option<Image>,
}

/// Adds `:latest` to a reference without a tag or digest (`busybox` -> `busybox:latest`,
/// `localhost:5000/x` -> `localhost:5000/x:latest`).
#[must_use]
pub fn normalize_tag(reference: &str) -> String {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if last.contains(':') || last.contains('@') || reference.contains('@') {
        reference.to_owned()
    } else {
        format!("{reference}:latest")
    }
}

/// The repository of a stored reference: `r` of `r:tag` and of `r@sha256:…`.
fn repository_of(name: &str) -> &str {
    if let Some((repo, _)) = name.split_once('@') {
        return repo;
    }
    let last = name.rfind('/').map_or(0, |i| i + 1);
    name[last..].rfind(':').map_or(name, |i| &name[..last + i])
}

/// The references `rmi name` removes: `name`, and when it is its repository's last tag, that
/// repository's digest references (a `RepoDigests` entry means nothing without a tag of its
/// repository; Docker drops them too).
fn references_going_with(names: &[String], name: &str) -> Vec<String> {
    let mut gone = vec![name.to_owned()];
    if name.contains('@') {
        return gone;
    }
    let repo = repository_of(name);
    let same_repo = |n: &&String| *n != name && repository_of(n) == repo;
    if !names.iter().filter(same_repo).any(|n| !n.contains('@')) {
        gone.extend(names.iter().filter(same_repo).cloned());
    }
    gone
}

/// Whether an image's references let `rmi <id>` go ahead without force: at most one tag, and
/// digest references only of that tag's repository (Docker's rule: anything more is
/// "referenced in multiple repositories").
fn single_reference(names: &[String]) -> bool {
    let mut tags = names.iter().filter(|n| !n.contains('@'));
    let repo = match (tags.next(), tags.next()) {
        (_, Some(_)) => return false,
        (Some(tag), None) => repository_of(tag),
        (None, None) => match names.first() {
            Some(n) => repository_of(n),
            None => return true,
        },
    };
    names.iter().all(|n| repository_of(n) == repo)
}

fn validate_reference(reference: &str) -> Result<()> {
    let ok = !reference.is_empty()
        && reference.len() <= 512
        && !reference.starts_with(['/', ':', '@', '.', '-'])
        && reference.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(EngineError::InvalidValue {
            what: "image reference",
            value: reference.to_owned(),
        })
    }
}

impl Tx<'_> {
    /// Records an image (idempotent: an existing record with this digest is kept).
    pub fn add_image(&self, new: &NewImage) -> Result<Image> {
        let labels = serde_json::to_string(&new.labels).map_err(|source| EngineError::Json {
            action: format!("encode labels of image {}", new.digest),
            source,
        })?;
        self.tx
            .execute(
                "INSERT INTO images (digest, config_digest, size, created, added, labels) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (digest) DO NOTHING",
                params![
                    new.digest.as_str(),
                    new.config_digest.as_str(),
                    new.size,
                    new.created.map(|t| t.0),
                    Timestamp::now().0,
                    labels
                ],
            )
            .map_err(EngineError::sqlite("insert image"))?;
        self.image_by_digest(&new.digest)
    }

    /// Points `reference` (normalized with [`normalize_tag`]) at the image `digest`; a reference
    /// that pointed elsewhere moves, as `docker tag` does. Returns the digest it pointed at before.
    pub fn tag_image(&self, digest: &Digest, reference: &str) -> Result<Option<Digest>> {
        validate_reference(reference)?;
        let reference = normalize_tag(reference);
        let image = self.image_by_digest(digest)?;
        let before: Option<String> = self
            .tx
            .query_row(
                "SELECT digest FROM image_names WHERE reference = ?1",
                [&reference],
                |r| r.get(0),
            )
            .optional()
            .map_err(EngineError::sqlite("look up image reference"))?;
        self.tx
            .execute(
                "INSERT INTO image_names (reference, digest, added) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (reference) DO UPDATE SET digest = excluded.digest, added = excluded.added",
                params![reference, digest.as_str(), Timestamp::now().0],
            )
            .map_err(EngineError::sqlite("tag image"))?;
        let attrs = BTreeMap::from([("name".to_owned(), reference.clone())]);
        self.append_event(
            EventType::Image,
            "tag",
            image.config_digest.as_str(),
            &attrs,
        )?;
        before.map(|d| Digest::parse(&d)).transpose()
    }

    /// Removes one reference; the image record stays (possibly dangling). Returns its digest.
    pub fn untag_image(&self, reference: &str) -> Result<Digest> {
        let reference = normalize_tag(reference);
        let digest: String = self
            .tx
            .query_row(
                "DELETE FROM image_names WHERE reference = ?1 RETURNING digest",
                [&reference],
                |r| r.get(0),
            )
            .optional()
            .map_err(EngineError::sqlite("untag image"))?
            .ok_or_else(|| EngineError::NotFound {
                what: "image",
                reference: reference.clone(),
            })?;
        let digest = Digest::parse(&digest)?;
        let image = self.image_by_digest(&digest)?;
        let attrs = BTreeMap::from([("name".to_owned(), reference)]);
        self.append_event(
            EventType::Image,
            "untag",
            image.config_digest.as_str(),
            &attrs,
        )?;
        Ok(digest)
    }

    /// Finds an image by reference (exact, then with `:latest`), by full manifest or config
    /// digest, or by a unique prefix of its id (config digest hex) or manifest digest hex.
    pub fn resolve_image(&self, reference: &str) -> Result<Image> {
        let not_found = || EngineError::NotFound {
            what: "image",
            reference: reference.to_owned(),
        };
        if reference.is_empty() {
            return Err(not_found());
        }
        for name in [reference.to_owned(), normalize_tag(reference)] {
            let found: Option<String> = self
                .tx
                .query_row(
                    "SELECT digest FROM image_names WHERE reference = ?1",
                    [&name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(EngineError::sqlite("look up image reference"))?;
            if let Some(d) = found {
                return self.image_by_digest(&Digest::parse(&d)?);
            }
        }
        let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
        if !is_hex(hex) {
            return Err(not_found());
        }
        let mut stmt = self
            .tx
            .prepare_cached(
                "SELECT DISTINCT digest FROM images WHERE config_digest GLOB 'sha256:' || ?1 || '*' \
                 OR digest GLOB 'sha256:' || ?1 || '*' LIMIT 2",
            )
            .map_err(EngineError::sqlite("look up image id"))?;
        let found = stmt
            .query_map([hex], |r| r.get::<_, String>(0))
            .map_err(EngineError::sqlite("look up image id"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(EngineError::sqlite("look up image id"))?;
        match found.as_slice() {
            [] => Err(not_found()),
            [d] => self.image_by_digest(&Digest::parse(d)?),
            _ => Err(EngineError::AmbiguousPrefix {
                what: "image",
                prefix: reference.to_owned(),
            }),
        }
    }

    /// The image with this manifest digest.
    pub fn image_by_digest(&self, digest: &Digest) -> Result<Image> {
        let mut images = self.query_images(Some(digest))?;
        images.pop().ok_or_else(|| EngineError::NotFound {
            what: "image",
            reference: digest.to_string(),
        })
    }

    /// All images, most recently added first.
    pub fn list_images(&self) -> Result<Vec<Image>> {
        self.query_images(None)
    }

    fn query_images(&self, digest: Option<&Digest>) -> Result<Vec<Image>> {
        let digest = digest.map(Digest::as_str);
        let mut names: HashMap<String, Vec<String>> = HashMap::new();
        let mut stmt = self
            .tx
            .prepare_cached("SELECT reference, digest FROM image_names WHERE ?1 IS NULL OR digest = ?1 ORDER BY reference")
            .map_err(EngineError::sqlite("list image names"))?;
        let rows = stmt
            .query_map([digest], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(EngineError::sqlite("list image names"))?;
        for row in rows {
            let (reference, d) = row.map_err(EngineError::sqlite("list image names"))?;
            names.entry(d).or_default().push(reference);
        }
        let mut stmt = self
            .tx
            .prepare_cached(
                "SELECT digest, config_digest, size, created, added, labels FROM images \
                 WHERE ?1 IS NULL OR digest = ?1 ORDER BY added DESC, digest",
            )
            .map_err(EngineError::sqlite("list images"))?;
        let rows = stmt
            .query_map([digest], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })
            .map_err(EngineError::sqlite("list images"))?;
        let mut out = Vec::new();
        for row in rows {
            let (d, config, size, created, added, labels) =
                row.map_err(EngineError::sqlite("list images"))?;
            let corrupt = |column, value: &str| EngineError::Corrupt {
                table: "images",
                key: d.clone(),
                column,
                value: value.to_owned(),
            };
            let labels = serde_json::from_str(&labels).map_err(|source| EngineError::Json {
                action: format!("decode labels of image {d}"),
                source,
            })?;
            out.push(Image {
                digest: Digest::parse(&d).map_err(|_| corrupt("digest", &d))?,
                config_digest: Digest::parse(&config)
                    .map_err(|_| corrupt("config_digest", &config))?,
                size,
                created: created.map(Timestamp),
                added: Timestamp(added),
                labels,
                names: names.remove(&d).unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// `docker rmi`: by reference, removes that reference (a repository's last tag takes the
    /// repository's digest references along) and deletes the image when it was the last; by
    /// id or digest, deletes the image and all its references. Refused
    /// (`Conflict`) when a container uses the image, or by id when several references point at
    /// it, unless `force`; a running container's image is never deleted.
    pub fn remove_image(&self, reference: &str, force: bool) -> Result<ImageRemoval> {
        let image = self.resolve_image(reference)?;
        let normalized = normalize_tag(reference);
        let by_name = image
            .names
            .iter()
            .any(|n| *n == normalized || n == reference);
        let users = self.image_users(&image.digest)?;
        let running: Vec<&str> = users
            .iter()
            .filter(|(_, active)| *active)
            .map(|(id, _)| id.get(..12).unwrap_or(id))
            .collect();
        let mut removal = ImageRemoval::default();
        if by_name {
            let name = if image.names.contains(&normalized) {
                normalized
            } else {
                reference.to_owned()
            };
            let gone = references_going_with(&image.names, &name);
            if image.names.len() > gone.len() {
                for n in gone {
                    self.untag_image(&n)?;
                    removal.untagged.push(n);
                }
                return Ok(removal);
            }
            if !users.is_empty() && !force {
                return Err(EngineError::MustForce {
                    reference: reference.to_owned(),
                    reason: "container is using its referenced image",
                });
            }
            for n in gone {
                self.untag_image(&n)?;
                removal.untagged.push(n);
            }
            if !running.is_empty() {
                return Ok(removal);
            }
        } else {
            if !single_reference(&image.names) && !force {
                return Err(EngineError::MustForce {
                    reference: reference.to_owned(),
                    reason: "image is referenced in multiple repositories",
                });
            }
            if !running.is_empty() {
                return Err(EngineError::InUse {
                    what: "image",
                    name: reference.to_owned(),
                    users: format!("running container {}", running.join(", ")),
                });
            }
            if !users.is_empty() && !force {
                return Err(EngineError::MustForce {
                    reference: reference.to_owned(),
                    reason: "image is being used by stopped container",
                });
            }
            for name in &image.names {
                self.untag_image(name)?;
                removal.untagged.push(name.clone());
            }
        }
        self.tx
            .execute(
                "DELETE FROM images WHERE digest = ?1",
                [image.digest.as_str()],
            )
            .map_err(EngineError::sqlite("delete image"))?;
        self.append_event(
            EventType::Image,
            "delete",
            image.config_digest.as_str(),
            &BTreeMap::new(),
        )?;
        tracing::info!(digest = %image.digest, "image removed");
        removal.deleted = Some(image);
        Ok(removal)
    }

    /// Ids of containers created from the image `digest`, with whether each is active.
    pub fn image_users(&self, digest: &Digest) -> Result<Vec<(String, bool)>> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT id, status FROM containers WHERE image_digest = ?1 ORDER BY id")
            .map_err(EngineError::sqlite("list image users"))?;
        let rows = stmt
            .query_map([digest.as_str()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(EngineError::sqlite("list image users"))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, status) = row.map_err(EngineError::sqlite("list image users"))?;
            // Removing counts as in use too: its process may still be being torn down.
            let active = status
                .parse::<crate::Status>()
                .map_or(true, |s| s.is_active() || s == crate::Status::Removing);
            out.push((id, active));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_is_added_only_without_tag_or_digest() {
        assert_eq!(normalize_tag("busybox"), "busybox:latest");
        assert_eq!(normalize_tag("busybox:1.36"), "busybox:1.36");
        assert_eq!(normalize_tag("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(normalize_tag("localhost:5000/x:v1"), "localhost:5000/x:v1");
        let d = format!("x@sha256:{}", "a".repeat(64));
        assert_eq!(normalize_tag(&d), d);
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|&n| n.to_owned()).collect()
    }

    #[test]
    fn repositories_of_tags_and_digests() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(repository_of("localhost:5000/x:1"), "localhost:5000/x");
        assert_eq!(
            repository_of(&format!("localhost:5000/x@{d}")),
            "localhost:5000/x"
        );
        assert_eq!(repository_of("busybox"), "busybox");
    }

    #[test]
    fn a_repositorys_last_tag_takes_its_digests_along() {
        let d = format!("r@sha256:{}", "a".repeat(64));
        let all = names(&["r:1", &d, "s:1"]);
        assert_eq!(references_going_with(&all, "r:1"), names(&["r:1", &d]));
        assert_eq!(references_going_with(&all, "s:1"), names(&["s:1"]));
        assert_eq!(references_going_with(&all, &d), names(&[&d]));
        let two_tags = names(&["r:1", "r:2", &d]);
        assert_eq!(references_going_with(&two_tags, "r:1"), names(&["r:1"]));
    }

    #[test]
    fn one_tag_with_its_digests_is_a_single_reference() {
        let d = format!("r@sha256:{}", "a".repeat(64));
        assert!(single_reference(&[]));
        assert!(single_reference(&names(&["r:1", &d])));
        assert!(single_reference(&names(&[&d])));
        assert!(!single_reference(&names(&["r:1", "r:2"])));
        assert!(!single_reference(&names(&["s:1", &d])));
    }

    #[test]
    fn references_are_checked() {
        assert!(validate_reference("docker.io/library/busybox:latest").is_ok());
        for bad in ["", "a b", "/x", ":x", "x\n"] {
            assert!(validate_reference(bad).is_err(), "{bad:?}");
        }
    }
}
