//! The shared cgroup suite. Every case takes the cgroup root and works on whatever layout it
//! finds there: run here on the v1/hybrid host by `cargo test`, and unchanged on a pure cgroup
//! v2 kernel under User-Mode Linux by `uml_v2.rs` (which runs this binary filtered to `suite_`).
//!
//! Cases use real processes: a helper (this binary re-run in helper mode) is moved into the test
//! cgroup and then told to allocate, fork, spin or open devices. Every wait polls with a
//! deadline.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use cgroups::{CgroupError, Hierarchy, ManagerOptions, new_manager};
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
};
use support::{Helper, TestCgroup, skip, wait_until};

const MIB: i64 = 1 << 20;
const T: Duration = Duration::from_secs(20);

/// Not a test: the entry point of helper processes (does nothing unless `BERTH_CG_HELPER` is set).
#[test]
fn helper_entry() {
    if let Ok(mode) = std::env::var(support::HELPER_ENV) {
        support::helper_main(&mode);
    }
}

macro_rules! suite {
    ($($test:ident => $case:path),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                if !testutil::require_root() {
                    return;
                }
                $case(&support::root());
            }
        )*
    };
}

suite! {
    suite_path_rules => path_rules,
    suite_lifecycle => lifecycle,
    suite_update_values => update_values,
    suite_memory_oom => memory_oom,
    suite_pids_limit => pids_limit,
    suite_cpu_quota => cpu_quota,
    suite_freeze_thaw => freeze_thaw,
    suite_kill_all => kill_all,
    suite_devices => devices,
    suite_stats => stats,
    suite_unified_keys => unified_keys,
}

fn resources(f: impl FnOnce(LinuxResourcesBuilder) -> LinuxResourcesBuilder) -> LinuxResources {
    f(LinuxResourcesBuilder::default())
        .build()
        .expect("resources")
}

/// Paths follow runc's cgroupfs rules; systemd and `..` are refused; nothing is created.
fn path_rules(root: &Path) {
    let opts = |p: Option<&str>, systemd| ManagerOptions {
        root: root.to_owned(),
        cgroups_path: p.map(str::to_owned),
        container_id: "berth-test-id".into(),
        systemd,
        caller_cgroups: None,
    };
    let err = new_manager(&opts(None, true)).expect_err("systemd must be refused");
    assert!(matches!(err, CgroupError::SystemdUnsupported));
    assert_eq!(err.to_string(), "systemd cgroup driver is not supported");
    assert!(matches!(
        new_manager(&opts(Some("/a/../../etc"), false)),
        Err(CgroupError::InvalidPath { .. })
    ));
    assert!(matches!(
        new_manager(&opts(Some("../x"), false)),
        Err(CgroupError::InvalidPath { .. })
    ));
    let m = new_manager(&opts(Some("/berth-test-abs/x"), false)).expect("absolute");
    for (ctrl, dir) in m.paths() {
        assert!(dir.starts_with(root), "{ctrl}: {}", dir.display());
        assert!(
            dir.ends_with("berth-test-abs/x"),
            "{ctrl}: {}",
            dir.display()
        );
        assert!(!dir.exists(), "paths() must not create {}", dir.display());
    }
    // Default: the container id, below our own cgroup (runc's relative placement).
    let m = new_manager(&opts(None, false)).expect("default");
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    for (ctrl, dir) in m.paths() {
        assert!(dir.ends_with("berth-test-id"), "{ctrl}: {}", dir.display());
        let key = if ctrl.is_empty() {
            String::new()
        } else {
            ctrl.clone()
        };
        let mine = own
            .lines()
            .find_map(|l| {
                let mut p = l.splitn(3, ':');
                let (_, c, path) = (p.next()?, p.next()?, p.next()?);
                (c.split(',').any(|c| c == key) || (key.is_empty() && c.is_empty()))
                    .then(|| path.to_owned())
            })
            .unwrap_or_else(|| "/".into());
        assert!(
            dir.to_string_lossy().contains(mine.trim_start_matches('/')),
            "{ctrl}: {} not below {mine}",
            dir.display()
        );
    }
    match Hierarchy::detect(root).unwrap() {
        Hierarchy::V2 => assert_eq!(m.paths().keys().collect::<Vec<_>>(), vec![""]),
        Hierarchy::Hybrid => {
            assert!(m.paths().contains_key("") && m.paths().contains_key("memory"))
        }
        Hierarchy::V1 => assert!(!m.paths().contains_key("")),
    }
}

/// apply creates every directory and moves the task; destroy removes everything, twice.
fn lifecycle(root: &Path) {
    let cg = TestCgroup::new(root, "life");
    assert_eq!(cg.mgr.hierarchy(), Hierarchy::detect(root).unwrap());
    cg.mgr.apply(0).unwrap();
    for dir in cg.mgr.paths().values() {
        assert!(dir.is_dir(), "{} not created", dir.display());
    }
    let mut h = Helper::spawn("idle");
    cg.mgr.apply(h.pid()).unwrap();
    h.go();
    h.expect("ready", T);
    assert!(cg.mgr.pids().unwrap().contains(&h.pid()));
    for dir in cg.mgr.paths().values() {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
        assert!(
            procs.lines().any(|l| l == h.pid().to_string()),
            "pid not in {}",
            dir.display()
        );
    }
    // A nested cgroup (as a container with its own sub-cgroups would make) goes too.
    let sub = cg.dir("pids").join("nested");
    std::fs::create_dir(&sub).unwrap();
    // With a task still inside, destroy gives up after its bounded wait and says so.
    let t0 = Instant::now();
    let busy = cg.mgr.destroy();
    assert!(
        matches!(busy, Err(CgroupError::RemoveBusy { .. })),
        "{busy:?}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "destroy waited {:?}",
        t0.elapsed()
    );
    assert!(cg.mgr.pids().unwrap().contains(&h.pid()));
    drop(h);
    assert!(wait_until(T, || cg.mgr.pids().unwrap().is_empty()));
    cg.mgr.destroy().unwrap();
    for dir in cg.mgr.paths().values() {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    cg.mgr.destroy().expect("destroy is idempotent");
}

/// set writes what it is given, and update (a second set) changes it.
fn update_values(root: &Path) {
    let cg = TestCgroup::new(root, "update");
    let r = resources(|b| {
        b.memory(
            LinuxMemoryBuilder::default()
                .limit(64 * MIB)
                .build()
                .unwrap(),
        )
        .cpu(
            LinuxCpuBuilder::default()
                .shares(512u64)
                .quota(50_000i64)
                .period(100_000u64)
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(100i64).build().unwrap())
    });
    cg.mgr.set(&r).unwrap();
    if cg.is_v2() {
        assert_eq!(cg.read("", "memory.max"), (64 * MIB).to_string());
        assert_eq!(
            cg.read("", "cpu.weight"),
            cgroups::convert::shares_to_weight(512).unwrap().to_string()
        );
        assert_eq!(cg.read("", "cpu.max"), "50000 100000");
        assert_eq!(cg.read("", "pids.max"), "100");
    } else {
        assert_eq!(
            cg.read("memory", "memory.limit_in_bytes"),
            (64 * MIB).to_string()
        );
        assert_eq!(cg.read("cpu", "cpu.shares"), "512");
        assert_eq!(cg.read("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(cg.read("pids", "pids.max"), "100");
    }
    let r = resources(|b| {
        b.memory(LinuxMemoryBuilder::default().limit(-1i64).build().unwrap())
            .pids(LinuxPidsBuilder::default().limit(0i64).build().unwrap())
    });
    cg.mgr.set(&r).unwrap();
    assert_eq!(cg.read("pids", "pids.max"), "max");
    let limit = cg.mgr.stats().unwrap().memory.usage.limit;
    assert!(limit > (1 << 40), "memory limit not lifted: {limit}");
    // Invalid values are refused before anything is written.
    let bad = resources(|b| {
        b.memory(
            LinuxMemoryBuilder::default()
                .limit(64 * MIB)
                .swap(MIB)
                .build()
                .unwrap(),
        )
    });
    assert!(matches!(
        cg.mgr.set(&bad),
        Err(CgroupError::InvalidValue { .. })
    ));
}

/// A task over the memory limit is OOM-killed with SIGKILL and the kill is counted.
fn memory_oom(root: &Path) {
    let cg = TestCgroup::new(root, "oom");
    cg.mgr.apply(0).unwrap();
    let mut mem = LinuxMemoryBuilder::default().limit(32 * MIB);
    // No swap either, where the kernel accounts it, or the task would swap instead of dying.
    let swap_file = if cg.is_v2() {
        "memory.swap.max"
    } else {
        "memory.memsw.limit_in_bytes"
    };
    if cg.dir("memory").join(swap_file).exists() {
        mem = mem.swap(32 * MIB);
    }
    cg.mgr
        .set(&resources(|b| b.memory(mem.build().unwrap())))
        .unwrap();
    assert_eq!(cg.mgr.oom_kill_count().unwrap(), 0);
    let mut h = Helper::spawn("alloc:512");
    cg.mgr.apply(h.pid()).unwrap();
    h.go();
    let status = h.wait_exit(Duration::from_secs(60));
    assert_eq!(
        Helper::killed_by(status),
        Some(libc::SIGKILL),
        "helper ended with {status:?}"
    );
    assert!(cg.mgr.oom_kill_count().unwrap() >= 1);
    let s = cg.mgr.stats().unwrap();
    assert_eq!(s.memory.usage.limit, 32 * MIB as u64);
    assert!(s.memory.event_count.oom_kill >= 1);
}

/// pids.max holds a fork bomb: spawns fail with EAGAIN and the count stays within the limit.
fn pids_limit(root: &Path) {
    let cg = TestCgroup::new(root, "pids");
    cg.mgr
        .set(&resources(|b| {
            b.pids(LinuxPidsBuilder::default().limit(8i64).build().unwrap())
        }))
        .unwrap();
    let mut h = Helper::spawn("forks:64");
    cg.mgr.apply(h.pid()).unwrap();
    h.go();
    let line = h.expect("forks", T);
    let field = |k: &str| -> i64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {line:?}"))
    };
    assert_eq!(field("errno="), i64::from(libc::EAGAIN), "{line}");
    assert!(field("ok=") < 8, "{line}");
    let s = cg.mgr.stats().unwrap();
    assert!(
        s.pids.current <= 8 && s.pids.current >= 2,
        "pids.current {}",
        s.pids.current
    );
    assert_eq!(s.pids.limit, 8);
    h.close_stdin();
    h.wait_exit(T);
}

fn cpu_usage(cg: &TestCgroup) -> u64 {
    cg.mgr.stats().unwrap().cpu.usage.total
}

/// A CFS quota throttles a spinning task and bounds its CPU time.
fn cpu_quota(root: &Path) {
    let cg = TestCgroup::new(root, "cpu");
    let cpu = LinuxCpuBuilder::default()
        .quota(10_000i64)
        .period(100_000u64)
        .build()
        .unwrap();
    cg.mgr.set(&resources(|b| b.cpu(cpu))).unwrap();
    let mut h = Helper::spawn("spin");
    cg.mgr.apply(h.pid()).unwrap();
    h.go();
    h.expect("ready", T);
    assert!(
        wait_until(T, || cg
            .mgr
            .stats()
            .unwrap()
            .cpu
            .throttling
            .throttled_periods
            > 0),
        "never throttled: {:?}",
        cg.mgr.stats().unwrap().cpu
    );
    // Measure over a window of at least a second: 10% quota, allow up to 40%.
    let (u0, t0) = (cpu_usage(&cg), Instant::now());
    assert!(wait_until(Duration::from_secs(5), || t0.elapsed()
        >= Duration::from_secs(1)));
    let (du, dt) = (cpu_usage(&cg) - u0, t0.elapsed());
    assert!(du > 0, "spinner made no progress");
    assert!(
        (du as f64) < dt.as_nanos() as f64 * 0.4,
        "used {du} ns in {dt:?} under a 10% quota"
    );
    let s = cg.mgr.stats().unwrap();
    assert!(s.cpu.throttling.periods >= s.cpu.throttling.throttled_periods);
    assert!(s.cpu.throttling.throttled_time > 0);
}

/// freeze stops all progress until thaw.
fn freeze_thaw(root: &Path) {
    let cg = TestCgroup::new(root, "freeze");
    cg.mgr.apply(0).unwrap();
    let mut h = Helper::spawn("spin");
    cg.mgr.apply(h.pid()).unwrap();
    h.go();
    h.expect("ready", T);
    assert!(!cg.mgr.is_frozen().unwrap());
    assert!(wait_until(T, || cpu_usage(&cg) > 0));
    cg.mgr.freeze().unwrap();
    assert!(cg.mgr.is_frozen().unwrap());
    let u0 = cpu_usage(&cg);
    let t0 = Instant::now();
    // Observation window: the frozen spinner must gain no CPU time in 300 ms.
    let gained = wait_until(Duration::from_millis(300), || cpu_usage(&cg) != u0);
    assert!(!gained, "frozen task progressed within {:?}", t0.elapsed());
    cg.mgr.thaw().unwrap();
    assert!(!cg.mgr.is_frozen().unwrap());
    assert!(
        wait_until(T, || cpu_usage(&cg) > u0),
        "thawed task made no progress"
    );
    // kill_all on a frozen cgroup leaves it frozen state alone but kills the tasks.
    cg.mgr.freeze().unwrap();
    cg.mgr.kill_all(libc::SIGKILL).unwrap();
    if cg.mgr.is_frozen().unwrap() {
        cg.mgr.thaw().unwrap();
    }
    let status = h.wait_exit(T);
    assert_eq!(Helper::killed_by(status), Some(libc::SIGKILL));
}

/// kill_all signals every task (cgroup.kill on v2 for SIGKILL; freeze/signal/thaw otherwise).
fn kill_all(root: &Path) {
    let cg = TestCgroup::new(root, "kill");
    let mut a = Helper::spawn("idle");
    let mut b = Helper::spawn("idle");
    cg.mgr.apply(a.pid()).unwrap();
    cg.mgr.apply(b.pid()).unwrap();
    a.go();
    b.go();
    a.expect("ready", T);
    b.expect("ready", T);
    cg.mgr.kill_all(libc::SIGTERM).unwrap();
    assert_eq!(Helper::killed_by(a.wait_exit(T)), Some(libc::SIGTERM));
    assert_eq!(Helper::killed_by(b.wait_exit(T)), Some(libc::SIGTERM));
    let mut c = Helper::spawn("idle");
    cg.mgr.apply(c.pid()).unwrap();
    c.go();
    c.expect("ready", T);
    cg.mgr.kill_all(libc::SIGKILL).unwrap();
    assert_eq!(Helper::killed_by(c.wait_exit(T)), Some(libc::SIGKILL));
    assert!(wait_until(T, || cg.mgr.pids().unwrap().is_empty()));
    assert!(
        !cg.mgr.is_frozen().unwrap_or(false),
        "kill_all left the cgroup frozen"
    );
}

fn dev_rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .typ(typ)
        .access(access);
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    b.build().unwrap()
}

/// Runs an `open` helper in the cgroup and returns (null result, zero result).
fn open_both(cg: &TestCgroup, null: &Path, zero: &Path) -> (String, String) {
    let mut h = Helper::spawn(&format!("open:{},{}", null.display(), zero.display()));
    cg.mgr.apply(h.pid()).unwrap();
    h.go();
    let a = h.expect("open", T);
    let b = h.expect("open", T);
    h.expect("open-done", T);
    (a, b)
}

/// The device filter (v1 devices lists / v2 eBPF) denies a node it does not allow.
fn devices(root: &Path) {
    let cg = TestCgroup::new(root, "dev");
    let tmp = tempfile::Builder::new()
        .prefix(testutil::PREFIX)
        .tempdir()
        .unwrap();
    let null = tmp.path().join("null");
    let zero = tmp.path().join("zero");
    for (p, minor) in [(&null, 3), (&zero, 5)] {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            p,
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, minor),
        )
        .unwrap();
    }
    let rules = vec![
        dev_rule(false, LinuxDeviceType::A, None, None, "rwm"),
        dev_rule(true, LinuxDeviceType::C, Some(1), Some(3), "rwm"),
    ];
    cg.mgr
        .set(&resources(|b| b.devices(rules.clone())))
        .unwrap();
    if !cg.is_v2() {
        assert_eq!(cg.read("devices", "devices.list"), "c 1:3 rwm");
    }
    // Re-applying the same rules (an `update` resending them) keeps them in force.
    cg.mgr
        .set(&resources(|b| b.devices(rules.clone())))
        .unwrap();
    let (a, b) = open_both(&cg, &null, &zero);
    assert!(a.ends_with(" ok"), "allowed node refused: {a}");
    assert!(
        b.ends_with(&format!("errno={}", libc::EPERM)),
        "denied node opened: {b}"
    );

    // Update: allow /dev/zero's numbers read-only as well.
    let mut more = rules;
    more.push(dev_rule(true, LinuxDeviceType::C, Some(1), Some(5), "r"));
    cg.mgr.set(&resources(|b| b.devices(more))).unwrap();
    let (a, b) = open_both(&cg, &null, &zero);
    assert!(
        a.ends_with(" ok") && b.ends_with(" ok"),
        "after update: {a} / {b}"
    );
    if cg.is_v2() {
        assert_eq!(
            cgroups::attached_device_programs(&cg.dir("")).unwrap(),
            1,
            "old filter not replaced"
        );
    }
}

/// stats returns sane figures in runc's shape.
fn stats(root: &Path) {
    let cg = TestCgroup::new(root, "stats");
    cg.mgr
        .set(&resources(|b| {
            b.pids(LinuxPidsBuilder::default().limit(50i64).build().unwrap())
        }))
        .unwrap();
    let mut h = Helper::spawn("alloc:16");
    cg.mgr.apply(h.pid()).unwrap();
    h.go();
    h.expect("alloc-done", T);
    let s = cg.mgr.stats().unwrap();
    assert!(
        s.memory.usage.usage >= 8 * MIB as u64,
        "memory usage {}",
        s.memory.usage.usage
    );
    assert!(s.memory.usage.limit > 0);
    assert!(!s.memory.raw.is_empty());
    assert!(
        s.pids.current >= 1 && s.pids.current <= 50,
        "pids {}",
        s.pids.current
    );
    assert_eq!(s.pids.limit, 50);
    assert!(s.cpu.usage.total > 0);
    assert!(s.cpu.usage.user + s.cpu.usage.kernel > 0 || s.cpu.usage.total < 20_000_000);
    let v = serde_json::to_value(&s).unwrap();
    for k in ["cpu", "memory", "pids", "blkio", "hugetlb"] {
        assert!(v.get(k).is_some(), "missing {k} in {v}");
    }
    assert!(v["memory"]["usage"]["usage"].as_u64().unwrap() > 0);
    assert_eq!(cg.mgr.oom_kill_count().unwrap(), 0);
    if !cg.is_v2() && s.cpu.usage.percpu.is_empty() {
        skip("suite_stats", "no cpuacct.usage_percpu");
    }
}

/// Raw `unified` keys: written on v2 and to the cgroup2 part of a hybrid host, refused on pure
/// v1; keys naming no interface file, or a path, are refused everywhere.
fn unified_keys(root: &Path) {
    let cg = TestCgroup::new(root, "unified");
    cg.mgr.apply(0).unwrap();
    let unified = |pairs: &[(&str, &str)]| {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        resources(|b| b.unified(map))
    };
    let r = unified(&[("cgroup.max.descendants", "5")]);
    if cg.mgr.hierarchy() == Hierarchy::V1 {
        assert!(matches!(
            cg.mgr.set(&r),
            Err(CgroupError::Unsupported { .. })
        ));
        return;
    }
    cg.mgr.set(&r).unwrap();
    assert_eq!(cg.read("", "cgroup.max.descendants"), "5");
    assert!(matches!(
        cg.mgr.set(&unified(&[("nosuch.knob", "1")])),
        Err(CgroupError::Unsupported { .. })
    ));
    assert!(matches!(
        cg.mgr.set(&unified(&[("../cgroup.max.depth", "1")])),
        Err(CgroupError::InvalidValue { .. })
    ));
    if cg.is_v2() {
        // unified is applied last, so it wins over the typed field.
        let r = resources(|b| {
            b.memory(
                LinuxMemoryBuilder::default()
                    .limit(64 * MIB)
                    .build()
                    .unwrap(),
            )
            .unified(HashMap::from([(
                "memory.max".to_owned(),
                (96 * MIB).to_string(),
            )]))
        });
        cg.mgr.set(&r).unwrap();
        assert_eq!(cg.read("", "memory.max"), (96 * MIB).to_string());
    }
}
