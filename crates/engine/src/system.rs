//! System-wide verbs: `events`, `system df`, `system prune`, `info` and `version`, and Docker's
//! time syntax (`--since`, `--until`, `until=`) they share.

use serde_json::{Value, json};

use crate::containers::Container;
use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::events::{Event, EventFilter};
use crate::filter::ContainerFilter;
use crate::id::Timestamp;
use crate::images::Image;
use crate::ps::ContainerSize;
use crate::state::Status;
use crate::times::parse_time;
use crate::volumes::{Volume, VolumeFilter};

/// What `system df` counts.
#[derive(Debug, Clone, Default)]
pub struct DiskUsage {
    /// Images and how many containers use each.
    pub images: Vec<(Image, usize)>,
    /// Containers and their sizes.
    pub containers: Vec<(Container, ContainerSize)>,
    /// Volumes and the bytes below their directories.
    pub volumes: Vec<(Volume, i64)>,
}

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Ids or names removed.
    pub removed: Vec<String>,
    /// Bytes freed.
    pub reclaimed: i64,
}

impl Engine {
    /// Events passing `filter`, oldest first.
    ///
    /// Errors: the store cannot be read.
    pub fn events(&self, filter: &EventFilter) -> Result<Vec<Event>> {
        self.store.read(|tx| tx.events(filter))
    }

    /// Disk use of images, containers and volumes.
    ///
    /// Errors: the store cannot be read.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let (images, containers, volumes) = self.store.read(|tx| {
            Ok((
                tx.list_images()?,
                tx.list_containers(&ContainerFilter::default())?,
                tx.list_volumes(&VolumeFilter::default())?,
            ))
        })?;
        let images = images
            .into_iter()
            .map(|i| {
                let users = containers
                    .iter()
                    .filter(|c| c.image_digest.as_ref() == Some(&i.digest))
                    .count();
                (i, users)
            })
            .collect();
        let containers = containers
            .into_iter()
            .map(|c| {
                let s = self.container_size(&c);
                (c, s)
            })
            .collect();
        let volumes = volumes
            .into_iter()
            .map(|v| {
                let size = crate::ps::dir_size(&v.mountpoint);
                (v, size)
            })
            .collect();
        Ok(DiskUsage {
            images,
            containers,
            volumes,
        })
    }

    /// Removes every container that is not running (created, exited, dead) and passes
    /// `filters` (`until=TIME`, `label=K[=V]`, `label!=K[=V]`).
    ///
    /// Errors: a bad filter, or the store cannot be read. A container that cannot be removed
    /// is skipped (logged).
    pub fn prune_containers(&self, filters: &[String]) -> Result<Pruned> {
        let f = PruneFilter::parse(filters)?;
        let mut out = Pruned::default();
        for c in self.ps_with(&crate::ps::PsOptions {
            all: true,
            ..Default::default()
        })? {
            if c.state.status.is_active()
                || c.state.status == Status::Removing
                || !f.matches(c.created, &c.config.labels)
            {
                continue;
            }
            let size = self.container_size(&c).rw;
            match self.remove(c.id.as_str(), false) {
                Ok(_) => {
                    out.removed.push(c.id.to_string());
                    out.reclaimed += size;
                }
                Err(e) => tracing::warn!("prune container {}: {e}", c.id.short()),
            }
        }
        Ok(out)
    }

    /// `system prune`'s images: dangling ones (every one no container uses with `all`) passing
    /// `filters` (`until=TIME`, `label=K[=V]`, `label!=K[=V]`), then their data. Returns the
    /// removals and the bytes reclaimed.
    ///
    /// Errors: a bad filter, or the store cannot be written or the data collected.
    pub fn prune_images_filtered(
        &self,
        all: bool,
        filters: &[String],
    ) -> Result<(Vec<crate::images::ImageRemoval>, u64)> {
        let f = PruneFilter::parse(filters)?;
        self.prune_images_matching(all, |img| {
            f.matches(img.created.unwrap_or(Timestamp(0)), &img.labels)
        })
    }

    /// Removes unused anonymous volumes (named ones too with `all`: `volume prune -a`) passing
    /// `filters` (`label=`, `label!=`), and their directories.
    ///
    /// Errors: a bad filter, or the store cannot be written.
    pub fn prune_volumes(&self, filters: &[String], all: bool) -> Result<Pruned> {
        let f = PruneFilter::parse(filters)?;
        if f.until.is_some() {
            return Err(EngineError::InvalidValue {
                what: "filter for volumes (until is not one)",
                value: "until".into(),
            });
        }
        let removed = self.store.write(|tx| {
            let unused: Vec<Volume> = tx
                .list_volumes(&VolumeFilter::default())?
                .into_iter()
                .filter(|v| {
                    v.ref_count == 0 && (all || v.anonymous) && f.matches(v.created, &v.labels)
                })
                .collect();
            unused
                .iter()
                .map(|v| tx.remove_volume(&v.name))
                .collect::<Result<Vec<_>>>()
        })?;
        let mut out = Pruned::default();
        for v in removed {
            out.reclaimed += crate::ps::dir_size(&v.mountpoint);
            if let Some(dir) = v.mountpoint.parent()
                && let Err(e) = std::fs::remove_dir_all(dir)
            {
                tracing::warn!("remove volume directory {}: {e}", dir.display());
            }
            out.removed.push(v.name);
        }
        Ok(out)
    }

    /// Docker's `GET /info` object, as far as berth has its fields.
    ///
    /// Errors: the store cannot be read.
    pub fn info(&self) -> Result<Value> {
        let (containers, images) = self.store.read(|tx| {
            Ok((
                tx.list_containers(&ContainerFilter::default())?,
                tx.list_images()?.len(),
            ))
        })?;
        let count = |s: Status| containers.iter().filter(|c| c.state.status == s).count();
        let (running, paused) = (count(Status::Running), count(Status::Paused));
        let hierarchy = cgroups::Hierarchy::detect(std::path::Path::new(cgroups::DEFAULT_ROOT))
            .map_or("unknown", |h| match h {
                cgroups::Hierarchy::V2 => "2",
                _ => "1",
            });
        let uname = rustix::system::uname();
        let text = |b: &std::ffi::CStr| b.to_string_lossy().into_owned();
        let os = std::fs::read_to_string("/etc/os-release")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map_or_else(|| "Linux".to_owned(), |v| v.trim_matches('"').to_owned());
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let mem_total = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024);
        let mut runtimes = serde_json::Map::new();
        runtimes.insert("berth".into(), json!({"path": "(in-process)"}));
        for name in ["runc", "crun", "berth-runtime"] {
            if let Ok(path) = crate::oci::resolve_binary(name) {
                runtimes.insert(name.into(), json!({ "path": path }));
            }
        }
        Ok(json!({
            "Containers": containers.len(),
            "ContainersRunning": running,
            "ContainersPaused": paused,
            "ContainersStopped": containers.len() - running - paused,
            "Images": images,
            "Driver": "overlay2",
            "DockerRootDir": self.paths.root,
            "RunRoot": self.paths.run_root,
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": hierarchy,
            "KernelVersion": text(uname.release()),
            "OperatingSystem": os,
            "OSType": "linux",
            "Architecture": text(uname.machine()),
            "NCPU": cpus,
            "MemTotal": mem_total,
            "Name": text(uname.nodename()),
            "ServerVersion": env!("CARGO_PKG_VERSION"),
            "Runtimes": runtimes,
            "DefaultRuntime": "berth",
            "SecurityOptions": ["name=seccomp,profile=builtin"],
        }))
    }
}

/// `version`'s facts about this build and host, in the shape of Docker's `Server` part.
#[must_use]
pub fn version() -> Value {
    let uname = rustix::system::uname();
    json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "Os": "linux",
        "Arch": std::env::consts::ARCH,
        "KernelVersion": uname.release().to_string_lossy(),
        "Components": [
            {"Name": "Engine", "Version": env!("CARGO_PKG_VERSION")},
            {"Name": "berth-runtime", "Version": env!("CARGO_PKG_VERSION")},
        ],
    })
}

/// Docker's prune filters: `until=TIME`, `label=K[=V]` (all must match), `label!=K[=V]` (none
/// may match).
#[derive(Debug, Default)]
struct PruneFilter {
    until: Option<Timestamp>,
    labels: Vec<(String, Option<String>)>,
    not_labels: Vec<(String, Option<String>)>,
}

impl PruneFilter {
    fn parse(filters: &[String]) -> Result<Self> {
        let mut f = Self::default();
        let now = Timestamp::now();
        for raw in filters {
            if let Some(v) = raw.strip_prefix("label!=") {
                f.not_labels.push(crate::filter::parse_label(v));
                continue;
            }
            match crate::filter::split(raw)? {
                ("until", v) => f.until = Some(parse_time(v, now)?),
                ("label", v) => f.labels.push(crate::filter::parse_label(v)),
                _ => return Err(crate::filter::invalid(raw)),
            }
        }
        Ok(f)
    }

    fn matches(
        &self,
        created: Timestamp,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> bool {
        let get = |k: &str| labels.get(k).map(String::as_str);
        self.until.is_none_or(|u| created < u)
            && crate::filter::labels_match(&self.labels, get)
            && self
                .not_labels
                .iter()
                .all(|l| !crate::filter::labels_match(std::slice::from_ref(l), get))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_filters() {
        let f = PruneFilter::parse(&["label=a".into(), "label!=b=1".into()]).unwrap();
        let labels = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(f.matches(Timestamp(0), &labels(&[("a", "x")])));
        assert!(!f.matches(Timestamp(0), &labels(&[("a", "x"), ("b", "1")])));
        assert!(!f.matches(Timestamp(0), &labels(&[])));
        assert!(PruneFilter::parse(&["colour=red".into()]).is_err());
    }
}
