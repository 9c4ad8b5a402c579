//! The fixtures work against a real runtime (runc) and the real kernel; needs root.

use std::fs;
use std::path::Path;
use std::process::Command;
use testutil::{
    Bundle, CgroupGuard, ChildGuard, MountGuard, NetnsGuard, Runtime, describe, leaks_of,
    parse_contest_mounts, parse_kv, unique_name,
};

#[test]
fn contest_is_static() {
    let bin = testutil::contest_binary();
    let out = Command::new("file").arg(bin).output();
    if let Ok(out) = out {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("statically linked") || text.contains("static-pie"),
            "{text}"
        );
    }
}

#[test]
fn busybox_rootfs_has_applets_users_and_contest() {
    let dir = tempfile::Builder::new().prefix(testutil::PREFIX).tempdir();
    let dir = dir.unwrap_or_else(|e| panic!("tempdir: {e}"));
    let root = dir.path().join("rootfs");
    let start = std::time::Instant::now();
    testutil::busybox_rootfs(&root);
    let first = start.elapsed();
    let again = dir.path().join("again");
    let start = std::time::Instant::now();
    testutil::busybox_rootfs(&again);
    let copy = start.elapsed();
    eprintln!("first rootfs {first:?}, copy {copy:?}");
    assert_eq!(
        fs::read_link(root.join("bin/sh")).ok(),
        Some("/bin/busybox".into())
    );
    assert!(fs::symlink_metadata(root.join("bin/busybox")).is_ok_and(|m| m.is_file()));
    assert!(fs::read_to_string(root.join("etc/passwd")).is_ok_and(|p| p.contains(":1000:")));
    assert!(root.join("bin/contest").is_file());
    for d in ["proc", "sys", "dev", "tmp", "root"] {
        assert!(root.join(d).is_dir(), "{d}");
    }
}

#[test]
fn runc_runs_contest_in_a_busybox_bundle() {
    if !testutil::require_root() {
        return;
    }
    let mut bundle = Bundle::busybox(&["/bin/contest", "info"]);
    bundle.edit(|s| s["hostname"] = "berth-fixture".into());
    let rt = Runtime::new("runc");
    let id = unique_name("runc");
    let guard = rt.guard(&id);
    let out = rt.run(&bundle, &id);
    assert!(out.status.success(), "{}", describe(&out));
    let info = parse_kv(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        info.get("uid").map(String::as_str),
        Some("0"),
        "{}",
        describe(&out)
    );
    assert_eq!(info["pid"], "1");
    assert_eq!(info["hostname"], "berth-fixture");
    assert_eq!(info["no_new_privs"], "1");
    // CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE
    assert_eq!(info["cap.eff"], "0000000020000420");
    assert_eq!(info["rlimit.NOFILE"], "1024:1024");
    assert_eq!(info["cwd"], "/");

    let bundle = Bundle::busybox(&["/bin/contest", "mounts"]);
    let id2 = unique_name("runc");
    let _guard2 = rt.guard(&id2);
    let out = rt.run(&bundle, &id2);
    assert!(out.status.success(), "{}", describe(&out));
    let mounts = parse_contest_mounts(&String::from_utf8_lossy(&out.stdout));
    let root = mounts.iter().find(|m| m.point == "/");
    assert!(root.is_some_and(|m| m.has("ro")), "{mounts:#?}");
    assert!(
        mounts
            .iter()
            .any(|m| m.point == "/proc" && m.fstype == "proc")
    );
    drop(guard);
    assert!(leaks_of(&id).is_empty(), "{:?}", leaks_of(&id));
}

#[test]
fn guards_remove_what_they_hold() {
    if !testutil::require_root() {
        return;
    }
    let dir = std::env::temp_dir().join(unique_name("mnt"));
    fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let mount = MountGuard::tmpfs(&dir);
    assert!(!leaks_of(&dir.to_string_lossy()).is_empty());
    drop(mount);
    assert!(leaks_of(&dir.to_string_lossy()).is_empty());
    fs::remove_dir(&dir).unwrap_or_else(|e| panic!("rmdir: {e}"));

    let ns = NetnsGuard::new();
    let out = ns.ok(&["ip", "-o", "link", "show"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("lo:"));
    let host_ns = fs::read_link("/proc/thread-self/ns/net").ok();
    {
        let _inside = ns.enter();
        let here = fs::read_link("/proc/thread-self/ns/net").ok();
        assert_ne!(here, host_ns);
    }
    assert_eq!(fs::read_link("/proc/thread-self/ns/net").ok(), host_ns);
    let name = ns.name().to_owned();
    drop(ns);
    assert!(!Path::new("/run/netns").join(&name).exists());

    let cg = CgroupGuard::new("pids", "guard");
    let mut child = ChildGuard::spawn(Command::new("sleep").arg("100"));
    fs::write(cg.path().join("cgroup.procs"), child.id().to_string())
        .unwrap_or_else(|e| panic!("move child: {e}"));
    let path = cg.path().to_path_buf();
    drop(cg);
    assert!(!path.exists(), "cgroup {} still there", path.display());
    assert!(
        child.child().wait().is_ok_and(|s| !s.success()),
        "the child was killed"
    );
}

#[test]
fn janitor_sweeps_leftovers_of_dead_runs_only() {
    if !testutil::require_root() {
        return;
    }
    testutil::janitor();
    // Names of a test process that cannot be alive (pid_max is at most 2^22).
    let dead = "berth-test-99999999";
    let tmp = std::env::temp_dir();
    let leaked_dir = tmp.join(format!("{dead}-{}-leak", std::process::id()));
    fs::create_dir(&leaked_dir).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::mem::forget(MountGuard::tmpfs(&leaked_dir));
    let cg_path =
        Path::new("/sys/fs/cgroup/pids").join(format!("{dead}-{}-leak", std::process::id()));
    std::mem::forget(CgroupGuard::adopt(&cg_path));
    fs::create_dir(&cg_path).unwrap_or_else(|e| panic!("mkdir cgroup: {e}"));
    let mut child = ChildGuard::spawn(Command::new("sleep").arg("100"));
    fs::write(cg_path.join("cgroup.procs"), child.id().to_string())
        .unwrap_or_else(|e| panic!("move child: {e}"));
    // And one of ours, which must survive.
    let mine = tmp.join(unique_name("live"));
    fs::create_dir(&mine).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let live = MountGuard::tmpfs(&mine);
    // Every test process's first janitor sweeps a dead run's leftovers, so one running now may
    // have taken some of these already: what is found must be this test's, and no more.
    let found = leaks_of(dead);
    let me = format!("{dead}-{}-leak", std::process::id());
    assert!(
        found.len() <= 2 && found.iter().all(|l| l.contains(&me)),
        "{found:?}"
    );

    testutil::sweep();

    assert!(leaks_of(dead).is_empty(), "{:?}", leaks_of(dead));
    assert!(!leaked_dir.exists() && !cg_path.exists());
    assert!(
        child.child().wait().is_ok_and(|s| !s.success()),
        "the leaked task was killed"
    );
    assert!(
        !leaks_of(&mine.to_string_lossy()).is_empty(),
        "a live run's mount was swept"
    );
    drop(live);
    fs::remove_dir(&mine).unwrap_or_else(|e| panic!("rmdir: {e}"));
}
