//! Container state on disk (`<root>/<id>/state.json`) and the status derived from the kernel.
//!
//! The stored state says what was created; the status is always recomputed: whether the init
//! process still lives (pid plus its start time, so a recycled pid is never mistaken for it),
//! whether the exec fifo still exists (created) and whether the cgroup is frozen (paused).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError};

/// The file name of the exec fifo in a container's state directory.
pub(crate) const EXEC_FIFO: &str = "exec.fifo";
const STATE_FILE: &str = "state.json";

/// Container status, as `runc state` prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being created.
    Creating,
    /// Created, init waiting for `start`.
    Created,
    /// The user's program runs.
    Running,
    /// The cgroup is frozen.
    Paused,
    /// Init has exited.
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What the runtime remembers about a container between invocations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerState {
    /// Container id.
    pub id: String,
    /// Pid of init in the runtime's pid namespace.
    pub pid: i32,
    /// Init's start time (field 22 of `/proc/<pid>/stat`), guarding against pid reuse.
    pub init_start_time: u64,
    /// Absolute bundle path.
    pub bundle: PathBuf,
    /// Absolute rootfs path.
    pub rootfs: PathBuf,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Owner (runc prints the user name for rootless containers; empty otherwise).
    #[serde(default)]
    pub owner: String,
    /// The spec the container was created from (exec and poststop need it).
    pub config: Spec,
    /// `--systemd-cgroup` at create time.
    #[serde(default)]
    pub systemd_cgroup: bool,
    /// Set by `delete` once it has begun tearing the container down.
    #[serde(default)]
    pub deleting: bool,
    /// The host's `NOTIFY_SOCKET` at create time: `start` relays the container's sd_notify
    /// messages there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_socket: Option<PathBuf>,
    /// The creating runtime's `/proc/self/cgroup`: a relative `cgroupsPath` is placed against
    /// it, so later verbs run from another cgroup rebuild the same cgroup paths. Absent in
    /// states written before it was recorded (then the caller's own is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_cgroups: Option<String>,
}

/// The OCI state, as `state` prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    /// OCI spec version.
    pub oci_version: String,
    /// Container id.
    pub id: String,
    /// Init pid (0 once stopped, as runc prints).
    pub pid: i32,
    /// Status.
    pub status: Status,
    /// Bundle path.
    pub bundle: PathBuf,
    /// Rootfs path.
    pub rootfs: PathBuf,
    /// Creation time.
    pub created: String,
    /// Owner.
    pub owner: String,
    /// Annotations from the config.
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

/// The directory holding container `id`'s state under `root`.
#[must_use]
pub fn state_dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// Refuse ids runc refuses: empty, path separators, `.`/`..`, odd characters.
pub fn validate_id(id: &str) -> Result<()> {
    let bad = |reason| RuntimeError::InvalidId {
        id: id.to_string(),
        reason,
    };
    if id.is_empty() {
        return Err(bad("empty"));
    }
    if id == "." || id == ".." {
        return Err(bad("reserved name"));
    }
    if id.len() > 1024 {
        return Err(bad("longer than 1024 bytes"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'))
    {
        return Err(bad(
            "only letters, digits, '_', '+', '-' and '.' are allowed",
        ));
    }
    Ok(())
}

impl ContainerState {
    /// Load the state of container `id`.
    pub fn load(root: &Path, id: &str) -> Result<ContainerState> {
        validate_id(id)?;
        let path = state_dir(root, id).join(STATE_FILE);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::NotFound(id.to_string()));
            }
            Err(e) => return Err(RuntimeError::io("read", path, e)),
        };
        let de = &mut serde_json::Deserializer::from_slice(&data);
        serde_path_to_error::deserialize(de)
            .map_err(|source| RuntimeError::ParseSpec { path, source })
    }

    /// Write the state atomically (temp file, fsync, rename).
    pub fn save(&self, root: &Path) -> Result<()> {
        let dir = state_dir(root, &self.id);
        let data = serde_json::to_vec(self).map_err(RuntimeError::Encode)?;
        write_atomic(&dir.join(STATE_FILE), &data)
    }

    /// The status as the kernel shows it now.
    #[must_use]
    pub fn status(&self, root: &Path) -> Status {
        if !process_alive(self.pid, self.init_start_time) {
            return Status::Stopped;
        }
        if state_dir(root, &self.id).join(EXEC_FIFO).exists() {
            return Status::Created;
        }
        if crate::container::cgroup_manager(self)
            .and_then(|m| m.is_frozen().map_err(Into::into))
            .unwrap_or(false)
        {
            return Status::Paused;
        }
        Status::Running
    }

    /// The current status, or [`RuntimeError::WrongState`] naming `action` and the `wanted`
    /// status(es) when `allowed` refuses it.
    pub(crate) fn require(
        &self,
        root: &Path,
        action: &'static str,
        wanted: &'static str,
        allowed: impl Fn(Status) -> bool,
    ) -> Result<Status> {
        let status = self.status(root);
        if allowed(status) {
            Ok(status)
        } else {
            Err(RuntimeError::WrongState {
                id: self.id.clone(),
                status: status.to_string(),
                action,
                wanted,
            })
        }
    }

    /// The OCI state view.
    #[must_use]
    pub fn oci(&self, root: &Path) -> OciState {
        let status = self.status(root);
        OciState {
            oci_version: self.config.version().clone(),
            id: self.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status,
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            owner: self.owner.clone(),
            annotations: self.config.annotations().clone().unwrap_or_default(),
        }
    }
}

/// Write `data` to `path` via a temp file and rename, so readers never see half a file, even if
/// this process is killed midway. Not synced: runtime state describes live processes and lives
/// under /run, which a reboot empties anyway (runc does not sync its state either).
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| RuntimeError::io("create", &tmp, e))?;
    f.write_all(data)
        .map_err(|e| RuntimeError::io("write", &tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| RuntimeError::io("rename", path, e))
}

/// Parse (state, start time) from the contents of /proc/<pid>/stat.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let state = fields.first()?.chars().next()?;
    // Field 22 overall is index 19 after the name.
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// The start time of `pid`, if it exists and is not a zombie.
#[must_use]
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (state, start) = parse_stat(&stat)?;
    (state != 'Z' && state != 'X').then_some(start)
}

/// Whether `pid` is alive and is the process that started at `start_time`.
#[must_use]
pub fn process_alive(pid: i32, start_time: u64) -> bool {
    pid > 0 && process_start_time(pid) == Some(start_time)
}

/// RFC 3339 UTC timestamp with nanoseconds, as runc prints `created`.
#[must_use]
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339_from_unix_nanos(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// RFC 3339 UTC timestamp with nanoseconds of `nanos` since the Unix epoch (may be negative).
#[must_use]
pub fn rfc3339_from_unix_nanos(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm, proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{frac:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_comm() {
        let s = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12345 1000 10";
        assert_eq!(parse_stat(s), Some(('S', 12345)));
    }

    #[test]
    fn ids() {
        assert!(validate_id("abc-1.2_x+y").is_ok());
        assert!(validate_id("../x").is_err());
        assert!(validate_id("").is_err());
        assert!(validate_id("..").is_err());
        assert!(validate_id("a/b").is_err());
    }

    #[test]
    fn rfc3339_shape() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 30, "{t}");
        assert!(t.ends_with('Z'));
    }

    #[test]
    fn self_is_alive() {
        let pid = std::process::id() as i32;
        let st = process_start_time(pid).unwrap();
        assert!(process_alive(pid, st));
        assert!(!process_alive(pid, st + 1));
    }
}
