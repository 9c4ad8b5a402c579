//! Teardown of the private `--root`/`--run-root` pair a `berth` end-to-end test runs under.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Mount points at or below any of `dirs`.
#[must_use]
pub fn mounts_under(dirs: &[&Path]) -> Vec<PathBuf> {
    crate::mounts()
        .into_iter()
        .map(|m| m.point)
        .filter(|p| dirs.iter().any(|d| p.starts_with(d)))
        .collect()
}

/// Removes every container of `berth --root root --run-root run_root` (`rm -f`), then any
/// mount left below `scratch` or `run_root` (deepest first), then both directories.
pub fn remove_berth_roots(berth: &Path, root: &Path, run_root: &Path, scratch: &Path) {
    let berth_cmd = |args: &[&str]| {
        Command::new(berth)
            .arg("--root")
            .arg(root)
            .arg("--run-root")
            .arg(run_root)
            .args(args)
            .stdin(Stdio::null())
            .output()
    };
    if let Ok(ids) = berth_cmd(&["ps", "-aq", "--no-trunc"]) {
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let _ = berth_cmd(&["rm", "-f", id]);
        }
    }
    let mut mounts = mounts_under(&[scratch, run_root]);
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for m in mounts {
        let _ = Command::new("umount").arg("-l").arg(&m).status();
    }
    let _ = std::fs::remove_dir_all(scratch);
    let _ = std::fs::remove_dir_all(run_root);
}
