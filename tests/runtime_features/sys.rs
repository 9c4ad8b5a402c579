//! The seccomp user-notification ioctls the notify test answers with (linux/seccomp.h). The
//! only module of these tests with `unsafe`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `struct seccomp_data`.
#[repr(C)]
#[derive(Default, Debug, Clone, Copy)]
pub(crate) struct SeccompData {
    pub(crate) nr: i32,
    pub(crate) arch: u32,
    pub(crate) instruction_pointer: u64,
    pub(crate) args: [u64; 6],
}

/// `struct seccomp_notif`.
#[repr(C)]
#[derive(Default, Debug, Clone, Copy)]
pub(crate) struct SeccompNotif {
    pub(crate) id: u64,
    pub(crate) pid: u32,
    pub(crate) flags: u32,
    pub(crate) data: SeccompData,
}

/// `struct seccomp_notif_resp`.
#[repr(C)]
#[derive(Default, Debug, Clone, Copy)]
struct SeccompNotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

// _IOWR('!', 0, struct seccomp_notif) and _IOWR('!', 1, struct seccomp_notif_resp).
const SECCOMP_IOCTL_NOTIF_RECV: libc::c_ulong = 0xc050_2100;
const SECCOMP_IOCTL_NOTIF_SEND: libc::c_ulong = 0xc018_2101;

/// Waits for the next notification on a seccomp listener.
pub(crate) fn notif_recv(listener: BorrowedFd<'_>) -> io::Result<SeccompNotif> {
    let mut n = SeccompNotif::default();
    // SAFETY: `n` is a zeroed struct seccomp_notif (the kernel requires zero) of exactly the
    // size the ioctl number encodes; the kernel writes only into it; `listener` is a live fd.
    let r = unsafe { libc::ioctl(listener.as_raw_fd(), SECCOMP_IOCTL_NOTIF_RECV, &mut n) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n)
}

/// Answers notification `id`: the system call fails with `errno`.
pub(crate) fn notif_fail(listener: BorrowedFd<'_>, id: u64, errno: i32) -> io::Result<()> {
    let mut resp = SeccompNotifResp {
        id,
        val: 0,
        error: -errno,
        flags: 0,
    };
    // SAFETY: `resp` is a struct seccomp_notif_resp of exactly the size the ioctl number
    // encodes, which the kernel only reads; `listener` is a live fd.
    let r = unsafe { libc::ioctl(listener.as_raw_fd(), SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
