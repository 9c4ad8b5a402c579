//! Runs the shared cgroup suite (`suite.rs`) unchanged on a pure cgroup v2 kernel: boots
//! User-Mode Linux with the host `/` as its root, mounts cgroup2 on `/sys/fs/cgroup` with the
//! memory, pids, cpu, io and cpuset controllers enabled, runs the suite binary filtered to
//! `suite_`, and checks the console marker and every case's result.
//!
//! Skips (with a message) when `linux.uml` is not installed, unless `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use testutil::{Uml, UmlConfig};

/// Every case of the suite; each must pass in the guest, none may be skipped.
const CASES: &[&str] = &[
    "suite_path_rules",
    "suite_lifecycle",
    "suite_update_values",
    "suite_memory_oom",
    "suite_pids_limit",
    "suite_cpu_quota",
    "suite_freeze_thaw",
    "suite_kill_all",
    "suite_devices",
    "suite_stats",
    "suite_unified_keys",
];

/// The suite test binary: `BERTH_SUITE_BIN`; else built (or found up to date) by the cargo
/// running this test, so it is never stale; else the newest `suite-<hash>` beside this binary.
fn suite_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_SUITE_BIN") {
        return PathBuf::from(p);
    }
    if let Some(p) = build_suite() {
        return p;
    }
    let me = std::env::current_exe().unwrap();
    let dir = me.parent().unwrap();
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let hash = name.strip_prefix("suite-")?;
            if hash.contains('.') {
                return None;
            }
            let meta = e.metadata().ok()?;
            let exec = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0;
            if !(meta.is_file() && exec) {
                return None;
            }
            Some((meta.modified().ok()?, e.path()))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p).unwrap_or_else(|| {
        panic!(
            "no suite-* test binary next to {}; build it with `cargo test -p cgroups --no-run` or set BERTH_SUITE_BIN",
            me.display()
        )
    })
}

/// Asks cargo (the `CARGO` that runs this test; it holds no lock while tests run) for the
/// suite binary, building it if needed.
fn build_suite() -> Option<PathBuf> {
    let cargo = std::env::var_os("CARGO")?;
    let out = std::process::Command::new("timeout")
        .arg("900")
        .arg(cargo)
        .args([
            "test",
            "-p",
            "cgroups",
            "--test",
            "suite",
            "--no-run",
            "--message-format=json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "building the suite failed ({}); looking for a built one",
            out.status
        );
        return None;
    }
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        (v["reason"] == "compiler-artifact" && v["target"]["name"] == "suite")
            .then(|| v["executable"].as_str().map(PathBuf::from))
            .flatten()
    })
}

fn guest_body(suite: &Path) -> String {
    format!(
        r#"for c in memory pids cpu io cpuset; do echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control || echo "cannot enable $c"; done
echo "controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
RUST_BACKTRACE=1 BERTH_CGROUP_ROOT=/sys/fs/cgroup {suite} suite_ --test-threads=1 --nocapture > "$BERTH_UML_RESULTS/suite.log" 2>&1
rc=$?
find /sys/fs/cgroup -name '*berth-test*' | head -n 5 > "$BERTH_UML_RESULTS/leftover"
exit $rc"#,
        suite = suite.display()
    )
}

#[test]
fn suite_on_cgroup_v2_under_uml() {
    let Some(uml) = Uml::new() else { return };
    let suite = suite_binary();
    let mut cfg = UmlConfig::new(guest_body(&suite));
    cfg.timeout = Duration::from_secs(300);
    let run = uml.boot(&cfg);
    let log = run.result_file("suite.log").unwrap_or_default();
    eprintln!("--- suite.log from the guest ---\n{log}");
    let context = format!(
        "--- console ---\n{}\n--- suite.log ---\n{log}",
        run.console()
    );
    assert!(!run.timed_out(), "UML guest timed out\n{context}");
    assert_eq!(
        run.marker(),
        Some(0),
        "suite failed in the guest\n{context}"
    );
    let leftover = run.result_file("leftover").unwrap_or_default();
    assert!(
        leftover.trim().is_empty(),
        "cgroups left behind: {leftover}\n{context}"
    );
    for case in CASES {
        assert!(
            log.lines()
                .any(|l| l.trim() == format!("test {case} ... ok")),
            "{case} did not pass in the guest\n{context}"
        );
        assert!(
            !log.contains(&format!("SUITE-SKIP: {case}:")),
            "{case} skipped a check in the guest\n{context}"
        );
    }
}
