//! Compiled programs kept on disk, so a profile seen before skips libseccomp.
//!
//! libseccomp 2.5 needs around 10 ms to compile Docker's default profile for the x86 family
//! (three architectures, binary tree); almost every container uses that same profile. The cache
//! turns the repeat into one small file read. crun keeps a similar cache.
//!
//! Entries are found by a hash of the key but trusted only on an exact match of the whole key
//! (cache format, libseccomp version, kernel release, profile JSON), so a hash collision can only
//! cost a miss. Whoever can write the directory decides the filters of later containers: it must
//! belong to the runtime's user and be writable by nobody else, which is checked before use.

use std::fs;
use std::hash::{DefaultHasher, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxSeccomp;

use super::{Program, SeccompError, compile};

/// First line of every entry; bump it whenever the format or the translation changes.
const MAGIC: &[u8] = b"berth-seccomp-cache-1\n";

/// A directory of compiled programs, e.g. `<run-root>/seccomp`.
#[derive(Debug, Clone)]
pub struct ProgramCache {
    dir: PathBuf,
}

impl ProgramCache {
    /// A cache in `dir`, created (mode 0700) on first store. Use a tmpfs such as the run root:
    /// entries name the kernel release, so they go stale across upgrades anyway.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Like [`compile`], but served from the cache when this exact profile was compiled before
    /// on this kernel with this libseccomp. Profile errors are never cached; a cache that cannot
    /// be read or written only costs the compile.
    pub fn compile(&self, spec: &LinuxSeccomp) -> Result<Program, SeccompError> {
        let Some(key) = key(spec) else {
            return compile(spec);
        };
        let path = self.dir.join(format!("{:016x}.bpf", hash(&key)));
        if trusted_dir(&self.dir)
            && let Ok(bytes) = fs::read(&path)
            && let Some(program) = decode(&bytes, &key)
        {
            return Ok(program);
        }
        let program = compile(spec)?;
        if let Err(error) = self.store(&path, &encode(&key, &program)) {
            tracing::debug!(path = %path.display(), %error, "seccomp cache not written");
        }
        Ok(program)
    }

    /// Writes an entry atomically (temp file, then rename).
    fn store(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        if !trusted_dir(&self.dir) {
            return Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let result = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut file| file.write_all(bytes))
            .and_then(|()| fs::rename(&tmp, path));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

/// Whether `dir` belongs to us and nobody else can write it.
fn trusted_dir(dir: &Path) -> bool {
    fs::symlink_metadata(dir).is_ok_and(|m| {
        m.is_dir() && m.uid() == rustix::process::geteuid().as_raw() && m.mode() & 0o022 == 0
    })
}

/// Everything the compiled program depends on.
fn key(spec: &LinuxSeccomp) -> Option<Vec<u8>> {
    let version = libseccomp::ScmpVersion::current().ok()?;
    let uname = rustix::system::uname();
    let mut key = format!(
        "libseccomp {}.{}.{}\nkernel {}\n",
        version.major,
        version.minor,
        version.micro,
        uname.release().to_string_lossy()
    )
    .into_bytes();
    serde_json::to_writer(&mut key, spec).ok()?;
    Some(key)
}

/// Names the entry file; collisions are harmless because the whole key is compared.
fn hash(key: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write(key);
    hasher.finish()
}

/// `MAGIC, key length (u32 LE), key, flags (u64 LE), needs listener (u8), instruction count
/// (u32 LE), instructions (code u16 LE, jt, jf, k u32 LE)`.
fn encode(key: &[u8], program: &Program) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + key.len() + 17 + program.filter.len() * 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(key);
    // `c_ulong` is `u64` here but `u32` on 32-bit targets.
    #[allow(clippy::useless_conversion)]
    let flags = u64::from(program.flags);
    out.extend_from_slice(&flags.to_le_bytes());
    out.push(u8::from(program.needs_listener));
    out.extend_from_slice(
        &u32::try_from(program.filter.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    for insn in &program.filter {
        out.extend_from_slice(&insn.code.to_le_bytes());
        out.push(insn.jt);
        out.push(insn.jf);
        out.extend_from_slice(&insn.k.to_le_bytes());
    }
    out
}

/// The program in `bytes` if it is a whole entry for exactly `key`.
fn decode(bytes: &[u8], key: &[u8]) -> Option<Program> {
    let mut input = Reader(bytes);
    if input.take(MAGIC.len())? != MAGIC {
        return None;
    }
    let key_len = usize::try_from(input.u32()?).ok()?;
    if input.take(key_len)? != key {
        return None;
    }
    #[allow(clippy::useless_conversion)]
    let flags = libc::c_ulong::try_from(input.u64()?).ok()?;
    let needs_listener = match input.take(1)? {
        [0] => false,
        [1] => true,
        _ => return None,
    };
    let len = usize::try_from(input.u32()?).ok()?;
    let filter = input
        .take(len.checked_mul(8)?)?
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_le_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    if !input.0.is_empty() {
        return None;
    }
    Some(Program {
        filter,
        flags,
        needs_listener,
    })
}

/// A cursor over an entry.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::seccomp::docker_profile::docker_default;

    fn same(a: &Program, b: &Program) -> bool {
        a.flags == b.flags
            && a.needs_listener == b.needs_listener
            && a.filter.len() == b.filter.len()
            && a.filter
                .iter()
                .zip(b.filter.iter())
                .all(|(x, y)| (x.code, x.jt, x.jf, x.k) == (y.code, y.jt, y.jf, y.k))
    }

    #[test]
    fn second_compile_is_served_from_disk() {
        let root = tempfile::Builder::new()
            .prefix(testutil::PREFIX)
            .tempdir()
            .unwrap();
        let cache = ProgramCache::new(root.path().join("seccomp"));
        let (profile, _) = docker_default();

        let cold = Instant::now();
        let first = cache.compile(&profile).unwrap();
        let cold = cold.elapsed();
        let warm = Instant::now();
        let second = cache.compile(&profile).unwrap();
        let warm = warm.elapsed();
        eprintln!("docker-like profile through the cache: cold {cold:?}, warm {warm:?}");

        assert!(same(&first, &second));
        assert!(same(&first, &compile(&profile).unwrap()));
        let entries: Vec<_> = fs::read_dir(root.path().join("seccomp"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(entries.len(), 1, "one entry, no temp files left");
    }

    #[test]
    fn entries_only_match_their_exact_key() {
        let (profile, _) = docker_default();
        let key = key(&profile).unwrap();
        let program = compile(&profile).unwrap();
        let bytes = encode(&key, &program);
        assert!(same(&decode(&bytes, &key).unwrap(), &program));
        let mut other = key.clone();
        other.push(b' ');
        assert!(decode(&bytes, &other).is_none());
        assert!(decode(&bytes[..bytes.len() - 1], &key).is_none());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer, &key).is_none());
    }

    #[test]
    fn profile_errors_are_not_cached() {
        let root = tempfile::Builder::new()
            .prefix(testutil::PREFIX)
            .tempdir()
            .unwrap();
        let cache = ProgramCache::new(root.path().join("seccomp"));
        let profile = crate::seccomp::parse(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["nope"],"action":"SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        assert!(cache.compile(&profile).is_err());
        assert!(cache.compile(&profile).is_err());
        assert!(!root.path().join("seccomp").exists());
    }

    #[test]
    fn an_open_directory_is_not_trusted() {
        let root = tempfile::Builder::new()
            .prefix(testutil::PREFIX)
            .tempdir()
            .unwrap();
        let dir = root.path().join("seccomp");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        assert!(!trusted_dir(&dir));
        let (profile, _) = docker_default();
        ProgramCache::new(&dir).compile(&profile).unwrap();
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0, "nothing stored");
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        assert!(trusted_dir(&dir));
    }
}
