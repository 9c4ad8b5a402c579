//! Probes of the filesystem and the syscall filter: `mounts`, `stat`, `open`, `read`, `write`,
//! `syscall`, `sysctl`.

use crate::sys::{self, Arg};
use crate::{Fail, Res, kv, parse_num};
use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

/// One line per mount of /proc/self/mountinfo (fields kept escaped, so they never hold spaces):
/// `mount=<point> type=<fstype> source=<source> opts=<per-mount options> super=<fs options>`.
pub(crate) fn mounts() -> Res {
    let info = fs::read_to_string("/proc/self/mountinfo")?;
    let mut out = io::stdout().lock();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        let (Some(point), Some(opts)) = (pre.get(4), pre.get(5)) else {
            continue;
        };
        let fstype = post.first().copied().unwrap_or("");
        let source = post.get(1).copied().unwrap_or("");
        let sup = post.get(2).copied().unwrap_or("");
        let _ = writeln!(
            out,
            "mount={point} type={fstype} source={source} opts={opts} super={sup}"
        );
    }
    Ok(())
}

fn file_type(ft: fs::FileType) -> &'static str {
    if ft.is_symlink() {
        "symlink"
    } else if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else {
        "unknown"
    }
}

/// lstat(2) of `path`: `type= mode= uid= gid= rdev=MAJ:MIN size= ino= nlink=`, and `target=`
/// for a symlink. `mode` is the permission bits in octal, with setuid/setgid/sticky.
pub(crate) fn stat(path: &str) -> Res {
    let md = fs::symlink_metadata(path)?;
    kv("type", file_type(md.file_type()));
    kv("mode", format!("{:04o}", md.mode() & 0o7777));
    kv("uid", md.uid());
    kv("gid", md.gid());
    let rdev = md.rdev();
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    kv("rdev", format!("{major}:{minor}"));
    kv("size", md.size());
    kv("ino", md.ino());
    kv("nlink", md.nlink());
    if md.file_type().is_symlink() {
        kv("target", fs::read_link(path)?.display());
    }
    Ok(())
}

/// Opens `path` read-only (`r`), write-only (`w`) or read-write (`rw`) without creating it.
pub(crate) fn open(path: &str, mode: &str) -> Res {
    let mut opts = fs::OpenOptions::new();
    match mode {
        "r" => opts.read(true),
        "w" => opts.write(true),
        "rw" => opts.read(true).write(true),
        other => {
            return Err(Fail::Usage(format!(
                "open mode must be r, w or rw, not {other}"
            )));
        }
    };
    opts.open(path)?;
    println!("ok");
    Ok(())
}

/// Copies the file to stdout as is.
pub(crate) fn read(path: &str) -> Res {
    let bytes = fs::read(path)?;
    io::stdout().lock().write_all(&bytes)?;
    Ok(())
}

/// Writes `value` (no newline added) to `path` in one write(2), creating it if missing.
pub(crate) fn write(path: &str, value: &str) -> Res {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.write_all(value.as_bytes())?;
    println!("ok");
    Ok(())
}

/// Reads `/proc/sys/<name with dots as slashes>` and prints `NAME=value`.
pub(crate) fn sysctl(name: &str) -> Res {
    let value = fs::read_to_string(format!("/proc/sys/{}", name.replace('.', "/")))?;
    kv(name, value.trim_end());
    Ok(())
}

/// A parameter of a probed system call, with the value used when the caller gives none.
#[derive(Clone, Copy)]
enum P {
    /// A path or name, passed as a pointer.
    Str(&'static str),
    /// A number; symbolic flag names may be given, joined by `|`.
    Int(i64),
    /// A zeroed output buffer of this size (takes no argument from the command line).
    Buf(usize),
    /// The length of the previous string (takes no argument from the command line).
    LenOfPrev,
}

const AT_FDCWD: i64 = -100;

/// The syscalls `contest syscall` knows, with their x86_64 numbers and harmless defaults: each
/// default either fails with a telling errno or changes only the container. Host-wide calls
/// (reboot, swapon, clock_settime, acct, kexec) are left out on purpose.
#[cfg(target_arch = "x86_64")]
const TABLE: &[(&str, i64, &[P])] = &[
    ("getpid", 39, &[]),
    ("getuid", 102, &[]),
    ("getcwd", 79, &[P::Buf(4096), P::Int(4096)]),
    ("uname", 63, &[P::Buf(390)]),
    ("mkdir", 83, &[P::Str("/tmp/contest-mkdir"), P::Int(0o755)]),
    (
        "mkdirat",
        258,
        &[
            P::Int(AT_FDCWD),
            P::Str("/tmp/contest-mkdir"),
            P::Int(0o755),
        ],
    ),
    ("rmdir", 84, &[P::Str("/tmp/contest-mkdir")]),
    ("unlink", 87, &[P::Str("/tmp/contest-file")]),
    ("chmod", 90, &[P::Str("/tmp/contest-file"), P::Int(0o644)]),
    (
        "fchmodat",
        268,
        &[P::Int(AT_FDCWD), P::Str("/tmp/contest-file"), P::Int(0o644)],
    ),
    (
        "chown",
        92,
        &[P::Str("/tmp/contest-file"), P::Int(0), P::Int(0)],
    ),
    (
        "mknod",
        133,
        &[P::Str("/tmp/contest-null"), P::Int(0o20644), P::Int(0x103)],
    ),
    ("personality", 135, &[P::Int(0xffff_ffff)]),
    ("unshare", 272, &[P::Int(0)]),
    ("setns", 308, &[P::Int(-1), P::Int(0)]),
    (
        "mount",
        165,
        &[
            P::Str("none"),
            P::Str("/tmp"),
            P::Str("tmpfs"),
            P::Int(0),
            P::Int(0),
        ],
    ),
    ("umount2", 166, &[P::Str("/tmp"), P::Int(0)]),
    ("chroot", 161, &[P::Str("/")]),
    ("pivot_root", 155, &[P::Str("."), P::Str(".")]),
    ("sethostname", 170, &[P::Str("contest"), P::LenOfPrev]),
    ("setdomainname", 171, &[P::Str("contest"), P::LenOfPrev]),
    ("setuid", 105, &[P::Int(0)]),
    ("setgid", 106, &[P::Int(0)]),
    (
        "ptrace",
        101,
        &[P::Int(-1), P::Int(0), P::Int(0), P::Int(0)],
    ),
    ("kill", 62, &[P::Int(1), P::Int(0)]),
    ("socket", 41, &[P::Int(2), P::Int(1), P::Int(0)]),
    ("keyctl", 250, &[P::Int(0), P::Int(-3), P::Int(0)]),
    (
        "add_key",
        248,
        &[
            P::Str("user"),
            P::Str("contest"),
            P::Int(0),
            P::Int(0),
            P::Int(-2),
        ],
    ),
    ("bpf", 321, &[P::Int(-1), P::Int(0), P::Int(0)]),
    (
        "perf_event_open",
        298,
        &[P::Int(0), P::Int(0), P::Int(-1), P::Int(-1), P::Int(0)],
    ),
    ("userfaultfd", 323, &[P::Int(0)]),
    (
        "open_by_handle_at",
        304,
        &[P::Int(-1), P::Int(0), P::Int(0)],
    ),
    (
        "name_to_handle_at",
        303,
        &[
            P::Int(AT_FDCWD),
            P::Str("/"),
            P::Int(0),
            P::Int(0),
            P::Int(0),
        ],
    ),
    ("syslog", 103, &[P::Int(10), P::Int(0), P::Int(0)]),
    (
        "quotactl",
        179,
        &[P::Int(0), P::Int(0), P::Int(0), P::Int(0)],
    ),
    (
        "kcmp",
        312,
        &[P::Int(0), P::Int(0), P::Int(0), P::Int(0), P::Int(0)],
    ),
    (
        "process_vm_readv",
        310,
        &[
            P::Int(0),
            P::Int(0),
            P::Int(0),
            P::Int(0),
            P::Int(0),
            P::Int(0),
        ],
    ),
    ("io_uring_setup", 425, &[P::Int(0), P::Int(0)]),
    (
        "open_tree",
        428,
        &[P::Int(AT_FDCWD), P::Str("/"), P::Int(0)],
    ),
    (
        "move_mount",
        429,
        &[P::Int(-1), P::Str(""), P::Int(-1), P::Str(""), P::Int(0)],
    ),
    ("fsopen", 430, &[P::Str("tmpfs"), P::Int(0)]),
];

#[cfg(not(target_arch = "x86_64"))]
const TABLE: &[(&str, i64, &[P])] = &[];

const FLAGS: &[(&str, i64)] = &[
    ("CLONE_NEWTIME", 0x80),
    ("CLONE_NEWNS", 0x2_0000),
    ("CLONE_NEWCGROUP", 0x200_0000),
    ("CLONE_NEWUTS", 0x400_0000),
    ("CLONE_NEWIPC", 0x800_0000),
    ("CLONE_NEWUSER", 0x1000_0000),
    ("CLONE_NEWPID", 0x2000_0000),
    ("CLONE_NEWNET", 0x4000_0000),
    ("MS_RDONLY", 1),
    ("MS_NOSUID", 2),
    ("MS_NODEV", 4),
    ("MS_NOEXEC", 8),
    ("MS_REMOUNT", 32),
    ("MS_BIND", 4096),
    ("MS_REC", 16384),
    ("MS_PRIVATE", 1 << 18),
    ("MS_SLAVE", 1 << 19),
    ("MS_SHARED", 1 << 20),
    ("MNT_FORCE", 1),
    ("MNT_DETACH", 2),
    ("AF_UNIX", 1),
    ("AF_INET", 2),
    ("AF_INET6", 10),
    ("AF_NETLINK", 16),
    ("AF_PACKET", 17),
    ("SOCK_STREAM", 1),
    ("SOCK_DGRAM", 2),
    ("SOCK_RAW", 3),
    ("PER_LINUX", 0),
    ("PER_LINUX32", 8),
    ("ADDR_NO_RANDOMIZE", 0x4_0000),
];

/// A number, or flag names (and numbers) joined by `|`.
fn parse_int(s: &str) -> Result<i64, Fail> {
    let mut v = 0;
    for part in s.split('|') {
        v |= match FLAGS.iter().find(|(n, _)| *n == part) {
            Some((_, f)) => *f,
            None => parse_num(part)?,
        };
    }
    Ok(v)
}

/// Makes one system call by name (or `nr:N`, with all arguments zero) and prints `ret=N`.
pub(crate) fn syscall(name: &str, given: &[String]) -> Res {
    let (nr, params): (i64, &[P]) = if let Some(n) = name.strip_prefix("nr:") {
        (parse_num(n)?, &[])
    } else {
        let (_, nr, params) = TABLE
            .iter()
            .find(|(n, _, _)| *n == name)
            .ok_or_else(|| Fail::Usage(format!("unknown syscall {name}")))?;
        (*nr, params)
    };
    let mut given = given.iter();
    let mut args = Vec::new();
    let mut prev_len = 0;
    for p in params {
        args.push(match *p {
            P::Str(default) => {
                let s = given.next().map_or(default, String::as_str);
                prev_len = s.len();
                let c = CString::new(s).map_err(|_| Fail::Usage(format!("NUL in {s:?}")))?;
                Arg::Str(c)
            }
            P::Int(default) => Arg::Int(given.next().map_or(Ok(default), |s| parse_int(s))?),
            P::Buf(len) => Arg::Buf(len),
            P::LenOfPrev => Arg::Int(prev_len as i64),
        });
    }
    if given.next().is_some() {
        return Err(Fail::Usage(format!("too many arguments for {name}")));
    }
    kv("ret", sys::probe_syscall(nr, &args)?);
    Ok(())
}
