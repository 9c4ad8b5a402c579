//! Docker's human-readable units and status lines, shared by the CLI's tables.

use crate::containers::Container;
use crate::id::Timestamp;
use crate::state::Status;

/// Status line as `docker ps` prints it: `Up 3 seconds`, `Exited (0) 2 minutes ago`.
#[must_use]
pub fn status_text(c: &Container, now: Timestamp) -> String {
    let ago =
        |t: Option<Timestamp>| human_duration(now.secs() - t.map_or(now.secs(), Timestamp::secs));
    match c.state.status {
        Status::Running => match &c.state.health {
            Some(h) => format!("Up {} ({})", ago(c.state.started_at), health_text(h.status)),
            None => format!("Up {}", ago(c.state.started_at)),
        },
        Status::Paused => format!("Up {} (Paused)", ago(c.state.started_at)),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            c.state.exit_code.unwrap_or(0),
            ago(c.state.finished_at)
        ),
        Status::Created => "Created".into(),
        Status::Restarting => "Restarting".into(),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
    }
}

/// Docker's words for a health status in `ps`: `healthy`, `unhealthy`, `health: starting`.
fn health_text(s: crate::state::HealthStatus) -> &'static str {
    match s {
        crate::state::HealthStatus::Starting => "health: starting",
        crate::state::HealthStatus::Healthy => "healthy",
        crate::state::HealthStatus::Unhealthy => "unhealthy",
    }
}

/// Docker's `units.HumanDuration`: "Less than a second", "3 seconds", "About a minute", ...
#[must_use]
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..60 => format!("{s} seconds"),
        60..120 => "About a minute".into(),
        120..3600 => format!("{} minutes", s / 60),
        3600..7200 => "About an hour".into(),
        7200..172_800 => format!("{} hours", s / 3600),
        172_800..1_209_600 => format!("{} days", s / 86_400),
        1_209_600..5_184_000 => format!("{} weeks", s / 604_800),
        5_184_000..63_072_000 => format!("{} months", s / 2_592_000),
        _ => format!("{} years", s / 31_536_000),
    }
}

/// Docker's `units.HumanSize`: decimal units, 3 significant digits (`4.26MB`).
#[must_use]
pub fn human_size(bytes: i64) -> String {
    scaled(bytes, 1000.0, &["B", "kB", "MB", "GB", "TB", "PB"], 3)
}

/// Docker's `units.BytesSize`: binary units, 4 significant digits (`1.465MiB`), as
/// `docker stats` prints memory.
#[must_use]
pub fn bytes_size(bytes: i64) -> String {
    scaled(bytes, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB"], 4)
}

/// `bytes` in the largest unit below `base` times the next, with `significant` digits and
/// trailing zeros dropped (Go's `%.Ng`, for values below 10^N); whole bytes print as is.
fn scaled(bytes: i64, base: f64, units: &[&str], significant: i32) -> String {
    let bytes = bytes.max(0);
    #[allow(clippy::cast_precision_loss)]
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= base && i + 1 < units.len() {
        v /= base;
        i += 1;
    }
    if i == 0 {
        return format!("{bytes}{}", units[0]);
    }
    let mut digits = significant - 1;
    let mut bound = 10.0;
    while v >= bound && digits > 0 {
        digits -= 1;
        bound *= 10.0;
    }
    let digits = usize::try_from(digits).unwrap_or(0);
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    format!("{s}{}", units[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_260_000), "4.26MB");
        assert_eq!(human_size(12_345_678), "12.3MB");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(bytes_size(1024), "1KiB");
        assert_eq!(bytes_size(1_536_000), "1.465MiB");
        assert_eq!(bytes_size(8_233_984_000), "7.668GiB");
        assert_eq!(bytes_size(520 * 1024), "520KiB");
    }

    #[test]
    fn durations_like_docker() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
    }
}
