//! Turning flags into library calls and library results into runc's output formats.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use oci_spec::runtime::{LinuxResources, Process};

use crate::cli::{CreateArgs, ExecArgs, Format, UpdateArgs};

pub(crate) fn create_options(a: &CreateArgs, systemd: bool) -> runtime::container::CreateOptions {
    runtime::container::CreateOptions {
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        console_socket: a.console_socket.clone(),
        pid_file: a.pid_file.clone(),
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
        systemd_cgroup: systemd,
        listen_fds: listen_fds(),
        notify_socket: std::env::var_os("NOTIFY_SOCKET")
            .filter(|s| !s.is_empty())
            .map(std::path::PathBuf::from),
    }
}

/// systemd socket activation: `LISTEN_FDS` counts the descriptors from 3 up, and counts only when
/// `LISTEN_PID` names this process (sd_listen_fds(3)).
fn listen_fds() -> u32 {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    if !for_us {
        return 0;
    }
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

const SIGNALS: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// `TERM`, `SIGTERM`, `15`, `RTMIN+3`.
pub(crate) fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        bail!("invalid signal {s:?}");
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    if let Some((_, n)) = SIGNALS.iter().find(|(n, _)| *n == name) {
        return Ok(*n);
    }
    let rt = |base: i32, off: &str| -> Option<i32> {
        let o: i32 = if off.is_empty() { 0 } else { off.parse().ok()? };
        Some(base + o)
    };
    if let Some(off) = name.strip_prefix("RTMIN")
        && let Some(n) =
            rt(libc::SIGRTMIN(), off.trim_start_matches('+')).filter(|n| *n <= libc::SIGRTMAX())
    {
        return Ok(n);
    }
    if let Some(off) = name.strip_prefix("RTMAX")
        && let Some(n) = rt(libc::SIGRTMAX(), off).filter(|n| *n >= libc::SIGRTMIN())
    {
        return Ok(n);
    }
    bail!("invalid signal {s:?}")
}

/// The process `exec` runs: process.json, or the container's process with the flags applied.
pub(crate) fn exec_process(root: &Path, a: &ExecArgs) -> Result<Process> {
    if let Some(path) = &a.process {
        let p: Process = runtime::spec::load_process(path)?;
        return Ok(p);
    }
    if a.command.is_empty() {
        bail!("exec needs a command or --process");
    }
    let st = runtime::state::ContainerState::load(root, &a.id)
        .with_context(|| format!("exec in container {}", a.id))?;
    let mut p = st.config.process().clone().unwrap_or_default();
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    p.set_console_size(None);
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    for e in &a.env {
        let key = e.split('=').next().unwrap_or_default();
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    p.set_env(Some(env));
    if let Some(u) = &a.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (
                u.parse::<u32>().context("--user uid")?,
                Some(g.parse::<u32>().context("--user gid")?),
            ),
            None => (u.parse::<u32>().context("--user uid")?, None),
        };
        let user = p.user_mut();
        user.set_uid(uid);
        if let Some(g) = gid {
            user.set_gid(g);
        }
    }
    if !a.additional_gids.is_empty() {
        p.user_mut()
            .set_additional_gids(Some(a.additional_gids.clone()));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(l) = &a.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    if let Some(ap) = &a.apparmor {
        p.set_apparmor_profile(Some(ap.clone()));
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for c in &a.cap {
            let name = c.to_ascii_uppercase();
            let name = name.strip_prefix("CAP_").unwrap_or(&name);
            let cap: oci_spec::runtime::Capability = name
                .parse()
                .map_err(|_| anyhow::anyhow!("--cap: unknown capability {c}"))?;
            for set in [
                caps.bounding().clone(),
                caps.effective().clone(),
                caps.permitted().clone(),
            ] {
                let _ = set;
            }
            let add = |s: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = s.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            let (b, e, pm) = (
                add(caps.bounding()),
                add(caps.effective()),
                add(caps.permitted()),
            );
            caps.set_bounding(b);
            caps.set_effective(e);
            caps.set_permitted(pm);
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

pub(crate) fn list(root: &Path, format: Format, quiet: bool) -> Result<()> {
    let all = runtime::container::list(root)?;
    let mut out = std::io::stdout().lock();
    if quiet {
        for s in &all {
            writeln!(out, "{}", s.id)?;
        }
        return Ok(());
    }
    match format {
        Format::Json => writeln!(out, "{}", serde_json::to_string(&all)?)?,
        Format::Table => {
            let rows: Vec<[String; 6]> = all
                .iter()
                .map(|s| {
                    [
                        s.id.clone(),
                        s.pid.to_string(),
                        s.status.to_string(),
                        s.bundle.display().to_string(),
                        s.created.clone(),
                        if s.owner.is_empty() { "root" } else { &s.owner }.to_string(),
                    ]
                })
                .collect();
            let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
            write_table(&mut out, &header, &rows)?;
        }
    }
    Ok(())
}

/// Columns the way runc's `tabwriter.NewWriter(out, 12, 1, 3, ' ', 0)` aligns them: each but the
/// last as wide as its longest cell plus 3, at least 12.
fn write_table(out: &mut impl Write, header: &[String; 6], rows: &[[String; 6]]) -> Result<()> {
    let mut widths = [12usize; 6];
    for row in std::iter::once(header).chain(rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count() + 3);
        }
    }
    for row in std::iter::once(header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}", w = widths[i]));
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

pub(crate) fn ps(root: &Path, id: &str, format: Format, ps_args: &[String]) -> Result<()> {
    let pids = runtime::container::pids(root, id)
        .with_context(|| format!("list processes of container {id}"))?;
    if format == Format::Json {
        outln!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps output has no PID column")?;
    outln!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            outln!("{line}");
        }
    }
    Ok(())
}

fn parse_duration(s: &str) -> Result<Duration> {
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num
        .parse()
        .with_context(|| format!("invalid interval {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("invalid interval {s:?}"),
    };
    if secs <= 0.0 {
        bail!("interval must be positive");
    }
    Ok(Duration::from_secs_f64(secs))
}

pub(crate) fn events(root: &Path, id: &str, interval: &str, once: bool) -> Result<()> {
    let every = parse_duration(interval)?;
    let stats_event = || -> Result<String> {
        let s = runtime::container::stats(root, id)
            .with_context(|| format!("stats of container {id}"))?;
        Ok(serde_json::json!({"type": "stats", "id": id, "data": s}).to_string())
    };
    if once {
        outln!("{}", stats_event()?);
        return Ok(());
    }
    let mut last_oom = runtime::container::oom_kills(root, id).unwrap_or(0);
    let mut report_oom = || -> Result<()> {
        let oom = runtime::container::oom_kills(root, id).unwrap_or(last_oom);
        if oom > last_oom {
            outln!("{}", serde_json::json!({"type": "oom", "id": id}));
            last_oom = oom;
        }
        Ok(())
    };
    loop {
        let st = runtime::state::ContainerState::load(root, id)?;
        if st.status(root) == runtime::state::Status::Stopped {
            // The OOM kill that stopped the container happened since the last look.
            report_oom()?;
            return Ok(());
        }
        outln!("{}", stats_event()?);
        let deadline = std::time::Instant::now() + every;
        while std::time::Instant::now() < deadline {
            report_oom()?;
            std::thread::sleep(Duration::from_millis(100).min(every));
        }
    }
}

fn parse_bytes(s: &str) -> Result<i64> {
    if s == "-1" {
        return Ok(-1);
    }
    let lower = s.to_ascii_lowercase();
    let lower = lower.trim_end_matches('b');
    let (num, mult) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1i64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        Some('t') => (&lower[..lower.len() - 1], 1 << 40),
        _ => (lower, 1),
    };
    let n: i64 = num.parse().with_context(|| format!("invalid size {s:?}"))?;
    n.checked_mul(mult)
        .with_context(|| format!("size {s:?} overflows"))
}

pub(crate) fn update_resources(root: &Path, a: &UpdateArgs) -> Result<LinuxResources> {
    if let Some(path) = &a.resources {
        let data = if path == Path::new("-") {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
            s
        } else {
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?
        };
        let de = &mut serde_json::Deserializer::from_str(&data);
        return serde_path_to_error_free(de);
    }
    let st = runtime::state::ContainerState::load(root, &a.id)?;
    let mut r = st
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    let mut mem = (*r.memory()).unwrap_or_default();
    if let Some(m) = &a.memory {
        mem.set_limit(Some(parse_bytes(m)?));
    }
    if let Some(m) = &a.memory_reservation {
        mem.set_reservation(Some(parse_bytes(m)?));
    }
    if let Some(m) = &a.memory_swap {
        mem.set_swap(Some(parse_bytes(m)?));
    }
    r.set_memory(Some(mem));
    let mut cpu = r.cpu().clone().unwrap_or_default();
    if let Some(v) = a.cpu_period {
        cpu.set_period(Some(v));
    }
    if let Some(v) = a.cpu_quota {
        cpu.set_quota(Some(v));
    }
    if let Some(v) = a.cpu_share {
        cpu.set_shares(Some(v));
    }
    if let Some(v) = a.cpu_rt_period {
        cpu.set_realtime_period(Some(v));
    }
    if let Some(v) = a.cpu_rt_runtime {
        cpu.set_realtime_runtime(Some(v));
    }
    if let Some(v) = &a.cpuset_cpus {
        cpu.set_cpus(Some(v.clone()));
    }
    if let Some(v) = &a.cpuset_mems {
        cpu.set_mems(Some(v.clone()));
    }
    r.set_cpu(Some(cpu));
    if let Some(v) = a.pids_limit {
        let mut p = (*r.pids()).unwrap_or_default();
        p.set_limit(v);
        r.set_pids(Some(p));
    }
    if let Some(w) = a.blkio_weight {
        let mut b = r.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    Ok(r)
}

fn serde_path_to_error_free(
    de: &mut serde_json::Deserializer<serde_json::de::StrRead<'_>>,
) -> Result<LinuxResources> {
    serde::Deserialize::deserialize(de).context("parse resources")
}
