//! Network records, endpoints and IPAM (`docker network`), and published-port leases, in the
//! state store.
//!
//! IPAM is the `endpoints` table: one row per (network, container) holding the addresses it was
//! given. A unique index per network and address family makes handing out an address twice
//! impossible even for two `berth` processes at once (the allocation reads the taken addresses
//! and inserts in one IMMEDIATE transaction); the rows vanish with the container's row
//! (`ON DELETE CASCADE`), so `rm` frees them and a crash can never half-free them. Host ports
//! work the same way in `port_leases`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use net::Subnet;
use rusqlite::{OptionalExtension, Row, params};

use crate::error::{EngineError, Result};
use crate::events::EventType;
use crate::id::{Timestamp, random_hex};
use crate::store::Tx;

/// The name of the default bridge network.
pub const DEFAULT_NETWORK: &str = "bridge";
/// The default bridge network's interface.
pub const DEFAULT_BRIDGE: &str = "berth0";
/// First host port `-P` and `-p CONTAINER` pick from (Linux's default ephemeral range).
pub const EPHEMERAL_PORTS: std::ops::RangeInclusive<u16> = 32768..=60999;

/// A network to create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewNetwork {
    /// Name.
    pub name: String,
    /// IPv4 subnet (`None`: the first free one of Docker's pools).
    pub subnet: Option<Subnet>,
    /// IPv4 gateway (`None`: the subnet's first host).
    pub gateway: Option<IpAddr>,
    /// `--ip-range`: the part of the subnet containers get addresses from.
    pub ip_range: Option<Subnet>,
    /// `--ipv6` subnet.
    pub subnet6: Option<Subnet>,
    /// IPv6 gateway (`None`: the subnet's first host).
    pub gateway6: Option<IpAddr>,
    /// `--internal`.
    pub internal: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Driver options (`com.docker.network.bridge.name`, `com.docker.network.driver.mtu`).
    pub options: BTreeMap<String, String>,
}

/// A network record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// 64 hex digits.
    pub id: String,
    /// Name.
    pub name: String,
    /// Creation time.
    pub created: Timestamp,
    /// The bridge interface.
    pub bridge: String,
    /// IPv4 subnet.
    pub subnet: Subnet,
    /// IPv4 gateway (the bridge's address).
    pub gateway: IpAddr,
    /// Where container addresses come from.
    pub ip_range: Option<Subnet>,
    /// IPv6 subnet.
    pub subnet6: Option<Subnet>,
    /// IPv6 gateway.
    pub gateway6: Option<IpAddr>,
    /// No traffic leaves the bridge.
    pub internal: bool,
    /// MTU (0: default).
    pub mtu: u32,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Driver options.
    pub options: BTreeMap<String, String>,
}

impl Network {
    /// The default bridge network (no DNS, `/etc/hosts` only, as Docker's).
    #[must_use]
    pub fn is_default(&self) -> bool {
        self.name == DEFAULT_NETWORK
    }
}

/// A container's place on a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Network id.
    pub network_id: String,
    /// Container id.
    pub container_id: String,
    /// The container's interface is `eth<index>`.
    pub index: u32,
    /// IPv4 address.
    pub ipv4: IpAddr,
    /// IPv6 address.
    pub ipv6: Option<IpAddr>,
    /// `--network-alias` names.
    pub aliases: Vec<String>,
}

impl Endpoint {
    /// `eth<index>`.
    #[must_use]
    pub fn ifname(&self) -> String {
        format!("eth{}", self.index)
    }

    /// The host side of the veth pair: `bv` + 10 digits of the container id + the index, so
    /// `system check` can tell whose it is.
    #[must_use]
    pub fn host_ifname(&self) -> String {
        format!("bv{}{}", &self.container_id[..10], self.index)
    }
}

/// What to connect a container with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointRequest {
    /// `--ip`.
    pub ipv4: Option<IpAddr>,
    /// `--ip6`.
    pub ipv6: Option<IpAddr>,
    /// `--network-alias` / `--alias`.
    pub aliases: Vec<String>,
}

/// A host port given to a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortLease {
    /// Container id.
    pub container_id: String,
    /// `tcp` or `udp`.
    pub proto: String,
    /// Host address (`0.0.0.0`: all).
    pub host_ip: String,
    /// Host port.
    pub host_port: u16,
    /// Container port.
    pub container_port: u16,
}

const COLUMNS: &str = "id, name, created, bridge, subnet, gateway, ip_range, subnet6, gateway6, \
    internal, mtu, labels, options";

fn parse_subnet(s: &str) -> Result<Option<Subnet>> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| EngineError::Corrupt {
        table: "networks",
        key: String::new(),
        column: "subnet",
        value: s.to_owned(),
    })
}

fn parse_ip(s: &str) -> Result<Option<IpAddr>> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| EngineError::Corrupt {
        table: "endpoints",
        key: String::new(),
        column: "address",
        value: s.to_owned(),
    })
}

fn opt<T: ToString>(v: Option<&T>) -> String {
    v.map(ToString::to_string).unwrap_or_default()
}

type RawNetwork = (
    String,
    String,
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    bool,
    u32,
    String,
    String,
);

fn raw_network(r: &Row<'_>) -> rusqlite::Result<RawNetwork> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
    ))
}

fn decode(r: RawNetwork) -> Result<Network> {
    let json = |s: &str| -> Result<BTreeMap<String, String>> {
        serde_json::from_str(s).map_err(|source| EngineError::Json {
            action: "decode network labels".into(),
            source,
        })
    };
    let subnet = parse_subnet(&r.4)?.ok_or_else(|| EngineError::Corrupt {
        table: "networks",
        key: r.0.clone(),
        column: "subnet",
        value: String::new(),
    })?;
    Ok(Network {
        id: r.0,
        name: r.1,
        created: Timestamp(r.2),
        bridge: r.3,
        subnet,
        gateway: parse_ip(&r.5)?.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ip_range: parse_subnet(&r.6)?,
        subnet6: parse_subnet(&r.7)?,
        gateway6: parse_ip(&r.8)?,
        internal: r.9,
        mtu: r.10,
        labels: json(&r.11)?,
        options: json(&r.12)?,
    })
}

fn invalid(what: &'static str, value: impl ToString, reason: impl Into<String>) -> EngineError {
    EngineError::InvalidSetting {
        what,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Checks a network request on its own: the gateway and range inside the subnet, families
/// right, the options known.
///
/// Errors: `InvalidSetting` naming the flag.
pub fn validate(n: &NewNetwork) -> Result<()> {
    crate::id::validate_name("network", &n.name)?;
    if let Some(s) = &n.subnet {
        if s.is_ipv6() {
            return Err(invalid("subnet", s, "an IPv6 subnet needs --ipv6"));
        }
        if s.prefix() > 30 {
            return Err(invalid(
                "subnet",
                s,
                "too small for a gateway and a container",
            ));
        }
    }
    if let Some(g) = n.gateway {
        match &n.subnet {
            None => return Err(invalid("gateway", g, "a gateway needs --subnet")),
            Some(s) if !s.contains(g) => {
                return Err(invalid("gateway", g, format!("not inside subnet {s}")));
            }
            Some(_) => {}
        }
    }
    if let Some(r) = &n.ip_range {
        match &n.subnet {
            Some(s) if s.covers(r) => {}
            Some(s) => return Err(invalid("ip-range", r, format!("not inside subnet {s}"))),
            None => return Err(invalid("ip-range", r, "an ip range needs --subnet")),
        }
    }
    if let Some(s6) = n.subnet6.filter(|s| !s.is_ipv6()) {
        return Err(invalid("subnet", s6, "not an IPv6 subnet"));
    }
    if let Some(g6) = n.gateway6 {
        match &n.subnet6 {
            Some(s) if s.contains(g6) => {}
            _ => return Err(invalid("gateway", g6, "not inside the IPv6 subnet")),
        }
    }
    for (k, v) in &n.options {
        match k.as_str() {
            "com.docker.network.bridge.name" => {
                if v.is_empty() || v.len() > 15 || v.contains(['/', ' ']) || v == "lo" {
                    return Err(invalid("bridge name", v, "not a valid interface name"));
                }
            }
            "com.docker.network.driver.mtu" => {
                if !v.parse::<u32>().is_ok_and(|m| (68..=65535).contains(&m)) {
                    return Err(invalid("mtu", v, "must be a number from 68 to 65535"));
                }
            }
            _ => return Err(invalid("option", k, "unknown bridge driver option")),
        }
    }
    Ok(())
}

impl Tx<'_> {
    /// Creates a network record; `taken` are subnets it must not overlap besides the other
    /// networks' (the namespace's routes). An omitted subnet is the first free pool.
    ///
    /// Errors: a bad or taken name, overlapping subnets, a bad setting.
    pub fn create_network(&self, new: &NewNetwork, routes: &[Subnet]) -> Result<Network> {
        validate(new)?;
        if let Some(n) = self.find_network(&new.name)? {
            return Err(EngineError::NameInUse {
                what: "network",
                name: new.name.clone(),
                by: n.id[..12].to_owned(),
            });
        }
        let existing = self.list_networks()?;
        let mut used: Vec<Subnet> = existing
            .iter()
            .flat_map(|n| std::iter::once(n.subnet).chain(n.subnet6))
            .collect();
        let subnet = match new.subnet {
            Some(s) => s,
            None => {
                let mut avoid = used.clone();
                avoid.extend(routes.iter().copied());
                net::subnet::pick_subnet(&net::subnet::default_pools(), &avoid)
                    .ok_or_else(|| invalid("subnet", "(automatic)", "no free address pool left"))?
            }
        };
        let _ = &mut used;
        for s in std::iter::once(&subnet).chain(new.subnet6.as_ref()) {
            if let Some(other) = existing
                .iter()
                .find(|n| n.subnet.overlaps(s) || n.subnet6.is_some_and(|x| x.overlaps(s)))
            {
                return Err(invalid(
                    "subnet",
                    s,
                    format!("overlaps with network {} on this address space", other.name),
                ));
            }
        }
        let gateway = match new.gateway {
            Some(g) => g,
            None => subnet
                .first_host()
                .ok_or_else(|| invalid("subnet", subnet, "has no host addresses"))?,
        };
        let gateway6 = match (new.gateway6, &new.subnet6) {
            (Some(g), _) => Some(g),
            (None, Some(s6)) => s6.first_host(),
            (None, None) => None,
        };
        let id = random_hex()?;
        let bridge = new
            .options
            .get("com.docker.network.bridge.name")
            .cloned()
            .unwrap_or_else(|| {
                if new.name == DEFAULT_NETWORK {
                    DEFAULT_BRIDGE.to_owned()
                } else {
                    format!("br-{}", &id[..12])
                }
            });
        if existing.iter().any(|n| n.bridge == bridge) {
            return Err(invalid("bridge name", &bridge, "used by another network"));
        }
        let mtu = new
            .options
            .get("com.docker.network.driver.mtu")
            .and_then(|m| m.parse().ok())
            .unwrap_or(0_u32);
        let json = |m: &BTreeMap<String, String>| {
            serde_json::to_string(m).map_err(|source| EngineError::Json {
                action: "encode network labels".into(),
                source,
            })
        };
        self.tx
            .execute(
                &format!("INSERT INTO networks ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"),
                params![
                    id,
                    new.name,
                    Timestamp::now().0,
                    bridge,
                    subnet.to_string(),
                    gateway.to_string(),
                    opt(new.ip_range.as_ref()),
                    opt(new.subnet6.as_ref()),
                    opt(gateway6.as_ref()),
                    new.internal,
                    mtu,
                    json(&new.labels)?,
                    json(&new.options)?,
                ],
            )
            .map_err(EngineError::sqlite("insert network"))?;
        self.append_event(
            EventType::Network,
            "create",
            &id,
            &BTreeMap::from([
                ("name".to_owned(), new.name.clone()),
                ("type".to_owned(), "bridge".to_owned()),
            ]),
        )?;
        self.network(&id)
    }

    fn find_network(&self, reference: &str) -> Result<Option<Network>> {
        let by_name = self
            .tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM networks WHERE name = ?1 OR id = ?1"),
                [reference],
                raw_network,
            )
            .optional()
            .map_err(EngineError::sqlite("read network"))?;
        if let Some(r) = by_name {
            return decode(r).map(Some);
        }
        if reference.is_empty() || !reference.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let mut stmt = self
            .tx
            .prepare(&format!(
                "SELECT {COLUMNS} FROM networks WHERE id LIKE ?1 || '%'"
            ))
            .map_err(EngineError::sqlite("read network"))?;
        let rows: Vec<RawNetwork> = stmt
            .query_map([reference], raw_network)
            .and_then(Iterator::collect)
            .map_err(EngineError::sqlite("read network"))?;
        match rows.len() {
            0 => Ok(None),
            1 => rows.into_iter().next().map(decode).transpose(),
            _ => Err(EngineError::AmbiguousPrefix {
                what: "network",
                prefix: reference.to_owned(),
            }),
        }
    }

    /// The network named `reference` (name, id or id prefix).
    ///
    /// Errors: `NotFound`.
    pub fn network(&self, reference: &str) -> Result<Network> {
        self.find_network(reference)?
            .ok_or_else(|| EngineError::NotFound {
                what: "network",
                reference: reference.to_owned(),
            })
    }

    /// Every network, by name.
    ///
    /// Errors: the store cannot be read.
    pub fn list_networks(&self) -> Result<Vec<Network>> {
        let mut stmt = self
            .tx
            .prepare(&format!("SELECT {COLUMNS} FROM networks ORDER BY name"))
            .map_err(EngineError::sqlite("list networks"))?;
        let rows: Vec<RawNetwork> = stmt
            .query_map([], raw_network)
            .and_then(Iterator::collect)
            .map_err(EngineError::sqlite("list networks"))?;
        rows.into_iter().map(decode).collect()
    }

    /// Removes the network record.
    ///
    /// Errors: containers are still connected (`InUse`).
    pub fn remove_network(&self, n: &Network) -> Result<()> {
        let users = self.endpoints_on(&n.id)?;
        if !users.is_empty() {
            let names: Vec<String> = users.iter().map(|(_, name, _)| name.clone()).collect();
            return Err(EngineError::InUse {
                what: "network",
                name: n.name.clone(),
                users: names.join(", "),
            });
        }
        self.tx
            .execute("DELETE FROM networks WHERE id = ?1", [&n.id])
            .map_err(EngineError::sqlite("delete network"))?;
        self.append_event(
            EventType::Network,
            "destroy",
            &n.id,
            &BTreeMap::from([("name".to_owned(), n.name.clone())]),
        )?;
        Ok(())
    }

    /// Gives container `container_id` a place on `n`: the requested addresses (checked to be
    /// inside and free) or the lowest free ones.
    ///
    /// Errors: already connected, an address outside the subnet or taken, the subnet full.
    pub fn add_endpoint(
        &self,
        container_id: &str,
        n: &Network,
        req: &EndpointRequest,
    ) -> Result<Endpoint> {
        let mine = self.endpoints_of(container_id)?;
        if mine.iter().any(|(e, _)| e.network_id == n.id) {
            return Err(EngineError::NameInUse {
                what: "endpoint",
                name: n.name.clone(),
                by: container_id[..12].to_owned(),
            });
        }
        let index = (0..)
            .find(|i| !mine.iter().any(|(e, _)| e.index == *i))
            .unwrap_or(0);
        let taken = |col: &str| -> Result<Vec<IpAddr>> {
            let mut stmt = self
                .tx
                .prepare(&format!(
                    "SELECT {col} FROM endpoints WHERE network_id = ?1 AND {col} != ''"
                ))
                .map_err(EngineError::sqlite("read endpoints"))?;
            let rows: Vec<String> = stmt
                .query_map([&n.id], |r| r.get(0))
                .and_then(Iterator::collect)
                .map_err(EngineError::sqlite("read endpoints"))?;
            Ok(rows.iter().filter_map(|s| s.parse().ok()).collect())
        };
        let mut used4 = taken("ipv4")?;
        used4.push(n.gateway);
        let ipv4 = match req.ipv4 {
            Some(ip) => {
                if !n.subnet.contains(ip) || Some(ip) == n.subnet.nth(0) {
                    return Err(invalid(
                        "ip",
                        ip,
                        format!("not a host address of {}", n.subnet),
                    ));
                }
                if used4.contains(&ip) {
                    return Err(invalid(
                        "ip",
                        ip,
                        format!("already in use on network {}", n.name),
                    ));
                }
                ip
            }
            None => net::subnet::next_free(&n.subnet, n.ip_range.as_ref(), &used4)
                .ok_or_else(|| invalid("network", &n.name, "no free address left in its subnet"))?,
        };
        let ipv6 = match (&n.subnet6, req.ipv6) {
            (None, Some(ip)) => {
                return Err(invalid(
                    "ip6",
                    ip,
                    format!("network {} has no IPv6", n.name),
                ));
            }
            (None, None) => None,
            (Some(s6), want) => {
                let mut used6 = taken("ipv6")?;
                used6.extend(n.gateway6);
                match want {
                    Some(ip) if !s6.contains(ip) || used6.contains(&ip) => {
                        return Err(invalid("ip6", ip, format!("not a free address of {s6}")));
                    }
                    Some(ip) => Some(ip),
                    None => {
                        Some(net::subnet::next_free(s6, None, &used6).ok_or_else(|| {
                            invalid("network", &n.name, "no free IPv6 address left")
                        })?)
                    }
                }
            }
        };
        let aliases = serde_json::to_string(&req.aliases).map_err(|source| EngineError::Json {
            action: "encode aliases".into(),
            source,
        })?;
        self.tx
            .execute(
                "INSERT INTO endpoints (network_id, container_id, idx, ipv4, ipv6, aliases) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    n.id,
                    container_id,
                    index,
                    ipv4.to_string(),
                    opt(ipv6.as_ref()),
                    aliases
                ],
            )
            .map_err(EngineError::sqlite("insert endpoint"))?;
        self.append_event(
            EventType::Network,
            "connect",
            &n.id,
            &BTreeMap::from([
                ("container".to_owned(), container_id.to_owned()),
                ("name".to_owned(), n.name.clone()),
            ]),
        )?;
        Ok(Endpoint {
            network_id: n.id.clone(),
            container_id: container_id.to_owned(),
            index,
            ipv4,
            ipv6,
            aliases: req.aliases.clone(),
        })
    }

    /// Frees the container's place on `n`.
    ///
    /// Errors: the store cannot be written.
    pub fn remove_endpoint(&self, container_id: &str, n: &Network) -> Result<bool> {
        let gone = self
            .tx
            .execute(
                "DELETE FROM endpoints WHERE network_id = ?1 AND container_id = ?2",
                params![n.id, container_id],
            )
            .map_err(EngineError::sqlite("delete endpoint"))?;
        if gone > 0 {
            self.append_event(
                EventType::Network,
                "disconnect",
                &n.id,
                &BTreeMap::from([
                    ("container".to_owned(), container_id.to_owned()),
                    ("name".to_owned(), n.name.clone()),
                ]),
            )?;
        }
        Ok(gone > 0)
    }

    /// The container's endpoints with their networks, by interface index.
    ///
    /// Errors: the store cannot be read.
    pub fn endpoints_of(&self, container_id: &str) -> Result<Vec<(Endpoint, Network)>> {
        let mut out = Vec::new();
        for e in self.endpoint_rows("container_id = ?1", container_id)? {
            let n = self.network(&e.network_id)?;
            out.push((e, n));
        }
        out.sort_by_key(|(e, _)| e.index);
        Ok(out)
    }

    /// The endpoints on network `network_id`, with each container's name and status.
    ///
    /// Errors: the store cannot be read.
    pub fn endpoints_on(&self, network_id: &str) -> Result<Vec<(Endpoint, String, String)>> {
        let mut out = Vec::new();
        for e in self.endpoint_rows("network_id = ?1", network_id)? {
            let (name, status): (String, String) = self
                .tx
                .query_row(
                    "SELECT name, status FROM containers WHERE id = ?1",
                    [&e.container_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(EngineError::sqlite("read container of endpoint"))?;
            out.push((e, name, status));
        }
        Ok(out)
    }

    /// Every endpoint.
    ///
    /// Errors: the store cannot be read.
    pub fn all_endpoints(&self) -> Result<Vec<Endpoint>> {
        self.endpoint_rows("?1 = ?1", "1")
    }

    fn endpoint_rows(&self, cond: &str, arg: &str) -> Result<Vec<Endpoint>> {
        let mut stmt = self
            .tx
            .prepare(&format!(
                "SELECT network_id, container_id, idx, ipv4, ipv6, aliases FROM endpoints WHERE {cond}"
            ))
            .map_err(EngineError::sqlite("read endpoints"))?;
        let rows: Vec<(String, String, u32, String, String, String)> = stmt
            .query_map([arg], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .and_then(Iterator::collect)
            .map_err(EngineError::sqlite("read endpoints"))?;
        rows.into_iter()
            .map(|(network_id, container_id, index, v4, v6, aliases)| {
                Ok(Endpoint {
                    network_id,
                    container_id,
                    index,
                    ipv4: parse_ip(&v4)?.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                    ipv6: parse_ip(&v6)?,
                    aliases: serde_json::from_str(&aliases).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Leases host ports to a container: `(proto, host_ip, host_port or 0 for any free one,
    /// container_port)` each.
    ///
    /// Errors: a host port already leased (Docker's "port is already allocated").
    pub fn lease_ports(
        &self,
        container_id: &str,
        wanted: &[(String, String, u16, u16)],
    ) -> Result<Vec<PortLease>> {
        let mut out = Vec::new();
        for (proto, host_ip, host_port, container_port) in wanted {
            let taken = |port: u16| -> Result<bool> {
                self.tx
                    .query_row(
                        "SELECT 1 FROM port_leases WHERE proto = ?1 AND host_port = ?2 \
                         AND (host_ip = ?3 OR host_ip IN ('0.0.0.0', '::') \
                              OR ?3 IN ('0.0.0.0', '::'))",
                        params![proto, port, host_ip],
                        |_| Ok(()),
                    )
                    .optional()
                    .map(|o| o.is_some())
                    .map_err(EngineError::sqlite("read port leases"))
            };
            let port = if *host_port == 0 {
                let mut found = None;
                for p in EPHEMERAL_PORTS {
                    if !taken(p)? {
                        found = Some(p);
                        break;
                    }
                }
                found.ok_or_else(|| invalid("publish", proto, "no free host port left"))?
            } else {
                if taken(*host_port)? {
                    return Err(EngineError::PortAllocated {
                        binding: host_binding(host_ip, *host_port),
                    });
                }
                *host_port
            };
            self.tx
                .execute(
                    "INSERT INTO port_leases (container_id, proto, host_ip, host_port, container_port) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![container_id, proto, host_ip, port, container_port],
                )
                .map_err(EngineError::sqlite("insert port lease"))?;
            out.push(PortLease {
                container_id: container_id.to_owned(),
                proto: proto.clone(),
                host_ip: host_ip.clone(),
                host_port: port,
                container_port: *container_port,
            });
        }
        Ok(out)
    }

    /// Port leases: of one container, or all (`None`).
    ///
    /// Errors: the store cannot be read.
    pub fn port_leases(&self, container_id: Option<&str>) -> Result<Vec<PortLease>> {
        let mut stmt = self
            .tx
            .prepare(
                "SELECT container_id, proto, host_ip, host_port, container_port FROM port_leases \
                 WHERE ?1 IS NULL OR container_id = ?1 ORDER BY container_port, proto, host_port",
            )
            .map_err(EngineError::sqlite("read port leases"))?;
        stmt.query_map([container_id], |r| {
            Ok(PortLease {
                container_id: r.get(0)?,
                proto: r.get(1)?,
                host_ip: r.get(2)?,
                host_port: r.get(3)?,
                container_port: r.get(4)?,
            })
        })
        .and_then(Iterator::collect)
        .map_err(EngineError::sqlite("read port leases"))
    }

    /// Ids of the containers in an active status (running, paused, restarting).
    ///
    /// Errors: the store cannot be read.
    pub fn active_container_ids(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .tx
            .prepare(
                "SELECT id FROM containers WHERE status IN ('running', 'paused', 'restarting')",
            )
            .map_err(EngineError::sqlite("list active containers"))?;
        stmt.query_map([], |r| r.get(0))
            .and_then(Iterator::collect)
            .map_err(EngineError::sqlite("list active containers"))
    }
}

/// `ip:port` as Docker prints a host binding (`[ip]:port` for IPv6).
pub(crate) fn host_binding(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}
