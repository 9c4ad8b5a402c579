//! The json-file log: following it for `run`/`attach` and printing it for `logs`.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use crate::engine::{Engine, POLL, io_err};
use crate::error::Result;
use crate::lifecycle::Started;

impl Engine {
    /// Copies the container's output from `started.log` to `out`/`err` until its monitor exits;
    /// returns the container's exit code.
    ///
    /// Errors: the log cannot be read or the monitor cannot be waited for.
    pub fn attach(
        &self,
        started: &mut Started,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<i32> {
        let mut reader = LogReader::default();
        let path = started.container.log_path.clone();
        loop {
            let status = started
                .monitor
                .try_wait()
                .map_err(io_err("wait for monitor", &path))?;
            reader.copy(&mut started.log, out, err, &path)?;
            if let Some(status) = status {
                reader.copy(&mut started.log, out, err, &path)?;
                return Ok(status.code().unwrap_or(125));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Writes the container's logs to `out`/`err`; with `follow`, until it stops running.
    ///
    /// Errors: no such container, or its log cannot be read.
    pub fn logs(
        &self,
        reference: &str,
        follow: bool,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<()> {
        let c = self.container(reference)?;
        let mut file = File::open(&c.log_path).map_err(io_err("open log", &c.log_path))?;
        let mut reader = LogReader::default();
        loop {
            let active = follow
                && self
                    .store
                    .read(|tx| tx.container_by_id(&c.id))
                    .is_ok_and(|c| c.state.status.is_active());
            reader.copy(&mut file, out, err, &c.log_path)?;
            if !active {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
    }
}

/// Decodes Docker json-file lines incrementally.
#[derive(Default)]
struct LogReader {
    partial: Vec<u8>,
}

impl LogReader {
    fn copy(
        &mut self,
        file: &mut File,
        out: &mut dyn Write,
        err: &mut dyn Write,
        path: &Path,
    ) -> Result<()> {
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)
            .map_err(io_err("read log", path))?;
        self.partial.extend_from_slice(&buf);
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            let Ok(entry) = serde_json::from_slice::<serde_json::Value>(&line) else {
                continue;
            };
            let text = entry["log"].as_str().unwrap_or_default();
            let w: &mut dyn Write = if entry["stream"] == "stderr" {
                err
            } else {
                out
            };
            let _ = w.write_all(text.as_bytes());
        }
        let _ = out.flush();
        let _ = err.flush();
        Ok(())
    }
}
