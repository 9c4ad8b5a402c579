//! Container records: create, look up (id, name, prefix), list with filters, state transitions,
//! rename, update and remove. Every change appends its event in the same transaction.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use rusqlite::{OptionalExtension, Row, params};

use crate::config::{Config, HostConfig};
use crate::error::{EngineError, Result};
use crate::events::EventType;
use crate::filter::ContainerFilter;
use crate::id::{ContainerId, Digest, Timestamp, is_full_hex_id, is_hex, validate_name};
use crate::names::random_name;
use crate::state::{self, ContainerState, Status, Transition};
use crate::store::Tx;

/// How a path gets into a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A host path.
    Bind,
    /// A named or anonymous volume; the source is the volume's name.
    Volume,
    /// A tmpfs.
    Tmpfs,
}

impl MountKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Bind => "bind",
            Self::Volume => "volume",
            Self::Tmpfs => "tmpfs",
        }
    }
}

/// One resolved mount of a container (Docker's `Mounts[]` in `inspect`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPoint {
    /// Kind.
    pub kind: MountKind,
    /// Host path (bind), volume name (volume) or empty (tmpfs).
    pub source: String,
    /// Path in the container.
    pub destination: String,
    /// Writable.
    pub read_write: bool,
    /// Bind propagation (`rprivate` if empty).
    pub propagation: String,
}

/// What `create` needs; the store picks the id, paths and (if `name` is `None`) the name.
#[derive(Debug, Clone, Default)]
pub struct NewContainer {
    /// Requested name (validated; `None` generates `adjective_surname`).
    pub name: Option<String>,
    /// Image reference as the user gave it.
    pub image: String,
    /// The image's manifest digest, when it came from the image store.
    pub image_digest: Option<Digest>,
    /// Config, merged with the image's by the caller.
    pub config: Config,
    /// Host config.
    pub host_config: HostConfig,
    /// Mounts; volume mounts must name volumes that exist (create them in the same transaction).
    pub mounts: Vec<MountPoint>,
}

/// A container record.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    /// Id.
    pub id: ContainerId,
    /// Name, without Docker's leading `/`.
    pub name: String,
    /// Image reference as the user gave it.
    pub image: String,
    /// The image's manifest digest.
    pub image_digest: Option<Digest>,
    /// Creation time.
    pub created: Timestamp,
    /// Config.
    pub config: Config,
    /// Host config.
    pub host_config: HostConfig,
    /// Runtime state.
    pub state: ContainerState,
    /// Mounts.
    pub mounts: Vec<MountPoint>,
    /// Bundle directory: `<root>/containers/<id>` (config.json, upper/, work/, logs).
    pub bundle: PathBuf,
    /// Runtime directory: `<run_root>/containers/<id>` (runtime state, attach socket).
    pub run_dir: PathBuf,
    /// The json-file log: `<bundle>/<id>-json.log`.
    pub log_path: PathBuf,
}

const COLUMNS: &str = "id, name, image, image_digest, created, config, host_config, status, pid, \
    monitor_pid, started_at, finished_at, exit_code, oom_killed, restart_count, stopped_by_user, \
    error, health, bundle, run_dir, log_path";

/// Tries at generated names before falling back to one that embeds the id.
const NAME_ATTEMPTS: u32 = 10;

impl Tx<'_> {
    /// Creates a container record in status `created`.
    ///
    /// Errors: `Conflict` when the name is taken, `InvalidArgument` for a bad name, `NotFound`
    /// when a volume mount names a volume that does not exist.
    pub fn create_container(&self, new: NewContainer) -> Result<Container> {
        let id = ContainerId::generate()?;
        let name = match &new.name {
            Some(name) => {
                let name = validate_name("container", name)?.to_owned();
                if let Some(by) = self.container_id_by_name(&name)? {
                    return Err(EngineError::NameInUse {
                        what: "container",
                        name,
                        by: by.to_string(),
                    });
                }
                name
            }
            None => self.generate_container_name(&id)?,
        };
        let containers = self.paths.containers_dir().join(id.as_str());
        let container = Container {
            bundle: containers.clone(),
            run_dir: self.paths.run_containers_dir().join(id.as_str()),
            log_path: containers.join(format!("{id}-json.log")),
            id,
            name,
            image: new.image,
            image_digest: new.image_digest,
            created: Timestamp::now(),
            config: new.config,
            host_config: new.host_config,
            state: ContainerState::created(),
            mounts: new.mounts,
        };
        let config = to_json(&container.config, "config", &container.id)?;
        let host_config = to_json(&container.host_config, "host config", &container.id)?;
        self.tx
            .execute(
                "INSERT INTO containers (id, name, image, image_digest, created, config, host_config, \
                 status, bundle, run_dir, log_path) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    container.id.as_str(),
                    container.name,
                    container.image,
                    container.image_digest.as_ref().map(Digest::as_str),
                    container.created.0,
                    config,
                    host_config,
                    container.state.status.as_str(),
                    path_str(&container.bundle),
                    path_str(&container.run_dir),
                    path_str(&container.log_path),
                ],
            )
            .map_err(EngineError::sqlite("insert container"))?;
        for m in &container.mounts {
            if m.kind == MountKind::Volume && !self.volume_exists(&m.source)? {
                return Err(EngineError::NotFound {
                    what: "volume",
                    reference: m.source.clone(),
                });
            }
            self.tx
                .execute(
                    "INSERT INTO container_mounts (container_id, destination, kind, source, volume, \
                     read_write, propagation) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        container.id.as_str(),
                        m.destination,
                        m.kind.as_str(),
                        m.source,
                        (m.kind == MountKind::Volume).then_some(&m.source),
                        m.read_write,
                        m.propagation,
                    ],
                )
                .map_err(|source| match source.sqlite_error_code() {
                    Some(rusqlite::ffi::ErrorCode::ConstraintViolation) => EngineError::InvalidValue {
                        what: "mount (duplicate destination)",
                        value: m.destination.clone(),
                    },
                    _ => EngineError::Sqlite { action: "insert container mount", source },
                })?;
        }
        self.container_event(&container, "create", BTreeMap::new())?;
        tracing::info!(id = %container.id.short(), name = %container.name, "container created");
        Ok(container)
    }

    fn generate_container_name(&self, id: &ContainerId) -> Result<String> {
        for retry in 0..NAME_ATTEMPTS {
            let name = random_name(retry)?;
            if self.container_id_by_name(&name)?.is_none() {
                return Ok(name);
            }
        }
        Ok(format!("{}_{}", random_name(0)?, id.short()))
    }

    fn container_id_by_name(&self, name: &str) -> Result<Option<ContainerId>> {
        self.tx
            .query_row("SELECT id FROM containers WHERE name = ?1", [name], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .map_err(EngineError::sqlite("look up container name"))?
            .map(|id| ContainerId::parse(&id))
            .transpose()
    }

    /// Resolves a full id, a name (with or without `/`) or a unique id prefix, in Docker's
    /// order. `NotFound` when nothing matches; `InvalidArgument` for an ambiguous prefix.
    pub fn resolve_container(&self, reference: &str) -> Result<ContainerId> {
        let not_found = || EngineError::NotFound {
            what: "container",
            reference: reference.to_owned(),
        };
        if reference.is_empty() {
            return Err(not_found());
        }
        if is_full_hex_id(reference) {
            let found: Option<String> = self
                .tx
                .query_row(
                    "SELECT id FROM containers WHERE id = ?1",
                    [reference],
                    |r| r.get(0),
                )
                .optional()
                .map_err(EngineError::sqlite("look up container id"))?;
            if let Some(id) = found {
                return ContainerId::parse(&id);
            }
        }
        if let Some(id) =
            self.container_id_by_name(reference.strip_prefix('/').unwrap_or(reference))?
        {
            return Ok(id);
        }
        if !is_hex(reference) {
            return Err(not_found());
        }
        let mut stmt = self
            .tx
            .prepare_cached("SELECT id FROM containers WHERE id GLOB ?1 || '*' LIMIT 2")
            .map_err(EngineError::sqlite("look up container id prefix"))?;
        let ids = stmt
            .query_map([reference], |r| r.get::<_, String>(0))
            .map_err(EngineError::sqlite("look up container id prefix"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(EngineError::sqlite("look up container id prefix"))?;
        match ids.as_slice() {
            [] => Err(not_found()),
            [id] => ContainerId::parse(id),
            _ => Err(EngineError::AmbiguousPrefix {
                what: "container",
                prefix: reference.to_owned(),
            }),
        }
    }

    /// The container `reference` names (see [`Tx::resolve_container`]).
    pub fn container(&self, reference: &str) -> Result<Container> {
        let id = self.resolve_container(reference)?;
        self.container_by_id(&id)
    }

    /// The container with this exact id.
    pub fn container_by_id(&self, id: &ContainerId) -> Result<Container> {
        let sql = format!("SELECT {COLUMNS} FROM containers WHERE id = ?1");
        let mut c = self
            .tx
            .query_row(&sql, [id.as_str()], RawContainer::from_row)
            .optional()
            .map_err(EngineError::sqlite("read container"))?
            .ok_or_else(|| EngineError::NotFound {
                what: "container",
                reference: id.to_string(),
            })?
            .decode()?;
        c.mounts = self.mounts_of(Some(id))?.remove(id).unwrap_or_default();
        Ok(c)
    }

    /// Containers matching `filter`, newest first (`docker ps -a` order).
    pub fn list_containers(&self, filter: &ContainerFilter) -> Result<Vec<Container>> {
        let sql = format!("SELECT {COLUMNS} FROM containers ORDER BY created DESC, id");
        let mut stmt = self
            .tx
            .prepare_cached(&sql)
            .map_err(EngineError::sqlite("list containers"))?;
        let raws = stmt
            .query_map([], RawContainer::from_row)
            .map_err(EngineError::sqlite("list containers"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(EngineError::sqlite("list containers"))?;
        let mut mounts = self.mounts_of(None)?;
        let ancestors = self.ancestor_digests(filter)?;
        let mut out = Vec::with_capacity(raws.len());
        for raw in raws {
            let mut c = raw.decode()?;
            c.mounts = mounts.remove(&c.id).unwrap_or_default();
            if filter.matches(&c, &ancestors) {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// The digests the filter's `ancestor=` values resolve to (values that name no image
    /// still match containers by their image reference).
    fn ancestor_digests(&self, filter: &ContainerFilter) -> Result<Vec<Digest>> {
        let mut digests = Vec::new();
        for a in &filter.ancestors {
            match self.resolve_image(a) {
                Ok(img) => digests.push(img.digest),
                Err(e) if e.kind() == crate::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(digests)
    }

    fn mounts_of(&self, id: Option<&ContainerId>) -> Result<HashMap<ContainerId, Vec<MountPoint>>> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "SELECT container_id, kind, source, destination, read_write, propagation \
                 FROM container_mounts WHERE ?1 IS NULL OR container_id = ?1 ORDER BY destination",
            )
            .map_err(EngineError::sqlite("read container mounts"))?;
        let rows = stmt
            .query_map([id.map(ContainerId::as_str)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, bool>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })
            .map_err(EngineError::sqlite("read container mounts"))?;
        let mut out: HashMap<ContainerId, Vec<MountPoint>> = HashMap::new();
        for row in rows {
            let (cid, kind, source, destination, read_write, propagation) =
                row.map_err(EngineError::sqlite("read container mounts"))?;
            let kind = match kind.as_str() {
                "bind" => MountKind::Bind,
                "volume" => MountKind::Volume,
                "tmpfs" => MountKind::Tmpfs,
                _ => {
                    return Err(EngineError::Corrupt {
                        table: "container_mounts",
                        key: format!("{cid} {destination}"),
                        column: "kind",
                        value: kind,
                    });
                }
            };
            out.entry(ContainerId::parse(&cid)?)
                .or_default()
                .push(MountPoint {
                    kind,
                    source,
                    destination,
                    read_write,
                    propagation,
                });
        }
        Ok(out)
    }

    /// Applies a state transition (see [`state::apply`]) and appends its event. `Conflict` when
    /// the state machine forbids it.
    pub fn transition(&self, id: &ContainerId, transition: Transition) -> Result<Container> {
        let mut c = self.container_by_id(id)?;
        let action = transition.action();
        let event = transition.event();
        c.state = state::apply(&c.state, transition, c.id.short())?;
        let s = &c.state;
        let health = s
            .health
            .as_ref()
            .map(|h| to_json(h, "health", &c.id))
            .transpose()?;
        self.tx
            .execute(
                "UPDATE containers SET status = ?2, pid = ?3, monitor_pid = ?4, started_at = ?5, \
                 finished_at = ?6, exit_code = ?7, oom_killed = ?8, restart_count = ?9, \
                 stopped_by_user = ?10, error = ?11, health = ?12 WHERE id = ?1",
                params![
                    c.id.as_str(),
                    s.status.as_str(),
                    s.pid,
                    s.monitor_pid,
                    s.started_at.map(|t| t.0),
                    s.finished_at.map(|t| t.0),
                    s.exit_code,
                    s.oom_killed,
                    s.restart_count,
                    s.stopped_by_user,
                    s.error,
                    health,
                ],
            )
            .map_err(EngineError::sqlite("update container state"))?;
        if let Some(event) = event {
            let mut attrs = BTreeMap::new();
            if event == "die" {
                if let Some(code) = s.exit_code {
                    attrs.insert("exitCode".to_owned(), code.to_string());
                }
                if s.oom_killed {
                    self.container_event(&c, "oom", BTreeMap::new())?;
                }
            }
            self.container_event(&c, &event, attrs)?;
        }
        tracing::info!(id = %c.id.short(), status = %s.status, action, "container state");
        Ok(c)
    }

    /// Renames a container. `Conflict` when the new name is taken.
    pub fn rename_container(&self, reference: &str, new_name: &str) -> Result<Container> {
        let id = self.resolve_container(reference)?;
        let new_name = validate_name("container", new_name)?.to_owned();
        let old = self.container_by_id(&id)?;
        if old.name == new_name {
            return Ok(old);
        }
        if let Some(by) = self.container_id_by_name(&new_name)? {
            return Err(EngineError::NameInUse {
                what: "container",
                name: new_name,
                by: by.to_string(),
            });
        }
        self.tx
            .execute(
                "UPDATE containers SET name = ?2 WHERE id = ?1",
                params![id.as_str(), new_name],
            )
            .map_err(EngineError::sqlite("rename container"))?;
        let c = self.container_by_id(&id)?;
        let attrs = BTreeMap::from([("oldName".to_owned(), old.name)]);
        self.container_event(&c, "rename", attrs)?;
        Ok(c)
    }

    /// Replaces a container's host config (`docker update`: limits, restart policy).
    pub fn update_host_config(
        &self,
        id: &ContainerId,
        host_config: &HostConfig,
    ) -> Result<Container> {
        let json = to_json(host_config, "host config", id)?;
        let n = self
            .tx
            .execute(
                "UPDATE containers SET host_config = ?2 WHERE id = ?1",
                params![id.as_str(), json],
            )
            .map_err(EngineError::sqlite("update host config"))?;
        if n == 0 {
            return Err(EngineError::NotFound {
                what: "container",
                reference: id.to_string(),
            });
        }
        let c = self.container_by_id(id)?;
        self.container_event(&c, "update", BTreeMap::new())?;
        Ok(c)
    }

    /// Sets `HostConfig.AutoRemove` (no event: `restart` turns it off while it restarts an
    /// `--rm` container, as Docker does).
    pub(crate) fn set_auto_remove(&self, id: &ContainerId, on: bool) -> Result<()> {
        self.tx
            .execute(
                "UPDATE containers SET host_config = json_set(host_config, '$.AutoRemove', \
                 json(?2)) WHERE id = ?1",
                params![id.as_str(), if on { "true" } else { "false" }],
            )
            .map_err(EngineError::sqlite("update host config"))?;
        Ok(())
    }

    /// Deletes a container record and its mounts (volumes stay). Only a container that is not
    /// active (created, exited, dead, removing) can be removed: stop it first. Returns the
    /// record, whose bundle and run directories the caller deletes.
    pub fn remove_container(&self, id: &ContainerId) -> Result<Container> {
        let c = self.container_by_id(id)?;
        if c.state.status.is_active() {
            return Err(EngineError::IllegalTransition {
                id: c.id.short().to_owned(),
                action: "remove",
                from: c.state.status,
            });
        }
        self.tx
            .execute("DELETE FROM containers WHERE id = ?1", [id.as_str()])
            .map_err(EngineError::sqlite("delete container"))?;
        self.container_event(&c, "destroy", BTreeMap::new())?;
        tracing::info!(id = %c.id.short(), name = %c.name, "container removed");
        Ok(c)
    }

    /// Appends a container event with Docker's attributes: name, image, labels, plus `extra`.
    pub fn container_event(
        &self,
        c: &Container,
        action: &str,
        extra: BTreeMap<String, String>,
    ) -> Result<()> {
        let mut attrs = c.config.labels.clone();
        attrs.insert("name".to_owned(), c.name.clone());
        attrs.insert("image".to_owned(), c.image.clone());
        attrs.extend(extra);
        self.append_event(EventType::Container, action, c.id.as_str(), &attrs)
    }
}

fn to_json<T: serde::Serialize>(v: &T, what: &str, id: &ContainerId) -> Result<String> {
    serde_json::to_string(v).map_err(|source| EngineError::Json {
        action: format!("encode {what} of container {}", id.short()),
        source,
    })
}

fn path_str(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A containers row before its JSON and enum columns are decoded.
struct RawContainer {
    id: String,
    name: String,
    image: String,
    image_digest: Option<String>,
    created: i64,
    config: String,
    host_config: String,
    status: String,
    pid: Option<i32>,
    monitor_pid: Option<i32>,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    exit_code: Option<i64>,
    oom_killed: bool,
    restart_count: i64,
    stopped_by_user: bool,
    error: String,
    health: Option<String>,
    bundle: String,
    run_dir: String,
    log_path: String,
}

impl RawContainer {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            name: r.get(1)?,
            image: r.get(2)?,
            image_digest: r.get(3)?,
            created: r.get(4)?,
            config: r.get(5)?,
            host_config: r.get(6)?,
            status: r.get(7)?,
            pid: r.get(8)?,
            monitor_pid: r.get(9)?,
            started_at: r.get(10)?,
            finished_at: r.get(11)?,
            exit_code: r.get(12)?,
            oom_killed: r.get(13)?,
            restart_count: r.get(14)?,
            stopped_by_user: r.get(15)?,
            error: r.get(16)?,
            health: r.get(17)?,
            bundle: r.get(18)?,
            run_dir: r.get(19)?,
            log_path: r.get(20)?,
        })
    }

    fn decode(self) -> Result<Container> {
        let corrupt = |column: &'static str, value: String| EngineError::Corrupt {
            table: "containers",
            key: self.id.clone(),
            column,
            value,
        };
        let id = ContainerId::parse(&self.id).map_err(|_| corrupt("id", self.id.clone()))?;
        let json_err = |what: &str| {
            let short = id.short().to_owned();
            let what = what.to_owned();
            move |source| EngineError::Json {
                action: format!("decode {what} of container {short}"),
                source,
            }
        };
        let config: Config = serde_json::from_str(&self.config).map_err(json_err("config"))?;
        let host_config: HostConfig =
            serde_json::from_str(&self.host_config).map_err(json_err("host config"))?;
        let health = self
            .health
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(json_err("health"))?;
        let status: Status = self
            .status
            .parse()
            .map_err(|_| corrupt("status", self.status.clone()))?;
        let image_digest = self
            .image_digest
            .as_deref()
            .map(Digest::parse)
            .transpose()
            .map_err(|_| {
                corrupt(
                    "image_digest",
                    self.image_digest.clone().unwrap_or_default(),
                )
            })?;
        Ok(Container {
            id,
            name: self.name,
            image: self.image,
            image_digest,
            created: Timestamp(self.created),
            config,
            host_config,
            state: ContainerState {
                status,
                pid: self.pid,
                monitor_pid: self.monitor_pid,
                started_at: self.started_at.map(Timestamp),
                finished_at: self.finished_at.map(Timestamp),
                exit_code: self.exit_code,
                oom_killed: self.oom_killed,
                restart_count: self.restart_count,
                stopped_by_user: self.stopped_by_user,
                error: self.error,
                health,
            },
            mounts: Vec::new(),
            bundle: PathBuf::from(self.bundle),
            run_dir: PathBuf::from(self.run_dir),
            log_path: PathBuf::from(self.log_path),
        })
    }
}
