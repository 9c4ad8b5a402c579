//! Test support for berth (dev-dependency only): root gate, fixture bundles with the static
//! `contest` helper, an OCI runtime driver, Drop guards for kernel objects, janitor, leak check.
//!
//! Every kernel object a test creates carries the [`PREFIX`] and the test process's pid in its
//! name ([`unique_name`]) so that [`janitor`] can remove what an earlier, killed run left behind
//! without touching the objects of test processes still running. Entry points: [`Bundle`],
//! [`Runtime`], [`ContainerGuard`], [`MountGuard`], [`NetnsGuard`], [`CgroupGuard`],
//! [`ChildGuard`], [`Berth`] (the `berth` binary under private roots), [`janitor`], [`leaks`]; image fixtures in [`images`] and
//! [`debian_minbase`]; [`Uml`] boots a User-Mode Linux guest (cgroup v2).

use std::sync::atomic::{AtomicU32, Ordering};

mod berth;
mod bundle;
mod contest;
mod debian;
mod guards;
pub mod images;
mod janitor;
mod mountinfo;
pub mod registry;
mod rootfs;
mod runtime;
#[allow(unsafe_code)]
mod sys;
mod uml;

pub use berth::{
    Berth, berth_binary, cgroup_dir, cgroups_named, eventually, mounts_under, processes_with,
    stdout, wait_until,
};
pub use bundle::{Bundle, default_spec};
pub use contest::{
    ContestMount, contest_binary, is_static_elf, parse_contest_mounts, parse_kv, target_dir,
    workspace_root,
};
pub use debian::{CACHE_DIR, debian_minbase};
pub use guards::{CgroupGuard, ChildGuard, MountGuard, NetnsEntered, NetnsGuard};
pub use janitor::{LINK_PREFIX, janitor, leaks, leaks_of, owner_pids, remove_cgroup, sweep};
pub use mountinfo::{MountEntry, mounts, parse_mountinfo, unescape_octal};
pub use rootfs::{HOST_BUSYBOX, busybox_rootfs};
pub use runtime::{
    COMMAND_TIMEOUT, ContainerGuard, Runtime, describe, runtime_binary, wait_timeout,
};
pub use uml::{GUEST_RESULTS, UML_BINARY, Uml, UmlConfig, UmlRun, linux_uml};

/// Prefix of every kernel object and directory a test creates.
pub const PREFIX: &str = "berth-test-";

/// Returns `true` when the test may go on. Without root the test is skipped with a reason on
/// stderr, except under `CI=true`, where missing privilege is a failure.
#[must_use]
pub fn require_root() -> bool {
    if sys::euid() == 0 {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("this test needs root, and CI=true forbids skipping it");
    }
    eprintln!("skipped: this test needs root");
    false
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call: `berth-test-<pid>-<n>-<tag>`.
#[must_use]
pub fn unique_name(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}{}-{n}-{tag}", std::process::id())
}

/// A network link name unique to this process, within the kernel's 15 bytes: `bt-<pid>-<n>`.
#[must_use]
pub fn unique_link_name() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) % 10_000;
    format!("{LINK_PREFIX}{}-{n}", std::process::id())
}
