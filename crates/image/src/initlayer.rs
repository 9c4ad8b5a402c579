//! The init layer: the mount points every container needs (`/proc`, `/sys`, `/dev`,
//! `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`) that the image lacks, made once per image
//! as `layers/<top chain id>/init` and mounted as the topmost lower layer (Docker's `-init`
//! layer, shared by the image's containers instead of one per container).
//!
//! Without it, the runtime creates them in each container's upper layer: inodes made and
//! removed per container, and a `diff`/`commit` that shows `/etc` changed by a container that
//! never touched it. Only what the image lacks is made, so an image's own files stay what the
//! container sees; a path that crosses a symlink or a non-directory is left to the runtime.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The entries, parents first: `true` for a directory, `false` for an empty file.
const ENTRIES: &[(&str, bool)] = &[
    ("proc", true),
    ("sys", true),
    ("dev", true),
    ("etc", true),
    ("etc/hostname", false),
    ("etc/hosts", false),
    ("etc/resolv.conf", false),
];

/// The name of the init layer directory next to a layer's `diff`.
pub const DIR: &str = "init";

/// What the image (its lower directories, topmost first) has at a path.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// No layer has it (or a whiteout hides it).
    Absent,
    /// A directory, with its mode and owner.
    Dir { mode: u32, uid: u32, gid: u32 },
    /// Something else (a file, a symlink...).
    Other,
}

/// Looks `rel` (relative, no `..`) up through `lowerdirs` the way overlay merges them, without
/// following symlinks: the topmost layer with an entry decides; a whiteout (a 0/0 character
/// device) or an opaque parent directory hides the layers below.
fn find(lowerdirs: &[PathBuf], rel: &str) -> Found {
    let parent = Path::new(rel)
        .parent()
        .filter(|p| !p.as_os_str().is_empty());
    for layer in lowerdirs {
        match fs::symlink_metadata(layer.join(rel)) {
            Ok(m) if m.file_type().is_dir() => {
                return Found::Dir {
                    mode: m.permissions().mode() & 0o7777,
                    uid: m.uid(),
                    gid: m.gid(),
                };
            }
            Ok(m) if is_whiteout(&m) => return Found::Absent,
            Ok(_) => return Found::Other,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if parent.is_some_and(|p| is_opaque(&layer.join(p))) {
                    return Found::Absent;
                }
            }
            // An unreadable layer: leave the path to the runtime.
            Err(_) => return Found::Other,
        }
    }
    Found::Absent
}

fn is_whiteout(m: &fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(dir: &Path) -> bool {
    let mut buf = [0_u8; 1];
    matches!(
        rustix::fs::lgetxattr(dir, crate::unpack::OPAQUE_XATTR, &mut buf),
        Ok(1) if buf[0] == b'y'
    )
}

/// Builds the entries the image lacks under `dir` (a new, empty directory).
fn build(dir: &Path, lowerdirs: &[PathBuf]) -> io::Result<()> {
    // A parent the image has as something other than a directory: its children are left out.
    let mut skipped: Vec<&str> = Vec::new();
    for &(rel, is_dir) in ENTRIES {
        if skipped
            .iter()
            .any(|s| rel.starts_with(s) && rel[s.len()..].starts_with('/'))
        {
            continue;
        }
        let target = dir.join(rel);
        match (find(lowerdirs, rel), is_dir) {
            (Found::Absent, true) => {
                fs::DirBuilder::new().mode(0o755).create(&target)?;
                fs::set_permissions(&target, fs::Permissions::from_mode(0o755))?;
            }
            // The image's directory, kept as it is when a child must be made in it: the init
            // layer's copy is the one the merged tree shows.
            (Found::Dir { mode, uid, gid }, true) => {
                let needs_child = ENTRIES.iter().any(|(child, _)| {
                    child.starts_with(rel)
                        && child[rel.len()..].starts_with('/')
                        && find(lowerdirs, child) == Found::Absent
                });
                if needs_child {
                    fs::DirBuilder::new().mode(0o700).create(&target)?;
                    std::os::unix::fs::lchown(&target, Some(uid), Some(gid))?;
                    fs::set_permissions(&target, fs::Permissions::from_mode(mode))?;
                }
            }
            (Found::Absent, false) => {
                fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o644)
                    .open(&target)?;
            }
            (Found::Other, true) => skipped.push(rel),
            (Found::Dir { .. } | Found::Other, false) => {}
        }
    }
    Ok(())
}

/// The init layer of the image whose top layer directory is `layer` (`layers/<chain id>`)
/// and whose lower directories are `lowerdirs` (topmost first): made on first use (in a
/// private directory renamed into place, so concurrent first uses agree), reused after.
///
/// # Errors
/// The directory cannot be made.
pub fn ensure(layer: &Path, lowerdirs: &[PathBuf]) -> io::Result<PathBuf> {
    let init = layer.join(DIR);
    if init.is_dir() {
        return Ok(init);
    }
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let staging = layer.join(format!(
        ".{DIR}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    fs::DirBuilder::new().mode(0o755).create(&staging)?;
    let built = build(&staging, lowerdirs)
        .and_then(|()| fs::set_permissions(&staging, fs::Permissions::from_mode(0o755)))
        .and_then(|()| fs::rename(&staging, &init));
    match built {
        Ok(()) => Ok(init),
        // Another process named it first.
        Err(_) if init.is_dir() => {
            let _ = fs::remove_dir_all(&staging);
            Ok(init)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(root: &Path, name: &str) -> PathBuf {
        let p = root.join(name);
        fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn makes_only_what_the_image_lacks_and_keeps_its_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let top = layer(tmp.path(), "top");
        let base = layer(tmp.path(), "base");
        fs::create_dir(base.join("etc")).unwrap();
        fs::set_permissions(base.join("etc"), fs::Permissions::from_mode(0o751)).unwrap();
        fs::write(base.join("etc/hosts"), "127.0.0.1 image\n").unwrap();
        fs::create_dir(base.join("proc")).unwrap();
        // `sys` is a file in the image: left alone.
        fs::write(base.join("sys"), "").unwrap();
        let lowers = vec![top.clone(), base.clone()];
        let init = ensure(&top, &lowers).unwrap();
        assert_eq!(init, top.join(DIR));
        assert!(!init.join("proc").exists(), "the image has /proc");
        assert!(!init.join("sys").exists(), "the image has /sys as a file");
        assert!(init.join("dev").is_dir());
        let etc = fs::metadata(init.join("etc")).unwrap();
        assert_eq!(
            etc.permissions().mode() & 0o7777,
            0o751,
            "the image's /etc mode"
        );
        assert!(
            !init.join("etc/hosts").exists(),
            "the image's own hosts stays"
        );
        assert_eq!(fs::read(init.join("etc/hostname")).unwrap(), b"");
        assert!(init.join("etc/resolv.conf").is_file());
        // Made once: a second call reuses it.
        fs::write(init.join("etc/hostname"), "marker").unwrap();
        assert_eq!(ensure(&top, &lowers).unwrap(), init);
        assert_eq!(fs::read(init.join("etc/hostname")).unwrap(), b"marker");
    }

    #[test]
    fn a_whiteout_or_an_opaque_directory_hides_the_lower_layers() {
        let tmp = tempfile::tempdir().unwrap();
        let top = layer(tmp.path(), "top");
        let base = layer(tmp.path(), "base");
        fs::create_dir_all(base.join("etc")).unwrap();
        fs::write(base.join("etc/hosts"), "x").unwrap();
        fs::create_dir(base.join("dev")).unwrap();
        // The top layer deletes /dev and makes /etc opaque.
        rustix::fs::mknodat(
            rustix::fs::CWD,
            top.join("dev"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
        fs::create_dir(top.join("etc")).unwrap();
        rustix::fs::setxattr(
            top.join("etc"),
            crate::unpack::OPAQUE_XATTR,
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        let init = ensure(&top, &[top.clone(), base]).unwrap();
        assert!(init.join("dev").is_dir(), "/dev was whited out");
        assert!(
            init.join("etc/hosts").is_file(),
            "/etc/hosts is hidden by the opaque /etc"
        );
    }
}
