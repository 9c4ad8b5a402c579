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

mod archive;
mod attach;
pub mod bundle;
mod changes;
mod check;
pub mod config;
pub mod container_spec;
mod containers;
mod control;
pub mod dns;
mod engine;
mod error;
pub mod etcfiles;
mod events;
mod exec;
mod filter;
mod health;
pub mod id;
mod image_transfer;
mod image_verbs;
mod images;
mod inspect;
mod lifecycle;
pub mod limits;
mod logs;
pub mod monitor;
mod monitor_start;
mod mount_flags;
mod mounts;
mod names;
mod network_attach;
mod network_check;
mod network_list;
mod network_verbs;
pub mod networks;
mod oci;
mod oom;
pub mod passwd;
mod ps;
pub mod registry;
mod repair;
pub mod schema;
mod seccomp_default;
pub mod seccomp_profile;
pub mod security;
pub mod state;
mod storage;
mod store;
#[allow(unsafe_code)]
mod sys;
mod system;
mod times;
mod units;
mod update;
mod volumes;

pub use archive::{ArchiveError, extract_into};
pub use attach::{AttachEnd, AttachOptions, DEFAULT_DETACH_KEYS, parse_detach_keys};
pub use changes::apply_changes;
pub use check::{Problem, is_alive, monitor_alive, start_time};
pub use config::{Config, HostConfig, PortBinding, RestartPolicy, RestartPolicyName};
pub use containers::{Container, MountKind, MountPoint, NewContainer};
pub use control::{StatsSample, Top};
pub use engine::Engine;
pub use error::{EngineError, ErrorKind, Result};
pub use events::{Event, EventFilter, EventType};
pub use exec::ExecOptions;
pub use filter::ContainerFilter;
pub use id::{ContainerId, Digest, Timestamp};
pub use image_transfer::{CommitRequest, ImportRequest, Loaded};
pub use image_verbs::{HistoryEntry, ImageFilter};
pub use images::{Image, ImageRemoval, NewImage, normalize_tag};
pub use lifecycle::{CreateRequest, Started};
pub use logs::{LogsOptions, parse_log_time};
pub use monitor_start::{Standby, spawn_standby};
pub use mount_flags::parse_mount_flag;
pub use mounts::{MountConfigReason, MountError};
pub use names::random_name;
pub use net::Subnet;
pub use network_attach::{Mode as NetworkMode, mode as network_mode};
pub use network_list::{NetworkFilter, NetworkSummary};
pub use networks::{Endpoint, EndpointRequest, Network, NewNetwork, PortLease};
pub use ps::{ContainerSize, PsOptions};
pub use registry::{PullRequest, PullResult, PushRequest, PushResult};
pub use repair::{CRASH_AT_ENV, Finding};
pub use state::{ContainerState, Health, HealthStatus, Status, Transition};
pub use storage::{Change, CopyOptions, CopyPath};
pub use store::{DB_FILE, DEFAULT_BUSY_TIMEOUT, DEFAULT_EVENTS_KEPT, Paths, Store, Tx};
pub use system::{DiskUsage, Pruned, version};
pub use times::{parse_duration, parse_time};
pub use units::{bytes_size, human_duration, human_size, status_text};
pub use update::UpdateRequest;
pub use volumes::{LOCAL_DRIVER, NewVolume, Volume, VolumeFilter};
