//! The database schema as numbered migrations. `PRAGMA user_version` holds the number applied;
//! `migrate` (run by `Store::open`) applies the missing ones inside a write transaction, so
//! concurrent first opens apply each migration exactly once. Never edit a released migration:
//! append one.

use rusqlite::Connection;

use crate::error::{EngineError, Result};

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: containers, images, volumes, events.
    r"
CREATE TABLE images (
    digest        TEXT PRIMARY KEY,          -- manifest digest, sha256:<hex>
    config_digest TEXT NOT NULL,             -- Docker's image id
    size          INTEGER NOT NULL,          -- bytes of config and layers
    created       INTEGER,                   -- config's 'created', ns since the epoch
    added         INTEGER NOT NULL,
    labels        TEXT NOT NULL DEFAULT '{}'
) STRICT;
CREATE INDEX images_config_digest ON images(config_digest);

CREATE TABLE image_names (
    reference TEXT PRIMARY KEY,              -- normalized name:tag or name@digest
    digest    TEXT NOT NULL REFERENCES images(digest) ON DELETE CASCADE,
    added     INTEGER NOT NULL
) STRICT;
CREATE INDEX image_names_digest ON image_names(digest);

CREATE TABLE containers (
    id               TEXT PRIMARY KEY CHECK (length(id) = 64),
    name             TEXT NOT NULL UNIQUE,
    image            TEXT NOT NULL,          -- reference as the user gave it
    image_digest     TEXT,                   -- manifest digest it was created from
    created          INTEGER NOT NULL,
    config           TEXT NOT NULL,          -- JSON Config
    host_config      TEXT NOT NULL,          -- JSON HostConfig
    status           TEXT NOT NULL,
    pid              INTEGER,
    monitor_pid      INTEGER,
    started_at       INTEGER,
    finished_at      INTEGER,
    exit_code        INTEGER,
    oom_killed       INTEGER NOT NULL DEFAULT 0,
    restart_count    INTEGER NOT NULL DEFAULT 0,
    stopped_by_user  INTEGER NOT NULL DEFAULT 0,
    error            TEXT NOT NULL DEFAULT '',
    health           TEXT,                   -- JSON Health
    bundle           TEXT NOT NULL,
    run_dir          TEXT NOT NULL,
    log_path         TEXT NOT NULL
) STRICT;
CREATE INDEX containers_image_digest ON containers(image_digest);

CREATE TABLE volumes (
    name       TEXT PRIMARY KEY,
    driver     TEXT NOT NULL,
    mountpoint TEXT NOT NULL,
    labels     TEXT NOT NULL DEFAULT '{}',
    options    TEXT NOT NULL DEFAULT '{}',
    anonymous  INTEGER NOT NULL DEFAULT 0,
    created    INTEGER NOT NULL
) STRICT;

-- A volume is in use while a container row mounts it: RESTRICT keeps it.
CREATE TABLE container_mounts (
    container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    destination  TEXT NOT NULL,
    kind         TEXT NOT NULL,              -- bind, volume, tmpfs
    source       TEXT NOT NULL,
    volume       TEXT REFERENCES volumes(name) ON DELETE RESTRICT,
    read_write   INTEGER NOT NULL,
    propagation  TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (container_id, destination)
) STRICT;
CREATE INDEX container_mounts_volume ON container_mounts(volume);

CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    time       INTEGER NOT NULL,
    type       TEXT NOT NULL,                -- container, image, volume
    action     TEXT NOT NULL,
    actor      TEXT NOT NULL,
    attributes TEXT NOT NULL DEFAULT '{}'
) STRICT;
CREATE INDEX events_time ON events(time);
",
    // 2: networks, their endpoints (IPAM) and published-port leases.
    r"
CREATE TABLE networks (
    id        TEXT PRIMARY KEY CHECK (length(id) = 64),
    name      TEXT NOT NULL UNIQUE,
    created   INTEGER NOT NULL,
    bridge    TEXT NOT NULL UNIQUE,          -- interface name
    subnet    TEXT NOT NULL,                 -- IPv4 CIDR
    gateway   TEXT NOT NULL,
    ip_range  TEXT NOT NULL DEFAULT '',
    subnet6   TEXT NOT NULL DEFAULT '',
    gateway6  TEXT NOT NULL DEFAULT '',
    internal  INTEGER NOT NULL DEFAULT 0,
    mtu       INTEGER NOT NULL DEFAULT 0,
    labels    TEXT NOT NULL DEFAULT '{}',
    options   TEXT NOT NULL DEFAULT '{}'
) STRICT;

-- IPAM: an address is taken while its row exists; the unique indexes make a double lease
-- impossible, and removing the container frees its rows.
CREATE TABLE endpoints (
    network_id   TEXT NOT NULL REFERENCES networks(id) ON DELETE RESTRICT,
    container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    idx          INTEGER NOT NULL,           -- eth<idx> inside the container
    ipv4         TEXT NOT NULL,
    ipv6         TEXT NOT NULL DEFAULT '',
    aliases      TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (network_id, container_id)
) STRICT;
CREATE UNIQUE INDEX endpoints_ipv4 ON endpoints(network_id, ipv4);
CREATE UNIQUE INDEX endpoints_ipv6 ON endpoints(network_id, ipv6) WHERE ipv6 != '';
CREATE UNIQUE INDEX endpoints_idx ON endpoints(container_id, idx);

CREATE TABLE port_leases (
    container_id   TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    proto          TEXT NOT NULL,            -- tcp, udp
    host_ip        TEXT NOT NULL,            -- 0.0.0.0: every address
    host_port      INTEGER NOT NULL,
    container_port INTEGER NOT NULL,
    PRIMARY KEY (proto, host_ip, host_port)
) STRICT;
CREATE INDEX port_leases_container ON port_leases(container_id);
",
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the schema to [`VERSION`]; call inside a write (IMMEDIATE) transaction.
pub(crate) fn migrate(conn: &Connection) -> Result<()> {
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(EngineError::sqlite("read schema version"))?;
    if found > VERSION {
        return Err(EngineError::SchemaTooNew {
            found,
            supported: VERSION,
        });
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(found).unwrap_or(0))
    {
        tracing::info!(version = i + 1, "migrating state database");
        conn.execute_batch(sql)
            .map_err(EngineError::sqlite("apply schema migration"))?;
        conn.pragma_update(None, "user_version", i as i64 + 1)
            .map_err(EngineError::sqlite("write schema version"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_refuse_newer() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        migrate(&conn).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, VERSION);
        conn.pragma_update(None, "user_version", VERSION + 1)
            .unwrap();
        let e = migrate(&conn).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Unavailable);
    }
}
