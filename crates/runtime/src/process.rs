//! Per-process setup shared by a container's init and by `exec`: rlimits, scheduling, labels,
//! identity, capabilities, no_new_privs, working directory, environment and the final execve.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capabilities, IOPriorityClass, LinuxSchedulerFlag, LinuxSchedulerPolicy, PosixRlimit,
    PosixRlimitType, Process,
};

use crate::error::{Result, RuntimeError};
use crate::sys;

fn rustix_resource(t: PosixRlimitType) -> rustix::process::Resource {
    use rustix::process::Resource as R;
    match t {
        PosixRlimitType::RlimitCpu => R::Cpu,
        PosixRlimitType::RlimitFsize => R::Fsize,
        PosixRlimitType::RlimitData => R::Data,
        PosixRlimitType::RlimitStack => R::Stack,
        PosixRlimitType::RlimitCore => R::Core,
        PosixRlimitType::RlimitRss => R::Rss,
        PosixRlimitType::RlimitNproc => R::Nproc,
        PosixRlimitType::RlimitNofile => R::Nofile,
        PosixRlimitType::RlimitMemlock => R::Memlock,
        PosixRlimitType::RlimitAs => R::As,
        PosixRlimitType::RlimitLocks => R::Locks,
        PosixRlimitType::RlimitSigpending => R::Sigpending,
        PosixRlimitType::RlimitMsgqueue => R::Msgqueue,
        PosixRlimitType::RlimitNice => R::Nice,
        PosixRlimitType::RlimitRtprio => R::Rtprio,
        PosixRlimitType::RlimitRttime => R::Rttime,
    }
}

fn rlimit_name(t: PosixRlimitType) -> String {
    format!("RLIMIT_{}", t.to_string().trim_start_matches("RLIMIT_"))
}

/// Whether this process may raise a hard limit (holds CAP_SYS_RESOURCE in its effective set).
fn has_sys_resource() -> bool {
    caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_RESOURCE,
    )
    .unwrap_or(false)
}

/// Refuse, before anything is created, an rlimit whose hard limit is above the current one when
/// this process cannot raise hard limits. Returns the reason on refusal.
pub(crate) fn check_rlimit(r: &PosixRlimit) -> std::result::Result<(), String> {
    let cur = rustix::process::getrlimit(rustix_resource(r.typ()));
    let cur_hard = cur.maximum.unwrap_or(u64::MAX);
    if r.hard() > cur_hard && !has_sys_resource() {
        return Err(format!(
            "{} hard limit {} is above the current hard limit {} and raising it needs CAP_SYS_RESOURCE, which this runtime lacks",
            rlimit_name(r.typ()),
            r.hard(),
            cur_hard
        ));
    }
    Ok(())
}

/// Whether AppArmor is enabled on this host.
#[must_use]
pub(crate) fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'))
}

/// Whether SELinux is enabled on this host.
#[must_use]
pub(crate) fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// Apply the process's rlimits.
pub(crate) fn apply_rlimits(p: &Process) -> Result<()> {
    for r in p.rlimits().iter().flatten() {
        let lim = rustix::process::Rlimit {
            current: Some(r.soft()).filter(|v| *v != u64::MAX),
            maximum: Some(r.hard()).filter(|v| *v != u64::MAX),
        };
        rustix::process::setrlimit(rustix_resource(r.typ()), lim)
            .map_err(|e| RuntimeError::sys(format!("set {}", rlimit_name(r.typ())), e.into()))?;
    }
    Ok(())
}

/// Scheduling, I/O priority, OOM score and security labels: everything that needs privilege the
/// process is about to drop.
pub(crate) fn apply_attributes(p: &Process) -> Result<()> {
    if let Some(adj) = p.oom_score_adj() {
        // Lowering it below the runtime's own needs CAP_SYS_RESOURCE: say which field asked.
        std::fs::write("/proc/self/oom_score_adj", adj.to_string()).map_err(|e| {
            RuntimeError::sys(
                format!(
                    "set process.oomScoreAdj {adj} (lowering it needs CAP_SYS_RESOURCE) via \
                     /proc/self/oom_score_adj"
                ),
                e,
            )
        })?;
    }
    if let Some(io) = p.io_priority() {
        let class = match io.class() {
            IOPriorityClass::IoprioClassRt => 1,
            IOPriorityClass::IoprioClassBe => 2,
            IOPriorityClass::IoprioClassIdle => 3,
        };
        let prio = (class << 13) | (io.priority() as libc::c_int & 0xff);
        sys::ioprio_set(prio).map_err(|e| RuntimeError::sys("set process.ioPriority", e))?;
    }
    if let Some(s) = p.scheduler() {
        let policy = match s.policy() {
            LinuxSchedulerPolicy::SchedOther => libc::SCHED_OTHER,
            LinuxSchedulerPolicy::SchedFifo => libc::SCHED_FIFO,
            LinuxSchedulerPolicy::SchedRr => libc::SCHED_RR,
            LinuxSchedulerPolicy::SchedBatch => libc::SCHED_BATCH,
            LinuxSchedulerPolicy::SchedIso => 4,
            LinuxSchedulerPolicy::SchedIdle => libc::SCHED_IDLE,
            LinuxSchedulerPolicy::SchedDeadline => 6,
        };
        let mut flags = 0u64;
        for f in s.flags().iter().flatten() {
            flags |= match f {
                LinuxSchedulerFlag::SchedResetOnFork => 0x01,
                LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
                LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
                LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
                LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
                LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
                LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
            };
        }
        let attr = sys::SchedAttr {
            size: std::mem::size_of::<sys::SchedAttr>() as u32,
            sched_policy: policy as u32,
            sched_flags: flags,
            sched_nice: s.nice().unwrap_or(0),
            sched_priority: s.priority().unwrap_or(0) as u32,
            sched_runtime: s.runtime().unwrap_or(0),
            sched_deadline: s.deadline().unwrap_or(0),
            sched_period: s.period().unwrap_or(0),
        };
        sys::sched_setattr(&attr).map_err(|e| RuntimeError::sys("set process.scheduler", e))?;
    }
    if let Some(profile) = p.apparmor_profile().as_deref().filter(|s| !s.is_empty()) {
        let attr = if Path::new("/proc/self/attr/apparmor/exec").exists() {
            "/proc/self/attr/apparmor/exec"
        } else {
            "/proc/self/attr/exec"
        };
        std::fs::write(attr, format!("exec {profile}"))
            .map_err(|e| RuntimeError::io("set AppArmor profile via", attr, e))?;
    }
    if let Some(label) = p.selinux_label().as_deref().filter(|s| !s.is_empty()) {
        std::fs::write("/proc/self/attr/exec", label)
            .map_err(|e| RuntimeError::io("set SELinux label via", "/proc/self/attr/exec", e))?;
    }
    Ok(())
}

/// Apply the personality from `linux.personality`.
pub(crate) fn apply_personality(p: &oci_spec::runtime::LinuxPersonality) -> Result<()> {
    let persona = match p.domain() {
        oci_spec::runtime::LinuxPersonalityDomain::PerLinux => 0x0000,
        oci_spec::runtime::LinuxPersonalityDomain::PerLinux32 => 0x0008,
    };
    sys::personality(persona).map_err(|e| RuntimeError::sys("set linux.personality", e))?;
    Ok(())
}

fn cap_set(c: Option<&Capabilities>) -> Result<HashSet<caps::Capability>> {
    let last = caps::runtime::procfs_all_supported(None).unwrap_or_else(|_| caps::all());
    let mut out = HashSet::new();
    for cap in c.into_iter().flatten() {
        let name = format!("CAP_{cap}");
        let parsed: caps::Capability = name.parse().map_err(|_| {
            RuntimeError::invalid("process.capabilities", format!("unknown capability {name}"))
        })?;
        // Capabilities the kernel does not know are skipped, as runc does.
        if last.contains(&parsed) {
            out.insert(parsed);
        }
    }
    Ok(out)
}

/// Switch to the process's user and group, then set its capability sets.
///
/// The bounding set is reduced first, while CAP_SETPCAP is still held; identity changes keep the
/// permitted set (PR_SET_KEEPCAPS); then effective, permitted and inheritable are set exactly as
/// the spec says (never more: CVE-2022-29162) and the ambient ones raised.
pub(crate) fn apply_identity_and_caps(p: &Process) -> Result<()> {
    let c = p.capabilities().as_ref();
    let bounding = cap_set(c.and_then(|c| c.bounding().as_ref()))?;
    let effective = cap_set(c.and_then(|c| c.effective().as_ref()))?;
    let permitted = cap_set(c.and_then(|c| c.permitted().as_ref()))?;
    let inheritable = cap_set(c.and_then(|c| c.inheritable().as_ref()))?;
    let ambient = cap_set(c.and_then(|c| c.ambient().as_ref()))?;
    let supported = caps::runtime::procfs_all_supported(None).unwrap_or_else(|_| caps::all());
    for cap in &supported {
        if !bounding.contains(cap) {
            caps::drop(None, caps::CapSet::Bounding, *cap).map_err(|e| {
                RuntimeError::sys(
                    format!("drop {cap} from the bounding set: {e}"),
                    std::io::Error::from_raw_os_error(libc::EPERM),
                )
            })?;
        }
    }
    rustix::thread::set_keep_capabilities(true)
        .map_err(|e| RuntimeError::sys("set keepcaps", e.into()))?;
    let user = p.user();
    let mut groups: Vec<rustix::process::Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| rustix::process::Gid::from_raw(*g))
        .collect();
    groups.dedup();
    // setgroups is denied in a user namespace whose setgroups file says "deny"; only then skip it.
    if let Err(e) = rustix::thread::set_thread_groups(&groups)
        && !(groups.is_empty() && e == rustix::io::Errno::PERM)
    {
        return Err(RuntimeError::sys(
            "set process.user.additionalGids",
            e.into(),
        ));
    }
    let gid = rustix::process::Gid::from_raw(user.gid());
    rustix::thread::set_thread_res_gid(gid, gid, gid)
        .map_err(|e| RuntimeError::sys(format!("set process.user.gid {}", user.gid()), e.into()))?;
    let uid = rustix::process::Uid::from_raw(user.uid());
    rustix::thread::set_thread_res_uid(uid, uid, uid)
        .map_err(|e| RuntimeError::sys(format!("set process.user.uid {}", user.uid()), e.into()))?;
    rustix::thread::set_keep_capabilities(false)
        .map_err(|e| RuntimeError::sys("clear keepcaps", e.into()))?;
    let capfail = |set: &str, e: caps::errors::CapsError| {
        RuntimeError::sys(
            format!("set {set} capabilities: {e}"),
            std::io::Error::from_raw_os_error(libc::EPERM),
        )
    };
    // Inheritable first: capset(2) lets it grow beyond the permitted set only while CAP_SETPCAP
    // is effective, and both are about to shrink. Then effective, which must stay a subset of
    // permitted at every step.
    caps::set(None, caps::CapSet::Inheritable, &inheritable)
        .map_err(|e| capfail("inheritable", e))?;
    caps::set(None, caps::CapSet::Effective, &effective).map_err(|e| capfail("effective", e))?;
    caps::set(None, caps::CapSet::Permitted, &permitted).map_err(|e| capfail("permitted", e))?;
    caps::clear(None, caps::CapSet::Ambient).map_err(|e| capfail("ambient", e))?;
    for cap in &ambient {
        // Raising fails for a cap outside permitted or inheritable; runc ignores those.
        let _ = caps::raise(None, caps::CapSet::Ambient, *cap);
    }
    Ok(())
}

/// Change to the process's working directory and make sure it is inside the container's root:
/// a directory reached through a leaked descriptor (CVE-2024-21626) reads as "(unreachable)".
pub(crate) fn enter_cwd(cwd: &Path) -> Result<()> {
    rustix::process::chdir(cwd)
        .map_err(|e| RuntimeError::io("chdir to process.cwd", cwd, e.into()))?;
    let here =
        rustix::process::getcwd(Vec::new()).map_err(|e| RuntimeError::sys("getcwd", e.into()))?;
    if !here.as_bytes().starts_with(b"/") {
        return Err(RuntimeError::invalid(
            "process.cwd",
            format!("{} is outside the container's root", cwd.display()),
        ));
    }
    Ok(())
}

/// The environment the program will see: the spec's, plus HOME from the container's
/// /etc/passwd when the spec does not set it.
pub(crate) fn environment(p: &Process) -> Vec<String> {
    let mut env: Vec<String> = p.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let home = home_of(p.user().uid()).unwrap_or_else(|| "/".to_string());
        env.push(format!("HOME={home}"));
    }
    env
}

fn home_of(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[5].to_string())
    })
}

/// Find `arg0` the way execvp would, using the container's PATH.
pub(crate) fn find_executable(arg0: &str, env: &[String]) -> Result<PathBuf> {
    let not_found = || RuntimeError::NotInPath(arg0.to_owned());
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        return match rustix::fs::stat(&p) {
            // As execve would (and runc checks before start): a directory or a file without an
            // execute bit cannot run; say so now rather than after start.
            Ok(st)
                if rustix::fs::FileType::from_raw_mode(st.st_mode)
                    != rustix::fs::FileType::RegularFile
                    || st.st_mode & 0o111 == 0 =>
            {
                Err(RuntimeError::io(
                    "exec",
                    p,
                    std::io::Error::from_raw_os_error(libc::EACCES),
                ))
            }
            Ok(_) => Ok(p),
            Err(e) => Err(RuntimeError::io("stat process.args[0]", p, e.into())),
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let cand = Path::new(dir).join(arg0);
        if let Ok(st) = rustix::fs::stat(&cand) {
            let is_file = rustix::fs::FileType::from_raw_mode(st.st_mode)
                == rustix::fs::FileType::RegularFile;
            if is_file && st.st_mode & 0o111 != 0 {
                return Ok(cand);
            }
        }
    }
    Err(not_found())
}

/// Replace this process with the user's program. Only returns on failure.
pub(crate) fn exec(path: &Path, args: &[String], env: &[String]) -> RuntimeError {
    let to_c = |s: &str| {
        CString::new(s).map_err(|_| RuntimeError::invalid("process.args", "contains a NUL byte"))
    };
    let cpath = match CString::new(path.as_os_str().as_bytes()) {
        Ok(c) => c,
        Err(_) => return RuntimeError::invalid("process.args[0]", "contains a NUL byte"),
    };
    let argv: Result<Vec<CString>> = args.iter().map(|a| to_c(a)).collect();
    let envp: Result<Vec<CString>> = env.iter().map(|a| to_c(a)).collect();
    match (argv, envp) {
        (Ok(argv), Ok(envp)) => {
            let e = sys::execve(&cpath, &argv, &envp);
            RuntimeError::io("exec", path, e)
        }
        (Err(e), _) | (_, Err(e)) => e,
    }
}
