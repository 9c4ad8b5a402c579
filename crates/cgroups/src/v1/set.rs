//! Writing OCI resources to v1 hierarchies (and, on hybrid hosts, to the unified directory for
//! controllers only the cgroup2 mount holds).

use std::path::Path;

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxHugepageLimit, LinuxMemory, LinuxNetwork,
    LinuxResources,
};

use super::V1Manager;
use crate::convert;
use crate::error::CgroupError;
use crate::files;
use crate::v2;
use crate::v2::set::write_knob;

/// Applies every resource in `r`.
pub(super) fn all(m: &V1Manager, r: &LinuxResources) -> Result<(), CgroupError> {
    let need = |c: &str| {
        m.dir(c)
            .ok_or_else(|| CgroupError::unsupported(format!("{c} controller")))
    };
    if let Some(mem) = r.memory()
        && memory_requested(mem)
    {
        memory(need("memory")?, mem)?;
    }
    if let Some(c) = r.cpu() {
        if cpu_requested(c) {
            cpu(need("cpu")?, c)?;
        }
        if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            files::write(need("cpuset")?, "cpuset.cpus", cpus)?;
        }
        if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            files::write(need("cpuset")?, "cpuset.mems", mems)?;
        }
    }
    if let Some(p) = r.pids() {
        write_knob(need("pids")?, "pids.max", &convert::pids_max(p.limit()))?;
    }
    if let Some(b) = r.block_io() {
        blkio(need("blkio")?, b)?;
    }
    if let Some(h) = r.hugepage_limits().as_deref().filter(|h| !h.is_empty()) {
        hugetlb(m, h)?;
    }
    if let Some(n) = r.network() {
        network(m, n)?;
    }
    if let Some(rd) = r.rdma().as_ref().filter(|r| !r.is_empty()) {
        v2::set::rdma(need("rdma")?, rd)?;
    }
    if let Some(d) = r.devices() {
        devices(need("devices")?, d)?;
    }
    if let Some(u) = r.unified().as_ref().filter(|u| !u.is_empty()) {
        match &m.unified {
            Some(ud) => v2::set::unified(&ud.dir, u)?,
            None => return Err(CgroupError::unsupported("unified resources on cgroup v1")),
        }
    }
    Ok(())
}

fn memory_requested(m: &LinuxMemory) -> bool {
    #[allow(deprecated)]
    let kernel = m.kernel();
    m.limit().is_some()
        || m.reservation().is_some()
        || m.swap().is_some()
        || kernel.is_some()
        || m.kernel_tcp().is_some()
        || m.swappiness().is_some()
        || m.disable_oom_killer().is_some()
}

fn memory(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    let limit = m.limit().unwrap_or(0);
    let mut swap = m.swap().unwrap_or(0);
    // Unlimited memory with swap unset means unlimited memory+swap too (runc does the same).
    if limit == -1 && swap == 0 && files::exists(dir, "memory.memsw.limit_in_bytes") {
        swap = -1;
    }
    if m.check_before_update() == Some(true) && limit > 0 {
        let usage = files::read_u64_or_zero(dir, "memory.usage_in_bytes")?;
        if usage > limit.cast_unsigned() {
            return Err(CgroupError::invalid(
                "memory.limit",
                limit,
                "below current usage",
            ));
        }
    }
    if swap != 0 && swap != -1 && limit > 0 && swap < limit {
        return Err(CgroupError::invalid(
            "memory.swap",
            swap,
            "memory+swap must not be below the memory limit",
        ));
    }
    let write_limit = |v: i64| -> Result<(), CgroupError> {
        if v == 0 {
            return Ok(());
        }
        write_knob(
            dir,
            "memory.limit_in_bytes",
            &convert::v1_limit("memory.limit", v)?,
        )
    };
    let has_memsw = files::exists(dir, "memory.memsw.limit_in_bytes");
    let write_swap = |v: i64| -> Result<(), CgroupError> {
        // Unlimited memory+swap is what a kernel without swap accounting already enforces.
        if v == 0 || (v == -1 && !has_memsw) {
            return Ok(());
        }
        write_knob(
            dir,
            "memory.memsw.limit_in_bytes",
            &convert::v1_limit("memory.swap", v)?,
        )
    };
    // memsw must stay >= memory at every step: raise memsw first, lower it last.
    let current_memsw = files::read_u64_opt(dir, "memory.memsw.limit_in_bytes")?;
    let swap_first =
        swap == -1 || current_memsw.is_some_and(|cur| swap > 0 && cur < swap.cast_unsigned());
    if swap_first {
        write_swap(swap)?;
        write_limit(limit)?;
    } else {
        write_limit(limit)?;
        write_swap(swap)?;
    }
    if let Some(r) = m.reservation().filter(|r| *r != 0) {
        write_knob(
            dir,
            "memory.soft_limit_in_bytes",
            &convert::v1_limit("memory.reservation", r)?,
        )?;
    }
    #[allow(deprecated)]
    if m.kernel().is_some() {
        // Kernel memory limits were deprecated in 5.4 and stopped working in 5.16; runc ignores
        // them too.
        tracing::warn!("memory.kernel limit ignored: not supported by current kernels");
    }
    if let Some(t) = m.kernel_tcp().filter(|t| *t != 0) {
        write_knob(
            dir,
            "memory.kmem.tcp.limit_in_bytes",
            &convert::v1_limit("memory.kernelTCP", t)?,
        )?;
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(CgroupError::invalid(
                "memory.swappiness",
                s,
                "must be 0..=100",
            ));
        }
        write_knob(dir, "memory.swappiness", &s.to_string())?;
    }
    if m.disable_oom_killer() == Some(true) {
        write_knob(dir, "memory.oom_control", "1")?;
    }
    Ok(())
}

fn cpu_requested(c: &LinuxCpu) -> bool {
    c.shares().is_some()
        || c.quota().is_some()
        || c.period().is_some()
        || c.burst().is_some()
        || c.idle().is_some()
        || c.realtime_period().is_some()
        || c.realtime_runtime().is_some()
}

fn cpu(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        write_knob(dir, "cpu.shares", &s.to_string())?;
    }
    // Period before quota: a quota is checked against the period in force.
    if let Some(p) = c.period().filter(|p| *p != 0) {
        write_knob(dir, "cpu.cfs_period_us", &p.to_string())?;
    }
    if let Some(q) = c.quota().filter(|q| *q != 0) {
        let q = if q < 0 { -1 } else { q };
        write_knob(dir, "cpu.cfs_quota_us", &q.to_string())?;
    }
    if let Some(b) = c.burst() {
        write_knob(dir, "cpu.cfs_burst_us", &b.to_string())?;
    }
    if let Some(i) = c.idle() {
        write_knob(dir, "cpu.idle", &i.to_string())?;
    }
    if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
        write_knob(dir, "cpu.rt_period_us", &p.to_string())?;
    }
    if let Some(r) = c.realtime_runtime().filter(|r| *r != 0) {
        write_knob(dir, "cpu.rt_runtime_us", &r.to_string())?;
    }
    Ok(())
}

fn blkio(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    // CFQ's files are gone from current kernels; BFQ offers its own weight files.
    let weight_file = if files::exists(dir, "blkio.weight") {
        "blkio.weight"
    } else {
        "blkio.bfq.weight"
    };
    let weight_dev_file = if files::exists(dir, "blkio.weight_device") {
        "blkio.weight_device"
    } else {
        "blkio.bfq.weight_device"
    };
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        write_knob(dir, weight_file, &w.to_string())?;
    }
    if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
        write_knob(dir, "blkio.leaf_weight", &w.to_string())?;
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            write_knob(
                dir,
                weight_dev_file,
                &convert::device_line(d.major(), d.minor(), w),
            )?;
        }
        if let Some(w) = d.leaf_weight() {
            write_knob(
                dir,
                "blkio.leaf_weight_device",
                &convert::device_line(d.major(), d.minor(), w),
            )?;
        }
    }
    let throttles = [
        (
            "blkio.throttle.read_bps_device",
            b.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            b.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            b.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            b.throttle_write_iops_device(),
        ),
    ];
    for (file, list) in throttles {
        for t in list.iter().flatten() {
            write_knob(
                dir,
                file,
                &convert::device_line(t.major(), t.minor(), t.rate()),
            )?;
        }
    }
    Ok(())
}

fn hugetlb(m: &V1Manager, limits: &[LinuxHugepageLimit]) -> Result<(), CgroupError> {
    if let Some(dir) = m.dir("hugetlb") {
        for h in limits {
            let size = convert::hugepage_size(h.page_size())?;
            let v = convert::v1_limit("hugepageLimits.limit", h.limit())?;
            write_knob(dir, &format!("hugetlb.{size}.limit_in_bytes"), &v)?;
        }
        return Ok(());
    }
    match m.unified_for("hugetlb") {
        Some(u) => {
            v2::enable_controllers(&u.mount, &u.dir, Some(&["hugetlb"]))?;
            v2::set::hugetlb(&u.dir, limits)
        }
        None => Err(CgroupError::unsupported("hugetlb controller")),
    }
}

fn network(m: &V1Manager, n: &LinuxNetwork) -> Result<(), CgroupError> {
    if let Some(id) = n.class_id() {
        let dir = m
            .dir("net_cls")
            .ok_or_else(|| CgroupError::unsupported("net_cls controller"))?;
        write_knob(dir, "net_cls.classid", &id.to_string())?;
    }
    if let Some(prios) = n.priorities().as_ref().filter(|p| !p.is_empty()) {
        let dir = m
            .dir("net_prio")
            .ok_or_else(|| CgroupError::unsupported("net_prio controller"))?;
        for p in prios {
            write_knob(
                dir,
                "net_prio.ifpriomap",
                &format!("{} {}", p.name(), p.priority()),
            )?;
        }
    }
    Ok(())
}

/// Deny everything, then replay the rules in order, as runc does on v1.
///
/// Resetting opens a short window in which a running container is denied every device, so when
/// the rules are the usual "deny all, then allow a list" and `devices.list` already shows exactly
/// that list, nothing is written (an `update` that resends the same rules is a no-op).
fn devices(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    let rules = convert::device_rules(rules)?;
    if let Some(mut want) = allow_list_after_deny_all(&rules) {
        let current = files::read(dir, "devices.list")?;
        let mut have: Vec<&str> = current.lines().filter(|l| !l.is_empty()).collect();
        have.sort_unstable();
        want.sort_unstable();
        if have == want {
            return Ok(());
        }
    }
    write_knob(dir, "devices.deny", "a")?;
    for r in &rules {
        let file = if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        for line in r.v1_lines() {
            files::write(dir, file, &line)?;
        }
    }
    Ok(())
}

/// The `devices.list` lines the kernel shows after `rules`, when they are a deny-all followed only
/// by allows, each rendering to distinct lines; `None` when the outcome is not that simple.
fn allow_list_after_deny_all(rules: &[convert::DeviceRule]) -> Option<Vec<String>> {
    let (first, rest) = rules.split_first()?;
    if first.allow || !first.is_everything() || rest.iter().any(|r| !r.allow || r.is_everything()) {
        return None;
    }
    let lines: Vec<String> = rest
        .iter()
        .flat_map(convert::DeviceRule::v1_lines)
        .collect();
    let mut unique = lines.clone();
    unique.sort_unstable();
    unique.dedup();
    (unique.len() == lines.len()).then_some(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use convert::{ACCESS_ALL, DeviceClass, DeviceRule};

    fn r(allow: bool, class: DeviceClass, major: Option<u32>) -> DeviceRule {
        DeviceRule {
            allow,
            class,
            major,
            minor: Some(3),
            access: ACCESS_ALL,
        }
    }

    #[test]
    fn expected_list_only_for_deny_all_then_allows() {
        let deny_all = DeviceRule {
            allow: false,
            class: DeviceClass::All,
            major: None,
            minor: None,
            access: ACCESS_ALL,
        };
        assert_eq!(allow_list_after_deny_all(&[deny_all]), Some(vec![]));
        assert_eq!(
            allow_list_after_deny_all(&[deny_all, r(true, DeviceClass::Char, Some(1))]),
            Some(vec!["c 1:3 rwm".to_string()])
        );
        assert_eq!(
            allow_list_after_deny_all(&[r(true, DeviceClass::Char, Some(1))]),
            None
        );
        assert_eq!(
            allow_list_after_deny_all(&[deny_all, r(false, DeviceClass::Char, Some(1))]),
            None
        );
        let dup = r(true, DeviceClass::Char, Some(1));
        assert_eq!(allow_list_after_deny_all(&[deny_all, dup, dup]), None);
    }
}
