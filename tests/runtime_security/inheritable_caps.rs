//! CVE-2022-29162: a runtime that fills the inheritable set lets a non-root process gain
//! capabilities by exec'ing a binary with file-inheritable capabilities. Without `inheritable`
//! in the spec the set must be empty, and such an exec must yield no capabilities.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use serde_json::json;
use testutil::{Bundle, Runtime};

use crate::common::{cid, kv, run_detached};

const NONE: &str = "0000000000000000";

/// Copies contest to `<rootfs>/bin/contest-fcap` with file capabilities CAP_KILL and
/// CAP_NET_BIND_SERVICE in the inheritable set and the effective bit (`setcap ...+ei`).
fn fcap_binary(bundle: &Bundle) {
    let path = bundle.rootfs().join("bin/contest-fcap");
    // A copy, not the hard link into the rootfs cache.
    fs::copy(testutil::contest_binary(), &path).expect("copy contest");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = std::process::Command::new("setcap")
        .arg("cap_kill,cap_net_bind_service+ei")
        .arg(&path)
        .output()
        .expect("run setcap (libcap2-bin)");
    assert!(out.status.success(), "setcap: {}", testutil::describe(&out));
}

#[test]
fn no_inheritable_caps_and_no_gain_through_file_caps() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    let mut bundle = Bundle::busybox(&["sleep", "1000"]);
    fcap_binary(&bundle);
    // no_new_privs would block file capabilities by itself; the defence must not rely on it.
    bundle.edit(|s| {
        s["process"]["noNewPrivileges"] = json!(false);
        let caps = &mut s["process"]["capabilities"];
        assert!(
            caps.get("inheritable").is_none(),
            "the spec sets no inheritable caps"
        );
    });
    let id = cid("caps");
    let _g = rt.guard(&id);
    run_detached(&rt, &bundle, &id);

    // Root, as the spec says: the listed caps, none inheritable.
    let info = kv(&rt.ok(&["exec", &id, "contest", "info"]));
    assert_eq!(info["cap.inh"], NONE, "{info:?}");
    assert_eq!(
        info["cap.eff"],
        // CAP_AUDIT_WRITE (29), CAP_KILL (5), CAP_NET_BIND_SERVICE (10).
        "0000000020000420",
        "{info:?}"
    );

    // A non-root user: nothing effective or permitted, before or after exec'ing a binary with
    // inheritable file caps (with CapInh = 0, pI & fI is empty).
    for prog in ["contest", "contest-fcap"] {
        let info = kv(&rt.ok(&["exec", "--user", "1000:1000", &id, prog, "info"]));
        for set in ["cap.inh", "cap.prm", "cap.eff", "cap.amb"] {
            assert_eq!(info[set], NONE, "{prog} as uid 1000: {set} = {}", info[set]);
        }
    }
    // Through a shell too: exec of a binary from a non-root process.
    let out = rt.ok(&[
        "exec",
        "--user",
        "1000:1000",
        &id,
        "sh",
        "-c",
        "exec contest-fcap info",
    ]);
    let info = kv(&out);
    assert_eq!(
        (info["cap.prm"].as_str(), info["cap.eff"].as_str()),
        (NONE, NONE),
        "{info:?}"
    );

    // The init too.
    let pid = crate::common::init_pid(&rt, &id);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let inh = status
        .lines()
        .find_map(|l| l.strip_prefix("CapInh:"))
        .map(str::trim);
    assert_eq!(inh, Some(NONE), "init's inheritable set");
}
