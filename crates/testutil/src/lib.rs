//! Test support for berth (dev-dependency only): root gate, Drop guards, janitor, fixture bundles.
//!
//! Every kernel object a test creates carries the [`PREFIX`] in its name so that [`janitor`] can
//! remove what an earlier, killed run left behind.

pub mod uml;

use std::sync::atomic::{AtomicU32, Ordering};

/// Prefix of every kernel object and directory a test creates.
pub const PREFIX: &str = "berth-test-";

/// Returns `true` when the test may go on. Without root the test is skipped with a reason on
/// stderr, except under `CI=true`, where missing privilege is a failure.
#[must_use]
pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("this test needs root, and CI=true forbids skipping it");
    }
    eprintln!("skipped: this test needs root");
    false
}

/// A name unique to this process and call: `berth-test-<pid>-<n>-<tag>`.
#[must_use]
pub fn unique_name(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}{}-{n}-{tag}", std::process::id())
}
