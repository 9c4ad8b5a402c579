//! The errors of the networking crate.

use std::path::PathBuf;

/// What went wrong while configuring networking.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A subnet that does not parse or names a host rather than a network.
    #[error("invalid subnet {value:?}: expected a network address and prefix such as 10.1.0.0/24")]
    BadSubnet {
        /// The text given.
        value: String,
    },
    /// A netlink request the kernel refused.
    #[error("{action}")]
    Netlink {
        /// What was being done, to which link.
        action: String,
        /// The kernel's answer.
        #[source]
        source: rtnetlink::Error,
    },
    /// Opening a netlink socket or running its connection failed.
    #[error("{action}")]
    Io {
        /// What was being done.
        action: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// A link that should exist does not.
    #[error("no network interface {name}")]
    NoLink {
        /// Interface name.
        name: String,
    },
    /// Writing a sysctl failed.
    #[error("write {value} to {}", path.display())]
    Sysctl {
        /// The /proc/sys file.
        path: PathBuf,
        /// The value written.
        value: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// `nft` refused the ruleset or could not be run.
    #[error("apply nftables ruleset")]
    Nftables {
        /// The nftables crate's error (it carries nft's message).
        #[source]
        source: nftables::helper::NftablesError,
    },
}

impl NetError {
    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let action = action.into();
        move |source| Self::Io { action, source }
    }

    pub(crate) fn netlink(action: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Self {
        let action = action.into();
        move |source| Self::Netlink { action, source }
    }
}
