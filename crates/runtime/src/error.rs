//! The runtime library's error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while creating, starting, signalling or deleting a container.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A container id that runc would also refuse.
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId {
        /// The id given.
        id: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// No container with this id under the state root.
    #[error("container {0} does not exist")]
    NotFound(String),
    /// A container with this id already exists.
    #[error("container {0} already exists")]
    Exists(String),
    /// The container is in a state that does not allow the operation.
    #[error("container {id} is {status}: {action} needs it {wanted}")]
    WrongState {
        /// Container id.
        id: String,
        /// Its current status.
        status: String,
        /// The operation asked for.
        action: &'static str,
        /// The status(es) the operation needs.
        wanted: &'static str,
    },
    /// config.json (or a process.json) could not be parsed; the source names the field.
    #[error("parse {path}")]
    ParseSpec {
        /// File being parsed.
        path: PathBuf,
        /// serde error with the JSON path of the field.
        #[source]
        source: serde_path_to_error::Error<serde_json::Error>,
    },
    /// A field of the spec is semantically invalid.
    #[error("{field}: {reason}")]
    InvalidSpec {
        /// JSON path of the field, e.g. `linux.namespaces[2].path`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file-system operation on a named path failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// To what.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A syscall not tied to one path failed.
    #[error("{op}")]
    Sys {
        /// What was being done.
        op: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The container's init or exec'd process reported a failure before it ran the user's program.
    #[error("{0}")]
    Child(String),
    /// Like [`RuntimeError::Child`] when the child could not run the container's program, with
    /// the OS error (`errno`): a caller tells "the program does not exist" (ENOENT) from "it
    /// cannot be executed" (EACCES, ENOEXEC, ...).
    #[error("{message}")]
    ChildOs {
        /// The child's error chain.
        message: String,
        /// The errno of the first OS error in that chain.
        errno: i32,
    },
    /// `process.args[0]` has no slash and is in no directory of the container's `PATH`.
    #[error("process.args[0]: exec: {0:?}: executable file not found in $PATH")]
    NotInPath(String),
    /// A hook failed or timed out.
    #[error("{kind} hook {path} (hooks.{kind}[{index}]): {reason}")]
    Hook {
        /// Hook kind (prestart, createRuntime, ...).
        kind: &'static str,
        /// Position of the hook in its list, so the message names the spec field.
        index: usize,
        /// Hook binary.
        path: PathBuf,
        /// What happened.
        reason: String,
    },
    /// cgroup setup or teardown failed.
    #[error("cgroup")]
    Cgroup(#[from] cgroups::CgroupError),
    /// The seccomp profile could not be compiled or installed.
    #[error("seccomp")]
    Seccomp(#[from] crate::seccomp::SeccompError),
    /// State could not be serialised.
    #[error("encode state")]
    Encode(#[source] serde_json::Error),
}

/// The operations on `process.args[0]` whose failure means "the program cannot run".
pub(crate) const PROGRAM_OPS: [&str; 2] = ["stat process.args[0]", "exec"];

impl RuntimeError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        RuntimeError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn sys(op: impl Into<String>, source: io::Error) -> Self {
        RuntimeError::Sys {
            op: op.into(),
            source,
        }
    }

    /// When the container's program (`process.args[0]`) could not be found or executed: the
    /// OS error that said so (ENOENT for [`RuntimeError::NotInPath`]). `None` for every other
    /// error, so that a missing mount source is not taken for a missing program.
    #[must_use]
    pub fn program_errno(&self) -> Option<i32> {
        match self {
            RuntimeError::ChildOs { errno, .. } => Some(*errno),
            RuntimeError::NotInPath(_) => Some(libc::ENOENT),
            RuntimeError::Io { op, source, .. } if PROGRAM_OPS.contains(op) => {
                source.raw_os_error()
            }
            _ => None,
        }
    }

    /// The error a child reported over the sync socket: `errno` 0 when it had no OS error.
    pub(crate) fn from_child(message: String, errno: i64) -> Self {
        match i32::try_from(errno) {
            Ok(errno) if errno > 0 => RuntimeError::ChildOs { message, errno },
            _ => RuntimeError::Child(message),
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        RuntimeError::InvalidSpec {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Result alias for the runtime library.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// Render an error and its causes on one line: `a: b: c`.
#[must_use]
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !s.is_empty() && !out.ends_with(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}
