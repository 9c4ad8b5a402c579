//! The embedded DNS server of a user-defined network, without a daemon: one small process per
//! network (`berth network dns-serve <id>`, like podman's aardvark-dns), listening on the
//! network's gateway address, port 53, in the engine's network namespace. It is started by the
//! first container that starts on the network and exits by itself once no container on the
//! network has run for a few seconds.
//!
//! One server per network is kept by an exclusive lock on `<run_root>/networks/<id>/dns.lock`:
//! the server holds it while it serves; a starter that can take it knows none runs and spawns
//! one. A server about to exit releases the lock and then looks once more, so a container that
//! started in between is never left without one. Answers come from the store at query time
//! (names and aliases of running containers on the network); other names are relayed to the
//! querying container's `--dns` servers, else to the host's resolvers.

use std::fs::File;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
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
    let exe = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .filter(|p| p.is_absolute() && p.is_file())
        .or_else(|| std::env::current_exe().ok())
        .unwrap_or_else(|| PathBuf::from("berth"));
    let mut cmd = Command::new(exe);
    cmd.arg("--root")
        .arg(&paths.root)
        .arg("--run-root")
        .arg(&paths.run_root)
        .args(["network", "dns-serve", &n.id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    match cmd.spawn() {
        // Reaped by whoever inherits it; the monitor that spawned it reaps strays at exit.
        Ok(child) => drop(child),
        Err(e) => tracing::warn!("start DNS server of {}: {e}", n.name),
    }
}

/// Whether any container on the network is running.
fn in_use(paths: &Paths, network_id: &str) -> bool {
    Store::open(paths)
        .and_then(|store| {
            store.read(|tx| {
                let n = tx.network(network_id)?;
                Ok(tx.endpoints_on(&n.id)?.iter().any(|(_, _, status)| {
                    matches!(status.as_str(), "running" | "paused" | "restarting")
                }))
            })
        })
        .unwrap_or(false)
}

fn resolve(
    paths: &Paths,
    network_id: &str,
    host_search: &[String],
    host_ns: &[SocketAddr],
    q: &net::dns::Question,
    from: IpAddr,
) -> net::dns::Resolution {
    // A connection per question: a long-lived one could keep reading an old snapshot.
    let found = Store::open(paths).and_then(|store| {
        store.read(|tx| {
            let here = tx.endpoints_on(network_id)?;
            let client = here
                .iter()
                .find(|(e, _, _)| e.ipv4 == from || e.ipv6 == Some(from));
            // Names on every user network the asking container is on, as Docker's resolver.
            let mut eps = here.clone();
            let client_cfg = match client {
                Some((e, _, _)) => {
                    for (_, n) in tx.endpoints_of(&e.container_id)? {
                        if n.id != network_id && !n.is_default() {
                            eps.extend(tx.endpoints_on(&n.id)?);
                        }
                    }
                    Some(tx.container(&e.container_id)?.host_config)
                }
                None => None,
            };
            let mut search: Vec<String> = host_search.to_vec();
            if let Some(h) = &client_cfg {
                search.extend(h.dns_search.iter().cloned());
            }
            let matches = |name: &str| -> Vec<IpAddr> {
                eps.iter()
                    .filter(|(_, _, status)| status == "running" || status == "paused")
                    .filter(|(e, cname, _)| {
                        cname.eq_ignore_ascii_case(name)
                            || e.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
                            || e.container_id.starts_with(name) && name.len() >= 12
                    })
                    .flat_map(|(e, _, _)| std::iter::once(e.ipv4).chain(e.ipv6))
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
            let upstream: Vec<SocketAddr> = client_cfg
                .map(|h| h.dns)
                .unwrap_or_default()
                .iter()
                .filter_map(|s| s.parse::<IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, 53))
                .collect();
            Ok((addrs, upstream))
        })
    });
    if let Err(e) = &found {
        eprintln!(
            "berth dns: resolve {}: {}",
            q.name,
            runtime::error::chain(e)
        );
    }
    match found {
        Ok((addrs, _)) if !addrs.is_empty() => net::dns::Resolution::Local(addrs),
        Ok((_, upstream)) if !upstream.is_empty() => net::dns::Resolution::Forward(upstream),
        _ => net::dns::Resolution::Forward(host_ns.to_vec()),
    }
}

/// Runs the DNS server of network `network_id` until the network is idle; returns the exit
/// status (0 also when another server already runs).
#[must_use]
pub fn serve(paths: &Paths, network_id: &str) -> i32 {
    let Some(mut lock) = try_lock(paths, network_id) else {
        return 0;
    };
    let store = match Store::open(paths) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("berth: dns: {e}");
            return 125;
        }
    };
    let n = match store.read(|tx| tx.network(network_id)) {
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
            resolve(paths, &n.id, &host_search, &host_ns, q, from)
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
