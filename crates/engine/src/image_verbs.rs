//! Image verbs over the records and the image store: `images` (with Docker's filters),
//! `history`, `tag`, `rmi`, `image prune`, and the garbage collection every removal ends with
//! (also what `system prune` calls).

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use image::Collected;

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::filter::{invalid, labels_match, parse_label, split};
use crate::id::{Digest, Timestamp};
use crate::images::{Image, ImageRemoval};
use crate::times::{parse_rfc3339, parse_time};

/// Docker's `--filter` for images; the default matches every image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFilter {
    /// `dangling=true|false`.
    pub dangling: Option<bool>,
    /// `label=key` / `label=key=value`: all must match.
    pub labels: Vec<(String, Option<String>)>,
    /// `reference=pattern` (glob on `repo` or `repo:tag`): any may match.
    pub references: Vec<String>,
    /// `before=image`: created before that image.
    pub before: Option<String>,
    /// `since=image`: created after that image.
    pub since: Option<String>,
    /// `until=timestamp` (prune): created before this time.
    pub until: Option<Timestamp>,
}

impl ImageFilter {
    /// Parses `key=value` filters.
    ///
    /// Errors: an unknown key or a malformed value (`InvalidArgument`).
    pub fn parse<S: AsRef<str>>(filters: &[S]) -> Result<Self> {
        let mut f = ImageFilter::default();
        for raw in filters {
            let raw = raw.as_ref();
            let (key, value) = split(raw)?;
            match key {
                "dangling" => f.dangling = Some(crate::filter::parse_bool(raw, value)?),
                "label" => f.labels.push(parse_label(value)),
                "reference" => f.references.push(value.to_owned()),
                "before" => f.before = Some(value.to_owned()),
                "since" => f.since = Some(value.to_owned()),
                "until" => {
                    f.until = Some(parse_time(value, Timestamp::now()).map_err(|_| invalid(raw))?)
                }
                _ => return Err(invalid(raw)),
            }
        }
        Ok(f)
    }

    /// Whether `name` (`repo:tag`) matches the `reference=` filters (true without any): Docker
    /// lists only the matching names of a matching image.
    #[must_use]
    pub fn matches_name(&self, name: &str) -> bool {
        self.references.is_empty() || self.references.iter().any(|p| reference_matches(p, name))
    }

    fn matches(&self, img: &Image, before: Option<Timestamp>, since: Option<Timestamp>) -> bool {
        let created = img.created.unwrap_or(img.added);
        self.dangling.is_none_or(|d| d == img.is_dangling())
            && labels_match(&self.labels, |k| img.labels.get(k).map(String::as_str))
            && (self.references.is_empty()
                || self
                    .references
                    .iter()
                    .any(|p| img.names.iter().any(|n| reference_matches(p, n))))
            && before.is_none_or(|b| created < b)
            && since.is_none_or(|s| created > s)
            && self.until.is_none_or(|u| created < u)
    }
}

/// Docker's `reference=` match: a glob (`*` and `?` within one path component) against the
/// whole name or its repository part.
fn reference_matches(pattern: &str, name: &str) -> bool {
    let repo = name
        .rsplit_once(':')
        .map_or(name, |(r, t)| if t.contains('/') { name } else { r });
    glob(pattern.as_bytes(), name.as_bytes()) || glob(pattern.as_bytes(), repo.as_bytes())
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && glob(p, &s[1..])),
        (Some(b'?'), Some(c)) => *c != b'/' && glob(&p[1..], &s[1..]),
        (Some(a), Some(b)) => a == b && glob(&p[1..], &s[1..]),
        _ => false,
    }
}

/// Docker's rule for a new name: the repository part (before the tag) is lowercase.
///
/// Errors: `InvalidArgument` naming the reference.
pub(crate) fn check_new_reference(reference: &str) -> Result<()> {
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    let repo_end = reference[last_slash..]
        .find([':', '@'])
        .map_or(reference.len(), |i| last_slash + i);
    // The registry host (first component with a `.` or `:`) may have capitals; the path not.
    let path = match reference[..repo_end].split_once('/') {
        Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => rest,
        _ => &reference[..repo_end],
    };
    if path.is_empty() || path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(EngineError::InvalidValue {
            what: "reference format (repository name must be lowercase)",
            value: reference.to_owned(),
        });
    }
    Ok(())
}

/// One row of `docker history`, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The image id for the top row, `<missing>` below (Docker's output for layers that are
    /// not images of their own).
    pub id: String,
    /// When the step ran.
    pub created: Option<Timestamp>,
    /// The command that made it.
    pub created_by: String,
    /// Bytes the step added (its layer, unpacked), 0 for empty layers.
    pub size: i64,
    /// The step's comment.
    pub comment: String,
}

impl Engine {
    /// Images, most recently added first, that match `filter`.
    ///
    /// Errors: a `before`/`since` image that does not exist, or the store cannot be read.
    pub fn list_images(&self, filter: &ImageFilter) -> Result<Vec<Image>> {
        self.store.read(|tx| {
            let created = |r: &Option<String>| -> Result<Option<Timestamp>> {
                r.as_deref()
                    .map(|r| tx.resolve_image(r).map(|i| i.created.unwrap_or(i.added)))
                    .transpose()
            };
            let (before, since) = (created(&filter.before)?, created(&filter.since)?);
            let mut list = tx.list_images()?;
            list.retain(|i| filter.matches(i, before, since));
            Ok(list)
        })
    }

    /// `docker history`: the config's history, newest first, with each layer's size.
    ///
    /// Errors: no such image, or its config cannot be read.
    pub fn history(&self, reference: &str) -> Result<Vec<HistoryEntry>> {
        let (record, img) = self.resolve_image(reference)?;
        let mut chains = img.chain_ids.iter();
        let mut rows: Vec<HistoryEntry> = img
            .config
            .history()
            .iter()
            .flatten()
            .map(|h| {
                let size = if h.empty_layer().unwrap_or(false) {
                    0
                } else {
                    chains
                        .next()
                        .map_or(0, |c| tree_size(&self.images.layers().diff_path(c)))
                };
                HistoryEntry {
                    id: "<missing>".into(),
                    created: h.created().as_deref().and_then(parse_rfc3339),
                    created_by: h.created_by().clone().unwrap_or_default(),
                    size,
                    comment: h.comment().clone().unwrap_or_default(),
                }
            })
            .collect();
        rows.reverse();
        if let Some(top) = rows.first_mut() {
            top.id = record.config_digest.to_string();
        }
        Ok(rows)
    }

    /// `docker tag SOURCE TARGET`.
    ///
    /// Errors: no such source image, or an invalid target reference.
    pub fn tag(&self, source: &str, target: &str) -> Result<()> {
        check_new_reference(target)?;
        self.store.write(|tx| {
            let img = tx.resolve_image(source)?;
            tx.tag_image(&img.digest, target)?;
            Ok(())
        })
    }

    /// `docker rmi` of one reference (see [`crate::Tx::remove_image`] for Docker's rules),
    /// then collects the blobs and layers no image or container uses any more.
    ///
    /// Errors: no such image, or it is in use (`Conflict`) and not forced.
    pub fn remove_image(&self, reference: &str, force: bool) -> Result<ImageRemoval> {
        let removal = self.store.write(|tx| tx.remove_image(reference, force))?;
        if removal.deleted.is_some() {
            self.collect_image_garbage()?;
        }
        Ok(removal)
    }

    /// `docker image prune`: removes dangling images (all unused ones with `all`) that match
    /// `filter` and no container uses, then collects their data. Returns the removals and the
    /// bytes reclaimed.
    ///
    /// Errors: the store cannot be read or written, or collection fails.
    pub fn prune_images(
        &self,
        all: bool,
        filter: &ImageFilter,
    ) -> Result<(Vec<ImageRemoval>, u64)> {
        self.prune_images_matching(all, |img| filter.matches(img, None, None))
    }

    /// [`Engine::prune_images`] with any predicate on the images (`system prune`'s filters).
    pub(crate) fn prune_images_matching(
        &self,
        all: bool,
        wanted: impl Fn(&crate::images::Image) -> bool,
    ) -> Result<(Vec<ImageRemoval>, u64)> {
        let removals = self.store.write(|tx| {
            let mut out = Vec::new();
            for img in tx.list_images()? {
                if (!all && !img.is_dangling())
                    || !wanted(&img)
                    || !tx.image_users(&img.digest)?.is_empty()
                {
                    continue;
                }
                out.push(tx.remove_image(img.digest.as_str(), true)?);
            }
            Ok(out)
        })?;
        let collected = self.collect_image_garbage()?;
        Ok((removals, collected.bytes))
    }

    /// Deletes every blob and unpacked layer that no image record and no container's image
    /// reaches (`system prune` and every image removal end with this).
    ///
    /// Errors: the store cannot be read, or a blob or layer cannot be removed.
    pub fn collect_image_garbage(&self) -> Result<Collected> {
        let roots = self.store.read(|tx| {
            let mut roots: HashSet<String> = tx
                .list_images()?
                .into_iter()
                .map(|i| i.digest.to_string())
                .collect();
            roots.extend(tx.container_image_digests()?);
            Ok(roots)
        })?;
        let roots: Vec<image::Digest> = roots
            .iter()
            .filter_map(|d| image::Digest::parse(d).ok())
            .collect();
        self.images
            .collect_garbage(&roots)
            .map_err(|source| EngineError::Gc {
                source: Box::new(source),
            })
    }
}

impl crate::store::Tx<'_> {
    /// Image digests of all containers (their images' data must stay even when the image
    /// record was force-removed).
    pub fn container_image_digests(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "SELECT DISTINCT image_digest FROM containers WHERE image_digest IS NOT NULL",
            )
            .map_err(EngineError::sqlite("list container images"))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(EngineError::sqlite("list container images"))?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(EngineError::sqlite("list container images"))
    }
}

/// Bytes of the regular files under `dir` (not following symlinks): a layer's unpacked size.
pub(crate) fn tree_size(dir: &Path) -> i64 {
    let mut total = 0i64;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                todo.push(e.path());
            } else if md.is_file() {
                total += i64::try_from(md.size()).unwrap_or(0);
            }
        }
    }
    total
}

/// The record's digest as the image crate's type.
pub(crate) fn image_digest(d: &Digest) -> Result<image::Digest> {
    image::Digest::parse(d.as_str()).map_err(|_| EngineError::InvalidValue {
        what: "image digest",
        value: d.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parses_like_the_formatter_prints() {
        let t = Timestamp(1_700_000_000_123_456_789);
        assert_eq!(parse_rfc3339(&t.to_rfc3339()), Some(t));
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20Z"),
            Some(Timestamp(1_700_000_000_000_000_000))
        );
        assert_eq!(
            parse_rfc3339("2023-11-15T00:13:20+02:00"),
            Some(Timestamp(1_700_000_000_000_000_000))
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn reference_globs_match_repo_or_name() {
        assert!(reference_matches("busybox", "busybox:latest"));
        assert!(reference_matches("busy*", "busybox:latest"));
        assert!(reference_matches("busybox:lat*", "busybox:latest"));
        assert!(!reference_matches("*", "me/app:1"));
        assert!(reference_matches("me/*", "me/app:1"));
        assert!(!reference_matches("alpine", "busybox:latest"));
        assert!(reference_matches("localhost:5000/x", "localhost:5000/x:1"));
    }

    #[test]
    fn new_references_need_a_lowercase_repository() {
        for ok in ["bb", "bb:Tag", "me/app:1", "Registry.example:5000/x/y:Z"] {
            assert!(check_new_reference(ok).is_ok(), "{ok}");
        }
        for bad in ["BB", "me/App:1", "registry.example/X"] {
            assert!(check_new_reference(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn filters_parse_and_refuse_unknown_keys() {
        let f = ImageFilter::parse(&["dangling=true", "label=a=b", "reference=x*"]).expect("ok");
        assert_eq!(f.dangling, Some(true));
        assert_eq!(f.labels, vec![("a".to_owned(), Some("b".to_owned()))]);
        assert!(ImageFilter::parse(&["dangling=maybe"]).is_err());
        assert!(ImageFilter::parse(&["colour=red"]).is_err());
        assert!(ImageFilter::parse(&["until=10m"]).is_ok());
    }
}
