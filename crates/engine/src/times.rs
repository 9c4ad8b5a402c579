//! Docker's time and duration values (`--since`, `--until`, `until=` filters, health check
//! intervals, image `created` fields), parsed once for every verb.

use crate::error::{EngineError, Result};
use crate::id::Timestamp;

/// Docker's time values (`--since`, `--until`, `until=`): a Go duration before `now` (`10m`,
/// `1h30m`), Unix seconds with an optional fraction (`1700000000.5`), or an RFC 3339 date or
/// date-time (`2024-05-01`, `2024-05-01T10:00:00`, with `Z` or `±hh:mm`; without a zone, UTC).
///
/// Errors: `InvalidValue` for anything else.
pub fn parse_time(value: &str, now: Timestamp) -> Result<Timestamp> {
    let bad = || EngineError::InvalidValue {
        what: "time (a duration like 10m, Unix seconds, or RFC 3339)",
        value: value.to_owned(),
    };
    let v = value.trim();
    if let Some(d) = go_duration(v) {
        return Ok(Timestamp(now.0 - d));
    }
    if let Some(t) = unix_time(v) {
        return Ok(Timestamp(t));
    }
    parse_rfc3339(v).ok_or_else(bad)
}

/// Parses a duration in Go's syntax (`1h30m`, `10s`, `500ms`), as Docker's duration flags
/// take it; returns nanoseconds.
pub fn parse_duration(s: &str) -> Result<i64> {
    go_duration(s).ok_or_else(|| EngineError::InvalidValue {
        what: "duration (like 30s, 1m30s, 500ms)",
        value: s.to_owned(),
    })
}

/// Go's duration syntax (`1h30m`, `10s`, `500ms`) in nanoseconds.
fn go_duration(s: &str) -> Option<i64> {
    let mut rest = s;
    let mut total: f64 = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[u..];
        total += value * unit;
    }
    // Durations beyond i64 nanoseconds (292 years) are refused by the range check.
    (total < 9.2e18).then_some(total as i64)
}

/// Unix seconds with an optional fraction (`1700000000`, `1700000000.5`; digits beyond
/// nanoseconds are dropped) in nanoseconds.
fn unix_time(s: &str) -> Option<i64> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    nanos_of(frac)?.checked_add(secs.parse::<i64>().ok()?.checked_mul(1_000_000_000)?)
}

/// The digits after a decimal point as nanoseconds (only the first nine count).
fn nanos_of(frac: &str) -> Option<i64> {
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut nanos: i64 = 0;
    for i in 0..9 {
        let digit = frac.as_bytes().get(i).map_or(0, |b| b - b'0');
        nanos = nanos * 10 + i64::from(digit);
    }
    Some(nanos)
}

/// An RFC 3339 date or date-time in nanoseconds since the epoch: `YYYY-MM-DD`, optionally
/// followed by `T` (or `t` or a space) and `HH:MM[:SS[.frac]]`, optionally followed by `Z` or
/// `±hh:mm` (no zone: UTC).
pub(crate) fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let num = |t: &str| -> Option<i64> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (date, time) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let (clock, offset) = match time.find(['Z', 'z', '+', '-']) {
        Some(i) => (&time[..i], &time[i..]),
        None => (time, ""),
    };
    let offset_secs = match offset {
        "" | "Z" | "z" => 0,
        o => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let (h, mi) = o[1..].split_once(':')?;
            sign * (num(h)? * 3600 + num(mi)? * 60)
        }
    };
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut parts = hms.split(':').filter(|p| !p.is_empty());
    let h = parts.next().map_or(Some(0), num)?;
    let mi = parts.next().map_or(Some(0), num)?;
    let sec = parts.next().map_or(Some(0), num)?;
    if parts.next().is_some() || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(y, m, day);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_secs;
    Some(Timestamp(
        secs.checked_mul(1_000_000_000)?
            .checked_add(nanos_of(frac)?)?,
    ))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_docker_form() {
        let now = Timestamp(1_700_000_000_000_000_000);
        for (text, want) in [
            ("10m", now.0 - 600_000_000_000),
            ("1h30m", now.0 - 5_400_000_000_000),
            ("1700000000", 1_700_000_000_000_000_000),
            ("1700000000.5", 1_700_000_000_500_000_000),
            ("2023-11-14T22:13:20Z", 1_700_000_000_000_000_000),
            ("2023-11-14T23:13:20+01:00", 1_700_000_000_000_000_000),
            ("1970-01-02", 86_400_000_000_000),
        ] {
            assert_eq!(parse_time(text, now).unwrap().0, want, "{text}");
        }
        for bad in ["", "soon", "10x", "2023-13-01", "1.2.3"] {
            assert!(parse_time(bad, now).is_err(), "{bad}");
        }
    }
}
