//! End-to-end proof of berth-runtime's defences against four container-escape CVEs. Each test
//! attempts the attack and checks, on the real kernel, that it fails.
//!
//! - CVE-2019-5736 (`exe_overwrite`): overwrite the runtime binary through `/proc/<pid>/exe` of
//!   a process that runs the runtime inside the container: from the host and from a privileged
//!   container sharing the pid namespace, an fd of the exe reopened for writing after the
//!   runtime exits must fail, and the runtime's bytes stay the same.
//! - CVE-2024-21626 (`leaked_fds`): `process.cwd` / `exec --cwd` = `/proc/self/fd/N` must never
//!   put the process in a host directory; the container's processes hold only stdio.
//! - CVE-2021-30465 (`mount_race`): mount destinations that are (or are raced into) symlinks
//!   pointing out of the rootfs still mount inside it.
//! - CVE-2022-29162 (`inheritable_caps`): no inheritable capabilities unless the spec asks,
//!   so a non-root process gains nothing from a binary's file capabilities.

// A test target: helpers outside `#[test]` functions fail the test with `expect` too.
#![allow(clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

#[path = "runtime_security/exe_overwrite.rs"]
mod exe_overwrite;
#[path = "runtime_security/inheritable_caps.rs"]
mod inheritable_caps;
#[path = "runtime_security/leaked_fds.rs"]
mod leaked_fds;
#[path = "runtime_security/mount_race.rs"]
mod mount_race;
