//! Registries for tests, all on 127.0.0.1:
//! - [`Registry`]: Debian's `docker-registry` (the CNCF distribution server) on a free port
//!   with its storage in a temp dir, optionally behind htpasswd basic auth or a bearer-token
//!   realm served by [`TokenServer`]; killed in `Drop`.
//! - [`OciImage`] / [`write_layout`]: images (gzip, zstd or plain layers; indexes of several
//!   platforms) as an OCI layout, pushed with [`skopeo`], a client berth did not write.
//! - [`FakeRegistry`]: a scripted, hostile distribution API (wrong bytes, endless or stalled
//!   bodies, connections cut mid-blob) for failure tests, and [`CuttingProxy`], which kills the
//!   real registry mid-layer.

mod fake;
mod token;

pub use fake::{CuttingProxy, FakeRegistry, Reply};
pub use token::TokenServer;

use serde_json::{Value, json};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::images::sha256;

/// The distribution server binary (Debian package `docker-registry`).
pub const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";

/// Whether `docker-registry` and `skopeo` are installed (tests skip without them, fail under
/// `CI=true`).
#[must_use]
pub fn tools_present() -> bool {
    let ok = Path::new(REGISTRY_BINARY).exists() && Path::new("/usr/bin/skopeo").exists();
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "docker-registry and skopeo must be installed on CI (apt-get install docker-registry skopeo)"
        );
        eprintln!("skipping: docker-registry or skopeo not installed");
    }
    ok
}

/// A free TCP port on 127.0.0.1 (bound and released; the caller binds it next).
///
/// # Panics
/// No port can be bound.
#[must_use]
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("bind a free port: {e}"))
}

/// How the registry authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Open.
    None,
    /// htpasswd basic auth with one user.
    Basic {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
    /// Bearer tokens from a [`TokenServer`].
    Token {
        /// The token server's realm URL.
        realm: String,
        /// Its certificate (PEM).
        cert: PathBuf,
    },
}

/// The service name the token server and registry agree on.
pub const TOKEN_SERVICE: &str = "berth-test-registry";
pub(crate) const TOKEN_ISSUER: &str = "berth-test-issuer";

/// A running `docker-registry serve`.
#[derive(Debug)]
pub struct Registry {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// The test's directory (config, storage).
    pub dir: PathBuf,
    config: PathBuf,
    child: Option<Child>,
}

impl Registry {
    /// Starts an open registry.
    #[must_use]
    pub fn start(tag: &str) -> Registry {
        Registry::start_with(tag, &Auth::None)
    }

    /// Starts a registry with `auth`.
    ///
    /// # Panics
    /// It cannot be configured or does not come up.
    #[must_use]
    pub fn start_with(tag: &str, auth: &Auth) -> Registry {
        Registry::start_full(tag, auth, false)
    }

    /// Starts an open registry speaking HTTPS with a self-signed certificate.
    #[must_use]
    pub fn start_tls(tag: &str) -> Registry {
        Registry::start_full(tag, &Auth::None, true)
    }

    fn start_full(tag: &str, auth: &Auth, tls: bool) -> Registry {
        let dir = std::env::temp_dir().join(crate::unique_name(tag));
        std::fs::create_dir_all(dir.join("storage"))
            .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let addr = format!("127.0.0.1:{}", free_port());
        let auth_yaml = match auth {
            Auth::None => String::new(),
            Auth::Basic { user, password } => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .unwrap_or_else(|e| panic!("run htpasswd (apache2-utils): {e}"));
                assert!(out.status.success(), "htpasswd: {}", crate::describe(&out));
                let path = dir.join("htpasswd");
                std::fs::write(&path, &out.stdout)
                    .unwrap_or_else(|e| panic!("write htpasswd: {e}"));
                format!(
                    "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                    path.display()
                )
            }
            Auth::Token { realm, cert } => format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                cert.display()
            ),
        };
        let tls_yaml = if tls {
            let (key, cert) = (dir.join("tls.key"), dir.join("tls.crt"));
            self_signed(
                &key,
                &cert,
                "/CN=localhost",
                &["-addext", "subjectAltName=IP:127.0.0.1"],
            );
            format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            )
        } else {
            String::new()
        };
        let config = dir.join("config.yml");
        let yaml = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: {addr}\n{tls_yaml}{auth_yaml}",
            dir.join("storage").display()
        );
        std::fs::write(&config, yaml).unwrap_or_else(|e| panic!("write registry config: {e}"));
        let mut r = Registry {
            addr,
            dir,
            config,
            child: None,
        };
        r.restart();
        r
    }

    /// Starts the server again (after [`kill`](Self::kill)) on the same port and storage.
    ///
    /// # Panics
    /// It does not come up within 20 s.
    pub fn restart(&mut self) {
        let log = std::fs::File::create(self.dir.join("registry.log"))
            .unwrap_or_else(|e| panic!("create registry log: {e}"));
        let child = Command::new(REGISTRY_BINARY)
            .arg("serve")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {REGISTRY_BINARY}: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&self.addr).is_err() {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                let log =
                    std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default();
                panic!("docker-registry exited with {status}: {log}");
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's pid, while it runs.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The path of a blob's data in the registry's storage (for corrupting it on purpose).
    #[must_use]
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `openssl` with `args`; its stdout.
///
/// # Panics
/// openssl cannot run or fails.
pub(crate) fn openssl(args: &[&std::ffi::OsStr]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run openssl: {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        crate::describe(&out)
    );
    out.stdout
}

/// A self-signed RSA certificate `cert` for `subject` with its key `key`.
pub(crate) fn self_signed(key: &Path, cert: &Path, subject: &str, extra: &[&str]) {
    let fixed = [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", subject,
    ];
    let mut args: Vec<&std::ffi::OsStr> = fixed
        .iter()
        .chain(extra)
        .map(std::ffi::OsStr::new)
        .collect();
    args.extend([
        std::ffi::OsStr::new("-keyout"),
        key.as_os_str(),
        std::ffi::OsStr::new("-out"),
        cert.as_os_str(),
    ]);
    openssl(&args);
}

/// Runs skopeo with `args` (TLS verification off for the loopback registry).
///
/// # Panics
/// skopeo cannot be spawned.
#[must_use]
pub fn skopeo(args: &[&str]) -> Output {
    Command::new("skopeo")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run skopeo: {e}"))
}

/// `skopeo copy [--all] oci:<layout>:<name> docker://<dest>`.
///
/// # Panics
/// The copy fails.
pub fn push_layout(layout: &Path, name: &str, dest: &str, all: bool) {
    let src = format!("oci:{}:{name}", layout.display());
    let dst = format!("docker://{dest}");
    let mut args = vec!["copy", "--quiet", "--dest-tls-verify=false"];
    if all {
        args.push("--all");
    }
    args.extend([src.as_str(), dst.as_str()]);
    let out = skopeo(&args);
    assert!(
        out.status.success(),
        "skopeo copy {src} {dst}: {}",
        crate::describe(&out)
    );
}

/// Layer compression of an [`OciImage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// An OCI image built in memory.
#[derive(Debug, Clone)]
pub struct OciImage {
    /// The config blob.
    pub config: Vec<u8>,
    /// Layer blobs (compressed) with their media types.
    pub layers: Vec<(Vec<u8>, String)>,
    /// The manifest.
    pub manifest: Vec<u8>,
    /// The architecture in the config (`amd64`...).
    pub arch: String,
}

/// The host's architecture in GOARCH spelling.
#[must_use]
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

impl OciImage {
    /// An image of the uncompressed layer tars `layers`, compressed as `compression`, for
    /// `arch`, with `Cmd` = `cmd` and the label `berth.test=<label>`.
    ///
    /// # Panics
    /// Compression to memory fails.
    #[must_use]
    pub fn new(
        layers: &[Vec<u8>],
        compression: Compression,
        arch: &str,
        cmd: &[&str],
        label: &str,
    ) -> OciImage {
        let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
        let history: Vec<Value> = layers
            .iter()
            .enumerate()
            .map(|(i, _)| json!({"created": "2024-01-01T00:00:00Z", "created_by": format!("layer {i}")}))
            .collect();
        let config = serde_json::to_vec(&json!({
            "architecture": arch,
            "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "config": {"Cmd": cmd, "Labels": {"berth.test": label}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        }))
        .unwrap_or_else(|e| panic!("config: {e}"));
        let layers: Vec<(Vec<u8>, String)> = layers
            .iter()
            .map(|l| match compression {
                Compression::None => (l.clone(), "application/vnd.oci.image.layer.v1.tar".into()),
                Compression::Gzip => (
                    crate::images::gzip(l),
                    "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                ),
                Compression::Zstd => (
                    zstd::encode_all(&l[..], 3).unwrap_or_else(|e| panic!("zstd: {e}")),
                    "application/vnd.oci.image.layer.v1.tar+zstd".into(),
                ),
            })
            .collect();
        let manifest = manifest_for(&config, &layers);
        OciImage {
            config,
            layers,
            manifest,
            arch: arch.to_owned(),
        }
    }

    /// `sha256:` of the manifest.
    #[must_use]
    pub fn digest(&self) -> String {
        sha256(&self.manifest)
    }

    /// Every blob (config, layers, manifest) by digest.
    #[must_use]
    pub fn blobs(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = vec![(sha256(&self.config), self.config.clone())];
        out.extend(self.layers.iter().map(|(b, _)| (sha256(b), b.clone())));
        out.push((self.digest(), self.manifest.clone()));
        out
    }
}

/// An OCI image manifest over `config` and `layers` (bytes, media type).
///
/// # Panics
/// Never in practice.
#[must_use]
pub fn manifest_for(config: &[u8], layers: &[(Vec<u8>, String)]) -> Vec<u8> {
    let layer_descs: Vec<Value> = layers
        .iter()
        .map(|(b, mt)| json!({"mediaType": mt, "digest": sha256(b), "size": b.len()}))
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(config),
            "size": config.len(),
        },
        "layers": layer_descs,
    }))
    .unwrap_or_else(|e| panic!("manifest: {e}"))
}

/// An OCI index over `images` (one entry per image, `linux/<arch>`).
///
/// # Panics
/// Never in practice.
#[must_use]
pub fn index_for(images: &[&OciImage]) -> Vec<u8> {
    let manifests: Vec<Value> = images
        .iter()
        .map(|i| {
            json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": i.digest(),
                "size": i.manifest.len(),
                "platform": {"os": "linux", "architecture": i.arch},
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .unwrap_or_else(|e| panic!("index: {e}"))
}

/// What a layout names.
#[derive(Debug, Clone)]
pub enum LayoutEntry {
    /// One image.
    Image(OciImage),
    /// An index over several images.
    Index(Vec<OciImage>),
}

/// Writes an OCI image layout at `dir` holding `entries`, each under its ref name.
///
/// # Panics
/// The layout cannot be written.
pub fn write_layout(dir: &Path, entries: &[(&str, LayoutEntry)]) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap_or_else(|e| panic!("create layout: {e}"));
    let put = |bytes: &[u8]| {
        let d = sha256(bytes);
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), bytes)
            .unwrap_or_else(|e| panic!("write blob: {e}"));
        d
    };
    let mut manifests = Vec::new();
    for (name, entry) in entries {
        let (digest, size, media_type) = match entry {
            LayoutEntry::Image(img) => {
                for (_, b) in img.blobs() {
                    put(&b);
                }
                (
                    img.digest(),
                    img.manifest.len(),
                    "application/vnd.oci.image.manifest.v1+json",
                )
            }
            LayoutEntry::Index(imgs) => {
                for img in imgs {
                    for (_, b) in img.blobs() {
                        put(&b);
                    }
                }
                let index = index_for(&imgs.iter().collect::<Vec<_>>());
                let d = put(&index);
                (d, index.len(), "application/vnd.oci.image.index.v1+json")
            }
        };
        manifests.push(json!({
            "mediaType": media_type,
            "digest": digest,
            "size": size,
            "annotations": {"org.opencontainers.image.ref.name": name},
        }));
    }
    let index = json!({"schemaVersion": 2, "manifests": manifests});
    std::fs::write(dir.join("index.json"), index.to_string())
        .and_then(|()| std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#))
        .unwrap_or_else(|e| panic!("write layout index: {e}"));
}
