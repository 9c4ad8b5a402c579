//! The event log (`docker events`): appended in the same transaction as the change it reports,
//! queried by time range and Docker's filters, pruned to a bounded number of rows.

use std::collections::BTreeMap;

use rusqlite::params;
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::id::Timestamp;
use crate::store::Tx;

/// What an event is about (Docker's `Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// A container.
    Container,
    /// An image.
    Image,
    /// A volume.
    Volume,
    /// A network (later).
    Network,
}

impl EventType {
    /// Docker's lowercase name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Container => "container",
            Self::Image => "image",
            Self::Volume => "volume",
            Self::Network => "network",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Container, Self::Image, Self::Volume, Self::Network]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the log; strictly increasing, so `events -f` can poll with
    /// [`EventFilter::after`].
    pub seq: i64,
    /// When.
    pub time: Timestamp,
    /// About what.
    pub kind: EventType,
    /// `create`, `start`, `die`, `destroy`, `tag`, ...
    pub action: String,
    /// Id (container id, image digest, volume name) of the object.
    pub actor: String,
    /// Docker's `Actor.Attributes`: name, image, labels, exitCode, ...
    pub attributes: BTreeMap<String, String>,
}

/// Which events to return.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events with `seq` greater than this (for following the log).
    pub after: Option<i64>,
    /// Only events at or after this time.
    pub since: Option<Timestamp>,
    /// Only events at or before this time.
    pub until: Option<Timestamp>,
    /// `type=`.
    pub types: Vec<EventType>,
    /// `event=` (action).
    pub actions: Vec<String>,
    /// `container=` id, id prefix or name.
    pub containers: Vec<String>,
    /// `image=`: the actor of an image event or the `image` attribute.
    pub images: Vec<String>,
    /// `volume=` name.
    pub volumes: Vec<String>,
    /// `label=key` or `label=key=value`: all must match.
    pub labels: Vec<(String, Option<String>)>,
}

impl EventFilter {
    /// Adds Docker's `key=value` filters (`type`, `event`, `container`, `image`, `volume`,
    /// `label`) to `self`.
    pub fn parse<S: AsRef<str>>(mut self, filters: &[S]) -> Result<Self> {
        for raw in filters {
            let raw = raw.as_ref();
            let bad = || crate::filter::invalid(raw);
            let (key, value) = crate::filter::split(raw)?;
            match key {
                "type" => self.types.push(EventType::parse(value).ok_or_else(bad)?),
                "event" => self.actions.push(value.to_owned()),
                "container" => self.containers.push(value.to_owned()),
                "image" => self.images.push(value.to_owned()),
                "volume" => self.volumes.push(value.to_owned()),
                "label" => self.labels.push(crate::filter::parse_label(value)),
                _ => return Err(bad()),
            }
        }
        Ok(self)
    }

    /// Whether `e` passes the key filters (the time and `after` bounds are applied in SQL).
    #[must_use]
    pub fn matches(&self, e: &Event) -> bool {
        let attr = |k: &str| e.attributes.get(k).map(String::as_str);
        let any =
            |v: &[String], pred: &dyn Fn(&str) -> bool| v.is_empty() || v.iter().any(|x| pred(x));
        (self.types.is_empty() || self.types.contains(&e.kind))
            && any(&self.actions, &|a| {
                e.action == a || e.action.split(':').next() == Some(a)
            })
            && any(&self.containers, &|c| {
                e.kind == EventType::Container
                    && (e.actor.starts_with(c) || attr("name") == Some(c))
            })
            && any(&self.images, &|i| {
                (e.kind == EventType::Image && (e.actor == i || attr("name") == Some(i)))
                    || attr("image") == Some(i)
            })
            && any(&self.volumes, &|v| {
                e.kind == EventType::Volume && e.actor == v
            })
            && crate::filter::labels_match(&self.labels, attr)
    }
}

impl Tx<'_> {
    /// Appends an event now and prunes the log to the store's bound.
    pub fn append_event(
        &self,
        kind: EventType,
        action: &str,
        actor: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<()> {
        let attrs = serde_json::to_string(attributes).map_err(|source| EngineError::Json {
            action: format!("encode attributes of {action} event"),
            source,
        })?;
        self.tx
            .prepare_cached(
                "INSERT INTO events (time, type, action, actor, attributes) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| s.execute(params![Timestamp::now().0, kind.as_str(), action, actor, attrs]))
            .map_err(EngineError::sqlite("append event"))?;
        let seq = self.tx.last_insert_rowid();
        // Rows below the bound go in one indexed range delete; AUTOINCREMENT keeps seq growing.
        self.tx
            .prepare_cached("DELETE FROM events WHERE seq <= ?1")
            .and_then(|mut s| s.execute([seq - self.events_kept]))
            .map_err(EngineError::sqlite("prune events"))?;
        Ok(())
    }

    /// Events passing `filter`, oldest first.
    pub fn events(&self, filter: &EventFilter) -> Result<Vec<Event>> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "SELECT seq, time, type, action, actor, attributes FROM events \
                 WHERE seq > ?1 AND time >= ?2 AND time <= ?3 ORDER BY seq",
            )
            .map_err(EngineError::sqlite("query events"))?;
        let rows = stmt
            .query_map(
                params![
                    filter.after.unwrap_or(0),
                    filter.since.map_or(i64::MIN, |t| t.0),
                    filter.until.map_or(i64::MAX, |t| t.0)
                ],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                    ))
                },
            )
            .map_err(EngineError::sqlite("query events"))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, time, kind, action, actor, attrs) =
                row.map_err(EngineError::sqlite("query events"))?;
            let kind = EventType::parse(&kind).ok_or_else(|| EngineError::Corrupt {
                table: "events",
                key: seq.to_string(),
                column: "type",
                value: kind.clone(),
            })?;
            let attributes = serde_json::from_str(&attrs).map_err(|source| EngineError::Json {
                action: format!("decode attributes of event {seq}"),
                source,
            })?;
            let e = Event {
                seq,
                time: Timestamp(time),
                kind,
                action,
                actor,
                attributes,
            };
            if filter.matches(&e) {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Deletes events older than `before`; returns how many.
    pub fn prune_events(&self, before: Timestamp) -> Result<usize> {
        self.tx
            .execute("DELETE FROM events WHERE time < ?1", [before.0])
            .map_err(EngineError::sqlite("prune events"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventType, action: &str, actor: &str, attrs: &[(&str, &str)]) -> Event {
        Event {
            seq: 1,
            time: Timestamp(0),
            kind,
            action: action.to_owned(),
            actor: actor.to_owned(),
            attributes: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn filters() {
        let f = |a: &[&str]| EventFilter::default().parse(a).unwrap();
        let die = event(
            EventType::Container,
            "die",
            "abcdef",
            &[("name", "web"), ("image", "busybox"), ("app", "x")],
        );
        let health = event(
            EventType::Container,
            "health_status: healthy",
            "abcdef",
            &[("name", "web")],
        );
        let tag = event(
            EventType::Image,
            "tag",
            "sha256:1",
            &[("name", "busybox:latest")],
        );
        assert!(f(&[]).matches(&die));
        assert!(f(&["type=container", "event=die"]).matches(&die));
        assert!(!f(&["type=image"]).matches(&die));
        assert!(f(&["container=web"]).matches(&die) && f(&["container=abc"]).matches(&die));
        assert!(!f(&["container=web"]).matches(&tag));
        assert!(
            f(&["image=busybox"]).matches(&die),
            "container events carry their image"
        );
        assert!(f(&["image=busybox:latest"]).matches(&tag));
        assert!(f(&["label=app=x"]).matches(&die) && !f(&["label=app=y"]).matches(&die));
        assert!(f(&["event=health_status"]).matches(&health));
        for bad in ["type=pod", "colour=red", "nokey"] {
            assert!(EventFilter::default().parse(&[bad]).is_err(), "{bad}");
        }
    }
}
