//! `ps` beyond the plain list: Docker's `-a`, `-n`/`-l`, `--filter` (with `before=`/`since=`,
//! which name other containers) and `-s` sizes.

use std::path::{Path, PathBuf};

use crate::containers::Container;
use crate::engine::Engine;
use crate::error::Result;
use crate::filter::ContainerFilter;

/// What `ps` lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PsOptions {
    /// `-a`: stopped containers too.
    pub all: bool,
    /// `-n N` (`-l` is 1): only the N most recently created, in any state.
    pub last: Option<usize>,
    /// `--filter key=value`.
    pub filters: Vec<String>,
}

/// A container's disk use (`ps -s`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContainerSize {
    /// Bytes written to its writable layer.
    pub rw: i64,
    /// That plus its image's size.
    pub virtual_size: i64,
}

impl Engine {
    /// Containers passing `opts`, newest first.
    ///
    /// Errors: a bad filter, a `before=`/`since=` naming no container, or the store cannot be
    /// read.
    pub fn ps_with(&self, opts: &PsOptions) -> Result<Vec<Container>> {
        let (mut keys, mut before, mut since) = (Vec::new(), Vec::new(), Vec::new());
        for raw in &opts.filters {
            match crate::filter::split(raw)? {
                ("before", v) => before.push(self.container(v)?),
                ("since", v) => since.push(self.container(v)?),
                _ => keys.push(raw.clone()),
            }
        }
        let filter = ContainerFilter::parse(&keys)?;
        // Docker lists stopped containers too when asked for the last N or for a status.
        let all = opts.all || opts.last.is_some() || !filter.statuses.is_empty();
        let mut list = self.store.read(|tx| tx.list_containers(&filter))?;
        self.repair_gone(&mut list);
        list.retain(|c| {
            (all || c.state.status.is_active())
                && before
                    .iter()
                    .all(|b| (c.created, &c.id) < (b.created, &b.id))
                && since
                    .iter()
                    .all(|s| (c.created, &c.id) > (s.created, &s.id))
        });
        list.sort_by(|a, b| (b.created, &b.id).cmp(&(a.created, &a.id)));
        if let Some(n) = opts.last {
            list.truncate(n);
        }
        Ok(list)
    }

    /// Lazy repair: a container recorded as active whose monitor is gone (killed) is stopped,
    /// cleaned up and recorded as exited, so `ps` never shows a container nothing manages.
    fn repair_gone(&self, list: &mut Vec<Container>) {
        let mut reaped = false;
        for c in list.iter() {
            reaped |= self.repair_orphaned(c);
        }
        if reaped {
            let ids: Vec<_> = list.iter().map(|c| c.id.clone()).collect();
            list.clear();
            for id in ids {
                if let Ok(c) = self.store.read(|tx| tx.container_by_id(&id)) {
                    list.push(c);
                }
            }
        }
    }

    /// The size of `c`'s writable layer and, with its image, its virtual size.
    #[must_use]
    pub fn container_size(&self, c: &Container) -> ContainerSize {
        let rw = upperdir(c).map_or(0, |p| dir_size(&p));
        let image = c
            .image_digest
            .as_ref()
            .and_then(|d| self.store.read(|tx| tx.image_by_digest(d)).ok())
            .map_or(0, |i| i.size);
        ContainerSize {
            rw,
            virtual_size: rw + image,
        }
    }
}

/// The container's overlay upperdir, as its bundle's `rootfs.json` names it.
pub(crate) fn upperdir(c: &Container) -> Option<PathBuf> {
    let text = std::fs::read(c.bundle.join("rootfs.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    v["upperdir"].as_str().map(PathBuf::from)
}

/// Bytes of the files below `dir` (each inode once, symlinks not followed), as Docker sums a
/// layer's size.
pub(crate) fn dir_size(dir: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0i64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if seen.insert((m.dev(), m.ino())) {
                total += i64::try_from(m.len()).unwrap_or(i64::MAX);
            }
        }
    }
    total
}
