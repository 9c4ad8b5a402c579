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
#![warn(missing_docs)]

mod attach;
pub mod bundle;
mod check;
pub mod config;
mod containers;
mod engine;
mod error;
mod events;
mod exec;
mod filter;
mod health;
pub mod id;
mod images;
mod inspect;
mod lifecycle;
mod logs;
pub mod monitor;
mod names;
pub mod schema;
pub mod state;
mod store;
#[allow(unsafe_code)]
mod sys;
mod units;
mod volumes;

pub use attach::{AttachEnd, AttachOptions, DEFAULT_DETACH_KEYS, parse_detach_keys};
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
pub use logs::{LogsOptions, parse_duration, parse_log_time};
pub use names::random_name;
pub use state::{ContainerState, Health, HealthStatus, Status, Transition};
pub use store::{DB_FILE, DEFAULT_BUSY_TIMEOUT, DEFAULT_EVENTS_KEPT, Paths, Store, Tx};
pub use units::{human_duration, human_size, status_text};
pub use volumes::{LOCAL_DRIVER, NewVolume, Volume, VolumeFilter};
