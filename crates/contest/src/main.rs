//! contest: a static helper run inside test containers to report what the container sees.
//!
//! Output is one `key=value` per line (values with newlines have them escaped as `\n`), except
//! `read`, which copies the file to stdout as is. A command whose one operation fails prints
//! `errno=N` and `errname=ENAME` and exits 1; a usage error exits 2. Measurements (`forks`,
//! `alloc`) exit 0 whatever they measured.
//!
//! It has no dependencies and is linked statically, so it runs in any rootfs.

mod errno;
mod info;
mod probe;
mod procs;
#[allow(unsafe_code)]
mod sys;
mod udp;

use std::io::{self, Write};
use std::process::ExitCode;

const USAGE: &str = "usage: contest COMMAND [ARGS]
  info                     ids, caps, rlimits, namespaces, fds, env ...
  mounts                   one line per mount: mount= type= source= opts= super=
  stat PATH                type= mode= uid= gid= rdev= size= target=
  open PATH [r|w|rw]       ok, or errno= errname=
  read PATH                the file's bytes
  write PATH VALUE         ok, or errno= errname=
  syscall NAME [ARGS...]   ret=N, or errno= errname= (NAME may be nr:N, called with zeros)
  sysctl NAME              NAME=value
  forks N [HOLD_SECS]      forked= errno= errname=
  alloc MIB [HOLD_SECS]    allocated_mib=
  spin SECS                wall_ms= cpu_ms=
  sleep SECS
  exit CODE
  signal-self SIG          survived=SIGNAME when the signal did not end the process
  wait-signal              ready=1, then signal=N name=SIGNAME
  tty                      isatty.N= ttyname.N= sid= pgrp= tpgid= ctty= dev_tty=
  clock                    monotonic_ns= boottime_ns= realtime_ns=
  notify MSG               sends MSG as one datagram to $NOTIFY_SOCKET (sd_notify)
  udp-echo PORT            answers each UDP datagram with echo:PAYLOAD, forever
  udp-send IP PORT MSG     reply= (the answer to one datagram; waits 3 s)";

/// A failed command: what to print and how to exit.
pub(crate) enum Fail {
    /// Bad arguments: print the message and the usage, exit 2.
    Usage(String),
    /// The operation failed: print `errno=` and `errname=`, exit 1.
    Os(io::Error),
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Self {
        Fail::Os(e)
    }
}

pub(crate) type Res = Result<(), Fail>;

/// Prints one `key=value` line, escaping newlines and backslashes in the value.
pub(crate) fn kv(key: &str, value: impl std::fmt::Display) {
    let value = value.to_string().replace('\\', "\\\\").replace('\n', "\\n");
    let mut out = io::stdout().lock();
    // A closed stdout leaves nobody to tell; ignore it.
    let _ = writeln!(out, "{key}={value}");
}

/// Flushes stdout so a reader sees everything printed so far.
pub(crate) fn flush() {
    let _ = io::stdout().flush();
}

/// The argument at `i`, or a usage error naming it.
pub(crate) fn arg<'a>(args: &'a [String], i: usize, what: &str) -> Result<&'a str, Fail> {
    args.get(i)
        .map(String::as_str)
        .ok_or_else(|| Fail::Usage(format!("missing {what}")))
}

/// Parses a number given in decimal, `0x` hex or `0o`/leading-zero octal.
pub(crate) fn parse_num(s: &str) -> Result<i64, Fail> {
    let (neg, body) = s.strip_prefix('-').map_or((false, s), |b| (true, b));
    let parsed = if let Some(h) = body.strip_prefix("0x") {
        i64::from_str_radix(h, 16)
    } else if let Some(o) = body.strip_prefix("0o") {
        i64::from_str_radix(o, 8)
    } else if body.len() > 1 && body.starts_with('0') {
        i64::from_str_radix(&body[1..], 8)
    } else {
        body.parse()
    };
    let v = parsed.map_err(|_| Fail::Usage(format!("not a number: {s}")))?;
    Ok(if neg { -v } else { v })
}

/// Parses seconds, possibly fractional.
pub(crate) fn parse_secs(s: &str) -> Result<std::time::Duration, Fail> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(std::time::Duration::from_secs_f64)
        .ok_or_else(|| Fail::Usage(format!("not a number of seconds: {s}")))
}

fn run(args: &[String]) -> Res {
    let cmd = arg(args, 0, "command")?;
    let rest = &args[1..];
    match cmd {
        "info" => info::info(),
        "mounts" => probe::mounts(),
        "stat" => probe::stat(arg(rest, 0, "PATH")?),
        "open" => probe::open(
            arg(rest, 0, "PATH")?,
            rest.get(1).map_or("r", String::as_str),
        ),
        "read" => probe::read(arg(rest, 0, "PATH")?),
        "write" => probe::write(arg(rest, 0, "PATH")?, arg(rest, 1, "VALUE")?),
        "syscall" => probe::syscall(arg(rest, 0, "NAME")?, &rest[1..]),
        "sysctl" => probe::sysctl(arg(rest, 0, "NAME")?),
        "forks" => procs::forks(rest),
        "alloc" => procs::alloc(rest),
        "spin" => procs::spin(arg(rest, 0, "SECS")?),
        "sleep" => {
            std::thread::sleep(parse_secs(arg(rest, 0, "SECS")?)?);
            Ok(())
        }
        "exit" => {
            let code = parse_num(arg(rest, 0, "CODE")?)?;
            flush();
            std::process::exit(code as i32)
        }
        "signal-self" => procs::signal_self(arg(rest, 0, "SIG")?),
        "wait-signal" => procs::wait_signal(),
        "tty" => procs::tty(),
        "clock" => procs::clock(),
        "notify" => procs::notify(arg(rest, 0, "MSG")?),
        "udp-echo" => udp::echo(arg(rest, 0, "PORT")?),
        "udp-send" => udp::send(
            arg(rest, 0, "IP")?,
            arg(rest, 1, "PORT")?,
            arg(rest, 2, "MSG")?,
        ),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(Fail::Usage(format!("unknown command {other}"))),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = run(&args);
    flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail::Os(e)) => {
            errno::print(&e);
            flush();
            ExitCode::from(1)
        }
        Err(Fail::Usage(msg)) => {
            eprintln!("contest: {msg}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
