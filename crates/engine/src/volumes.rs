//! Volume records (`docker volume`): local volumes under `<root>/volumes/<name>/_data`. A volume
//! is in use while a container record mounts it (the `container_mounts` rows, whose foreign key
//! also stops SQLite from deleting a used volume). Directories are the caller's to create and
//! delete; this module records names and says which volumes went.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rusqlite::{OptionalExtension, Row, params};

use crate::error::{EngineError, Result};
use crate::events::EventType;
use crate::id::{Timestamp, random_hex, validate_name};
use crate::store::Tx;

/// The only driver so far.
pub const LOCAL_DRIVER: &str = "local";

/// A volume to create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewVolume {
    /// Name; `None` makes an anonymous volume named by 64 random hex digits.
    pub name: Option<String>,
    /// Driver; `None` is `local`.
    pub driver: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Driver options (`type`, `device`, `o` for local).
    pub options: BTreeMap<String, String>,
}

/// A volume record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Name.
    pub name: String,
    /// Driver.
    pub driver: String,
    /// Host directory mounted into containers.
    pub mountpoint: PathBuf,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Driver options.
    pub options: BTreeMap<String, String>,
    /// Made for one container (`-v /path`) rather than by name.
    pub anonymous: bool,
    /// Creation time.
    pub created: Timestamp,
    /// Number of container records mounting it.
    pub ref_count: i64,
}

/// Which volumes to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeFilter {
    /// `dangling=true`: only unused; `false`: only used.
    pub dangling: Option<bool>,
    /// `name=`: the name contains any of these.
    pub names: Vec<String>,
    /// `label=`: all must match.
    pub labels: Vec<(String, Option<String>)>,
}

impl VolumeFilter {
    /// Parses `docker volume ls --filter` values.
    pub fn parse<S: AsRef<str>>(filters: &[S]) -> Result<Self> {
        let mut f = Self::default();
        for raw in filters {
            let raw = raw.as_ref();
            let bad = || crate::filter::invalid(raw);
            let (key, value) = crate::filter::split(raw)?;
            match key {
                "dangling" => f.dangling = Some(crate::filter::parse_bool(raw, value)?),
                "name" => f.names.push(value.to_owned()),
                "label" => f.labels.push(crate::filter::parse_label(value)),
                _ => return Err(bad()),
            }
        }
        Ok(f)
    }

    /// Whether `v` passes.
    #[must_use]
    pub fn matches(&self, v: &Volume) -> bool {
        self.dangling.is_none_or(|d| d == (v.ref_count == 0))
            && (self.names.is_empty() || self.names.iter().any(|n| v.name.contains(n.as_str())))
            && crate::filter::labels_match(&self.labels, |k| v.labels.get(k).map(String::as_str))
    }
}

const COLUMNS: &str = "name, driver, mountpoint, labels, options, anonymous, created, \
    (SELECT count(*) FROM container_mounts m WHERE m.volume = volumes.name)";

impl Tx<'_> {
    /// Creates a volume record. Like Docker, creating a name that exists with the same driver
    /// returns the existing volume; another driver is a `Conflict`.
    pub fn create_volume(&self, new: &NewVolume) -> Result<Volume> {
        let (name, anonymous) = match &new.name {
            Some(n) => (validate_name("volume", n)?.to_owned(), false),
            None => (random_hex()?, true),
        };
        let driver = new
            .driver
            .clone()
            .unwrap_or_else(|| LOCAL_DRIVER.to_owned());
        if let Some(existing) = self.find_volume(&name)? {
            if existing.driver != driver {
                return Err(EngineError::NameInUse {
                    what: "volume",
                    name,
                    by: format!("driver {}", existing.driver),
                });
            }
            return Ok(existing);
        }
        let mountpoint = self.paths.volumes_dir().join(&name).join("_data");
        let json = |m: &BTreeMap<String, String>| {
            serde_json::to_string(m).map_err(|source| EngineError::Json {
                action: format!("encode volume {name}"),
                source,
            })
        };
        self.tx
            .execute(
                "INSERT INTO volumes (name, driver, mountpoint, labels, options, anonymous, created) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    name,
                    driver,
                    mountpoint.to_string_lossy(),
                    json(&new.labels)?,
                    json(&new.options)?,
                    anonymous,
                    Timestamp::now().0
                ],
            )
            .map_err(EngineError::sqlite("insert volume"))?;
        self.append_event(
            EventType::Volume,
            "create",
            &name,
            &BTreeMap::from([("driver".to_owned(), driver)]),
        )?;
        self.volume(&name)
    }

    pub(crate) fn volume_exists(&self, name: &str) -> Result<bool> {
        self.tx
            .query_row("SELECT 1 FROM volumes WHERE name = ?1", [name], |_| Ok(()))
            .optional()
            .map(|o| o.is_some())
            .map_err(EngineError::sqlite("look up volume"))
    }

    fn find_volume(&self, name: &str) -> Result<Option<Volume>> {
        let sql = format!("SELECT {COLUMNS} FROM volumes WHERE name = ?1");
        self.tx
            .query_row(&sql, [name], raw_volume)
            .optional()
            .map_err(EngineError::sqlite("read volume"))?
            .map(RawVolume::decode)
            .transpose()
    }

    /// The volume named `name`.
    pub fn volume(&self, name: &str) -> Result<Volume> {
        self.find_volume(name)?
            .ok_or_else(|| EngineError::NotFound {
                what: "volume",
                reference: name.to_owned(),
            })
    }

    /// Volumes passing `filter`, by name.
    pub fn list_volumes(&self, filter: &VolumeFilter) -> Result<Vec<Volume>> {
        let sql = format!("SELECT {COLUMNS} FROM volumes ORDER BY name");
        let mut stmt = self
            .tx
            .prepare_cached(&sql)
            .map_err(EngineError::sqlite("list volumes"))?;
        let rows = stmt
            .query_map([], raw_volume)
            .map_err(EngineError::sqlite("list volumes"))?;
        let mut out = Vec::new();
        for row in rows {
            let v = row.map_err(EngineError::sqlite("list volumes"))?.decode()?;
            if filter.matches(&v) {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Deletes a volume record; `Conflict` while a container mounts it. Returns the record,
    /// whose directory the caller deletes.
    pub fn remove_volume(&self, name: &str) -> Result<Volume> {
        let v = self.volume(name)?;
        if v.ref_count > 0 {
            let mut stmt = self
                .tx
                .prepare_cached(
                    "SELECT substr(container_id, 1, 12) FROM container_mounts WHERE volume = ?1 ORDER BY 1",
                )
                .map_err(EngineError::sqlite("list volume users"))?;
            let users = stmt
                .query_map([name], |r| r.get::<_, String>(0))
                .map_err(EngineError::sqlite("list volume users"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(EngineError::sqlite("list volume users"))?;
            return Err(EngineError::InUse {
                what: "volume",
                name: name.to_owned(),
                users: users.join(", "),
            });
        }
        self.tx
            .execute("DELETE FROM volumes WHERE name = ?1", [name])
            .map_err(EngineError::sqlite("delete volume"))?;
        self.append_event(EventType::Volume, "destroy", name, &BTreeMap::new())?;
        Ok(v)
    }

    /// `docker volume prune`: deletes unused volumes passing `filter`, only anonymous ones
    /// unless `all`. Returns the records deleted.
    pub fn prune_volumes(&self, filter: &VolumeFilter, all: bool) -> Result<Vec<Volume>> {
        let mut removed = Vec::new();
        for v in self.list_volumes(filter)? {
            if v.ref_count == 0 && (all || v.anonymous) {
                removed.push(self.remove_volume(&v.name)?);
            }
        }
        Ok(removed)
    }
}

struct RawVolume {
    name: String,
    driver: String,
    mountpoint: String,
    labels: String,
    options: String,
    anonymous: bool,
    created: i64,
    ref_count: i64,
}

fn raw_volume(r: &Row<'_>) -> rusqlite::Result<RawVolume> {
    Ok(RawVolume {
        name: r.get(0)?,
        driver: r.get(1)?,
        mountpoint: r.get(2)?,
        labels: r.get(3)?,
        options: r.get(4)?,
        anonymous: r.get(5)?,
        created: r.get(6)?,
        ref_count: r.get(7)?,
    })
}

impl RawVolume {
    fn decode(self) -> Result<Volume> {
        let json = |s: &str| {
            serde_json::from_str(s).map_err(|source| EngineError::Json {
                action: format!("decode volume {}", self.name),
                source,
            })
        };
        Ok(Volume {
            labels: json(&self.labels)?,
            options: json(&self.options)?,
            name: self.name,
            driver: self.driver,
            mountpoint: PathBuf::from(self.mountpoint),
            anonymous: self.anonymous,
            created: Timestamp(self.created),
            ref_count: self.ref_count,
        })
    }
}
