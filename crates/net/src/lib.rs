//! berth's container networking, on the kernel's own interfaces: bridges, veth pairs, addresses
//! and routes over rtnetlink ([`link`]), the subnet arithmetic of IPAM ([`subnet`]), outbound
//! NAT, isolation and published ports as one nftables table ([`firewall`]), the per-namespace
//! sysctls ([`sysctl`]), a tiny DNS server for a network's names ([`dns`]) and the eBPF shortcut
//! that takes frames between two containers of one bridge past the bridge ([`fastpath`]).
//!
//! This crate knows nothing of containers, images or the engine's store: it is given names,
//! addresses and namespace descriptors and makes the kernel match them. Everything acts on the
//! network namespace of the calling thread, or on one passed as a descriptor.

pub mod dns;
pub mod error;
pub mod fastpath;
pub mod firewall;
pub mod link;
pub mod subnet;
pub mod sysctl;

pub use error::NetError;
pub use link::{Endpoint, IfAddr, Link, Netlink};
pub use subnet::Subnet;
