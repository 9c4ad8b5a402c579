//! The limit flags `run`/`create` and `update` share, parsed with Docker's units and messages.
//!
//! Values are taken as strings and parsed here, so that a bad one is Docker's one-line
//! `invalid argument "abc" for "-m, --memory" flag: ...` with exit code 125, not clap's usage text.

use anyhow::Result;
use engine::{RestartPolicy, UpdateRequest};

/// `--memory`, `--cpus`, `--pids-limit`, `--restart`, ...
#[derive(Debug, clap::Args)]
pub(crate) struct LimitArgs {
    /// Memory limit (`512m`, `1g`).
    #[arg(short, long)]
    memory: Option<String>,
    /// Memory plus swap limit; `-1` for unlimited swap.
    #[arg(long, allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Memory soft limit.
    #[arg(long)]
    memory_reservation: Option<String>,
    /// Number of CPUs (`1.5`).
    #[arg(long, allow_hyphen_values = true)]
    cpus: Option<String>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long, allow_hyphen_values = true)]
    cpu_shares: Option<String>,
    /// CPUs in which to allow execution (`0-3`, `0,1`).
    #[arg(long)]
    cpuset_cpus: Option<String>,
    /// Tune container pids limit (`-1` for unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<String>,
    /// Restart policy: `no`, `always`, `on-failure[:N]`, `unless-stopped`.
    #[arg(long)]
    restart: Option<String>,
}

impl LimitArgs {
    /// The values given; `None` for flags not given.
    pub(crate) fn parse(&self) -> Result<UpdateRequest> {
        Ok(UpdateRequest {
            memory: size_flag("-m, --memory", self.memory.as_ref(), false)?,
            memory_swap: size_flag("--memory-swap", self.memory_swap.as_ref(), true)?,
            memory_reservation: size_flag(
                "--memory-reservation",
                self.memory_reservation.as_ref(),
                false,
            )?,
            nano_cpus: cpus_flag(self.cpus.as_ref())?,
            cpu_shares: int_flag("-c, --cpu-shares", self.cpu_shares.as_ref())?,
            cpuset_cpus: self.cpuset_cpus.clone(),
            pids_limit: int_flag("--pids-limit", self.pids_limit.as_ref())?,
            restart_policy: self
                .restart
                .as_deref()
                .map(RestartPolicy::parse)
                .transpose()?,
        })
    }
}

/// Docker's message for a flag value that does not parse.
pub(crate) fn bad_flag(flag: &str, value: &str, reason: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("invalid argument \"{value}\" for \"{flag}\" flag: {reason}")
}

/// Parses an optional size flag (`--memory 512m`); `-1` where `unlimited` is allowed.
pub(crate) fn size_flag(
    flag: &str,
    value: Option<&String>,
    unlimited: bool,
) -> Result<Option<i64>> {
    let Some(v) = value else { return Ok(None) };
    if unlimited && v == "-1" {
        return Ok(Some(-1));
    }
    engine::limits::parse_bytes(v)
        .map(Some)
        .map_err(|e| bad_flag(flag, v, e))
}

/// Parses an optional integer flag.
pub(crate) fn int_flag(flag: &str, value: Option<&String>) -> Result<Option<i64>> {
    let Some(v) = value else { return Ok(None) };
    v.parse::<i64>().map(Some).map_err(|_| {
        bad_flag(
            flag,
            v,
            format!("strconv.ParseInt: parsing \"{v}\": invalid syntax"),
        )
    })
}

/// Parses `--cpus`.
fn cpus_flag(value: Option<&String>) -> Result<Option<i64>> {
    let Some(v) = value else { return Ok(None) };
    engine::limits::parse_cpus(v)
        .map(Some)
        .map_err(|e| bad_flag("--cpus", v, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_errors_name_the_flag() {
        let e = size_flag("-m, --memory", Some(&"abc".to_owned()), false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid argument \"abc\" for \"-m, --memory\" flag: invalid size: 'abc'"
        );
        assert_eq!(
            size_flag("--memory-swap", Some(&"-1".to_owned()), true).unwrap(),
            Some(-1)
        );
        assert!(int_flag("--pids-limit", Some(&"x".to_owned())).is_err());
        assert!(cpus_flag(Some(&"one".to_owned())).is_err());
    }
}
