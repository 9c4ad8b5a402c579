//! Verbs on a live container's processes: `pause`/`unpause` (the cgroup freezer, through the
//! container's OCI runtime), `rename`, `top` (the host's `ps` filtered to the container's
//! cgroup, as Docker does), `port`, and the `stats` sample.
//!
//! The container's cgroup is found from its init's `/proc/<pid>/cgroup`, so it is found the
//! same way whichever runtime placed it (in-process, runc, berth-runtime).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::containers::Container;
use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::state::{Status, Transition};

/// One `stats` reading of a container: raw counters; rates come from two readings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSample {
    /// Container CPU time used, ns.
    pub cpu_ns: u64,
    /// Host CPU time elapsed over all CPUs, ns (`/proc/stat`).
    pub system_ns: u64,
    /// Online CPUs.
    pub online_cpus: u32,
    /// Memory in use, bytes, without the inactive page cache (as `docker stats` shows it).
    pub mem_usage: u64,
    /// Memory limit, bytes (the host's memory when unlimited).
    pub mem_limit: u64,
    /// Bytes received over the container's network interfaces (not loopback).
    pub net_rx: u64,
    /// Bytes sent.
    pub net_tx: u64,
    /// Bytes read from block devices.
    pub blk_read: u64,
    /// Bytes written.
    pub blk_write: u64,
    /// Tasks.
    pub pids: u64,
}

/// `top`'s answer: `ps`'s column titles and the rows of the container's processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Top {
    /// Column titles.
    pub titles: Vec<String>,
    /// One row per process, a cell per title.
    pub processes: Vec<Vec<String>>,
}

impl Engine {
    /// Freezes every process of a running container.
    ///
    /// Errors: no such container, `Conflict` unless it is running, the runtime's failure.
    pub fn pause(&self, reference: &str) -> Result<Container> {
        let c = self.container(reference)?;
        match c.state.status {
            Status::Running => {}
            Status::Paused => {
                return Err(EngineError::PauseState {
                    id: c.id.short().to_owned(),
                    paused: true,
                });
            }
            _ => {
                return Err(EngineError::NotRunning {
                    id: c.id.to_string(),
                });
            }
        }
        crate::oci::for_container(&self.paths, &c).pause(c.id.as_str())?;
        self.store
            .write(|tx| tx.transition(&c.id, Transition::Paused))
    }

    /// Thaws a paused container.
    ///
    /// Errors: no such container, `Conflict` unless it is paused, the runtime's failure.
    pub fn unpause(&self, reference: &str) -> Result<Container> {
        let c = self.container(reference)?;
        if c.state.status != Status::Paused {
            return Err(EngineError::PauseState {
                id: c.id.short().to_owned(),
                paused: false,
            });
        }
        crate::oci::for_container(&self.paths, &c).resume(c.id.as_str())?;
        self.store
            .write(|tx| tx.transition(&c.id, Transition::Unpaused))
    }

    /// Renames a container.
    ///
    /// Errors: no such container, a bad or taken name.
    pub fn rename(&self, reference: &str, new_name: &str) -> Result<Container> {
        self.store
            .write(|tx| tx.rename_container(reference, new_name))
    }

    /// The container's processes as the host's `ps` shows them with `ps_args` (`-ef` when
    /// empty): `ps` runs on the host and its rows are kept when their PID is in the container's
    /// cgroup.
    ///
    /// Errors: no such container, not running, `ps` fails or prints no PID column.
    pub fn top(&self, reference: &str, ps_args: &[String]) -> Result<Top> {
        let c = self.container(reference)?;
        let pids = self.container_pids(&c)?;
        let args: Vec<String> = if ps_args.is_empty() {
            vec!["-ef".to_owned()]
        } else {
            ps_args.to_vec()
        };
        let out = Command::new("ps")
            .args(&args)
            .output()
            .map_err(crate::engine::io_err("run", Path::new("ps")))?;
        if !out.status.success() {
            return Err(EngineError::InvalidValue {
                what: "ps options",
                value: format!(
                    "{}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        parse_ps(&String::from_utf8_lossy(&out.stdout), &pids).ok_or_else(|| {
            EngineError::InvalidValue {
                what: "ps options (no PID column in the output)",
                value: args.join(" "),
            }
        })
    }

    /// Published ports: private `port/proto` -> host `ip:port`s. Containers on the `none` and
    /// `host` networks publish nothing.
    ///
    /// Errors: no such container.
    pub fn ports(&self, reference: &str) -> Result<BTreeMap<String, Vec<String>>> {
        let c = self.container(reference)?;
        let mut out = BTreeMap::new();
        if matches!(c.host_config.network_mode.as_str(), "" | "none" | "host")
            || !c.state.status.is_active()
        {
            return Ok(out);
        }
        let leases = self.store.read(|tx| tx.port_leases(Some(c.id.as_str())))?;
        for l in leases {
            out.entry(format!("{}/{}", l.container_port, l.proto))
                .or_insert_with(Vec::new)
                .push(crate::networks::host_binding(&l.host_ip, l.host_port));
        }
        Ok(out)
    }

    /// One reading of the container's usage counters.
    ///
    /// Errors: no such container, not running, its cgroup cannot be read.
    pub fn stats_sample(&self, c: &Container) -> Result<StatsSample> {
        let (pid, manager) = self.cgroup_of(c)?;
        let cg_err = |source| EngineError::Cgroup {
            action: format!("read usage of container {}", c.id.short()),
            source: Box::new(source),
        };
        let stats = manager.stats().map_err(cg_err)?;
        let (system_ns, online_cpus) = host_cpu();
        let inactive = ["total_inactive_file", "inactive_file"]
            .iter()
            .find_map(|k| stats.memory.raw.get(*k).copied())
            .unwrap_or(0);
        let host_mem = host_memory();
        let limit = match stats.memory.usage.limit {
            0 | u64::MAX => host_mem,
            l => l.min(host_mem.max(1)),
        };
        let blk = |op: &str| {
            stats
                .blkio
                .io_service_bytes_recursive
                .iter()
                .filter(|e| e.op.eq_ignore_ascii_case(op))
                .map(|e| e.value)
                .sum()
        };
        // On the host's network the counters are the host's, not the container's: Docker
        // shows none.
        let (net_rx, net_tx) = if c.host_config.network_mode == "host" {
            (0, 0)
        } else {
            net_dev(pid)
        };
        Ok(StatsSample {
            cpu_ns: stats.cpu.usage.total,
            system_ns,
            online_cpus,
            mem_usage: stats.memory.usage.usage.saturating_sub(inactive),
            mem_limit: limit,
            net_rx,
            net_tx,
            blk_read: blk("read"),
            blk_write: blk("write"),
            pids: stats.pids.current,
        })
    }

    /// Host pids of every process in the container's cgroup.
    pub(crate) fn container_pids(&self, c: &Container) -> Result<Vec<i32>> {
        let (_, manager) = self.cgroup_of(c)?;
        manager.pids().map_err(|source| EngineError::Cgroup {
            action: format!("list processes of container {}", c.id.short()),
            source: Box::new(source),
        })
    }

    /// Init's pid and the manager of the cgroup init is in.
    fn cgroup_of(&self, c: &Container) -> Result<(i32, Box<dyn cgroups::CgroupManager>)> {
        let not_running = || EngineError::NotRunning {
            id: c.id.to_string(),
        };
        if !matches!(c.state.status, Status::Running | Status::Paused) {
            return Err(not_running());
        }
        let pid = c.state.pid.ok_or_else(not_running)?;
        let proc_cgroup =
            std::fs::read_to_string(format!("/proc/{pid}/cgroup")).map_err(|_| not_running())?;
        let manager = cgroups::process_manager(Path::new(cgroups::DEFAULT_ROOT), &proc_cgroup)
            .map_err(|source| EngineError::Cgroup {
                action: format!("find cgroup of container {}", c.id.short()),
                source: Box::new(source),
            })?;
        Ok((pid, manager))
    }
}

/// Keeps the rows of `ps` output whose PID column is in `pids`; `None` without a PID column.
/// The last column (the command) keeps its spaces.
fn parse_ps(output: &str, pids: &[i32]) -> Option<Top> {
    let mut lines = output.lines();
    let titles: Vec<String> = lines
        .next()?
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let pid_col = titles.iter().position(|t| t == "PID")?;
    let mut processes = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let cells = split_columns(line, titles.len());
        let Some(pid) = cells.get(pid_col).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if pids.contains(&pid) {
            processes.push(cells);
        }
    }
    Some(Top { titles, processes })
}

/// Splits a `ps` line into `n` cells: whitespace-separated, the last one the rest of the line.
fn split_columns(line: &str, n: usize) -> Vec<String> {
    let mut cells = Vec::with_capacity(n);
    let mut rest = line.trim_start();
    while cells.len() + 1 < n {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        cells.push(rest[..end].to_owned());
        rest = rest[end..].trim_start();
    }
    cells.push(rest.trim_end().to_owned());
    cells
}

/// Host CPU time over all CPUs in ns (the `cpu` line of `/proc/stat`, in USER_HZ ticks) and
/// the number of CPUs it counts.
fn host_cpu() -> (u64, u32) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let mut total = 0u64;
    let mut cpus = 0u32;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("cpu ") {
            // user nice system idle iowait irq softirq steal (guest time is inside user).
            total = rest
                .split_whitespace()
                .take(8)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum();
        } else if line.starts_with("cpu") {
            cpus += 1;
        }
    }
    // USER_HZ is 100 on every Linux ABI.
    (total * 10_000_000, cpus.max(1))
}

fn host_memory() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Bytes received and sent on every interface but loopback in the network namespace of `pid`.
fn net_dev(pid: i32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    parse_net_dev(&text)
}

fn parse_net_dev(text: &str) -> (u64, u64) {
    let (mut rx, mut tx) = (0, 0);
    for line in text.lines().skip(2) {
        let Some((iface, counters)) = line.split_once(':') else {
            continue;
        };
        if iface.trim() == "lo" {
            continue;
        }
        let v: Vec<u64> = counters
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        rx += v.first().copied().unwrap_or(0);
        tx += v.get(8).copied().unwrap_or(0);
    }
    (rx, tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_rows_are_filtered_by_pid_and_keep_the_command_whole() {
        let out = "UID          PID    PPID  C STIME TTY          TIME CMD\n\
                   root           1       0  0 10:00 ?        00:00:01 /sbin/init splash\n\
                   root         420       1  0 10:00 ?        00:00:00 sleep 100\n";
        let top = parse_ps(out, &[420]).unwrap();
        assert_eq!(top.titles.len(), 8);
        assert_eq!(top.processes.len(), 1);
        assert_eq!(top.processes[0][1], "420");
        assert_eq!(top.processes[0][7], "sleep 100");
        assert!(parse_ps("USER COMMAND\nroot x\n", &[1]).is_none());
    }

    #[test]
    fn net_dev_sums_all_but_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
            face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
            lo:  100 1 0 0 0 0 0 0  100 1 0 0 0 0 0 0\n  \
            eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n";
        assert_eq!(parse_net_dev(text), (1000, 2000));
    }
}
