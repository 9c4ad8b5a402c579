//! `pull`, `push` and `login`: the engine's side of the registry client in `image::registry`.
//!
//! A pull holds the image store's writer lock until the image is recorded. When it fails
//! because the content was rejected (a digest mismatch, a hostile layer, an oversized
//! manifest), what it wrote is collected; when the network failed (a reset, a stall, a dead
//! registry), the blobs and layers it verified stay, so the next pull resumes from them.
//! The registry configuration is read from `BERTH_REGISTRY_CONFIG` (default
//! `/etc/berth/registries.json`, dockerd's `daemon.json` keys).

use std::collections::BTreeMap;
use std::path::PathBuf;

use image::Platform;
use image::registry::{
    self, Client, Credentials, LayerProgress, PullOptions, PushOptions, PushProgress, Pushed,
    Reference, RegistryConfig, RegistryError,
};

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::events::EventType;
use crate::id::Digest;
use crate::images::Image;

/// Environment variable naming the registry configuration file.
pub const REGISTRY_CONFIG_ENV: &str = "BERTH_REGISTRY_CONFIG";

/// `docker pull` options.
#[derive(Debug, Clone, Default)]
pub struct PullRequest {
    /// `NAME[:TAG|@DIGEST]`.
    pub reference: String,
    /// `--platform` (default: the host's).
    pub platform: Option<Platform>,
    /// Credentials for the registry, if any.
    pub credentials: Option<Credentials>,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullResult {
    /// The parsed reference.
    pub reference: Reference,
    /// The digest the reference resolved to (index or manifest).
    pub digest: image::Digest,
    /// The recorded image.
    pub image: Image,
    /// Nothing new was fetched and the name already pointed at this image.
    pub up_to_date: bool,
}

/// `docker push` options.
#[derive(Debug, Clone, Default)]
pub struct PushRequest {
    /// `NAME[:TAG]` of a local image.
    pub reference: String,
    /// Credentials for the registry, if any.
    pub credentials: Option<Credentials>,
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct PushResult {
    /// The target.
    pub reference: Reference,
    /// The manifest pushed.
    pub pushed: Pushed,
}

fn registry_err(action: String) -> impl FnOnce(RegistryError) -> EngineError {
    move |source| EngineError::Registry {
        action,
        source: Box::new(source),
    }
}

/// The registry configuration file in force.
#[must_use]
pub fn registry_config_path() -> PathBuf {
    std::env::var_os(REGISTRY_CONFIG_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(
            || PathBuf::from(registry::config::DEFAULT_CONFIG_PATH),
            PathBuf::from,
        )
}

/// Parses a reference the way `pull`/`push` do.
///
/// Errors: `InvalidArgument` naming the reference and the reason.
pub fn parse_reference(reference: &str) -> Result<Reference> {
    Reference::parse(reference).map_err(|e| EngineError::Registry {
        action: format!("reference {reference}"),
        source: Box::new(e.into()),
    })
}

fn client() -> Result<Client> {
    let path = registry_config_path();
    let config = RegistryConfig::load(&path)
        .map_err(|e| registry_err("read registry configuration".into())(e.into()))?;
    Ok(Client::new(config))
}

impl Engine {
    /// `docker pull`: fetches the image (every blob verified, every layer unpacked), records
    /// it and points the reference's name at it.
    ///
    /// Errors: a bad reference, unknown manifest, refused credentials, transport failures
    /// after retries, rejected content.
    pub fn pull_image(
        &self,
        req: &PullRequest,
        progress: &(dyn Fn(&LayerProgress) + Sync),
    ) -> Result<PullResult> {
        let reference = parse_reference(&req.reference)?;
        let action = format!("pull {}", reference.familiar());
        let client = client()?;
        let opts = PullOptions {
            platform: req.platform.clone().unwrap_or_else(Platform::host),
        };
        let name = reference.familiar();
        let before = self
            .store
            .read(|tx| tx.resolve_image(&name))
            .ok()
            .map(|i| i.digest);
        let lock = self.registry_lock()?;
        let pulled = registry::pull_from_endpoints(
            &self.images,
            &client,
            &reference,
            req.credentials.clone(),
            &opts,
            progress,
        );
        let result = match pulled {
            Ok(p) => {
                // Docker's RepoDigests: a pull by tag also names the image by the digest the
                // tag resolved to (a pull by digest is named so already).
                let mut names = vec![name.clone()];
                if reference.digest.is_none() {
                    names.push(format!("{}@{}", reference.familiar_name(), p.top));
                }
                self.record_image(&p.manifest, &names)
                    .map(|(image, _)| (p, image))
            }
            Err(e) => Err(registry_err(action)(e)),
        };
        drop(lock);
        match result {
            Ok((p, image)) => {
                let up_to_date = !p.downloaded && before.as_ref() == Some(&image.digest);
                self.registry_event("pull", &name)?;
                tracing::info!(reference = %reference, digest = %p.top, "image pulled");
                Ok(PullResult {
                    reference,
                    digest: p.top,
                    image,
                    up_to_date,
                })
            }
            Err(e) => {
                let transient =
                    matches!(&e, EngineError::Registry { source, .. } if source.is_transient());
                if !transient && let Err(gc) = self.collect_image_garbage() {
                    tracing::warn!("collect data of a failed pull: {gc}");
                }
                Err(e)
            }
        }
    }

    /// The tags of `reference`'s repository (`pull --all-tags`).
    ///
    /// Errors: a bad reference, refused credentials, transport failures.
    pub fn list_tags(
        &self,
        reference: &str,
        credentials: Option<Credentials>,
    ) -> Result<Vec<String>> {
        let reference = parse_reference(reference)?;
        let action = format!("list tags of {}", reference.familiar_name());
        let session = client()?
            .session(&reference, credentials, "pull", &[])
            .map_err(registry_err(action.clone()))?;
        registry::tags(&session).map_err(registry_err(action))
    }

    /// `docker push`: uploads the local image `reference` (its stored blobs and manifest,
    /// unchanged) under the reference's tag.
    ///
    /// Errors: no such image, a bad reference, refused credentials, transport failures.
    pub fn push_image(
        &self,
        req: &PushRequest,
        progress: &(dyn Fn(&PushProgress) + Sync),
    ) -> Result<PushResult> {
        let reference = parse_reference(&req.reference)?;
        let record = self
            .store
            .read(|tx| tx.resolve_image(&reference.familiar()))
            .or_else(|_| self.store.read(|tx| tx.resolve_image(&req.reference)))?;
        let manifest = image::Digest::parse(record.digest.as_str()).map_err(|_| {
            EngineError::InvalidValue {
                what: "image digest",
                value: record.digest.to_string(),
            }
        })?;
        // Other names of this image on the same registry: blobs can be mounted from there.
        let mount_from: Vec<String> = record
            .names
            .iter()
            .filter_map(|n| Reference::parse(n).ok())
            .filter(|r| r.registry == reference.registry && r.repository != reference.repository)
            .map(|r| r.repository)
            .collect();
        let action = format!("push {}", reference.familiar());
        let client = client()?;
        let session = client
            .session(
                &reference,
                req.credentials.clone(),
                "pull,push",
                &mount_from,
            )
            .map_err(registry_err(action.clone()))?;
        let opts = PushOptions {
            tag: reference.tag.clone(),
            mount_from,
            ..PushOptions::default()
        };
        // Shared: a collection must not remove the blobs being read.
        let _lock = self.registry_lock()?;
        let pushed = registry::push(&self.images, &session, &manifest, &opts, progress)
            .map_err(registry_err(action))?;
        tracing::info!(reference = %reference, digest = %pushed.digest, "image pushed");
        self.registry_event("push", &reference.familiar())?;
        Ok(PushResult { reference, pushed })
    }

    /// `docker login`: checks `credentials` against `registry` (`/v2/` must answer 200 with
    /// them). Storing them is the caller's (the CLI's `config.json`).
    ///
    /// Errors: the registry refuses them or cannot be reached.
    pub fn check_login(&self, registry: &str, credentials: &Credentials) -> Result<()> {
        let probe = Reference {
            registry: registry.to_owned(),
            repository: String::new(),
            tag: None,
            digest: None,
        };
        let action = format!("login {registry}");
        // Not "pull": mirrors must not stand in for the registry whose credentials these are.
        let client = client()?;
        let session = client
            .session(&probe, Some(credentials.clone()), "login", &[])
            .map_err(registry_err(action.clone()))?;
        session.check_login().map_err(registry_err(action))
    }

    /// Docker's `pull`/`push` image event: the reference is the actor, its name an attribute.
    fn registry_event(&self, action: &str, reference: &str) -> Result<()> {
        let name = reference
            .rsplit_once(['@', ':'])
            .filter(|(_, tail)| !tail.contains('/'))
            .map_or(reference, |(n, _)| n);
        let attrs = BTreeMap::from([("name".to_owned(), name.to_owned())]);
        self.store
            .write(|tx| tx.append_event(EventType::Image, action, reference, &attrs))
    }

    /// The image store's writer lock (shared: collections wait, other writers do not).
    fn registry_lock(&self) -> Result<image::GcLock> {
        self.images.lock_writer().map_err(|source| EngineError::Gc {
            source: Box::new(source),
        })
    }

    /// Whether `reference` names an image in the store.
    #[must_use]
    pub fn has_image(&self, reference: &str) -> bool {
        self.store.read(|tx| tx.resolve_image(reference)).is_ok()
    }

    /// The digest of the image `reference` names, if any.
    #[must_use]
    pub fn image_digest_of(&self, reference: &str) -> Option<Digest> {
        self.store
            .read(|tx| tx.resolve_image(reference))
            .ok()
            .map(|i| i.digest)
    }
}
