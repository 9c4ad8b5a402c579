//! `berth-init -- CMD [ARGS...]`: the init `berth run --init` bind-mounts at `/sbin/docker-init`
//! and runs as the container's pid 1. It starts CMD, forwards every signal it receives to it, reaps
//! every zombie re-parented to it (pid 1 inherits orphans), and exits with CMD's status when CMD
//! exits (128 + signal number when a signal killed it), as Docker's `docker-init` does.
//!
//! It has no dependencies and is compiled statically by the engine's build script, so it also runs
//! in images without a libc (busybox-static). Signals are handled synchronously: all
//! asynchronous signals are blocked and taken with `sigwaitinfo`, so there are no handlers.

#[allow(unsafe_code)]
mod sys;

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match args.first().map(String::as_str) {
        Some("--") => &args[1..],
        _ => &args[..],
    };
    let Some((program, rest)) = cmd.split_first() else {
        eprintln!("berth-init: usage: berth-init -- COMMAND [ARG...]");
        return ExitCode::from(2);
    };
    let Ok(set) = sys::block_async_signals() else {
        eprintln!("berth-init: block signals failed");
        return ExitCode::from(126);
    };
    let mut command = Command::new(program);
    command.args(rest);
    // The child inherits the mask: CMD must start with nothing blocked.
    sys::unblock_signals_in_child(&mut command);
    let child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth-init: exec {program}: {e}");
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            return ExitCode::from(code);
        }
    };
    let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    loop {
        // Reap everything that exited; stop once the command itself is among them.
        while let Some((reaped, status)) = sys::reap_any() {
            if reaped == pid {
                return ExitCode::from(exit_code(status));
            }
        }
        let sig = sys::wait_signal(&set);
        if sig > 0 && sig != sys::SIGCHLD {
            sys::send(pid, sig);
        }
    }
}

/// The shell's exit code for a `wait` status.
fn exit_code(status: i32) -> u8 {
    let signal = status & 0x7f;
    let code = if signal == 0 {
        (status >> 8) & 0xff
    } else {
        128 + signal
    };
    u8::try_from(code).unwrap_or(255)
}

#[cfg(test)]
mod tests {
    use super::exit_code;

    #[test]
    fn wait_statuses() {
        assert_eq!(exit_code(0), 0);
        assert_eq!(exit_code(3 << 8), 3);
        assert_eq!(exit_code(9), 137);
        assert_eq!(exit_code(15), 143);
    }
}
