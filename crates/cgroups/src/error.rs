//! The error type of every cgroup operation.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// What went wrong while managing a cgroup, and on which file or directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CgroupError {
    /// Reading a cgroup interface file failed.
    #[error("read {path}")]
    Read {
        /// The file read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Writing a value to a cgroup interface file failed.
    #[error("write {value:?} to {path}")]
    Write {
        /// The file written.
        path: PathBuf,
        /// The value written.
        value: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A cgroup interface file held something we could not parse.
    #[error("parse {path}: unexpected content {content:?}")]
    Parse {
        /// The file read.
        path: PathBuf,
        /// The text that did not parse.
        content: String,
    },
    /// Creating a cgroup directory failed.
    #[error("create cgroup directory {path}")]
    Create {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Removing a cgroup directory failed.
    #[error("remove cgroup directory {path}")]
    Remove {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Tasks were still in a cgroup when the removal deadline passed.
    #[error("remove cgroup directory {path}: still busy after {waited:?}")]
    RemoveBusy {
        /// The directory.
        path: PathBuf,
        /// How long removal was retried.
        waited: Duration,
    },
    /// Opening a cgroup directory (for a BPF attachment or a fork into it) or a `tasks` file
    /// failed.
    #[error("open {path}")]
    Open {
        /// The directory or file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Inspecting the cgroup root (statfs, mountinfo) failed.
    #[error("detect cgroup hierarchy at {root}")]
    Detect {
        /// The cgroup root given.
        root: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Nothing under the root is a cgroup filesystem.
    #[error("no cgroup filesystem mounted at or under {root}")]
    NoHierarchy {
        /// The cgroup root given.
        root: PathBuf,
    },
    /// The systemd driver was requested.
    #[error("systemd cgroup driver is not supported")]
    SystemdUnsupported,
    /// The cgroups path (or container id used as its default) is not acceptable.
    #[error("invalid cgroups path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A resource value is out of range or inconsistent.
    #[error("invalid {resource} value {value:?}: {reason}")]
    InvalidValue {
        /// The OCI resource field.
        resource: &'static str,
        /// The offending value.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A resource was requested that this host's hierarchy cannot apply.
    #[error("{resource} is not supported by this cgroup hierarchy")]
    Unsupported {
        /// The resource (OCI field, controller or file name).
        resource: String,
    },
    /// The freezer did not reach the requested state in time.
    #[error("freezer of {path} did not reach {state} within {waited:?}")]
    FreezeTimeout {
        /// The cgroup directory.
        path: PathBuf,
        /// The state asked for.
        state: &'static str,
        /// How long we waited.
        waited: Duration,
    },
    /// Sending a signal to a task failed.
    #[error("send signal {signal} to pid {pid}")]
    Signal {
        /// The task.
        pid: i32,
        /// The signal.
        signal: i32,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The kernel refused the device-filter BPF program.
    #[error("load device filter bpf program ({insns} instructions); verifier log: {log:?}")]
    BpfLoad {
        /// Program length.
        insns: usize,
        /// The verifier's log, if any.
        log: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A BPF attach, detach or query on a cgroup failed.
    #[error("{op} device filter bpf program on {path}")]
    Bpf {
        /// What was being done: attach, detach, query.
        op: &'static str,
        /// The cgroup directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl CgroupError {
    pub(crate) fn read(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Read {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(
        resource: &'static str,
        value: impl ToString,
        reason: &'static str,
    ) -> Self {
        Self::InvalidValue {
            resource,
            value: value.to_string(),
            reason,
        }
    }

    pub(crate) fn unsupported(resource: impl Into<String>) -> Self {
        Self::Unsupported {
            resource: resource.into(),
        }
    }
}
