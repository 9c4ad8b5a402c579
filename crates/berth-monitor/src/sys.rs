//! The monitor's unsafe operations: adopting inherited descriptors and dropping the page-table
//! entries of its code once start-up is over.

use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};

/// Takes ownership of descriptor `n`, inherited across `execve` and named in the invocation.
/// `None` when it is not open.
pub(crate) fn adopt(n: i32) -> Option<OwnedFd> {
    if n < 0 {
        return None;
    }
    // SAFETY: the borrow lasts only for the F_GETFD probe; if `n` is not open the call fails
    // with EBADF and nothing else happens.
    let probe = unsafe { BorrowedFd::borrow_raw(n) };
    rustix::io::fcntl_getfd(probe).ok()?;
    // SAFETY: `n` is open (probed above) and was handed to this process by `berth monitor`
    // for it alone: the invocation names each descriptor once, and `adopt` is called once per
    // named descriptor, so no other owner closes it.
    Some(unsafe { OwnedFd::from_raw_fd(n) })
}

/// Drops the page-table entries of this process's executable, never-written file mappings
/// (`r-xp`: its own code and that of the C library and the dynamic loader). Start-up touched
/// far more code than the idle loop runs; the kernel faults back in, from the page cache, only
/// what the loop uses, so the resident set stays a few hundred KiB.
pub(crate) fn trim_code() {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some("r-xp"), Some(_off), Some(_dev), Some(inode)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        // inode 0: anonymous or special ([vdso], [vsyscall]): leave those alone.
        if inode == "0" {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
            continue;
        };
        // SAFETY: [a, b) is a private, read-execute file mapping of this process as listed by
        // the kernel; it is never written (no text relocations), so its pages are clean copies
        // of the file and MADV_DONTNEED only unmaps them: the next access faults the same bytes
        // back in from the page cache. No Rust object lives in it.
        let _ = unsafe {
            rustix::mm::madvise(
                a as *mut core::ffi::c_void,
                b.saturating_sub(a),
                rustix::mm::Advice::LinuxDontNeed,
            )
        };
    }
}
