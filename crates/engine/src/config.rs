//! Docker-shaped container configuration, stored as JSON in the containers table and rendered
//! as-is by `inspect` and the Engine API (`Config` and `HostConfig` of `POST /containers/create`).
//!
//! Field names are Docker's (PascalCase). Unknown fields are ignored on read so that a newer berth
//! can add fields without a schema migration; absent fields take their defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

/// Docker's `{}` placeholder value of `ExposedPorts` and `Volumes` maps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// The portable part of a container's configuration (Docker's `Config`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Config {
    /// Hostname inside the container.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// NIS domain name inside the container.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domainname: String,
    /// `user`, `user:group`, `uid` or `uid:gid`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// Attach stdin on start.
    pub attach_stdin: bool,
    /// Attach stdout on start.
    pub attach_stdout: bool,
    /// Attach stderr on start.
    pub attach_stderr: bool,
    /// Ports the image or `--expose` declare, as `80/tcp`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, Empty>,
    /// Allocate a pseudo-terminal.
    pub tty: bool,
    /// Keep stdin open.
    pub open_stdin: bool,
    /// Close stdin after the first attach detaches.
    pub stdin_once: bool,
    /// `KEY=value` pairs.
    pub env: Vec<String>,
    /// Command; `None` means "the image's".
    pub cmd: Option<Vec<String>>,
    /// Health check; `None` means "the image's".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// The image reference as given by the user.
    pub image: String,
    /// Anonymous volume mount points declared by the image or `-v /path`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Empty>,
    /// Working directory; empty means "the image's".
    pub working_dir: String,
    /// Entrypoint; `None` means "the image's", `Some([])` means none (`--entrypoint ""`).
    pub entrypoint: Option<Vec<String>>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Signal `stop` sends first, e.g. `SIGTERM` or `15`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
}

/// Docker's `HealthConfig`. Durations are nanoseconds; 0 means "inherit/default".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", args...]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    /// Time between checks.
    pub interval: i64,
    /// Time one check may take.
    pub timeout: i64,
    /// Grace period after start during which failures do not count.
    pub start_period: i64,
    /// Time between checks during the start period.
    pub start_interval: i64,
    /// Consecutive failures that make the container unhealthy.
    pub retries: i64,
}

/// The host-specific part of a container's configuration (Docker's `HostConfig`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    /// `-v` specs: `host:container[:opts]` or `volume:container[:opts]`.
    pub binds: Vec<String>,
    /// `--mount` specs.
    pub mounts: Vec<Mount>,
    /// Memory limit in bytes (0: none).
    pub memory: i64,
    /// Memory plus swap limit in bytes (0: twice memory; -1: unlimited).
    pub memory_swap: i64,
    /// Soft memory limit in bytes.
    pub memory_reservation: i64,
    /// Disable the OOM killer for the container's memory cgroup (`--oom-kill-disable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_kill_disable: Option<bool>,
    /// CPU quota in units of 1e-9 CPUs (`--cpus 1.5` is 1_500_000_000).
    pub nano_cpus: i64,
    /// Relative CPU weight (cgroup v1 shares).
    pub cpu_shares: i64,
    /// CFS period in microseconds.
    pub cpu_period: i64,
    /// CFS quota in microseconds.
    pub cpu_quota: i64,
    /// CPUs allowed, e.g. `0-2,4`.
    pub cpuset_cpus: String,
    /// Memory nodes allowed.
    pub cpuset_mems: String,
    /// Maximum number of pids (`None` or <= 0: unlimited).
    pub pids_limit: Option<i64>,
    /// Resource limits.
    pub ulimits: Vec<Ulimit>,
    /// Capabilities added to the default set (`CAP_` prefix optional, `ALL` allowed).
    pub cap_add: Vec<String>,
    /// Capabilities removed from the default set.
    pub cap_drop: Vec<String>,
    /// Supplementary groups.
    pub group_add: Vec<String>,
    /// All capabilities, all devices, no seccomp, no masked paths.
    pub privileged: bool,
    /// `no-new-privileges`, `seccomp=unconfined`, `seccomp=<profile JSON>`, `label=...`.
    pub security_opt: Vec<String>,
    /// Host devices to expose.
    pub devices: Vec<DeviceMapping>,
    /// Namespaced sysctls.
    pub sysctls: BTreeMap<String, String>,
    /// Run an init process as PID 1 (`None`: the engine default).
    pub init: Option<bool>,
    /// What to do when the container exits.
    pub restart_policy: RestartPolicy,
    /// Remove the container when it exits (`--rm`).
    pub auto_remove: bool,
    /// Mount the root filesystem read-only.
    pub readonly_rootfs: bool,
    /// tmpfs mounts: container path -> mount options.
    pub tmpfs: BTreeMap<String, String>,
    /// `--volumes-from CONTAINER[:ro|rw]`: the volumes and bind mounts of other containers.
    pub volumes_from: Vec<String>,
    /// Size of /dev/shm in bytes (0: 64 MiB).
    pub shm_size: i64,
    /// `none`, `host`, `bridge`, `container:<id>` or a network name.
    pub network_mode: String,
    /// Log driver and its options (`max-size`, `max-file`).
    pub log_config: LogConfig,
    /// OCI runtime to use (`--runtime`); empty: the in-process runtime.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub runtime: String,
    /// Published ports (`-p`): private `port/proto` -> host bindings.
    pub port_bindings: BTreeMap<String, Vec<PortBinding>>,
    /// `-P`: publish every exposed port on a free host port.
    pub publish_all_ports: bool,
    /// `--dns`: nameservers.
    pub dns: Vec<String>,
    /// `--dns-search`: search domains.
    pub dns_search: Vec<String>,
    /// `--dns-option`: resolver options.
    pub dns_options: Vec<String>,
    /// `--add-host NAME:IP` entries for `/etc/hosts`.
    pub extra_hosts: Vec<String>,
}

/// One host side of a published port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    /// Host address (empty: all).
    pub host_ip: String,
    /// Host port.
    pub host_port: String,
}

/// One `--mount`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Mount {
    /// `bind`, `volume` or `tmpfs`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Host path or volume name (empty for tmpfs and anonymous volumes).
    pub source: String,
    /// Path in the container.
    pub target: String,
    /// Mount read-only.
    pub read_only: bool,
    /// Bind options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_options: Option<BindOptions>,
    /// Volume options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<VolumeOptions>,
    /// tmpfs options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs_options: Option<TmpfsOptions>,
}

/// Options of a bind mount.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct BindOptions {
    /// `private`, `rprivate`, `shared`, `rshared`, `slave`, `rslave`.
    pub propagation: String,
}

/// Options of a volume mount.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeOptions {
    /// Do not copy the image's content into a new volume.
    pub no_copy: bool,
    /// Labels of a volume created on the fly.
    pub labels: BTreeMap<String, String>,
}

/// Options of a tmpfs mount.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TmpfsOptions {
    /// Size in bytes (0: unlimited).
    pub size_bytes: i64,
    /// File mode of the mount's root.
    pub mode: u32,
}

/// One `--ulimit name=soft[:hard]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ulimit {
    /// `nofile`, `nproc`, ...
    pub name: String,
    /// Soft limit.
    pub soft: i64,
    /// Hard limit.
    pub hard: i64,
}

/// One `--device host[:container[:perms]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceMapping {
    /// Device node on the host.
    pub path_on_host: String,
    /// Path in the container.
    pub path_in_container: String,
    /// `rwm` subset.
    pub cgroup_permissions: String,
}

/// Log driver configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LogConfig {
    /// Driver name; empty means the default, `json-file`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Driver options.
    pub config: BTreeMap<String, String>,
}

/// Docker's restart policy names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicyName {
    /// Never restart (Docker also writes this as an empty string).
    #[default]
    #[serde(rename = "no", alias = "")]
    No,
    /// Always restart, also after the engine comes back, unless removed.
    #[serde(rename = "always")]
    Always,
    /// Restart when the exit code is non-zero, at most `MaximumRetryCount` times if > 0.
    #[serde(rename = "on-failure")]
    OnFailure,
    /// Like `always`, except after the user stopped it.
    #[serde(rename = "unless-stopped")]
    UnlessStopped,
}

/// `--restart`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    /// The policy.
    pub name: RestartPolicyName,
    /// For `on-failure`: the most restarts (0: unlimited).
    pub maximum_retry_count: i64,
}

impl RestartPolicy {
    /// Parses `--restart`'s value: `no`, `always`, `unless-stopped`, `on-failure[:N]`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || EngineError::InvalidValue {
            what: "restart policy",
            value: s.to_owned(),
        };
        let (name, count) = match s.split_once(':') {
            Some((name, count)) => (name, Some(count)),
            None => (s, None),
        };
        let name = match name {
            "" | "no" => RestartPolicyName::No,
            "always" => RestartPolicyName::Always,
            "unless-stopped" => RestartPolicyName::UnlessStopped,
            "on-failure" => RestartPolicyName::OnFailure,
            _ => return Err(bad()),
        };
        let maximum_retry_count = match count {
            None => 0,
            Some(_) if name != RestartPolicyName::OnFailure => return Err(bad()),
            Some(n) => n.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(bad)?,
        };
        Ok(Self {
            name,
            maximum_retry_count,
        })
    }

    /// Whether the monitor restarts a container that exited with `exit_code` after
    /// `restart_count` restarts; `stopped_by_user` is true after `stop`/`kill` by the user, which
    /// no policy overrides until the next `start`.
    #[must_use]
    pub fn should_restart(
        &self,
        exit_code: i64,
        restart_count: i64,
        stopped_by_user: bool,
    ) -> bool {
        if stopped_by_user {
            return false;
        }
        match self.name {
            RestartPolicyName::No => false,
            RestartPolicyName::Always | RestartPolicyName::UnlessStopped => true,
            RestartPolicyName::OnFailure => {
                exit_code != 0
                    && (self.maximum_retry_count == 0 || restart_count < self.maximum_retry_count)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policy_parsing() {
        assert_eq!(
            RestartPolicy::parse("no").unwrap(),
            RestartPolicy::default()
        );
        assert_eq!(
            RestartPolicy::parse("always").unwrap().name,
            RestartPolicyName::Always
        );
        let p = RestartPolicy::parse("on-failure:3").unwrap();
        assert_eq!(
            (p.name, p.maximum_retry_count),
            (RestartPolicyName::OnFailure, 3)
        );
        for bad in ["sometimes", "always:3", "on-failure:x", "on-failure:-1"] {
            assert!(RestartPolicy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn restart_decisions() {
        let p = |s| RestartPolicy::parse(s).unwrap();
        assert!(!p("no").should_restart(1, 0, false));
        assert!(p("always").should_restart(0, 100, false));
        assert!(!p("always").should_restart(0, 0, true));
        assert!(p("unless-stopped").should_restart(0, 0, false));
        assert!(!p("on-failure").should_restart(0, 0, false));
        assert!(p("on-failure").should_restart(1, 1000, false));
        assert!(p("on-failure:2").should_restart(1, 1, false));
        assert!(!p("on-failure:2").should_restart(1, 2, false));
    }

    #[test]
    fn docker_json_round_trips() {
        let json = r#"{
            "Image": "busybox", "Cmd": ["sh"], "Entrypoint": null, "Env": ["A=1"],
            "ExposedPorts": {"80/tcp": {}}, "Labels": {"a": "b"}, "Tty": true,
            "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 1000000000, "Retries": 3},
            "SomethingNewer": 1
        }"#;
        let c: Config = serde_json::from_str(json).unwrap();
        assert_eq!(c.cmd.as_deref(), Some(&["sh".to_owned()][..]));
        assert!(c.entrypoint.is_none());
        assert!(c.exposed_ports.contains_key("80/tcp"));
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["ExposedPorts"]["80/tcp"], serde_json::json!({}));
        assert_eq!(serde_json::from_value::<Config>(back).unwrap(), c);

        let h: HostConfig = serde_json::from_str(
            r#"{"RestartPolicy": {"Name": "", "MaximumRetryCount": 0}, "Memory": 1048576,
                "Mounts": [{"Type": "volume", "Source": "data", "Target": "/data"}],
                "PidsLimit": null, "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}}}"#,
        )
        .unwrap();
        assert_eq!(h.restart_policy.name, RestartPolicyName::No);
        assert_eq!(h.mounts[0].kind, "volume");
        let back = serde_json::to_value(&h).unwrap();
        assert_eq!(back["RestartPolicy"]["Name"], "no");
        assert_eq!(back["Mounts"][0]["Type"], "volume");
    }
}
