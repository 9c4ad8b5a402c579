//! The embedded DNS server of a user-defined network, without a daemon: one small process per
//! network (`berth network dns-serve <id>`, like podman's aardvark-dns), listening on the
//! network's gateway address, port 53, in the engine's network namespace. It is started by the
//! first container that starts on the network and exits by itself once no container on the
//! network has run for a few seconds.
//!
//! One server per network is kept by an exclusive lock on `<run_root>/networks/<id>/dns.lock`:
//! the server holds it while it serves; a starter that can take it knows none runs and spawns
//! one. A server about to exit releases the lock and then looks once more, so a container that
//! started in between is never left without one. Answers come from the DNS table the engine
//! rewrites at every start, stop, connect and disconnect (`<run_root>/networks/dns.json`:
//! names and aliases of running containers on user networks), so the server never opens the
//! database; other names are relayed to the querying container's `--dns` servers, else to the
//! host's resolvers.

use std::fs::File;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Duration;

use crate::networks::Network;
use crate::store::{Paths, Store};

/// How often the server looks whether its network still has running containers.
const TICK: Duration = Duration::from_secs(2);
/// Idle looks in a row before it exits.
const IDLE_TICKS: u32 = 3;

fn lock_path(paths: &Paths, network_id: &str) -> PathBuf {
    paths
        .run_root
        .join("networks")
        .join(network_id)
        .join("dns.lock")
}

fn try_lock(paths: &Paths, network_id: &str) -> Option<File> {
    let path = lock_path(paths, network_id);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ok()?;
    }
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .ok()?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .ok()
        .map(|()| f)
}

/// Starts the network's DNS server unless one runs. Failures are logged: the container runs
/// on without name resolution rather than not at all.
pub(crate) fn ensure_server(paths: &Paths, n: &Network) {
    let Some(probe) = try_lock(paths, &n.id) else {
        return;
    };
    drop(probe);
    // The monitor runs from a protected copy of berth: argv[0] names the real binary.
    let exe = crate::monitor::berth_binary();
    // Its complaints (an address it cannot bind, a store it cannot read) go to dns.log.
    let started = (|| -> std::io::Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(lock_path(paths, &n.id).with_file_name("dns.log"))?;
        let null = File::options().read(true).write(true).open("/dev/null")?;
        let exe_fd = rustix::fs::open(
            &exe,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        // Nobody's child: a server that ends is reaped by init, not left a zombie of the
        // monitor that happened to start it.
        crate::lifecycle::spawn_berth(
            exe_fd.as_fd(),
            &exe,
            paths,
            &[
                "network".as_ref(),
                "dns-serve".as_ref(),
                n.id.as_str().as_ref(),
            ],
            [null.as_fd(), null.as_fd(), log.as_fd()],
        )
    })();
    if let Err(e) = started {
        tracing::warn!("start DNS server of {}: {e}", n.name);
    }
}

/// One running container's place on a user network, as the DNS servers see it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Entry {
    network: String,
    container: String,
    name: String,
    aliases: Vec<String>,
    addrs: Vec<IpAddr>,
    dns: Vec<String>,
    dns_search: Vec<String>,
}

/// `<run_root>/networks/dns.json`: the names of running containers on user networks. The
/// engine rewrites it (temp file, rename) whenever a container starts, stops, connects or
/// disconnects; the servers read it, so they never share the database with the engine.
fn table_path(paths: &Paths) -> PathBuf {
    paths.run_root.join("networks").join("dns.json")
}

/// Rewrites the DNS table from the store; `also` counts as running, `gone` as stopped.
///
/// Errors: the store cannot be read or the file written.
pub(crate) fn write_table(
    paths: &Paths,
    store: &Store,
    also: Option<&str>,
    gone: Option<&str>,
) -> crate::error::Result<()> {
    let entries = store.read(|tx| {
        let mut active = tx.active_container_ids()?;
        active.extend(also.map(str::to_owned));
        active.retain(|id| Some(id.as_str()) != gone);
        let mut out = Vec::new();
        for n in tx.list_networks()?.iter().filter(|n| !n.is_default()) {
            for (e, name, _) in tx.endpoints_on(&n.id)? {
                if !active.contains(&e.container_id) {
                    continue;
                }
                let h = tx.container(&e.container_id)?.host_config;
                out.push(Entry {
                    network: n.id.clone(),
                    container: e.container_id.clone(),
                    name,
                    aliases: e.aliases.clone(),
                    addrs: std::iter::once(e.ipv4).chain(e.ipv6).collect(),
                    dns: h.dns,
                    dns_search: h.dns_search,
                });
            }
        }
        Ok(out)
    })?;
    let path = table_path(paths);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(crate::engine::io_err("create directory", dir))?;
    }
    let text = serde_json::to_vec(&entries).map_err(|source| crate::error::EngineError::Json {
        action: "encode the DNS table".into(),
        source,
    })?;
    crate::engine::write_file(&path, &text)
}

fn read_table(paths: &Paths) -> Vec<Entry> {
    std::fs::read(table_path(paths))
        .ok()
        .and_then(|t| serde_json::from_slice(&t).ok())
        .unwrap_or_default()
}

/// Whether any container on the network is running.
fn in_use(paths: &Paths, network_id: &str) -> bool {
    read_table(paths).iter().any(|e| e.network == network_id)
}

fn resolve(
    table: &[Entry],
    network_id: &str,
    host_search: &[String],
    host_ns: &[SocketAddr],
    q: &net::dns::Question,
    from: IpAddr,
) -> net::dns::Resolution {
    let client = table
        .iter()
        .find(|e| e.network == network_id && e.addrs.contains(&from));
    // Names on every user network the asking container is on, as Docker's resolver.
    let networks: Vec<&str> = match client {
        Some(c) => table
            .iter()
            .filter(|e| e.container == c.container)
            .map(|e| e.network.as_str())
            .collect(),
        None => vec![network_id],
    };
    let mut search: Vec<String> = host_search.to_vec();
    if let Some(c) = client {
        search.extend(c.dns_search.iter().cloned());
    }
    let matches = |name: &str| -> Vec<IpAddr> {
        table
            .iter()
            .filter(|e| networks.contains(&e.network.as_str()))
            .filter(|e| {
                e.name.eq_ignore_ascii_case(name)
                    || e.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
                    || (name.len() >= 12 && e.container.starts_with(name))
            })
            .flat_map(|e| e.addrs.iter().copied())
            .collect()
    };
    let mut addrs = matches(&q.name);
    if addrs.is_empty()
        && let Some((first, rest)) = q.name.split_once('.')
        && search
            .iter()
            .any(|s| s.trim_end_matches('.').eq_ignore_ascii_case(rest))
    {
        addrs = matches(first);
    }
    if !addrs.is_empty() {
        return net::dns::Resolution::Local(addrs);
    }
    let upstream: Vec<SocketAddr> = client
        .map(|c| c.dns.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect();
    if upstream.is_empty() {
        net::dns::Resolution::Forward(host_ns.to_vec())
    } else {
        net::dns::Resolution::Forward(upstream)
    }
}

/// Runs the DNS server of network `network_id` until the network is idle; returns the exit
/// status (0 also when another server already runs).
#[must_use]
pub fn serve(paths: &Paths, network_id: &str) -> i32 {
    let Some(mut lock) = try_lock(paths, network_id) else {
        return 0;
    };
    // The store is read once, for the gateway; answers come from the DNS table.
    let n = match Store::open(paths).and_then(|store| store.read(|tx| tx.network(network_id))) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("berth: dns: {e}");
            return 125;
        }
    };
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut host_search = Vec::new();
    let mut host_ns = Vec::new();
    for l in text.lines() {
        let mut f = l.split_whitespace();
        match f.next() {
            Some("search" | "domain") => host_search.extend(f.map(str::to_owned)),
            Some("nameserver") => host_ns.extend(
                f.next()
                    .and_then(|s| s.parse::<IpAddr>().ok())
                    .map(|ip| SocketAddr::new(ip, 53)),
            ),
            _ => {}
        }
    }
    loop {
        let sock = match UdpSocket::bind(SocketAddr::new(n.gateway, 53)) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("berth: dns: listen on {}:53: {e}", n.gateway);
                return 125;
            }
        };
        let mut idle = 0;
        let resolver = |q: &net::dns::Question, from: IpAddr| {
            resolve(&read_table(paths), &n.id, &host_search, &host_ns, q, from)
        };
        let mut keep_going = || {
            if in_use(paths, &n.id) {
                idle = 0;
            } else {
                idle += 1;
            }
            idle < IDLE_TICKS
        };
        if let Err(e) = net::dns::serve(&sock, TICK, &resolver, &mut keep_going) {
            eprintln!("berth: dns: {e}");
            return 125;
        }
        drop(sock);
        drop(lock);
        // A container may have started between the last look and the unlock, and seen the lock
        // held: look again now that a new server could start.
        if !in_use(paths, &n.id) {
            return 0;
        }
        match try_lock(paths, network_id) {
            Some(l) => lock = l,
            None => return 0,
        }
    }
}
