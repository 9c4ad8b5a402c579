//! Namespaces: new ones differ from the host's, joined ones are the same, time offsets shift the
//! clocks, user namespace mappings turn container root into a host id.

use std::os::unix::fs::MetadataExt;

use serde_json::json;

use super::common::{add_ns, bundle, contest, host_ns, info, ns_of, run_detached, run_ok};

const ALL: [&str; 8] = [
    "pid", "network", "ipc", "uts", "mount", "cgroup", "time", "user",
];

/// The `/proc/self/ns` name of an OCI namespace type.
fn proc_name(t: &str) -> &str {
    match t {
        "network" => "net",
        "mount" => "mnt",
        other => other,
    }
}

fn id_map(host: u32) -> serde_json::Value {
    json!([{ "containerID": 0, "hostID": host, "size": 65536 }])
}

#[test]
fn all_eight_new_namespaces_differ_from_the_hosts() {
    if !testutil::require_root() {
        return;
    }
    let kv = info(|s| {
        s["linux"]["namespaces"] = ALL.iter().map(|t| json!({ "type": t })).collect();
        s["linux"]["uidMappings"] = id_map(0);
        s["linux"]["gidMappings"] = id_map(0);
    });
    for t in ALL {
        let name = proc_name(t);
        let inside = &kv[&format!("ns.{name}")];
        assert!(inside.starts_with(&format!("{name}:[")), "{name}: {inside}");
        assert_ne!(*inside, host_ns(name), "{t} namespace is the host's");
    }
    // A new pid namespace makes the program its PID 1.
    assert_eq!(kv["pid"], "1");
}

#[test]
fn without_a_namespace_the_host_one_is_kept() {
    if !testutil::require_root() {
        return;
    }
    // runc's default spec has no cgroup, time or user namespace.
    let kv = info(|_| {});
    for name in ["cgroup", "time", "user"] {
        assert_eq!(kv[&format!("ns.{name}")], host_ns(name), "{name}");
    }
    for name in ["pid", "net", "ipc", "uts", "mnt"] {
        assert_ne!(kv[&format!("ns.{name}")], host_ns(name), "{name}");
    }
}

#[test]
fn joining_by_path_gives_the_same_namespace() {
    if !testutil::require_root() {
        return;
    }
    let netns = testutil::NetnsGuard::new();
    // A first container whose ipc and uts namespaces the second joins.
    let first = bundle(&["/bin/contest", "sleep", "600"], |s| {
        s["hostname"] = json!("berth-first");
    });
    let (_rt, _id, _guard, pid) = run_detached(&first, "first");
    let ipc = std::path::PathBuf::from(format!("/proc/{pid}/ns/ipc"));
    let uts = std::path::PathBuf::from(format!("/proc/{pid}/ns/uts"));
    let (want_ipc, want_uts) = (ns_of("ipc", &ipc), ns_of("uts", &uts));
    let netns_path = netns.path();
    let kv = info(|s| {
        s["linux"]["namespaces"] = json!([
            { "type": "pid" }, { "type": "mount" },
            { "type": "network", "path": netns_path },
            { "type": "ipc", "path": ipc },
            { "type": "uts", "path": uts },
        ]);
        // The joined uts namespace keeps the first container's hostname.
        s.as_object_mut().map(|o| o.remove("hostname"));
    });
    assert_eq!(kv["ns.net"], ns_of("net", &netns.path()));
    assert_eq!(kv["ns.ipc"], want_ipc);
    assert_eq!(kv["ns.uts"], want_uts);
    assert_eq!(kv["hostname"], "berth-first");
    assert_ne!(kv["ns.mnt"], host_ns("mnt"));
}

#[test]
fn a_bad_namespace_path_fails_create_naming_the_field() {
    if !testutil::require_root() {
        return;
    }
    let b = bundle(&["/bin/true"], |s| {
        s["linux"]["namespaces"][1] =
            json!({ "type": "network", "path": "/run/netns/berth-test-none" });
    });
    super::common::create_fails(&b, "linux.namespaces[1].path");
}

fn now_ns(clock: libc::clockid_t) -> u64 {
    let ts = rustix::time::clock_gettime(match clock {
        libc::CLOCK_BOOTTIME => rustix::time::ClockId::Boottime,
        _ => rustix::time::ClockId::Monotonic,
    });
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

#[test]
fn time_namespace_offsets_shift_monotonic_and_boottime() {
    if !testutil::require_root() {
        return;
    }
    const DAY: u64 = 86_400;
    let (mono_off, boot_off) = (10 * DAY, 20 * DAY);
    let before = (now_ns(libc::CLOCK_MONOTONIC), now_ns(libc::CLOCK_BOOTTIME));
    let kv = contest(&["clock"], |s| {
        add_ns(s, "time");
        s["linux"]["timeOffsets"] = json!({
            "monotonic": { "secs": mono_off, "nanosecs": 0 },
            "boottime": { "secs": boot_off, "nanosecs": 0 },
        });
    });
    let after = (now_ns(libc::CLOCK_MONOTONIC), now_ns(libc::CLOCK_BOOTTIME));
    let num = |k: &str| kv[k].parse::<u64>().unwrap_or_else(|e| panic!("{k}: {e}"));
    let (mono, boot) = (num("monotonic_ns"), num("boottime_ns"));
    let ns = 1_000_000_000;
    assert!(
        (before.0 + mono_off * ns..=after.0 + mono_off * ns).contains(&mono),
        "monotonic {mono} not host + {mono_off}s ({before:?}..{after:?})"
    );
    assert!(
        (before.1 + boot_off * ns..=after.1 + boot_off * ns).contains(&boot),
        "boottime {boot} not host + {boot_off}s ({before:?}..{after:?})"
    );
}

#[test]
fn time_offsets_without_a_time_namespace_are_refused() {
    if !testutil::require_root() {
        return;
    }
    let b = bundle(&["/bin/true"], |s| {
        s["linux"]["timeOffsets"] = json!({ "monotonic": { "secs": 1 } });
    });
    super::common::create_fails(&b, "linux.timeOffsets");
}

#[test]
fn user_namespace_maps_container_root_to_a_host_id() {
    if !testutil::require_root() {
        return;
    }
    const HOST: u32 = 100_000;
    let b = bundle(
        &[
            "/bin/sh",
            "-c",
            "/bin/contest write /tmp/by-root x >/dev/null && /bin/contest info && \
             echo uid_map=$(cat /proc/self/uid_map) && echo gid_map=$(cat /proc/self/gid_map)",
        ],
        |s| {
            s["root"]["readonly"] = json!(false);
            add_ns(s, "user");
            s["linux"]["uidMappings"] = id_map(HOST);
            s["linux"]["gidMappings"] = id_map(HOST + 1);
        },
    );
    // The mapped root must be able to create files in the rootfs's /tmp.
    let tmp = b.rootfs().join("tmp");
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o1777))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", tmp.display()));
    let kv = testutil::parse_kv(&run_ok(&b, "userns"));
    assert_eq!((kv["uid"].as_str(), kv["euid"].as_str()), ("0", "0"));
    assert_eq!(kv["gid"], "0");
    assert_ne!(kv["ns.user"], host_ns("user"));
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(squash(&kv["uid_map"]), format!("0 {HOST} 65536"));
    assert_eq!(squash(&kv["gid_map"]), format!("0 {} 65536", HOST + 1));
    let md = std::fs::metadata(tmp.join("by-root")).unwrap_or_else(|e| panic!("stat: {e}"));
    assert_eq!((md.uid(), md.gid()), (HOST, HOST + 1));
}
