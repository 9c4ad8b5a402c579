//! Credentials in Docker's `config.json` (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`): `auths.<registry>.auth` = base64 `user:password`, or a credential
//! helper (`credsStore`, or `credHelpers.<registry>`) run as `docker-credential-<name>
//! get|store|erase` with Docker's JSON protocol on stdin/stdout. Unknown keys of the file are
//! kept when berth writes it.

use super::auth::Credentials;
use super::reference::DEFAULT_REGISTRY;
use base64::Engine as _;
use serde_json::{Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The key Docker files `docker.io` credentials under.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// Errors of the credential store.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// `config.json` cannot be read or written.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `config.json` is not a JSON object.
    #[error("parse {path}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A stored `auth` value is not base64 of `user:password`.
    #[error("{path}: invalid auth entry for {registry}")]
    BadEntry {
        /// The file.
        path: PathBuf,
        /// The registry key.
        registry: String,
    },
    /// A credential helper failed.
    #[error("credential helper docker-credential-{helper} {op}: {message}")]
    Helper {
        /// The helper's name.
        helper: String,
        /// get, store or erase.
        op: &'static str,
        /// What it said (or why it could not run).
        message: String,
    },
    /// There were no credentials to remove.
    #[error("not logged in to {registry}")]
    NotLoggedIn {
        /// The registry.
        registry: String,
    },
}

/// Docker's `config.json`.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    path: PathBuf,
}

/// The key a registry's credentials are filed under (`docker.io` → Docker Hub's v1 URL).
#[must_use]
pub fn registry_key(registry: &str) -> String {
    if registry == DEFAULT_REGISTRY
        || registry == "index.docker.io"
        || registry == "registry-1.docker.io"
    {
        DOCKER_HUB_KEY.to_owned()
    } else {
        registry.to_owned()
    }
}

/// `https://host:5000/v1/` → `host:5000`.
fn normalize_key(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

impl CredentialStore {
    /// The store at `path`.
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> CredentialStore {
        CredentialStore { path: path.into() }
    }

    /// Docker's location: `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
    #[must_use]
    pub fn default_path() -> PathBuf {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
            return Path::new(&dir).join("config.json");
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
        Path::new(&home).join(".docker").join("config.json")
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<Map<String, Value>, CredentialError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
            Err(source) => {
                return Err(CredentialError::Io {
                    op: "read",
                    path: self.path.clone(),
                    source,
                });
            }
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        serde_json::from_slice(&bytes).map_err(|source| CredentialError::Parse {
            path: self.path.clone(),
            source,
        })
    }

    fn write(&self, doc: &Map<String, Value>) -> Result<(), CredentialError> {
        let io = |op, source| CredentialError::Io {
            op,
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io("create directory for", e))?;
        }
        let mut bytes =
            serde_json::to_vec_pretty(doc).map_err(|source| CredentialError::Parse {
                path: self.path.clone(),
                source,
            })?;
        bytes.push(b'\n');
        // Temp file + rename, mode 0600: the file holds passwords.
        let tmp = self
            .path
            .with_extension(format!("json.{}.tmp", std::process::id()));
        let result = (|| {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(|e| io("write", e))
    }

    fn helper_for(doc: &Map<String, Value>, registry: &str) -> Option<String> {
        let key = registry_key(registry);
        let by_registry = doc
            .get("credHelpers")
            .and_then(Value::as_object)
            .and_then(|h| {
                h.iter()
                    .find(|(k, _)| normalize_key(k) == normalize_key(&key) || **k == key)
                    .and_then(|(_, v)| v.as_str())
            });
        by_registry
            .or_else(|| doc.get("credsStore").and_then(Value::as_str))
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
    }

    /// The credentials for `registry` (`docker.io`, `localhost:5000`), if any.
    ///
    /// # Errors
    /// The file or a stored entry is malformed, or a helper fails.
    pub fn get(&self, registry: &str) -> Result<Option<Credentials>, CredentialError> {
        let doc = self.read()?;
        let key = registry_key(registry);
        if let Some(helper) = Self::helper_for(&doc, registry) {
            return helper_get(&helper, &key);
        }
        let Some(auths) = doc.get("auths").and_then(Value::as_object) else {
            return Ok(None);
        };
        let entry = auths.get(&key).or_else(|| {
            auths
                .iter()
                .find(|(k, _)| normalize_key(k) == normalize_key(&key))
                .map(|(_, v)| v)
        });
        let Some(entry) = entry else {
            return Ok(None);
        };
        let bad = || CredentialError::BadEntry {
            path: self.path.clone(),
            registry: key.clone(),
        };
        if let Some(auth) = entry.get("auth").and_then(Value::as_str)
            && !auth.is_empty()
        {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad())?;
            let text = String::from_utf8(decoded).map_err(|_| bad())?;
            let (u, p) = text.split_once(':').ok_or_else(bad)?;
            return Ok(Some(Credentials {
                username: u.to_owned(),
                password: p.to_owned(),
            }));
        }
        if let Some(token) = entry.get("identitytoken").and_then(Value::as_str) {
            return Ok(Some(Credentials {
                username: "<token>".to_owned(),
                password: token.to_owned(),
            }));
        }
        Ok(None)
    }

    /// Stores `creds` for `registry` (in its helper when one is configured).
    ///
    /// # Errors
    /// The file cannot be read or written, or the helper fails.
    pub fn store(&self, registry: &str, creds: &Credentials) -> Result<(), CredentialError> {
        let mut doc = self.read()?;
        let key = registry_key(registry);
        let helper = Self::helper_for(&doc, registry);
        if let Some(helper) = &helper {
            let input = serde_json::json!({
                "ServerURL": key,
                "Username": creds.username,
                "Secret": creds.password,
            });
            run_helper(helper, "store", input.to_string().as_bytes())?;
        }
        let auths = doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        if let Value::Object(auths) = auths {
            let entry = if helper.is_some() {
                // Docker keeps an empty entry so `docker info` lists the registry.
                serde_json::json!({})
            } else {
                let raw = format!("{}:{}", creds.username, creds.password);
                serde_json::json!({ "auth": base64::engine::general_purpose::STANDARD.encode(raw) })
            };
            auths.insert(key, entry);
        }
        self.write(&doc)
    }

    /// Removes the credentials of `registry`.
    ///
    /// # Errors
    /// [`CredentialError::NotLoggedIn`] when there were none, or the file or helper fails.
    pub fn erase(&self, registry: &str) -> Result<(), CredentialError> {
        let mut doc = self.read()?;
        let key = registry_key(registry);
        let helper = Self::helper_for(&doc, registry);
        let mut found = false;
        if let Some(Value::Object(auths)) = doc.get_mut("auths") {
            let keys: Vec<String> = auths
                .keys()
                .filter(|k| **k == key || normalize_key(k) == normalize_key(&key))
                .cloned()
                .collect();
            for k in keys {
                auths.remove(&k);
                found = true;
            }
        }
        if let Some(helper) = &helper {
            run_helper(helper, "erase", key.as_bytes())?;
            found = true;
        }
        if !found {
            return Err(CredentialError::NotLoggedIn {
                registry: registry.to_owned(),
            });
        }
        self.write(&doc)
    }
}

fn run_helper(helper: &str, op: &'static str, input: &[u8]) -> Result<Vec<u8>, CredentialError> {
    let err = |message: String| CredentialError::Helper {
        helper: helper.to_owned(),
        op,
        message,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg(op)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).map_err(|e| err(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        let mut msg = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if msg.is_empty() {
            msg = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        }
        return Err(err(msg));
    }
    Ok(out.stdout)
}

fn helper_get(helper: &str, key: &str) -> Result<Option<Credentials>, CredentialError> {
    match run_helper(helper, "get", key.as_bytes()) {
        Ok(out) => {
            let v: Value = serde_json::from_slice(&out).map_err(|e| CredentialError::Helper {
                helper: helper.to_owned(),
                op: "get",
                message: e.to_string(),
            })?;
            let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let (username, password) = (field("Username"), field("Secret"));
            if password.is_empty() {
                return Ok(None);
            }
            Ok(Some(Credentials { username, password }))
        }
        // The helpers' protocol: "credentials not found in native keychain" on stdout.
        Err(CredentialError::Helper { message, .. })
            if message.contains("credentials not found") =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(u: &str, p: &str) -> Credentials {
        Credentials {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn store_get_erase_round_trip_keeping_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d").join("config.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, r#"{"psFormat":"x","auths":{}}"#).unwrap();
        let s = CredentialStore::new(&path);
        assert_eq!(s.get("localhost:5000").unwrap(), None);
        s.store("localhost:5000", &creds("u", "p:w")).unwrap();
        s.store("docker.io", &creds("hub", "h")).unwrap();
        assert_eq!(s.get("localhost:5000").unwrap(), Some(creds("u", "p:w")));
        assert_eq!(s.get("docker.io").unwrap(), Some(creds("hub", "h")));
        let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(doc["psFormat"], "x");
        assert!(doc["auths"][DOCKER_HUB_KEY]["auth"].is_string());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        s.erase("localhost:5000").unwrap();
        assert_eq!(s.get("localhost:5000").unwrap(), None);
        assert!(matches!(
            s.erase("localhost:5000"),
            Err(CredentialError::NotLoggedIn { .. })
        ));
    }

    #[test]
    fn keys_written_as_urls_match() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://reg.example:5000/v1/":{"auth":"YTpi"}}}"#,
        )
        .unwrap();
        let s = CredentialStore::new(&path);
        assert_eq!(s.get("reg.example:5000").unwrap(), Some(creds("a", "b")));
        std::fs::write(&path, r#"{"auths":{"x":{"auth":"!!"}}}"#).unwrap();
        assert!(matches!(s.get("x"), Err(CredentialError::BadEntry { .. })));
    }

    #[test]
    fn a_missing_helper_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"credHelpers":{"reg:1":"berth-test-none"}}"#).unwrap();
        let e = CredentialStore::new(&path).get("reg:1").unwrap_err();
        assert!(
            e.to_string()
                .contains("docker-credential-berth-test-none get"),
            "{e}"
        );
        assert_eq!(CredentialStore::new(&path).get("other:1").unwrap(), None);
    }
}
