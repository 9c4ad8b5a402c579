//! OCI mount options: the pure translation from option strings to mount(2) flags, propagation
//! changes, recursive mount attributes and file-system data, as runc accepts them.

/// `mount_setattr(2)` attribute bits (linux/mount.h).
pub(crate) mod attr {
    pub(crate) const RDONLY: u64 = 0x1;
    pub(crate) const NOSUID: u64 = 0x2;
    pub(crate) const NODEV: u64 = 0x4;
    pub(crate) const NOEXEC: u64 = 0x8;
    pub(crate) const ATIME_MASK: u64 = 0x70;
    pub(crate) const RELATIME: u64 = 0x0;
    pub(crate) const NOATIME: u64 = 0x10;
    pub(crate) const STRICTATIME: u64 = 0x20;
    pub(crate) const NODIRATIME: u64 = 0x80;
    pub(crate) const NOSYMFOLLOW: u64 = 0x0020_0000;
}

/// `MS_NOSYMFOLLOW` (Linux 5.10), not yet in every libc release.
const MS_NOSYMFOLLOW: libc::c_ulong = 256;

/// Every mount option [`parse_options`] understands, for `features`.
pub(crate) const KNOWN_OPTIONS: &[&str] = &[
    "acl",
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noacl",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
];

/// A parsed `mounts[].options` list.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct MountOptions {
    /// `MS_*` flags for the mount(2) call.
    pub(crate) flags: libc::c_ulong,
    /// Propagation changes applied after the mount, in order.
    pub(crate) propagation: Vec<libc::c_ulong>,
    /// Recursive attributes to set (`rro`, `rnosuid`, ...), via mount_setattr(AT_RECURSIVE).
    pub(crate) rec_set: u64,
    /// Recursive attributes to clear (`rrw`, `rsuid`, ...).
    pub(crate) rec_clear: u64,
    /// File-system specific data (`mode=755,size=65536k`).
    pub(crate) data: String,
    /// crun/runc's `tmpcopyup`: copy the underlying directory's contents into a new tmpfs.
    pub(crate) tmpcopyup: bool,
}

impl MountOptions {
    /// Whether this is a bind mount (`bind` or `rbind`).
    pub(crate) fn is_bind(&self) -> bool {
        self.flags & libc::MS_BIND != 0
    }
}

/// Map a propagation name (as in `rootfsPropagation` or a mount option) to its `MS_*` flags.
#[must_use]
pub fn propagation_flag(name: &str) -> Option<libc::c_ulong> {
    Some(match name {
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        _ => return None,
    })
}

/// Parse a mount's option list.
pub(crate) fn parse_options(options: &[String]) -> MountOptions {
    let mut o = MountOptions::default();
    let mut data: Vec<&str> = Vec::new();
    for opt in options {
        let opt = opt.as_str();
        // (set, clear) of MS_* flags.
        let flag: Option<(libc::c_ulong, libc::c_ulong)> = match opt {
            "defaults" => Some((0, 0)),
            "ro" => Some((libc::MS_RDONLY, 0)),
            "rw" => Some((0, libc::MS_RDONLY)),
            "suid" => Some((0, libc::MS_NOSUID)),
            "nosuid" => Some((libc::MS_NOSUID, 0)),
            "dev" => Some((0, libc::MS_NODEV)),
            "nodev" => Some((libc::MS_NODEV, 0)),
            "exec" => Some((0, libc::MS_NOEXEC)),
            "noexec" => Some((libc::MS_NOEXEC, 0)),
            "sync" => Some((libc::MS_SYNCHRONOUS, 0)),
            "async" => Some((0, libc::MS_SYNCHRONOUS)),
            "dirsync" => Some((libc::MS_DIRSYNC, 0)),
            "remount" => Some((libc::MS_REMOUNT, 0)),
            "mand" => Some((libc::MS_MANDLOCK, 0)),
            "nomand" => Some((0, libc::MS_MANDLOCK)),
            "atime" => Some((0, libc::MS_NOATIME)),
            "noatime" => Some((libc::MS_NOATIME, 0)),
            "diratime" => Some((0, libc::MS_NODIRATIME)),
            "nodiratime" => Some((libc::MS_NODIRATIME, 0)),
            "bind" => Some((libc::MS_BIND, 0)),
            "rbind" => Some((libc::MS_BIND | libc::MS_REC, 0)),
            "relatime" => Some((libc::MS_RELATIME, 0)),
            "norelatime" => Some((0, libc::MS_RELATIME)),
            "strictatime" => Some((libc::MS_STRICTATIME, 0)),
            "nostrictatime" => Some((0, libc::MS_STRICTATIME)),
            "lazytime" => Some((libc::MS_LAZYTIME, 0)),
            "nolazytime" => Some((0, libc::MS_LAZYTIME)),
            "iversion" => Some((libc::MS_I_VERSION, 0)),
            "noiversion" => Some((0, libc::MS_I_VERSION)),
            "silent" => Some((libc::MS_SILENT, 0)),
            "loud" => Some((0, libc::MS_SILENT)),
            "acl" => Some((libc::MS_POSIXACL, 0)),
            "noacl" => Some((0, libc::MS_POSIXACL)),
            "nosymfollow" => Some((MS_NOSYMFOLLOW, 0)),
            "symfollow" => Some((0, MS_NOSYMFOLLOW)),
            _ => None,
        };
        if let Some((set, clear)) = flag {
            o.flags = (o.flags & !clear) | set;
            continue;
        }
        if let Some(p) = propagation_flag(opt) {
            o.propagation.push(p);
            continue;
        }
        let rec: Option<(u64, u64)> = match opt {
            "rro" => Some((attr::RDONLY, 0)),
            "rrw" => Some((0, attr::RDONLY)),
            "rnosuid" => Some((attr::NOSUID, 0)),
            "rsuid" => Some((0, attr::NOSUID)),
            "rnodev" => Some((attr::NODEV, 0)),
            "rdev" => Some((0, attr::NODEV)),
            "rnoexec" => Some((attr::NOEXEC, 0)),
            "rexec" => Some((0, attr::NOEXEC)),
            "rnodiratime" => Some((attr::NODIRATIME, 0)),
            "rdiratime" => Some((0, attr::NODIRATIME)),
            "rrelatime" => Some((attr::RELATIME, attr::ATIME_MASK)),
            "rnorelatime" => Some((0, attr::ATIME_MASK)),
            "rnoatime" => Some((attr::NOATIME, attr::ATIME_MASK)),
            "ratime" => Some((0, attr::NOATIME)),
            "rstrictatime" => Some((attr::STRICTATIME, attr::ATIME_MASK)),
            "rnostrictatime" => Some((0, attr::STRICTATIME)),
            "rnosymfollow" => Some((attr::NOSYMFOLLOW, 0)),
            "rsymfollow" => Some((0, attr::NOSYMFOLLOW)),
            _ => None,
        };
        if let Some((set, clear)) = rec {
            o.rec_set = (o.rec_set & !clear) | set;
            o.rec_clear = (o.rec_clear & !set) | clear;
            continue;
        }
        if opt == "tmpcopyup" {
            o.tmpcopyup = true;
            continue;
        }
        data.push(opt);
    }
    o.data = data.join(",");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> MountOptions {
        parse_options(&v.iter().map(|s| (*s).to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_data_and_propagation() {
        let o = opts(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, libc::MS_NOSUID | libc::MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        let o = opts(&["rbind", "rprivate", "ro"]);
        assert!(o.is_bind());
        assert_eq!(o.flags, libc::MS_BIND | libc::MS_REC | libc::MS_RDONLY);
        assert_eq!(o.propagation, vec![libc::MS_PRIVATE | libc::MS_REC]);
    }

    #[test]
    fn later_options_win() {
        assert_eq!(opts(&["ro", "rw"]).flags, 0);
        assert_eq!(opts(&["rw", "ro"]).flags, libc::MS_RDONLY);
        let o = opts(&["rro", "rrw"]);
        assert_eq!((o.rec_set, o.rec_clear), (0, attr::RDONLY));
    }
}
