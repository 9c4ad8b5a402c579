//! The engine's error type and the coarse kind every front end maps to a status or exit code.

use std::path::PathBuf;

use crate::state::Status;

/// What class of failure an [`EngineError`] is; the API maps it to an HTTP status (404, 409, 400,
/// 403, 503, 500) and the CLI to Docker's exit code 125.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The named container, image, volume or event source does not exist.
    NotFound,
    /// The request conflicts with the current state (name taken, container running, image in use).
    Conflict,
    /// The request itself is malformed (bad name, bad filter, ambiguous prefix).
    InvalidArgument,
    /// The caller may not touch the store (file permissions).
    PermissionDenied,
    /// The store is busy or locked for longer than the busy timeout; retrying may work.
    Unavailable,
    /// A bug or a corrupt store.
    Internal,
}

/// An error of the engine's state store.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No object of `what` matched `reference`.
    #[error("no such {what}: {reference}")]
    NotFound {
        /// "container", "image", "volume".
        what: &'static str,
        /// The name, id or prefix that was looked up.
        reference: String,
    },
    /// A name is already used by another object.
    #[error("the {what} name \"{name}\" is already in use by {by}")]
    NameInUse {
        /// "container", "volume", "image reference".
        what: &'static str,
        /// The requested name.
        name: String,
        /// Id of the object that holds the name.
        by: String,
    },
    /// A prefix matched more than one id.
    #[error("multiple {what}s found with provided prefix: {prefix}")]
    AmbiguousPrefix {
        /// "container", "image".
        what: &'static str,
        /// The prefix that was looked up.
        prefix: String,
    },
    /// A container or volume name does not match `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
    #[error("invalid {what} name \"{name}\", only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName {
        /// "container", "volume".
        what: &'static str,
        /// The rejected name.
        name: String,
    },
    /// A value (id, digest, filter, reference) is malformed.
    #[error("invalid {what} \"{value}\"")]
    InvalidValue {
        /// What kind of value, e.g. "container id", "digest", "filter".
        what: &'static str,
        /// The rejected value.
        value: String,
    },
    /// A setting is well-formed but not acceptable (out of range, conflicting, unknown name).
    #[error("invalid {what} \"{value}\": {reason}")]
    InvalidSetting {
        /// The setting, as its flag is named: "memory", "cpus", "ulimit", "capability".
        what: &'static str,
        /// The rejected value.
        value: String,
        /// Why, in Docker's words where Docker has some.
        reason: String,
    },
    /// The state machine forbids this transition.
    #[error("container {id}: cannot {action} a container that is {from}")]
    IllegalTransition {
        /// Short id of the container.
        id: String,
        /// The requested action ("start", "pause", ...).
        action: &'static str,
        /// The state the container is in.
        from: Status,
    },
    /// The object is used by others and cannot be removed.
    #[error("cannot remove {what} {name}: in use by {users}")]
    InUse {
        /// "image", "volume", "container".
        what: &'static str,
        /// Name or id of the object.
        name: String,
        /// Comma-separated short ids or names of the users.
        users: String,
    },
    /// A host port another container already publishes.
    #[error("Bind for {binding} failed: port is already allocated")]
    PortAllocated {
        /// `ip:port`.
        binding: String,
    },
    /// Configuring the kernel's networking (links, addresses, firewall) failed.
    #[error("{action}")]
    Network {
        /// What was being done.
        action: String,
        /// The networking crate's error.
        #[source]
        source: Box<net::NetError>,
    },
    /// A `-v`, `--mount` or `--tmpfs` value Docker refuses.
    #[error(transparent)]
    Mount(crate::mounts::MountError),
    /// Copying files into, out of or within a container (`cp`, `export`, volume copy-up).
    #[error("{action}")]
    Copy {
        /// What was being copied: "copy from container 0123abcd".
        action: String,
        /// The cause.
        #[source]
        source: crate::archive::ArchiveError,
    },
    /// An image removal must be forced (several references, or used by a stopped container).
    #[error("conflict: unable to delete {reference} (must be forced) - {reason}")]
    MustForce {
        /// The image reference or id.
        reference: String,
        /// Why, in Docker's words.
        reason: &'static str,
    },
    /// Creating or inspecting a directory or file of the store failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done: "create state directory", "open database".
        action: &'static str,
        /// The path acted on.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A SQLite call failed.
    #[error("state database: {action}")]
    Sqlite {
        /// What was being done: "begin transaction", "insert container".
        action: &'static str,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// A JSON column could not be encoded or decoded.
    #[error("state database: {action}")]
    Json {
        /// What was being done: "decode config of container 0123abcd".
        action: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A row holds a value this berth cannot read (a corrupt or newer store).
    #[error("state database: {table} row {key}: bad {column} value \"{value}\"")]
    Corrupt {
        /// Table name.
        table: &'static str,
        /// Primary key of the row.
        key: String,
        /// Column name.
        column: &'static str,
        /// The value found.
        value: String,
    },
    /// The database was written by a newer berth.
    #[error(
        "state database schema version {found} is newer than this berth supports ({supported})"
    )]
    SchemaTooNew {
        /// `PRAGMA user_version` found.
        found: i64,
        /// Highest version this build knows.
        supported: i64,
    },
    /// The database could not be switched to WAL mode (it stays in another journal mode).
    #[error("state database: journal mode is {mode}, not wal")]
    NotWal {
        /// The journal mode SQLite reported.
        mode: String,
    },
    /// An image store operation (import, resolve, unpack, snapshot) failed.
    #[error("{action}")]
    Image {
        /// What was being done: "import image", "prepare rootfs of 0123abcd".
        action: String,
        /// The cause.
        #[source]
        source: Box<image::ImageError>,
    },
    /// A registry operation (pull, push, login) failed.
    #[error("{action}")]
    Registry {
        /// What was being done: "pull busybox:latest".
        action: String,
        /// The cause.
        #[source]
        source: Box<image::registry::RegistryError>,
    },
    /// Saving or loading an image archive failed (a hostile or corrupt archive lands here).
    #[error("{action}")]
    Archive {
        /// What was being done: "load images".
        action: String,
        /// The cause.
        #[source]
        source: Box<image::ArchiveError>,
    },
    /// Committing a container's changes as an image failed.
    #[error("{action}")]
    Commit {
        /// What was being done.
        action: String,
        /// The cause.
        #[source]
        source: Box<image::CommitError>,
    },
    /// Collecting unused blobs and layers failed.
    #[error("collect unused image data")]
    Gc {
        /// The cause.
        #[source]
        source: Box<image::GcError>,
    },
    /// Mounting or unmounting a container's rootfs failed.
    #[error("{action}")]
    Snapshot {
        /// What was being done.
        action: String,
        /// The cause.
        #[source]
        source: Box<image::SnapshotError>,
    },
    /// The OCI runtime failed.
    #[error("{action}")]
    Runtime {
        /// What was being done: "create container 0123abcd".
        action: String,
        /// The cause.
        #[source]
        source: Box<runtime::RuntimeError>,
    },
    /// `pause` of a paused container (`paused`), or `unpause` of one that is not paused.
    #[error("container {id} is {}", if *paused { "already paused" } else { "not paused" })]
    PauseState {
        /// Short id.
        id: String,
        /// Whether it is paused.
        paused: bool,
    },
    /// An external OCI runtime binary (`--runtime`) failed; `message` is what it logged.
    #[error("{action}: {runtime}: {message}")]
    OciRuntime {
        /// What was being done.
        action: String,
        /// The runtime binary.
        runtime: PathBuf,
        /// Its error.
        message: String,
    },
    /// Reading a container's cgroup (stats, top) failed.
    #[error("{action}")]
    Cgroup {
        /// What was being done.
        action: String,
        /// The cgroup error.
        #[source]
        source: Box<cgroups::CgroupError>,
    },
    /// The container's monitor did not report a start.
    #[error("start container {id}: {message}")]
    StartFailed {
        /// Short id.
        id: String,
        /// The monitor's one-line error.
        message: String,
        /// Docker's exit code: 125, 126 (cannot invoke) or 127 (not found).
        exit_code: i32,
    },
    /// The verb needs a running container (Docker's message for `exec`).
    #[error("container {id} is not running")]
    NotRunning {
        /// Full id.
        id: String,
    },
    /// Reading random bytes for an id failed.
    #[error("read random bytes for an id")]
    Random {
        /// The cause.
        #[source]
        source: getrandom::Error,
    },
}

impl EngineError {
    /// The class of this error, for HTTP statuses and exit codes.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::NameInUse { .. }
            | Self::IllegalTransition { .. }
            | Self::InUse { .. }
            | Self::PortAllocated { .. }
            | Self::MustForce { .. }
            | Self::NotRunning { .. }
            | Self::PauseState { .. } => ErrorKind::Conflict,
            Self::AmbiguousPrefix { .. }
            | Self::InvalidName { .. }
            | Self::InvalidValue { .. }
            | Self::InvalidSetting { .. }
            | Self::Mount(_) => ErrorKind::InvalidArgument,
            Self::Copy { source, .. } => source.kind(),
            Self::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                _ => ErrorKind::Internal,
            },
            Self::Sqlite { source, .. } => sqlite_kind(source),
            Self::Registry { source, .. } => registry_kind(source),
            Self::SchemaTooNew { .. } | Self::NotWal { .. } => ErrorKind::Unavailable,
            Self::Json { .. }
            | Self::Corrupt { .. }
            | Self::Random { .. }
            | Self::Image { .. }
            | Self::Archive { .. }
            | Self::Commit { .. }
            | Self::Gc { .. }
            | Self::Snapshot { .. }
            | Self::Runtime { .. }
            | Self::OciRuntime { .. }
            | Self::Cgroup { .. }
            | Self::Network { .. }
            | Self::StartFailed { .. } => ErrorKind::Internal,
        }
    }

    /// Docker's exit code for this error as a CLI failure: 126/127 when the container's
    /// program cannot be invoked or found, else 125.
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::StartFailed { exit_code, .. } => *exit_code,
            // As the docker CLI: a failed pull, push or login exits 1.
            Self::Registry { .. } => 1,
            _ => 125,
        }
    }

    pub(crate) fn sqlite(action: &'static str) -> impl FnOnce(rusqlite::Error) -> Self {
        move |source| Self::Sqlite { action, source }
    }
}

fn registry_kind(e: &image::registry::RegistryError) -> ErrorKind {
    use image::registry::RegistryError as R;
    match e {
        R::Unauthorized { .. } | R::Denied { .. } => ErrorKind::PermissionDenied,
        R::ManifestUnknown { .. } => ErrorKind::NotFound,
        R::Reference(_) => ErrorKind::InvalidArgument,
        e if e.is_transient() => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

fn sqlite_kind(e: &rusqlite::Error) -> ErrorKind {
    use rusqlite::ffi::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => ErrorKind::Unavailable,
        Some(ErrorCode::PermissionDenied | ErrorCode::ReadOnly) => ErrorKind::PermissionDenied,
        _ => ErrorKind::Internal,
    }
}

/// Result alias of the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Whether a SQLite error means another connection holds the lock.
pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ffi::ErrorCode::DatabaseBusy | rusqlite::ffi::ErrorCode::DatabaseLocked)
    )
}
