//! CVE-2024-21626: a descriptor of a host directory leaked into the container process, reached
//! through `process.cwd` (or `exec --cwd`) = `/proc/self/fd/N`, puts the process's working
//! directory outside its root. Each attempt must either fail or land inside the container, and
//! the container's processes must hold no descriptors beyond stdio.

use std::path::Path;

use serde_json::json;
use testutil::{Bundle, Runtime};

use crate::common::{cid, kv, run_detached, stderr};

/// Whether a `cwd=` that contest printed is a directory inside the container root: an absolute
/// path (getcwd of a directory outside the root is "(unreachable)/...") that exists in the rootfs
/// and is not some host-only directory.
fn assert_inside(rootfs: &Path, cwd: &str, what: &str) {
    assert!(
        cwd.starts_with('/') && !cwd.contains("unreachable"),
        "{what}: working directory outside the container: {cwd}"
    );
    assert!(
        rootfs.join(cwd.trim_start_matches('/')).is_dir(),
        "{what}: cwd {cwd} is not a directory of the container's rootfs"
    );
}

#[test]
fn process_cwd_through_proc_self_fd_never_reaches_the_host() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    let mut bundle = Bundle::busybox(&["contest", "info"]);
    let mut refused = 0;
    for n in 3..20 {
        bundle.edit(|s| s["process"]["cwd"] = json!(format!("/proc/self/fd/{n}")));
        let id = cid("cwdfd");
        let _g = rt.guard(&id);
        let out = rt.run(&bundle, &id);
        if !out.status.success() {
            refused += 1;
            assert_eq!(
                out.status.code(),
                Some(1),
                "fd {n}: {}",
                testutil::describe(&out)
            );
            continue;
        }
        let info = kv(&out);
        assert_inside(
            &bundle.rootfs(),
            &info["cwd"],
            &format!("process.cwd fd {n}"),
        );
        assert_eq!(
            info["fds"], "0,1,2",
            "fd {n}: the program inherited descriptors"
        );
    }
    eprintln!("process.cwd=/proc/self/fd/N: {refused} of 17 refused, the rest inside the root");
}

#[test]
fn exec_cwd_through_proc_self_fd_never_reaches_the_host() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    let bundle = Bundle::busybox(&["sleep", "1000"]);
    let id = cid("execcwd");
    let _g = rt.guard(&id);
    run_detached(&rt, &bundle, &id);
    for n in 3..20 {
        let cwd = format!("/proc/self/fd/{n}");
        let out = rt.cmd(&["exec", "--cwd", &cwd, &id, "contest", "info"]);
        if !out.status.success() {
            assert_eq!(
                out.status.code(),
                Some(1),
                "fd {n}: {}",
                testutil::describe(&out)
            );
            assert!(!stderr(&out).trim().is_empty());
            continue;
        }
        let info = kv(&out);
        assert_inside(
            &bundle.rootfs(),
            &info["cwd"],
            &format!("exec --cwd fd {n}"),
        );
        assert_eq!(
            info["fds"], "0,1,2",
            "exec fd {n}: the program inherited descriptors"
        );
    }
}

#[test]
fn container_processes_hold_only_stdio() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    let bundle = Bundle::busybox(&["contest", "info"]);
    let id = cid("fds");
    let _g = rt.guard(&id);
    let out = rt.run(&bundle, &id);
    assert!(out.status.success(), "{}", testutil::describe(&out));
    let info = kv(&out);
    assert_eq!(info["fds"], "0,1,2", "init inherited descriptors: {info:?}");
    assert_eq!(info["cwd"], "/");

    let bundle = Bundle::busybox(&["sleep", "1000"]);
    let id = cid("execfds");
    let _g = rt.guard(&id);
    run_detached(&rt, &bundle, &id);
    let info = kv(&rt.ok(&["exec", &id, "contest", "info"]));
    assert_eq!(
        info["fds"], "0,1,2",
        "exec'd process inherited descriptors: {info:?}"
    );
    // The same from the host, for init: nothing but 0-2 in /proc/<pid>/fd.
    let pid = crate::common::init_pid(&rt, &id);
    let mut fds: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("init fds")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    assert_eq!(fds, [0, 1, 2], "container init holds more than stdio");
}
