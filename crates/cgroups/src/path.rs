//! Where a container's cgroup lives: runc's cgroupfs rules for `linux.cgroupsPath`.
//!
//! - An absolute path is taken below the root of each hierarchy (`/a/b` -> `<mount>/a/b`).
//! - A relative path is taken below the cgroup the calling process is in, per hierarchy, as
//!   runc does for nested setups without a cgroup namespace. On v2 the base is the parent of
//!   that cgroup (runc's fs2 rule; see `v2::relative_base`).
//! - No path means the container id, relative as above.
//!
//! `..` components are rejected rather than cleaned away, so that a path never silently names a
//! different cgroup than the one asked for.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use crate::error::CgroupError;

/// A validated cgroups path, before it is placed in a hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CgroupPath {
    /// Below the hierarchy root; stored without the leading `/`.
    Absolute(PathBuf),
    /// Below the caller's own cgroup.
    Relative(PathBuf),
    /// Exactly the cgroup of the process whose cgroups are given as "own" (see
    /// [`crate::process_manager`]).
    Own,
}

impl CgroupPath {
    /// Validates `cgroups_path`, or the container id when there is none.
    pub(crate) fn new(cgroups_path: Option<&str>, container_id: &str) -> Result<Self, CgroupError> {
        match cgroups_path.filter(|p| !p.is_empty()) {
            Some(p) => {
                let clean = clean(p)?;
                if clean.as_os_str().is_empty() {
                    Err(CgroupError::InvalidPath {
                        path: p.into(),
                        reason: "names the root or the caller's own cgroup",
                    })
                } else if Path::new(p).is_absolute() {
                    Ok(Self::Absolute(clean))
                } else {
                    Ok(Self::Relative(clean))
                }
            }
            None => {
                if container_id.is_empty()
                    || container_id.contains('/')
                    || container_id == "."
                    || container_id == ".."
                {
                    return Err(CgroupError::InvalidPath {
                        path: container_id.into(),
                        reason: "container id is not a valid cgroup name",
                    });
                }
                Ok(Self::Relative(PathBuf::from(container_id)))
            }
        }
    }

    /// The directory in a hierarchy mounted at `mount`, whose mount shows the hierarchy from
    /// `mount_root` (the 4th mountinfo field, `/` unless bind-mounted or namespaced), for a
    /// process whose own cgroup there is `own`.
    pub(crate) fn place(&self, mount: &Path, mount_root: &str, own: &str) -> PathBuf {
        match self {
            Self::Absolute(p) => mount.join(p),
            Self::Relative(p) => {
                let own = own.strip_prefix(mount_root).unwrap_or(own);
                let own = own.trim_start_matches('/');
                mount.join(own).join(p)
            }
            Self::Own => {
                let own = own.strip_prefix(mount_root).unwrap_or(own);
                mount.join(own.trim_start_matches('/'))
            }
        }
    }
}

/// Drops `.` and empty components, rejects `..`, and returns the path without a leading `/`.
fn clean(p: &str) -> Result<PathBuf, CgroupError> {
    let mut out = PathBuf::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(CgroupError::InvalidPath {
                    path: p.into(),
                    reason: "contains `..`",
                });
            }
        }
    }
    Ok(out)
}

/// The calling process's cgroups, parsed from `/proc/self/cgroup` text: v1 controller (and
/// `name=` hierarchy) -> path, and the v2 path under the key `""`.
pub(crate) fn parse_proc_cgroup(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if ctrls.is_empty() {
            out.insert(String::new(), path.to_owned());
        } else {
            for c in ctrls.split(',') {
                out.insert(c.to_owned(), path.to_owned());
            }
        }
    }
    out
}

/// The calling process's cgroups (see [`parse_proc_cgroup`]).
pub(crate) fn own_cgroups() -> Result<BTreeMap<String, String>, CgroupError> {
    crate::caller_cgroups().map(|t| parse_proc_cgroup(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_relative_default() {
        assert_eq!(
            CgroupPath::new(Some("/a/b"), "id").ok(),
            Some(CgroupPath::Absolute("a/b".into()))
        );
        assert_eq!(
            CgroupPath::new(Some("a//./b/"), "id").ok(),
            Some(CgroupPath::Relative("a/b".into()))
        );
        assert_eq!(
            CgroupPath::new(None, "web").ok(),
            Some(CgroupPath::Relative("web".into()))
        );
        assert_eq!(
            CgroupPath::new(Some(""), "web").ok(),
            Some(CgroupPath::Relative("web".into()))
        );
        assert!(CgroupPath::new(Some("/"), "web").is_err());
    }

    #[test]
    fn rejects_escapes_and_bad_ids() {
        assert!(CgroupPath::new(Some("../x"), "id").is_err());
        assert!(CgroupPath::new(Some("/a/../../x"), "id").is_err());
        assert!(CgroupPath::new(Some("."), "id").is_err());
        assert!(CgroupPath::new(None, "").is_err());
        assert!(CgroupPath::new(None, "a/b").is_err());
        assert!(CgroupPath::new(None, "..").is_err());
    }

    #[test]
    fn placement() {
        let m = Path::new("/sys/fs/cgroup/memory");
        let abs = CgroupPath::Absolute("berth/x".into());
        assert_eq!(abs.place(m, "/", "/user.slice"), m.join("berth/x"));
        let rel = CgroupPath::Relative("x".into());
        assert_eq!(rel.place(m, "/", "/user.slice"), m.join("user.slice/x"));
        assert_eq!(rel.place(m, "/", "/"), m.join("x"));
        // A namespaced or bind mount shows the hierarchy from `mount_root`.
        assert_eq!(
            rel.place(m, "/docker/c1", "/docker/c1/sub"),
            m.join("sub/x")
        );
    }

    #[test]
    fn proc_cgroup_parse() {
        let m = parse_proc_cgroup("9:name=systemd:/\n2:cpu,cpuacct:/a\n0::/b\n");
        assert_eq!(m.get("name=systemd").map(String::as_str), Some("/"));
        assert_eq!(m.get("cpu").map(String::as_str), Some("/a"));
        assert_eq!(m.get("cpuacct").map(String::as_str), Some("/a"));
        assert_eq!(m.get("").map(String::as_str), Some("/b"));
    }
}
