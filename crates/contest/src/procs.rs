//! Process behaviour under limits and signals: `forks`, `alloc`, `spin`, `signal-self`,
//! `wait-signal`, `tty`, `clock`, `notify`.

use crate::errno::{errno_name, parse_signal, signal_name};
use crate::{Fail, Res, arg, flush, kv, parse_num, parse_secs, sys};
use std::time::Instant;

fn hold(rest: &[String], at: usize) -> Res {
    if let Some(secs) = rest.get(at) {
        flush();
        std::thread::sleep(parse_secs(secs)?);
    }
    Ok(())
}

/// Forks up to N children that sleep, prints `forked=` (how many succeeded) and, on the first
/// failure, `errno=`/`errname=`; holds them HOLD_SECS if given, then kills and reaps them.
pub(crate) fn forks(rest: &[String]) -> Res {
    let n = parse_num(arg(rest, 0, "N")?)?;
    let mut children = Vec::new();
    let mut failure = None;
    for _ in 0..n {
        match sys::fork_sleeper() {
            Ok(pid) => children.push(pid),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    kv("forked", children.len());
    if let Some(e) = failure {
        let n = e.raw_os_error().unwrap_or(0);
        kv("errno", n);
        kv("errname", errno_name(n));
    }
    let held = hold(rest, 1);
    for pid in children {
        sys::kill_and_reap(pid);
    }
    held
}

/// Allocates MIB mebibytes and writes every page, printing `allocated_mib=` after each one
/// (flushed, so a test sees how far it got before an OOM kill); holds it HOLD_SECS if given.
pub(crate) fn alloc(rest: &[String]) -> Res {
    const MIB: usize = 1 << 20;
    let total = usize::try_from(parse_num(arg(rest, 0, "MIB")?)?)
        .map_err(|_| Fail::Usage("MIB must not be negative".to_owned()))?;
    let mut chunks: Vec<Vec<u8>> = Vec::with_capacity(total);
    for i in 0..total {
        let mut chunk = Vec::new();
        if let Err(e) = chunk.try_reserve_exact(MIB) {
            kv("alloc_error", e);
            break;
        }
        // Non-zero bytes, so no page stays shared with the zero page.
        chunk.resize(MIB, 0xa5);
        chunks.push(chunk);
        kv("allocated_mib", i + 1);
        flush();
    }
    if total == 0 {
        kv("allocated_mib", 0);
    }
    hold(rest, 1)
}

/// Busy-loops for SECS of wall time; prints `wall_ms=` and `cpu_ms=` (CPU time used), whose
/// ratio shows CPU throttling.
pub(crate) fn spin(secs: &str) -> Res {
    let dur = parse_secs(secs)?;
    let start = Instant::now();
    let cpu0 = sys::cpu_time_ns();
    let mut x = 0u64;
    while start.elapsed() < dur {
        for i in 0..10_000u64 {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i));
        }
    }
    kv("wall_ms", start.elapsed().as_millis());
    kv("cpu_ms", (sys::cpu_time_ns() - cpu0) / 1_000_000);
    Ok(())
}

/// Raises SIG; if the process is still alive afterwards prints `survived=SIGNAME`.
pub(crate) fn signal_self(sig: &str) -> Res {
    let n = parse_signal(sig).ok_or_else(|| Fail::Usage(format!("unknown signal {sig}")))?;
    flush();
    sys::raise_signal(n)?;
    kv("survived", signal_name(n));
    Ok(())
}

/// Blocks all signals, prints `ready=1`, then `signal=N` and `name=SIGNAME` of the first to come.
pub(crate) fn wait_signal() -> Res {
    let sig = sys::wait_any_signal(|| {
        kv("ready", 1);
        flush();
    })?;
    kv("signal", sig);
    kv("name", signal_name(sig));
    Ok(())
}

/// Terminal facts: `isatty.N=0|1` and `ttyname.N=` for fds 0-2, `sid=`, `pgrp=`, `tpgid=`
/// (foreground group of fd 0), `ctty=MAJ:MIN` (0:0 when none, from /proc/self/stat) and
/// `dev_tty=ok|ENAME` (whether /dev/tty opens).
pub(crate) fn tty() -> Res {
    for fd in 0..3 {
        kv(&format!("isatty.{fd}"), u8::from(sys::is_tty(fd)));
        match sys::tty_name(fd) {
            Ok(name) => kv(&format!("ttyname.{fd}"), name),
            Err(e) => kv(
                &format!("ttyname.{fd}"),
                errno_name(e.raw_os_error().unwrap_or(0)),
            ),
        }
    }
    let (sid, pgrp, fg) = sys::session();
    kv("sid", sid);
    kv("pgrp", pgrp);
    match fg {
        Ok(g) => kv("tpgid", g),
        Err(e) => kv("tpgid", errno_name(e.raw_os_error().unwrap_or(0))),
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name (which may hold spaces but ends with the last ')'):
        // state ppid pgrp session tty_nr ...
        let nr = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(4)?.parse::<u64>().ok());
        if let Some(nr) = nr {
            let major = (nr >> 8) & 0xfff;
            let minor = (nr & 0xff) | ((nr >> 12) & 0xfff00);
            kv("ctty", format!("{major}:{minor}"));
        }
    }
    match std::fs::File::open("/dev/tty") {
        Ok(_) => kv("dev_tty", "ok"),
        Err(e) => kv("dev_tty", errno_name(e.raw_os_error().unwrap_or(0))),
    }
    Ok(())
}

/// The clocks a time namespace offsets, and the one it does not: `monotonic_ns=`,
/// `boottime_ns=`, `realtime_ns=`.
pub(crate) fn clock() -> Res {
    for (name, id) in [("monotonic_ns", 1), ("boottime_ns", 7), ("realtime_ns", 0)] {
        kv(name, sys::clock_ns(id)?);
    }
    Ok(())
}

/// Sends MSG as one datagram to the unix socket named by `$NOTIFY_SOCKET`, as sd_notify(3) does.
pub(crate) fn notify(msg: &str) -> Res {
    let path = std::env::var_os("NOTIFY_SOCKET")
        .ok_or_else(|| Fail::Usage("NOTIFY_SOCKET is not set".to_owned()))?;
    let sock = std::os::unix::net::UnixDatagram::unbound()?;
    sock.send_to(msg.as_bytes(), path)?;
    kv("sent", msg.len());
    Ok(())
}
