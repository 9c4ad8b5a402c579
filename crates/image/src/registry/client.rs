//! The HTTP side of the distribution API: one [`Client`] (connection pool, timeouts, registry
//! configuration) and one [`Session`] per repository and operation, which pings `/v2/`,
//! answers the registry's auth challenge once (Basic, or a Bearer token fetched from the
//! challenge's realm for the session's scopes) and reuses that for every request, retrying
//! connection failures and 5xx/429 answers with exponential backoff.

use super::RegistryError;
use super::auth::{Challenge, Credentials, TokenResponse, parse_challenge, token_url};
use super::config::{Endpoint, RegistryConfig};
use super::reference::Reference;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The largest error or token body berth reads.
const SMALL_BODY: u64 = 1 << 20;

/// Registry HTTP client: agents with berth's timeouts (one verifying certificates, one for
/// insecure registries that does not) and the registry configuration.
#[derive(Debug, Clone)]
pub struct Client {
    config: RegistryConfig,
    agent: ureq::Agent,
    insecure_agent: ureq::Agent,
}

/// A request body that can be sent again on retry.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Body<'a> {
    /// No body.
    Empty,
    /// Bytes in memory.
    Bytes(&'a [u8]),
    /// `len` bytes of a file from `offset`.
    File {
        path: &'a Path,
        offset: u64,
        len: u64,
    },
}

impl Client {
    /// A client for `config`.
    #[must_use]
    pub fn new(config: RegistryConfig) -> Client {
        let builder = || {
            ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(30))
                // Per socket read: a server that stops sending fails the transfer (then retried).
                .timeout_read(config.stall_timeout)
                .timeout_write(config.stall_timeout)
                .redirects(5)
                .redirect_auth_headers(ureq::RedirectAuthHeaders::SameHost)
                .max_idle_connections_per_host(config.max_concurrent_downloads.max(8))
                .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        };
        let agent = builder().build();
        let insecure_agent = match super::tls::accept_any_certificate() {
            Ok(tls) => builder().tls_config(tls).build(),
            Err(e) => {
                tracing::warn!("TLS without verification unavailable: {e}");
                agent.clone()
            }
        };
        Client {
            config,
            agent,
            insecure_agent,
        }
    }

    /// The registry configuration.
    #[must_use]
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// Where `reference`'s registry can be reached for `actions`, in order: mirrors (for
    /// `pull` from `docker.io` only), then the registry itself unless it is blocked.
    #[must_use]
    pub fn endpoints(&self, reference: &Reference, actions: &str) -> Vec<Endpoint> {
        let mut endpoints = self
            .config
            .endpoints(&reference.registry, reference.api_host());
        if actions != "pull" {
            endpoints.retain(|e| !e.mirror);
        }
        if self.config.is_blocked(&reference.registry) {
            endpoints.retain(|e| e.mirror);
        }
        endpoints
    }

    /// Opens a session on `reference`'s repository at `endpoint`: pings it (HTTPS, then plain
    /// HTTP for an insecure registry) and authenticates for `actions` (`pull`, or
    /// `pull,push`) on it, plus `pull` on each of `also_pull` (cross-repository mounts).
    /// Mirrors get no credentials: those belong to the registry.
    ///
    /// # Errors
    /// The endpoint does not answer, or authentication fails.
    pub fn open(
        &self,
        reference: &Reference,
        endpoint: &Endpoint,
        credentials: Option<Credentials>,
        actions: &str,
        also_pull: &[String],
    ) -> Result<Session, RegistryError> {
        // No repository (login): a token for the registry alone.
        let mut scopes: Vec<String> = (!reference.repository.is_empty())
            .then(|| format!("repository:{}:{actions}", reference.repository))
            .into_iter()
            .collect();
        scopes.extend(also_pull.iter().map(|r| format!("repository:{r}:pull")));
        let session = Session {
            client: self.clone(),
            registry: reference.registry.clone(),
            base: endpoint.base.clone(),
            repository: reference.repository.clone(),
            scopes,
            credentials: if endpoint.mirror { None } else { credentials },
            auth: Arc::new(Mutex::new(None)),
            insecure: endpoint.http_fallback,
        };
        session.ping(endpoint)
    }

    /// A session on the first endpoint of [`endpoints`](Self::endpoints) that answers (see
    /// [`open`](Self::open)).
    ///
    /// # Errors
    /// The registry is blocked, no endpoint answers, or authentication fails.
    pub fn session(
        &self,
        reference: &Reference,
        credentials: Option<Credentials>,
        actions: &str,
        also_pull: &[String],
    ) -> Result<Session, RegistryError> {
        let endpoints = self.endpoints(reference, actions);
        let mut last = None;
        for endpoint in &endpoints {
            match self.open(reference, endpoint, credentials.clone(), actions, also_pull) {
                Ok(s) => return Ok(s),
                Err(e) if endpoint.mirror => {
                    tracing::info!(mirror = %endpoint.base, error = %e, "mirror unusable; trying the next endpoint");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(RegistryError::Blocked {
            registry: reference.registry.clone(),
        }))
    }
}

/// Requests to one repository of one registry, authenticated once and reused (tokens are
/// shared by every blob of a pull or push).
#[derive(Debug, Clone)]
pub struct Session {
    client: Client,
    registry: String,
    base: String,
    repository: String,
    scopes: Vec<String>,
    credentials: Option<Credentials>,
    auth: Arc<Mutex<Option<String>>>,
    /// An insecure registry: HTTPS without certificate verification (or plain HTTP).
    insecure: bool,
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64 << attempt.min(4).saturating_sub(1))
}

fn retryable_transport(t: &ureq::Transport) -> bool {
    use ureq::ErrorKind as K;
    matches!(
        t.kind(),
        K::ConnectionFailed | K::Io | K::Dns | K::BadStatus
    )
}

/// The distribution spec's error body: `{"errors":[{"code":…,"message":…}]}`.
fn error_message(resp: ureq::Response) -> String {
    let status = resp.status();
    let mut body = Vec::new();
    let _ = resp.into_reader().take(SMALL_BODY).read_to_end(&mut body);
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let first = parsed
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(|e| e.get(0));
    if let Some(e) = first {
        let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
        let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
        let code = code.to_ascii_lowercase().replace('_', " ");
        return match (code.is_empty(), msg.is_empty()) {
            (false, false) if code != msg => format!("{code}: {msg}"),
            (false, _) => code,
            (true, false) => msg.to_owned(),
            (true, true) => format!("status {status}"),
        };
    }
    let text: String = String::from_utf8_lossy(&body)
        .chars()
        .take_while(|c| !c.is_control())
        .take(200)
        .collect();
    if text.trim().is_empty() {
        format!("status {status}")
    } else {
        text.trim().to_owned()
    }
}

impl Session {
    fn agent(&self) -> &ureq::Agent {
        if self.insecure {
            &self.client.insecure_agent
        } else {
            &self.client.agent
        }
    }

    /// The registry (`localhost:5000`).
    #[must_use]
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository (`library/busybox`).
    #[must_use]
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The registry configuration in force.
    #[must_use]
    pub fn config(&self) -> &RegistryConfig {
        &self.client.config
    }

    /// `<base>/v2/<repository>/<rest>`.
    pub(crate) fn url(&self, rest: &str) -> String {
        format!("{}/v2/{}/{rest}", self.base, self.repository)
    }

    /// Resolves a `Location` header against the endpoint.
    pub(crate) fn location(&self, location: &str) -> Result<url::Url, RegistryError> {
        url::Url::parse(&self.base)
            .and_then(|b| b.join(location))
            .map_err(|_| RegistryError::BadLocation {
                location: location.to_owned(),
            })
    }

    fn ping(mut self, endpoint: &Endpoint) -> Result<Session, RegistryError> {
        let first = self.ping_once(!endpoint.http_fallback);
        let resp = match first {
            Err(RegistryError::Transport { .. }) if endpoint.http_fallback => {
                // Insecure registry: HTTPS did not work, plain HTTP it is (as dockerd does).
                self.base = endpoint.base.replacen("https://", "http://", 1);
                self.ping_once(true)?
            }
            other => other?,
        };
        if let Some(resp) = resp
            && let Some(ch) = resp.header("www-authenticate").and_then(parse_challenge)
        {
            self.answer(&ch)?;
        }
        Ok(self)
    }

    /// `GET /v2/`: `Ok(None)` when open, `Ok(Some(401 response))` when it wants auth.
    fn ping_once(&self, retry_transport: bool) -> Result<Option<ureq::Response>, RegistryError> {
        let url = format!("{}/v2/", self.base);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.agent().get(&url).call() {
                Ok(_) => return Ok(None),
                Err(ureq::Error::Status(401, r)) => return Ok(Some(r)),
                Err(ureq::Error::Status(code, r))
                    if (code >= 500 || code == 429) && attempt < self.config().max_attempts =>
                {
                    drop(r);
                    std::thread::sleep(backoff(attempt));
                }
                Err(ureq::Error::Status(code, r)) => {
                    return Err(RegistryError::Status {
                        what: format!("GET {url}"),
                        status: code,
                        message: error_message(r),
                    });
                }
                Err(ureq::Error::Transport(t))
                    if retry_transport
                        && retryable_transport(&t)
                        && attempt < self.config().max_attempts =>
                {
                    std::thread::sleep(backoff(attempt));
                }
                Err(ureq::Error::Transport(t)) => {
                    return Err(RegistryError::transport(format!("GET {url}"), &t));
                }
            }
        }
    }

    /// Answers a challenge: sets the `Authorization` value every later request carries.
    fn answer(&self, challenge: &Challenge) -> Result<(), RegistryError> {
        let header = match challenge {
            Challenge::Basic => match &self.credentials {
                Some(c) => c.basic_header(),
                None => {
                    return Err(RegistryError::Unauthorized {
                        registry: self.registry.clone(),
                        message: "no basic auth credentials".into(),
                    });
                }
            },
            Challenge::Bearer { realm, service, .. } => {
                format!("Bearer {}", self.token(realm, service.as_deref())?)
            }
        };
        if let Ok(mut a) = self.auth.lock() {
            *a = Some(header);
        }
        Ok(())
    }

    fn token(&self, realm: &str, service: Option<&str>) -> Result<String, RegistryError> {
        let url = token_url(realm, service, &self.scopes).map_err(|_| RegistryError::Token {
            realm: realm.to_owned(),
            message: "the realm is not a URL".into(),
        })?;
        let mut req = self.agent().request_url("GET", &url);
        if let Some(c) = &self.credentials {
            req = req.set("Authorization", &c.basic_header());
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(401 | 403, r)) => {
                return Err(RegistryError::Unauthorized {
                    registry: self.registry.clone(),
                    message: error_message(r),
                });
            }
            Err(ureq::Error::Status(code, r)) => {
                return Err(RegistryError::Token {
                    realm: realm.to_owned(),
                    message: format!("status {code}: {}", error_message(r)),
                });
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(RegistryError::transport(format!("GET {realm}"), &t));
            }
        };
        let mut body = Vec::new();
        resp.into_reader()
            .take(SMALL_BODY)
            .read_to_end(&mut body)
            .map_err(|source| RegistryError::Read {
                what: format!("token from {realm}"),
                source,
            })?;
        serde_json::from_slice::<TokenResponse>(&body)
            .ok()
            .and_then(TokenResponse::into_token)
            .ok_or_else(|| RegistryError::Token {
                realm: realm.to_owned(),
                message: "the answer holds no token".into(),
            })
    }

    /// Sends a request, authenticating on a 401 (once) and retrying connection failures and
    /// 5xx/429 answers. Other 4xx answers become errors naming `what`.
    pub(crate) fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
        what: &dyn Fn() -> String,
    ) -> Result<ureq::Response, RegistryError> {
        let mut attempt = 0;
        let mut authenticated = false;
        loop {
            attempt += 1;
            let mut req = self.agent().request(method, url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            if let Some(a) = self.auth.lock().ok().and_then(|a| a.clone()) {
                req = req.set("Authorization", &a);
            }
            let result = match body {
                Body::Empty => req.call(),
                Body::Bytes(b) => req.send_bytes(b),
                Body::File { path, offset, len } => {
                    let mut f =
                        std::fs::File::open(path).map_err(|source| RegistryError::Read {
                            what: format!("open {}", path.display()),
                            source,
                        })?;
                    f.seek(SeekFrom::Start(offset))
                        .map_err(|source| RegistryError::Read {
                            what: format!("seek {}", path.display()),
                            source,
                        })?;
                    req.set("Content-Length", &len.to_string())
                        .send(f.take(len))
                }
            };
            match result {
                Ok(r) => return Ok(r),
                Err(ureq::Error::Status(401, r)) if !authenticated => {
                    authenticated = true;
                    let challenge = r.header("www-authenticate").and_then(parse_challenge);
                    match challenge {
                        Some(ch) => self.answer(&ch)?,
                        None => {
                            return Err(RegistryError::Unauthorized {
                                registry: self.registry.clone(),
                                message: error_message(r),
                            });
                        }
                    }
                }
                Err(ureq::Error::Status(401, r)) => {
                    return Err(RegistryError::Unauthorized {
                        registry: self.registry.clone(),
                        message: error_message(r),
                    });
                }
                Err(ureq::Error::Status(403, r)) => {
                    return Err(RegistryError::Denied {
                        what: what(),
                        message: error_message(r),
                    });
                }
                Err(ureq::Error::Status(code, r))
                    if (code >= 500 || code == 429) && attempt < self.config().max_attempts =>
                {
                    tracing::debug!(url, code, attempt, "registry error; retrying");
                    drop(r);
                    std::thread::sleep(backoff(attempt));
                }
                Err(ureq::Error::Status(code, r)) => {
                    return Err(RegistryError::Status {
                        what: what(),
                        status: code,
                        message: error_message(r),
                    });
                }
                Err(ureq::Error::Transport(t))
                    if retryable_transport(&t) && attempt < self.config().max_attempts =>
                {
                    tracing::debug!(url, error = %t, attempt, "connection error; retrying");
                    std::thread::sleep(backoff(attempt));
                }
                Err(ureq::Error::Transport(t)) => {
                    return Err(RegistryError::transport(what(), &t));
                }
            }
        }
    }

    /// Checks that the session's credentials are accepted: `GET /v2/` answers 200.
    ///
    /// # Errors
    /// [`RegistryError::Unauthorized`] when they are not.
    pub fn check_login(&self) -> Result<(), RegistryError> {
        let url = format!("{}/v2/", self.base);
        self.send("GET", &url, &[], Body::Empty, &|| format!("GET {url}"))
            .map(drop)
    }
}

/// The wait before attempt `attempt + 1`, in whole seconds (at least 1), for progress output.
pub(crate) fn backoff_secs(attempt: u32) -> u64 {
    backoff(attempt).as_secs().max(1)
}

/// Sleeps before another attempt of a failed transfer (for callers retrying whole blobs).
pub(crate) fn wait_before_retry(attempt: u32) -> Duration {
    let d = backoff(attempt);
    std::thread::sleep(d);
    d
}

/// Runs `job(0..count)` on up to `workers` threads; after the first failure no new job starts,
/// and the error of the lowest-numbered failed job comes back (the same one whatever the
/// threads' timing).
pub(crate) fn in_parallel<E: Send>(
    count: usize,
    workers: usize,
    job: impl Fn(usize) -> Result<(), E> + Sync,
) -> Result<(), E> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let errors: Mutex<Vec<(usize, E)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers.min(count) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count || failed.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Err(e) = job(i) {
                        failed.store(true, Ordering::Relaxed);
                        if let Ok(mut errs) = errors.lock() {
                            errs.push((i, e));
                        }
                    }
                }
            });
        }
    });
    let mut errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
    errors.sort_by_key(|(i, _)| *i);
    match errors.into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}
