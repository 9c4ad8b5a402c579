//! Every libc call contest makes, behind safe wrappers. The only module with `unsafe`.
//!
//! contest has no dependencies on purpose (it is linked statically and copied into every test
//! rootfs), so the few glibc functions it needs are declared here by hand. The layouts below are
//! those of glibc on 64-bit Linux.

use std::ffi::{CStr, CString, c_char, c_int, c_long, c_uint, c_ulong};
use std::io;

/// `struct utsname` of glibc: six fields of `_UTSNAME_LENGTH` (65) bytes.
#[repr(C)]
struct Utsname {
    sysname: [c_char; 65],
    nodename: [c_char; 65],
    release: [c_char; 65],
    version: [c_char; 65],
    machine: [c_char; 65],
    domainname: [c_char; 65],
}

/// `struct rlimit`; `rlim_t` is 64 bits on 64-bit Linux.
#[repr(C)]
struct Rlimit {
    cur: u64,
    max: u64,
}

/// `struct sched_param`.
#[repr(C)]
struct SchedParam {
    priority: c_int,
}

/// glibc's `sigset_t`: 1024 bits.
#[repr(C)]
struct SigSet {
    bits: [u64; 16],
}

/// `struct timespec` on 64-bit Linux.
#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

unsafe extern "C" {
    fn getresuid(ruid: *mut c_uint, euid: *mut c_uint, suid: *mut c_uint) -> c_int;
    fn getresgid(rgid: *mut c_uint, egid: *mut c_uint, sgid: *mut c_uint) -> c_int;
    fn setfsuid(uid: c_uint) -> c_int;
    fn setfsgid(gid: c_uint) -> c_int;
    fn getgroups(size: c_int, list: *mut c_uint) -> c_int;
    fn umask(mask: c_uint) -> c_uint;
    fn uname(buf: *mut Utsname) -> c_int;
    fn getrlimit(resource: c_int, rlim: *mut Rlimit) -> c_int;
    fn personality(persona: c_ulong) -> c_int;
    fn sched_getscheduler(pid: c_int) -> c_int;
    fn sched_getparam(pid: c_int, param: *mut SchedParam) -> c_int;
    fn capget(header: *mut CapHeader, data: *mut CapData) -> c_int;
    fn prctl(option: c_int, ...) -> c_int;
    fn syscall(number: c_long, ...) -> c_long;
    fn fork() -> c_int;
    fn pause() -> c_int;
    fn kill(pid: c_int, sig: c_int) -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn raise(sig: c_int) -> c_int;
    fn sigfillset(set: *mut SigSet) -> c_int;
    fn sigprocmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
    fn sigwait(set: *const SigSet, sig: *mut c_int) -> c_int;
    fn isatty(fd: c_int) -> c_int;
    fn ttyname_r(fd: c_int, buf: *mut c_char, len: usize) -> c_int;
    fn getsid(pid: c_int) -> c_int;
    fn getpgrp() -> c_int;
    fn tcgetpgrp(fd: c_int) -> c_int;
    fn clock_gettime(clock: c_int, tp: *mut Timespec) -> c_int;
}

const PR_SET_PDEATHSIG: c_int = 1;
const PR_GET_SECCOMP: c_int = 21;
const PR_CAPBSET_READ: c_int = 23;
const PR_GET_NO_NEW_PRIVS: c_int = 39;
const PR_CAP_AMBIENT: c_int = 47;
const PR_CAP_AMBIENT_IS_SET: c_ulong = 1;
const SIGKILL: c_int = 9;
const SIG_BLOCK: c_int = 0;
const CLOCK_PROCESS_CPUTIME_ID: c_int = 2;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Turns a `-1`-on-error return into the `errno` it set.
fn check(ret: c_int) -> io::Result<c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Real, effective and saved user ids.
pub(crate) fn resuid() -> (u32, u32, u32) {
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: the three pointers are to live, writable locals; getresuid only writes them.
    unsafe { getresuid(&mut r, &mut e, &mut s) };
    (r, e, s)
}

/// Real, effective and saved group ids.
pub(crate) fn resgid() -> (u32, u32, u32) {
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: the three pointers are to live, writable locals; getresgid only writes them.
    unsafe { getresgid(&mut r, &mut e, &mut s) };
    (r, e, s)
}

/// The filesystem uid: `setfsuid(-1)` is refused (an invalid id) and returns the current one.
pub(crate) fn fsuid() -> u32 {
    // SAFETY: -1 is never a valid id, so the call changes nothing and only reports.
    let id = unsafe { setfsuid(u32::MAX) };
    id as u32
}

/// The filesystem gid, found the same way as [`fsuid`].
pub(crate) fn fsgid() -> u32 {
    // SAFETY: -1 is never a valid id, so the call changes nothing and only reports.
    let id = unsafe { setfsgid(u32::MAX) };
    id as u32
}

/// Supplementary group ids.
pub(crate) fn groups() -> io::Result<Vec<u32>> {
    // SAFETY: size 0 asks only for the count and never touches the (null) list.
    let n = check(unsafe { getgroups(0, std::ptr::null_mut()) })?;
    let mut list = vec![0u32; usize::try_from(n).unwrap_or(0)];
    // SAFETY: `list` has exactly `n` writable elements, the size passed.
    let got = check(unsafe { getgroups(n, list.as_mut_ptr()) })?;
    list.truncate(usize::try_from(got).unwrap_or(0));
    Ok(list)
}

/// The process umask (read by setting it and setting it back; contest is single-threaded).
pub(crate) fn umask_get() -> u32 {
    // SAFETY: umask cannot fail; the old mask is restored at once and no thread races it.
    let old = unsafe { umask(0o022) };
    // SAFETY: as above.
    unsafe { umask(old) };
    old
}

fn c_field(field: &[c_char]) -> String {
    let bytes: Vec<u8> = field
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `(nodename, domainname)` from uname(2).
pub(crate) fn uname_names() -> io::Result<(String, String)> {
    let mut buf = Utsname {
        sysname: [0; 65],
        nodename: [0; 65],
        release: [0; 65],
        version: [0; 65],
        machine: [0; 65],
        domainname: [0; 65],
    };
    // SAFETY: `buf` is a live struct with glibc's `struct utsname` layout; uname only writes it.
    check(unsafe { uname(&mut buf) })?;
    Ok((c_field(&buf.nodename), c_field(&buf.domainname)))
}

/// Soft and hard limit of one resource (`RLIM_INFINITY` is `u64::MAX`).
pub(crate) fn rlimit(resource: i32) -> io::Result<(u64, u64)> {
    let mut lim = Rlimit { cur: 0, max: 0 };
    // SAFETY: `lim` is a live `struct rlimit`; getrlimit only writes it (EINVAL for bad ids).
    check(unsafe { getrlimit(resource, &mut lim) })?;
    Ok((lim.cur, lim.max))
}

/// The execution domain: `personality(0xffffffff)` queries without changing it.
pub(crate) fn personality_get() -> io::Result<u32> {
    // SAFETY: 0xffffffff is the documented query value; nothing is changed.
    let p = check(unsafe { personality(0xffff_ffff) })?;
    Ok(p as u32)
}

/// Raw I/O priority of this process (`ioprio_get(IOPRIO_WHO_PROCESS, 0)`).
pub(crate) fn ioprio_get() -> io::Result<i64> {
    #[cfg(target_arch = "x86_64")]
    const NR: c_long = 252;
    #[cfg(target_arch = "aarch64")]
    const NR: c_long = 31;
    const IOPRIO_WHO_PROCESS: c_long = 1;
    // SAFETY: ioprio_get takes two integers and touches no memory of ours.
    let ret = unsafe { syscall(NR, IOPRIO_WHO_PROCESS, 0 as c_long) };
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Scheduling policy and static priority of this process.
pub(crate) fn sched() -> io::Result<(i32, i32)> {
    // SAFETY: pid 0 means this process; no memory is passed.
    let policy = check(unsafe { sched_getscheduler(0) })?;
    let mut param = SchedParam { priority: 0 };
    // SAFETY: `param` is a live `struct sched_param` that sched_getparam writes.
    check(unsafe { sched_getparam(0, &mut param) })?;
    Ok((policy, param.priority))
}

/// Capability sets from capget(2) and prctl(2), for when /proc is not mounted:
/// `[inheritable, permitted, effective, bounding, ambient]`.
pub(crate) fn capabilities() -> io::Result<[u64; 5]> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: version 3 takes an array of two data structs, which `data` is; both are live.
    check(unsafe { capget(&mut header, data.as_mut_ptr()) })?;
    let join = |f: fn(&CapData) -> u32| u64::from(f(&data[0])) | (u64::from(f(&data[1])) << 32);
    let (mut bnd, mut amb) = (0u64, 0u64);
    for cap in 0..64u32 {
        // SAFETY: PR_CAPBSET_READ takes an integer and touches no memory; EINVAL past the last cap.
        let Ok(set) = check(unsafe { prctl(PR_CAPBSET_READ, c_ulong::from(cap), 0 as c_ulong) })
        else {
            break;
        };
        bnd |= u64::from(set == 1) << cap;
        // SAFETY: PR_CAP_AMBIENT_IS_SET takes integers only.
        let a = unsafe {
            prctl(
                PR_CAP_AMBIENT,
                PR_CAP_AMBIENT_IS_SET,
                c_ulong::from(cap),
                0 as c_ulong,
                0 as c_ulong,
            )
        };
        amb |= u64::from(a == 1) << cap;
    }
    Ok([
        join(|d| d.inheritable),
        join(|d| d.permitted),
        join(|d| d.effective),
        bnd,
        amb,
    ])
}

/// `(no_new_privs, seccomp mode)` from prctl(2).
pub(crate) fn nnp_and_seccomp() -> (i32, i32) {
    // SAFETY: both options take no arguments and touch no memory; the seccomp query is allowed
    // in filter mode (mode 1, strict, would kill us, but nothing sets it on a container).
    let nnp = unsafe {
        prctl(
            PR_GET_NO_NEW_PRIVS,
            0 as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
        )
    };
    // SAFETY: as above.
    let sec = unsafe {
        prctl(
            PR_GET_SECCOMP,
            0 as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
        )
    };
    (nnp, sec)
}

/// One argument of a probed system call.
pub(crate) enum Arg {
    /// Passed as a number.
    Int(i64),
    /// Passed as a pointer to this NUL-terminated string (owned for the whole call).
    Str(CString),
    /// Passed as a pointer to a zeroed writable buffer of this many bytes.
    Buf(usize),
}

/// Makes system call `nr` with `args` and returns its result or errno.
///
/// Safe because pointers passed to the kernel come only from [`Arg::Str`] and [`Arg::Buf`], which
/// this function owns for the duration of the call, and a buffer's length is passed beside it by
/// the caller's table; integer arguments are never taken from addresses of ours. The kernel checks
/// every user pointer it is handed and returns EFAULT for bad ones.
pub(crate) fn probe_syscall(nr: i64, args: &[Arg]) -> io::Result<i64> {
    let mut bufs: Vec<Vec<u8>> = Vec::new();
    let mut raw = [0 as c_long; 6];
    for (slot, arg) in raw.iter_mut().zip(args) {
        *slot = match arg {
            Arg::Int(v) => *v as c_long,
            Arg::Str(s) => s.as_ptr() as c_long,
            Arg::Buf(len) => {
                bufs.push(vec![0u8; *len]);
                bufs.last_mut().map_or(0, |b| b.as_mut_ptr() as c_long)
            }
        };
    }
    // SAFETY: see the function's documentation: every pointer argument refers to memory owned by
    // `args` or `bufs`, both alive until the call returns, and writable buffers are as long as the
    // length the table passes next to them.
    let ret = unsafe { syscall(nr as c_long, raw[0], raw[1], raw[2], raw[3], raw[4], raw[5]) };
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Forks a child that sleeps until killed (and dies with its parent). Returns the child's pid.
pub(crate) fn fork_sleeper() -> io::Result<i32> {
    // SAFETY: contest is single-threaded, so the child owns a consistent copy of the process; it
    // calls only async-signal-safe functions (prctl, pause) and never returns.
    let pid = check(unsafe { fork() })?;
    if pid == 0 {
        // SAFETY: prctl with integer arguments; pause takes none. Both are async-signal-safe.
        unsafe {
            prctl(
                PR_SET_PDEATHSIG,
                SIGKILL as c_ulong,
                0 as c_ulong,
                0 as c_ulong,
                0 as c_ulong,
            );
            loop {
                pause();
            }
        }
    }
    Ok(pid)
}

/// Kills and reaps a child from [`fork_sleeper`].
pub(crate) fn kill_and_reap(pid: i32) {
    let mut status = 0;
    // SAFETY: `pid` is our own child; `status` is a live local that waitpid writes.
    unsafe {
        kill(pid, SIGKILL);
        waitpid(pid, &mut status, 0);
    }
}

/// Sends `sig` to this process; returns when the signal did not end it.
pub(crate) fn raise_signal(sig: i32) -> io::Result<()> {
    // SAFETY: raise takes an integer; an invalid signal number is reported as an error.
    let ret = unsafe { raise(sig) };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Blocks every signal, then calls `ready` and waits for the first one that arrives.
pub(crate) fn wait_any_signal(ready: impl FnOnce()) -> io::Result<i32> {
    let mut set = SigSet { bits: [0; 16] };
    // SAFETY: `set` is a live sigset_t that sigfillset writes.
    check(unsafe { sigfillset(&mut set) })?;
    // SAFETY: `set` is initialised; the old mask is not wanted (null is allowed).
    check(unsafe { sigprocmask(SIG_BLOCK, &set, std::ptr::null_mut()) })?;
    ready();
    let mut sig = 0;
    // SAFETY: `set` is initialised and `sig` is a live local sigwait writes.
    let err = unsafe { sigwait(&set, &mut sig) };
    if err == 0 {
        Ok(sig)
    } else {
        Err(io::Error::from_raw_os_error(err))
    }
}

/// Whether `fd` is a terminal.
pub(crate) fn is_tty(fd: i32) -> bool {
    // SAFETY: isatty only inspects the descriptor number.
    unsafe { isatty(fd) == 1 }
}

/// The terminal device `fd` refers to.
pub(crate) fn tty_name(fd: i32) -> io::Result<String> {
    let mut buf = [0 as c_char; 256];
    // SAFETY: `buf` is writable for the length passed; ttyname_r NUL-terminates on success.
    let err = unsafe { ttyname_r(fd, buf.as_mut_ptr(), buf.len()) };
    if err != 0 {
        return Err(io::Error::from_raw_os_error(err));
    }
    // SAFETY: on success ttyname_r wrote a NUL-terminated string into `buf`.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
    Ok(name.to_string_lossy().into_owned())
}

/// `(session id, process group, foreground process group of fd 0)`.
pub(crate) fn session() -> (i32, i32, io::Result<i32>) {
    // SAFETY: these take integers only and touch no memory.
    let (sid, pgrp, fg) = unsafe { (getsid(0), getpgrp(), tcgetpgrp(0)) };
    (sid, pgrp, check(fg))
}

/// CPU time this process has used, in nanoseconds.
pub(crate) fn cpu_time_ns() -> u64 {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `ts` is a live timespec that clock_gettime writes.
    unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    (ts.sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.nsec as u64)
}

/// Reads clock `clock` (`CLOCK_MONOTONIC` = 1, `CLOCK_BOOTTIME` = 7, ...) in nanoseconds.
pub(crate) fn clock_ns(clock: i32) -> io::Result<u64> {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `ts` is a live timespec that clock_gettime writes; an unknown clock id is
    // reported as EINVAL, not undefined behaviour.
    check(unsafe { clock_gettime(clock, &mut ts) })?;
    Ok((ts.sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.nsec as u64))
}
