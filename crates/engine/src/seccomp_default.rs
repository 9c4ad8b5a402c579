//! berth's default seccomp profile, with the behaviour of Docker's: everything not listed fails
//! with `EPERM`; an allow list of ordinary syscalls; syscalls that only make sense with a
//! capability (mount/unshare/setns with `CAP_SYS_ADMIN`, ptrace with `CAP_SYS_PTRACE`, ...)
//! allowed only when the container has it; `personality` limited to the harmless personas;
//! `clone` without namespace flags (unless `CAP_SYS_ADMIN`); `clone3`, whose flags live in
//! memory seccomp cannot read, answered with `ENOSYS` so that libc falls back to `clone`.
//!
//! The data is a [`Profile`] in Docker's profile format, so it goes through the same
//! capability/architecture filtering as a `--security-opt seccomp=FILE` profile.

use crate::seccomp_profile::{ArchMap, Arg, Filter, Profile, Rule};

/// Ordinary syscalls, allowed to every container.
#[rustfmt::skip]
const ALLOWED: &[&str] = &[
    // files and descriptors
    "access", "faccessat", "faccessat2", "chdir", "fchdir", "chmod", "fchmod", "fchmodat",
    "fchmodat2", "chown", "chown32", "fchown", "fchown32", "fchownat", "lchown", "lchown32",
    "close", "close_range", "copy_file_range", "creat", "dup", "dup2", "dup3", "fadvise64",
    "fadvise64_64", "fallocate", "fcntl", "fcntl64", "fdatasync", "flock", "fstat", "fstat64",
    "fstatat64", "newfstatat", "fstatfs", "fstatfs64", "statfs", "statfs64", "fsync",
    "ftruncate", "ftruncate64", "truncate", "truncate64", "getcwd", "getdents", "getdents64",
    "link", "linkat", "lseek", "_llseek", "lstat", "lstat64", "stat", "stat64", "statx",
    "mkdir", "mkdirat", "mknod", "mknodat", "name_to_handle_at", "open", "openat", "openat2",
    "pipe", "pipe2", "pread64", "preadv", "preadv2", "pwrite64", "pwritev", "pwritev2", "read",
    "readahead", "readlink", "readlinkat", "readv", "rename", "renameat", "renameat2", "rmdir",
    "sendfile", "sendfile64", "splice", "symlink", "symlinkat", "sync", "syncfs",
    "sync_file_range", "tee", "umask", "unlink", "unlinkat", "utime", "utimensat",
    "utimensat_time64", "utimes", "futimesat", "vmsplice", "write", "writev", "cachestat",
    // extended attributes
    "getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr", "setxattr",
    "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr",
    // polling and events
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
    "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "inotify_add_watch",
    "inotify_init", "inotify_init1", "inotify_rm_watch", "fanotify_mark", "poll", "ppoll",
    "ppoll_time64", "select", "_newselect", "pselect6", "pselect6_time64", "signalfd",
    "signalfd4", "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
    "timerfd_settime64",
    // asynchronous I/O
    "io_cancel", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64",
    "io_setup", "io_submit", "ioprio_get", "ioprio_set",
    // memory
    "brk", "madvise", "membarrier", "memfd_create", "memfd_secret", "mincore", "mlock",
    "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mremap", "msync", "munlock",
    "munlockall", "munmap", "pkey_alloc", "pkey_free", "pkey_mprotect", "remap_file_pages",
    "map_shadow_stack",
    // processes, threads, signals
    "capget", "capset", "execve", "execveat", "exit", "exit_group", "fork", "vfork", "futex",
    "futex_requeue", "futex_time64", "futex_wait", "futex_waitv", "futex_wake",
    "get_robust_list", "set_robust_list", "get_thread_area", "set_thread_area",
    "set_tid_address", "getcpu", "getpgid", "getpgrp", "getpid", "getppid", "getpriority",
    "setpriority", "getrandom", "getrlimit", "ugetrlimit", "setrlimit", "prlimit64",
    "getrusage", "getsid", "setsid", "setpgid", "gettid", "kill", "tkill", "tgkill",
    "pidfd_open", "pidfd_send_signal", "prctl", "pause", "restart_syscall", "rseq",
    "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn",
    "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
    "sigaltstack", "sigprocmask", "sigreturn", "sched_getaffinity", "sched_setaffinity",
    "sched_getattr", "sched_setattr", "sched_getparam", "sched_setparam",
    "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
    "sched_setscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
    "sched_yield", "seccomp", "wait4", "waitid", "waitpid", "process_mrelease",
    "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
    // credentials
    "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getuid",
    "getuid32", "getgroups", "getgroups32", "setgroups", "setgroups32", "getresgid",
    "getresgid32", "getresuid", "getresuid32", "setfsgid", "setfsgid32", "setfsuid",
    "setfsuid32", "setgid", "setgid32", "setuid", "setuid32", "setregid", "setregid32",
    "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32",
    // time
    "adjtimex", "alarm", "clock_adjtime", "clock_adjtime64", "clock_getres",
    "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
    "clock_nanosleep_time64", "getitimer", "setitimer", "gettimeofday", "nanosleep", "time",
    "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64",
    "timer_settime", "timer_settime64", "times",
    // sockets and IPC (`socket` itself has its own rule)
    "accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt",
    "setsockopt", "listen", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg",
    "send", "sendmmsg", "sendmsg", "sendto", "shutdown", "socketcall", "socketpair", "ipc",
    "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64",
    "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "msgctl", "msgget", "msgrcv", "msgsnd",
    "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "shmat", "shmctl", "shmdt",
    "shmget",
    // system information
    "ioctl", "sysinfo", "uname",
];

/// `personality` values allowed: `PER_LINUX`, `PER_LINUX32`, `UNAME26`, `UNAME26|PER_LINUX32`,
/// and the query `0xffffffff`.
const PERSONAS: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// `CLONE_NEWNS|CLONE_NEWCGROUP|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET`:
/// the flags plain `clone` may not carry without `CAP_SYS_ADMIN`.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7e02_0000;

/// `AF_VSOCK`: the one socket family the profile refuses.
const AF_VSOCK: u64 = 40;

/// `ENOSYS`, which `clone3` answers so that libc falls back to `clone`.
const ENOSYS: u32 = 38;

/// Syscalls allowed only with a capability.
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// Syscalls allowed only on some architectures (Go architecture names, as Docker's profiles use).
const BY_ARCH: &[(&[&str], &[&str])] = &[
    (&["amd64", "x32", "386"], &["arch_prctl", "modify_ldt"]),
    (
        &["arm", "arm64"],
        &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
    ),
    (&["ppc64le"], &["sync_file_range2", "swapcontext"]),
    (
        &["s390", "s390x"],
        &[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ],
    ),
    (&["riscv64"], &["riscv_flush_icache"]),
];

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn allow(list: &[&str]) -> Rule {
    Rule {
        names: names(list),
        action: "SCMP_ACT_ALLOW".into(),
        ..Rule::default()
    }
}

/// The default profile, in Docker's profile format.
#[must_use]
pub(crate) fn profile() -> Profile {
    let mut syscalls = vec![allow(ALLOWED)];
    // ptrace could bypass seccomp before 4.8; Docker allows it to everyone only from there.
    syscalls.push(Rule {
        includes: Filter {
            min_kernel: Some("4.8".into()),
            ..Filter::default()
        },
        ..allow(&["ptrace", "process_vm_readv", "process_vm_writev"])
    });
    for persona in PERSONAS {
        syscalls.push(Rule {
            args: vec![Arg::new(0, persona, 0, "SCMP_CMP_EQ")],
            ..allow(&["personality"])
        });
    }
    syscalls.push(Rule {
        args: vec![Arg::new(0, AF_VSOCK, 0, "SCMP_CMP_NE")],
        ..allow(&["socket"])
    });
    for (arches, list) in BY_ARCH {
        syscalls.push(Rule {
            includes: Filter {
                arches: names(arches),
                ..Filter::default()
            },
            ..allow(list)
        });
    }
    for (cap, list) in BY_CAPABILITY {
        syscalls.push(Rule {
            includes: Filter {
                caps: vec![(*cap).to_owned()],
                ..Filter::default()
            },
            ..allow(list)
        });
    }
    let no_admin = Filter {
        caps: vec!["CAP_SYS_ADMIN".into()],
        ..Filter::default()
    };
    // On s390 the flags are clone's second argument.
    let s390 = vec!["s390".to_owned(), "s390x".to_owned()];
    syscalls.push(Rule {
        args: vec![Arg::new(0, CLONE_NAMESPACE_FLAGS, 0, "SCMP_CMP_MASKED_EQ")],
        excludes: Filter {
            arches: s390.clone(),
            ..no_admin.clone()
        },
        ..allow(&["clone"])
    });
    syscalls.push(Rule {
        args: vec![Arg::new(1, CLONE_NAMESPACE_FLAGS, 0, "SCMP_CMP_MASKED_EQ")],
        includes: Filter {
            arches: s390,
            ..Filter::default()
        },
        excludes: no_admin.clone(),
        ..allow(&["clone"])
    });
    syscalls.push(Rule {
        names: names(&["clone3"]),
        action: "SCMP_ACT_ERRNO".into(),
        errno_ret: Some(ENOSYS),
        excludes: no_admin,
        ..Rule::default()
    });
    Profile {
        default_action: "SCMP_ACT_ERRNO".into(),
        default_errno_ret: Some(1),
        arch_map: vec![
            ArchMap::new("SCMP_ARCH_X86_64", &["SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
            ArchMap::new("SCMP_ARCH_AARCH64", &["SCMP_ARCH_ARM"]),
            ArchMap::new("SCMP_ARCH_PPC64LE", &["SCMP_ARCH_PPC64", "SCMP_ARCH_PPC"]),
            ArchMap::new("SCMP_ARCH_S390X", &["SCMP_ARCH_S390"]),
            ArchMap::new("SCMP_ARCH_RISCV64", &[]),
        ],
        syscalls,
        ..Profile::default()
    }
}
