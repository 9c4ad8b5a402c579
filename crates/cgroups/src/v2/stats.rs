//! Usage figures from a unified-hierarchy cgroup.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::CgroupError;
use crate::files;
use crate::stats::{self as st, Hugetlb, Stats};

/// Reads every figure the cgroup's enabled controllers expose.
pub(crate) fn read(dir: &Path) -> Result<Stats, CgroupError> {
    let mut s = Stats::default();

    let cpu = files::read_flat_keyed(dir, "cpu.stat")?;
    let us = |k: &str| cpu.get(k).copied().unwrap_or(0).saturating_mul(1000);
    s.cpu.usage.total = us("usage_usec");
    s.cpu.usage.user = us("user_usec");
    s.cpu.usage.kernel = us("system_usec");
    s.cpu.throttling.periods = cpu.get("nr_periods").copied().unwrap_or(0);
    s.cpu.throttling.throttled_periods = cpu.get("nr_throttled").copied().unwrap_or(0);
    s.cpu.throttling.throttled_time = us("throttled_usec");

    if files::exists(dir, "memory.current") {
        let m = &mut s.memory;
        m.usage.usage = files::read_u64_or_zero(dir, "memory.current")?;
        m.usage.limit = files::read_u64_opt(dir, "memory.max")?.unwrap_or(u64::MAX);
        m.usage.max = files::read_u64_or_zero(dir, "memory.peak")?;
        m.swap.usage = files::read_u64_or_zero(dir, "memory.swap.current")?;
        m.swap.limit = files::read_u64_opt(dir, "memory.swap.max")?.unwrap_or(u64::MAX);
        m.swap.max = files::read_u64_or_zero(dir, "memory.swap.peak")?;
        m.raw = files::read_flat_keyed(dir, "memory.stat")?;
        m.cache = m.raw.get("file").copied().unwrap_or(0);
        let ev = files::read_flat_keyed(dir, "memory.events")?;
        let e = |k: &str| ev.get(k).copied().unwrap_or(0);
        m.event_count.low = e("low");
        m.event_count.high = e("high");
        m.event_count.max = e("max");
        m.event_count.oom = e("oom");
        m.event_count.oom_kill = e("oom_kill");
        m.usage.failcnt = e("max");
    }

    s.pids.current = files::read_u64_or_zero(dir, "pids.current")?;
    s.pids.limit = match files::read_u64_opt(dir, "pids.max")? {
        Some(u64::MAX) | None => 0,
        Some(v) => v,
    };

    if let Some(io) = files::read_opt(dir, "io.stat")? {
        let (bytes, ios) = st::parse_io_stat(&io);
        s.blkio.io_service_bytes_recursive = bytes;
        s.blkio.io_serviced_recursive = ios;
    }

    s.hugetlb = hugetlb(dir)?;
    Ok(s)
}

/// `hugetlb.<size>.current/max/events` for every page size the cgroup shows.
pub(crate) fn hugetlb(dir: &Path) -> Result<BTreeMap<String, Hugetlb>, CgroupError> {
    let mut out = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(CgroupError::read(dir, e)),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(size) = name
            .to_str()
            .and_then(|n| n.strip_prefix("hugetlb."))
            .and_then(|n| n.strip_suffix(".current"))
        else {
            continue;
        };
        let events = files::read_flat_keyed(dir, &format!("hugetlb.{size}.events"))?;
        out.insert(
            size.to_owned(),
            Hugetlb {
                usage: files::read_u64_or_zero(dir, &format!("hugetlb.{size}.current"))?,
                max: files::read_u64_or_zero(dir, &format!("hugetlb.{size}.max"))?,
                failcnt: events.get("max").copied().unwrap_or(0),
            },
        );
    }
    Ok(out)
}
