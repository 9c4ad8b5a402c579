//! Mounts: bind and rbind, per-mount flags, recursive `rro`, propagation, tmpfs and tmpcopyup,
//! the special file systems, cgroup with and without a cgroup namespace, rootfs propagation,
//! read-only root, masked and read-only paths, pivot_root and `--no-pivot`.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use testutil::{MountGuard, parse_contest_mounts, parse_kv};

use super::common::{
    TempDir, add_ns, bundle, contest_any, mount_at, parse_raw_mounts, run_detached, run_ok, sh,
};

fn add_mount(spec: &mut Value, m: Value) {
    if let Some(a) = spec["mounts"].as_array_mut() {
        a.push(m);
    }
}

fn bind(src: &Path, dest: &str, opts: &[&str]) -> Value {
    json!({ "destination": dest, "type": "bind", "source": src, "options": opts })
}

/// A host dir with a file `top` and a tmpfs submount `sub` holding `inner`.
fn tree_with_submount(tag: &str) -> (TempDir, MountGuard) {
    let dir = TempDir::new(tag);
    write(&dir.join("top"), "top");
    std::fs::create_dir(dir.join("sub")).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let sub = MountGuard::tmpfs(&dir.join("sub"));
    write(&dir.join("sub/inner"), "inner");
    (dir, sub)
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

#[test]
fn bind_shows_the_tree_and_rbind_its_submounts() {
    if !testutil::require_root() {
        return;
    }
    let (dir, _sub) = tree_with_submount("bindsrc");
    let out = sh(
        "for f in /mnt/b/top /mnt/b/sub/inner /mnt/r/top /mnt/r/sub/inner; do \
         test -e $f && echo $f=yes || echo $f=no; done",
        |s| {
            add_mount(s, bind(dir.path(), "/mnt/b", &["bind"]));
            add_mount(s, bind(dir.path(), "/mnt/r", &["rbind"]));
        },
    );
    let kv = parse_kv(&out);
    assert_eq!(kv["/mnt/b/top"], "yes");
    assert_eq!(kv["/mnt/b/sub/inner"], "no", "bind must not take submounts");
    assert_eq!(kv["/mnt/r/top"], "yes");
    assert_eq!(kv["/mnt/r/sub/inner"], "yes", "rbind must take submounts");
}

#[test]
fn bind_flags_ro_nosuid_nodev_noexec_hold() {
    if !testutil::require_root() {
        return;
    }
    let dir = TempDir::new("flags");
    std::fs::copy(testutil::HOST_BUSYBOX, dir.join("true"))
        .unwrap_or_else(|e| panic!("copy busybox: {e}"));
    let out = sh(
        "/bin/contest mounts; /bin/contest write /mnt/o/new x; /mnt/o/true; echo exec_rc=$?; /mnt/w/true; echo exec_w_rc=$?",
        |s| {
            add_mount(
                s,
                bind(
                    dir.path(),
                    "/mnt/o",
                    &["bind", "ro", "nosuid", "nodev", "noexec"],
                ),
            );
            add_mount(s, bind(dir.path(), "/mnt/w", &["bind"]));
        },
    );
    let m = parse_contest_mounts(&out);
    let o = m
        .iter()
        .rfind(|m| m.point == "/mnt/o")
        .unwrap_or_else(|| panic!("{out}"));
    for opt in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(o.opts.iter().any(|x| x == opt), "{opt} missing: {o:?}");
    }
    let w = m
        .iter()
        .rfind(|m| m.point == "/mnt/w")
        .unwrap_or_else(|| panic!("{out}"));
    assert!(w.has("rw") && !w.has("noexec"), "{w:?}");
    let kv = parse_kv(&out);
    assert_eq!(kv["errname"], "EROFS");
    assert_eq!(kv["exec_rc"], "126", "noexec must refuse execve: {out}");
    assert_eq!(kv["exec_w_rc"], "0");
    assert!(!dir.join("new").exists());
}

#[test]
fn rro_makes_submounts_read_only_and_ro_only_the_top() {
    if !testutil::require_root() {
        return;
    }
    let (dir, _sub) = tree_with_submount("rro");
    let out = sh(
        "for f in /mnt/rro/x /mnt/rro/sub/x /mnt/ro/x /mnt/ro/sub/x; do \
         /bin/contest write $f v | sed \"s|^|$f.|\"; done",
        |s| {
            add_mount(s, bind(dir.path(), "/mnt/rro", &["rbind", "rro"]));
            add_mount(s, bind(dir.path(), "/mnt/ro", &["rbind", "ro"]));
        },
    );
    let kv = parse_kv(&out);
    assert_eq!(kv["/mnt/rro/x.errname"], "EROFS", "{out}");
    assert_eq!(kv["/mnt/rro/sub/x.errname"], "EROFS", "{out}");
    assert_eq!(kv["/mnt/ro/x.errname"], "EROFS", "{out}");
    assert!(out.contains("/mnt/ro/sub/x.ok"), "{out}");
    assert!(dir.join("sub/x").exists());
}

#[test]
fn tmpfs_with_options() {
    if !testutil::require_root() {
        return;
    }
    let out = sh("/bin/contest mounts; /bin/contest stat /mnt/t", |s| {
        add_mount(
            s,
            json!({ "destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosuid", "nodev", "size=1m", "mode=1730", "uid=1000", "gid=1001"] }),
        );
    });
    let m = parse_contest_mounts(&out);
    let t = m
        .iter()
        .rfind(|m| m.point == "/mnt/t")
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(t.fstype, "tmpfs");
    for opt in [
        "nosuid",
        "nodev",
        "size=1024k",
        "mode=1730",
        "uid=1000",
        "gid=1001",
    ] {
        assert!(t.has(opt), "{opt} missing: {t:?}");
    }
    let kv = parse_kv(&out);
    assert_eq!(kv["mode"], "1730");
    assert_eq!((kv["uid"].as_str(), kv["gid"].as_str()), ("1000", "1001"));
}

#[test]
fn tmpcopyup_copies_the_directory_into_the_tmpfs() {
    if !testutil::require_root() {
        return;
    }
    let b = bundle(
        &[
            "/bin/sh",
            "-c",
            "/bin/contest mounts; cat /etc/passwd; /bin/contest write /etc/new x",
        ],
        |s| {
            add_mount(
                s,
                json!({ "destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                        "options": ["tmpcopyup", "mode=755"] }),
            );
        },
    );
    let out = run_ok(&b, "copyup");
    let m = parse_contest_mounts(&out);
    let etc = m
        .iter()
        .rfind(|m| m.point == "/etc")
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(etc.fstype, "tmpfs");
    let passwd = std::fs::read_to_string(b.rootfs().join("etc/passwd")).unwrap_or_default();
    assert!(
        out.contains(&passwd),
        "the image's /etc/passwd was not copied: {out}"
    );
    // The tmpfs is writable although the root is read-only, and the image is untouched.
    assert!(out.lines().any(|l| l == "ok"), "{out}");
    assert!(!b.rootfs().join("etc/new").exists());
}

#[test]
fn proc_sysfs_devpts_mqueue_and_shm() {
    if !testutil::require_root() {
        return;
    }
    let out = sh("/bin/contest mounts; echo pid1=$(cat /proc/1/comm)", |_| {});
    let m = parse_contest_mounts(&out);
    let at = |p: &str| {
        m.iter()
            .rfind(|m| m.point == p)
            .unwrap_or_else(|| panic!("no {p}: {out}"))
    };
    assert_eq!(at("/proc").fstype, "proc");
    let sys = at("/sys");
    assert_eq!(sys.fstype, "sysfs");
    assert!(
        sys.has("ro") && sys.has("nosuid") && sys.has("noexec"),
        "{sys:?}"
    );
    let pts = at("/dev/pts");
    assert_eq!(pts.fstype, "devpts");
    for opt in ["nosuid", "noexec", "ptmxmode=666", "mode=620", "gid=5"] {
        assert!(pts.has(opt), "{opt}: {pts:?}");
    }
    let mq = at("/dev/mqueue");
    assert_eq!(mq.fstype, "mqueue");
    assert!(mq.has("nodev"), "{mq:?}");
    let shm = at("/dev/shm");
    assert_eq!(shm.fstype, "tmpfs");
    assert!(shm.has("size=65536k") && shm.has("noexec"), "{shm:?}");
    // /proc is the container's: its PID 1 is the container's shell.
    assert_eq!(parse_kv(&out)["pid1"], "sh");
}

const CGROUP_SCRIPT: &str = "cat /proc/self/cgroup | sed 's/^/cg./; s/:/=/'; /bin/contest mounts; \
                             echo procs=$(cat /sys/fs/cgroup/pids/cgroup.procs | tr '\\n' ' ')";

/// `<hierarchy id>:pids:<path>` of /proc/self/cgroup, as `cg.<id>=pids:<path>`.
fn pids_cgroup(out: &str) -> String {
    out.lines()
        .filter_map(|l| l.strip_prefix("cg."))
        .find_map(|l| l.split_once("=pids:").map(|(_, p)| p.to_owned()))
        .unwrap_or_else(|| panic!("no pids line: {out}"))
}

#[test]
fn cgroup_mount_without_a_cgroup_namespace_binds_the_containers_own() {
    if !testutil::require_root() {
        return;
    }
    let out = sh(CGROUP_SCRIPT, |_| {});
    let path = pids_cgroup(&out);
    assert_ne!(path, "/", "without a cgroupns the host path shows: {out}");
    let m = parse_contest_mounts(&out);
    let pids = m
        .iter()
        .rfind(|m| m.point == "/sys/fs/cgroup/pids")
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(pids.fstype, "cgroup");
    assert!(pids.has("ro"), "{pids:?}");
    // The mounted directory is the container's cgroup: it holds the container's PID 1.
    let procs = parse_kv(&out)["procs"].clone();
    assert!(procs.split(' ').any(|p| p == "1"), "{procs}");
}

#[test]
fn cgroup_mount_with_a_cgroup_namespace_shows_its_cgroup_as_root() {
    if !testutil::require_root() {
        return;
    }
    let out = sh(CGROUP_SCRIPT, |s| add_ns(s, "cgroup"));
    assert_eq!(pids_cgroup(&out), "/", "{out}");
    let procs = parse_kv(&out)["procs"].clone();
    assert!(procs.split(' ').any(|p| p == "1"), "{procs}");
    let m = parse_contest_mounts(&out);
    let pids = m
        .iter()
        .rfind(|m| m.point == "/sys/fs/cgroup/pids")
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(pids.fstype, "cgroup");
}

/// A bundle whose rootfs lives in a shared tmpfs of the host (the host's `/` here is private,
/// and a slave of a private mount is private): the container's root can then be a slave.
struct SharedRootfs {
    bundle: testutil::Bundle,
    // Dropped after the bundle, whose rootfs lives in it.
    _mount: MountGuard,
    dir: TempDir,
}

fn shared_rootfs(args: &[&str], propagation: &str) -> SharedRootfs {
    let dir = TempDir::new("sharedroot");
    let mount = MountGuard::tmpfs(dir.path());
    let st = Command::new("mount")
        .arg("--make-shared")
        .arg(dir.path())
        .status();
    assert!(st.is_ok_and(|s| s.success()), "mount --make-shared");
    let rootfs = dir.join("rootfs");
    testutil::busybox_rootfs(&rootfs);
    let bundle = bundle(args, |s| {
        s["root"]["path"] = json!(rootfs);
        s["linux"]["rootfsPropagation"] = json!(propagation);
    });
    SharedRootfs {
        bundle,
        _mount: mount,
        dir,
    }
}

#[test]
fn rootfs_propagation_shared_slave_private() {
    if !testutil::require_root() {
        return;
    }
    // "shared" is set after pivot_root on a root that was a slave until then (pivot_root refuses
    // shared mounts): it ends up shared and still a slave of the host.
    for (prop, shared, slave) in [
        ("shared", true, true),
        ("rslave", false, true),
        ("private", false, false),
        ("rprivate", false, false),
    ] {
        let s = shared_rootfs(&["/bin/contest", "read", "/proc/self/mountinfo"], prop);
        let out = run_ok(&s.bundle, "rprop");
        let mounts = parse_raw_mounts(&out);
        let root = mount_at(&mounts, "/");
        assert_eq!(
            (root.shared(), root.slave()),
            (shared, slave),
            "{prop}: {root:?}"
        );
        // The root is the rootfs directory of the shared tmpfs.
        assert_eq!(
            (root.fstype.as_str(), root.root.as_str()),
            ("tmpfs", "/rootfs")
        );
    }
}

#[test]
fn rootfs_propagation_unbindable() {
    if !testutil::require_root() {
        return;
    }
    // The rootfs lives on the host's "/" here, which "unbindable" makes unbindable before the
    // rootfs is bound onto itself: the runtime must make its parent mount private first.
    let b = bundle(&["/bin/contest", "read", "/proc/self/mountinfo"], |s| {
        s["linux"]["rootfsPropagation"] = json!("unbindable");
    });
    let out = run_ok(&b, "unbind");
    let mounts = parse_raw_mounts(&out);
    let root = mount_at(&mounts, "/");
    assert!(
        root.optional.iter().any(|o| o == "unbindable"),
        "/ is not unbindable: {root:?}"
    );
}

#[test]
fn rootfs_propagation_rslave_receives_host_mounts_and_private_does_not() {
    if !testutil::require_root() {
        return;
    }
    for (prop, want) in [("rslave", "yes"), ("rprivate", "no")] {
        let s = shared_rootfs(&["/bin/contest", "sleep", "600"], prop);
        std::fs::create_dir_all(s.dir.join("rootfs/mnt")).unwrap_or_else(|e| panic!("mkdir: {e}"));
        let (rt, id, _guard, _pid) = run_detached(&s.bundle, "rprop");
        let mnt = s.dir.join("rootfs/mnt");
        let _late = MountGuard::tmpfs(&mnt);
        write(&s.dir.join("rootfs/mnt/marker"), "m");
        let out = rt.ok(&[
            "exec",
            &id,
            "/bin/sh",
            "-c",
            "test -e /mnt/marker && echo seen=yes || echo seen=no",
        ]);
        let kv = parse_kv(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(kv["seen"], want, "{prop}");
    }
}

#[test]
fn mount_propagation_options_decide_what_reaches_the_container() {
    if !testutil::require_root() {
        return;
    }
    // A shared host tree: mounts made in it later propagate to its slaves, not to private copies.
    let dir = TempDir::new("propsrc");
    let _top = MountGuard::tmpfs(dir.path());
    let st = Command::new("mount")
        .arg("--make-shared")
        .arg(dir.path())
        .status();
    assert!(st.is_ok_and(|s| s.success()), "mount --make-shared");
    std::fs::create_dir(dir.join("new")).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let b = bundle(&["/bin/contest", "sleep", "600"], |s| {
        add_mount(s, bind(dir.path(), "/mnt/slave", &["rbind", "rslave"]));
        add_mount(s, bind(dir.path(), "/mnt/private", &["rbind", "rprivate"]));
    });
    let (rt, id, _guard, _pid) = run_detached(&b, "prop");
    let _new = MountGuard::tmpfs(&dir.join("new"));
    write(&dir.join("new/marker"), "m");
    let out = rt.ok(&[
        "exec",
        &id,
        "/bin/sh",
        "-c",
        "for d in slave private; do test -e /mnt/$d/new/marker && echo $d=yes || echo $d=no; \
         done; /bin/contest read /proc/self/mountinfo",
    ]);
    let out = String::from_utf8_lossy(&out.stdout);
    let kv = parse_kv(&out);
    assert_eq!(kv["slave"], "yes", "{out}");
    assert_eq!(kv["private"], "no", "{out}");
    let mounts = parse_raw_mounts(&out);
    assert!(mount_at(&mounts, "/mnt/slave").slave());
    let private = mount_at(&mounts, "/mnt/private");
    assert!(!private.slave() && !private.shared(), "{private:?}");
}

#[test]
fn readonly_root() {
    if !testutil::require_root() {
        return;
    }
    let kv = contest_any(&["write", "/new", "x"], |_| {});
    assert_eq!(
        kv.get("errname").map(String::as_str),
        Some("EROFS"),
        "{kv:?}"
    );
    let b = bundle(&["/bin/contest", "write", "/new", "x"], |s| {
        s["root"]["readonly"] = json!(false);
    });
    run_ok(&b, "rw");
    assert!(b.rootfs().join("new").exists());
}

#[test]
fn masked_and_readonly_paths() {
    if !testutil::require_root() {
        return;
    }
    let b = bundle(
        &[
            "/bin/sh",
            "-c",
            "/bin/contest stat /proc/keys | sed 's/^/keys./'; echo keys=$(cat /proc/keys | wc -c); \
             echo secret=$(cat /etc/secret); echo firmware=$(ls -A /sys/firmware | wc -l); \
             /bin/contest write /proc/sys/kernel/hostname x | sed 's/^/sys./'; \
             /bin/contest write /data/x y | sed 's/^/data./'; \
             /bin/contest write /new y | sed 's/^/root./'",
        ],
        |s| {
            s["root"]["readonly"] = json!(false);
            if let Some(a) = s["linux"]["maskedPaths"].as_array_mut() {
                a.push(json!("/etc/secret"));
            }
            if let Some(a) = s["linux"]["readonlyPaths"].as_array_mut() {
                a.push(json!("/data"));
            }
        },
    );
    write(&b.rootfs().join("etc/secret"), "hunter2");
    std::fs::create_dir(b.rootfs().join("data")).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let out = run_ok(&b, "mask");
    let kv = parse_kv(&out);
    // A masked file is /dev/null bound over it; a masked directory an empty read-only tmpfs.
    assert_eq!(kv["keys.type"], "char", "{out}");
    assert_eq!(kv["keys.rdev"], "1:3", "{out}");
    assert_eq!(kv["keys"], "0", "{out}");
    assert_eq!(kv["secret"], "", "{out}");
    assert_eq!(kv["firmware"], "0", "{out}");
    assert_eq!(kv["sys.errname"], "EROFS", "{out}");
    assert_eq!(kv["data.errname"], "EROFS", "{out}");
    assert!(out.lines().any(|l| l == "root.ok"), "{out}");
}

#[test]
fn pivot_root_hides_the_host_and_no_pivot_still_confines() {
    if !testutil::require_root() {
        return;
    }
    let script =
        "/bin/contest read /proc/self/mountinfo; echo passwd=$(grep -c '^user:x:1000' /etc/passwd)";
    let b = bundle(&["/bin/sh", "-c", script], |_| {});
    let out = run_ok(&b, "pivot");
    let bundle_path = b.path().display().to_string();
    let mounts = parse_raw_mounts(&out);
    assert_eq!(mounts.iter().filter(|m| m.point == "/").count(), 1, "{out}");
    assert!(
        !mounts.iter().any(|m| m.point.contains(&bundle_path)),
        "the old root shows after pivot_root: {out}"
    );
    assert_eq!(parse_kv(&out)["passwd"], "1");

    let (rt, id, _guard) = super::common::runtime("nopivot");
    let out = rt.cmd(&[
        OsStr::new("run"),
        OsStr::new("--no-pivot"),
        OsStr::new("--bundle"),
        b.path().as_os_str(),
        OsStr::new(&id),
    ]);
    assert!(out.status.success(), "{}", testutil::describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    // The root is the bundle's rootfs, moved onto / (MS_MOVE) and chrooted into.
    assert_eq!(parse_kv(&text)["passwd"], "1", "{text}");
    let mounts = parse_raw_mounts(&text);
    let root = mount_at(&mounts, "/");
    assert!(root.has("ro"), "{root:?}");
}
