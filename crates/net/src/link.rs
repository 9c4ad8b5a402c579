//! Links, addresses and routes over rtnetlink: the bridge of a network, the veth pair of an
//! endpoint, the container side's addresses and default route.
//!
//! A [`Netlink`] talks to the network namespace its socket was opened in: [`Netlink::open`] uses
//! the calling thread's; [`in_netns`] runs a closure on a thread that entered another namespace
//! (a container's), so the process itself never leaves its own.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

use futures_util::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{AddressAttribute, AddressFlags};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{RouteAttribute, RouteMessage, RouteType};
use rtnetlink::{LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::error::NetError;
use crate::subnet::Subnet;

const ENODEV: i32 = 19;
const EEXIST: i32 = 17;
const ENOENT: i32 = 2;

/// One link of a namespace, as listed by [`Netlink::links`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// The bridge it is a port of.
    pub master: Option<u32>,
    /// `bridge`, `veth`, ... (`None` for a link without a kind, such as `lo`).
    pub kind: Option<String>,
}

/// An address with its prefix length, as put on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfAddr {
    /// The address.
    pub ip: IpAddr,
    /// Its prefix length.
    pub prefix: u8,
}

/// What the container side of an endpoint gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Interface name inside the container (`eth0`, `eth1`, ...).
    pub ifname: String,
    /// Addresses (one IPv4, maybe one IPv6).
    pub addrs: Vec<IfAddr>,
    /// Default gateways to route through (none on an internal network).
    pub gateways: Vec<IpAddr>,
    /// Hardware address.
    pub mac: [u8; 6],
    /// MTU (0: the kernel's default).
    pub mtu: u32,
}

/// A netlink route socket bound to one network namespace, with the small runtime its
/// asynchronous client needs.
pub struct Netlink {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) handle: rtnetlink::Handle,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Netlink")
    }
}

pub(crate) fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

impl Netlink {
    /// Opens a socket in the calling thread's network namespace.
    ///
    /// Errors: the socket cannot be made.
    pub fn open() -> Result<Self, NetError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(NetError::io("start netlink runtime"))?;
        let handle = rt.block_on(async {
            let (conn, handle, _) =
                rtnetlink::new_connection().map_err(NetError::io("open netlink socket"))?;
            tokio::spawn(conn);
            Ok::<_, NetError>(handle)
        })?;
        Ok(Self { rt, handle })
    }

    /// Every link of the namespace.
    ///
    /// Errors: the dump failed.
    pub fn links(&self) -> Result<Vec<Link>, NetError> {
        self.rt.block_on(async {
            let mut out = Vec::new();
            let mut dump = self.handle.link().get().execute();
            while let Some(m) = dump
                .try_next()
                .await
                .map_err(NetError::netlink("list links"))?
            {
                out.push(to_link(&m));
            }
            Ok(out)
        })
    }

    /// The link named `name`, if any.
    ///
    /// Errors: the request failed for another reason than a missing link.
    pub fn link(&self, name: &str) -> Result<Option<Link>, NetError> {
        self.rt.block_on(async {
            let mut get = self
                .handle
                .link()
                .get()
                .match_name(name.to_owned())
                .execute();
            match get.try_next().await {
                Ok(m) => Ok(m.map(|m| to_link(&m))),
                Err(e) if matches!(errno(&e), Some(ENODEV | ENOENT)) => Ok(None),
                Err(e) => Err(NetError::netlink(format!("look up link {name}"))(e)),
            }
        })
    }

    pub(crate) fn index(&self, name: &str) -> Result<u32, NetError> {
        self.link(name)?
            .map(|l| l.index)
            .ok_or_else(|| NetError::NoLink {
                name: name.to_owned(),
            })
    }

    /// Makes the bridge `name` (if missing) with `addrs` on it, and sets it up. A new bridge's
    /// hardware address is [`mac_for`] its first IPv4 address (a gateway's, which no container
    /// gets).
    ///
    /// Errors: the kernel refused a step.
    pub fn ensure_bridge(&self, name: &str, mtu: u32, addrs: &[IfAddr]) -> Result<(), NetError> {
        if self.link(name)?.is_none() {
            // A hardware address of its own: a bridge without one takes the lowest of its
            // ports', and so changes as containers come and go, leaving the gateway's old
            // address in their neighbour tables (their frames to it dropped for seconds).
            let v4 = addrs.iter().map(|a| a.ip).find(IpAddr::is_ipv4);
            let mut b = LinkBridge::new(name).address(mac_for(v4).to_vec());
            if mtu > 0 {
                b = b.mtu(mtu);
            }
            let msg = b.build();
            self.rt.block_on(async {
                match self.handle.link().add(msg).execute().await {
                    Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
                    r => r.map_err(NetError::netlink(format!("create bridge {name}"))),
                }
            })?;
        }
        let index = self.index(name)?;
        for a in addrs {
            self.add_address(index, name, *a)?;
        }
        self.set_up(index, name)
    }

    fn add_address(&self, index: u32, name: &str, a: IfAddr) -> Result<(), NetError> {
        self.rt.block_on(async {
            let mut req = self.handle.address().add(index, a.ip, a.prefix);
            if a.ip.is_ipv6() {
                // Usable at once: duplicate address detection would hold it for a second or
                // more, and IPAM already guarantees it is unique on the network.
                req.message_mut()
                    .attributes
                    .push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
            match req.execute().await {
                Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
                r => r.map_err(NetError::netlink(format!(
                    "add address {}/{} to {name}",
                    a.ip, a.prefix
                ))),
            }
        })
    }

    fn set_up(&self, index: u32, name: &str) -> Result<(), NetError> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.rt.block_on(async {
            self.handle
                .link()
                .set(msg)
                .execute()
                .await
                .map_err(NetError::netlink(format!("set {name} up")))
        })
    }

    /// Deletes the link `name`; a missing one is fine.
    ///
    /// Errors: the kernel refused.
    pub fn delete_link(&self, name: &str) -> Result<(), NetError> {
        let Some(link) = self.link(name)? else {
            return Ok(());
        };
        self.rt.block_on(async {
            match self.handle.link().del(link.index).execute().await {
                Err(e) if matches!(errno(&e), Some(ENODEV | ENOENT)) => Ok(()),
                r => r.map_err(NetError::netlink(format!("delete link {name}"))),
            }
        })
    }

    /// The destinations of the namespace's routes (main table, both families): what a new
    /// network's subnet must not collide with.
    ///
    /// Errors: the dump failed.
    pub fn route_destinations(&self) -> Result<Vec<Subnet>, NetError> {
        self.rt.block_on(async {
            let mut out = Vec::new();
            for msg in [
                RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
                RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
            ] {
                let mut dump = self.handle.route().get(msg).execute();
                while let Some(r) = dump
                    .try_next()
                    .await
                    .map_err(NetError::netlink("list routes"))?
                {
                    if let Some(s) = destination(&r) {
                        out.push(s);
                    }
                }
            }
            Ok(out)
        })
    }

    /// Makes the veth pair `host`/`ep.ifname`: `host` a port of `bridge` in this namespace, the
    /// peer created directly in the namespace `netns` (so no half-moved pair can be left here),
    /// then configures the peer there: addresses, up, default routes, and `lo` up.
    ///
    /// The port is in hairpin mode: where `br_netfilter` DNATs a frame on the bridge itself (a
    /// container reaching its own published port through a host address), the bridge sends it
    /// back out the port it came in on.
    ///
    /// Errors: the kernel refused a step.
    pub fn attach_veth(
        &self,
        bridge: &str,
        host: &str,
        netns: BorrowedFd<'_>,
        ep: &Endpoint,
    ) -> Result<(), NetError> {
        let bridge_index = self.index(bridge)?;
        let mut peer = LinkUnspec::new_with_name(&ep.ifname)
            .address(ep.mac.to_vec())
            .setns_by_fd(netns.as_raw_fd());
        if ep.mtu > 0 {
            peer = peer.mtu(ep.mtu);
        }
        let mut veth = LinkVeth::new(host, &ep.ifname)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
            .controller(bridge_index)
            .up();
        if ep.mtu > 0 {
            veth = veth.mtu(ep.mtu);
        }
        let msg = veth.build();
        self.rt.block_on(async {
            self.handle
                .link()
                .add(msg)
                .execute()
                .await
                .map_err(NetError::netlink(format!("create veth {host} on {bridge}")))
        })?;
        let port = LinkBridgePort::new(self.index(host)?).hairpin(true).build();
        self.rt.block_on(async {
            self.handle
                .link()
                .set_port(port)
                .execute()
                .await
                .map_err(NetError::netlink(format!("set hairpin mode on {host}")))
        })?;
        let ep = ep.clone();
        in_netns(netns, move |nl| nl.configure(&ep))
    }

    /// Configures an interface of this namespace as `ep` says.
    fn configure(&self, ep: &Endpoint) -> Result<(), NetError> {
        let lo = self.index("lo")?;
        self.set_up(lo, "lo")?;
        let index = self.index(&ep.ifname)?;
        for a in &ep.addrs {
            self.add_address(index, &ep.ifname, *a)?;
        }
        self.set_up(index, &ep.ifname)?;
        for gw in &ep.gateways {
            let msg = match gw {
                IpAddr::V4(v4) => RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                    .gateway(*v4)
                    .output_interface(index)
                    .build(),
                IpAddr::V6(v6) => RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                    .gateway(*v6)
                    .output_interface(index)
                    .build(),
            };
            self.rt.block_on(async {
                match self.handle.route().add(msg).execute().await {
                    // A second network's gateway: the first one's default route stays.
                    Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
                    r => r.map_err(NetError::netlink(format!("add default route via {gw}"))),
                }
            })?;
        }
        Ok(())
    }
}

fn to_link(m: &LinkMessage) -> Link {
    let mut l = Link {
        index: m.header.index,
        name: String::new(),
        master: None,
        kind: None,
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name.clone_from(n),
            LinkAttribute::Controller(i) => l.master = Some(*i),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        l.kind = Some(kind_name(k));
                    }
                }
            }
            _ => {}
        }
    }
    l
}

fn kind_name(k: &InfoKind) -> String {
    match k {
        InfoKind::Bridge => "bridge".into(),
        InfoKind::Veth => "veth".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn destination(r: &RouteMessage) -> Option<Subnet> {
    if r.header.kind != RouteType::Unicast {
        return None;
    }
    let len = r.header.destination_prefix_length;
    let addr = r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(d) => match d {
            netlink_packet_route::route::RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
            netlink_packet_route::route::RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
            _ => None,
        },
        _ => None,
    });
    let addr = match (addr, r.header.address_family) {
        (Some(a), _) => a,
        (None, AddressFamily::Inet) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        (None, _) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    };
    Subnet::new(addr, len).ok()
}

/// Runs `f` with a [`Netlink`] opened inside the network namespace `netns`, on a thread made
/// for it (the calling thread never changes namespace).
///
/// Errors: entering the namespace failed, or `f`'s.
pub fn in_netns<T: Send>(
    netns: BorrowedFd<'_>,
    f: impl FnOnce(&Netlink) -> Result<T, NetError> + Send,
) -> Result<T, NetError> {
    std::thread::scope(|s| {
        s.spawn(move || {
            rustix::thread::move_into_link_name_space(
                netns,
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .map_err(|e| NetError::io("enter network namespace")(e.into()))?;
            let nl = Netlink::open()?;
            f(&nl)
        })
        .join()
        .unwrap_or_else(|_| {
            Err(NetError::io("configure network namespace")(
                std::io::Error::other("thread panicked"),
            ))
        })
    })
}

/// Deletes the interface `ifname` inside the namespace `netns` (a `network disconnect`); its
/// veth peer goes with it. A missing interface is fine.
///
/// Errors: entering the namespace or the deletion failed.
pub fn detach(netns: BorrowedFd<'_>, ifname: &str) -> Result<(), NetError> {
    in_netns(netns, |nl| nl.delete_link(ifname))
}

/// Sets `lo` up inside the namespace `netns` (a container with no network but its own).
///
/// Errors: entering the namespace or the change failed.
pub fn loopback_up(netns: BorrowedFd<'_>) -> Result<(), NetError> {
    in_netns(netns, |nl| {
        let lo = nl.index("lo")?;
        nl.set_up(lo, "lo")
    })
}

/// Docker's MAC for an IPv4 address: `02:42` and the address's four bytes.
#[must_use]
pub fn mac_for(ip: Option<IpAddr>) -> [u8; 6] {
    match ip {
        Some(IpAddr::V4(v4)) => {
            let o = v4.octets();
            [0x02, 0x42, o[0], o[1], o[2], o[3]]
        }
        _ => [0x02, 0x42, 0, 0, 0, 1],
    }
}

/// `aa:bb:cc:dd:ee:ff`.
#[must_use]
pub fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
