//! Docker's json-file log: one JSON object per line,
//! `{"log":"text\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}`, rotated by
//! size into `<log>.1`, `<log>.2`, ... (`.1` the newest of the old ones).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const NANOS: i64 = 1_000_000_000;

/// Nanoseconds since the Unix epoch, now.
#[must_use]
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn month_days(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to `y-m-d` (valid dates from 1970 on).
fn days_since_epoch(y: i64, m: i64, d: i64) -> i64 {
    let mut days = 0;
    for year in 1970..y {
        days += if is_leap(year) { 366 } else { 365 };
    }
    for month in 1..m {
        days += month_days(y, month);
    }
    days + d - 1
}

/// RFC 3339 UTC with nanoseconds: `2024-05-01T10:00:00.000000001Z` (times before 1970 print
/// as the epoch).
#[must_use]
pub fn format_time(nanos: i64) -> String {
    let nanos = nanos.max(0);
    let (mut days, rem) = ((nanos / NANOS) / 86_400, (nanos / NANOS) % 86_400);
    let mut year = 1970;
    loop {
        let len = if is_leap(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let mut month = 1;
    while days >= month_days(year, month) {
        days -= month_days(year, month);
        month += 1;
    }
    format!(
        "{year:04}-{month:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        days + 1,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        nanos % NANOS
    )
}

/// Parses RFC 3339 (`2024-05-01T10:00:00Z`, with optional fraction and a `Z` or `±hh:mm`
/// offset) to nanoseconds since the Unix epoch. Dates before 1970 are refused.
#[must_use]
pub fn parse_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if y < 1970 || !(1..=12).contains(&mo) || d < 1 || d > month_days(y, mo) || h > 23 || mi > 59 {
        return None;
    }
    if sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac = 0i64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                frac = frac * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..9 {
            frac *= 10;
        }
    }
    let offset = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let o = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    let secs = days_since_epoch(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    Some(secs * NANOS + frac)
}

/// Appends `s` to `out` as the inside of a JSON string.
fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

/// One log line (with its trailing newline) for `data` on `stream` at `time`.
#[must_use]
pub fn line(stream: &str, data: &[u8], time: i64) -> String {
    let mut out = String::with_capacity(data.len() + 80);
    out.push_str("{\"log\":\"");
    escape_into(&mut out, &String::from_utf8_lossy(data));
    out.push_str("\",\"stream\":\"");
    out.push_str(stream);
    out.push_str("\",\"time\":\"");
    out.push_str(&format_time(time));
    out.push_str("\"}\n");
    out
}

/// `<log>` for 0, `<log>.<n>` for the n-th rotated file.
#[must_use]
pub fn rotated(log: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return log.to_path_buf();
    }
    let mut p = log.as_os_str().to_owned();
    p.push(format!(".{n}"));
    PathBuf::from(p)
}

/// Parses Docker's `max-size` (`10k`, `5m`, `1g`, bytes without a unit).
#[must_use]
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, mult) = match s.as_bytes().last()?.to_ascii_lowercase() {
        b'k' => (&s[..s.len() - 1], 1024),
        b'm' => (&s[..s.len() - 1], 1024 * 1024),
        b'g' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        b'b' => (&s[..s.len() - 1], 1),
        _ => (s, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

/// Appends lines to a json-file log, rotating it by size.
#[derive(Debug)]
pub struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_file: u32,
}

impl Writer {
    /// Opens (creates) the log at `path` for appending.
    ///
    /// Errors: the file cannot be opened.
    pub fn open(path: &Path, max_size: u64, max_file: u32) -> io::Result<Writer> {
        let file = OpenOptions::new().append(true).create(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Writer {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_file: max_file.max(1),
        })
    }

    /// Writes one line, rotating first when it would pass `max-size`.
    ///
    /// Errors: the write or the rotation failed.
    pub fn write(&mut self, line: &str) -> io::Result<()> {
        let len = line.len() as u64;
        if self.max_size > 0 && self.size > 0 && self.size + len > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(line.as_bytes())?;
        self.size += len;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.max_file > 1 {
            let last = rotated(&self.path, self.max_file - 1);
            match fs::remove_file(&last) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            for n in (0..self.max_file - 1).rev() {
                match fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            self.file = OpenOptions::new()
                .append(true)
                .create(true)
                .open(&self.path)?;
        } else {
            self.file.set_len(0)?;
        }
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        for t in [0, 1, 951_782_400 * NANOS + 5, 1_714_557_600_123_456_789] {
            assert_eq!(parse_time(&format_time(t)), Some(t), "{}", format_time(t));
        }
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000000000Z");
        // 2000-02-29 (a leap day of a year divisible by 400).
        assert_eq!(
            format_time(951_782_400 * NANOS),
            "2000-02-29T00:00:00.000000000Z"
        );
        assert_eq!(
            parse_time("2024-05-01T12:00:00+02:00"),
            parse_time("2024-05-01T10:00:00Z")
        );
        assert_eq!(
            parse_time("2024-05-01T10:00:00.5Z"),
            parse_time("2024-05-01T10:00:00Z").map(|t| t + NANOS / 2)
        );
        for bad in [
            "2024-13-01T00:00:00Z",
            "2024-05-01",
            "2024-05-01T10:00:00",
            "x",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn lines_escape_like_json() {
        let l = line("stdout", b"a\"b\\c\n\x01", 0);
        assert_eq!(
            l,
            "{\"log\":\"a\\\"b\\\\c\\n\\u0001\",\"stream\":\"stdout\",\"time\":\"1970-01-01T00:00:00.000000000Z\"}\n"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10k"), Some(10 * 1024));
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn rotation_keeps_max_file_files() {
        let dir = std::env::temp_dir().join(format!("berth-test-{}-jsonlog", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let log = dir.join("c-json.log");
        let mut w = Writer::open(&log, 100, 3).unwrap();
        for i in 0..20 {
            w.write(&line("stdout", format!("line {i}\n").as_bytes(), 0))
                .unwrap();
        }
        assert!(log.exists() && rotated(&log, 1).exists() && rotated(&log, 2).exists());
        assert!(!rotated(&log, 3).exists());
        let newest = fs::read_to_string(&log).unwrap();
        assert!(newest.contains("line 19"), "{newest}");
        assert!(fs::metadata(&log).unwrap().len() <= 100);
        fs::remove_dir_all(&dir).unwrap();
    }
}
