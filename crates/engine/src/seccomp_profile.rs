//! Docker's seccomp profile format (what `--security-opt seccomp=FILE` reads and what berth's
//! default profile is written in) and its conversion to an OCI `linux.seccomp` object for one
//! container: rules are kept or dropped by the container's capabilities, the host architecture
//! and kernel version, and syscall names the installed libseccomp does not know are left out
//! (as runc and Docker do), so a profile written for a newer kernel still loads.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A profile in Docker's format.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Profile {
    /// Action for syscalls no rule matches.
    pub default_action: String,
    /// Errno of an `SCMP_ACT_ERRNO` default action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    /// Architectures (libseccomp names), used when `archMap` is empty.
    pub architectures: Vec<String>,
    /// Native architecture -> the sub-architectures filtered with it.
    pub arch_map: Vec<ArchMap>,
    /// Rules.
    pub syscalls: Vec<Rule>,
    /// Filter flags (`SECCOMP_FILTER_FLAG_*`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// Path of a seccomp agent's socket (`SCMP_ACT_NOTIFY`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub listener_path: String,
    /// Opaque data passed to the agent.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub listener_metadata: String,
}

/// One `archMap` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ArchMap {
    /// A native architecture, e.g. `SCMP_ARCH_X86_64`.
    pub architecture: String,
    /// Architectures whose syscalls a native process may also make.
    pub sub_architectures: Vec<String>,
}

impl ArchMap {
    pub(crate) fn new(arch: &str, subs: &[&str]) -> Self {
        Self {
            architecture: arch.to_owned(),
            sub_architectures: subs.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// One rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Rule {
    /// A single syscall name (older profiles).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Syscall names.
    pub names: Vec<String>,
    /// `SCMP_ACT_*`.
    pub action: String,
    /// Errno of an `SCMP_ACT_ERRNO` action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    /// Argument conditions.
    pub args: Vec<Arg>,
    /// Conditions that must all hold for the rule to apply.
    pub includes: Filter,
    /// Conditions any of which drops the rule.
    pub excludes: Filter,
    /// Free text.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub comment: String,
}

/// An argument condition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Arg {
    /// Argument index, 0-5.
    pub index: u32,
    /// Value compared with.
    pub value: u64,
    /// Second value (the mask result of `SCMP_CMP_MASKED_EQ`).
    pub value_two: u64,
    /// `SCMP_CMP_*`.
    pub op: String,
}

impl Arg {
    pub(crate) fn new(index: u32, value: u64, value_two: u64, op: &str) -> Self {
        Self {
            index,
            value,
            value_two,
            op: op.to_owned(),
        }
    }
}

/// Conditions of `includes` / `excludes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Filter {
    /// Capabilities (`CAP_` names).
    pub caps: Vec<String>,
    /// Go architecture names: `amd64`, `386`, `x32`, `arm64`, `arm`, `s390x`, ...
    pub arches: Vec<String>,
    /// Lowest kernel version, `major.minor` (includes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

/// What a profile is converted for.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// The container's bounding capabilities (`CAP_` names).
    pub caps: &'a [String],
    /// Go name of the host architecture (`amd64`).
    pub arch: &'a str,
    /// The running kernel's `(major, minor)`.
    pub kernel: (u32, u32),
}

impl Target<'_> {
    /// The host's architecture and kernel, for `caps`.
    #[must_use]
    pub fn host(caps: &[String]) -> Target<'_> {
        Target {
            caps,
            arch: go_arch(),
            kernel: kernel_version(),
        }
    }
}

/// Go's name of the architecture berth was built for.
#[must_use]
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn native_scmp_arch(go: &str) -> &'static str {
    match go {
        "amd64" => "SCMP_ARCH_X86_64",
        "386" => "SCMP_ARCH_X86",
        "arm64" => "SCMP_ARCH_AARCH64",
        "arm" => "SCMP_ARCH_ARM",
        "ppc64le" => "SCMP_ARCH_PPC64LE",
        "s390x" => "SCMP_ARCH_S390X",
        "riscv64" => "SCMP_ARCH_RISCV64",
        _ => "",
    }
}

/// The running kernel's `(major, minor)` from `uname`.
fn kernel_version() -> (u32, u32) {
    let uname = rustix::system::uname();
    parse_version(&uname.release().to_string_lossy())
}

fn parse_version(s: &str) -> (u32, u32) {
    let mut parts = s.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor)
}

impl Rule {
    /// Whether the rule applies to `t`.
    fn applies(&self, t: &Target<'_>) -> bool {
        let has = |cap: &String| t.caps.iter().any(|c| c == cap);
        if self.excludes.arches.iter().any(|a| a == t.arch) || self.excludes.caps.iter().any(has) {
            return false;
        }
        if !self.includes.arches.is_empty() && !self.includes.arches.iter().any(|a| a == t.arch) {
            return false;
        }
        if !self.includes.caps.iter().all(has) {
            return false;
        }
        self.includes
            .min_kernel
            .as_deref()
            .is_none_or(|v| t.kernel >= parse_version(v))
    }
}

/// The OCI `linux.seccomp` object of `profile` for `target`.
#[must_use]
pub fn to_oci(profile: &Profile, target: &Target<'_>) -> Value {
    let known = |n: &String| libseccomp::ScmpSyscall::from_name(n).is_ok();
    let mut syscalls = Vec::new();
    for rule in profile.syscalls.iter().filter(|r| r.applies(target)) {
        let names: Vec<&String> = std::iter::once(&rule.name)
            .filter(|n| !n.is_empty())
            .chain(&rule.names)
            .filter(|n| known(n))
            .collect();
        if names.is_empty() {
            continue;
        }
        let mut s = json!({"names": names, "action": rule.action});
        if let Some(e) = rule.errno_ret {
            s["errnoRet"] = json!(e);
        }
        if !rule.args.is_empty() {
            s["args"] = json!(rule.args);
        }
        syscalls.push(s);
    }
    let native = native_scmp_arch(target.arch);
    let architectures: Vec<&String> = if profile.arch_map.is_empty() {
        profile.architectures.iter().collect()
    } else {
        profile
            .arch_map
            .iter()
            .filter(|m| m.architecture == native)
            .flat_map(|m| std::iter::once(&m.architecture).chain(&m.sub_architectures))
            .collect()
    };
    let mut out = json!({
        "defaultAction": profile.default_action,
        "architectures": architectures,
        "syscalls": syscalls,
    });
    if let Some(e) = profile.default_errno_ret {
        out["defaultErrnoRet"] = json!(e);
    }
    if !profile.flags.is_empty() {
        out["flags"] = json!(profile.flags);
    }
    if !profile.listener_path.is_empty() {
        out["listenerPath"] = json!(profile.listener_path);
        out["listenerMetadata"] = json!(profile.listener_metadata);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp_default;

    fn allowed(oci: &Value, name: &str) -> Vec<Value> {
        oci["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["names"].as_array().unwrap().iter().any(|n| n == name))
            .cloned()
            .collect()
    }

    fn for_caps(caps: &[&str]) -> Value {
        let caps: Vec<String> = caps.iter().map(|c| (*c).to_owned()).collect();
        let t = Target {
            caps: &caps,
            arch: "amd64",
            kernel: (6, 1),
        };
        to_oci(&seccomp_default::profile(), &t)
    }

    #[test]
    fn default_caps_keep_namespaces_and_mounts_out() {
        let oci = for_caps(&crate::bundle::DEFAULT_CAPABILITIES);
        assert_eq!(oci["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(oci["defaultErrnoRet"], 1);
        for name in [
            "mount",
            "unshare",
            "setns",
            "ptrace_never",
            "keyctl",
            "add_key",
            "reboot",
        ] {
            assert!(allowed(&oci, name).is_empty(), "{name} allowed");
        }
        // chroot comes with CAP_SYS_CHROOT, one of the defaults.
        assert_eq!(allowed(&oci, "chroot").len(), 1);
        // clone only without namespace flags; clone3 answers ENOSYS.
        let clone = allowed(&oci, "clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0]["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(clone[0]["args"][0]["index"], 0);
        let clone3 = allowed(&oci, "clone3");
        assert_eq!(clone3[0]["action"], "SCMP_ACT_ERRNO");
        assert_eq!(clone3[0]["errnoRet"], 38);
        assert_eq!(allowed(&oci, "personality").len(), 5);
        assert_eq!(
            oci["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
    }

    #[test]
    fn capabilities_open_their_syscalls() {
        let mut caps = crate::bundle::DEFAULT_CAPABILITIES.to_vec();
        caps.push("CAP_SYS_ADMIN");
        let oci = for_caps(&caps);
        for name in ["mount", "unshare", "setns", "umount2"] {
            assert_eq!(allowed(&oci, name).len(), 1, "{name}");
        }
        // With CAP_SYS_ADMIN clone and clone3 are plain allows, without argument rules.
        let clone = allowed(&oci, "clone");
        assert_eq!(clone.len(), 1);
        assert!(clone[0].get("args").is_none());
        assert_eq!(allowed(&oci, "clone3")[0]["action"], "SCMP_ACT_ALLOW");

        let oci = for_caps(&["CAP_SYS_PTRACE"]);
        assert!(allowed(&oci, "kcmp").len() == 1);
        assert!(allowed(&oci, "chroot").is_empty());
        let oci = for_caps(&["CAP_SYS_TIME"]);
        assert_eq!(allowed(&oci, "settimeofday").len(), 1);
    }

    #[test]
    fn arch_and_kernel_filters() {
        let caps = Vec::new();
        let old = Target {
            caps: &caps,
            arch: "amd64",
            kernel: (4, 4),
        };
        let oci = to_oci(&seccomp_default::profile(), &old);
        assert!(
            allowed(&oci, "ptrace").is_empty(),
            "ptrace before 4.8 is unsafe"
        );
        assert_eq!(allowed(&oci, "arch_prctl").len(), 1);
        let arm = Target {
            caps: &caps,
            arch: "arm64",
            kernel: (6, 1),
        };
        let oci = to_oci(&seccomp_default::profile(), &arm);
        assert!(allowed(&oci, "arch_prctl").is_empty());
        assert_eq!(
            oci["architectures"],
            json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
        );
    }

    #[test]
    fn docker_format_files_parse() {
        let p: Profile = serde_json::from_str(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"name": "mkdir", "action": "SCMP_ACT_ERRNO"},
                             {"names": ["no_such_call", "chmod"], "action": "SCMP_ACT_ERRNO",
                              "excludes": {"caps": ["CAP_FOWNER"]}}]}"#,
        )
        .unwrap();
        let caps = Vec::new();
        let oci = to_oci(&p, &Target::host(&caps));
        assert_eq!(oci["syscalls"][0]["names"], json!(["mkdir"]));
        assert_eq!(oci["syscalls"][1]["names"], json!(["chmod"]));
        assert_eq!(oci["architectures"], json!(["SCMP_ARCH_X86_64"]));
    }

    #[test]
    fn default_profile_compiles() {
        let oci = for_caps(&crate::bundle::DEFAULT_CAPABILITIES);
        let parsed = runtime::seccomp::parse(&oci.to_string()).unwrap();
        runtime::seccomp::compile(&parsed).unwrap();
    }
}
