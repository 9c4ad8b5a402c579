//! A container's security settings as Docker computes them: the capability set from
//! `--cap-add`/`--cap-drop`/`--privileged`, `--security-opt` (`no-new-privileges`,
//! `seccomp=unconfined|<profile JSON>`), the seccomp profile that results, and the namespaced
//! `--sysctl`s Docker accepts.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::bundle::DEFAULT_CAPABILITIES;
use crate::config::HostConfig;
use crate::error::{EngineError, Result};
use crate::seccomp_profile::{Profile, Target, to_oci};

/// The parsed `--security-opt` values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecurityOpts {
    /// `no-new-privileges[=true]`.
    pub no_new_privileges: bool,
    /// `seccomp=unconfined`.
    pub seccomp_unconfined: bool,
    /// `seccomp=<profile JSON>` (the CLI reads the file and sends its content, as Docker's does).
    pub seccomp_profile: Option<Profile>,
}

fn invalid(what: &'static str, value: &str, reason: impl Into<String>) -> EngineError {
    EngineError::InvalidSetting {
        what,
        value: value.to_owned(),
        reason: reason.into(),
    }
}

/// Parses `HostConfig.SecurityOpt`.
///
/// Errors: an unknown option or a profile that is not Docker's seccomp JSON.
pub fn security_opts(opts: &[String]) -> Result<SecurityOpts> {
    let mut out = SecurityOpts::default();
    for opt in opts {
        // Docker also accepts the old `key:value` form.
        let (key, value) = opt
            .split_once('=')
            .or_else(|| opt.split_once(':'))
            .unwrap_or((opt.as_str(), ""));
        match key {
            "no-new-privileges" => {
                out.no_new_privileges = match value {
                    "" | "true" => true,
                    "false" => false,
                    _ => {
                        return Err(invalid(
                            "security-opt",
                            opt,
                            "no-new-privileges takes true or false",
                        ));
                    }
                };
            }
            "seccomp" if value == "unconfined" => {
                out.seccomp_unconfined = true;
                out.seccomp_profile = None;
            }
            "seccomp" if !value.is_empty() => {
                let profile: Profile = serde_json::from_str(value).map_err(|e| {
                    invalid(
                        "security-opt",
                        "seccomp",
                        format!("decoding seccomp profile failed: {e}"),
                    )
                })?;
                if profile.default_action.is_empty() {
                    return Err(invalid(
                        "security-opt",
                        "seccomp",
                        "the seccomp profile has no defaultAction",
                    ));
                }
                out.seccomp_unconfined = false;
                out.seccomp_profile = Some(profile);
            }
            "label" | "apparmor" => {
                // Docker ignores these where SELinux/AppArmor are not enabled, as here.
            }
            _ => {
                return Err(invalid(
                    "security-opt",
                    opt,
                    "valid options are no-new-privileges, seccomp=unconfined and seccomp=FILE",
                ));
            }
        }
    }
    Ok(out)
}

/// Every capability a container can be given here, in kernel order (`CAP_` names): those the
/// kernel knows and berth's own bounding set holds (a capability berth lacks, such as
/// `CAP_SYS_RESOURCE` in a restricted host, cannot be handed on).
#[must_use]
pub fn all_capabilities() -> Vec<String> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u8>().ok())
        .unwrap_or(u8::MAX);
    let bounding = caps::read(None, caps::CapSet::Bounding).ok();
    let mut all: Vec<caps::Capability> = caps::all()
        .into_iter()
        .filter(|c| c.index() <= last)
        .filter(|c| bounding.as_ref().is_none_or(|b| b.contains(c)))
        .collect();
    all.sort_by_key(|c| c.index());
    all.iter().map(ToString::to_string).collect()
}

/// `chown` or `CAP_CHOWN` -> `CAP_CHOWN`; `all` -> `ALL`.
fn normalize_cap(name: &str) -> String {
    let upper = name.to_ascii_uppercase();
    if upper == "ALL" || upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

/// The capability set of a container, Docker's way: `--privileged` is every capability;
/// `--cap-add ALL` is every capability minus the drops; `--cap-drop ALL` keeps only the adds;
/// otherwise the default 14 minus the drops plus the adds.
///
/// Errors: a capability name the kernel does not know.
pub fn capabilities(h: &HostConfig) -> Result<Vec<String>> {
    let all = all_capabilities();
    if h.privileged {
        return Ok(all);
    }
    let check = |list: &[String]| -> Result<Vec<String>> {
        list.iter()
            .map(|c| {
                let n = normalize_cap(c);
                if n == "ALL" || all.contains(&n) {
                    Ok(n)
                } else if n.parse::<caps::Capability>().is_ok() {
                    Err(invalid(
                        "capability",
                        c,
                        "berth's own bounding set does not hold it, so no container can get it",
                    ))
                } else {
                    Err(invalid("capability", c, "unknown capability"))
                }
            })
            .collect()
    };
    let adds = check(&h.cap_add)?;
    let drops = check(&h.cap_drop)?;
    let has = |list: &[String], c: &str| list.iter().any(|x| x == c);
    let mut caps: Vec<String> = if has(&adds, "ALL") {
        all.iter().filter(|c| !has(&drops, c)).cloned().collect()
    } else if has(&drops, "ALL") {
        Vec::new()
    } else {
        DEFAULT_CAPABILITIES
            .iter()
            .filter(|c| !has(&drops, c))
            .map(|c| (*c).to_owned())
            .collect()
    };
    if !has(&adds, "ALL") {
        for a in adds {
            if !caps.contains(&a) {
                caps.push(a);
            }
        }
    }
    Ok(caps)
}

/// The OCI `linux.seccomp` of a container with `caps`, or `None` (unconfined, privileged).
#[must_use]
pub fn seccomp(h: &HostConfig, opts: &SecurityOpts, caps: &[String]) -> Option<Value> {
    if h.privileged || opts.seccomp_unconfined {
        return None;
    }
    let target = Target::host(caps);
    Some(match &opts.seccomp_profile {
        Some(p) => to_oci(p, &target),
        None => to_oci(&crate::seccomp_default::profile(), &target),
    })
}

/// Checks `--sysctl`s as Docker and runc do: only namespaced ones (IPC's `kernel.msg*`,
/// `kernel.sem`, `kernel.shm*`, `fs.mqueue.*`; `net.*` unless the container shares the host's
/// network), by the runtime's own rule so that create refuses what start would.
///
/// Errors: a sysctl that is not namespaced, or `net.*` with `--network host`.
pub fn validate_sysctls(sysctls: &BTreeMap<String, String>, network_mode: &str) -> Result<()> {
    use oci_spec::runtime::LinuxNamespaceType;
    let mut ns =
        std::collections::HashSet::from([LinuxNamespaceType::Ipc, LinuxNamespaceType::Uts]);
    if network_mode != "host" {
        ns.insert(LinuxNamespaceType::Network);
    }
    for key in sysctls.keys() {
        runtime::spec::validate_sysctl(key, &ns)
            .map_err(|e| invalid("sysctl", key, runtime::error::chain(&e)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(add: &[&str], drop: &[&str]) -> Result<Vec<String>> {
        let v = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect();
        capabilities(&HostConfig {
            cap_add: v(add),
            cap_drop: v(drop),
            ..HostConfig::default()
        })
    }

    #[test]
    fn capability_sets_like_docker() {
        assert_eq!(caps(&[], &[]).unwrap().len(), 14);
        assert!(caps(&[], &["ALL"]).unwrap().is_empty());
        assert_eq!(caps(&["net_admin"], &["ALL"]).unwrap(), ["CAP_NET_ADMIN"]);
        let c = caps(&["CAP_SYS_ADMIN"], &["chown"]).unwrap();
        assert!(c.contains(&"CAP_SYS_ADMIN".to_owned()));
        assert!(!c.contains(&"CAP_CHOWN".to_owned()));
        assert_eq!(c.len(), 14);
        let all = caps(&["ALL"], &["CAP_KILL"]).unwrap();
        assert_eq!(all.len(), all_capabilities().len() - 1);
        assert!(caps(&["CAP_BOGUS"], &[]).is_err());
        let privileged = capabilities(&HostConfig {
            privileged: true,
            ..HostConfig::default()
        })
        .unwrap();
        assert_eq!(privileged, all_capabilities());
    }

    #[test]
    fn security_opts_like_docker() {
        let o = |s: &[&str]| security_opts(&s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>());
        assert!(o(&["no-new-privileges"]).unwrap().no_new_privileges);
        assert!(o(&["no-new-privileges=true"]).unwrap().no_new_privileges);
        assert!(o(&["no-new-privileges:true"]).unwrap().no_new_privileges);
        assert!(!o(&["no-new-privileges=false"]).unwrap().no_new_privileges);
        assert!(o(&["seccomp=unconfined"]).unwrap().seccomp_unconfined);
        let p = o(&[r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW"}"#]).unwrap();
        assert_eq!(p.seccomp_profile.unwrap().default_action, "SCMP_ACT_ALLOW");
        assert!(o(&["seccomp={not json"]).is_err());
        assert!(o(&["bogus"]).is_err());
    }

    #[test]
    fn sysctls_like_docker() {
        let s = |k: &str| BTreeMap::from([(k.to_owned(), "1".to_owned())]);
        assert!(validate_sysctls(&s("net.ipv4.ip_forward"), "none").is_ok());
        assert!(validate_sysctls(&s("net.ipv4.ip_forward"), "host").is_err());
        assert!(validate_sysctls(&s("kernel.shmmax"), "none").is_ok());
        assert!(validate_sysctls(&s("fs.mqueue.msg_max"), "none").is_ok());
        assert!(validate_sysctls(&s("vm.swappiness"), "none").is_err());
    }
}
