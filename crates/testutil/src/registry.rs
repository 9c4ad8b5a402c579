//! Registries for tests, all on 127.0.0.1:
//! - [`Registry`]: Debian's `docker-registry` (the CNCF distribution server) on a free port
//!   with its storage in a temp dir, optionally behind htpasswd basic auth or a bearer-token
//!   realm served by [`TokenServer`]; killed in `Drop`.
//! - [`OciImage`] / [`write_layout`]: images (gzip, zstd or plain layers; indexes of several
//!   platforms) as an OCI layout, pushed with [`skopeo`], a client berth did not write.
//! - [`FakeRegistry`]: a scripted, hostile distribution API (wrong bytes, endless or stalled
//!   bodies, connections cut mid-blob) for failure tests.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
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
const TOKEN_ISSUER: &str = "berth-test-issuer";

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
            let out = Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args([
                    "-subj",
                    "/CN=localhost",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .output()
                .unwrap_or_else(|e| panic!("run openssl: {e}"));
            assert!(
                out.status.success(),
                "openssl req: {}",
                crate::describe(&out)
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

/// A TCP proxy on 127.0.0.1 in front of `upstream` that, once `after` bytes of the response to
/// a request containing `needle` (a blob digest) went through, runs `cut` once (the test kills
/// the registry there) and drops that connection: a registry dying mid-layer, exactly where
/// the test wants it. Later connections are forwarded as usual.
#[derive(Debug)]
pub struct CuttingProxy {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

type Cut = Arc<Mutex<Option<Box<dyn FnOnce() + Send>>>>;

impl CuttingProxy {
    /// Starts the proxy.
    ///
    /// # Panics
    /// No port can be bound.
    #[must_use]
    pub fn start(
        upstream: &str,
        needle: &str,
        after: usize,
        cut: Box<dyn FnOnce() + Send>,
    ) -> CuttingProxy {
        let listener =
            TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind proxy: {e}"));
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|e| panic!("proxy address: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let cut: Cut = Arc::new(Mutex::new(Some(cut)));
        let (s, upstream, needle) = (stop.clone(), upstream.to_owned(), needle.to_owned());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue; // the registry is down: the client sees its connection close
                };
                proxy_pair(client, server, needle.clone(), after, cut.clone());
            }
        });
        CuttingProxy {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

fn proxy_pair(client: TcpStream, server: TcpStream, needle: String, after: usize, cut: Cut) {
    let armed = Arc::new(AtomicBool::new(false));
    let (Ok(mut c_in), Ok(mut s_out)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let a = armed.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        while let Ok(n) = c_in.read(&mut buf) {
            if n == 0 {
                break;
            }
            if String::from_utf8_lossy(&buf[..n]).contains(&needle) {
                a.store(true, Ordering::Relaxed);
            }
            if s_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = s_out.shutdown(std::net::Shutdown::Write);
    });
    std::thread::spawn(move || {
        let (mut s_in, mut c_out) = (server, client);
        let mut buf = vec![0u8; 16 << 10];
        let mut sent = 0;
        while let Ok(n) = s_in.read(&mut buf) {
            if n == 0 || c_out.write_all(&buf[..n]).is_err() {
                break;
            }
            if armed.load(Ordering::Relaxed) {
                sent += n;
                let fire = cut
                    .lock()
                    .ok()
                    .and_then(|mut c| if sent >= after { c.take() } else { None });
                if let Some(f) = fire {
                    f();
                    let _ = c_out.shutdown(std::net::Shutdown::Both);
                    let _ = s_in.shutdown(std::net::Shutdown::Both);
                    break;
                }
            }
        }
        let _ = c_out.shutdown(std::net::Shutdown::Write);
    });
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
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

/// How a [`FakeRegistry`] answers one path.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Each request takes the next of these replies; once they are used up, the last one
    /// answers every request (a flaky server that recovers).
    Sequence(Arc<Mutex<std::collections::VecDeque<Reply>>>, Box<Reply>),
    /// 200 with these bytes (and a media type).
    Bytes {
        /// `Content-Type`.
        content_type: String,
        /// The body.
        body: Vec<u8>,
    },
    /// A status with an empty body.
    Status(u16),
    /// 200 without a length, then bytes forever.
    Endless,
    /// 200 with the full `Content-Length` of `body`, sends `sent` bytes of it, then nothing
    /// (the connection stays open).
    Stall {
        /// The whole body.
        body: Vec<u8>,
        /// Bytes sent before stalling.
        sent: usize,
    },
    /// As `Stall`, but closes the connection (a server killed mid-transfer).
    Cut {
        /// The whole body.
        body: Vec<u8>,
        /// Bytes sent before closing.
        sent: usize,
    },
}

type Routes = Arc<Mutex<HashMap<String, Reply>>>;

/// A scripted distribution API on 127.0.0.1: `GET /v2/` answers 200; `/v2/<name>/manifests/<ref>`
/// and `/v2/<name>/blobs/<digest>` answer from the routes; anything else 404.
#[derive(Debug)]
pub struct FakeRegistry {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    routes: Routes,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Paths requested, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl FakeRegistry {
    /// Starts serving on a free port.
    #[must_use]
    pub fn start() -> FakeRegistry {
        FakeRegistry::start_on(&format!("127.0.0.1:{}", free_port()))
    }

    /// Starts serving on `addr` (to come back on the same port).
    ///
    /// # Panics
    /// The address cannot be bound.
    #[must_use]
    pub fn start_on(addr: &str) -> FakeRegistry {
        let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let routes: Routes = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let (r, s, q) = (routes.clone(), stop.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (r, s, q) = (r.clone(), s.clone(), q.clone());
                std::thread::spawn(move || serve(conn, &r, &s, &q));
            }
        });
        FakeRegistry {
            addr: addr.to_owned(),
            routes,
            stop,
            thread: Some(thread),
            requests,
        }
    }

    /// Answers `path` (`/v2/x/blobs/sha256:…`) with `reply`.
    pub fn route(&self, path: &str, reply: Reply) {
        if let Ok(mut r) = self.routes.lock() {
            r.insert(path.to_owned(), reply);
        }
    }

    /// Answers `path` with `first`, one request each, then with `then` for good.
    pub fn route_sequence(&self, path: &str, first: Vec<Reply>, then: Reply) {
        self.route(
            path,
            Reply::Sequence(Arc::new(Mutex::new(first.into())), Box::new(then)),
        );
    }

    /// Serves `img` as `<repo>:<tag>` (manifest by tag and digest, every blob).
    pub fn serve_image(&self, repo: &str, tag: &str, img: &OciImage) {
        let manifest = Reply::Bytes {
            content_type: "application/vnd.oci.image.manifest.v1+json".into(),
            body: img.manifest.clone(),
        };
        self.route(&format!("/v2/{repo}/manifests/{tag}"), manifest.clone());
        self.route(&format!("/v2/{repo}/manifests/{}", img.digest()), manifest);
        for (d, b) in img.blobs() {
            self.route(
                &format!("/v2/{repo}/blobs/{d}"),
                Reply::Bytes {
                    content_type: "application/octet-stream".into(),
                    body: b,
                },
            );
        }
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop.
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, routes: &Routes, stop: &AtomicBool, requests: &Mutex<Vec<String>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut reader) = conn.try_clone().map(BufReader::new) else {
        return;
    };
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || stop.load(Ordering::Relaxed) {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let path = parts.next().unwrap_or("").to_owned();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" || h == "\n" {
                break;
            }
        }
        if let Ok(mut q) = requests.lock() {
            q.push(format!("{method} {path}"));
        }
        let head = method == "HEAD";
        let reply = if path == "/v2/" {
            Some(Reply::Bytes {
                content_type: "application/json".into(),
                body: b"{}".to_vec(),
            })
        } else {
            routes.lock().ok().and_then(|r| r.get(&path).cloned())
        };
        let reply = match reply {
            Some(Reply::Sequence(queue, last)) => {
                let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                Some(next.unwrap_or(*last))
            }
            other => other,
        };
        let keep = match reply {
            Some(Reply::Sequence(..)) => {
                respond(&mut out, 500, "text/plain", b"nested sequence", head)
            }
            None => respond(
                &mut out,
                404,
                "application/json",
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
                head,
            ),
            Some(Reply::Status(code)) => respond(&mut out, code, "text/plain", b"", head),
            Some(Reply::Bytes { content_type, body }) => {
                let digest = sha256(&body);
                let _ = write!(
                    out,
                    "HTTP/1.1 200 OK\r\nDocker-Content-Digest: {digest}\r\n"
                );
                respond(&mut out, 200, &content_type, &body, head)
            }
            Some(Reply::Endless) => {
                let _ = write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
                );
                let chunk = vec![0x1fu8; 64 << 10];
                while !stop.load(Ordering::Relaxed) && out.write_all(&chunk).is_ok() {}
                false
            }
            Some(Reply::Stall { body, sent }) => {
                send_partial(&mut out, &body, sent);
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                false
            }
            Some(Reply::Cut { body, sent }) => {
                send_partial(&mut out, &body, sent);
                let _ = out.shutdown(std::net::Shutdown::Both);
                false
            }
        };
        if !keep {
            return;
        }
    }
}

/// A 200 announcing all of `body` but carrying only its first `sent` bytes.
fn send_partial(out: &mut TcpStream, body: &[u8], sent: usize) {
    let _ = write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let _ = out.write_all(&body[..sent.min(body.len())]);
    let _ = out.flush();
}

/// Writes the rest of a response (a 200's status line was already written by the caller).
fn respond(out: &mut TcpStream, code: u16, content_type: &str, body: &[u8], head: bool) -> bool {
    if code != 200 {
        let _ = write!(out, "HTTP/1.1 {code} Status\r\n");
    }
    let _ = write!(
        out,
        "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    if !head {
        let _ = out.write_all(body);
    }
    out.flush().is_ok()
}

/// A bearer-token realm for [`Registry`]: checks basic credentials and answers with an RS256
/// JWT (signed by `openssl`, its certificate in the `x5c` header) granting the requested
/// scopes to the one user; anonymous requests get a token granting nothing.
#[derive(Debug)]
pub struct TokenServer {
    /// `http://127.0.0.1:<port>/token`.
    pub realm: String,
    /// The certificate the registry trusts (PEM).
    pub cert: PathBuf,
    /// Tokens issued (for asserting reuse).
    pub issued: Arc<Mutex<u32>>,
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    addr: String,
    thread: Option<JoinHandle<()>>,
}

impl TokenServer {
    /// Starts a token server for `user`/`password`.
    ///
    /// # Panics
    /// The key cannot be made or the port bound.
    #[must_use]
    pub fn start(user: &str, password: &str) -> TokenServer {
        let dir = std::env::temp_dir().join(crate::unique_name("token"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create token dir: {e}"));
        let key = dir.join("key.pem");
        let cert = dir.join("cert.pem");
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=berth-test-token",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap_or_else(|e| panic!("run openssl: {e}"));
        assert!(
            out.status.success(),
            "openssl req: {}",
            crate::describe(&out)
        );
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .unwrap_or_else(|e| panic!("run openssl: {e}"));
        assert!(
            der.status.success(),
            "openssl x509: {}",
            crate::describe(&der)
        );
        let x5c = b64(&der.stdout, false);
        let listener =
            TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind token server: {e}"));
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|e| panic!("token server address: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let issued = Arc::new(Mutex::new(0));
        let expected = format!(
            "Basic {}",
            b64(format!("{user}:{password}").as_bytes(), false)
        );
        let user = user.to_owned();
        let (s, n, k) = (stop.clone(), issued.clone(), key.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(conn) = conn {
                    answer_token(conn, &expected, &user, &x5c, &k, &n);
                }
            }
        });
        TokenServer {
            realm: format!("http://{addr}/token"),
            cert,
            issued,
            dir,
            stop,
            addr,
            thread: Some(thread),
        }
    }

    /// The registry auth that trusts this server.
    #[must_use]
    pub fn auth(&self) -> Auth {
        Auth::Token {
            realm: self.realm.clone(),
            cert: self.cert.clone(),
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn b64(bytes: &[u8], url: bool) -> String {
    const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let table = if url { URL } else { STD };
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(table[((n >> (18 - 6 * i)) & 63) as usize]));
        }
        if !url {
            for _ in chunk.len()..3 {
                out.push('=');
            }
        }
    }
    out
}

fn answer_token(
    conn: TcpStream,
    expected: &str,
    user: &str,
    x5c: &str,
    key: &Path,
    issued: &Mutex<u32>,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(mut reader) = conn.try_clone().map(BufReader::new) else {
        return;
    };
    let mut out = conn;
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
    let mut authorization = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("authorization")
        {
            authorization = Some(v.trim().to_owned());
        }
    }
    let (status, body) = match authorization.as_deref() {
        Some(a) if a != expected => (401, json!({"details": "wrong credentials"}).to_string()),
        a => {
            let granted = a.is_some();
            let access: Vec<Value> = query_values(&target, "scope")
                .iter()
                .filter(|_| granted)
                .filter_map(|s| {
                    let mut p = s.splitn(3, ':');
                    let (kind, name, actions) = (p.next()?, p.next()?, p.next()?);
                    Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
                })
                .collect();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let header = json!({"alg": "RS256", "typ": "JWT", "x5c": [x5c]});
            let claims = json!({
                "iss": TOKEN_ISSUER, "sub": if granted { user } else { "" }, "aud": TOKEN_SERVICE,
                "exp": now + 600, "nbf": now - 60, "iat": now, "jti": format!("{now}-{}", std::process::id()),
                "access": access,
            });
            let signing_input = format!(
                "{}.{}",
                b64(header.to_string().as_bytes(), true),
                b64(claims.to_string().as_bytes(), true)
            );
            let sig = sign(key, signing_input.as_bytes());
            if let Ok(mut n) = issued.lock() {
                *n += 1;
            }
            let token = format!("{signing_input}.{}", b64(&sig, true));
            (200, json!({"token": token, "expires_in": 600}).to_string())
        }
    };
    let _ = write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn sign(key: &Path, input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run openssl dgst: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    let mut sig = Vec::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_end(&mut sig);
    }
    let _ = child.wait();
    sig
}

fn query_values(target: &str, key: &str) -> Vec<String> {
    let Some((_, query)) = target.split_once('?') else {
        return Vec::new();
    };
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| percent_decode(v))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_values() {
        assert_eq!(b64(b"u:p", false), "dTpw");
        assert_eq!(b64(b"ab", false), "YWI=");
        assert_eq!(b64(b"ab", true), "YWI");
        assert_eq!(
            percent_decode("repository%3Aa%3Apull%2Cpush"),
            "repository:a:pull,push"
        );
    }
}
