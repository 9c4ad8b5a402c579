//! `berth network create|ls|inspect|rm|prune|connect|disconnect`: network records plus the
//! kernel objects that go with them (the bridge, the firewall table, a running container's
//! veth).

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsFd;

use serde_json::{Value, json};

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::network_attach::{attach, ensure_bridge, net_err, sync_firewall};
use crate::networks::{DEFAULT_NETWORK, EndpointRequest, Network, NewNetwork};

impl Engine {
    /// Creates a network and its bridge.
    ///
    /// Errors: a bad or taken name, an overlapping subnet, a bad setting; the kernel refusing
    /// the bridge (the record is removed again).
    pub fn create_network(&self, new: &NewNetwork) -> Result<Network> {
        if matches!(
            new.name.as_str(),
            "host" | "none" | DEFAULT_NETWORK | "default"
        ) {
            return Err(EngineError::InvalidSetting {
                what: "network name",
                value: new.name.clone(),
                reason: "is a pre-defined network".into(),
            });
        }
        crate::networks::validate(new)?;
        let routes = if new.subnet.is_none() {
            crate::network_attach::routes()?
        } else {
            Vec::new()
        };
        let n = self.store.write(|tx| tx.create_network(new, &routes))?;
        let made = net::Netlink::open()
            .map_err(net_err("open netlink"))
            .and_then(|nl| ensure_bridge(&nl, &n))
            .and_then(|()| sync_firewall(&self.paths, &self.store, None));
        if let Err(e) = made {
            if let Err(clean) = self.remove_network(&n.id) {
                tracing::warn!("remove network {} after failed create: {clean}", n.name);
            }
            return Err(e);
        }
        Ok(n)
    }

    /// Every network, the default bridge included (its record is made on first use).
    ///
    /// Errors: the store cannot be read.
    pub fn networks(&self) -> Result<Vec<Network>> {
        crate::network_attach::default_network(&self.store)?;
        self.store.read(|tx| tx.list_networks())
    }

    /// The network named `reference` (name, id or id prefix).
    ///
    /// Errors: `NotFound`.
    pub fn network(&self, reference: &str) -> Result<Network> {
        if reference == DEFAULT_NETWORK {
            return crate::network_attach::default_network(&self.store);
        }
        self.store.read(|tx| tx.network(reference))
    }

    /// Docker's network inspect object.
    ///
    /// Errors: `NotFound`.
    pub fn inspect_network(&self, reference: &str) -> Result<Value> {
        let n = self.network(reference)?;
        let eps = self.store.read(|tx| tx.endpoints_on(&n.id))?;
        let mut containers = serde_json::Map::new();
        for (e, name, _) in eps {
            containers.insert(
                e.container_id.clone(),
                json!({
                    "Name": name,
                    "EndpointID": endpoint_id(&n.id, &e.container_id),
                    "MacAddress": net::link::mac_string(&net::link::mac_for(Some(e.ipv4))),
                    "IPv4Address": format!("{}/{}", e.ipv4, n.subnet.prefix()),
                    "IPv6Address": e.ipv6.zip(n.subnet6).map(|(ip, s)| format!("{ip}/{}", s.prefix())).unwrap_or_default(),
                }),
            );
        }
        let mut config = vec![json!({
            "Subnet": n.subnet.to_string(),
            "IPRange": n.ip_range.map(|r| r.to_string()).unwrap_or_default(),
            "Gateway": n.gateway.to_string(),
        })];
        if let Some(s6) = n.subnet6 {
            config.push(json!({
                "Subnet": s6.to_string(),
                "Gateway": n.gateway6.map(|g| g.to_string()).unwrap_or_default(),
            }));
        }
        let mut options: BTreeMap<String, String> = n.options.clone();
        options
            .entry("com.docker.network.bridge.name".into())
            .or_insert_with(|| n.bridge.clone());
        Ok(json!({
            "Name": n.name,
            "Id": n.id,
            "Created": n.created.to_rfc3339(),
            "Scope": "local",
            "Driver": "bridge",
            "EnableIPv6": n.subnet6.is_some(),
            "IPAM": {"Driver": "default", "Options": {}, "Config": config},
            "Internal": n.internal,
            "Attachable": false,
            "Ingress": false,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": false,
            "Containers": containers,
            "Options": options,
            "Labels": n.labels,
        }))
    }

    /// Removes a network with no containers, its bridge and its firewall rules.
    ///
    /// Errors: `NotFound`; the default network; containers still connected.
    pub fn remove_network(&self, reference: &str) -> Result<Network> {
        let n = self.store.read(|tx| tx.network(reference))?;
        if n.is_default() {
            return Err(EngineError::InvalidSetting {
                what: "network",
                value: n.name,
                reason: "is a pre-defined network and cannot be removed".into(),
            });
        }
        {
            let _lock = crate::network_attach::lock(&self.paths)?;
            self.store.write(|tx| tx.remove_network(&n))?;
        }
        let nl = net::Netlink::open().map_err(net_err("open netlink"))?;
        nl.delete_link(&n.bridge)
            .map_err(net_err(format!("delete bridge {}", n.bridge)))?;
        sync_firewall(&self.paths, &self.store, None)?;
        let _ = std::fs::remove_dir_all(self.paths.run_root.join("networks").join(&n.id));
        Ok(n)
    }

    /// Removes every user network no container is connected to; returns their names.
    ///
    /// Errors: the store cannot be read or a removal failed.
    pub fn prune_networks(&self) -> Result<Vec<String>> {
        let all = self.store.read(|tx| tx.list_networks())?;
        let mut gone = Vec::new();
        for n in all.iter().filter(|n| !n.is_default()) {
            match self.remove_network(&n.id) {
                Ok(n) => gone.push(n.name),
                Err(EngineError::InUse { .. } | EngineError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(gone)
    }

    /// Connects a container to a network; a running one gets its interface at once.
    ///
    /// Errors: `NotFound`; already connected; a bad or taken address; the kernel refused (the
    /// record is removed again).
    pub fn connect(&self, network: &str, container: &str, req: &EndpointRequest) -> Result<()> {
        let n = self.network(network)?;
        let c = self.container(container)?;
        if !matches!(
            crate::network_attach::mode(&c.host_config.network_mode),
            crate::network_attach::Mode::Bridge(_)
        ) {
            return Err(EngineError::InvalidSetting {
                what: "network mode",
                value: c.host_config.network_mode.clone(),
                reason: "a container without a bridge network cannot be connected to one".into(),
            });
        }
        if n.is_default() && !req.aliases.is_empty() {
            return Err(EngineError::InvalidSetting {
                what: "alias",
                value: req.aliases.join(","),
                reason: "network-scoped aliases are only supported for user-defined networks"
                    .into(),
            });
        }
        let e = self
            .store
            .write(|tx| tx.add_endpoint(c.id.as_str(), &n, req))?;
        crate::repair::crash_point("network-connect-after-record");
        let Some(pid) = c.state.pid.filter(|_| c.state.status.is_active()) else {
            return Ok(());
        };
        let plumbed = net::Netlink::open()
            .map_err(net_err("open netlink"))
            .and_then(|nl| {
                let first = self
                    .store
                    .read(|tx| tx.endpoints_of(c.id.as_str()))?
                    .iter()
                    .all(|(other, on)| other.index >= e.index || on.internal);
                attach(&self.paths, &nl, pid, &e, &n, first)
            })
            .and_then(|()| sync_firewall(&self.paths, &self.store, None));
        if let Err(err) = plumbed {
            if let Err(clean) = self.store.write(|tx| tx.remove_endpoint(c.id.as_str(), &n)) {
                tracing::warn!("remove endpoint after failed connect: {clean}");
            }
            return Err(err);
        }
        if !n.is_default() {
            crate::dns::ensure_server(&self.paths, &n);
        }
        Ok(())
    }

    /// Disconnects a container from a network; a running one loses the interface at once.
    ///
    /// Errors: `NotFound`; not connected.
    pub fn disconnect(&self, network: &str, container: &str) -> Result<()> {
        let n = self.network(network)?;
        let c = self.container(container)?;
        let eps = self.store.read(|tx| tx.endpoints_of(c.id.as_str()))?;
        let Some((e, _)) = eps.iter().find(|(e, _)| e.network_id == n.id) else {
            return Err(EngineError::InvalidSetting {
                what: "container",
                value: c.name.clone(),
                reason: format!("is not connected to network {}", n.name),
            });
        };
        if let Some(pid) = c.state.pid.filter(|_| c.state.status.is_active()) {
            let ns_path = format!("/proc/{pid}/ns/net");
            if let Ok(ns) = File::open(&ns_path) {
                net::link::detach(ns.as_fd(), &e.ifname())
                    .map_err(net_err(format!("disconnect {} from {}", c.name, n.name)))?;
            }
        }
        self.store
            .write(|tx| tx.remove_endpoint(c.id.as_str(), &n))?;
        sync_firewall(&self.paths, &self.store, None)
    }
}

impl Engine {
    /// Docker's `NetworkSettings` of a container: its ports and, per network, its addresses.
    ///
    /// Errors: the store cannot be read.
    pub(crate) fn network_settings(&self, c: &crate::containers::Container) -> Result<Value> {
        let eps = self.store.read(|tx| tx.endpoints_of(c.id.as_str()))?;
        let mut networks = serde_json::Map::new();
        for (e, n) in &eps {
            let v6 = e.ipv6.zip(n.subnet6);
            networks.insert(
                n.name.clone(),
                json!({
                    "IPAMConfig": null,
                    "Links": null,
                    "Aliases": e.aliases,
                    "MacAddress": net::link::mac_string(&net::link::mac_for(Some(e.ipv4))),
                    "NetworkID": n.id,
                    "EndpointID": endpoint_id(&n.id, &e.container_id),
                    "Gateway": n.gateway.to_string(),
                    "IPAddress": e.ipv4.to_string(),
                    "IPPrefixLen": n.subnet.prefix(),
                    "IPv6Gateway": n.gateway6.map(|g| g.to_string()).unwrap_or_default(),
                    "GlobalIPv6Address": v6.map(|(ip, _)| ip.to_string()).unwrap_or_default(),
                    "GlobalIPv6PrefixLen": v6.map_or(0, |(_, s)| s.prefix()),
                    "DNSNames": null,
                }),
            );
        }
        if let crate::network_attach::Mode::Host | crate::network_attach::Mode::None =
            crate::network_attach::mode(&c.host_config.network_mode)
        {
            networks.insert(c.host_config.network_mode.clone(), json!({}));
        }
        let mut ports = serde_json::Map::new();
        for (private, hosts) in self.ports(c.id.as_str())? {
            let bindings: Vec<Value> = hosts
                .iter()
                .filter_map(|h| h.rsplit_once(':'))
                .map(|(ip, port)| json!({"HostIp": ip, "HostPort": port}))
                .collect();
            ports.insert(private, Value::from(bindings));
        }
        let first = eps.first();
        Ok(json!({
            "Bridge": "",
            "SandboxID": "",
            "Ports": ports,
            "SandboxKey": c.state.pid.filter(|_| c.state.status.is_active()).map(|p| format!("/proc/{p}/ns/net")).unwrap_or_default(),
            "Gateway": first.map(|(_, n)| n.gateway.to_string()).unwrap_or_default(),
            "IPAddress": first.map(|(e, _)| e.ipv4.to_string()).unwrap_or_default(),
            "IPPrefixLen": first.map_or(0, |(_, n)| n.subnet.prefix()),
            "MacAddress": first.map(|(e, _)| net::link::mac_string(&net::link::mac_for(Some(e.ipv4)))).unwrap_or_default(),
            "Networks": networks,
        }))
    }
}

/// A stable endpoint id: Docker's are random; berth's name the pair.
fn endpoint_id(network_id: &str, container_id: &str) -> String {
    format!("{}{}", &network_id[..32], &container_id[..32])
}
