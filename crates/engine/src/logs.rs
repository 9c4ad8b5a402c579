//! `logs`: the json-file log (and its rotated files) printed, filtered and followed.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use berth_monitor::jsonlog;

use crate::containers::Container;
use crate::engine::{Engine, POLL, io_err};
use crate::error::Result;
use crate::id::Timestamp;

/// What `logs` prints.
#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    /// Keep printing new output until the container stops.
    pub follow: bool,
    /// Prefix each line with its RFC 3339 time.
    pub timestamps: bool,
    /// Only the last this many lines (`None`: all).
    pub tail: Option<usize>,
    /// Only lines at or after this time (nanoseconds since the epoch).
    pub since: Option<i64>,
    /// Only lines before this time.
    pub until: Option<i64>,
}

/// Parses `--since`/`--until` ([`parse_time`](crate::parse_time)'s forms) to nanoseconds since
/// the epoch, as [`LogsOptions`] holds them.
pub fn parse_log_time(s: &str, now: i64) -> Result<i64> {
    crate::times::parse_time(s, Timestamp(now)).map(|t| t.0)
}

/// One decoded log line.
struct Entry {
    text: String,
    stderr: bool,
    time: String,
    nanos: i64,
}

fn decode(line: &[u8]) -> Option<Entry> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let time = v["time"].as_str().unwrap_or_default().to_owned();
    Some(Entry {
        text: v["log"].as_str().unwrap_or_default().to_owned(),
        stderr: v["stream"] == "stderr",
        nanos: jsonlog::parse_time(&time).unwrap_or(0),
        time,
    })
}

/// Reads whole lines from a log file, keeping a partial last line for the next read.
#[derive(Default)]
struct LineReader {
    partial: Vec<u8>,
}

impl LineReader {
    fn read(&mut self, file: &mut File, path: &Path) -> Result<Vec<Entry>> {
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)
            .map_err(io_err("read log", path))?;
        self.partial.extend_from_slice(&buf);
        let mut out = Vec::new();
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            out.extend(decode(&line));
        }
        Ok(out)
    }
}

impl Engine {
    /// Writes the container's logs to `out`/`err` as `opts` says; with `follow`, until it
    /// stops running.
    ///
    /// Errors: no such container, or its log cannot be read.
    pub fn logs(
        &self,
        reference: &str,
        opts: &LogsOptions,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<()> {
        let c = self.container(reference)?;
        let path = c.log_path.clone();
        // The files as they were at one instant; what rotates away after this is still read
        // through the current one.
        let mut files = match LogFiles::open(&path, max_file(&c)) {
            Some(files) => files.0,
            None => vec![(0, File::open(&path).map_err(io_err("open log", &path))?)],
        };
        let (_, mut current) = files.remove(0);
        let mut entries = Vec::new();
        for (_, mut f) in files.into_iter().rev() {
            entries.extend(LineReader::default().read(&mut f, &path)?);
        }
        let mut reader = LineReader::default();
        entries.extend(reader.read(&mut current, &path)?);
        entries.retain(|e| keep(e, opts));
        if let Some(n) = opts.tail {
            let skip = entries.len().saturating_sub(n);
            entries.drain(..skip);
        }
        print(&entries, opts, out, err);
        if !opts.follow {
            return Ok(());
        }
        loop {
            let active = self
                .store
                .read(|tx| tx.container_by_id(&c.id))
                .is_ok_and(|now| {
                    now.state.status.is_active()
                        || now
                            .state
                            .monitor_pid
                            .is_some_and(|p| crate::check::monitor_alive(p, &c.run_dir))
                });
            let mut new = reader.read(&mut current, &path)?;
            let rotated = std::fs::metadata(&path)
                .ok()
                .zip(current.metadata().ok())
                .is_some_and(|(p, f)| p.ino() != f.ino());
            if rotated && let Some(files) = LogFiles::open(&path, max_file(&c)) {
                // The old file is complete now that it rotated away: its last lines.
                new.extend(reader.read(&mut current, &path)?);
                // Then every file newer than it, oldest first, ending with the current one.
                let done = current.metadata().map(|m| m.ino()).ok();
                let newer = files
                    .0
                    .iter()
                    .position(|(ino, _)| Some(*ino) == done)
                    .unwrap_or(files.0.len());
                let mut files = files.0;
                files.truncate(newer);
                let mut files = files.into_iter().rev();
                // Nothing newer (the name came back to this file): go on reading it.
                if let Some((_, newest)) = files.next_back() {
                    for (_, mut f) in files {
                        new.extend(LineReader::default().read(&mut f, &path)?);
                    }
                    current = newest;
                    reader = LineReader::default();
                    new.extend(reader.read(&mut current, &path)?);
                }
            }
            new.retain(|e| keep(e, opts));
            print(&new, opts, out, err);
            if !active {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
    }
}

/// The log and its rotated files, newest (the current log) first, opened at one instant: the
/// monitor renames them all at each rotation, so a listing is retried until no rotation
/// happened while it was made. `None` while the current log is missing (mid-rotation).
struct LogFiles(Vec<(u64, File)>);

impl LogFiles {
    fn open(path: &Path, max_file: u32) -> Option<LogFiles> {
        let inodes = || -> Vec<Option<u64>> {
            (0..max_file.max(1))
                .map(|n| {
                    std::fs::metadata(jsonlog::rotated(path, n))
                        .ok()
                        .map(|m| m.ino())
                })
                .collect()
        };
        for _ in 0..100 {
            let before = inodes();
            let files: Vec<(u64, File)> = (0..max_file.max(1))
                .map_while(|n| {
                    let f = File::open(jsonlog::rotated(path, n)).ok()?;
                    Some((f.metadata().ok()?.ino(), f))
                })
                .collect();
            let opened: Vec<Option<u64>> = files.iter().map(|(ino, _)| Some(*ino)).collect();
            if before[0].is_some() && before == inodes() && before[..opened.len()] == opened[..] {
                return Some(LogFiles(files));
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        None
    }
}

fn max_file(c: &Container) -> u32 {
    c.host_config
        .log_config
        .config
        .get("max-file")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

fn keep(e: &Entry, opts: &LogsOptions) -> bool {
    opts.since.is_none_or(|t| e.nanos >= t) && opts.until.is_none_or(|t| e.nanos < t)
}

fn print(entries: &[Entry], opts: &LogsOptions, out: &mut dyn Write, err: &mut dyn Write) {
    for e in entries {
        let w: &mut dyn Write = if e.stderr { &mut *err } else { &mut *out };
        if opts.timestamps {
            let _ = write!(w, "{} ", e.time);
        }
        let _ = w.write_all(e.text.as_bytes());
    }
    let _ = out.flush();
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_times_in_docker_forms() {
        let now = 1_714_557_600 * 1_000_000_000;
        assert_eq!(parse_log_time("2024-05-01T10:00:00Z", 0).unwrap(), now);
        assert_eq!(
            parse_log_time("2024-05-01", 0).unwrap(),
            now - 36_000_000_000_000
        );
        assert_eq!(parse_log_time("1714557600", 0).unwrap(), now);
        assert_eq!(
            parse_log_time("1714557600.25", 0).unwrap(),
            now + 250_000_000
        );
        assert_eq!(parse_log_time("10m", now).unwrap(), now - 600_000_000_000);
        assert_eq!(
            parse_log_time("1h30m", now).unwrap(),
            now - 5_400_000_000_000
        );
        for bad in ["yesterday", "10x", "", "1.2.3"] {
            assert!(parse_log_time(bad, now).is_err(), "{bad}");
        }
    }
}
