//! `berth update`: new limits and restart policy for existing containers, applied live to a
//! running container's cgroup and stored in its `HostConfig`.

use crate::config::{HostConfig, RestartPolicy};
use crate::containers::Container;
use crate::engine::Engine;
use crate::error::{EngineError, Result};

/// What `update` changes; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateRequest {
    /// `--memory` in bytes.
    pub memory: Option<i64>,
    /// `--memory-swap` in bytes (-1: unlimited).
    pub memory_swap: Option<i64>,
    /// `--memory-reservation` in bytes.
    pub memory_reservation: Option<i64>,
    /// `--cpus` in nano-CPUs.
    pub nano_cpus: Option<i64>,
    /// `--cpu-shares`.
    pub cpu_shares: Option<i64>,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: Option<String>,
    /// `--pids-limit` (0 or -1: unlimited).
    pub pids_limit: Option<i64>,
    /// `--restart`.
    pub restart_policy: Option<RestartPolicy>,
}

impl UpdateRequest {
    /// `h` with this request's changes.
    fn applied_to(&self, h: &HostConfig) -> HostConfig {
        let mut h = h.clone();
        if let Some(m) = self.memory {
            // A swap limit that was only implied (twice the memory) follows the new memory.
            h.memory = m;
        }
        if let Some(s) = self.memory_swap {
            h.memory_swap = s;
        }
        if let Some(r) = self.memory_reservation {
            h.memory_reservation = r;
        }
        if let Some(n) = self.nano_cpus {
            h.nano_cpus = n;
            h.cpu_period = 0;
            h.cpu_quota = 0;
        }
        if let Some(s) = self.cpu_shares {
            h.cpu_shares = s;
        }
        if let Some(c) = &self.cpuset_cpus {
            h.cpuset_cpus.clone_from(c);
        }
        if let Some(p) = self.pids_limit {
            h.pids_limit = Some(if p <= 0 { -1 } else { p });
        }
        if let Some(r) = self.restart_policy {
            h.restart_policy = r;
        }
        h
    }
}

impl Engine {
    /// Updates the container's limits and restart policy: checked like `create`'s, applied to
    /// the cgroup when the container runs, then stored.
    ///
    /// Errors: no such container, an invalid value, or the cgroup refused the new limits.
    pub fn update(&self, reference: &str, req: &UpdateRequest) -> Result<Container> {
        let c = self.container(reference)?;
        let h = req.applied_to(&c.host_config);
        if h.memory_swap > 0 && h.memory > h.memory_swap {
            return Err(EngineError::InvalidSetting {
                what: "memory",
                value: h.memory.to_string(),
                reason: "memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time".into(),
            });
        }
        crate::limits::validate(&h)?;
        let root = self.runtime_root();
        if c.state.status.is_active() && runtime::state::state_dir(&root, c.id.as_str()).exists() {
            let resources = crate::container_spec::live_resources(&h)?;
            runtime::container::update(&root, c.id.as_str(), &resources).map_err(|source| {
                EngineError::Runtime {
                    action: format!("update container {}", c.id.short()),
                    source: Box::new(source),
                }
            })?;
        }
        rewrite_bundle_resources(&c, &h)?;
        self.store.write(|tx| tx.update_host_config(&c.id, &h))
    }
}

/// The bundle's config.json with `h`'s limits, so that the next start (a restart, or the first
/// start of a created container) applies them too. Device rules stay as created.
fn rewrite_bundle_resources(c: &Container, h: &HostConfig) -> Result<()> {
    let path = c.bundle.join("config.json");
    let Ok(text) = std::fs::read(&path) else {
        return Ok(());
    };
    let json_err = |source| EngineError::Json {
        action: format!("update config of container {}", c.id.short()),
        source,
    };
    let mut spec: serde_json::Value = serde_json::from_slice(&text).map_err(json_err)?;
    let Some(resources) = spec["linux"]["resources"].as_object_mut() else {
        return Ok(());
    };
    for key in ["memory", "cpu", "pids"] {
        resources.remove(key);
    }
    resources.extend(crate::limits::resources(h));
    let out = serde_json::to_vec_pretty(&spec).map_err(json_err)?;
    crate::engine::write_file(&path, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_only_what_is_given() {
        let h = HostConfig {
            memory: 64 << 20,
            cpu_shares: 512,
            cpu_quota: 50_000,
            ..HostConfig::default()
        };
        let req = UpdateRequest {
            memory: Some(128 << 20),
            nano_cpus: Some(500_000_000),
            pids_limit: Some(0),
            ..UpdateRequest::default()
        };
        let u = req.applied_to(&h);
        assert_eq!(u.memory, 128 << 20);
        assert_eq!(u.cpu_shares, 512);
        assert_eq!((u.nano_cpus, u.cpu_quota), (500_000_000, 0));
        assert_eq!(u.pids_limit, Some(-1));
    }
}
