//! OCI runtime library: turns an OCI bundle into an isolated process (namespaces, rootfs, mounts,
//! capabilities, seccomp, rlimits, hooks, console) and tracks it in runc-compatible state.
//! Knows nothing of images or networks.
//!
//! Entry points: [`container::create`], [`container::start`], [`container::run`],
//! [`container::exec`], [`container::kill`], [`container::delete`] and [`state::ContainerState`].
#![warn(missing_docs)]

pub mod console;
pub mod container;
pub mod error;
pub mod features;
mod hooks;
mod mounts;
mod notify_socket;
pub mod paths;
mod process;
mod rootfs;
pub mod seccomp;
pub mod selfexe;
pub mod spec;
pub mod state;
mod sync;
#[allow(unsafe_code)]
mod sys;

pub use error::{Result, RuntimeError};
pub use mounts::propagation_flag;
pub use sys::PROXIED_SIGNALS;
