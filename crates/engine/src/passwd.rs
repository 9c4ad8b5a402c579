//! `-u name[:group]` and `--group-add`: names resolved in the image's `/etc/passwd` and
//! `/etc/group`, read from the image's layers at create time (the rootfs is mounted only when the
//! container starts). Each layer is searched top-down with `openat2(RESOLVE_IN_ROOT)`, so a
//! symlink planted in an image cannot make berth read a host file; an overlay whiteout or an opaque
//! `/etc` in a higher layer hides the file below it.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};

use crate::error::{EngineError, Result};

/// Who the container's process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups: those `/etc/group` lists the user in, then `--group-add`'s.
    pub additional_gids: Vec<u32>,
    /// Home directory from `/etc/passwd` (`/` when the user has no entry).
    pub home: String,
}

/// One `/etc/passwd` line.
struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

/// One `/etc/group` line.
struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 7 || l.starts_with('#') {
            return None;
        }
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
        })
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 || l.starts_with('#') {
            return None;
        }
        Some(GroupEntry {
            name: f[0],
            gid: f[2].parse().ok()?,
            members: f[3].split(',').filter(|m| !m.is_empty()).collect(),
        })
    })
}

fn not_found(what: &'static str, name: &str, file: &str) -> EngineError {
    EngineError::InvalidSetting {
        what,
        value: name.to_owned(),
        reason: format!("unable to find {what} {name}: no matching entries in {file} file"),
    }
}

fn find_group(group: &str, text: &str) -> Result<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    group_entries(text)
        .find(|g| g.name == group)
        .map(|g| g.gid)
        .ok_or_else(|| not_found("group", group, "group"))
}

/// Resolves `spec` (`user`, `uid`, `user:group`, `uid:gid`, empty for root) and `group_add`
/// against the text of `/etc/passwd` and `/etc/group`, as runc and Docker do: a numeric id
/// needs no entry, a name does.
///
/// Errors: a name with no entry.
pub fn resolve(spec: &str, group_add: &[String], passwd: &str, group: &str) -> Result<ExecUser> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let numeric = user.parse::<u32>().ok();
    let entry = passwd_entries(passwd).find(|e| Some(e.uid) == numeric || e.name == user);
    let (uid, mut gid, home, name) = match (&entry, numeric) {
        (Some(e), _) => (e.uid, e.gid, e.home.to_owned(), Some(e.name)),
        (None, Some(uid)) => (uid, 0, "/".to_owned(), None),
        (None, None) => return Err(not_found("user", user, "passwd")),
    };
    if let Some(g) = grp.filter(|g| !g.is_empty()) {
        gid = find_group(g, group)?;
    }
    let mut additional_gids = Vec::new();
    if let Some(name) = name {
        for g in group_entries(group) {
            if g.members.contains(&name) && g.gid != gid && !additional_gids.contains(&g.gid) {
                additional_gids.push(g.gid);
            }
        }
    }
    for g in group_add {
        let gid = find_group(g, group)?;
        if !additional_gids.contains(&gid) {
            additional_gids.push(gid);
        }
    }
    Ok(ExecUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// The content of `path` (absolute, as the container sees it) in the image whose layers are
/// `lowerdirs` (topmost first); empty when no layer has it.
pub(crate) fn read_from_layers(lowerdirs: &[PathBuf], path: &str) -> Result<String> {
    let rel = path.trim_start_matches('/');
    let parent = Path::new(rel).parent().unwrap_or(Path::new(""));
    for layer in lowerdirs {
        let io = |action: &'static str| crate::engine::io_err(action, layer);
        let root = open(None, layer, OFlags::PATH | OFlags::DIRECTORY).map_err(io("open"))?;
        // O_PATH first: a whiteout (0/0 character device) or a FIFO must not be opened for
        // reading (ENXIO, or a read that never returns).
        match open(Some(&root), Path::new(rel), OFlags::PATH) {
            Ok(fd) => {
                let st = rustix::fs::fstat(&fd).map_err(|e| io("stat")(e.into()))?;
                match FileType::from_raw_mode(st.st_mode) {
                    // A whiteout: deleted in this layer.
                    FileType::CharacterDevice => return Ok(String::new()),
                    FileType::RegularFile => {}
                    _ => {
                        return Err(io("read (not a regular file)")(
                            std::io::ErrorKind::InvalidData.into(),
                        ));
                    }
                }
                let reopened = format!("/proc/self/fd/{}", fd.as_raw_fd());
                let mut text = String::new();
                std::fs::File::open(reopened)
                    .map_err(io("open"))?
                    .take(4 << 20)
                    .read_to_string(&mut text)
                    .map_err(io("read"))?;
                return Ok(text);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if is_opaque(&root, parent) {
                    return Ok(String::new());
                }
            }
            Err(e) => return Err(io("open")(e)),
        }
    }
    Ok(String::new())
}

/// Whether `dir` in the layer is an opaque directory (hides the layers below).
fn is_opaque(root: &OwnedFd, dir: &Path) -> bool {
    let Ok(fd) = open(Some(root), dir, OFlags::RDONLY | OFlags::DIRECTORY) else {
        return false;
    };
    let mut buf = [0_u8; 1];
    matches!(
        rustix::fs::fgetxattr(&fd, "trusted.overlay.opaque", &mut buf),
        Ok(1) if buf[0] == b'y'
    )
}

fn open(root: Option<&OwnedFd>, path: &Path, flags: OFlags) -> std::io::Result<OwnedFd> {
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    loop {
        let r = match root {
            Some(r) => {
                rustix::fs::openat2(r, path, flags | OFlags::CLOEXEC, Mode::empty(), RESOLVE)
            }
            None => rustix::fs::open(path, flags | OFlags::CLOEXEC, Mode::empty()),
        };
        match r {
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {}
            r => return r.map_err(std::io::Error::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          daemon:x:1:1:daemon:/usr/sbin:/bin/false\n\
                          app:x:1000:1000:App:/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:app,other\nstaff:x:50:\napp:x:1000:\n";

    fn r(spec: &str, add: &[&str]) -> Result<ExecUser> {
        let add: Vec<String> = add.iter().map(|s| (*s).to_owned()).collect();
        resolve(spec, &add, PASSWD, GROUP)
    }

    #[test]
    fn names_and_ids() {
        let u = r("app", &[]).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1000, 1000, "/home/app"));
        assert_eq!(u.additional_gids, [10]);
        let u = r("", &[]).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
        let u = r("1:staff", &[]).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1, 50, "/usr/sbin"));
        let u = r("4242:4343", &["staff", "77"]).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (4242, 4343, "/"));
        assert_eq!(u.additional_gids, [50, 77]);
        assert!(r("nobody", &[]).is_err());
        assert!(r("app:nogroup", &[]).is_err());
        assert!(r("app", &["nogroup"]).is_err());
    }

    #[test]
    fn layers_top_down_with_whiteouts() {
        let dir = tempfile::tempdir().unwrap();
        let (top, bottom) = (dir.path().join("top"), dir.path().join("bottom"));
        std::fs::create_dir_all(top.join("etc")).unwrap();
        std::fs::create_dir_all(bottom.join("etc")).unwrap();
        std::fs::write(bottom.join("etc/passwd"), "old").unwrap();
        let layers = [top.clone(), bottom.clone()];
        assert_eq!(read_from_layers(&layers, "/etc/passwd").unwrap(), "old");
        std::fs::write(top.join("etc/passwd"), "new").unwrap();
        assert_eq!(read_from_layers(&layers, "/etc/passwd").unwrap(), "new");
        // A symlink out of the layer resolves inside it.
        std::fs::remove_file(top.join("etc/passwd")).unwrap();
        std::fs::write(top.join("etc/inside"), "inside").unwrap();
        std::os::unix::fs::symlink("/../../../../etc/inside", top.join("etc/passwd")).unwrap();
        assert_eq!(read_from_layers(&layers, "/etc/passwd").unwrap(), "inside");
        assert_eq!(read_from_layers(&layers, "/etc/group").unwrap(), "");
    }
}
