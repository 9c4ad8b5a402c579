//! Opening the state database and running transactions on it.
//!
//! One [`Store`] is one SQLite connection (`berth.db` in WAL mode under the root). Many processes
//! may each hold one: SQLite's file locks serialize writers, WAL lets readers go on while one
//! writes, and every change is one transaction, so a process killed at any point leaves either
//! all of a change or none of it. Writers start with `BEGIN IMMEDIATE` so that two writers never
//! both read and then fail to upgrade; a writer waits up to the busy timeout for the lock.

use std::fs::{self, DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::error::{EngineError, Result};
use crate::schema;

/// The database's file name under the root.
pub const DB_FILE: &str = "berth.db";

/// How long a writer waits for another writer's lock before giving up with
/// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable).
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Events kept by default; older ones are pruned as new ones are appended.
pub const DEFAULT_EVENTS_KEPT: i64 = 10_000;

/// Where berth keeps its state: the persistent root and the runtime (tmpfs) root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// Persistent root (`--root`, `BERTH_ROOT`, default `/var/lib/berth`).
    pub root: PathBuf,
    /// Runtime root (`--run-root`, `BERTH_RUN_ROOT`, default `/run/berth`).
    pub run_root: PathBuf,
}

impl Paths {
    /// Default persistent root.
    pub const DEFAULT_ROOT: &str = "/var/lib/berth";
    /// Default runtime root.
    pub const DEFAULT_RUN_ROOT: &str = "/run/berth";

    /// Both roots explicitly; a relative one is taken from the working directory (the paths
    /// end up in bundles and mounts, read from other directories).
    #[must_use]
    pub fn new(root: impl Into<PathBuf>, run_root: impl Into<PathBuf>) -> Self {
        let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
        Self {
            root: absolute(root.into()),
            run_root: absolute(run_root.into()),
        }
    }

    /// `BERTH_ROOT` and `BERTH_RUN_ROOT`, else the defaults.
    #[must_use]
    pub fn from_env() -> Self {
        let var = |k: &str, default: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from(default), PathBuf::from)
        };
        Self::new(
            var("BERTH_ROOT", Self::DEFAULT_ROOT),
            var("BERTH_RUN_ROOT", Self::DEFAULT_RUN_ROOT),
        )
    }

    /// `<root>/berth.db`.
    #[must_use]
    pub fn db(&self) -> PathBuf {
        self.root.join(DB_FILE)
    }

    /// `<root>/containers`: one bundle directory per container.
    #[must_use]
    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// `<root>/volumes`: one directory per local volume.
    #[must_use]
    pub fn volumes_dir(&self) -> PathBuf {
        self.root.join("volumes")
    }

    /// `<run_root>/containers`: runtime state per container.
    #[must_use]
    pub fn run_containers_dir(&self) -> PathBuf {
        self.run_root.join("containers")
    }
}

/// The state store: one connection to `berth.db`.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    paths: Paths,
    events_kept: i64,
}

/// A transaction on the store. All reads and changes of the engine's records are methods of
/// `Tx` (in the `containers`, `images`, `volumes` and `events` modules); a change made through
/// [`Store::write`] becomes visible to others all at once when the closure returns `Ok`, and
/// not at all when it returns `Err`, panics, or the process dies.
#[derive(Debug)]
pub struct Tx<'a> {
    pub(crate) tx: Transaction<'a>,
    pub(crate) paths: &'a Paths,
    pub(crate) events_kept: i64,
}

impl Store {
    /// Opens the store under `paths.root`, creating the root (mode 0700) and the database
    /// (mode 0600) if needed, and migrating the schema.
    pub fn open(paths: &Paths) -> Result<Self> {
        Self::open_with(paths, DEFAULT_BUSY_TIMEOUT)
    }

    /// [`Store::open`] with a busy timeout of the caller's choice.
    pub fn open_with(paths: &Paths, busy_timeout: Duration) -> Result<Self> {
        create_private_dir(&paths.root)?;
        let db = paths.db();
        // Create the file with owner-only permissions before SQLite does with the umask's;
        // SQLite gives the -wal and -shm files the database file's mode.
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&db)
            .map_err(|source| EngineError::Io {
                action: "create state database",
                path: db.clone(),
                source,
            })?;
        let conn = Connection::open_with_flags(
            &db,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(EngineError::sqlite("open"))?;
        conn.busy_timeout(busy_timeout)
            .map_err(EngineError::sqlite("set busy timeout"))?;
        set_wal(&conn, busy_timeout)?;
        // FULL: a committed change survives power loss too, not only a killed process.
        // Every berth command is a short process, usually the only one with the database open:
        // SQLite's checkpoint when the last connection closes (copy the WAL back, two fsyncs,
        // delete the WAL) would cost each command more than its own work. Commits checkpoint
        // instead once the WAL holds `wal_autocheckpoint` pages; kept small, because the next
        // process to open the database alone re-reads the whole WAL to rebuild its index.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .map_err(EngineError::sqlite("set connection options"))?;
        conn.execute_batch(
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; \
             PRAGMA wal_autocheckpoint = 256; PRAGMA journal_size_limit = 2097152;",
        )
        .map_err(EngineError::sqlite("set connection pragmas"))?;
        let store = Self {
            conn,
            paths: paths.clone(),
            events_kept: DEFAULT_EVENTS_KEPT,
        };
        // Only take the write lock when the schema is behind: opening to read (`berth ps`)
        // must not wait for another process's long write.
        let version: i64 = store
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(EngineError::sqlite("read schema version"))?;
        if version != schema::VERSION {
            store.write(|tx| schema::migrate(&tx.tx))?;
        }
        tracing::debug!(root = %paths.root.display(), "state store open");
        Ok(store)
    }

    /// The roots this store was opened with.
    #[must_use]
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// Keep at most `n` events (older ones are pruned on append).
    pub fn set_events_kept(&mut self, n: i64) {
        self.events_kept = n.max(1);
    }

    /// Runs `f` in a write transaction (`BEGIN IMMEDIATE`): it holds the database's write lock
    /// from the start, so what `f` reads cannot change before it commits. Committed when `f`
    /// returns `Ok`, rolled back otherwise.
    pub fn write<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.run(TransactionBehavior::Immediate, f)
    }

    /// [`write`](Self::write) for the records of a container's life (created, started, exited,
    /// removed): the commit does not wait for the disk, so it survives a killed process but
    /// perhaps not a power loss, after which the repair (`system check`, lazy repair) handles
    /// what a lost commit leaves: every container is dead after a reboot, and a bundle without
    /// its record is an orphan it removes. These commits are on the path of every `berth run`,
    /// and each `fsync` costs milliseconds on a busy disk.
    pub fn write_relaxed<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.conn
            .execute_batch("PRAGMA synchronous = NORMAL;")
            .map_err(EngineError::sqlite("relax synchronous"))?;
        let out = self.run(TransactionBehavior::Immediate, f);
        let restored = self
            .conn
            .execute_batch("PRAGMA synchronous = FULL;")
            .map_err(EngineError::sqlite("restore synchronous"));
        let out = out?;
        restored?;
        Ok(out)
    }

    /// Runs `f` in a read transaction: a consistent snapshot that never waits for writers.
    /// `f` should only read; a write in it may fail with `Unavailable` when another process
    /// wrote since the snapshot began.
    pub fn read<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.run(TransactionBehavior::Deferred, f)
    }

    fn run<T>(
        &self,
        behavior: TransactionBehavior,
        f: impl FnOnce(&Tx<'_>) -> Result<T>,
    ) -> Result<T> {
        let tx = Transaction::new_unchecked(&self.conn, behavior)
            .map_err(EngineError::sqlite("begin transaction"))?;
        let tx = Tx {
            tx,
            paths: &self.paths,
            events_kept: self.events_kept,
        };
        let out = f(&tx)?;
        tx.tx
            .commit()
            .map_err(EngineError::sqlite("commit transaction"))?;
        Ok(out)
    }

    /// SQLite's own checks: `PRAGMA integrity_check` and `PRAGMA foreign_key_check`; each
    /// problem found is one line.
    pub fn integrity_problems(&self) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        let mut stmt = self
            .conn
            .prepare("PRAGMA integrity_check")
            .map_err(EngineError::sqlite("run integrity check"))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(EngineError::sqlite("run integrity check"))?;
        for row in rows {
            let line = row.map_err(EngineError::sqlite("run integrity check"))?;
            if line != "ok" {
                problems.push(line);
            }
        }
        let mut stmt = self
            .conn
            .prepare("PRAGMA foreign_key_check")
            .map_err(EngineError::sqlite("run foreign key check"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(format!(
                    "foreign key violation in {} row {}",
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?
                ))
            })
            .map_err(EngineError::sqlite("run foreign key check"))?;
        for row in rows {
            problems.push(row.map_err(EngineError::sqlite("run foreign key check"))?);
        }
        Ok(problems)
    }
}

impl Tx<'_> {
    /// The roots of the store.
    #[must_use]
    pub fn paths(&self) -> &Paths {
        self.paths
    }
}

/// Creates `dir` and its parents; a directory this call creates gets mode 0700.
fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| EngineError::Io {
            action: "create state directory",
            path: dir.to_owned(),
            source,
        })?;
    // `recursive` applies the mode to every directory it makes, but the umask may have cut it.
    fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).map_err(
        |source| EngineError::Io {
            action: "set mode of state directory",
            path: dir.to_owned(),
            source,
        },
    )
}

/// Switches to WAL. Changing the journal mode needs a moment of exclusive access, which the busy
/// handler does not always wait for when many processes open a fresh database at once: retry.
fn set_wal(conn: &Connection, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0)) {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) if Instant::now() >= deadline => return Err(EngineError::NotWal { mode }),
            Err(e) if crate::error::is_busy(&e) && Instant::now() < deadline => {}
            Err(e) => return Err(EngineError::sqlite("enable WAL journal")(e)),
            Ok(_) => {}
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod paths_tests {
    use super::Paths;

    #[test]
    fn relative_roots_become_absolute() {
        let p = Paths::new("state", "/run/x/../y");
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(p.root, cwd.join("state"));
        assert_eq!(p.run_root, std::path::PathBuf::from("/run/x/../y"));
    }
}
