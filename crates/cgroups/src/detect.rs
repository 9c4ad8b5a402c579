//! Which cgroup layout a root holds, and where each v1 controller is mounted under it.

use std::path::{Path, PathBuf};

use crate::error::CgroupError;

const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;
const CGROUP_SUPER_MAGIC: u64 = 0x0027_e0eb;

/// The cgroup layout found at a cgroup root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Hierarchy {
    /// Only v1 hierarchies (one mount per controller or controller group).
    V1,
    /// v1 hierarchies plus a cgroup2 mount at `<root>/unified` holding the remaining controllers.
    Hybrid,
    /// The root itself is the unified cgroup2 hierarchy.
    V2,
}

impl Hierarchy {
    /// Detects the layout at `root` (normally `/sys/fs/cgroup`).
    pub fn detect(root: &Path) -> Result<Self, CgroupError> {
        let detect_err = |source| CgroupError::Detect {
            root: root.to_owned(),
            source,
        };
        if fs_magic(root).map_err(detect_err)? == CGROUP2_SUPER_MAGIC {
            return Ok(Self::V2);
        }
        let mounts = v1_mounts(root)?;
        let unified = root.join("unified");
        let hybrid = unified.is_dir() && fs_magic(&unified).ok() == Some(CGROUP2_SUPER_MAGIC);
        match (mounts.is_empty(), hybrid) {
            (false, true) => Ok(Self::Hybrid),
            (false, false) => Ok(Self::V1),
            (true, _) => Err(CgroupError::NoHierarchy {
                root: root.to_owned(),
            }),
        }
    }
}

fn fs_magic(p: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statfs(p)?;
    // f_type's integer type differs between libc targets; the magic numbers fit in 32 bits.
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    Ok(st.f_type as u64 & 0xffff_ffff)
}

/// Whether `p` is the root of a v1 cgroup mount (used to double-check mountinfo entries).
pub(crate) fn is_v1_mount(p: &Path) -> bool {
    fs_magic(p).ok() == Some(CGROUP_SUPER_MAGIC)
}

/// One v1 hierarchy mounted under the cgroup root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct V1Mount {
    /// Where it is mounted.
    pub(crate) mount_point: PathBuf,
    /// The part of the hierarchy the mount shows (`/` normally).
    pub(crate) mount_root: String,
    /// Controllers (and `name=` hierarchies) it holds.
    pub(crate) controllers: Vec<String>,
}

/// Controllers a v1 mount's super options may name.
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// Undoes mountinfo's octal escapes (`\040` for space and so on).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The v1 cgroup mounts directly below `root` in mountinfo text.
pub(crate) fn parse_v1_mounts(mountinfo: &str, root: &Path) -> Vec<V1Mount> {
    let mut out: Vec<V1Mount> = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 || post[0] != "cgroup" {
            continue;
        }
        let mount_point = PathBuf::from(unescape(pre[4]));
        if mount_point.parent() != Some(root) {
            continue;
        }
        let controllers: Vec<String> = post[2]
            .split(',')
            .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
            .map(str::to_owned)
            .collect();
        if controllers.is_empty() {
            continue;
        }
        // A later mount on the same point hides the earlier one.
        out.retain(|m| m.mount_point != mount_point);
        out.push(V1Mount {
            mount_point,
            mount_root: unescape(pre[3]),
            controllers,
        });
    }
    out
}

/// The v1 cgroup mounts directly below `root`, from `/proc/self/mountinfo`: read once per
/// process and root (one container's create, start and delete each ask several times; cgroup
/// hierarchies are mounted at boot and stay).
pub(crate) fn v1_mounts(root: &Path) -> Result<Vec<V1Mount>, CgroupError> {
    static SEEN: std::sync::Mutex<Vec<(PathBuf, Vec<V1Mount>)>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, mounts)) = seen.iter().find(|(r, _)| r == root) {
        return Ok(mounts.clone());
    }
    let mounts = read_v1_mounts(root)?;
    // An empty answer is not kept: a test or a late boot step may mount them yet.
    if !mounts.is_empty() {
        seen.push((root.to_path_buf(), mounts.clone()));
    }
    Ok(mounts)
}

fn read_v1_mounts(root: &Path) -> Result<Vec<V1Mount>, CgroupError> {
    let p = Path::new("/proc/self/mountinfo");
    let text = std::fs::read_to_string(p).map_err(|e| CgroupError::read(p, e))?;
    Ok(parse_v1_mounts(&text, root)
        .into_iter()
        .filter(|m| is_v1_mount(&m.mount_point))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
36 31 0:33 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 23 0:39 /docker/x /other/cgroup/pids rw - cgroup cgroup rw,pids
43 31 0:40 /sub /sys/fs/cgroup/my\\040dir rw - cgroup cgroup rw,pids
";

    #[test]
    fn finds_v1_mounts_under_root() {
        let m = parse_v1_mounts(MI, Path::new("/sys/fs/cgroup"));
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(m[0].mount_point, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(m[2].controllers, vec!["name=systemd"]);
        assert_eq!(m[3].mount_point, Path::new("/sys/fs/cgroup/my dir"));
        assert_eq!(m[3].mount_root, "/sub");
    }

    #[test]
    fn other_roots_are_ignored() {
        let m = parse_v1_mounts(MI, Path::new("/other/cgroup"));
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].mount_root, "/docker/x");
    }
}
