//! The Debian minbase fixture: a rootfs tarball made by `debootstrap --variant=minbase` from the
//! mirror apt already uses, cached in [`CACHE_DIR`] so it is built once a month, not per run.
//!
//! debootstrap needs its mirror (here `deb.debian.org` through apt's configuration); when it is
//! not installed or the mirror cannot be reached, [`debian_minbase`] returns `None` with the
//! reason and the tests that want the image skip.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Where built fixtures are kept between runs.
pub const CACHE_DIR: &str = "/var/cache/berth-test";

/// The cached `debian-<suite>-minbase-<YYYYMM>.tar` (a rootfs tarball for `berth import`),
/// building it first if this month's is missing. Concurrent callers wait on a lock file and
/// build once; older tarballs are removed after a new one is made.
///
/// # Errors
/// The reason it is not available (no debootstrap, mirror unreachable, ...).
pub fn debian_minbase() -> Result<PathBuf, String> {
    static RESULT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    RESULT.get_or_init(build_cached).clone()
}

fn build_cached() -> Result<PathBuf, String> {
    let suite = host_suite();
    let cache = Path::new(CACHE_DIR);
    let key = format!("debian-{suite}-minbase-{}", year_month());
    let tarball = cache.join(format!("{key}.tar"));
    if tarball.is_file() {
        return Ok(tarball);
    }
    if !Path::new("/usr/sbin/debootstrap").exists() {
        return Err("debootstrap is not installed (apt-get install debootstrap)".into());
    }
    fs::create_dir_all(cache).map_err(|e| format!("create {CACHE_DIR}: {e}"))?;
    let lock_path = cache.join(".lock");
    let lock = fs::File::create(&lock_path).map_err(|e| format!("create {lock_path:?}: {e}"))?;
    crate::sys::lock_exclusive(&lock).map_err(|e| format!("lock {lock_path:?}: {e}"))?;
    if tarball.is_file() {
        return Ok(tarball);
    }
    let build = cache.join(format!(".build-{}", std::process::id()));
    let part = cache.join(format!(".{key}.tar.part-{}", std::process::id()));
    let result = debootstrap(&suite, &build, &part, &tarball);
    let _ = fs::remove_dir_all(&build);
    let _ = fs::remove_file(&part);
    result?;
    for e in fs::read_dir(cache).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("debian-") && name.ends_with(".tar") && e.path() != tarball {
            let _ = fs::remove_file(e.path());
        }
    }
    Ok(tarball)
}

fn debootstrap(suite: &str, build: &Path, part: &Path, tarball: &Path) -> Result<(), String> {
    let mirror = apt_mirror();
    let out = Command::new("debootstrap")
        .args(["--variant=minbase", suite])
        .arg(build)
        .arg(&mirror)
        .output()
        .map_err(|e| format!("run debootstrap: {e}"))?;
    if !out.status.success() {
        let log = String::from_utf8_lossy(&out.stderr);
        let last = log.lines().last().unwrap_or_default().to_owned();
        return Err(format!("debootstrap {suite} from {mirror} failed: {last}"));
    }
    let st = Command::new("tar")
        .arg("--numeric-owner")
        .arg("-C")
        .arg(build)
        .arg("-cf")
        .arg(part)
        .arg(".")
        .status()
        .map_err(|e| format!("run tar: {e}"))?;
    if !st.success() {
        return Err(format!("tar of {} failed", build.display()));
    }
    fs::rename(part, tarball).map_err(|e| format!("rename {}: {e}", part.display()))
}

/// `VERSION_CODENAME` of /etc/os-release (the host's suite), else `bookworm`.
fn host_suite() -> String {
    fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
                .map(|v| v.trim_matches('"').to_owned())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "bookworm".into())
}

/// The first Debian mirror of apt's sources (deb822 `URIs:` or one-line `deb URL`) that is not
/// a security mirror, else `http://deb.debian.org/debian`.
fn apt_mirror() -> String {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        let Ok(text) = fs::read_to_string(&f) else {
            continue;
        };
        for line in text.lines().map(str::trim) {
            let url = line
                .strip_prefix("URIs:")
                .and_then(|u| u.split_whitespace().next())
                .or_else(|| {
                    line.strip_prefix("deb ")
                        .and_then(|r| r.split_whitespace().find(|w| w.contains("://")))
                });
            if let Some(url) = url
                && !url.contains("security")
            {
                return url.to_owned();
            }
        }
    }
    "http://deb.debian.org/debian".into()
}

/// `YYYYMM` of today (UTC): the cache key's date part.
fn year_month() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_key_is_a_plausible_month() {
        let ym = year_month();
        assert_eq!(ym.len(), 6);
        let month: u32 = ym[4..].parse().expect("digits");
        assert!((1..=12).contains(&month));
        assert!(ym.as_str() >= "202401");
    }
}
