//! Starting a container's monitor (see `monitor`): `run` starts it before it creates the
//! container, so that the monitor's exec and store open overlap the create, and hands the
//! container over once it exists.
//!
//! ```text
//! CLI                                      monitor (berth monitor --standby)
//! spawn_monitor: fork, fork, execveat ──>  open the store, find the cgroup hierarchies
//! create: record, snapshot, bundle         wait on the control socket (its stdout)
//! hand_over: `go <id>[ exit-client]` ──>   mount, create, start
//!            <── `ok` | `err <code> <message>`
//! ```
//! The control socket closing before `go` (the create failed, the CLI died) ends the monitor
//! quietly: nothing was made for it.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::containers::Container;
use crate::engine::{Engine, io_err};
use crate::error::{EngineError, Result};
use crate::lifecycle::{Started, spawn_berth};

/// A monitor started ahead of its container, waiting for its hand-over (see
/// [`Engine::run_with_monitor`]); dropped unused, it ends quietly.
#[derive(Debug)]
pub struct Standby {
    /// The monitor's stdout: `go` goes out on it, the report comes back.
    control: UnixStream,
    /// This end of the attach connection on the monitor's stdin, when one was asked for.
    attach: Option<UnixStream>,
}

/// The line that hands container `id` to a standby monitor.
pub(crate) fn go_line(id: &str, exit_client: bool) -> String {
    if exit_client {
        format!("go {id} exit-client\n")
    } else {
        format!("go {id}\n")
    }
}

/// The container id and whether the attach client takes the exit, from a `go` line.
pub(crate) fn parse_go(line: &str) -> Option<(String, bool)> {
    let mut words = line.trim_end_matches('\n').split(' ');
    if words.next() != Some("go") {
        return None;
    }
    let id = words.next().filter(|id| !id.is_empty())?.to_owned();
    let exit_client = match words.next() {
        None => false,
        Some("exit-client") => true,
        Some(_) => return None,
    };
    words.next().is_none().then_some((id, exit_client))
}

/// Starts `berth monitor --standby` for the store at `paths` as a detached grandchild (nobody's
/// child: it outlives this process whatever happens to it). With `attach`, its stdin is an
/// attach connection whose other end comes back in [`Started::attach`]. Needs no open engine,
/// so that `run` can start it first and open the store meanwhile.
///
/// Errors: the binary cannot be protected or the process cannot be started.
pub fn spawn_standby(paths: &crate::store::Paths, attach: bool) -> Result<Standby> {
    // argv[0] is the path on disk: the monitor finds berth-monitor next to it.
    let exe = std::env::current_exe().map_err(io_err("find berth", Path::new("/proc/self/exe")))?;
    // The monitor's children join the container: it runs from a binary they cannot write,
    // started from it directly rather than re-executing itself.
    let protected = runtime::selfexe::protected_exe().map_err(|source| EngineError::Runtime {
        action: "protect the berth binary for the monitor".into(),
        source: Box::new(source),
    })?;
    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(io_err("open", Path::new("/dev/null")))?;
    let pair = || UnixStream::pair().map_err(io_err("create socket pair", &paths.run_root));
    let (attach, theirs): (_, OwnedFd) = if attach {
        let (a, b) = pair()?;
        (Some(a), b.into())
    } else {
        (
            None,
            null.try_clone()
                .map_err(io_err("open", Path::new("/dev/null")))?
                .into(),
        )
    };
    let (control, control_theirs) = pair()?;
    spawn_berth(
        protected.as_fd(),
        &exe,
        paths,
        &["monitor".as_ref(), "--standby".as_ref()],
        [theirs.as_fd(), control_theirs.as_fd(), null.as_fd()],
    )
    .map_err(io_err("spawn monitor", &exe))?;
    Ok(Standby { control, attach })
}

impl Engine {
    /// [`spawn_standby`] for this engine's store.
    pub(crate) fn spawn_monitor(&self, attach: bool) -> Result<Standby> {
        spawn_standby(&self.paths, attach)
    }

    /// Hands the created container `c` to `standby` and reads its report.
    pub(crate) fn hand_over(&self, standby: Standby, c: &Container) -> Result<Started> {
        // The `run` that waits for the container records its exit, unless a restart policy
        // keeps the container going (then the monitor does, as for everyone else).
        let takes_exit = standby.attach.is_some()
            && c.host_config.restart_policy.name == crate::config::RestartPolicyName::No;
        let mut control = standby.control;
        let mut line = String::new();
        if control
            .write_all(go_line(c.id.as_str(), takes_exit).as_bytes())
            .is_ok()
        {
            let _ = BufReader::new(&control).read_line(&mut line);
        }
        let line = line.trim_end();
        if line == "ok" {
            return Ok(Started {
                container: c.clone(),
                attach: standby.attach,
                takes_exit,
            });
        }
        let (code, message) = match line.strip_prefix("err ") {
            Some(rest) => {
                let (code, msg) = rest.split_once(' ').unwrap_or((rest, ""));
                (code.parse().unwrap_or(125), msg.to_owned())
            }
            None => {
                let log = std::fs::read_to_string(c.bundle.join("monitor.log")).unwrap_or_default();
                let log = log.trim();
                let message = if log.is_empty() {
                    "the monitor ended without a report".to_owned()
                } else {
                    log.to_owned()
                };
                (125, message)
            }
        };
        Err(EngineError::StartFailed {
            id: c.id.short().to_owned(),
            message,
            exit_code: code,
        })
    }

    /// Starts the monitor of the existing container `c` (`start`, `restart`).
    pub(crate) fn start_monitor(&self, c: &Container, attach: bool) -> Result<Started> {
        let standby = self.spawn_monitor(attach)?;
        self.hand_over(standby, c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_lines_round_trip_and_junk_is_refused() {
        assert_eq!(
            parse_go(&go_line("abc", false)),
            Some(("abc".into(), false))
        );
        assert_eq!(parse_go(&go_line("abc", true)), Some(("abc".into(), true)));
        for bad in [
            "",
            "go",
            "go \n",
            "stop abc\n",
            "go abc exit\n",
            "go abc exit-client x\n",
        ] {
            assert_eq!(parse_go(bad), None, "{bad:?}");
        }
    }
}
