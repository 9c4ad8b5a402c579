//! Registry configuration: mirrors for `docker.io`, registries reached over plain HTTP, and the
//! transfer limits. Read from a JSON file with dockerd's `daemon.json` keys
//! (`registry-mirrors`, `insecure-registries`), so an existing Docker configuration can be
//! copied over; loopback registries are insecure without saying so, as with dockerd.

use super::reference::{DEFAULT_REGISTRY, registry_hostname};
use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where berth looks for its registry configuration unless told otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/berth/registries.json";

/// Errors reading the configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("read registry configuration {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid JSON of the expected shape.
    #[error("parse registry configuration {path}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A mirror is not an `http(s)://` URL.
    #[error("registry mirror {mirror:?} is not an http:// or https:// URL")]
    Mirror {
        /// The mirror.
        mirror: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct File {
    #[serde(default)]
    registry_mirrors: Vec<String>,
    #[serde(default)]
    insecure_registries: Vec<String>,
    #[serde(default)]
    blocked_registries: Vec<String>,
    #[serde(default)]
    max_concurrent_downloads: Option<usize>,
    #[serde(default)]
    max_concurrent_uploads: Option<usize>,
    /// Seconds without a byte before a transfer counts as stalled.
    #[serde(default)]
    stall_timeout: Option<u64>,
    #[serde(default)]
    max_download_attempts: Option<u32>,
}

/// How berth reaches registries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Mirrors of `docker.io`, tried in order before it (`https://mirror.example`).
    pub mirrors: Vec<String>,
    /// Registries (`host[:port]`) or networks (`10.0.0.0/8`) reached over plain HTTP when
    /// HTTPS fails.
    pub insecure: Vec<String>,
    /// Registries berth must not contact (`*`: every registry), as podman's `blocked`.
    pub blocked: Vec<String>,
    /// Layers downloaded at once (dockerd's default: 3).
    pub max_concurrent_downloads: usize,
    /// Layers uploaded at once (dockerd's default: 5).
    pub max_concurrent_uploads: usize,
    /// A transfer that receives nothing for this long fails (and is retried).
    pub stall_timeout: Duration,
    /// Attempts per request on connection errors and 5xx answers (dockerd's default: 5).
    pub max_attempts: u32,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            mirrors: Vec::new(),
            insecure: Vec::new(),
            blocked: Vec::new(),
            max_concurrent_downloads: 3,
            max_concurrent_uploads: 5,
            stall_timeout: Duration::from_secs(30),
            max_attempts: 5,
        }
    }
}

impl RegistryConfig {
    /// Reads the configuration at `path`; a missing file is the default configuration.
    ///
    /// # Errors
    /// The file is unreadable or malformed, or a mirror is not a URL.
    pub fn load(path: &Path) -> Result<RegistryConfig, ConfigError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(RegistryConfig::default());
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let file: File = serde_json::from_slice(&bytes).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        for m in &file.registry_mirrors {
            if !(m.starts_with("https://") || m.starts_with("http://")) {
                return Err(ConfigError::Mirror { mirror: m.clone() });
            }
        }
        let d = RegistryConfig::default();
        Ok(RegistryConfig {
            mirrors: file
                .registry_mirrors
                .iter()
                .map(|m| m.trim_end_matches('/').to_owned())
                .collect(),
            insecure: file.insecure_registries,
            blocked: file.blocked_registries,
            max_concurrent_downloads: file
                .max_concurrent_downloads
                .unwrap_or(d.max_concurrent_downloads)
                .max(1),
            max_concurrent_uploads: file
                .max_concurrent_uploads
                .unwrap_or(d.max_concurrent_uploads)
                .max(1),
            stall_timeout: file
                .stall_timeout
                .map_or(d.stall_timeout, |s| Duration::from_secs(s.max(1))),
            max_attempts: file.max_download_attempts.unwrap_or(d.max_attempts).max(1),
        })
    }

    /// Whether `registry` (`host[:port]`) may be reached over plain HTTP: loopback always,
    /// else when listed by name or by a network that holds its address.
    #[must_use]
    pub fn is_insecure(&self, registry: &str) -> bool {
        let host = registry_hostname(registry);
        let ip = host.parse::<IpAddr>().ok();
        if host == "localhost" || ip.is_some_and(|ip| ip.is_loopback()) {
            return true;
        }
        self.insecure.iter().any(|entry| {
            entry == registry || entry == host || ip.is_some_and(|ip| cidr_contains(entry, ip))
        })
    }

    /// Whether the configuration forbids contacting `registry`.
    #[must_use]
    pub fn is_blocked(&self, registry: &str) -> bool {
        self.blocked
            .iter()
            .any(|b| b == "*" || b == registry || b == registry_hostname(registry))
    }

    /// The base URLs to try for `registry`, in order: the mirrors (for `docker.io` only) and
    /// then the registry itself. `api_host` is the host serving the API (`registry-1.docker.io`
    /// for `docker.io`).
    #[must_use]
    pub fn endpoints(&self, registry: &str, api_host: &str) -> Vec<Endpoint> {
        let mut out = Vec::new();
        if registry == DEFAULT_REGISTRY {
            for m in &self.mirrors {
                out.push(Endpoint {
                    base: m.clone(),
                    http_fallback: false,
                    mirror: true,
                });
            }
        }
        out.push(Endpoint {
            base: format!("https://{api_host}"),
            http_fallback: self.is_insecure(registry),
            mirror: false,
        });
        out
    }
}

/// One place a registry's API may be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://host[:port]` (or a mirror's URL).
    pub base: String,
    /// When HTTPS cannot be spoken, try `http://` (insecure registries).
    pub http_fallback: bool,
    /// A mirror: a failure here falls through to the next endpoint.
    pub mirror: bool,
}

fn cidr_contains(cidr: &str, ip: IpAddr) -> bool {
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_listed_registries_are_insecure() {
        let c = RegistryConfig {
            insecure: vec!["reg.lan:5000".into(), "10.0.0.0/8".into()],
            ..RegistryConfig::default()
        };
        for r in [
            "localhost:5000",
            "127.0.0.1:1",
            "127.8.0.1",
            "[::1]:5000",
            "reg.lan:5000",
        ] {
            assert!(c.is_insecure(r), "{r}");
        }
        assert!(c.is_insecure("10.1.2.3:5000"));
        for r in ["reg.lan:5001", "quay.io", "11.0.0.1", "docker.io"] {
            assert!(!c.is_insecure(r), "{r}");
        }
    }

    #[test]
    fn mirrors_come_first_for_docker_hub_only() {
        let c = RegistryConfig {
            mirrors: vec!["https://m.example".into()],
            ..RegistryConfig::default()
        };
        let hub = c.endpoints("docker.io", "registry-1.docker.io");
        assert_eq!(hub.len(), 2);
        assert!(hub[0].mirror && hub[0].base == "https://m.example");
        assert_eq!(hub[1].base, "https://registry-1.docker.io");
        let local = c.endpoints("localhost:5000", "localhost:5000");
        assert_eq!(local.len(), 1);
        assert!(local[0].http_fallback);
    }

    #[test]
    fn the_file_uses_daemon_json_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        assert_eq!(
            RegistryConfig::load(&path).unwrap(),
            RegistryConfig::default()
        );
        std::fs::write(
            &path,
            r#"{"registry-mirrors":["https://m/"],"insecure-registries":["a:1"],"stall-timeout":2}"#,
        )
        .unwrap();
        let c = RegistryConfig::load(&path).unwrap();
        assert_eq!(c.mirrors, ["https://m"]);
        assert_eq!(c.insecure, ["a:1"]);
        assert_eq!(c.stall_timeout, Duration::from_secs(2));
        std::fs::write(&path, r#"{"blocked-registries":["docker.io"]}"#).unwrap();
        let c = RegistryConfig::load(&path).unwrap();
        assert!(c.is_blocked("docker.io") && !c.is_blocked("localhost:5000"));
        std::fs::write(&path, r#"{"blocked-registries":["*"]}"#).unwrap();
        assert!(RegistryConfig::load(&path).unwrap().is_blocked("quay.io"));
        std::fs::write(&path, r#"{"registry-mirrors":["m"]}"#).unwrap();
        assert!(RegistryConfig::load(&path).is_err());
    }
}
