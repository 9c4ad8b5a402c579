//! Writing OCI resources to a unified-hierarchy cgroup.

use std::collections::HashMap;
use std::path::Path;

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxRdma, LinuxResources,
};

use crate::convert;
use crate::error::CgroupError;
use crate::files;

/// Writes `value` to `file`, reporting a missing file as an unsupported resource (the controller
/// is not enabled or the kernel lacks the knob).
pub(crate) fn write_knob(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    if !files::exists(dir, file) {
        return Err(CgroupError::unsupported(file));
    }
    files::write(dir, file, value)
}

/// Applies every resource in `r`. `unified` goes last so its raw keys win.
pub(crate) fn all(dir: &Path, r: &LinuxResources) -> Result<(), CgroupError> {
    if let Some(m) = r.memory() {
        memory(dir, m)?;
    }
    if let Some(c) = r.cpu() {
        cpu(dir, c)?;
    }
    if let Some(p) = r.pids() {
        write_knob(dir, "pids.max", &convert::pids_max(p.limit()))?;
    }
    if let Some(b) = r.block_io() {
        io(dir, b)?;
    }
    if let Some(h) = r.hugepage_limits() {
        hugetlb(dir, h)?;
    }
    if let Some(rd) = r.rdma() {
        rdma(dir, rd)?;
    }
    if let Some(n) = r.network()
        && (n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()))
    {
        return Err(CgroupError::unsupported("network (net_cls/net_prio)"));
    }
    if let Some(d) = r.devices() {
        super::devices::apply(dir, d)?;
    }
    if let Some(u) = r.unified() {
        unified(dir, u)?;
    }
    Ok(())
}

fn memory(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    let limit = m.limit().filter(|l| *l != 0);
    if m.check_before_update() == Some(true)
        && let Some(l) = limit.filter(|l| *l > 0)
    {
        let current = files::read_u64_or_zero(dir, "memory.current")?;
        if current > l.cast_unsigned() {
            return Err(CgroupError::invalid(
                "memory.limit",
                l,
                "below current usage",
            ));
        }
    }
    // Swap first: the new memory.max does not depend on it on v2, but runc's order is kept so
    // a failing swap write leaves the memory limit untouched.
    if let Some(swap) = convert::v2_swap(m.limit(), m.swap())? {
        if files::exists(dir, "memory.swap.max") {
            files::write(dir, "memory.swap.max", &swap)?;
        } else if swap != "max" {
            return Err(CgroupError::unsupported("memory.swap.max"));
        }
    }
    if let Some(l) = limit {
        write_knob(dir, "memory.max", &convert::v2_limit("memory.limit", l)?)?;
    }
    if let Some(r) = m.reservation().filter(|r| *r != 0) {
        write_knob(
            dir,
            "memory.low",
            &convert::v2_limit("memory.reservation", r)?,
        )?;
    }
    if m.swappiness().is_some() {
        // As Docker does on v2: there is no per-cgroup swappiness, so the knob is dropped.
        tracing::warn!("memory.swappiness has no cgroup v2 equivalent; ignored");
    }
    #[allow(deprecated)]
    let kernel = m.kernel();
    if kernel.is_some() || m.kernel_tcp().is_some() {
        tracing::warn!("kernel memory limits do not exist on cgroup v2; ignored");
    }
    if m.disable_oom_killer() == Some(true) {
        tracing::warn!("disableOOMKiller has no cgroup v2 equivalent; ignored");
    }
    Ok(())
}

fn cpu(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(w) = c.shares().and_then(convert::shares_to_weight) {
        write_knob(dir, "cpu.weight", &w.to_string())?;
    }
    if let Some(idle) = c.idle() {
        write_knob(dir, "cpu.idle", &idle.to_string())?;
    }
    if let Some(max) = convert::cpu_max(c.quota(), c.period()) {
        write_knob(dir, "cpu.max", &max)?;
    }
    if let Some(b) = c.burst() {
        write_knob(dir, "cpu.max.burst", &b.to_string())?;
    }
    if c.realtime_runtime().is_some_and(|r| r != 0) || c.realtime_period().is_some_and(|p| p != 0) {
        return Err(CgroupError::unsupported(
            "cpu.realtimeRuntime/realtimePeriod on cgroup v2",
        ));
    }
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        write_knob(dir, "cpuset.cpus", cpus)?;
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        write_knob(dir, "cpuset.mems", mems)?;
    }
    Ok(())
}

/// `io.max` value for a throttle rate: 0 lifts the limit, as writing 0 does on v1.
fn rate(v: u64) -> String {
    if v == 0 { "max".into() } else { v.to_string() }
}

fn io(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    let bfq = files::exists(dir, "io.bfq.weight");
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        if bfq {
            files::write(dir, "io.bfq.weight", &w.to_string())?;
        } else if let Some(w) = convert::blkio_weight_to_io_weight(w) {
            write_knob(dir, "io.weight", &w.to_string())?;
        }
    }
    if b.leaf_weight().is_some() {
        tracing::warn!("blkio leafWeight has no cgroup v2 equivalent; ignored");
    }
    for d in b.weight_device().iter().flatten() {
        let Some(w) = d.weight().filter(|w| *w != 0) else {
            continue;
        };
        if bfq {
            files::write(
                dir,
                "io.bfq.weight",
                &convert::device_line(d.major(), d.minor(), w),
            )?;
        } else if let Some(w) = convert::blkio_weight_to_io_weight(w) {
            write_knob(
                dir,
                "io.weight",
                &convert::device_line(d.major(), d.minor(), w),
            )?;
        }
    }
    let throttles = [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ];
    for (key, list) in throttles {
        for t in list.iter().flatten() {
            let line =
                convert::device_line(t.major(), t.minor(), format!("{key}={}", rate(t.rate())));
            write_knob(dir, "io.max", &line)?;
        }
    }
    Ok(())
}

/// `hugetlb.<size>.max` for each limit.
pub(crate) fn hugetlb(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<(), CgroupError> {
    for h in limits {
        let size = convert::hugepage_size(h.page_size())?;
        let value = convert::v2_limit("hugepageLimits.limit", h.limit())?;
        write_knob(dir, &format!("hugetlb.{size}.max"), &value)?;
    }
    Ok(())
}

/// `rdma.max` for each device.
pub(crate) fn rdma(dir: &Path, limits: &HashMap<String, LinuxRdma>) -> Result<(), CgroupError> {
    let mut devs: Vec<_> = limits.iter().collect();
    devs.sort_by(|a, b| a.0.cmp(b.0));
    for (dev, l) in devs {
        if dev.is_empty() || dev.contains(char::is_whitespace) {
            return Err(CgroupError::invalid("rdma", dev, "not a device name"));
        }
        if let Some(line) = convert::rdma_line(dev, l.hca_handles(), l.hca_objects()) {
            write_knob(dir, "rdma.max", &line)?;
        }
    }
    Ok(())
}

/// Raw `unified` keys, in name order. Each must be an existing interface file.
pub(crate) fn unified(dir: &Path, map: &HashMap<String, String>) -> Result<(), CgroupError> {
    let mut keys: Vec<_> = map.iter().collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    for (k, v) in keys {
        let k = convert::unified_key(k)?;
        write_knob(dir, k, v)?;
    }
    Ok(())
}
