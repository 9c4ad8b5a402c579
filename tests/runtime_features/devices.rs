//! Devices: nodes from `linux.devices`, the default /dev nodes, /dev symlinks, a usable ptmx.

use serde_json::json;
use testutil::parse_kv;

use super::common::sh;

fn stat_script(paths: &[&str]) -> String {
    paths
        .iter()
        .map(|p| format!("/bin/contest stat {p} | sed 's|^|{p}.|'"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn spec_devices_are_created_with_type_numbers_mode_and_owner() {
    if !testutil::require_root() {
        return;
    }
    let script = format!(
        "{}; /bin/contest open /dev/sub/berth-zero rw | sed 's/^/open./'; \
         echo read=$(head -c 3 /dev/sub/berth-zero | wc -c); \
         /bin/contest open /dev/berth-null w | sed 's/^/denied./'",
        stat_script(&["/dev/berth-null", "/dev/sub/berth-zero", "/dev/berth-loop"])
    );
    let out = sh(&script, |s| {
        s["linux"]["devices"] = json!([
            { "path": "/dev/berth-null", "type": "c", "major": 1, "minor": 3,
              "fileMode": 0o640, "uid": 1000, "gid": 1001 },
            { "path": "/dev/sub/berth-zero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o600 },
            { "path": "/dev/berth-loop", "type": "b", "major": 7, "minor": 200, "fileMode": 0o660,
              "gid": 6 },
        ]);
    });
    let kv = parse_kv(&out);
    let f = |p: &str, k: &str| kv[&format!("{p}.{k}")].clone();
    assert_eq!(f("/dev/berth-null", "type"), "char", "{out}");
    assert_eq!(f("/dev/berth-null", "rdev"), "1:3");
    assert_eq!(f("/dev/berth-null", "mode"), "0640");
    assert_eq!(f("/dev/berth-null", "uid"), "1000");
    assert_eq!(f("/dev/berth-null", "gid"), "1001");
    assert_eq!(f("/dev/sub/berth-zero", "rdev"), "1:5");
    assert_eq!(f("/dev/sub/berth-zero", "mode"), "0600");
    assert_eq!(f("/dev/sub/berth-zero", "uid"), "0");
    assert_eq!(f("/dev/berth-loop", "type"), "block");
    assert_eq!(f("/dev/berth-loop", "rdev"), "7:200");
    assert_eq!(f("/dev/berth-loop", "mode"), "0660");
    assert_eq!(f("/dev/berth-loop", "gid"), "6");
    // The device cgroup lets the container use what it was given.
    assert!(out.lines().any(|l| l == "open.ok"), "{out}");
    assert_eq!(kv["read"], "3");
    // Root without CAP_DAC_OVERRIDE is "other" for a 0640 node of 1000:1001.
    assert_eq!(kv["denied.errname"], "EACCES", "{out}");
}

#[test]
fn default_dev_nodes_symlinks_and_ptmx() {
    if !testutil::require_root() {
        return;
    }
    let nodes = [
        ("/dev/null", "1:3"),
        ("/dev/zero", "1:5"),
        ("/dev/full", "1:7"),
        ("/dev/random", "1:8"),
        ("/dev/urandom", "1:9"),
        ("/dev/tty", "5:0"),
    ];
    let links = [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
        ("/dev/ptmx", "pts/ptmx"),
    ];
    let mut paths: Vec<&str> = nodes.iter().map(|(p, _)| *p).collect();
    paths.extend(links.iter().map(|(p, _)| *p));
    let script = format!(
        "{}; /bin/contest open /dev/ptmx rw | sed 's/^/ptmx./'; \
         head -c 4 /dev/zero | wc -c | sed 's/^/zero=/'; echo x > /dev/full; echo full_rc=$?",
        stat_script(&paths)
    );
    let out = sh(&script, |_| {});
    let kv = parse_kv(&out);
    for (p, rdev) in nodes {
        assert_eq!(kv[&format!("{p}.type")], "char", "{p}: {out}");
        assert_eq!(kv[&format!("{p}.rdev")], rdev, "{p}");
        assert_eq!(kv[&format!("{p}.mode")], "0666", "{p}");
    }
    for (p, target) in links {
        assert_eq!(kv[&format!("{p}.type")], "symlink", "{p}: {out}");
        assert_eq!(kv[&format!("{p}.target")], target, "{p}");
    }
    // Opening /dev/ptmx allocates a pty in the container's own devpts instance.
    assert!(out.lines().any(|l| l == "ptmx.ok"), "{out}");
    assert_eq!(kv["zero"], "4");
    assert_ne!(
        kv["full_rc"], "0",
        "writing /dev/full must fail with ENOSPC"
    );
}
