//! `contest info`: who and where the process is, as the container sees it.

use crate::{Res, kv, sys};
use std::fs;

const RLIMITS: &[(i32, &str)] = &[
    (0, "CPU"),
    (1, "FSIZE"),
    (2, "DATA"),
    (3, "STACK"),
    (4, "CORE"),
    (5, "RSS"),
    (6, "NPROC"),
    (7, "NOFILE"),
    (8, "MEMLOCK"),
    (9, "AS"),
    (10, "LOCKS"),
    (11, "SIGPENDING"),
    (12, "MSGQUEUE"),
    (13, "NICE"),
    (14, "RTPRIO"),
    (15, "RTTIME"),
];

const NAMESPACES: &[&str] = &[
    "cgroup",
    "ipc",
    "mnt",
    "net",
    "pid",
    "pid_for_children",
    "time",
    "time_for_children",
    "user",
    "uts",
];

const POLICIES: &[&str] = &[
    "SCHED_OTHER",
    "SCHED_FIFO",
    "SCHED_RR",
    "SCHED_BATCH",
    "SCHED_ISO",
    "SCHED_IDLE",
    "SCHED_DEADLINE",
];

fn join(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

fn limit(v: u64) -> String {
    if v == u64::MAX {
        "unlimited".to_owned()
    } else {
        v.to_string()
    }
}

fn os_err(e: &std::io::Error) -> String {
    format!(
        "error:{}",
        crate::errno::errno_name(e.raw_os_error().unwrap_or(0))
    )
}

/// The value of `Name:` in /proc/self/status, whitespace-trimmed.
fn status_field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim))
}

fn ids() -> Res {
    kv("pid", std::process::id());
    kv("ppid", std::os::unix::process::parent_id());
    let (r, e, s) = sys::resuid();
    kv("uid", r);
    kv("euid", e);
    kv("suid", s);
    kv("fsuid", sys::fsuid());
    let (r, e, s) = sys::resgid();
    kv("gid", r);
    kv("egid", e);
    kv("sgid", s);
    kv("fsgid", sys::fsgid());
    kv("groups", join(&sys::groups()?));
    Ok(())
}

/// Capability sets (hex, as /proc/self/status writes them), no_new_privs and seccomp mode: from
/// /proc/self/status when /proc is mounted, else from capget(2) and prctl(2).
fn privileges() {
    const CAPS: [(&str, &str); 5] = [
        ("CapInh", "cap.inh"),
        ("CapPrm", "cap.prm"),
        ("CapEff", "cap.eff"),
        ("CapBnd", "cap.bnd"),
        ("CapAmb", "cap.amb"),
    ];
    if let Ok(status) = fs::read_to_string("/proc/self/status") {
        kv("caps_from", "/proc/self/status");
        for (field, key) in CAPS {
            kv(key, status_field(&status, field).unwrap_or("?"));
        }
        kv(
            "no_new_privs",
            status_field(&status, "NoNewPrivs").unwrap_or("?"),
        );
        kv("seccomp", status_field(&status, "Seccomp").unwrap_or("?"));
        kv(
            "seccomp_filters",
            status_field(&status, "Seccomp_filters").unwrap_or("?"),
        );
        return;
    }
    kv("caps_from", "capget");
    match sys::capabilities() {
        Ok(sets) => {
            for ((_, key), set) in CAPS.iter().zip(sets) {
                kv(key, format!("{set:016x}"));
            }
        }
        Err(e) => kv("cap.error", os_err(&e)),
    }
    let (nnp, seccomp) = sys::nnp_and_seccomp();
    kv("no_new_privs", nnp);
    kv("seccomp", seccomp);
}

fn process() {
    kv("umask", format!("{:04o}", sys::umask_get()));
    match std::env::current_dir() {
        Ok(d) => kv("cwd", d.display()),
        Err(e) => kv("cwd", os_err(&e)),
    }
    match sys::uname_names() {
        Ok((host, domain)) => {
            kv("hostname", host);
            kv("domainname", domain);
        }
        Err(e) => kv("hostname", os_err(&e)),
    }
    for (id, name) in RLIMITS {
        match sys::rlimit(*id) {
            Ok((soft, hard)) => kv(
                &format!("rlimit.{name}"),
                format!("{}:{}", limit(soft), limit(hard)),
            ),
            Err(e) => kv(&format!("rlimit.{name}"), os_err(&e)),
        }
    }
    match fs::read_to_string("/proc/self/oom_score_adj") {
        Ok(v) => kv("oom_score_adj", v.trim()),
        Err(e) => kv("oom_score_adj", os_err(&e)),
    }
    match sys::personality_get() {
        Ok(p) => kv("personality", format!("0x{p:x}")),
        Err(e) => kv("personality", os_err(&e)),
    }
    match sys::ioprio_get() {
        Ok(p) => {
            kv("ioprio", p);
            kv("ioprio.class", p >> 13);
            kv("ioprio.data", p & 0x1fff);
        }
        Err(e) => kv("ioprio", os_err(&e)),
    }
    match sys::sched() {
        Ok((policy, prio)) => {
            // SCHED_RESET_ON_FORK is or-ed into the policy.
            let base = policy & !0x4000_0000;
            let name = usize::try_from(base)
                .ok()
                .and_then(|i| POLICIES.get(i))
                .copied();
            kv(
                "sched.policy",
                name.map_or_else(|| policy.to_string(), str::to_owned),
            );
            kv("sched.reset_on_fork", u8::from(policy & 0x4000_0000 != 0));
            kv("sched.priority", prio);
        }
        Err(e) => kv("sched.policy", os_err(&e)),
    }
}

fn labels_and_namespaces() {
    for (path, key) in [
        ("/proc/self/attr/current", "lsm.current"),
        ("/proc/self/attr/apparmor/current", "apparmor"),
    ] {
        if let Ok(v) = fs::read_to_string(path) {
            kv(key, v.trim_end_matches(['\n', '\0']));
        }
    }
    for ns in NAMESPACES {
        if let Ok(target) = fs::read_link(format!("/proc/self/ns/{ns}")) {
            kv(&format!("ns.{ns}"), target.display());
        }
    }
}

fn fds_and_env() {
    // Collect the numbers first and close the directory, so its own fd is gone (readlink fails)
    // by the time the targets are read.
    let fds: Vec<u32> = match fs::read_dir("/proc/self/fd") {
        Ok(dir) => {
            let mut v: Vec<u32> = dir
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect();
            v.sort_unstable();
            v
        }
        Err(e) => {
            kv("fds", os_err(&e));
            return env();
        }
    };
    let mut open = Vec::new();
    for fd in fds {
        if let Ok(target) = fs::read_link(format!("/proc/self/fd/{fd}")) {
            open.push(fd);
            kv(&format!("fd.{fd}"), target.display());
        }
    }
    kv("fds", join(&open));
    env();
}

fn env() {
    for (k, v) in std::env::vars_os() {
        kv(&format!("env.{}", k.to_string_lossy()), v.to_string_lossy());
    }
}

/// Prints everything; a value that cannot be read is printed as `error:ENAME`.
pub(crate) fn info() -> Res {
    ids()?;
    privileges();
    process();
    labels_and_namespaces();
    fds_and_env();
    Ok(())
}
