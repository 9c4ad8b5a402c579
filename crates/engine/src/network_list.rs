//! `network ls`: one row per network record plus Docker's two pseudo networks (`host`,
//! `none`: berth's modes, with fixed ids), and Docker's `--filter`: `name=` and `id=` (the
//! value contained), `driver=`, `label=key[=value]`, `type=custom|builtin`, `scope=local`,
//! `dangling=true|false`. Values of one key are alternatives; different keys must all match.

use std::collections::BTreeMap;

use crate::engine::Engine;
use crate::error::Result;
use crate::id::Timestamp;

/// One row of `network ls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSummary {
    /// 64 hex digits.
    pub id: String,
    /// Name.
    pub name: String,
    /// `bridge`, or `host`/`null` for the pseudo networks.
    pub driver: &'static str,
    /// `--internal`.
    pub internal: bool,
    /// Has an IPv6 subnet.
    pub ipv6: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Creation time (`None` for the pseudo networks).
    pub created: Option<Timestamp>,
    /// `bridge`, `host` or `none`: made by berth, not by a user.
    pub builtin: bool,
    /// Some container (running or not) is connected to it.
    pub in_use: bool,
}

/// A parsed `network ls --filter`; the default matches every network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkFilter {
    names: Vec<String>,
    ids: Vec<String>,
    drivers: Vec<String>,
    labels: Vec<(String, Option<String>)>,
    /// `type=`: `true` for builtin, `false` for custom.
    types: Vec<bool>,
    scopes: Vec<String>,
    dangling: Option<bool>,
}

impl NetworkFilter {
    /// Parses `--filter` values.
    ///
    /// Errors: an unknown key, a value without `=`, a bad `type=` or `dangling=` value.
    pub fn parse<S: AsRef<str>>(filters: &[S]) -> Result<Self> {
        let mut f = Self::default();
        for raw in filters {
            let raw = raw.as_ref();
            let (key, value) = crate::filter::split(raw)?;
            match key {
                "name" => f.names.push(value.to_owned()),
                "id" => f.ids.push(value.to_owned()),
                "driver" => f.drivers.push(value.to_owned()),
                "label" => f.labels.push(crate::filter::parse_label(value)),
                "type" => f.types.push(match value {
                    "builtin" => true,
                    "custom" => false,
                    _ => return Err(crate::filter::invalid(raw)),
                }),
                "scope" => f.scopes.push(value.to_owned()),
                "dangling" => f.dangling = Some(crate::filter::parse_bool(raw, value)?),
                _ => return Err(crate::filter::invalid(raw)),
            }
        }
        Ok(f)
    }

    /// Whether `n` passes. `dangling=true` keeps custom networks nobody is connected to;
    /// `dangling=false` the others and the builtin ones, as Docker's.
    #[must_use]
    pub fn matches(&self, n: &NetworkSummary) -> bool {
        let any = |wanted: &[String], f: &dyn Fn(&str) -> bool| {
            wanted.is_empty() || wanted.iter().any(|w| f(w))
        };
        any(&self.names, &|w| n.name.contains(w))
            && any(&self.ids, &|w| n.id.contains(w))
            && any(&self.drivers, &|w| n.driver == w)
            && any(&self.scopes, &|w| w == "local")
            && (self.types.is_empty() || self.types.contains(&n.builtin))
            && crate::filter::labels_match(&self.labels, |k| n.labels.get(k).map(String::as_str))
            && self.dangling.is_none_or(|d| d == (!n.builtin && !n.in_use))
    }
}

/// The fixed ids of the pseudo networks.
fn pseudo_id(name: &str) -> String {
    format!("{:0>64}", if name == "host" { "1" } else { "2" })
}

impl Engine {
    /// The networks `network ls` shows that pass `filter`: the records (the default network's
    /// made if missing), then `host` and `none`.
    ///
    /// Errors: the store cannot be read.
    pub fn network_list(&self, filter: &NetworkFilter) -> Result<Vec<NetworkSummary>> {
        let records = self.networks()?;
        let endpoints = self.store.read(|tx| tx.all_endpoints())?;
        let mut out: Vec<NetworkSummary> = records
            .into_iter()
            .map(|n| NetworkSummary {
                in_use: endpoints.iter().any(|e| e.network_id == n.id),
                builtin: n.is_default(),
                id: n.id,
                name: n.name,
                driver: "bridge",
                internal: n.internal,
                ipv6: n.subnet6.is_some(),
                labels: n.labels,
                created: Some(n.created),
            })
            .collect();
        for (name, driver) in [("host", "host"), ("none", "null")] {
            out.push(NetworkSummary {
                id: pseudo_id(name),
                name: name.to_owned(),
                driver,
                internal: false,
                ipv6: false,
                labels: BTreeMap::new(),
                created: None,
                builtin: true,
                in_use: false,
            });
        }
        out.retain(|n| filter.matches(n));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(name: &str, builtin: bool, in_use: bool) -> NetworkSummary {
        NetworkSummary {
            id: format!("{:a>64}", name.len()),
            name: name.to_owned(),
            driver: if name == "none" { "null" } else { "bridge" },
            internal: false,
            ipv6: false,
            labels: BTreeMap::from([("team".to_owned(), name.to_owned())]),
            created: None,
            builtin,
            in_use,
        }
    }

    fn names(filters: &[&str], nets: &[NetworkSummary]) -> Vec<String> {
        let f = NetworkFilter::parse(filters).unwrap();
        nets.iter()
            .filter(|n| f.matches(n))
            .map(|n| n.name.clone())
            .collect()
    }

    #[test]
    fn keys_and_and_values_or() {
        let nets = [
            net("bridge", true, true),
            net("none", true, false),
            net("front", false, true),
            net("back", false, false),
        ];
        assert_eq!(names(&[], &nets).len(), 4);
        assert_eq!(names(&["name=ron"], &nets), ["front"]);
        assert_eq!(names(&["name=ron", "name=ack"], &nets), ["front", "back"]);
        assert_eq!(names(&["type=custom"], &nets), ["front", "back"]);
        assert_eq!(names(&["type=builtin"], &nets), ["bridge", "none"]);
        assert_eq!(names(&["driver=null"], &nets), ["none"]);
        assert_eq!(names(&["dangling=true"], &nets), ["back"]);
        assert_eq!(names(&["dangling=0"], &nets), ["bridge", "none", "front"]);
        assert_eq!(names(&["label=team=back"], &nets), ["back"]);
        assert_eq!(
            names(&["label=team", "type=custom", "name=f"], &nets),
            ["front"]
        );
        assert_eq!(names(&["id=aaaa"], &nets).len(), 4);
        assert!(names(&["scope=swarm"], &nets).is_empty());
    }

    #[test]
    fn bad_filters_are_refused() {
        for bad in ["type=other", "dangling=maybe", "colour=red", "name"] {
            let e = NetworkFilter::parse(&[bad]).unwrap_err();
            assert!(e.to_string().contains(bad), "{bad}: {e}");
        }
    }
}
