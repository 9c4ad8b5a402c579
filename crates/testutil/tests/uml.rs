//! `testutil::Uml` boots a pure cgroup v2 guest, reports its script's status and results, and
//! leaves no UML process behind, also when it must kill a guest at the time limit. Needs root
//! (hostfs results are written as root) and Debian's `user-mode-linux`.

use std::time::Duration;

use testutil::{Uml, UmlConfig};

/// Pids of `linux.uml` processes whose command line names `dir`.
fn uml_processes(dir: &std::path::Path) -> Vec<String> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (cmd.contains("linux.uml") && cmd.contains(&needle))
                .then(|| format!("{}: {cmd}", e.file_name().to_string_lossy()))
        })
        .collect()
}

#[test]
fn uml_boot_reports_status_results_and_cleans_up() {
    if !testutil::require_root() {
        return;
    }
    let Some(uml) = Uml::new() else { return };
    let run = uml.boot(&UmlConfig::new(
        "stat -f -c %T /sys/fs/cgroup > $BERTH_UML_RESULTS/fstype; exit 3",
    ));
    assert_eq!(run.marker(), Some(3), "{}", run.console());
    assert!(!run.timed_out());
    assert_eq!(run.result_file("fstype").as_deref(), Some("cgroup2fs\n"));
    assert!(uml_processes(uml.dir()).is_empty());

    let mut cfg = UmlConfig::new("sleep 600");
    cfg.timeout = Duration::from_secs(3);
    let run = uml.boot(&cfg);
    assert!(run.timed_out(), "{}", run.console());
    assert_eq!(run.marker(), None);
    let left = uml_processes(uml.dir());
    assert!(
        left.is_empty(),
        "UML processes left after a timeout: {left:#?}"
    );
}
