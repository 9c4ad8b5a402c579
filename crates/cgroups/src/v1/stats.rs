//! Usage figures from v1 hierarchies.

use std::path::Path;

use super::V1Manager;
use crate::error::CgroupError;
use crate::files;
use crate::stats::{self as st, BlkioEntry, Hugetlb, MemoryEntry, Stats};

/// `cpuacct.stat` counts in USER_HZ ticks, which Linux fixes at 100 per second for this
/// interface whatever the kernel's HZ.
const NS_PER_USER_TICK: u64 = 10_000_000;

pub(super) fn read(m: &V1Manager) -> Result<Stats, CgroupError> {
    let mut s = Stats::default();
    if let Some(d) = m.dir("cpuacct") {
        cpuacct(d, &mut s)?;
    }
    if let Some(d) = m.dir("cpu") {
        let cs = files::read_flat_keyed(d, "cpu.stat")?;
        let g = |k: &str| cs.get(k).copied().unwrap_or(0);
        s.cpu.throttling.periods = g("nr_periods");
        s.cpu.throttling.throttled_periods = g("nr_throttled");
        s.cpu.throttling.throttled_time = g("throttled_time");
    }
    if let Some(d) = m.dir("memory") {
        memory(d, &mut s)?;
    }
    if let Some(d) = m.dir("pids") {
        s.pids.current = files::read_u64_or_zero(d, "pids.current")?;
        s.pids.limit = match files::read_u64_opt(d, "pids.max")? {
            Some(u64::MAX) | None => 0,
            Some(v) => v,
        };
    }
    if let Some(d) = m.dir("blkio") {
        blkio(d, &mut s)?;
    }
    if let Some(d) = m.dir("hugetlb") {
        for size in hugepage_sizes(d)? {
            let f = |k: &str| files::read_u64_or_zero(d, &format!("hugetlb.{size}.{k}"));
            s.hugetlb.insert(
                size.clone(),
                Hugetlb {
                    usage: f("usage_in_bytes")?,
                    max: f("max_usage_in_bytes")?,
                    failcnt: f("failcnt")?,
                },
            );
        }
    }
    Ok(s)
}

fn per_cpu(dir: &Path, file: &str) -> Result<Vec<u64>, CgroupError> {
    Ok(files::read_opt(dir, file)?
        .map(|t| {
            t.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default())
}

fn cpuacct(d: &Path, s: &mut Stats) -> Result<(), CgroupError> {
    let u = &mut s.cpu.usage;
    u.total = files::read_u64_or_zero(d, "cpuacct.usage")?;
    u.percpu = per_cpu(d, "cpuacct.usage_percpu")?;
    u.percpu_kernel = per_cpu(d, "cpuacct.usage_percpu_sys")?;
    u.percpu_user = per_cpu(d, "cpuacct.usage_percpu_user")?;
    match (
        files::read_u64_opt(d, "cpuacct.usage_user")?,
        files::read_u64_opt(d, "cpuacct.usage_sys")?,
    ) {
        (Some(user), Some(sys)) => {
            u.user = user;
            u.kernel = sys;
        }
        _ => {
            let stat = files::read_flat_keyed(d, "cpuacct.stat")?;
            u.user = stat
                .get("user")
                .copied()
                .unwrap_or(0)
                .saturating_mul(NS_PER_USER_TICK);
            u.kernel = stat
                .get("system")
                .copied()
                .unwrap_or(0)
                .saturating_mul(NS_PER_USER_TICK);
        }
    }
    Ok(())
}

fn memory_entry(d: &Path, prefix: &str) -> Result<MemoryEntry, CgroupError> {
    let f = |k: &str| files::read_u64_opt(d, &format!("{prefix}.{k}"));
    Ok(MemoryEntry {
        limit: f("limit_in_bytes")?.unwrap_or(0),
        usage: f("usage_in_bytes")?.unwrap_or(0),
        max: f("max_usage_in_bytes")?.unwrap_or(0),
        failcnt: f("failcnt")?.unwrap_or(0),
    })
}

fn memory(d: &Path, s: &mut Stats) -> Result<(), CgroupError> {
    let m = &mut s.memory;
    m.usage = memory_entry(d, "memory")?;
    m.swap = memory_entry(d, "memory.memsw")?;
    m.kernel = memory_entry(d, "memory.kmem")?;
    m.kernel_tcp = memory_entry(d, "memory.kmem.tcp")?;
    m.raw = files::read_flat_keyed(d, "memory.stat")?;
    m.cache = m
        .raw
        .get("total_cache")
        .or_else(|| m.raw.get("cache"))
        .copied()
        .unwrap_or(0);
    let oc = files::read_flat_keyed(d, "memory.oom_control")?;
    m.event_count.oom_kill = oc.get("oom_kill").copied().unwrap_or(0);
    m.event_count.max = m.usage.failcnt;
    Ok(())
}

/// The first non-empty of the same statistic from CFQ, BFQ and the throttle policy.
fn blkio_first(d: &Path, names: &[&str]) -> Result<Vec<BlkioEntry>, CgroupError> {
    for n in names {
        if let Some(t) = files::read_opt(d, n)? {
            let e = st::parse_blkio_v1(&t);
            if !e.is_empty() {
                return Ok(e);
            }
        }
    }
    Ok(Vec::new())
}

fn blkio(d: &Path, s: &mut Stats) -> Result<(), CgroupError> {
    let b = &mut s.blkio;
    b.io_service_bytes_recursive = blkio_first(
        d,
        &[
            "blkio.io_service_bytes_recursive",
            "blkio.bfq.io_service_bytes_recursive",
            "blkio.throttle.io_service_bytes_recursive",
        ],
    )?;
    b.io_serviced_recursive = blkio_first(
        d,
        &[
            "blkio.io_serviced_recursive",
            "blkio.bfq.io_serviced_recursive",
            "blkio.throttle.io_serviced_recursive",
        ],
    )?;
    b.io_queued_recursive = blkio_first(d, &["blkio.io_queued_recursive"])?;
    b.io_service_time_recursive = blkio_first(d, &["blkio.io_service_time_recursive"])?;
    b.io_wait_time_recursive = blkio_first(d, &["blkio.io_wait_time_recursive"])?;
    b.io_merged_recursive = blkio_first(d, &["blkio.io_merged_recursive"])?;
    b.io_time_recursive = blkio_first(d, &["blkio.time_recursive"])?;
    b.sectors_recursive = blkio_first(d, &["blkio.sectors_recursive"])?;
    Ok(())
}

fn hugepage_sizes(d: &Path) -> Result<Vec<String>, CgroupError> {
    let entries = std::fs::read_dir(d).map_err(|e| CgroupError::read(d, e))?;
    let mut v: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("hugetlb."))
                .and_then(|n| n.strip_suffix(".limit_in_bytes"))
                .map(str::to_owned)
        })
        .collect();
    v.sort();
    Ok(v)
}
