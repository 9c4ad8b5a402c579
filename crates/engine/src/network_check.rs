//! `system check` for networking: veths and bridges nobody owns, endpoints a killed `connect`
//! never plumbed, and a firewall table that differs from what the store says. Addresses and
//! host ports need no check of their own: they are rows that go with their container's.

use std::collections::HashMap;

use crate::check::Problem;
use crate::containers::Container;
use crate::engine::Engine;
use crate::error::Result;
use crate::id::ContainerId;
use crate::network_attach::{net_err, ruleset, sync_firewall};

impl Engine {
    /// Network problems of the engine's namespace. Reading the kernel's links needs netlink;
    /// where it cannot be opened there is nothing berth could have made either.
    pub(crate) fn network_problems(&self, containers: &HashMap<String, Container>) -> Vec<Problem> {
        let mut out = Vec::new();
        let Ok((networks, endpoints)) = self
            .store
            .read(|tx| Ok((tx.list_networks()?, tx.all_endpoints()?)))
        else {
            return out;
        };
        let Ok(links) = net::Netlink::open().and_then(|nl| nl.links()) else {
            return out;
        };
        let running = |id: &str| {
            containers.get(id).is_some_and(|c| {
                matches!(
                    c.state.status,
                    crate::state::Status::Running | crate::state::Status::Paused
                )
            })
        };
        for l in &links {
            let veth = l.kind.as_deref() == Some("veth") && l.name.starts_with("bv");
            if veth
                && !endpoints
                    .iter()
                    .any(|e| e.host_ifname() == l.name && running(&e.container_id))
            {
                out.push(Problem::StrayLink {
                    name: l.name.clone(),
                });
            }
            let ours = l.name == crate::networks::DEFAULT_BRIDGE
                || (l.name.len() == 15
                    && l.name.starts_with("br-")
                    && l.name[3..].bytes().all(|b| b.is_ascii_hexdigit()));
            if l.kind.as_deref() == Some("bridge")
                && ours
                && !networks.iter().any(|n| n.bridge == l.name)
            {
                out.push(Problem::StrayLink {
                    name: l.name.clone(),
                });
            }
        }
        for e in &endpoints {
            if running(&e.container_id) && !links.iter().any(|l| l.name == e.host_ifname()) {
                let network = networks
                    .iter()
                    .find(|n| n.id == e.network_id)
                    .map_or_else(|| e.network_id.clone(), |n| n.name.clone());
                if let Ok(id) = ContainerId::parse(&e.container_id) {
                    out.push(Problem::EndpointUnplumbed { id, network });
                }
            }
        }
        let wanted = match ruleset(&self.store, None, None) {
            Ok(Some(r)) => net::firewall::rule_count(&r),
            Ok(None) => 0,
            Err(_) => return out,
        };
        if let Ok(found) = net::firewall::current_rule_count()
            && found != wanted
        {
            out.push(Problem::FirewallStale { found, wanted });
        }
        out
    }

    pub(crate) fn repair_network(&self, problem: &Problem) -> Result<String> {
        match problem {
            Problem::StrayLink { name } => net::Netlink::open()
                .and_then(|nl| nl.delete_link(name))
                .map_err(net_err(format!("delete {name}")))
                .map(|()| "deleted".to_owned()),
            Problem::EndpointUnplumbed { id, network } => {
                let n = self.store.read(|tx| tx.network(network))?;
                self.store.write(|tx| tx.remove_endpoint(id.as_str(), &n))?;
                sync_firewall(&self.paths, &self.store, None)?;
                Ok("removed the endpoint, freed its addresses".to_owned())
            }
            _ => sync_firewall(&self.paths, &self.store, None)
                .map(|()| "rendered the table again".to_owned()),
        }
    }
}
