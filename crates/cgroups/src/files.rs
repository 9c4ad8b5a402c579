//! Reading and writing cgroup interface files, and parsing their formats.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use crate::error::CgroupError;

/// Reads a whole interface file.
pub(crate) fn read(dir: &Path, file: &str) -> Result<String, CgroupError> {
    let path = dir.join(file);
    fs::read_to_string(&path).map_err(|e| CgroupError::read(path, e))
}

/// Reads an interface file, `None` when it does not exist.
pub(crate) fn read_opt(dir: &Path, file: &str) -> Result<Option<String>, CgroupError> {
    let path = dir.join(file);
    match fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CgroupError::read(path, e)),
    }
}

/// Reads a single-number file; `max` reads as `u64::MAX`. `None` when the file does not exist.
pub(crate) fn read_u64_opt(dir: &Path, file: &str) -> Result<Option<u64>, CgroupError> {
    match read_opt(dir, file)? {
        None => Ok(None),
        Some(s) => parse_u64(s.trim())
            .map(Some)
            .ok_or_else(|| CgroupError::Parse {
                path: dir.join(file),
                content: s,
            }),
    }
}

/// Reads a single-number file, 0 when it does not exist.
pub(crate) fn read_u64_or_zero(dir: &Path, file: &str) -> Result<u64, CgroupError> {
    Ok(read_u64_opt(dir, file)?.unwrap_or(0))
}

/// Writes `value` to an interface file in one `write(2)`, as the kernel expects.
pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    let res = fs::OpenOptions::new()
        .write(true)
        .truncate(false)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    tracing::debug!(path = %path.display(), value, ok = res.is_ok(), "cgroup write");
    res.map_err(|source| CgroupError::Write {
        path,
        value: value.to_owned(),
        source,
    })
}

/// Whether an interface file exists in `dir`.
pub(crate) fn exists(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}

/// Parses a decimal number, or `max` as `u64::MAX`.
pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    if s == "max" {
        Some(u64::MAX)
    } else {
        s.parse().ok()
    }
}

/// Parses a flat-keyed file (`key value` per line), skipping lines whose value is not a number.
pub(crate) fn parse_flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.split_whitespace();
            let key = it.next()?;
            let value = parse_u64(it.next()?)?;
            Some((key.to_owned(), value))
        })
        .collect()
}

/// Reads a flat-keyed file; an absent file gives an empty map.
pub(crate) fn read_flat_keyed(
    dir: &Path,
    file: &str,
) -> Result<BTreeMap<String, u64>, CgroupError> {
    Ok(read_opt(dir, file)?
        .map(|s| parse_flat_keyed(&s))
        .unwrap_or_default())
}

/// Parses the pid list of `cgroup.procs` / `tasks`.
pub(crate) fn parse_pids(path: &Path, text: &str) -> Result<Vec<i32>, CgroupError> {
    text.split_whitespace()
        .map(|s| {
            s.parse().map_err(|_| CgroupError::Parse {
                path: path.to_owned(),
                content: s.to_owned(),
            })
        })
        .collect()
}

/// All pids in `dir` and every cgroup below it, sorted and deduplicated. A directory that
/// vanishes meanwhile counts as empty.
pub(crate) fn pids_recursive(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let mut out = Vec::new();
    collect_pids(dir, &mut out)?;
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<(), CgroupError> {
    let path = dir.join("cgroup.procs");
    match fs::read_to_string(&path) {
        Ok(s) => out.extend(parse_pids(&path, &s)?),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CgroupError::read(path, e)),
    }
    for sub in subdirs(dir)? {
        collect_pids(&sub, out)?;
    }
    Ok(())
}

/// The child cgroup directories of `dir` (none when it does not exist).
pub(crate) fn subdirs(dir: &Path) -> Result<Vec<std::path::PathBuf>, CgroupError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CgroupError::read(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CgroupError::read(dir, e))?;
        let is_dir = entry
            .file_type()
            .map_err(|e| CgroupError::read(entry.path(), e))?
            .is_dir();
        if is_dir {
            out.push(entry.path());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keyed_parses_numbers_and_max() {
        let m = parse_flat_keyed("usage_usec 12\nnr_periods 3\nmax max\nbad x\n\n");
        assert_eq!(m.get("usage_usec"), Some(&12));
        assert_eq!(m.get("max"), Some(&u64::MAX));
        assert!(!m.contains_key("bad"));
    }

    #[test]
    fn pids_parse() {
        let p = Path::new("x");
        assert_eq!(parse_pids(p, "1\n22\n").ok(), Some(vec![1, 22]));
        assert!(parse_pids(p, "1\nz\n").is_err());
    }
}
