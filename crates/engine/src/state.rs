//! The container state machine: Docker's statuses, the runtime facts recorded with them, and the
//! pure rules saying which transition is legal from which status.
//!
//! ```text
//!            start              pause
//!  created ─────────> running <──────> paused
//!     │                │  ▲ ▲  unpause   │
//!     │           exit │  │ └──────┐     │ exit (killed while paused)
//!     │                ▼  │start   │     ▼
//!     └── exit ──> exited ─┘   restarting
//!                    │  └── restart ──┘ (policy)          any ──> dead ──> removing
//!                    └──> removing ──> (row deleted) / dead on failure
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::id::Timestamp;

/// Docker's `State.Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created, never started (or its start failed before the process ran).
    Created,
    /// Its process runs.
    Running,
    /// Its processes are frozen.
    Paused,
    /// Exited, and the restart policy will start it again.
    Restarting,
    /// Its process exited (or it was stopped).
    Exited,
    /// Being removed.
    Removing,
    /// Broken: removal or cleanup failed; only removal is allowed.
    Dead,
}

impl Status {
    /// All statuses, in Docker's order.
    pub const ALL: [Self; 7] = [
        Self::Created,
        Self::Restarting,
        Self::Running,
        Self::Removing,
        Self::Paused,
        Self::Exited,
        Self::Dead,
    ];

    /// Docker's lowercase name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Restarting => "restarting",
            Self::Exited => "exited",
            Self::Removing => "removing",
            Self::Dead => "dead",
        }
    }

    /// Whether a process of the container may be alive (and a monitor is responsible for it).
    #[must_use]
    pub fn is_active(self) -> bool {
        matches!(self, Self::Running | Self::Paused | Self::Restarting)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| EngineError::InvalidValue {
                what: "container status",
                value: s.to_owned(),
            })
    }
}

/// Docker's `State.Health.Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// In the start period, no verdict yet.
    Starting,
    /// The last check passed.
    Healthy,
    /// `Retries` consecutive checks failed.
    Unhealthy,
}

impl HealthStatus {
    /// Docker's lowercase name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
        }
    }
}

/// One health check run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthLog {
    /// When it started.
    pub start: Timestamp,
    /// When it ended.
    pub end: Timestamp,
    /// Its exit code.
    pub exit_code: i64,
    /// The start of its output.
    pub output: String,
}

/// Docker's `State.Health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// Verdict.
    pub status: HealthStatus,
    /// Consecutive failures.
    pub failing_streak: i64,
    /// The last few runs (the monitor keeps at most 5, like Docker).
    pub log: Vec<HealthLog>,
}

/// A container's runtime state as recorded in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    /// Status.
    pub status: Status,
    /// Pid of the container's init process on the host (active statuses only).
    pub pid: Option<i32>,
    /// Pid of the container's `berth monitor`; kept once it recorded the exit, since it still
    /// cleans up then (whether that pid is still the monitor: `check::monitor_alive`).
    pub monitor_pid: Option<i32>,
    /// Last start.
    pub started_at: Option<Timestamp>,
    /// Last exit.
    pub finished_at: Option<Timestamp>,
    /// Exit code of the last run (`None` before the first exit).
    pub exit_code: Option<i64>,
    /// Whether the last run was killed by the OOM killer.
    pub oom_killed: bool,
    /// Restarts done by the restart policy.
    pub restart_count: i64,
    /// Set by `stop`/`kill` from the user, so no restart policy restarts it; cleared by `start`.
    pub stopped_by_user: bool,
    /// Why the last start or run failed (empty when it did not).
    pub error: String,
    /// Health, when the container has a health check and runs.
    pub health: Option<Health>,
}

impl ContainerState {
    /// The state of a freshly created container.
    #[must_use]
    pub fn created() -> Self {
        Self {
            status: Status::Created,
            pid: None,
            monitor_pid: None,
            started_at: None,
            finished_at: None,
            exit_code: None,
            oom_killed: false,
            restart_count: 0,
            stopped_by_user: false,
            error: String::new(),
            health: None,
        }
    }
}

/// A change of a container's state, with the facts it records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The process runs (first start, user start, or restart by policy).
    Started {
        /// Host pid of the container's init.
        pid: i32,
        /// Pid of its monitor.
        monitor_pid: i32,
        /// When.
        at: Timestamp,
        /// `true` when the user asked (`start`/`restart`): clears the stopped-by-user mark.
        by_user: bool,
    },
    /// A start failed before the process ran (bad entrypoint: Docker's 126/127).
    StartFailed {
        /// Exit code to record (125, 126 or 127).
        exit_code: i64,
        /// The error, one line.
        error: String,
        /// When.
        at: Timestamp,
    },
    /// Frozen.
    Paused,
    /// Thawed.
    Unpaused,
    /// The user asked to stop or kill it; recorded before the signal so that the monitor does
    /// not restart it. The status does not change.
    StopRequested,
    /// The process exited (or was found gone).
    Exited {
        /// Exit code (128 + signal when killed by a signal).
        exit_code: i64,
        /// Killed by the OOM killer.
        oom_killed: bool,
        /// When.
        at: Timestamp,
    },
    /// It exited and the restart policy will start it again.
    Restarting {
        /// Exit code of the run that ended.
        exit_code: i64,
        /// Killed by the OOM killer.
        oom_killed: bool,
        /// When it exited.
        at: Timestamp,
    },
    /// Removal begins.
    Removing,
    /// Removal or cleanup failed; the container can only be removed.
    Dead {
        /// Why.
        error: String,
    },
    /// A health check verdict (running containers only).
    Health(Health),
}

impl Transition {
    /// The verb, for errors and events (`start`, `die`, `pause`, ...).
    #[must_use]
    pub fn action(&self) -> &'static str {
        match self {
            Self::Started { .. } => "start",
            Self::StartFailed { .. } => "start",
            Self::Paused => "pause",
            Self::Unpaused => "unpause",
            Self::StopRequested => "stop",
            Self::Exited { .. } => "die",
            Self::Restarting { .. } => "restart",
            Self::Removing => "remove",
            Self::Dead { .. } => "die",
            Self::Health(_) => "health_status",
        }
    }

    /// The Docker event this transition records, if any (`StopRequested` and `Removing` record
    /// none: the engine logs `kill`/`stop` and `destroy` itself). Exits, including a failed
    /// start and an exit the restart policy will follow, are Docker's `die`.
    #[must_use]
    pub fn event(&self) -> Option<String> {
        match self {
            Self::Started { .. } => Some("start".into()),
            Self::StartFailed { .. } | Self::Exited { .. } | Self::Restarting { .. } => {
                Some("die".into())
            }
            Self::Paused => Some("pause".into()),
            Self::Unpaused => Some("unpause".into()),
            Self::StopRequested | Self::Removing | Self::Dead { .. } => None,
            Self::Health(h) => Some(format!("health_status: {}", h.status.as_str())),
        }
    }

    /// The status this transition leads to.
    #[must_use]
    pub fn target(&self, from: Status) -> Status {
        match self {
            Self::Started { .. } => Status::Running,
            // A container that never ran stays created; one that ran before stays exited.
            Self::StartFailed { .. } if from == Status::Created => Status::Created,
            Self::StartFailed { .. } => Status::Exited,
            Self::Paused => Status::Paused,
            Self::Unpaused => Status::Running,
            Self::StopRequested | Self::Health(_) => from,
            Self::Exited { .. } => Status::Exited,
            Self::Restarting { .. } => Status::Restarting,
            Self::Removing => Status::Removing,
            Self::Dead { .. } => Status::Dead,
        }
    }
}

/// Whether `transition` may be applied to a container in status `from`.
#[must_use]
pub fn is_legal(from: Status, transition: &Transition) -> bool {
    use Status::*;
    match transition {
        Transition::Started { .. } => matches!(from, Created | Exited | Restarting),
        Transition::StartFailed { .. } => matches!(from, Created | Exited | Restarting),
        Transition::Paused => from == Running,
        Transition::Unpaused => from == Paused,
        Transition::StopRequested => matches!(from, Running | Paused | Restarting),
        // A paused container can be killed; a restarting one can be stopped while it waits.
        Transition::Exited { .. } => matches!(from, Running | Paused | Restarting),
        Transition::Restarting { .. } => matches!(from, Running | Exited),
        Transition::Removing => matches!(from, Created | Exited | Dead),
        Transition::Dead { .. } => from != Dead,
        Transition::Health(_) => matches!(from, Running | Paused),
    }
}

/// Applies `transition` to `state`, or says why it is illegal (`id` names the container in the
/// error).
pub fn apply(state: &ContainerState, transition: Transition, id: &str) -> Result<ContainerState> {
    if !is_legal(state.status, &transition) {
        return Err(EngineError::IllegalTransition {
            id: id.to_owned(),
            action: transition.action(),
            from: state.status,
        });
    }
    let mut next = state.clone();
    next.status = transition.target(state.status);
    match transition {
        Transition::Started {
            pid,
            monitor_pid,
            at,
            by_user,
        } => {
            next.pid = Some(pid);
            next.monitor_pid = Some(monitor_pid);
            next.started_at = Some(at);
            next.error.clear();
            next.oom_killed = false;
            next.health = None;
            if by_user {
                next.stopped_by_user = false;
            }
        }
        Transition::StartFailed {
            exit_code,
            error,
            at,
        } => {
            next.pid = None;
            next.exit_code = Some(exit_code);
            next.finished_at = Some(at);
            next.error = error;
        }
        Transition::Paused | Transition::Unpaused | Transition::Removing => {}
        Transition::StopRequested => next.stopped_by_user = true,
        Transition::Exited {
            exit_code,
            oom_killed,
            at,
        } => {
            next.pid = None;
            next.exit_code = Some(exit_code);
            next.oom_killed = oom_killed;
            next.finished_at = Some(at);
            next.health = None;
        }
        Transition::Restarting {
            exit_code,
            oom_killed,
            at,
        } => {
            // The monitor stays responsible for the container while it waits to restart.
            next.pid = None;
            next.exit_code = Some(exit_code);
            next.oom_killed = oom_killed;
            next.finished_at = Some(at);
            next.restart_count += 1;
            next.health = None;
        }
        Transition::Dead { error } => {
            next.pid = None;
            next.monitor_pid = None;
            next.error = error;
        }
        Transition::Health(h) => next.health = Some(h),
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started() -> Transition {
        Transition::Started {
            pid: 10,
            monitor_pid: 9,
            at: Timestamp(1),
            by_user: true,
        }
    }
    fn exited(code: i64) -> Transition {
        Transition::Exited {
            exit_code: code,
            oom_killed: false,
            at: Timestamp(2),
        }
    }
    fn restarting() -> Transition {
        Transition::Restarting {
            exit_code: 1,
            oom_killed: false,
            at: Timestamp(3),
        }
    }
    fn health() -> Transition {
        Transition::Health(Health {
            status: HealthStatus::Healthy,
            failing_streak: 0,
            log: vec![],
        })
    }

    /// The full table: every status against every transition.
    #[test]
    fn legal_transitions_table() {
        use Status::*;
        let cases: Vec<(Transition, &[Status])> = vec![
            (started(), &[Created, Exited, Restarting]),
            (
                Transition::StartFailed {
                    exit_code: 127,
                    error: "x".into(),
                    at: Timestamp(1),
                },
                &[Created, Exited, Restarting],
            ),
            (Transition::Paused, &[Running]),
            (Transition::Unpaused, &[Paused]),
            (Transition::StopRequested, &[Running, Paused, Restarting]),
            (exited(0), &[Running, Paused, Restarting]),
            (restarting(), &[Running, Exited]),
            (Transition::Removing, &[Created, Exited, Dead]),
            (
                Transition::Dead { error: "x".into() },
                &[Created, Running, Paused, Restarting, Exited, Removing],
            ),
            (health(), &[Running, Paused]),
        ];
        for (t, allowed) in cases {
            for from in Status::ALL {
                assert_eq!(
                    is_legal(from, &t),
                    allowed.contains(&from),
                    "{from} --{}-->",
                    t.action()
                );
            }
        }
    }

    #[test]
    fn a_lifecycle_records_its_facts() {
        let s = ContainerState::created();
        let s = apply(&s, started(), "c").unwrap();
        assert_eq!(
            (s.status, s.pid, s.monitor_pid),
            (Status::Running, Some(10), Some(9))
        );
        let s = apply(&s, Transition::Paused, "c").unwrap();
        let s = apply(&s, Transition::Unpaused, "c").unwrap();
        let s = apply(&s, restarting(), "c").unwrap();
        assert_eq!(
            (s.status, s.restart_count, s.pid, s.monitor_pid),
            (Status::Restarting, 1, None, Some(9))
        );
        let s = apply(
            &s,
            Transition::Started {
                pid: 11,
                monitor_pid: 9,
                at: Timestamp(4),
                by_user: false,
            },
            "c",
        )
        .unwrap();
        let s = apply(&s, Transition::StopRequested, "c").unwrap();
        assert!(s.stopped_by_user);
        let s = apply(
            &s,
            Transition::Exited {
                exit_code: 137,
                oom_killed: true,
                at: Timestamp(5),
            },
            "c",
        )
        .unwrap();
        assert_eq!(
            (s.status, s.exit_code, s.oom_killed, s.pid),
            (Status::Exited, Some(137), true, None)
        );
        assert_eq!(s.finished_at, Some(Timestamp(5)));
        assert_eq!(s.restart_count, 1);
        // A user start clears the stop mark and the OOM flag.
        let s = apply(&s, started(), "c").unwrap();
        assert!(!s.stopped_by_user && !s.oom_killed);
    }

    #[test]
    fn failed_starts_keep_created_or_become_exited() {
        let failed = || Transition::StartFailed {
            exit_code: 127,
            error: "no such file".into(),
            at: Timestamp(9),
        };
        let s = apply(&ContainerState::created(), failed(), "c").unwrap();
        assert_eq!(
            (s.status, s.exit_code, s.error.as_str()),
            (Status::Created, Some(127), "no such file")
        );
        let ran = apply(&apply(&s, started(), "c").unwrap(), exited(0), "c").unwrap();
        assert_eq!(apply(&ran, failed(), "c").unwrap().status, Status::Exited);
        assert_eq!(failed().event().as_deref(), Some("die"));
        assert_eq!(restarting().event().as_deref(), Some("die"));
        assert_eq!(Transition::StopRequested.event(), None);
    }

    #[test]
    fn illegal_transitions_are_conflicts() {
        let s = ContainerState::created();
        let e = apply(&s, Transition::Paused, "0123456789ab").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Conflict);
        assert_eq!(
            e.to_string(),
            "container 0123456789ab: cannot pause a container that is created"
        );
        let running = apply(&s, started(), "c").unwrap();
        assert!(apply(&running, started(), "c").is_err(), "already running");
        assert!(
            apply(&running, Transition::Removing, "c").is_err(),
            "running must be stopped first"
        );
    }

    #[test]
    fn status_names_round_trip() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!("up".parse::<Status>().is_err());
    }
}
