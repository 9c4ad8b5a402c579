//! The monitor's unsafe operations: adopting inherited descriptors and dropping the page-table
//! entries of its code once start-up is over.

use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};

/// Takes ownership of descriptor `n`, inherited across `execve` and named in the invocation.
/// `None` when it is not open.
pub fn adopt(n: i32) -> Option<OwnedFd> {
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

/// Drops the page-table entries of this process's read-only file mappings that hold no
/// private copy of a page (its own code and constants and those of the C library and the
/// dynamic loader; not the relocated, copied-on-write parts). Start-up touched far more of them
/// than the idle loop uses; the kernel faults back in, from the page cache, only what the loop
/// needs, so the resident set stays a few hundred KiB.
pub(crate) fn trim_code() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let mut candidate: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let Some(first) = f.next() else { continue };
        if let Some(kb) = first.strip_prefix("Anonymous:").map(|_| f.next()) {
            // A mapping with private (copied) pages keeps them: they are not in the file.
            if let (Some((a, b)), Some("0")) = (candidate.take(), kb) {
                drop_range(a, b);
            }
            continue;
        }
        if first.ends_with(':') {
            continue;
        }
        // A mapping header: "start-end perms offset dev inode [path]".
        candidate = None;
        let (Some(perms), Some(_off), Some(_dev), Some(inode)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        // inode 0: anonymous or special ([vdso], [vsyscall]): leave those alone.
        if !matches!(perms, "r-xp" | "r--p") || inode == "0" {
            continue;
        }
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            candidate = Some((a, b));
        }
    }
}

fn drop_range(a: usize, b: usize) {
    // SAFETY: [a, b) is a private, read-only file mapping of this process as listed by the
    // kernel, with no anonymous (copied) page: every resident page is a clean copy of the file,
    // so MADV_DONTNEED only unmaps them and the next access faults the same bytes back in from
    // the page cache. Nothing can write to it (no write permission), so no data is lost.
    let _ = unsafe {
        rustix::mm::madvise(
            a as *mut core::ffi::c_void,
            b.saturating_sub(a),
            rustix::mm::Advice::LinuxDontNeed,
        )
    };
}
