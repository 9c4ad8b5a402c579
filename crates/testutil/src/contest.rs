//! Builds the static `contest` helper once per test process, and parses its output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root, known at compile time from testutil's own manifest directory.
#[must_use]
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}

/// The cargo target directory of the running test: the nearest ancestor of the test binary that
/// holds cargo's `CACHEDIR.TAG`, else `CARGO_TARGET_DIR`, else `<workspace>/target`.
#[must_use]
pub fn target_dir() -> PathBuf {
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe
            .ancestors()
            .skip(1)
            .find(|d| d.join("CACHEDIR.TAG").is_file())
    {
        return dir.to_path_buf();
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    workspace_root().join("target")
}

/// Path of the statically linked `contest`, built on first use (under a file lock, so parallel
/// test processes build it once) with
/// `cargo rustc -p contest --release --target-dir <target>/contest -- -C target-feature=+crt-static`.
///
/// # Panics
/// When cargo fails or the result is not static.
pub fn contest_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(build_contest)
}

fn build_contest() -> PathBuf {
    let dir = target_dir().join("contest");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let lock_path = dir.join(".build.lock");
    let lock = std::fs::File::create(&lock_path)
        .unwrap_or_else(|e| panic!("create {}: {e}", lock_path.display()));
    crate::sys::lock_exclusive(&lock)
        .unwrap_or_else(|e| panic!("lock {}: {e}", lock_path.display()));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = workspace_root().join("Cargo.toml");
    let out = Command::new(&cargo)
        .args([
            "rustc",
            "--quiet",
            "-p",
            "contest",
            "--release",
            "--manifest-path",
        ])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&dir)
        .args(["--", "-C", "target-feature=+crt-static"])
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", Path::new(&cargo).display()));
    assert!(
        out.status.success(),
        "building contest failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = dir.join("release").join("contest");
    let elf = std::fs::read(&bin).unwrap_or_else(|e| panic!("read {}: {e}", bin.display()));
    assert!(
        is_static_elf(&elf),
        "{} has a program interpreter: it is not statically linked",
        bin.display()
    );
    drop(lock);
    bin
}

/// Whether a 64-bit little-endian ELF image has no `PT_INTERP` (is static or static-pie), the
/// test `file` makes for "statically linked".
#[must_use]
pub fn is_static_elf(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    // ELF magic, ELFCLASS64, little-endian.
    if elf.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    let Ok(phoff) = usize::try_from(phoff) else {
        return false;
    };
    (0..usize::from(phnum))
        .all(|i| u32_at(phoff + i * usize::from(phentsize)).is_some_and(|ty| ty != PT_INTERP))
}

/// Parses contest's `key=value` lines into a map (a repeated key keeps its last value; `\n` and
/// `\\` in values are unescaped). Lines without `=` are ignored.
#[must_use]
pub fn parse_kv(output: &str) -> BTreeMap<String, String> {
    output
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), unescape(v)))
        .collect()
}

fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// One line of `contest mounts`; fields stay escaped as in mountinfo (`\040` for a space).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContestMount {
    /// Mount point.
    pub point: String,
    /// Filesystem type.
    pub fstype: String,
    /// Mount source.
    pub source: String,
    /// Per-mount options (`ro,nosuid,...`).
    pub opts: Vec<String>,
    /// Superblock options.
    pub sup: Vec<String>,
}

impl ContestMount {
    /// Whether `opt` is among the per-mount or superblock options.
    #[must_use]
    pub fn has(&self, opt: &str) -> bool {
        self.opts.iter().chain(&self.sup).any(|o| o == opt)
    }
}

/// Parses the output of `contest mounts`.
#[must_use]
pub fn parse_contest_mounts(output: &str) -> Vec<ContestMount> {
    let split = |v: &str| {
        v.split(',')
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect()
    };
    output
        .lines()
        .filter_map(|line| {
            let f: BTreeMap<&str, &str> = line
                .split(' ')
                .filter_map(|kv| kv.split_once('='))
                .collect();
            Some(ContestMount {
                point: (*f.get("mount")?).to_owned(),
                fstype: f.get("type").copied().unwrap_or("").to_owned(),
                source: f.get("source").copied().unwrap_or("").to_owned(),
                opts: split(f.get("opts").copied().unwrap_or("")),
                sup: split(f.get("super").copied().unwrap_or("")),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_parses_and_unescapes() {
        let m = parse_kv("uid=0\nenv.X=a\\nb\\\\c\nnoise\nfd.1=pipe:[1]=x\n");
        assert_eq!(m["uid"], "0");
        assert_eq!(m["env.X"], "a\nb\\c");
        assert_eq!(m["fd.1"], "pipe:[1]=x");
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn contest_mounts_parse() {
        let out = "mount=/proc type=proc source=proc opts=rw,nosuid super=rw\n\
                   mount=/a\\040b type=tmpfs source=tmpfs opts=ro super=rw,size=4k\n";
        let m = parse_contest_mounts(out);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].point, "/proc");
        assert!(m[0].has("nosuid"));
        assert_eq!(m[1].point, "/a\\040b");
        assert!(m[1].has("ro") && m[1].has("size=4k"));
    }

    #[test]
    fn static_elf_check() {
        assert!(!is_static_elf(b"not an elf"));
        let sh = std::fs::read("/bin/sh").unwrap_or_default();
        if !sh.is_empty() {
            assert!(!is_static_elf(&sh), "/bin/sh is dynamic");
        }
        let bb = std::fs::read("/bin/busybox").unwrap_or_default();
        if !bb.is_empty() {
            assert!(is_static_elf(&bb), "Debian's busybox-static is static");
        }
    }
}
