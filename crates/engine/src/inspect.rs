//! `inspect`: Docker-shaped JSON of a container (tried first) or an image, as `docker inspect`
//! and the Engine API's `GET /containers/{id}/json` and `GET /images/{name}/json` return it.

use serde_json::{Value, json};

use crate::containers::Container;
use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::id::Timestamp;
use crate::images::Image;
use crate::state::Status;

/// Docker's zero time, printed for times that never happened.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl Engine {
    /// The container named `reference`, else the image, as Docker's inspect object.
    ///
    /// Errors: `NotFound` ("no such object") when neither exists, or the store cannot be read.
    pub fn inspect(&self, reference: &str) -> Result<Value> {
        match self.inspect_container(reference) {
            Err(EngineError::NotFound { .. }) => {}
            other => return other,
        }
        match self.inspect_image(reference) {
            Err(EngineError::NotFound { .. }) => Err(EngineError::NotFound {
                what: "object",
                reference: reference.to_owned(),
            }),
            other => other,
        }
    }

    /// Docker's container inspect object.
    ///
    /// Errors: no such container.
    pub fn inspect_container(&self, reference: &str) -> Result<Value> {
        let c = self.container(reference)?;
        let image_id = c
            .image_digest
            .as_ref()
            .and_then(|d| self.store().read(|tx| tx.image_by_digest(d)).ok())
            .map_or_else(String::new, |i| i.config_digest.to_string());
        let mut v = container_json(&c, &image_id, self.mounts_json(&c));
        v["NetworkSettings"] = self.network_settings(&c)?;
        Ok(v)
    }

    /// Docker's image inspect object.
    ///
    /// Errors: no such image, or its config cannot be read from the image store.
    pub fn inspect_image(&self, reference: &str) -> Result<Value> {
        let (record, img) = self.resolve_image(reference)?;
        Ok(image_json(&record, &img))
    }
}

fn time(t: Option<Timestamp>) -> String {
    t.map_or_else(|| ZERO_TIME.to_owned(), Timestamp::to_rfc3339)
}

fn container_json(c: &Container, image_id: &str, mounts: Vec<Value>) -> Value {
    let args = crate::bundle::args(&c.config);
    let (path, rest) = args
        .split_first()
        .map_or((String::new(), &[][..]), |(p, r)| (p.clone(), r));
    let st = &c.state;
    let running = matches!(st.status, Status::Running | Status::Paused);
    let mut config = c.config.clone();
    if config.hostname.is_empty() {
        // The hostname is the short id; it lives only in the bundle's config.json.
        config.hostname = c.id.short().to_owned();
    }
    json!({
        "Id": c.id.as_str(),
        "Created": c.created.to_rfc3339(),
        "Path": path,
        "Args": rest,
        "State": {
            "Status": st.status.as_str(),
            "Running": running,
            "Paused": st.status == Status::Paused,
            "Restarting": st.status == Status::Restarting,
            "OOMKilled": st.oom_killed,
            "Dead": st.status == Status::Dead,
            "Pid": if running { st.pid.unwrap_or(0) } else { 0 },
            "ExitCode": st.exit_code.unwrap_or(0),
            "Error": st.error,
            "StartedAt": time(st.started_at),
            "FinishedAt": time(st.finished_at),
            "Health": st.health.as_ref().map(|h| json!({
                "Status": h.status.as_str(),
                "FailingStreak": h.failing_streak,
                "Log": h.log.iter().map(|l| json!({
                    "Start": l.start.to_rfc3339(),
                    "End": l.end.to_rfc3339(),
                    "ExitCode": l.exit_code,
                    "Output": l.output,
                })).collect::<Vec<_>>(),
            })),
        },
        "Image": image_id,
        "LogPath": c.log_path,
        "Name": format!("/{}", c.name),
        "RestartCount": st.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "HostConfig": c.host_config,
        "Mounts": mounts,
        "Config": config,
    })
}

fn image_json(record: &Image, img: &image::Image) -> Value {
    let (tags, digests): (Vec<&String>, Vec<&String>) =
        record.names.iter().partition(|n| !n.contains('@'));
    let cfg = &img.config;
    // The config object as stored (all of Docker's keys), with Docker's nulls for absent ones.
    let mut config = serde_json::to_value(cfg.config()).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut config {
        for key in [
            "Env",
            "Cmd",
            "Entrypoint",
            "Labels",
            "Volumes",
            "ExposedPorts",
        ] {
            m.entry(key).or_insert(Value::Null);
        }
        for key in ["User", "WorkingDir"] {
            m.entry(key).or_insert_with(|| json!(""));
        }
    }
    let last_history = cfg.history().as_ref().and_then(|h| h.last());
    json!({
        "Id": record.config_digest.as_str(),
        "RepoTags": tags,
        "RepoDigests": digests,
        "Parent": "",
        "Comment": last_history.and_then(|h| h.comment().clone()).unwrap_or_default(),
        "Created": time(record.created),
        "DockerVersion": "",
        "Author": cfg.author().clone().unwrap_or_default(),
        "Config": config,
        "Architecture": cfg.architecture().to_string(),
        "Variant": cfg.variant(),
        "Os": cfg.os().to_string(),
        "Size": record.size,
        "GraphDriver": {"Name": "overlay2", "Data": null},
        "RootFS": {
            "Type": "layers",
            "Layers": img.diff_ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
        },
        "Metadata": {"LastTagTime": ZERO_TIME},
        "Descriptor": {
            "mediaType": img.manifest.media_type().as_ref().map_or_else(
                || image::media::OCI_MANIFEST.to_owned(),
                ToString::to_string,
            ),
            "digest": img.manifest_digest.to_string(),
        },
    })
}
