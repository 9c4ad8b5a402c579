//! `berth-monitor key=value ...`: the idle half of a container's monitor. Started by
//! `berth monitor` with `execve` (so it keeps that process's pid, its child-subreaper mark and
//! the container's init as its child), it relays the container's output to the json-file log
//! and to attach clients, their input to the container (see `berth_monitor::relay`), and when
//! init exits execs `berth monitor <id> --exited <code>` to record it. One poll loop, no
//! threads.

use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use berth_monitor::Invocation;
use berth_monitor::relay::{Relayed, berth, relay};

fn main() -> ExitCode {
    let inv = match Invocation::parse(std::env::args().skip(1)) {
        Ok(inv) => inv,
        Err(arg) => {
            berth_monitor::note(&format!("berth-monitor: bad argument {arg:?}"));
            return ExitCode::from(125);
        }
    };
    berth_monitor::set_notes(inv.notes_path());
    // Kept open (but not inherited) for the `berth` processes started through it.
    let exe = inv.exe_fd.and_then(berth_monitor::adopt);
    if let Some(fd) = &exe {
        let _ = rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC);
    }
    let code = match relay(&inv, true) {
        Ok(Relayed {
            code,
            exit_taken: true,
        }) => return ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(125)),
        Ok(Relayed { code, .. }) => code,
        Err(e) => {
            berth_monitor::note(&format!("berth-monitor: {e}"));
            berth_monitor::wait_child(inv.pid)
        }
    };
    let err = berth(&inv)
        .arg("--root")
        .arg(&inv.root)
        .arg("--run-root")
        .arg(&inv.run_root)
        .arg("monitor")
        .arg(&inv.id)
        .arg("--exited")
        .arg(code.to_string())
        .arg("--backoff-ms")
        .arg(inv.backoff_ms.to_string())
        .exec();
    berth_monitor::note(&format!("berth-monitor: exec {}: {err}", inv.berth));
    drop(exe);
    ExitCode::from(125)
}
