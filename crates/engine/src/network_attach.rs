//! A container's networking through its life: the endpoints and port leases recorded with it
//! (`record`, at create), its `/etc/hosts` and `/etc/resolv.conf` (`write_files`, at prepare),
//! the veth pairs into its namespace (`plumb`, by the monitor between the runtime's create and
//! start), and the firewall brought back in line when it stops (`released`).
//!
//! The container's network namespace is made by the runtime (the OCI config asks for a new
//! one); the engine puts one veth per network into it through `/proc/<init>/ns/net`, creating
//! the peer directly inside. When the container's processes are gone the kernel destroys the
//! namespace and the veth pairs with it (later, from a work queue: `released` deletes the host
//! sides at once), so a killed monitor or CLI cannot leak an interface into a live bridge; what the store says (endpoints, leases) is the truth the nftables table
//! is rendered from (`net::firewall`), under one lock so concurrent renders never interleave.

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsFd;

use serde_json::Value;

use crate::containers::Container;
use crate::engine::write_file;
use crate::error::{EngineError, Result};
use crate::networks::{DEFAULT_NETWORK, EndpointRequest, Network, NewNetwork};
use crate::store::{Paths, Store, Tx};

/// Where a container's network comes from (`HostConfig.NetworkMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode<'a> {
    /// The host's (the engine's) namespace.
    Host,
    /// Its own namespace with only `lo`.
    None,
    /// Another container's namespace.
    Container(&'a str),
    /// A bridge network by name (`bridge` is the default one).
    Bridge(&'a str),
}

/// Classifies a network mode.
#[must_use]
pub fn mode(network_mode: &str) -> Mode<'_> {
    match network_mode {
        "host" => Mode::Host,
        "" | "none" => Mode::None,
        "default" => Mode::Bridge(DEFAULT_NETWORK),
        m => m
            .strip_prefix("container:")
            .map_or(Mode::Bridge(m), Mode::Container),
    }
}

pub(crate) fn net_err(action: impl Into<String>) -> impl FnOnce(net::NetError) -> EngineError {
    let action = action.into();
    move |source| EngineError::Network {
        action,
        source: Box::new(source),
    }
}

/// The routes of the engine's namespace: what an automatic subnet must not collide with.
pub(crate) fn routes() -> Result<Vec<net::Subnet>> {
    net::Netlink::open()
        .and_then(|nl| nl.route_destinations())
        .map_err(net_err("read the routes of the network namespace"))
}

/// The default bridge network's record, made on first use: its subnet is
/// `BERTH_BRIDGE_SUBNET` if set, else the first of Docker's pools that no route of this
/// namespace and no other network uses.
pub(crate) fn default_network(store: &Store) -> Result<Network> {
    if let Ok(n) = store.read(|tx| tx.network(DEFAULT_NETWORK)) {
        return Ok(n);
    }
    let subnet = match std::env::var("BERTH_BRIDGE_SUBNET") {
        Ok(s) if !s.is_empty() => Some(s.parse().map_err(|_| EngineError::InvalidSetting {
            what: "BERTH_BRIDGE_SUBNET",
            value: s.clone(),
            reason: "expected a subnet such as 172.17.0.0/16".into(),
        })?),
        _ => None,
    };
    let routes = routes()?;
    let new = NewNetwork {
        name: DEFAULT_NETWORK.to_owned(),
        subnet,
        ..NewNetwork::default()
    };
    match store.write(|tx| tx.create_network(&new, &routes)) {
        Err(EngineError::NameInUse { .. }) => store.read(|tx| tx.network(DEFAULT_NETWORK)),
        other => other,
    }
}

/// One `-p` binding resolved: (proto, host ip, host port or 0, container port).
fn wanted_ports(c: &Container) -> Result<Vec<(String, String, u16, u16)>> {
    let mut out = Vec::new();
    let mut keys: Vec<(String, Vec<crate::config::PortBinding>)> = c
        .host_config
        .port_bindings
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if c.host_config.publish_all_ports {
        for k in c.config.exposed_ports.keys() {
            if !c.host_config.port_bindings.contains_key(k) {
                keys.push((k.clone(), vec![crate::config::PortBinding::default()]));
            }
        }
    }
    for (key, bindings) in keys {
        let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let bad = |why: &str| EngineError::InvalidSetting {
            what: "publish",
            value: key.clone(),
            reason: why.to_owned(),
        };
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("bad container port"))?;
        if !matches!(proto, "tcp" | "udp") {
            return Err(bad("protocol must be tcp or udp"));
        }
        for b in bindings {
            let host_ip = if b.host_ip.is_empty() {
                "0.0.0.0".to_owned()
            } else {
                let ip: IpAddr = b.host_ip.parse().map_err(|_| bad("bad host address"))?;
                if let IpAddr::V6(v6) = ip
                    && v6.is_loopback()
                {
                    // No route_localnet for IPv6: the kernel will not send ::1 to a container.
                    return Err(bad(
                        "the IPv6 loopback address cannot be forwarded to a container",
                    ));
                }
                ip.to_string()
            };
            let host_port: u16 = if b.host_port.is_empty() {
                0
            } else {
                b.host_port
                    .parse()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad("bad host port"))?
            };
            out.push((proto.to_owned(), host_ip, host_port, port));
        }
    }
    Ok(out)
}

/// Checks what can be checked before anything is recorded: the mode's target exists.
///
/// Errors: `NotFound` for an unknown network or container.
pub(crate) fn check_mode(store: &Store, network_mode: &str) -> Result<()> {
    match mode(network_mode) {
        Mode::Bridge(name) if name != DEFAULT_NETWORK => {
            store.read(|tx| tx.network(name)).map(|_| ())
        }
        Mode::Container(other) => store.read(|tx| tx.container(other)).map(|_| ()),
        _ => Ok(()),
    }
}

/// Records the container's endpoint on its network and its port leases, in the transaction
/// that creates it (so both or neither exist).
///
/// Errors: an unknown network, a bad or taken address, a taken host port, aliases on the
/// default bridge.
pub(crate) fn record(tx: &Tx<'_>, c: &Container, req: &EndpointRequest) -> Result<()> {
    let Mode::Bridge(name) = mode(&c.host_config.network_mode) else {
        if req.ipv4.is_some() || req.ipv6.is_some() || !req.aliases.is_empty() {
            return Err(EngineError::InvalidSetting {
                what: "network",
                value: c.host_config.network_mode.clone(),
                reason: "--ip and --network-alias need a bridge network".into(),
            });
        }
        return Ok(());
    };
    let n = tx.network(name)?;
    if n.is_default() && (!req.aliases.is_empty() || req.ipv4.is_some() || req.ipv6.is_some()) {
        return Err(EngineError::InvalidSetting {
            what: "network",
            value: name.to_owned(),
            reason: "user specified IP addresses and network-scoped aliases are only supported on user-defined networks".into(),
        });
    }
    tx.add_endpoint(c.id.as_str(), &n, req)?;
    let wanted = wanted_ports(c)?;
    if n.subnet6.is_none()
        && let Some((_, ip, _, _)) = wanted.iter().find(|w| w.1.contains(':'))
    {
        return Err(EngineError::InvalidSetting {
            what: "publish",
            value: ip.clone(),
            reason: format!(
                "an IPv6 host address needs a network with IPv6 (network {name} has none)"
            ),
        });
    }
    tx.lease_ports(c.id.as_str(), &wanted)?;
    Ok(())
}

/// Host search domains and nameservers.
fn host_resolv() -> (Vec<String>, Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let (mut ns, mut search, mut opts) = (Vec::new(), Vec::new(), Vec::new());
    for l in text.lines() {
        let mut f = l.split_whitespace();
        match f.next() {
            Some("nameserver") => ns.extend(f.next().map(str::to_owned)),
            Some("search" | "domain") => search.extend(f.map(str::to_owned)),
            Some("options") => opts.extend(f.map(str::to_owned)),
            _ => {}
        }
    }
    (ns, search, opts)
}

/// `/etc/resolv.conf` of a container on bridge networks: the embedded DNS server on the first
/// user network's gateway, else `--dns` or the host's usable nameservers; `--dns-search` and
/// `--dns-option` replace the host's search list and options.
fn resolv_text(c: &Container, dns_server: Option<IpAddr>) -> String {
    let h = &c.host_config;
    let (host_ns, host_search, host_opts) = host_resolv();
    let mut out = String::new();
    let search = if h.dns_search.is_empty() {
        host_search
    } else {
        h.dns_search.clone()
    };
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    match dns_server {
        Some(ip) => out.push_str(&format!("nameserver {ip}\n")),
        None => {
            let servers: Vec<String> = if h.dns.is_empty() {
                host_ns
                    .into_iter()
                    .filter(|s| !s.starts_with("127.") && s != "::1")
                    .collect()
            } else {
                h.dns.clone()
            };
            for s in servers {
                out.push_str(&format!("nameserver {s}\n"));
            }
        }
    }
    let mut opts = if h.dns_options.is_empty() {
        host_opts
    } else {
        h.dns_options.clone()
    };
    if dns_server.is_some() && !opts.iter().any(|o| o.starts_with("ndots:")) {
        opts.push("ndots:0".into());
    }
    if !opts.is_empty() {
        out.push_str(&format!("options {}\n", opts.join(" ")));
    }
    out
}

/// Writes the container's `/etc/hosts` and `/etc/resolv.conf` for its network mode (over the
/// generic ones `etcfiles` wrote), and points a `container:` mode's mounts at the other
/// container's files.
///
/// Errors: the store cannot be read or a file written.
pub(crate) fn write_files(store: &Store, c: &Container, spec: &mut Value) -> Result<()> {
    let h = &c.host_config;
    match mode(&h.network_mode) {
        Mode::Host => {
            if !h.extra_hosts.is_empty() {
                let mut text = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
                text.push_str(&extra_hosts(c));
                write_file(&c.bundle.join("hosts"), text.as_bytes())?;
            }
            Ok(())
        }
        Mode::Container(other) => {
            let other = store.read(|tx| tx.container(other))?;
            if let Some(mounts) = spec["mounts"].as_array_mut() {
                for m in mounts {
                    for f in ["hosts", "resolv.conf", "hostname"] {
                        if m["destination"] == format!("/etc/{f}") {
                            m["source"] =
                                Value::from(other.bundle.join(f).to_string_lossy().into_owned());
                        }
                    }
                }
            }
            Ok(())
        }
        Mode::None => {
            if !h.extra_hosts.is_empty() {
                let base = crate::etcfiles::hosts(&c.config.hostname, &c.config.domainname);
                let text = format!("{base}{}", extra_hosts(c));
                write_file(&c.bundle.join("hosts"), text.as_bytes())?;
            }
            if !h.dns.is_empty() || !h.dns_search.is_empty() || !h.dns_options.is_empty() {
                write_file(
                    &c.bundle.join("resolv.conf"),
                    resolv_text(c, None).as_bytes(),
                )?;
            }
            Ok(())
        }
        Mode::Bridge(_) => {
            let eps = store.read(|tx| tx.endpoints_of(c.id.as_str()))?;
            let base = crate::etcfiles::hosts(&c.config.hostname, &c.config.domainname);
            let mut text: String = base
                .lines()
                .filter(|l| !l.starts_with("127.0.1.1"))
                .map(|l| format!("{l}\n"))
                .collect();
            let names = if c.config.domainname.is_empty() {
                c.config.hostname.clone()
            } else {
                format!(
                    "{}.{} {}",
                    c.config.hostname, c.config.domainname, c.config.hostname
                )
            };
            if let Some((e, _)) = eps.first() {
                text.push_str(&format!("{}\t{names}\n", e.ipv4));
                if let Some(v6) = e.ipv6 {
                    text.push_str(&format!("{v6}\t{names}\n"));
                }
            }
            text.push_str(&extra_hosts(c));
            write_file(&c.bundle.join("hosts"), text.as_bytes())?;
            let dns = eps
                .iter()
                .find(|(_, n)| !n.is_default())
                .map(|(_, n)| n.gateway);
            write_file(
                &c.bundle.join("resolv.conf"),
                resolv_text(c, dns).as_bytes(),
            )
        }
    }
}

fn extra_hosts(c: &Container) -> String {
    c.host_config
        .extra_hosts
        .iter()
        .filter_map(|e| e.split_once(':').map(|(n, ip)| format!("{ip}\t{n}\n")))
        .collect()
}

/// Before the runtime creates a `container:` mode container: its config names the other
/// container's namespace, which exists only while that one runs.
///
/// Errors: the other container is not running.
pub(crate) fn before_create(store: &Store, c: &Container) -> Result<()> {
    let Mode::Container(other) = mode(&c.host_config.network_mode) else {
        return Ok(());
    };
    let other = store.read(|tx| tx.container(other))?;
    let pid = other
        .state
        .pid
        .filter(|_| other.state.status.is_active())
        .ok_or_else(|| EngineError::NotRunning {
            id: other.id.short().to_owned(),
        })?;
    let path = c.bundle.join("config.json");
    let text = std::fs::read(&path).map_err(crate::engine::io_err("read", &path))?;
    let mut spec: Value = serde_json::from_slice(&text).map_err(|source| EngineError::Json {
        action: format!("decode {}", path.display()),
        source,
    })?;
    if let Some(nss) = spec["linux"]["namespaces"].as_array_mut() {
        for ns in nss {
            if ns["type"] == "network" {
                ns["path"] = Value::from(format!("/proc/{pid}/ns/net"));
            }
        }
    }
    let text = serde_json::to_vec_pretty(&spec).map_err(|source| EngineError::Json {
        action: format!("encode {}", path.display()),
        source,
    })?;
    write_file(&path, &text)
}

/// The bridge of `n` with its gateway addresses, up, and the namespace's sysctls set.
pub(crate) fn ensure_bridge(nl: &net::Netlink, n: &Network) -> Result<()> {
    let mut addrs = vec![net::IfAddr {
        ip: n.gateway,
        prefix: n.subnet.prefix(),
    }];
    if let (Some(g6), Some(s6)) = (n.gateway6, n.subnet6) {
        addrs.push(net::IfAddr {
            ip: g6,
            prefix: s6.prefix(),
        });
    }
    nl.ensure_bridge(&n.bridge, n.mtu, &addrs)
        .map_err(net_err(format!(
            "set up bridge {} of network {}",
            n.bridge, n.name
        )))?;
    net::sysctl::enable_forwarding(n.subnet6.is_some())
        .and_then(|()| net::sysctl::route_localnet(&n.bridge))
        .map_err(net_err(format!("configure bridge {}", n.bridge)))
}

/// Puts `e`'s veth pair between `n`'s bridge and the namespace of `pid`, on the bridge's fast
/// path (`net::fastpath`) where the kernel has one.
pub(crate) fn attach(
    paths: &Paths,
    nl: &net::Netlink,
    pid: i32,
    e: &crate::networks::Endpoint,
    n: &Network,
    default_route: bool,
) -> Result<()> {
    ensure_bridge(nl, n)?;
    let ns_path = format!("/proc/{pid}/ns/net");
    let ns = File::open(&ns_path).map_err(crate::engine::io_err(
        "open",
        std::path::Path::new(&ns_path),
    ))?;
    let mut addrs = vec![net::IfAddr {
        ip: e.ipv4,
        prefix: n.subnet.prefix(),
    }];
    let mut gateways = Vec::new();
    if default_route && !n.internal {
        gateways.push(n.gateway);
    }
    if let (Some(v6), Some(s6)) = (e.ipv6, n.subnet6) {
        addrs.push(net::IfAddr {
            ip: v6,
            prefix: s6.prefix(),
        });
        if default_route && !n.internal {
            gateways.extend(n.gateway6);
        }
    }
    let ep = net::Endpoint {
        ifname: e.ifname(),
        addrs,
        gateways,
        mac: net::link::mac_for(Some(e.ipv4)),
        mtu: n.mtu,
    };
    // A pair left by an earlier run whose namespace is gone cannot exist (the kernel removed
    // it with the namespace); one of this name from a crash mid-attach can.
    nl.delete_link(&e.host_ifname())
        .map_err(net_err(format!("remove stale {}", e.host_ifname())))?;
    nl.attach_veth(&n.bridge, &e.host_ifname(), ns.as_fd(), &ep)
        .map_err(net_err(format!(
            "connect {} to network {}",
            &e.container_id[..12],
            n.name
        )))?;
    // Joins of one bridge one at a time: two first joins would make two maps.
    let _lock = lock(paths)?;
    if let Err(err) = nl.join_fast_path(&n.bridge, &e.host_ifname(), ep.mac) {
        // The bridge carries the container's frames all the same.
        tracing::debug!("no fast path for {}: {err:?}", e.host_ifname());
    }
    Ok(())
}

/// Between the runtime's create and start: the container's veth pairs, the firewall, and the
/// DNS servers of its user networks; with no network, its loopback up (as Docker's).
///
/// Errors: the kernel refused a step.
pub(crate) fn plumb(paths: &Paths, store: &Store, c: &Container, pid: i32) -> Result<()> {
    match mode(&c.host_config.network_mode) {
        Mode::Bridge(_) => {}
        Mode::None => {
            let ns_path = format!("/proc/{pid}/ns/net");
            let ns = File::open(&ns_path).map_err(crate::engine::io_err(
                "open",
                std::path::Path::new(&ns_path),
            ))?;
            return net::link::loopback_up(ns.as_fd()).map_err(net_err("set lo up"));
        }
        _ => return Ok(()),
    }
    let eps = store.read(|tx| tx.endpoints_of(c.id.as_str()))?;
    if eps.is_empty() {
        return Ok(());
    }
    let nl = net::Netlink::open().map_err(net_err("open netlink"))?;
    let mut routed = false;
    for (e, n) in &eps {
        attach(paths, &nl, pid, e, n, !routed)?;
        routed |= !n.internal;
    }
    sync_firewall(paths, store, Some(c.id.as_str()))?;
    for (_, n) in &eps {
        if !n.is_default() {
            crate::dns::ensure_server(paths, n);
        }
    }
    Ok(())
}

/// After a container stopped (its namespace, and so its veths, are gone): the firewall no
/// longer publishes its ports. Failures are logged: cleanup goes on.
pub(crate) fn released(paths: &Paths, c: &Container) {
    if !matches!(mode(&c.host_config.network_mode), Mode::Bridge(_)) {
        return;
    }
    remove_host_veths(c);
    // Whatever its record says yet (rm and repair clean up before they record the exit), it
    // runs no more.
    let r = Store::open(paths).and_then(|store| sync(paths, &store, None, Some(c.id.as_str())));
    if let Err(e) = r {
        tracing::warn!("update firewall after {} stopped: {e}", c.id.short());
    }
}

/// Deletes the host side of the container's veth pairs (named after its id, see
/// `Endpoint::host_ifname`). The kernel deletes them with the container's namespace, but later
/// (namespace cleanup runs in a work queue): done here, nothing of the container outlives its
/// cleanup, and `system check` right after finds no stray interface.
fn remove_host_veths(c: &Container) {
    let prefix = format!("bv{}", &c.id.as_str()[..10]);
    let Ok(nl) = net::Netlink::open() else {
        return;
    };
    for l in nl.links().unwrap_or_default() {
        if l.kind.as_deref() == Some("veth")
            && l.name.starts_with(&prefix)
            && let Err(e) = nl.delete_link(&l.name)
        {
            tracing::debug!("delete {}: {e}", l.name);
        }
    }
}

/// Renders the nftables table from the store and applies it, under the network lock. `also`
/// counts as running (a container being started, not yet recorded as such).
///
/// Errors: the store cannot be read, `nft` refused.
pub(crate) fn sync_firewall(paths: &Paths, store: &Store, also: Option<&str>) -> Result<()> {
    sync(paths, store, also, None)
}

/// The firewall table and the DNS servers' table, from the store, under the network lock;
/// `also` counts as running, `gone` as stopped.
fn sync(paths: &Paths, store: &Store, also: Option<&str>, gone: Option<&str>) -> Result<()> {
    let _lock = lock(paths)?;
    match ruleset(store, also, gone)? {
        None => net::firewall::remove().map_err(net_err("remove the firewall table"))?,
        Some(rules) => {
            net::firewall::apply(&rules).map_err(net_err("apply the firewall rules"))?;
        }
    }
    crate::dns::write_table(paths, store, also, gone)
}

/// What the firewall table should hold (`None`: no table, there is no network).
///
/// Errors: the store cannot be read.
pub(crate) fn ruleset(
    store: &Store,
    also: Option<&str>,
    gone: Option<&str>,
) -> Result<Option<net::firewall::Ruleset>> {
    let (networks, endpoints, leases, mut active) = store.read(|tx| {
        Ok((
            tx.list_networks()?,
            tx.all_endpoints()?,
            tx.port_leases(None)?,
            tx.active_container_ids()?,
        ))
    })?;
    active.extend(also.map(str::to_owned));
    active.retain(|id| Some(id.as_str()) != gone);
    // The default network's record is made by `network ls` too; its rules wait for a running
    // container, so that listing networks never changes the namespace's firewall, and the
    // render for a container that stopped (`gone`) is already the one after its removal.
    let networks: Vec<Network> = networks
        .into_iter()
        .filter(|n| {
            !n.is_default()
                || endpoints
                    .iter()
                    .any(|e| e.network_id == n.id && active.contains(&e.container_id))
        })
        .collect();
    if networks.is_empty() {
        return Ok(None);
    }
    let mut rules = net::firewall::Ruleset {
        bridges: networks
            .iter()
            .map(|n| net::firewall::BridgeRules {
                bridge: n.bridge.clone(),
                subnets: std::iter::once(n.subnet).chain(n.subnet6).collect(),
                gateways: std::iter::once(n.gateway).chain(n.gateway6).collect(),
                internal: n.internal,
            })
            .collect(),
        ports: Vec::new(),
    };
    for l in leases.iter().filter(|l| active.contains(&l.container_id)) {
        let Some(first) = endpoints
            .iter()
            .filter(|e| e.container_id == l.container_id)
            .min_by_key(|e| e.index)
        else {
            continue;
        };
        let IpAddr::V4(addr) = first.ipv4 else {
            continue;
        };
        let addr6 = match first.ipv6 {
            Some(IpAddr::V6(a)) => Some(a),
            _ => None,
        };
        rules.ports.push(net::firewall::PortRule {
            proto: if l.proto == "udp" {
                net::firewall::Proto::Udp
            } else {
                net::firewall::Proto::Tcp
            },
            host_ip: l.host_ip.parse().ok(),
            host_port: l.host_port,
            addr,
            addr6,
            port: l.container_port,
        });
    }
    Ok(Some(rules))
}

/// The lock that serializes firewall renders and network plumbing: `<run_root>/network.lock`.
pub(crate) fn lock(paths: &Paths) -> Result<File> {
    std::fs::create_dir_all(&paths.run_root)
        .map_err(crate::engine::io_err("create directory", &paths.run_root))?;
    let path = paths.run_root.join("network.lock");
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(crate::engine::io_err("open", &path))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| crate::engine::io_err("lock", &path)(e.into()))?;
    Ok(f)
}
