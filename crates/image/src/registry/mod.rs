//! The registry client: the OCI distribution API over HTTP(S).
//!
//! [`Reference`] parses names as Docker does; [`RegistryConfig`] holds mirrors, insecure
//! registries and limits; [`CredentialStore`] is Docker's `config.json` (with credential
//! helpers); a [`Client`] opens a [`Session`] per repository (ping, auth challenge answered
//! once, token reused); [`pull()`] and [`push()`] move images between a session and the
//! [`ImageStore`](crate::ImageStore). Names and tags stay the engine's business.

pub mod auth;
mod client;
pub mod config;
pub mod credentials;
pub mod pull;
pub mod push;
pub mod reference;
mod tls;

pub use auth::Credentials;
pub use client::{Client, Session};
pub use config::RegistryConfig;
pub use credentials::{CredentialError, CredentialStore};
pub use pull::{LayerProgress, LayerState, PullOptions, Pulled, pull, pull_from_endpoints, tags};
pub use push::{PushOptions, PushProgress, PushState, Pushed, push};
pub use reference::{Reference, ReferenceError};

use crate::content::ContentError;
use crate::digest::Digest;
use crate::manifest::ManifestError;
use crate::unpack::UnpackError;
use std::io;

/// Errors of registry operations.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The reference does not parse.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// The registry configuration is unusable.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// Credentials could not be read or stored.
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// The configuration forbids contacting the registry.
    #[error("registry {registry} is blocked by the registry configuration")]
    Blocked {
        /// The registry.
        registry: String,
    },
    /// The connection failed (after retries).
    #[error("{what}: {detail}")]
    Transport {
        /// The request.
        what: String,
        /// What failed, once (ureq's own message repeats its causes).
        detail: String,
    },
    /// Reading a response body failed (reset, stall).
    #[error("{what}")]
    Read {
        /// What was being read.
        what: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The registry wants credentials berth does not have, or refused them.
    #[error("unauthorized: {message}")]
    Unauthorized {
        /// The registry.
        registry: String,
        /// What the registry said.
        message: String,
    },
    /// The registry refused the operation (403).
    #[error("{what}: denied: {message}")]
    Denied {
        /// The request.
        what: String,
        /// What the registry said.
        message: String,
    },
    /// No manifest for the tag or digest.
    #[error("manifest for {reference} not found: manifest unknown")]
    ManifestUnknown {
        /// The reference asked for.
        reference: String,
    },
    /// Another unexpected answer.
    #[error("{what}: status {status}: {message}")]
    Status {
        /// The request.
        what: String,
        /// The HTTP status.
        status: u16,
        /// What the registry said.
        message: String,
    },
    /// The token endpoint failed.
    #[error("get token from {realm}: {message}")]
    Token {
        /// The realm.
        realm: String,
        /// What went wrong.
        message: String,
    },
    /// An upload location is not a URL.
    #[error("registry gave an invalid upload location {location:?}")]
    BadLocation {
        /// The header value.
        location: String,
    },
    /// A manifest or config is over its limit.
    #[error("{what} is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// The document.
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A manifest is unusable.
    #[error("manifest {what}")]
    Manifest {
        /// Its digest or tag.
        what: String,
        /// The cause.
        #[source]
        source: ManifestError,
    },
    /// An index inside an index.
    #[error("manifest {digest}: nested index")]
    NestedIndex {
        /// The inner index.
        digest: Digest,
    },
    /// A blob was rejected (digest or size mismatch) or could not be stored or read.
    #[error("{what}")]
    Content {
        /// The blob.
        what: String,
        /// The cause.
        #[source]
        source: ContentError,
    },
    /// A layer failed to unpack.
    #[error("unpack layer {digest}")]
    Unpack {
        /// The layer blob.
        digest: Digest,
        /// The cause.
        #[source]
        source: UnpackError,
    },
    /// The stored image could not be resolved.
    #[error("resolve pulled image")]
    Image {
        /// The cause.
        #[source]
        source: crate::ImageError,
    },
}

impl RegistryError {
    /// A transport failure of the request `what`: the failure's kind, message and innermost
    /// cause, each once.
    pub(crate) fn transport(what: String, t: &ureq::Transport) -> RegistryError {
        let mut detail = t.kind().to_string();
        if let Some(m) = t.message() {
            detail.push_str(": ");
            detail.push_str(m);
        }
        let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(t);
        let mut last = None;
        while let Some(c) = cause {
            last = Some(c.to_string());
            cause = c.source();
        }
        if let Some(l) = last
            && !detail.contains(&l)
        {
            detail.push_str(": ");
            detail.push_str(&l);
        }
        RegistryError::Transport { what, detail }
    }
}

pub(crate) fn io_kind_transient(kind: io::ErrorKind) -> bool {
    use io::ErrorKind as K;
    matches!(
        kind,
        K::ConnectionReset
            | K::ConnectionAborted
            | K::BrokenPipe
            | K::TimedOut
            | K::WouldBlock
            | K::UnexpectedEof
            | K::Interrupted
            | K::ConnectionRefused
            | K::NotConnected
    )
}

impl RegistryError {
    /// Whether the failure is the network's (worth retrying, and worth keeping the blobs
    /// already verified for the next attempt) rather than the content's.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Transport { .. } => true,
            RegistryError::Read { source, .. } => io_kind_transient(source.kind()),
            RegistryError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}
