//! Docker's `--filter key=value` for containers: parsing and the pure matching rule. Values of
//! one key are alternatives (OR); different keys must all match (AND); every `label=` must match.

use crate::containers::{Container, MountKind};
use crate::error::{EngineError, Result};
use crate::id::Digest;
use crate::state::Status;

/// Splits one `key=value` filter; a value without `=` is an invalid filter.
pub(crate) fn split(raw: &str) -> Result<(&str, &str)> {
    raw.split_once('=').ok_or_else(|| invalid(raw))
}

/// The error for a filter that cannot be understood.
pub(crate) fn invalid(raw: &str) -> EngineError {
    EngineError::InvalidValue {
        what: "filter",
        value: raw.to_owned(),
    }
}

/// A boolean filter value (`dangling=true`) as Docker takes it: `true`/`1`, `false`/`0`, any
/// case; `raw` is the whole filter, for the error.
pub(crate) fn parse_bool(raw: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(invalid(raw)),
    }
}

/// `label=key` or `label=key=value`.
pub(crate) fn parse_label(value: &str) -> (String, Option<String>) {
    match value.split_once('=') {
        Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
        None => (value.to_owned(), None),
    }
}

/// Whether every wanted label is present (with the wanted value, when one is given).
pub(crate) fn labels_match<'a>(
    wanted: &[(String, Option<String>)],
    get: impl Fn(&str) -> Option<&'a str>,
) -> bool {
    wanted.iter().all(|(k, want)| match (get(k), want) {
        (Some(have), Some(want)) => have == want,
        (Some(_), None) => true,
        (None, _) => false,
    })
}

/// A parsed set of container filters; the default matches every container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerFilter {
    /// `status=`: any of these.
    pub statuses: Vec<Status>,
    /// `label=key` or `label=key=value`: all of these.
    pub labels: Vec<(String, Option<String>)>,
    /// `name=`: the name contains any of these.
    pub names: Vec<String>,
    /// `id=`: the id starts with any of these.
    pub ids: Vec<String>,
    /// `ancestor=`: created from any of these images (reference, id or digest).
    pub ancestors: Vec<String>,
    /// `exited=`: exited with any of these codes.
    pub exited: Vec<i64>,
    /// `volume=`: mounts a volume of this name or something at this destination.
    pub volumes: Vec<String>,
    /// `health=`: `starting`, `healthy`, `unhealthy` or `none`.
    pub health: Vec<String>,
    /// `network=`: on this network (`none`, `host`, a network name).
    pub networks: Vec<String>,
    /// `expose=PORT[/PROTO]`: exposes this port.
    pub expose: Vec<String>,
    /// `publish=PORT[/PROTO]`: publishes this private port.
    pub publish: Vec<String>,
}

impl ContainerFilter {
    /// Parses `key=value` filters as `docker ps --filter` takes them.
    pub fn parse<S: AsRef<str>>(filters: &[S]) -> Result<Self> {
        let mut f = Self::default();
        for raw in filters {
            let raw = raw.as_ref();
            let bad = || crate::filter::invalid(raw);
            let (key, value) = crate::filter::split(raw)?;
            match key {
                "status" => f.statuses.push(value.parse().map_err(|_| bad())?),
                "label" => f.labels.push(crate::filter::parse_label(value)),
                "name" => f
                    .names
                    .push(value.strip_prefix('/').unwrap_or(value).to_owned()),
                "id" => f.ids.push(value.to_owned()),
                "ancestor" => f.ancestors.push(value.to_owned()),
                "exited" => f.exited.push(value.parse().map_err(|_| bad())?),
                "volume" => f.volumes.push(value.to_owned()),
                "health" => match value {
                    "starting" | "healthy" | "unhealthy" | "none" => {
                        f.health.push(value.to_owned())
                    }
                    _ => return Err(bad()),
                },
                "network" => f.networks.push(value.to_owned()),
                "expose" => f.expose.push(port_key(value).ok_or_else(bad)?),
                "publish" => f.publish.push(port_key(value).ok_or_else(bad)?),
                _ => return Err(bad()),
            }
        }
        Ok(f)
    }

    /// Whether `c` passes; `ancestor_digests` are the digests the `ancestor=` values resolved
    /// to in the image store.
    #[must_use]
    pub fn matches(&self, c: &Container, ancestor_digests: &[Digest]) -> bool {
        any(&self.statuses, |s: &Status| *s == c.state.status)
            && labels_match(&self.labels, |k| c.config.labels.get(k).map(String::as_str))
            && any(&self.names, |n: &String| c.name.contains(n.as_str()))
            && any(&self.ids, |p: &String| {
                c.id.as_str().starts_with(p.as_str())
            })
            && (self.ancestors.is_empty()
                || self.ancestors.contains(&c.image)
                || c.image_digest
                    .as_ref()
                    .is_some_and(|d| ancestor_digests.contains(d)))
            && any(&self.exited, |code: &i64| {
                c.state.status == Status::Exited && c.state.exit_code == Some(*code)
            })
            && any(&self.volumes, |v: &String| {
                c.mounts
                    .iter()
                    .any(|m| m.destination == *v || (m.kind == MountKind::Volume && m.source == *v))
            })
            && any(&self.health, |h: &String| {
                let have = c
                    .state
                    .health
                    .as_ref()
                    .map_or("none", |x| x.status.as_str());
                have == h
            })
            && any(&self.networks, |n: &String| {
                c.host_config.network_mode == *n
            })
            && any(&self.expose, |p: &String| {
                c.config.exposed_ports.contains_key(p)
            })
            && any(&self.publish, |p: &String| {
                c.host_config.port_bindings.contains_key(p)
            })
    }
}

/// `80` or `80/udp` as Docker keys ports: `80/tcp`, `80/udp`; `None` when not a port.
fn port_key(value: &str) -> Option<String> {
    let (port, proto) = value.split_once('/').unwrap_or((value, "tcp"));
    (port.parse::<u16>().is_ok() && matches!(proto, "tcp" | "udp" | "sctp"))
        .then(|| format!("{port}/{proto}"))
}

/// An empty list of alternatives passes; otherwise one must.
fn any<T>(alternatives: &[T], pred: impl Fn(&T) -> bool) -> bool {
    alternatives.is_empty() || alternatives.iter().any(pred)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;
    use crate::containers::MountPoint;
    use crate::id::{ContainerId, Timestamp};
    use crate::state::ContainerState;

    fn container(name: &str, status: Status, labels: &[(&str, &str)]) -> Container {
        let mut c = Container {
            id: ContainerId::parse(&format!("abc{}", "0".repeat(61))).unwrap(),
            name: name.to_owned(),
            image: "busybox:latest".to_owned(),
            image_digest: Some(Digest::parse(&format!("sha256:{}", "1".repeat(64))).unwrap()),
            created: Timestamp(0),
            config: Default::default(),
            host_config: Default::default(),
            state: ContainerState::created(),
            mounts: vec![MountPoint {
                kind: MountKind::Volume,
                source: "data".into(),
                destination: "/data".into(),
                read_write: true,
                propagation: String::new(),
            }],
            bundle: PathBuf::new(),
            run_dir: PathBuf::new(),
            log_path: PathBuf::new(),
        };
        c.state.status = status;
        c.config.labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>();
        c
    }

    fn f(args: &[&str]) -> ContainerFilter {
        ContainerFilter::parse(args).unwrap()
    }

    #[test]
    fn parse_rejects_unknown_and_malformed() {
        for bad in [
            "status",
            "status=up",
            "colour=red",
            "exited=x",
            "health=meh",
        ] {
            let e = ContainerFilter::parse(&[bad]).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{bad}");
        }
        assert_eq!(f(&[]), ContainerFilter::default());
    }

    #[test]
    fn keys_and_values_combine_like_docker() {
        let mut web = container(
            "web-1",
            Status::Running,
            &[("app", "web"), ("tier", "front")],
        );
        web.host_config.network_mode = "none".into();
        web.config
            .exposed_ports
            .insert("80/tcp".into(), Default::default());
        assert!(f(&[]).matches(&web, &[]));
        assert!(f(&["status=running"]).matches(&web, &[]));
        assert!(
            f(&["status=exited", "status=running"]).matches(&web, &[]),
            "values OR"
        );
        assert!(
            !f(&["status=running", "name=db"]).matches(&web, &[]),
            "keys AND"
        );
        assert!(f(&["label=app", "label=tier=front"]).matches(&web, &[]));
        assert!(
            !f(&["label=app", "label=tier=back"]).matches(&web, &[]),
            "labels AND"
        );
        assert!(!f(&["label=missing"]).matches(&web, &[]));
        assert!(
            f(&["name=/web"]).matches(&web, &[]),
            "substring, leading slash ignored"
        );
        assert!(f(&["id=abc0"]).matches(&web, &[]));
        assert!(!f(&["id=abd"]).matches(&web, &[]));
        assert!(f(&["volume=data"]).matches(&web, &[]));
        assert!(f(&["volume=/data"]).matches(&web, &[]));
        assert!(!f(&["volume=other"]).matches(&web, &[]));
        assert!(f(&["health=none"]).matches(&web, &[]));
        assert!(!f(&["network=host"]).matches(&web, &[]));
        assert!(f(&["expose=80"]).matches(&web, &[]));
        assert!(!f(&["expose=80/udp"]).matches(&web, &[]));
        assert!(!f(&["publish=80"]).matches(&web, &[]));
        assert!(ContainerFilter::parse(&["expose=http"]).is_err());
    }

    #[test]
    fn ancestor_matches_reference_or_resolved_digest() {
        let c = container("x1", Status::Created, &[]);
        assert!(f(&["ancestor=busybox:latest"]).matches(&c, &[]));
        assert!(!f(&["ancestor=alpine"]).matches(&c, &[]));
        let d = c.image_digest.clone().unwrap();
        assert!(f(&["ancestor=bb"]).matches(&c, &[d]));
    }

    #[test]
    fn exited_needs_exited_status() {
        let mut c = container("x1", Status::Exited, &[]);
        c.state.exit_code = Some(3);
        assert!(f(&["exited=3"]).matches(&c, &[]));
        assert!(!f(&["exited=0"]).matches(&c, &[]));
        c.state.status = Status::Restarting;
        assert!(!f(&["exited=3"]).matches(&c, &[]));
    }
}
