//! Resource limits: Docker's unit syntax (`512m`, `1.5` CPUs, `nofile=1024:2048`), the checks
//! `dockerd` makes on a `HostConfig` before it creates anything, and the OCI `linux.resources`
//! and `process.rlimits` the limits become. The cgroups crate (through the runtime) applies them.

use serde_json::{Map, Value, json};

use crate::config::{HostConfig, Ulimit};
use crate::error::{EngineError, Result};

/// Docker's smallest memory limit (6 MiB): below it the container cannot even start.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// The CFS period `--cpus` uses, in microseconds.
const CPU_PERIOD: i64 = 100_000;

fn invalid(what: &'static str, value: impl Into<String>, reason: impl Into<String>) -> EngineError {
    EngineError::InvalidSetting {
        what,
        value: value.into(),
        reason: reason.into(),
    }
}

/// Parses a size the way Docker's `RAMInBytes` does: a decimal number, an optional space, an
/// optional unit `k`, `m`, `g`, `t` or `p` (powers of 1024, any case) and an optional `i`/`b`
/// suffix: `512m`, `1.5g`, `64MiB`, `1024`.
///
/// Errors: anything else, as Docker says it: `invalid size: 'abc'`.
pub fn parse_bytes(s: &str) -> std::result::Result<i64, String> {
    let bad = || format!("invalid size: '{s}'");
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, rest) = s.split_at(digits_end);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(bad());
    }
    let number: f64 = number.parse().map_err(|_| bad())?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest).to_ascii_lowercase();
    let (unit, suffix) = match rest.chars().next() {
        Some(c @ ('k' | 'm' | 'g' | 't' | 'p')) => (c, &rest[1..]),
        _ => (' ', rest.as_str()),
    };
    if !matches!(suffix, "" | "b" | "i" | "ib") {
        return Err(bad());
    }
    let shift = match unit {
        'k' => 10,
        'm' => 20,
        'g' => 30,
        't' => 40,
        'p' => 50,
        _ => 0,
    };
    #[allow(clippy::cast_precision_loss)]
    let bytes = number * (1_u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= 9.2e18 {
        return Err(bad());
    }
    #[allow(clippy::cast_possible_truncation)]
    Ok(bytes as i64)
}

/// Parses `--cpus` (a decimal number of CPUs) into nano-CPUs, as Docker's `NanoCPUs` does.
///
/// Errors: not a number, or more precise than 1e-9.
pub fn parse_cpus(s: &str) -> std::result::Result<i64, String> {
    let bad = || format!("failed to parse {s} as a rational number");
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > 9 {
        return Err("value is too precise".into());
    }
    let int: i64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let frac_nanos: i64 = format!("{frac:0<9}").parse().map_err(|_| bad())?;
    let nanos = int
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(frac_nanos))
        .ok_or_else(bad)?;
    Ok(if neg { -nanos } else { nanos })
}

/// The rlimit names `--ulimit` accepts and their OCI types.
const ULIMITS: [(&str, &str); 16] = [
    ("as", "RLIMIT_AS"),
    ("core", "RLIMIT_CORE"),
    ("cpu", "RLIMIT_CPU"),
    ("data", "RLIMIT_DATA"),
    ("fsize", "RLIMIT_FSIZE"),
    ("locks", "RLIMIT_LOCKS"),
    ("memlock", "RLIMIT_MEMLOCK"),
    ("msgqueue", "RLIMIT_MSGQUEUE"),
    ("nice", "RLIMIT_NICE"),
    ("nofile", "RLIMIT_NOFILE"),
    ("nproc", "RLIMIT_NPROC"),
    ("rss", "RLIMIT_RSS"),
    ("rtprio", "RLIMIT_RTPRIO"),
    ("rttime", "RLIMIT_RTTIME"),
    ("sigpending", "RLIMIT_SIGPENDING"),
    ("stack", "RLIMIT_STACK"),
];

/// Parses `--ulimit name=soft[:hard]` (hard defaults to soft; `-1` is unlimited).
///
/// Errors: a malformed value, an unknown name, or soft above hard.
pub fn parse_ulimit(s: &str) -> std::result::Result<Ulimit, String> {
    let (name, limits) = s
        .split_once('=')
        .ok_or_else(|| format!("invalid ulimit argument: {s}"))?;
    if !ULIMITS.iter().any(|(n, _)| *n == name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
    let num = |v: &str| {
        v.parse::<i64>()
            .map_err(|_| format!("invalid ulimit argument: {s}"))
    };
    let (soft, hard) = (num(soft)?, num(hard)?);
    let as_u = |v: i64| if v < 0 { u64::MAX } else { v.cast_unsigned() };
    if as_u(soft) > as_u(hard) {
        return Err(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        ));
    }
    Ok(Ulimit {
        name: name.to_owned(),
        soft,
        hard,
    })
}

/// The current hard limit of rlimit `name` in this process (`None`: unlimited or unknown).
fn current_hard_limit(name: &str) -> Option<u64> {
    use rustix::process::Resource;
    let resource = match name {
        "as" => Resource::As,
        "core" => Resource::Core,
        "cpu" => Resource::Cpu,
        "data" => Resource::Data,
        "fsize" => Resource::Fsize,
        "locks" => Resource::Locks,
        "memlock" => Resource::Memlock,
        "msgqueue" => Resource::Msgqueue,
        "nice" => Resource::Nice,
        "nofile" => Resource::Nofile,
        "nproc" => Resource::Nproc,
        "rss" => Resource::Rss,
        "rtprio" => Resource::Rtprio,
        "rttime" => Resource::Rttime,
        "sigpending" => Resource::Sigpending,
        "stack" => Resource::Stack,
        _ => return None,
    };
    rustix::process::getrlimit(resource).maximum
}

/// Checks a `HostConfig`'s limits the way `dockerd` does before creating anything, plus the one
/// berth adds: an rlimit above the current hard limit (raising it needs `CAP_SYS_RESOURCE`,
/// which berth does not assume).
///
/// Errors: `InvalidArgument`, naming the setting and why.
pub fn validate(h: &HostConfig) -> Result<()> {
    if h.memory != 0 && h.memory < MIN_MEMORY {
        return Err(invalid(
            "memory",
            h.memory.to_string(),
            "minimum memory limit allowed is 6MB",
        ));
    }
    if h.memory_swap > 0 {
        if h.memory == 0 {
            return Err(invalid(
                "memory-swap",
                h.memory_swap.to_string(),
                "you should always set the memory limit when using memory-swap",
            ));
        }
        if h.memory_swap < h.memory {
            return Err(invalid(
                "memory-swap",
                h.memory_swap.to_string(),
                "minimum memoryswap limit should be larger than memory limit",
            ));
        }
    }
    if h.memory_reservation < 0 || (h.memory > 0 && h.memory_reservation > h.memory) {
        return Err(invalid(
            "memory-reservation",
            h.memory_reservation.to_string(),
            "minimum memory limit can not be less than memory reservation limit",
        ));
    }
    if h.nano_cpus != 0 {
        let ncpu = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let max = i64::try_from(ncpu).unwrap_or(i64::MAX) * 1_000_000_000;
        if h.nano_cpus < 10_000_000 || h.nano_cpus > max {
            #[allow(clippy::cast_precision_loss)]
            let given = h.nano_cpus as f64 / 1e9;
            return Err(invalid(
                "cpus",
                format!("{given}"),
                format!(
                    "range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
                ),
            ));
        }
        if h.cpu_period != 0 || h.cpu_quota != 0 {
            return Err(invalid(
                "cpus",
                format!("{}", h.nano_cpus),
                "conflicting options: --cpus and --cpu-period/--cpu-quota cannot both be set",
            ));
        }
    }
    if h.cpu_shares < 0 {
        return Err(invalid(
            "cpu-shares",
            h.cpu_shares.to_string(),
            "must not be negative",
        ));
    }
    if h.cpu_period != 0 && !(1000..=1_000_000).contains(&h.cpu_period) {
        return Err(invalid(
            "cpu-period",
            h.cpu_period.to_string(),
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ));
    }
    if h.cpu_quota > 0 && h.cpu_quota < 1000 {
        return Err(invalid(
            "cpu-quota",
            h.cpu_quota.to_string(),
            "CPU cfs quota can not be less than 1ms (i.e. 1000)",
        ));
    }
    for (what, list, online) in [
        (
            "cpuset-cpus",
            &h.cpuset_cpus,
            "/sys/devices/system/cpu/online",
        ),
        (
            "cpuset-mems",
            &h.cpuset_mems,
            "/sys/devices/system/node/online",
        ),
    ] {
        if list.is_empty() {
            continue;
        }
        let Some(wanted) = cpu_list(list) else {
            return Err(invalid(what, list.clone(), "not a list like 0-2,4"));
        };
        let available = std::fs::read_to_string(online).unwrap_or_default();
        if let Some(have) = cpu_list(available.trim())
            && !wanted.iter().all(|n| have.contains(n))
        {
            return Err(invalid(
                what,
                list.clone(),
                format!("not available here, available: {}", available.trim()),
            ));
        }
    }
    if h.shm_size < 0 {
        return Err(invalid(
            "shm-size",
            h.shm_size.to_string(),
            "must be positive",
        ));
    }
    for u in &h.ulimits {
        let spec = format!("{}={}:{}", u.name, u.soft, u.hard);
        parse_ulimit(&spec).map_err(|reason| invalid("ulimit", spec.clone(), reason))?;
        let hard = if u.hard < 0 {
            u64::MAX
        } else {
            u.hard.cast_unsigned()
        };
        if let Some(max) = current_hard_limit(&u.name)
            && hard > max
        {
            return Err(invalid(
                "ulimit",
                spec,
                format!(
                    "hard limit above the current hard limit {max} (raising it needs CAP_SYS_RESOURCE)"
                ),
            ));
        }
    }
    Ok(())
}

/// The numbers of a cpuset list (`0-2,4`); `None` when malformed.
fn cpu_list(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b) = (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?);
        if a > b || b - a > 4096 {
            return None;
        }
        out.extend(a..=b);
    }
    Some(out)
}

/// The OCI `linux.resources` limits of `h` (devices are the caller's).
#[must_use]
pub fn resources(h: &HostConfig) -> Map<String, Value> {
    let mut r = Map::new();
    let mut memory = Map::new();
    if h.memory > 0 {
        memory.insert("limit".into(), json!(h.memory));
        // Docker: swap unset means as much swap as memory (memory+swap = twice the memory).
        let swap = match h.memory_swap {
            0 => h.memory.saturating_mul(2),
            s => s,
        };
        memory.insert("swap".into(), json!(swap));
    }
    if h.memory_reservation > 0 {
        memory.insert("reservation".into(), json!(h.memory_reservation));
    }
    if h.oom_kill_disable == Some(true) {
        memory.insert("disableOOMKiller".into(), json!(true));
    }
    if !memory.is_empty() {
        r.insert("memory".into(), Value::Object(memory));
    }
    let mut cpu = Map::new();
    if h.cpu_shares > 0 {
        cpu.insert("shares".into(), json!(h.cpu_shares.max(2)));
    }
    if h.nano_cpus > 0 {
        cpu.insert("period".into(), json!(CPU_PERIOD));
        cpu.insert(
            "quota".into(),
            json!(h.nano_cpus * CPU_PERIOD / 1_000_000_000),
        );
    }
    if h.cpu_period > 0 {
        cpu.insert("period".into(), json!(h.cpu_period));
    }
    if h.cpu_quota != 0 {
        cpu.insert("quota".into(), json!(h.cpu_quota));
    }
    if !h.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), json!(h.cpuset_cpus));
    }
    if !h.cpuset_mems.is_empty() {
        cpu.insert("mems".into(), json!(h.cpuset_mems));
    }
    if !cpu.is_empty() {
        r.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(limit) = h.pids_limit
        && limit != 0
    {
        r.insert("pids".into(), json!({"limit": limit.max(-1)}));
    }
    r
}

/// The OCI `process.rlimits` of `h`.
#[must_use]
pub fn rlimits(h: &HostConfig) -> Vec<Value> {
    h.ulimits
        .iter()
        .filter_map(|u| {
            let (_, kind) = ULIMITS.iter().find(|(n, _)| *n == u.name)?;
            let v = |x: i64| if x < 0 { u64::MAX } else { x.cast_unsigned() };
            Some(json!({"type": kind, "soft": v(u.soft), "hard": v(u.hard)}))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(parse_bytes("512m"), Ok(512 << 20));
        assert_eq!(parse_bytes("1g"), Ok(1 << 30));
        assert_eq!(parse_bytes("1.5g"), Ok(3 << 29));
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("32 kb"), Ok(32 << 10));
        assert_eq!(parse_bytes("1024"), Ok(1024));
        for bad in ["abc", "", "m", "1x", "-1m", "1.m", "1gg"] {
            assert_eq!(parse_bytes(bad), Err(format!("invalid size: '{bad}'")));
        }
    }

    #[test]
    fn cpus_like_docker() {
        assert_eq!(parse_cpus("1.5"), Ok(1_500_000_000));
        assert_eq!(parse_cpus("0.5"), Ok(500_000_000));
        assert_eq!(parse_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_cpus(".25"), Ok(250_000_000));
        assert_eq!(parse_cpus("-1"), Ok(-1_000_000_000));
        assert!(parse_cpus("abc").is_err());
        assert!(parse_cpus("0.0000000001").is_err());
    }

    #[test]
    fn ulimits_like_docker() {
        let u = parse_ulimit("nofile=1024:2048").unwrap();
        assert_eq!((u.name.as_str(), u.soft, u.hard), ("nofile", 1024, 2048));
        assert_eq!(parse_ulimit("nproc=10").unwrap().hard, 10);
        assert!(parse_ulimit("nofile").is_err());
        assert!(parse_ulimit("bogus=1").is_err());
        assert!(parse_ulimit("nofile=20:10").is_err());
    }

    #[test]
    fn checks_like_dockerd() {
        let ok = |h: HostConfig| validate(&h).is_ok();
        assert!(ok(HostConfig {
            memory: 32 << 20,
            ..HostConfig::default()
        }));
        assert!(!ok(HostConfig {
            memory: 1 << 20,
            ..HostConfig::default()
        }));
        assert!(!ok(HostConfig {
            memory_swap: 64 << 20,
            ..HostConfig::default()
        }));
        assert!(!ok(HostConfig {
            nano_cpus: -1_000_000_000,
            ..HostConfig::default()
        }));
        assert!(!ok(HostConfig {
            cpuset_cpus: "1-0".into(),
            ..HostConfig::default()
        }));
        assert!(ok(HostConfig {
            cpuset_cpus: "0".into(),
            ..HostConfig::default()
        }));
        assert!(!ok(HostConfig {
            cpuset_cpus: "4095".into(),
            ..HostConfig::default()
        }));
        let huge = Ulimit {
            name: "nofile".into(),
            soft: 999_999_999,
            hard: 999_999_999,
        };
        assert!(!ok(HostConfig {
            ulimits: vec![huge],
            ..HostConfig::default()
        }));
    }

    #[test]
    fn resources_like_docker() {
        let h = HostConfig {
            memory: 32 << 20,
            nano_cpus: 500_000_000,
            pids_limit: Some(20),
            ..HostConfig::default()
        };
        let r = Value::Object(resources(&h));
        assert_eq!(r["memory"]["limit"], 32 << 20);
        assert_eq!(r["memory"]["swap"], 64 << 20);
        assert_eq!(r["cpu"]["quota"], 50_000);
        assert_eq!(r["cpu"]["period"], 100_000);
        assert_eq!(r["pids"]["limit"], 20);
        assert!(resources(&HostConfig::default()).is_empty());
    }
}
