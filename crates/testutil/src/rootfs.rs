//! The busybox root filesystem used by test bundles.

use crate::contest::contest_binary;
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The host's static busybox (Debian `busybox-static`).
pub const HOST_BUSYBOX: &str = "/bin/busybox";

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                      user:x:1000:1000:user:/home/user:/bin/sh\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n";

/// Files at least this big are hard-linked from the cache instead of copied.
const LINK_MIN: u64 = 64 * 1024;

/// Fills `dest` (created if missing) with a busybox root filesystem: `/bin/busybox` (the host's
/// static one), a symlink to it per applet of `busybox --list-full`, `/bin/contest`, an
/// `/etc/passwd` with root, user (1000) and nobody (65534) and the matching `/etc/group`, and
/// empty `/proc /sys /dev /tmp /root /home/user`.
///
/// The tree is built once in a cache next to contest's build (shared by all test processes) and
/// copied from there in a few milliseconds; the two binaries are hard links into the cache
/// (replace them, never modify them in place).
///
/// # Panics
/// When busybox is missing or a file cannot be written.
pub fn busybox_rootfs(dest: &Path) {
    copy_tree(rootfs_cache(), dest);
}

/// The cache: `<target>/contest/rootfs-<key>`, the key hashing the size and mtime of contest and
/// busybox, built once under a file lock and shared by every test process of the target dir.
fn rootfs_cache() -> &'static Path {
    static CACHE: OnceLock<PathBuf> = OnceLock::new();
    CACHE.get_or_init(|| {
        let contest = contest_binary();
        let mut hasher = DefaultHasher::new();
        for file in [contest, Path::new(HOST_BUSYBOX)] {
            let md = fs::metadata(file).unwrap_or_else(|e| fail("stat", file, &e));
            (md.len(), md.modified().ok()).hash(&mut hasher);
        }
        let parent = contest
            .parent()
            .and_then(Path::parent)
            .unwrap_or(Path::new("."));
        let cache = parent.join(format!("rootfs-{:016x}", hasher.finish()));
        if cache.is_dir() {
            return cache;
        }
        let lock_path = parent.join(".rootfs.lock");
        let lock = fs::File::create(&lock_path).unwrap_or_else(|e| fail("create", &lock_path, &e));
        crate::sys::lock_exclusive(&lock).unwrap_or_else(|e| fail("lock", &lock_path, &e));
        if cache.is_dir() {
            return cache;
        }
        let tmp = parent.join(format!(".rootfs-tmp-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        build(&tmp);
        // Older caches belong to older contest builds, which no test of this target dir uses.
        if let Ok(rd) = fs::read_dir(parent) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with("rootfs-") {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        fs::rename(&tmp, &cache).unwrap_or_else(|e| fail("rename", &tmp, &e));
        cache
    })
}

fn fail(what: &str, path: &Path, e: &std::io::Error) -> ! {
    panic!("busybox rootfs: {what} {}: {e}", path.display())
}

fn mkdir(path: &Path, mode: u32) {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .unwrap_or_else(|e| fail("create", path, &e));
    // The umask may have cut the mode; set it exactly.
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| fail("chmod", path, &e));
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| fail("write", path, &e));
}

fn build(root: &Path) {
    for (dir, mode) in [
        ("bin", 0o755),
        ("sbin", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("etc", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("dev", 0o755),
        ("tmp", 0o1777),
        ("root", 0o700),
        ("home/user", 0o755),
    ] {
        mkdir(&root.join(dir), mode);
    }
    let busybox = root.join("bin/busybox");
    fs::copy(HOST_BUSYBOX, &busybox).unwrap_or_else(|e| fail("copy", Path::new(HOST_BUSYBOX), &e));
    let list = Command::new(HOST_BUSYBOX)
        .arg("--list-full")
        .output()
        .unwrap_or_else(|e| fail("run", Path::new(HOST_BUSYBOX), &e));
    assert!(
        list.status.success(),
        "busybox --list-full failed: {}",
        list.status
    );
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim().trim_start_matches('/');
        if applet.is_empty() || applet == "bin/busybox" {
            continue;
        }
        let link = root.join(applet);
        if let Some(parent) = link.parent() {
            mkdir(parent, 0o755);
        }
        std::os::unix::fs::symlink("/bin/busybox", &link)
            .unwrap_or_else(|e| fail("symlink", &link, &e));
    }
    let contest = root.join("bin/contest");
    fs::copy(contest_binary(), &contest).unwrap_or_else(|e| fail("copy", contest_binary(), &e));
    write(&root.join("etc/passwd"), PASSWD);
    write(&root.join("etc/group"), GROUP);
    fs::set_permissions(root, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| fail("chmod", root, &e));
}

/// Copies the tree at `from` into `to`: directories with their modes, symlinks and big files as
/// hard links (creating an inode costs about half a millisecond on this disk, linking far less),
/// small files copied so a test may change them. Falls back to copying when linking fails (e.g.
/// across filesystems).
fn copy_tree(from: &Path, to: &Path) {
    let meta = fs::symlink_metadata(from).unwrap_or_else(|e| fail("stat", from, &e));
    mkdir(to, meta.permissions().mode() & 0o7777);
    let entries = fs::read_dir(from).unwrap_or_else(|e| fail("read", from, &e));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| fail("read", from, &e));
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let ty = entry.file_type().unwrap_or_else(|e| fail("stat", &src, &e));
        if ty.is_dir() {
            copy_tree(&src, &dst);
        } else if ty.is_symlink() {
            // link(2) does not follow symlinks: this links the symlink itself.
            if fs::hard_link(&src, &dst).is_err() {
                let target = fs::read_link(&src).unwrap_or_else(|e| fail("readlink", &src, &e));
                std::os::unix::fs::symlink(&target, &dst)
                    .unwrap_or_else(|e| fail("symlink", &dst, &e));
            }
        } else {
            let size = entry.metadata().map_or(0, |m| m.len());
            if size < LINK_MIN || fs::hard_link(&src, &dst).is_err() {
                fs::copy(&src, &dst).unwrap_or_else(|e| fail("copy", &src, &e));
            }
        }
    }
}
