//! Seccomp: the OCI `linux.seccomp` profile turned into a kernel BPF program.
//!
//! The work is split by when it runs:
//!
//! 1. [`compile`] runs in the runtime before any fork. It validates the whole profile (every error
//!    names the field, e.g. `linux.seccomp.syscalls[3].names[1]: unknown syscall "foo"`), builds the
//!    filter with libseccomp and exports it as raw BPF into a [`Program`].
//! 2. [`Program::install`] runs in the container's init right before exec. It is one raw
//!    `seccomp(SECCOMP_SET_MODE_FILTER)` call: no libseccomp, no allocation, no locks, so it is safe
//!    between fork and exec. It returns the notify listener fd when the profile uses
//!    `SCMP_ACT_NOTIFY`.
//! 3. [`send_to_listener`] runs in the runtime after init handed the listener fd back: it passes the
//!    fd and the container process state to the seccomp agent at `listenerPath`.
//!
//! [`ProgramCache`] wraps [`compile`] with an on-disk cache: libseccomp 2.5 needs about 10 ms for
//! Docker's default profile on x86 (three architectures), a cache hit some microseconds.
//!
//! [`parse`] reads a standalone `linux.seccomp` JSON object with the same field-path errors, for
//! callers that load a profile on its own (tests, `--security-opt seccomp=...`).
//!
//! Semantics follow runc where the OCI spec leaves room: `SCMP_ACT_KILL` is `KILL_THREAD`, errno
//! actions default to `EPERM`, rules whose action equals the default action are skipped, several
//! conditions on the same argument index become separate rules (OR) instead of one rule (AND),
//! `SCMP_ACT_NOTIFY` is refused as the default action and on `write`, and when `flags` is absent
//! `SECCOMP_FILTER_FLAG_SPEC_ALLOW` is used if the kernel has it. Unlike runc, a syscall name that
//! libseccomp does not know is an error rather than silently dropped.
//!
//! Installing a filter needs `no_new_privs` or `CAP_SYS_ADMIN` in the caller's user namespace; the
//! runtime decides the order (set `no_new_privs` first, or install before dropping capabilities).

use std::fmt;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

mod cache;
mod compile;
mod notify;
mod parse;
#[allow(unsafe_code)]
mod sys;

#[cfg(test)]
mod docker_profile;
#[cfg(test)]
mod kernel_tests;

pub use cache::ProgramCache;
pub use compile::compile;
pub use notify::{container_process_state, send_to_listener};
pub use parse::parse;

/// Errors of the seccomp module. Profile errors start with the path of the offending field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeccompError {
    /// A syscall name libseccomp does not know (on any architecture).
    #[error("{field}: unknown syscall \"{name}\"")]
    UnknownSyscall {
        /// Path of the field, e.g. `linux.seccomp.syscalls[3].names[1]`.
        field: String,
        /// The name as written in the profile.
        name: String,
    },
    /// An empty string where a syscall name belongs.
    #[error("{field}: empty syscall name")]
    EmptySyscallName {
        /// Path of the field.
        field: String,
    },
    /// An architecture name the OCI spec does not define.
    #[error("{field}: unknown architecture \"{name}\"")]
    UnknownArchitecture {
        /// Path of the field.
        field: String,
        /// The name as written in the profile.
        name: String,
    },
    /// An action name the OCI spec does not define.
    #[error("{field}: unknown action \"{name}\"")]
    UnknownAction {
        /// Path of the field.
        field: String,
        /// The name as written in the profile.
        name: String,
    },
    /// An argument comparison operator the OCI spec does not define.
    #[error("{field}: unknown operator \"{name}\"")]
    UnknownOperator {
        /// Path of the field.
        field: String,
        /// The name as written in the profile.
        name: String,
    },
    /// A filter flag the OCI spec does not define.
    #[error("{field}: unknown flag \"{name}\"")]
    UnknownFlag {
        /// Path of the field.
        field: String,
        /// The name as written in the profile.
        name: String,
    },
    /// The profile JSON does not have the shape of `linux.seccomp`.
    #[error("{field}: invalid seccomp profile")]
    Parse {
        /// Path of the field where decoding stopped.
        field: String,
        /// What the decoder found wrong.
        #[source]
        source: serde_json::Error,
    },
    /// `errnoRet` given for an action that returns no errno (the OCI spec requires failing).
    #[error("{field}: {action} takes no errno return code")]
    ErrnoRetNotAllowed {
        /// Path of the `errnoRet` / `defaultErrnoRet` field.
        field: String,
        /// The action it was given with.
        action: String,
    },
    /// `errnoRet` does not fit the 16-bit data field of a seccomp return value.
    #[error("{field}: errno return code {value} is out of range (0..=65535)")]
    ErrnoRetOutOfRange {
        /// Path of the field.
        field: String,
        /// The value given.
        value: u32,
    },
    /// A syscall argument index past the sixth argument.
    #[error("{field}: argument index {index} is out of range (0..=5)")]
    ArgIndexOutOfRange {
        /// Path of the `index` field.
        field: String,
        /// The index given.
        index: usize,
    },
    /// `SCMP_ACT_NOTIFY` as the default action would also stop the runtime's own `write` of the
    /// listener fd, so the container could never start.
    #[error("{field}: SCMP_ACT_NOTIFY cannot be the default action")]
    NotifyAsDefault {
        /// Path of the field.
        field: String,
    },
    /// `SCMP_ACT_NOTIFY` on `write`: init writes the listener fd to the runtime after the filter is
    /// in place, so nobody would ever answer that notification.
    #[error("{field}: SCMP_ACT_NOTIFY cannot be used for the write syscall")]
    NotifyOnWrite {
        /// Path of the syscall name.
        field: String,
    },
    /// A rule uses `SCMP_ACT_NOTIFY` but no agent socket is configured.
    #[error("linux.seccomp.listenerPath: required because {field} is SCMP_ACT_NOTIFY")]
    MissingListenerPath {
        /// Path of the first notify action.
        field: String,
    },
    /// `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` only applies to filters with a listener.
    #[error("{field}: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs a rule with SCMP_ACT_NOTIFY")]
    WaitKillableWithoutNotify {
        /// Path of the flag.
        field: String,
    },
    /// The kernel (or libseccomp) does not support a requested filter flag.
    #[error("{field}: {flag} is not supported by this kernel")]
    UnsupportedFlag {
        /// Path of the flag.
        field: String,
        /// The flag's name.
        flag: &'static str,
        /// What libseccomp reported.
        #[source]
        source: libseccomp::error::SeccompError,
    },
    /// libseccomp could not create the filter context.
    #[error("linux.seccomp.defaultAction: create seccomp filter")]
    NewFilter {
        /// What libseccomp reported.
        #[source]
        source: libseccomp::error::SeccompError,
    },
    /// libseccomp refused a filter attribute.
    #[error("set seccomp filter attribute {attribute}")]
    SetAttribute {
        /// The attribute's name.
        attribute: &'static str,
        /// What libseccomp reported.
        #[source]
        source: libseccomp::error::SeccompError,
    },
    /// libseccomp refused an architecture (e.g. one newer than the installed libseccomp).
    #[error("{field}: add architecture {name}")]
    AddArchitecture {
        /// Path of the field.
        field: String,
        /// The architecture's OCI name.
        name: String,
        /// What libseccomp reported.
        #[source]
        source: libseccomp::error::SeccompError,
    },
    /// libseccomp refused a rule.
    #[error("{field}: add rule for syscall \"{name}\"")]
    AddRule {
        /// Path of the syscall name.
        field: String,
        /// The syscall name.
        name: String,
        /// What libseccomp reported.
        #[source]
        source: libseccomp::error::SeccompError,
    },
    /// The in-memory file that receives the exported program could not be used.
    #[error("buffer exported seccomp program")]
    ExportBuffer {
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// libseccomp could not generate or export the BPF program.
    #[error("export seccomp program")]
    Export {
        /// What libseccomp reported.
        #[source]
        source: libseccomp::error::SeccompError,
    },
    /// libseccomp exported something that is not a whole number of BPF instructions.
    #[error("exported seccomp program has {len} bytes, not a multiple of 8")]
    MalformedExport {
        /// Size of the export in bytes.
        len: usize,
    },
    /// The program is longer than the kernel accepts (`BPF_MAXINSNS`).
    #[error("seccomp program has {len} instructions, more than the kernel limit of 4096")]
    ProgramTooLong {
        /// Number of instructions.
        len: usize,
    },
    /// `seccomp(SECCOMP_SET_MODE_FILTER)` failed.
    #[error("install seccomp filter")]
    Install {
        /// The errno of the call.
        #[source]
        source: std::io::Error,
    },
    /// With `SECCOMP_FILTER_FLAG_TSYNC`, another thread could not be moved onto the filter.
    #[error("install seccomp filter: thread {tid} cannot be synchronized")]
    Tsync {
        /// The thread the kernel named.
        tid: i64,
    },
    /// The container process state names other fds than the one seccomp fd being sent.
    #[error("container process state must list exactly one fd named \"seccompFd\"")]
    ProcessStateFds,
    /// The container process state could not be encoded.
    #[error("encode container process state")]
    EncodeState {
        /// What serde reported.
        #[source]
        source: serde_json::Error,
    },
    /// The seccomp agent's socket could not be reached.
    #[error("connect to seccomp agent at {path}")]
    Connect {
        /// The listener path.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Sending the state and fd to the seccomp agent failed.
    #[error("send seccomp fd to agent at {path}")]
    Send {
        /// The listener path.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// A compiled seccomp filter, ready to be installed after fork.
///
/// Built by [`compile`] in the runtime; [`Program::install`] only reads it, so one `Program` can
/// be shared by the parent and every forked child.
#[derive(Clone)]
pub struct Program {
    /// The classic BPF instructions exactly as libseccomp would load them.
    filter: Box<[libc::sock_filter]>,
    /// All flags for `seccomp(SECCOMP_SET_MODE_FILTER)`, including `NEW_LISTENER`.
    flags: libc::c_ulong,
    /// Whether a rule uses `SCMP_ACT_NOTIFY`, so `install` returns a listener fd.
    needs_listener: bool,
}

impl Program {
    /// Installs the filter on the calling thread (and, with `SECCOMP_FILTER_FLAG_TSYNC`, on all
    /// threads of the process).
    ///
    /// Meant for the container's init between fork and exec: it makes one `seccomp(2)` call and
    /// neither allocates nor takes locks. Returns the notify listener fd when
    /// [`needs_listener`](Self::needs_listener) is true, else `None`.
    ///
    /// The caller must have set `no_new_privs` or hold `CAP_SYS_ADMIN`; otherwise the kernel
    /// answers `EACCES`.
    pub fn install(&self) -> Result<Option<OwnedFd>, SeccompError> {
        if self.needs_listener {
            sys::set_mode_filter_listener(self.flags, &self.filter)
                .map(Some)
                .map_err(|source| SeccompError::Install { source })
        } else {
            match sys::set_mode_filter(self.flags, &self.filter) {
                Ok(0) => Ok(None),
                // With TSYNC (and without TSYNC_ESRCH) a positive return names the thread that
                // could not be synchronized; see seccomp(2).
                Ok(tid) => Err(SeccompError::Tsync { tid }),
                Err(source) => Err(SeccompError::Install { source }),
            }
        }
    }

    /// Whether the profile uses `SCMP_ACT_NOTIFY`, so [`install`](Self::install) returns a
    /// listener fd that must reach the agent at `listenerPath`.
    #[must_use]
    pub fn needs_listener(&self) -> bool {
        self.needs_listener
    }

    /// The BPF instructions that [`install`](Self::install) loads.
    #[must_use]
    pub fn instructions(&self) -> &[libc::sock_filter] {
        &self.filter
    }

    /// The flags that [`install`](Self::install) passes to `seccomp(SECCOMP_SET_MODE_FILTER)`.
    #[must_use]
    pub fn flags(&self) -> libc::c_ulong {
        self.flags
    }
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Program")
            .field("instructions", &self.filter.len())
            .field("flags", &format_args!("{:#x}", self.flags))
            .field("needs_listener", &self.needs_listener)
            .finish()
    }
}
