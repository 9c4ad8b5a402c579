//! Health checks: the idle monitor starts `berth monitor <id> --health` every interval; that
//! runs the check through `berth exec` (so it joins the container like any exec), with the
//! timeout, and records Docker's verdict (`State.Health`: status, failing streak, the last five
//! runs) with [`Transition::Health`].

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::HealthConfig;
use crate::containers::Container;
use crate::engine::POLL;
use crate::id::Timestamp;
use crate::state::{Health, HealthLog, HealthStatus, Transition};
use crate::store::{Paths, Store};

const SECOND: i64 = 1_000_000_000;
/// Docker's defaults: every 30 s, 30 s to answer, 3 failures make it unhealthy.
const DEFAULT_INTERVAL: i64 = 30 * SECOND;
const DEFAULT_TIMEOUT: i64 = 30 * SECOND;
const DEFAULT_RETRIES: i64 = 3;
/// Runs kept in `State.Health.Log`, and bytes of output kept per run (Docker's).
const KEPT_RUNS: usize = 5;
const KEPT_OUTPUT: usize = 4096;

/// The container's health check with Docker's defaults filled in; `None` without one (or with
/// `NONE`, from `--no-healthcheck`).
#[must_use]
pub(crate) fn effective(c: &Container) -> Option<HealthConfig> {
    let h = c.config.healthcheck.as_ref()?;
    match h.test.first().map(String::as_str) {
        Some("CMD" | "CMD-SHELL") if h.test.len() > 1 => {}
        _ => return None,
    }
    let or = |v: i64, d: i64| if v > 0 { v } else { d };
    Some(HealthConfig {
        test: h.test.clone(),
        interval: or(h.interval, DEFAULT_INTERVAL),
        timeout: or(h.timeout, DEFAULT_TIMEOUT),
        start_period: h.start_period.max(0),
        start_interval: h.start_interval,
        retries: or(h.retries, DEFAULT_RETRIES),
    })
}

/// The next `State.Health` after a run that exited with `exit_code`. Failures inside the start
/// period do not count (a success there ends it, as in Docker).
#[must_use]
pub(crate) fn verdict(
    prev: Option<&Health>,
    run: HealthLog,
    retries: i64,
    in_start_period: bool,
) -> Health {
    let mut h = prev.cloned().unwrap_or(Health {
        status: HealthStatus::Starting,
        failing_streak: 0,
        log: Vec::new(),
    });
    if run.exit_code == 0 {
        h.status = HealthStatus::Healthy;
        h.failing_streak = 0;
    } else if !in_start_period {
        h.failing_streak += 1;
        if h.failing_streak >= retries {
            h.status = HealthStatus::Unhealthy;
        }
    }
    h.log.push(run);
    let extra = h.log.len().saturating_sub(KEPT_RUNS);
    h.log.drain(..extra);
    h
}

/// `berth monitor <id> --health`: runs one check and records it. Returns its exit code.
#[must_use]
pub(crate) fn check(paths: &Paths, id: &str) -> i32 {
    let Ok(store) = Store::open(paths) else {
        return 125;
    };
    let Ok(c) = store.read(|tx| tx.container(id)) else {
        return 125;
    };
    let Some(hc) = effective(&c) else {
        return 0;
    };
    let start = Timestamp::now();
    let (exit_code, output) = run(paths, &c, &hc);
    let end = Timestamp::now();
    let in_start_period = c
        .state
        .started_at
        .is_some_and(|s| start.nanos() - s.nanos() < hc.start_period);
    let run = HealthLog {
        start,
        end,
        exit_code,
        output,
    };
    let _ = store.write(|tx| {
        let now = tx.container_by_id(&c.id)?;
        let h = verdict(now.state.health.as_ref(), run, hc.retries, in_start_period);
        tx.transition(&c.id, Transition::Health(h))
    });
    i32::try_from(exit_code).unwrap_or(1)
}

/// Runs the test through `berth exec`; (exit code, the start of its output). A run past the
/// timeout is killed and counts as a failure (-1), as in Docker.
fn run(paths: &Paths, c: &Container, hc: &HealthConfig) -> (i64, String) {
    let berth = std::env::args_os().next().unwrap_or_default();
    let mut cmd = Command::new(berth);
    cmd.arg("--root")
        .arg(&paths.root)
        .arg("--run-root")
        .arg(&paths.run_root)
        .arg("exec")
        .arg(c.id.as_str());
    if hc.test[0] == "CMD-SHELL" {
        cmd.args(["/bin/sh", "-c", &hc.test[1]]);
    } else {
        cmd.args(&hc.test[1..]);
    }
    let mut child = match cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(ch) => ch,
        Err(e) => return (-1, format!("start health check: {e}")),
    };
    let deadline = Instant::now() + Duration::from_nanos(u64::try_from(hc.timeout).unwrap_or(0));
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let mut output = Vec::new();
    for mut pipe in [
        child.stdout.take().map(|p| Box::new(p) as Box<dyn Read>),
        child.stderr.take().map(|p| Box::new(p) as Box<dyn Read>),
    ]
    .into_iter()
    .flatten()
    {
        let _ = pipe.read_to_end(&mut output);
    }
    output.truncate(KEPT_OUTPUT);
    let text = String::from_utf8_lossy(&output).into_owned();
    match status {
        Some(st) => (i64::from(st.code().unwrap_or(1)), text),
        None => (
            -1,
            format!(
                "Health check exceeded timeout ({})",
                crate::units::human_duration(hc.timeout / SECOND)
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(code: i64) -> HealthLog {
        HealthLog {
            start: Timestamp(1),
            end: Timestamp(2),
            exit_code: code,
            output: String::new(),
        }
    }

    #[test]
    fn verdicts_follow_docker() {
        let h = verdict(None, run(1), 2, false);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Starting, 1));
        let h = verdict(Some(&h), run(1), 2, false);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Unhealthy, 2));
        let h = verdict(Some(&h), run(0), 2, false);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Healthy, 0));
        // In the start period failures do not count.
        let h = verdict(None, run(1), 1, true);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Starting, 0));
        let mut h = h;
        for _ in 0..10 {
            h = verdict(Some(&h), run(0), 1, false);
        }
        assert_eq!(h.log.len(), KEPT_RUNS);
    }
}
