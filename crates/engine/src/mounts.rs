//! A container's own mounts: Docker's `-v` (`HostConfig.Binds`), `--mount` (`HostConfig.Mounts`),
//! `--tmpfs` (`HostConfig.Tmpfs`) and the anonymous volumes of `Config.Volumes` (the image's
//! `VOLUME`s and `-v /path`) become one list, checked with Docker's rules and words before
//! anything is recorded (`mount_flags::plan`), then recorded here as `container_mounts` rows
//! (volumes created on first use, `--volumes-from` copied), then turned into OCI `mounts[]`
//! entries of the bundle. The runtime resolves every
//! destination inside the rootfs (`openat2(RESOLVE_IN_ROOT)`), so nothing here joins paths under
//! the rootfs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::containers::{MountKind, MountPoint};
use crate::error::{EngineError, Result};
use crate::store::Tx;
use crate::volumes::NewVolume;

/// A mount request Docker refuses, in Docker's words.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A `-v` value with too many or too few parts.
    #[error("invalid volume specification: '{spec}'")]
    Spec {
        /// The `-v` value.
        spec: String,
    },
    /// A `-v` mode Docker does not know, or one given twice.
    #[error("invalid mode: {mode}")]
    Mode {
        /// The mode part of the `-v` value.
        mode: String,
    },
    /// A relative container path.
    #[error("invalid mount path: '{path}' mount path must be absolute")]
    NotAbsolute {
        /// The path.
        path: String,
    },
    /// `/` as the destination.
    #[error("invalid specification: destination can't be '/'")]
    RootDestination,
    /// A `-v` source that is neither an absolute host path nor a volume name.
    #[error(
        "create {name}: \"{name}\" includes invalid characters for a local volume name, only \
         \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, \
         use absolute path"
    )]
    VolumeName {
        /// The source given.
        name: String,
    },
    /// A `--mount` whose fields do not fit its type.
    #[error("invalid mount config for type \"{kind}\": {reason}")]
    Config {
        /// The mount type.
        kind: String,
        /// Why.
        reason: MountConfigReason,
    },
    /// A `--mount` field without `=` that is not a flag.
    #[error("invalid field '{field}' must be a key=value pair")]
    Field {
        /// The field.
        field: String,
    },
    /// A `--mount` key Docker does not know.
    #[error("unexpected key '{key}' in '{field}'")]
    UnexpectedKey {
        /// The key.
        key: String,
        /// The field it came in.
        field: String,
    },
    /// `--mount` without `type=`.
    #[error("type is required")]
    TypeRequired,
    /// `--mount` without `target=`.
    #[error("target is required")]
    TargetRequired,
    /// `--mount` options of another type (`volume-nocopy` on a bind...).
    #[error("cannot mix '{prefix}-*' options with mount type '{kind}'")]
    Mix {
        /// `bind`, `volume` or `tmpfs`.
        prefix: &'static str,
        /// The mount's type.
        kind: String,
    },
    /// A value that does not parse (a boolean, a size, a mode).
    #[error("invalid value for {key}: {value}")]
    Value {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Two mounts on one destination.
    #[error("Duplicate mount point: {destination}")]
    Duplicate {
        /// The destination.
        destination: String,
    },
    /// A `volume create -o` key the local driver does not know.
    #[error("invalid option key: \"{key}\"")]
    VolumeOption {
        /// The key.
        key: String,
    },
    /// `volume create -o` with `type` but no `device`, or the reverse.
    #[error("missing {key} in volume options")]
    VolumeOptionMissing {
        /// `type` or `device`.
        key: &'static str,
    },
    /// A `--tmpfs` option the tmpfs mount cannot take.
    #[error("invalid tmpfs option \"{option}\"")]
    TmpfsOption {
        /// The option.
        option: String,
    },
}

/// Why a `--mount` does not fit its type (Docker's `invalid mount config` reasons).
#[derive(Debug, thiserror::Error)]
pub enum MountConfigReason {
    /// Not bind, volume or tmpfs.
    #[error("mount type unknown")]
    UnknownType,
    /// No target.
    #[error("field Target must not be empty")]
    TargetEmpty,
    /// A bind without a source.
    #[error("field Source must not be empty")]
    SourceEmpty,
    /// A tmpfs with a source.
    #[error("field Source must not be specified")]
    SourceSet,
    /// Options of another mount type.
    #[error("field {field} must not be specified")]
    Options {
        /// `BindOptions`, `VolumeOptions`, `TmpfsOptions`.
        field: &'static str,
    },
    /// A bind source that does not exist.
    #[error("bind source path does not exist: {path}")]
    SourceMissing {
        /// The source.
        path: String,
    },
    /// A relative path.
    #[error("invalid mount path: '{path}' mount path must be absolute")]
    NotAbsolute {
        /// The path.
        path: String,
    },
    /// A read-only anonymous volume.
    #[error("must not set ReadOnly mode when using anonymous volumes")]
    ReadonlyAnonymous,
    /// A bad volume name.
    #[error("invalid volume name \"{name}\"")]
    VolumeName {
        /// The name.
        name: String,
    },
}

/// One mount of a container, checked, before its volume exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Planned {
    /// Kind.
    pub(crate) kind: MountKind,
    /// Host path (bind), volume name (`None`: a new anonymous volume) or nothing (tmpfs).
    pub(crate) source: Option<String>,
    /// Path in the container, clean.
    pub(crate) destination: String,
    /// Writable.
    pub(crate) read_write: bool,
    /// Bind propagation.
    pub(crate) propagation: String,
    /// Docker's `Mode` as `inspect` shows it (the `-v` mode string).
    pub(crate) mode: String,
    /// Copy the image's content at the destination into the volume while it is empty.
    pub(crate) copy: bool,
    /// `-v` creates a missing host directory; `--mount` refuses it.
    pub(crate) create_source: bool,
    /// tmpfs options (`size=`, `mode=`, flags) after Docker's defaults.
    pub(crate) tmpfs: Vec<String>,
    /// Labels of a volume made for this mount.
    pub(crate) labels: BTreeMap<String, String>,
}

/// Records the volumes the plan uses (named ones created on first use, anonymous ones made)
/// and returns the container's mount rows, with the volumes and binds of the `--volumes-from`
/// containers where the user mounted nothing else (an anonymous volume yields to them).
pub(crate) fn record_volumes(
    tx: &Tx<'_>,
    planned: &[Planned],
    volumes_from: &[String],
) -> Result<Vec<MountPoint>> {
    let inherited = inherited(tx, volumes_from)?;
    let mut out = Vec::with_capacity(planned.len() + inherited.len());
    for p in planned {
        let anonymous = p.kind == MountKind::Volume && p.source.is_none();
        if anonymous && inherited.iter().any(|i| i.destination == p.destination) {
            continue;
        }
        let source = match p.kind {
            MountKind::Volume => {
                let v = tx.create_volume(&NewVolume {
                    name: p.source.clone(),
                    labels: p.labels.clone(),
                    ..NewVolume::default()
                })?;
                v.name
            }
            _ => p.source.clone().unwrap_or_default(),
        };
        out.push(MountPoint {
            kind: p.kind,
            source,
            destination: p.destination.clone(),
            read_write: p.read_write,
            propagation: p.propagation.clone(),
        });
    }
    for i in inherited {
        if !out.iter().any(|o| o.destination == i.destination) {
            out.push(i);
        }
    }
    Ok(out)
}

/// The bind and volume mounts of `--volumes-from CONTAINER[:ro|rw]` (tmpfs mounts are the
/// other container's own, as in Docker); `ro`/`rw` override the source's mode.
fn inherited(tx: &Tx<'_>, volumes_from: &[String]) -> Result<Vec<MountPoint>> {
    let mut out: Vec<MountPoint> = Vec::new();
    for spec in volumes_from {
        let (name, mode) = match spec.rsplit_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (spec.as_str(), None),
        };
        let rw = match mode {
            None => None,
            Some("rw") => Some(true),
            Some("ro") => Some(false),
            Some(m) => {
                return Err(MountError::Mode { mode: m.to_owned() }.into());
            }
        };
        let from = tx.container(name)?;
        for m in from
            .mounts
            .into_iter()
            .filter(|m| m.kind != MountKind::Tmpfs)
        {
            if out.iter().any(|o| o.destination == m.destination) {
                return Err(MountError::Duplicate {
                    destination: m.destination,
                }
                .into());
            }
            out.push(MountPoint {
                read_write: rw.unwrap_or(m.read_write),
                ..m
            });
        }
    }
    Ok(out)
}

/// Where a volume's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VolumeSource {
    /// `<root>/volumes/<name>/_data`.
    Dir(PathBuf),
    /// A local volume made with `-o type=... -o device=... [-o o=...]`: Docker's local driver
    /// mounts `device` as `type` with options `o`; here each container mounts it itself.
    Device {
        /// File-system type (`none` with `o=bind` is a bind mount of `device`).
        kind: String,
        /// What to mount.
        device: String,
        /// Mount options.
        options: Vec<String>,
    },
}

impl VolumeSource {
    /// The source of a volume with these driver options, whose directory is `dir`.
    pub(crate) fn of(options: &BTreeMap<String, String>, dir: PathBuf) -> VolumeSource {
        match (options.get("type"), options.get("device")) {
            (Some(kind), Some(device)) => VolumeSource::Device {
                kind: kind.clone(),
                device: device.clone(),
                options: options
                    .get("o")
                    .map(|o| {
                        o.split(',')
                            .filter(|x| !x.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            _ => VolumeSource::Dir(dir),
        }
    }

    /// A bind mount of this host path (`Dir`, or `type=none,o=bind`).
    pub(crate) fn bind_path(&self) -> Option<PathBuf> {
        match self {
            VolumeSource::Dir(d) => Some(d.clone()),
            VolumeSource::Device {
                kind,
                device,
                options,
            } if kind == "none" || options.iter().any(|o| o == "bind" || o == "rbind") => {
                Some(PathBuf::from(device))
            }
            VolumeSource::Device { .. } => None,
        }
    }
}

/// Checks `volume create -o` options of the local driver: `type`, `device` and `o`, the first
/// two together.
pub(crate) fn check_volume_options(
    options: &BTreeMap<String, String>,
) -> std::result::Result<(), MountError> {
    if let Some(key) = options
        .keys()
        .find(|k| !matches!(k.as_str(), "type" | "device" | "o"))
    {
        return Err(MountError::VolumeOption { key: key.clone() });
    }
    if options.is_empty() {
        return Ok(());
    }
    for key in ["type", "device"] {
        if !options.contains_key(key) {
            return Err(MountError::VolumeOptionMissing { key });
        }
    }
    Ok(())
}

/// The OCI `mounts[]` entries of the container's recorded mounts (parents first); `planned`
/// gives tmpfs options, `volume_source` says where a volume's content comes from.
pub(crate) fn oci_mounts(
    planned: &[Planned],
    rows: &[MountPoint],
    volume_source: impl Fn(&str) -> VolumeSource,
) -> Vec<Value> {
    let mut rows: Vec<&MountPoint> = rows.iter().collect();
    rows.sort_by_key(|r| Path::new(&r.destination).components().count());
    let mut out = Vec::new();
    for row in rows {
        let plan = planned.iter().find(|p| p.destination == row.destination);
        match row.kind {
            MountKind::Tmpfs => {
                let options = match plan {
                    Some(p) => p.tmpfs.clone(),
                    None => crate::mount_flags::tmpfs_options("").unwrap_or_default(),
                };
                out.push(json!({
                    "destination": row.destination, "type": "tmpfs", "source": "tmpfs",
                    "options": options,
                }));
            }
            MountKind::Bind | MountKind::Volume => {
                let vs = if row.kind == MountKind::Bind {
                    VolumeSource::Dir(PathBuf::from(&row.source))
                } else {
                    volume_source(&row.source)
                };
                let source = match (&vs, vs.bind_path()) {
                    (_, Some(path)) => path,
                    (
                        VolumeSource::Device {
                            kind,
                            device,
                            options,
                        },
                        None,
                    ) => {
                        let mut options = options.clone();
                        if !row.read_write {
                            options.push("ro".to_owned());
                        }
                        out.push(json!({
                            "destination": row.destination, "type": kind, "source": device,
                            "options": options,
                        }));
                        continue;
                    }
                    (VolumeSource::Dir(d), None) => d.clone(),
                };
                let prop = if row.propagation.is_empty() {
                    "rprivate"
                } else {
                    &row.propagation
                };
                let mut options = vec!["rbind", prop];
                options.extend((!row.read_write).then_some("ro"));
                out.push(json!({
                    "destination": row.destination, "type": "bind", "source": source,
                    "options": options,
                }));
            }
        }
    }
    out
}

/// Adds the container's mounts to an OCI config, replacing default mounts on the same
/// destination (`-v /host:/dev/shm` wins over the default /dev/shm).
pub(crate) fn add_to_spec(spec: &mut Value, mounts: Vec<Value>) {
    let Some(list) = spec.get_mut("mounts").and_then(Value::as_array_mut) else {
        return;
    };
    list.retain(|m| !mounts.iter().any(|u| u["destination"] == m["destination"]));
    list.extend(mounts);
}

/// Docker's `Mounts[]` entry of `inspect`.
pub(crate) fn inspect_json(row: &MountPoint, planned: &[Planned], volume_dir: &Path) -> Value {
    let mode = planned
        .iter()
        .find(|p| p.destination == row.destination)
        .map(|p| p.mode.clone())
        .unwrap_or_default();
    match row.kind {
        MountKind::Volume => json!({
            "Type": "volume",
            "Name": row.source,
            "Source": volume_dir,
            "Destination": row.destination,
            "Driver": crate::volumes::LOCAL_DRIVER,
            "Mode": mode,
            "RW": row.read_write,
            "Propagation": "",
        }),
        MountKind::Bind => json!({
            "Type": "bind",
            "Source": row.source,
            "Destination": row.destination,
            "Mode": mode,
            "RW": row.read_write,
            "Propagation": row.propagation,
        }),
        MountKind::Tmpfs => json!({
            "Type": "tmpfs",
            "Source": "",
            "Destination": row.destination,
            "Mode": mode,
            "RW": row.read_write,
            "Propagation": "",
        }),
    }
}

impl From<MountError> for EngineError {
    fn from(e: MountError) -> Self {
        EngineError::Mount(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_volume_options() {
        let opts = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(check_volume_options(&opts(&[])).is_ok());
        let tmpfs = opts(&[
            ("type", "tmpfs"),
            ("device", "tmpfs"),
            ("o", "size=1m,uid=1"),
        ]);
        assert!(check_volume_options(&tmpfs).is_ok());
        assert_eq!(
            check_volume_options(&opts(&[("size", "1")]))
                .unwrap_err()
                .to_string(),
            "invalid option key: \"size\""
        );
        assert_eq!(
            check_volume_options(&opts(&[("device", "/x")]))
                .unwrap_err()
                .to_string(),
            "missing type in volume options"
        );
        let v = VolumeSource::of(&tmpfs, PathBuf::from("/d"));
        assert_eq!(v.bind_path(), None);
        let bind = opts(&[("type", "none"), ("device", "/src"), ("o", "bind")]);
        assert_eq!(
            VolumeSource::of(&bind, PathBuf::from("/d")).bind_path(),
            Some(PathBuf::from("/src"))
        );
        assert_eq!(
            VolumeSource::of(&opts(&[]), PathBuf::from("/d")).bind_path(),
            Some(PathBuf::from("/d"))
        );
    }
}
