//! Logs in runc's shapes: `--log-format json` writes `{"level","msg","time"}` lines, which
//! containerd's shim and podman read back to report a runtime's errors.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

use crate::cli::LogFormat;

struct RuncLayer {
    out: Mutex<Box<dyn Write + Send>>,
    json: bool,
}

#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        }
    }
}

impl<S: Subscriber> Layer<S> for RuncLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut msg = Message::default();
        event.record(&mut msg);
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG | Level::TRACE => "debug",
        };
        let line = if self.json {
            serde_json::json!({"level": level, "msg": msg.0, "time": runtime::state::now_rfc3339()})
                .to_string()
        } else {
            format!(
                "time=\"{}\" level={level} msg={:?}",
                runtime::state::now_rfc3339(),
                msg.0
            )
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{line}");
        }
    }
}

/// Install the logger. Errors are also printed to stderr by `main`, so with no `--log` only
/// warnings and (with `--debug`) debug lines go to stderr here.
pub(crate) fn init(log: Option<&Path>, format: LogFormat, debug: bool) {
    let out: Box<dyn Write + Send> =
        match log.map(|p| OpenOptions::new().create(true).append(true).open(p)) {
            Some(Ok(f)) => Box::new(f),
            _ => Box::new(std::io::stderr()),
        };
    let max = if debug { Level::DEBUG } else { Level::WARN };
    let layer = RuncLayer {
        out: Mutex::new(out),
        json: format == LogFormat::Json,
    }
    .with_filter(tracing_subscriber::filter::LevelFilter::from_level(max));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}
