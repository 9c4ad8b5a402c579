//! Pure conversions from OCI resource values to the strings cgroup files take. No I/O here, so
//! every rule is unit-tested beside its code.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::CgroupError;

/// cgroup v1 `cpu.shares` to v2 `cpu.weight`, with runc's linear map of [2, 262144] onto
/// [1, 10000]. 0 means "unset" and maps to `None`.
#[must_use]
pub fn shares_to_weight(shares: u64) -> Option<u64> {
    if shares == 0 {
        return None;
    }
    let shares = shares.clamp(2, 262_144);
    Some(1 + ((shares - 2) * 9999) / 262_142)
}

/// cgroup v1 `blkio.weight` ([10, 1000]) to v2 `io.weight` ([1, 10000]), as runc converts it.
#[must_use]
pub fn blkio_weight_to_io_weight(weight: u16) -> Option<u64> {
    if weight == 0 {
        return None;
    }
    let w = u64::from(weight.clamp(10, 1000));
    Some(1 + ((w - 10) * 9999) / 990)
}

/// A memory limit for a v2 file: `-1` is `max`, other negatives are rejected.
pub fn v2_limit(resource: &'static str, v: i64) -> Result<String, CgroupError> {
    match v {
        -1 => Ok("max".into()),
        v if v < 0 => Err(CgroupError::invalid(resource, v, "negative and not -1")),
        v => Ok(v.to_string()),
    }
}

/// A memory limit for a v1 file: `-1` stays `-1` (the v1 spelling of unlimited).
pub fn v1_limit(resource: &'static str, v: i64) -> Result<String, CgroupError> {
    match v {
        v if v < -1 => Err(CgroupError::invalid(resource, v, "negative and not -1")),
        v => Ok(v.to_string()),
    }
}

/// OCI `memory.swap` is the memory+swap total; v2 `memory.swap.max` is swap alone. Returns the
/// value to write to `memory.swap.max`, `None` when nothing is to be written.
///
/// As runc does: unlimited memory with unset swap means unlimited swap too; `-1` stays
/// unlimited; otherwise swap needs a memory limit and must not be below it.
pub fn v2_swap(limit: Option<i64>, swap: Option<i64>) -> Result<Option<String>, CgroupError> {
    let limit = limit.unwrap_or(0);
    let swap = swap.unwrap_or(0);
    if limit == -1 && swap == 0 {
        return Ok(Some("max".into()));
    }
    match swap {
        0 => Ok(None),
        -1 => Ok(Some("max".into())),
        s if s < 0 => Err(CgroupError::invalid(
            "memory.swap",
            s,
            "negative and not -1",
        )),
        s => {
            if limit == 0 || limit == -1 {
                return Err(CgroupError::invalid(
                    "memory.swap",
                    s,
                    "a swap limit needs a memory limit",
                ));
            }
            if s < limit {
                return Err(CgroupError::invalid(
                    "memory.swap",
                    s,
                    "memory+swap must not be below the memory limit",
                ));
            }
            Ok(Some((s - limit).to_string()))
        }
    }
}

/// The v2 `cpu.max` line for a quota and period. `None` when neither is set. A quota of 0 or
/// below is `max` (no limit); a missing period is the kernel default of 100 ms.
#[must_use]
pub fn cpu_max(quota: Option<i64>, period: Option<u64>) -> Option<String> {
    let quota_set = quota.is_some_and(|q| q != 0);
    let period_set = period.is_some_and(|p| p != 0);
    if !quota_set && !period_set {
        return None;
    }
    let q = match quota {
        Some(q) if q > 0 => q.to_string(),
        _ => "max".into(),
    };
    let p = period.filter(|p| *p != 0).unwrap_or(100_000);
    Some(format!("{q} {p}"))
}

/// The `pids.max` value: a positive limit, or `max` for 0 and negatives (runc treats a
/// non-positive OCI limit as unlimited).
#[must_use]
pub fn pids_max(limit: i64) -> String {
    if limit > 0 {
        limit.to_string()
    } else {
        "max".into()
    }
}

/// `major:minor value`, the line format of blkio throttle/weight-device and io.* files.
#[must_use]
pub fn device_line(major: i64, minor: i64, value: impl std::fmt::Display) -> String {
    format!("{major}:{minor} {value}")
}

/// A device number is a wildcard when absent or negative (runc accepts -1 as `*`).
fn dev_num(n: Option<i64>) -> Option<i64> {
    n.filter(|n| *n >= 0)
}

/// Access bits of a device rule: `r`=read, `w`=write, `m`=mknod. Empty means all.
pub fn access_bits(access: Option<&str>) -> Result<u8, CgroupError> {
    let a = access.unwrap_or("");
    if a.is_empty() {
        return Ok(ACCESS_ALL);
    }
    let mut bits = 0;
    for c in a.chars() {
        bits |= match c {
            'r' => ACCESS_READ,
            'w' => ACCESS_WRITE,
            'm' => ACCESS_MKNOD,
            _ => {
                return Err(CgroupError::invalid(
                    "devices.access",
                    a,
                    "not a subset of rwm",
                ));
            }
        };
    }
    Ok(bits)
}

/// Read access bit (matches the kernel's `BPF_DEVCG_ACC_READ`).
pub const ACCESS_READ: u8 = 2;
/// Write access bit (`BPF_DEVCG_ACC_WRITE`).
pub const ACCESS_WRITE: u8 = 4;
/// Mknod access bit (`BPF_DEVCG_ACC_MKNOD`).
pub const ACCESS_MKNOD: u8 = 1;
/// All three.
pub const ACCESS_ALL: u8 = ACCESS_READ | ACCESS_WRITE | ACCESS_MKNOD;

fn access_string(bits: u8) -> String {
    let mut s = String::new();
    if bits & ACCESS_READ != 0 {
        s.push('r');
    }
    if bits & ACCESS_WRITE != 0 {
        s.push('w');
    }
    if bits & ACCESS_MKNOD != 0 {
        s.push('m');
    }
    s
}

/// The device class a rule applies to, after normalising OCI's `u` (unbuffered char) to `c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceClass {
    /// Every device (`a`).
    All,
    /// Block devices.
    Block,
    /// Character devices.
    Char,
}

/// An OCI device rule validated and normalised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceRule {
    /// Allow (true) or deny.
    pub allow: bool,
    /// Device class.
    pub class: DeviceClass,
    /// Major number, `None` for any.
    pub major: Option<u32>,
    /// Minor number, `None` for any.
    pub minor: Option<u32>,
    /// Access bits ([`ACCESS_READ`] | [`ACCESS_WRITE`] | [`ACCESS_MKNOD`]).
    pub access: u8,
}

impl DeviceRule {
    /// Validates an OCI rule. FIFO (`p`) rules are not device-cgroup rules and give `None`.
    pub fn from_oci(r: &LinuxDeviceCgroup) -> Result<Option<Self>, CgroupError> {
        let class = match r.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => DeviceClass::All,
            LinuxDeviceType::B => DeviceClass::Block,
            LinuxDeviceType::C | LinuxDeviceType::U => DeviceClass::Char,
            LinuxDeviceType::P => return Ok(None),
        };
        let num = |n: Option<i64>| -> Result<Option<u32>, CgroupError> {
            dev_num(n)
                .map(|n| {
                    u32::try_from(n)
                        .map_err(|_| CgroupError::invalid("devices.major/minor", n, "out of range"))
                })
                .transpose()
        };
        Ok(Some(Self {
            allow: r.allow(),
            class,
            major: num(r.major())?,
            minor: num(r.minor())?,
            access: access_bits(r.access().as_deref())?,
        }))
    }

    /// Whether this rule matches every device with every access.
    #[must_use]
    pub fn is_everything(&self) -> bool {
        self.class == DeviceClass::All
            && self.major.is_none()
            && self.minor.is_none()
            && self.access == ACCESS_ALL
    }

    /// The v1 `devices.allow`/`devices.deny` lines for this rule. The kernel reads a type of
    /// `a` as "everything" and ignores numbers and access, so a narrower `a` rule is written as
    /// one `b` and one `c` line.
    #[must_use]
    pub fn v1_lines(&self) -> Vec<String> {
        if self.is_everything() {
            return vec!["a".into()];
        }
        let n = |x: Option<u32>| x.map_or_else(|| "*".to_string(), |v| v.to_string());
        let tail = format!(
            "{}:{} {}",
            n(self.major),
            n(self.minor),
            access_string(self.access)
        );
        match self.class {
            DeviceClass::All => vec![format!("b {tail}"), format!("c {tail}")],
            DeviceClass::Block => vec![format!("b {tail}")],
            DeviceClass::Char => vec![format!("c {tail}")],
        }
    }
}

/// Validates and normalises a list of OCI device rules, dropping FIFO rules.
pub fn device_rules(rules: &[LinuxDeviceCgroup]) -> Result<Vec<DeviceRule>, CgroupError> {
    let mut out = Vec::with_capacity(rules.len());
    for r in rules {
        if let Some(rule) = DeviceRule::from_oci(r)? {
            out.push(rule);
        }
    }
    Ok(out)
}

/// Validates an OCI hugepage size (`2MB`, `1GB`, `64KB`): digits followed by `KB`, `MB` or `GB`.
pub fn hugepage_size(size: &str) -> Result<&str, CgroupError> {
    let digits = size.trim_end_matches(['K', 'M', 'G', 'B']);
    let unit = &size[digits.len()..];
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !matches!(unit, "KB" | "MB" | "GB")
    {
        return Err(CgroupError::invalid(
            "hugepageLimits.pageSize",
            size,
            "expected <n>KB, <n>MB or <n>GB",
        ));
    }
    Ok(size)
}

/// Validates a key of the OCI `unified` map: a plain interface file name like `memory.high`.
pub fn unified_key(key: &str) -> Result<&str, CgroupError> {
    let ok = !key.is_empty()
        && !key.contains('/')
        && key != "."
        && key != ".."
        && key.contains('.')
        && !matches!(
            key,
            "cgroup.procs" | "cgroup.threads" | "cgroup.subtree_control"
        );
    if ok {
        Ok(key)
    } else {
        Err(CgroupError::invalid(
            "unified",
            key,
            "not a settable interface file name",
        ))
    }
}

/// Renders the v2 `rdma.max` line for one device.
#[must_use]
pub fn rdma_line(device: &str, handles: Option<u32>, objects: Option<u32>) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(h) = handles {
        parts.push(format!("hca_handle={h}"));
    }
    if let Some(o) = objects {
        parts.push(format!("hca_object={o}"));
    }
    if parts.is_empty() {
        None
    } else {
        Some(format!("{device} {}", parts.join(" ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    #[test]
    fn shares_weight_matches_runc_formula() {
        assert_eq!(shares_to_weight(0), None);
        assert_eq!(shares_to_weight(2), Some(1));
        assert_eq!(shares_to_weight(1024), Some(39));
        assert_eq!(shares_to_weight(262_144), Some(10_000));
        assert_eq!(shares_to_weight(1), Some(1));
        assert_eq!(shares_to_weight(u64::MAX), Some(10_000));
    }

    #[test]
    fn blkio_weight_maps_to_io_weight() {
        assert_eq!(blkio_weight_to_io_weight(0), None);
        assert_eq!(blkio_weight_to_io_weight(10), Some(1));
        assert_eq!(blkio_weight_to_io_weight(500), Some(4950));
        assert_eq!(blkio_weight_to_io_weight(1000), Some(10_000));
    }

    #[test]
    fn limits_render() {
        assert_eq!(v2_limit("memory.limit", -1).ok().as_deref(), Some("max"));
        assert_eq!(v2_limit("memory.limit", 4096).ok().as_deref(), Some("4096"));
        assert!(v2_limit("memory.limit", -2).is_err());
        assert_eq!(v1_limit("memory.limit", -1).ok().as_deref(), Some("-1"));
        assert!(v1_limit("memory.limit", -5).is_err());
    }

    #[test]
    fn swap_math_follows_runc() {
        assert_eq!(
            v2_swap(Some(-1), None).ok().flatten().as_deref(),
            Some("max")
        );
        assert_eq!(v2_swap(Some(100), None).ok().flatten(), None);
        assert_eq!(
            v2_swap(Some(100), Some(-1)).ok().flatten().as_deref(),
            Some("max")
        );
        assert_eq!(
            v2_swap(Some(100), Some(300)).ok().flatten().as_deref(),
            Some("200")
        );
        assert_eq!(
            v2_swap(Some(100), Some(100)).ok().flatten().as_deref(),
            Some("0")
        );
        assert!(v2_swap(Some(100), Some(50)).is_err());
        assert!(v2_swap(None, Some(50)).is_err());
        assert!(v2_swap(Some(-1), Some(50)).is_err());
        assert!(v2_swap(Some(100), Some(-3)).is_err());
    }

    #[test]
    fn cpu_max_renders() {
        assert_eq!(cpu_max(None, None), None);
        assert_eq!(cpu_max(Some(0), Some(0)), None);
        assert_eq!(cpu_max(Some(50_000), None).as_deref(), Some("50000 100000"));
        assert_eq!(
            cpu_max(Some(20_000), Some(50_000)).as_deref(),
            Some("20000 50000")
        );
        assert_eq!(
            cpu_max(Some(-1), Some(50_000)).as_deref(),
            Some("max 50000")
        );
        assert_eq!(cpu_max(None, Some(10_000)).as_deref(), Some("max 10000"));
    }

    #[test]
    fn pids_and_device_lines() {
        assert_eq!(pids_max(10), "10");
        assert_eq!(pids_max(0), "max");
        assert_eq!(pids_max(-1), "max");
        assert_eq!(device_line(8, 0, 1_048_576), "8:0 1048576");
        assert_eq!(device_line(8, 16, "rbps=5"), "8:16 rbps=5");
    }

    fn rule(
        allow: bool,
        t: LinuxDeviceType,
        maj: Option<i64>,
        min: Option<i64>,
        acc: &str,
    ) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(t)
            .access(acc);
        if let Some(m) = maj {
            b = b.major(m);
        }
        if let Some(m) = min {
            b = b.minor(m);
        }
        match b.build() {
            Ok(r) => r,
            Err(e) => panic!("builder: {e}"),
        }
    }

    #[test]
    fn device_rules_render_v1() {
        let r = |x: LinuxDeviceCgroup| {
            DeviceRule::from_oci(&x)
                .ok()
                .flatten()
                .map(|d| d.v1_lines())
        };
        assert_eq!(
            r(rule(true, LinuxDeviceType::C, Some(1), Some(3), "rwm")),
            Some(vec!["c 1:3 rwm".to_string()])
        );
        assert_eq!(
            r(rule(false, LinuxDeviceType::A, None, None, "rwm")),
            Some(vec!["a".to_string()])
        );
        assert_eq!(
            r(rule(true, LinuxDeviceType::A, None, None, "")),
            Some(vec!["a".to_string()])
        );
        assert_eq!(
            r(rule(true, LinuxDeviceType::B, Some(8), None, "r")),
            Some(vec!["b 8:* r".to_string()])
        );
        assert_eq!(
            r(rule(true, LinuxDeviceType::U, Some(-1), Some(5), "mw")),
            Some(vec!["c *:5 wm".to_string()])
        );
        assert_eq!(
            r(rule(true, LinuxDeviceType::A, Some(136), None, "rw")),
            Some(vec!["b 136:* rw".to_string(), "c 136:* rw".to_string()])
        );
        assert_eq!(r(rule(true, LinuxDeviceType::P, None, None, "rwm")), None);
        assert!(
            DeviceRule::from_oci(&rule(true, LinuxDeviceType::C, Some(1), Some(3), "rx")).is_err()
        );
        assert!(
            DeviceRule::from_oci(&rule(true, LinuxDeviceType::C, Some(1 << 40), Some(3), "r"))
                .is_err()
        );
    }

    #[test]
    fn hugepage_and_unified_keys() {
        assert!(hugepage_size("2MB").is_ok());
        assert!(hugepage_size("1GB").is_ok());
        assert!(hugepage_size("64KB").is_ok());
        assert!(hugepage_size("2M").is_err());
        assert!(hugepage_size("MB").is_err());
        assert!(hugepage_size("../x").is_err());
        assert!(unified_key("memory.high").is_ok());
        assert!(unified_key("../memory.high").is_err());
        assert!(unified_key("cgroup.procs").is_err());
        assert!(unified_key("nodot").is_err());
    }

    #[test]
    fn rdma_renders() {
        assert_eq!(
            rdma_line("mlx5_0", Some(3), None).as_deref(),
            Some("mlx5_0 hca_handle=3")
        );
        assert_eq!(
            rdma_line("mlx5_0", Some(3), Some(9)).as_deref(),
            Some("mlx5_0 hca_handle=3 hca_object=9")
        );
        assert_eq!(rdma_line("mlx5_0", None, None), None);
    }
}
