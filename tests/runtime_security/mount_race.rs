//! CVE-2021-30465: a mount destination that is, or is raced into, a symlink pointing outside
//! the rootfs must still be mounted inside it. The runtime resolves destinations with
//! openat2(RESOLVE_IN_ROOT) and mounts on the resolved descriptor, so a symlink swapped in
//! between check and mount cannot redirect the mount.
//!
//! A mount that escaped would land on a host path in the container's mount namespace and
//! vanish with the old root at pivot_root: so each test finds its tagged tmpfs (by source) in
//! the container's mountinfo, at a path inside the container, and nowhere on the host.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use testutil::{Bundle, MountEntry, Runtime, parse_mountinfo};

use crate::common::{cid, init_pid, stderr};

/// The mounts of `pid`'s mount namespace, paths relative to its root.
fn mounts_of(pid: i32) -> Vec<MountEntry> {
    parse_mountinfo(&fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo"))
}

fn host_has_source(tag: &str) -> Vec<MountEntry> {
    testutil::mounts()
        .into_iter()
        .filter(|m| m.source == tag)
        .collect()
}

fn tmpfs_at(dest: &str, tag: &str) -> serde_json::Value {
    json!({"destination": dest, "type": "tmpfs", "source": tag, "options": ["size=64k"]})
}

#[test]
fn symlinked_destinations_resolve_inside_the_rootfs() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    let mut bundle = Bundle::busybox(&["sleep", "1000"]);
    let escape = testutil::unique_name("escape");
    symlink("/etc", bundle.rootfs().join("etclink")).expect("symlink");
    symlink("../../..", bundle.rootfs().join("up")).expect("symlink");
    let (etc_tag, up_tag) = (testutil::unique_name("etc"), testutil::unique_name("up"));
    let up_dest = format!("/up/{escape}");
    bundle.edit(|s| {
        let m = s["mounts"].as_array_mut().expect("mounts");
        m.push(tmpfs_at("/etclink", &etc_tag));
        m.push(tmpfs_at(&up_dest, &up_tag));
    });
    let id = cid("symdest");
    let _g = rt.guard(&id);
    crate::common::create(&rt, &bundle, &id, &[]);
    let pid = init_pid(&rt, &id);
    let mounts = mounts_of(pid);
    let point = |tag: &str| {
        mounts
            .iter()
            .find(|m| m.source == tag)
            .map(|m| m.point.clone())
            .unwrap_or_else(|| panic!("mount {tag} is not in the container: {mounts:#?}"))
    };
    assert_eq!(
        point(&etc_tag),
        Path::new("/etc"),
        "/etclink -> /etc is the container's /etc"
    );
    assert_eq!(
        point(&up_tag),
        Path::new("/").join(&escape),
        "../../.. stops at the root"
    );
    assert!(
        bundle.rootfs().join(&escape).is_dir(),
        "the mount point was made in the rootfs"
    );
    assert!(
        !Path::new("/").join(&escape).exists(),
        "a mount point was made in the host's /"
    );
    for tag in [&etc_tag, &up_tag] {
        assert!(
            host_has_source(tag).is_empty(),
            "{tag} is mounted on the host"
        );
    }
    let _ = fs::remove_dir(Path::new("/").join(&escape));
}

#[test]
fn racing_a_destination_with_a_symlink_never_mounts_outside() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    let mut bundle = Bundle::busybox(&["sleep", "1000"]);
    let victim = tempfile::Builder::new()
        .prefix(&testutil::unique_name("victim"))
        .tempdir()
        .expect("victim dir");
    fs::write(victim.path().join("marker"), "host").expect("marker");
    let race = bundle.rootfs().join("race");
    fs::create_dir_all(race.join("d")).expect("race/d");
    symlink(victim.path(), race.join("l")).expect("race/l");
    let tag = testutil::unique_name("race");
    bundle.edit(|s| {
        s["mounts"]
            .as_array_mut()
            .expect("mounts")
            .push(tmpfs_at("/race/d", &tag));
    });

    // Swap race/d and race/l as fast as possible while containers are created.
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let swapper = {
        let (stop, swaps, race) = (stop.clone(), swaps.clone(), race.clone());
        std::thread::spawn(move || {
            let (d, l) = (race.join("d"), race.join("l"));
            while !stop.load(Ordering::Relaxed) {
                let cwd = rustix::fs::CWD;
                if rustix::fs::renameat_with(cwd, &d, cwd, &l, rustix::fs::RenameFlags::EXCHANGE)
                    .is_ok()
                {
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let stop_guard = StopOnDrop(stop.clone());

    let deadline = Instant::now() + Duration::from_secs(3);
    let (mut created, mut refused) = (0, 0);
    let b = bundle.path().to_string_lossy().into_owned();
    while Instant::now() < deadline {
        let id = cid("race");
        let _g = rt.guard(&id);
        let out = rt.cmd(&["create", "--bundle", &b, &id]);
        if !out.status.success() {
            refused += 1;
            assert_eq!(out.status.code(), Some(1), "{}", testutil::describe(&out));
            assert_eq!(
                stderr(&out).trim_end().lines().count(),
                1,
                "{}",
                stderr(&out)
            );
            continue;
        }
        created += 1;
        let mounts = mounts_of(init_pid(&rt, &id));
        let ours: Vec<_> = mounts.iter().filter(|m| m.source == tag).collect();
        assert_eq!(
            ours.len(),
            1,
            "the raced mount escaped the container: {mounts:#?}"
        );
        let point = ours[0].point.to_string_lossy();
        // Inside: the directory (under whichever name the swap left it), or the symlink's
        // target resolved inside the root.
        let victim_in_root = victim.path().to_string_lossy().into_owned();
        assert!(
            point.starts_with("/race/") || point == victim_in_root,
            "the raced mount is at {point}"
        );
        assert!(
            host_has_source(&tag).is_empty(),
            "the raced mount is on the host"
        );
        rt.ok(&["delete", &id]);
    }
    drop(stop_guard);
    swapper.join().expect("swapper");
    let swaps = swaps.load(Ordering::Relaxed);
    eprintln!("{created} created, {refused} refused, {swaps} swaps");
    assert!(
        created > 0,
        "no container was created during the race ({refused} refused)"
    );
    assert!(swaps > 100, "the swapper barely ran ({swaps} swaps)");
    let entries: Vec<_> = fs::read_dir(victim.path())
        .expect("victim")
        .flatten()
        .collect();
    assert_eq!(entries.len(), 1, "the host victim dir changed: {entries:?}");
    assert_eq!(
        fs::read_to_string(victim.path().join("marker")).expect("marker"),
        "host"
    );
}

/// Stops the swapper even when an assertion fails mid-loop.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
