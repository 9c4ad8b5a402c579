//! OCI runtime library: turns an OCI bundle into an isolated process (namespaces, rootfs, mounts,
//! capabilities, seccomp, rlimits, hooks, console) and tracks it in runc-compatible state.
//! Knows nothing of images or networks.
#![warn(missing_docs)]

pub mod seccomp;
