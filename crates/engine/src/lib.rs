//! berth's engine. So far: the persistent state store every `berth` command (and later
//! `berth serve` and the per-container monitors) opens at the same time — containers, images
//! (references -> manifest digests), volumes and the event log in `<root>/berth.db` (SQLite, WAL).
//!
//! It knows nothing of processes, mounts or blobs: it records them. The `image` crate owns
//! content and snapshots, `runtime` owns processes; the engine composes them: [`Engine`] is
//! the facade the CLI calls (import, run, ps, logs, stop, kill, rm) and [`monitor::monitor`]
//! the per-container process.
//!
//! Entry points: [`Store::open`] with [`Paths`]; [`Store::write`] / [`Store::read`] run a
//! closure in one transaction on a [`Tx`], whose methods create, find, list, change and remove
//! [`Container`]s, [`Image`]s, [`Volume`]s and [`Event`]s; [`state::apply`] is the pure state
//! machine; [`Store::check`] lists [`Problem`]s for `berth system check`. Errors are
//! [`EngineError`] with a [`ErrorKind`].
//!
//! A container's settings become its OCI config in [`bundle`] (Docker's fixed defaults) and
//! [`container_spec`] (user, [`security`] caps and seccomp, [`limits`], devices, [`etcfiles`]).
#![warn(missing_docs)]

pub mod bundle;
mod check;
pub mod config;
pub mod container_spec;
mod containers;
mod engine;
mod error;
pub mod etcfiles;
mod events;
mod exec;
mod filter;
pub mod id;
mod images;
mod inspect;
mod lifecycle;
pub mod limits;
mod logs;
pub mod monitor;
mod names;
mod oom;
pub mod passwd;
pub mod schema;
mod seccomp_default;
pub mod seccomp_profile;
pub mod security;
pub mod state;
mod store;
mod units;
mod update;
mod volumes;

pub use check::{Problem, is_alive};
pub use config::{Config, HostConfig, RestartPolicy, RestartPolicyName};
pub use containers::{Container, MountKind, MountPoint, NewContainer};
pub use engine::Engine;
pub use error::{EngineError, ErrorKind, Result};
pub use events::{Event, EventFilter, EventType};
pub use exec::ExecOptions;
pub use filter::ContainerFilter;
pub use id::{ContainerId, Digest, Timestamp};
pub use images::{Image, ImageRemoval, NewImage, normalize_tag};
pub use lifecycle::{CreateRequest, Started};
pub use names::random_name;
pub use state::{ContainerState, Health, HealthStatus, Status, Transition};
pub use store::{DB_FILE, DEFAULT_BUSY_TIMEOUT, DEFAULT_EVENTS_KEPT, Paths, Store, Tx};
pub use units::{human_duration, human_size, status_text};
pub use update::UpdateRequest;
pub use volumes::{LOCAL_DRIVER, NewVolume, Volume, VolumeFilter};
