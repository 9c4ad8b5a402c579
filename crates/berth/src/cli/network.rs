//! Network verbs: `network create|ls|inspect|rm|prune|connect|disconnect`, and the hidden
//! `network dns-serve` a network's DNS server runs as.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use engine::{EndpointRequest, Engine, NewNetwork};

use crate::render;

#[derive(Debug, Subcommand)]
pub(crate) enum NetworkFamily {
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum NetworkCommand {
    /// Create a bridge network.
    Create {
        /// Only `bridge`.
        #[arg(short, long, default_value = "bridge")]
        driver: String,
        /// IPv4 (and with --ipv6, IPv6) subnets in CIDR form.
        #[arg(long)]
        subnet: Vec<String>,
        /// Gateway addresses, one per subnet.
        #[arg(long)]
        gateway: Vec<String>,
        /// Allocate container addresses from this sub-range.
        #[arg(long)]
        ip_range: Option<String>,
        /// Enable IPv6 (needs an IPv6 --subnet).
        #[arg(long)]
        ipv6: bool,
        /// No external connectivity.
        #[arg(long)]
        internal: bool,
        /// Metadata `key=value`.
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Driver options: `com.docker.network.bridge.name=`, `com.docker.network.driver.mtu=`.
        #[arg(short, long = "opt")]
        opt: Vec<String>,
        /// Network name.
        name: String,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls {
        /// Only ids.
        #[arg(short, long)]
        quiet: bool,
        /// Full ids.
        #[arg(long)]
        no_trunc: bool,
        /// Go template (`{{.Name}}`) or `json`.
        #[arg(long)]
        format: Option<String>,
        /// `name=`, `id=`, `driver=`, `label=key[=value]`, `type=custom|builtin`,
        /// `scope=local`, `dangling=true|false`.
        #[arg(short, long = "filter")]
        filter: Vec<String>,
    },
    /// Show networks as JSON.
    Inspect {
        /// Go template.
        #[arg(short, long)]
        format: Option<String>,
        /// Networks.
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks.
    #[command(alias = "remove")]
    Rm {
        /// Networks.
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks no container uses.
    Prune {
        /// Do not prompt.
        #[arg(short, long)]
        force: bool,
    },
    /// Connect a container to a network.
    Connect {
        /// IPv4 address.
        #[arg(long)]
        ip: Option<String>,
        /// IPv6 address.
        #[arg(long)]
        ip6: Option<String>,
        /// Network-scoped aliases.
        #[arg(long = "alias")]
        aliases: Vec<String>,
        /// Network.
        network: String,
        /// Container.
        container: String,
    },
    /// Disconnect a container from a network.
    Disconnect {
        /// Accepted for Docker compatibility.
        #[arg(short, long)]
        force: bool,
        /// Network.
        network: String,
        /// Container.
        container: String,
    },
    /// A network's DNS server (internal; started with its first container).
    #[command(hide = true)]
    DnsServe {
        /// Network id.
        id: String,
    },
}

fn key_values(flag: &str, items: &[String]) -> Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|i| {
            let (k, v) = i.split_once('=').unwrap_or((i.as_str(), ""));
            if k.is_empty() {
                bail!("invalid argument {i:?} for \"{flag}\" flag: want KEY=VALUE");
            }
            Ok((k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// Parses an address flag.
pub(crate) fn ip_flag(flag: &str, v: Option<&String>) -> Result<Option<IpAddr>> {
    v.map(|s| {
        s.parse().map_err(|_| {
            anyhow::anyhow!("invalid argument {s:?} for \"{flag}\" flag: not an IP address")
        })
    })
    .transpose()
}

fn new_network(
    name: &str,
    subnets: &[String],
    gateways: &[String],
    ip_range: Option<&String>,
    ipv6: bool,
) -> Result<NewNetwork> {
    let mut n = NewNetwork {
        name: name.to_owned(),
        ..NewNetwork::default()
    };
    for s in subnets {
        let subnet: net_subnet::Subnet = s
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid argument {s:?} for \"--subnet\" flag: {e}"))?;
        if subnet.is_ipv6() {
            if !ipv6 {
                bail!("invalid subnet {s}: an IPv6 subnet needs --ipv6");
            }
            if n.subnet6.replace(subnet).is_some() {
                bail!("only one IPv6 --subnet is supported");
            }
        } else if n.subnet.replace(subnet).is_some() {
            bail!("only one IPv4 --subnet is supported");
        }
    }
    if ipv6 && n.subnet6.is_none() {
        bail!("--ipv6 needs an IPv6 --subnet");
    }
    for g in gateways {
        let ip: IpAddr = g.parse().map_err(|_| {
            anyhow::anyhow!("invalid argument {g:?} for \"--gateway\" flag: not an IP address")
        })?;
        let slot = if ip.is_ipv6() {
            &mut n.gateway6
        } else {
            &mut n.gateway
        };
        if slot.replace(ip).is_some() {
            bail!("only one --gateway per address family");
        }
    }
    if let Some(r) = ip_range {
        n.ip_range =
            Some(r.parse().map_err(|e| {
                anyhow::anyhow!("invalid argument {r:?} for \"--ip-range\" flag: {e}")
            })?);
    }
    Ok(n)
}

/// The subnet type, named for this module.
mod net_subnet {
    pub(crate) use engine::Subnet;
}

/// `network dns-serve`: runs without an engine of its own (it opens the store per question).
pub(crate) fn serve_dns(command: &super::Command, paths: &engine::Paths) -> Option<i32> {
    match command {
        super::Command::Network(NetworkFamily::Network(NetworkCommand::DnsServe { id })) => {
            Some(engine::dns::serve(paths, id))
        }
        _ => None,
    }
}

pub(crate) fn dispatch(engine: &Engine, family: &NetworkFamily) -> Result<i32> {
    let NetworkFamily::Network(command) = family;
    let mut out = std::io::stdout().lock();
    match command {
        NetworkCommand::Create {
            driver,
            subnet,
            gateway,
            ip_range,
            ipv6,
            internal,
            labels,
            opt,
            name,
        } => {
            if driver != "bridge" {
                bail!("network driver {driver:?} is not available: berth has the bridge driver");
            }
            let mut n = new_network(name, subnet, gateway, ip_range.as_ref(), *ipv6)?;
            n.internal = *internal;
            n.labels = key_values("--label", labels)?;
            n.options = key_values("--opt", opt)?;
            let made = engine.create_network(&n)?;
            writeln!(out, "{}", made.id)?;
        }
        NetworkCommand::Ls {
            quiet,
            no_trunc,
            format,
            filter,
        } => {
            let list = engine.network_list(&engine::NetworkFilter::parse(filter)?)?;
            let id = |s: &str| {
                if *no_trunc {
                    s.to_owned()
                } else {
                    s[..12].to_owned()
                }
            };
            let mut rows = vec![vec![
                "NETWORK ID".into(),
                "NAME".into(),
                "DRIVER".into(),
                "SCOPE".into(),
            ]];
            let mut values = Vec::new();
            for n in &list {
                rows.push(vec![
                    id(&n.id),
                    n.name.clone(),
                    n.driver.into(),
                    "local".into(),
                ]);
                let labels: Vec<String> =
                    n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                values.push(serde_json::json!({
                    "ID": id(&n.id), "Name": n.name, "Driver": n.driver, "Scope": "local",
                    "Internal": n.internal.to_string(), "IPv6": n.ipv6.to_string(),
                    "Labels": labels.join(","),
                    "CreatedAt": n.created.map(super::image::created_at).unwrap_or_default(),
                }));
            }
            if *quiet {
                for r in rows.iter().skip(1) {
                    writeln!(out, "{}", r[0])?;
                }
            } else if let Some(f) = format {
                for v in &values {
                    if f == "json" {
                        writeln!(out, "{v}")?;
                    } else {
                        writeln!(out, "{}", render::template(f, v)?)?;
                    }
                }
            } else {
                render::tabwrite(&mut out, &rows)?;
            }
        }
        NetworkCommand::Inspect { format, networks } => {
            return super::inspect_each(networks, format.as_deref(), &mut out, |n| {
                engine.inspect_network(n)
            });
        }
        NetworkCommand::Rm { networks } => {
            let mut code = 0;
            for n in networks {
                match engine.remove_network(n) {
                    Ok(_) => writeln!(out, "{n}")?,
                    Err(e) => {
                        eprintln!("berth: remove network {n}: {}", runtime::error::chain(&e));
                        code = 1;
                    }
                }
            }
            return Ok(code);
        }
        NetworkCommand::Prune { force } => {
            if !*force {
                eprint!(
                    "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] "
                );
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                if !matches!(line.trim(), "y" | "Y" | "yes") {
                    return Ok(0);
                }
            }
            let gone = engine.prune_networks()?;
            if !gone.is_empty() {
                writeln!(out, "Deleted Networks:")?;
                for g in gone {
                    writeln!(out, "{g}")?;
                }
            }
        }
        NetworkCommand::Connect {
            ip,
            ip6,
            aliases,
            network,
            container,
        } => {
            let req = EndpointRequest {
                ipv4: ip_flag("--ip", ip.as_ref())?,
                ipv6: ip_flag("--ip6", ip6.as_ref())?,
                aliases: aliases.clone(),
            };
            engine
                .connect(network, container, &req)
                .with_context(|| format!("connect {container} to network {network}"))?;
        }
        NetworkCommand::Disconnect {
            network, container, ..
        } => {
            engine
                .disconnect(network, container)
                .with_context(|| format!("disconnect {container} from network {network}"))?;
        }
        // Run by `serve_dns` before an engine is opened.
        NetworkCommand::DnsServe { .. } => {}
    }
    Ok(0)
}

/// `run`/`create` networking flags.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct NetworkFlags {
    /// `bridge` (default), a network name, `host`, `none` or `container:<name|id>`.
    #[arg(long = "network", alias = "net")]
    pub(crate) network: Option<String>,
    /// Publish a port: `[ip:][hostPort:]containerPort[/tcp|udp]`, ranges as `8000-8001:80-81`.
    #[arg(short = 'p', long = "publish")]
    publish: Vec<String>,
    /// Publish every exposed port on a free host port.
    #[arg(short = 'P', long = "publish-all")]
    publish_all: bool,
    /// Expose a port or range without publishing it.
    #[arg(long)]
    expose: Vec<String>,
    /// IPv4 address on the network.
    #[arg(long)]
    ip: Option<String>,
    /// IPv6 address on the network.
    #[arg(long)]
    ip6: Option<String>,
    /// Network-scoped alias.
    #[arg(long = "network-alias")]
    network_alias: Vec<String>,
    /// Custom host-to-IP mapping `host:ip`.
    #[arg(long = "add-host")]
    add_host: Vec<String>,
    /// Custom DNS servers.
    #[arg(long)]
    dns: Vec<String>,
    /// Custom DNS search domains.
    #[arg(long = "dns-search")]
    dns_search: Vec<String>,
    /// DNS options.
    #[arg(long = "dns-option", alias = "dns-opt")]
    dns_option: Vec<String>,
}

fn port_range(flag: &str, spec: &str, s: &str) -> Result<(u16, u16)> {
    let bad = || crate::cli::limits::bad_flag(flag, spec, format!("invalid port {s:?}"));
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u16 = a.parse().ok().filter(|p| *p > 0).ok_or_else(bad)?;
    let b: u16 = b.parse().ok().filter(|p| *p >= a).ok_or_else(bad)?;
    Ok((a, b))
}

/// Parses one `-p` value into `(container "port/proto", binding)` pairs.
pub(crate) fn parse_publish(spec: &str) -> Result<Vec<(String, engine::PortBinding)>> {
    const FLAG: &str = "-p, --publish";
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p),
        None => (spec, "tcp"),
    };
    if !matches!(proto, "tcp" | "udp") {
        return Err(crate::cli::limits::bad_flag(
            FLAG,
            spec,
            "protocol must be tcp or udp",
        ));
    }
    // An IPv6 host address is bracketed: `[2001:db8::1]:8080:80`, `[::]::80`.
    let (ip, rest) = match rest.strip_prefix('[') {
        Some(r) => {
            let (ip, tail) = r.split_once("]:").ok_or_else(|| {
                crate::cli::limits::bad_flag(FLAG, spec, "expected [IPv6]:HOST:CONTAINER")
            })?;
            if ip.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(crate::cli::limits::bad_flag(
                    FLAG,
                    spec,
                    format!("invalid IPv6 address {ip:?}"),
                ));
            }
            (Some(ip), tail)
        }
        None => (None, rest),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, ctr) = match (ip, parts.as_slice()) {
        (None, [c]) => ("", "", *c),
        (None, [h, c]) => ("", *h, *c),
        (None, [i, h, c]) => (*i, *h, *c),
        (Some(i), [h, c]) => (i, *h, *c),
        _ => {
            return Err(crate::cli::limits::bad_flag(
                FLAG,
                spec,
                "too many colons (an IPv6 host address goes in brackets)",
            ));
        }
    };
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(crate::cli::limits::bad_flag(
            FLAG,
            spec,
            format!("invalid IP address {ip:?}"),
        ));
    }
    let (c0, c1) = port_range(FLAG, spec, ctr)?;
    let hosts = if host.is_empty() {
        None
    } else {
        let (h0, h1) = port_range(FLAG, spec, host)?;
        if h1 - h0 != c1 - c0 {
            return Err(crate::cli::limits::bad_flag(
                FLAG,
                spec,
                "host and container port ranges differ in size",
            ));
        }
        Some(h0)
    };
    Ok((c0..=c1)
        .map(|p| {
            let host_port = hosts
                .map(|h0| (h0 + (p - c0)).to_string())
                .unwrap_or_default();
            (
                format!("{p}/{proto}"),
                engine::PortBinding {
                    host_ip: ip.to_owned(),
                    host_port,
                },
            )
        })
        .collect())
}

impl NetworkFlags {
    /// Puts the flags into the request.
    pub(crate) fn apply(
        &self,
        config: &mut engine::Config,
        host: &mut engine::HostConfig,
        endpoint: &mut EndpointRequest,
    ) -> Result<()> {
        host.network_mode = self.network.clone().unwrap_or_default();
        for spec in &self.publish {
            for (key, binding) in parse_publish(spec)? {
                config
                    .exposed_ports
                    .insert(key.clone(), engine::config::Empty {});
                host.port_bindings.entry(key).or_default().push(binding);
            }
        }
        for e in &self.expose {
            let (ports, proto) = e.rsplit_once('/').unwrap_or((e.as_str(), "tcp"));
            let (a, b) = port_range("--expose", e, ports)?;
            for p in a..=b {
                config
                    .exposed_ports
                    .insert(format!("{p}/{proto}"), engine::config::Empty {});
            }
        }
        host.publish_all_ports = self.publish_all;
        for h in &self.add_host {
            let ok = h.split_once(':').is_some_and(|(n, ip)| {
                !n.is_empty() && (ip.parse::<IpAddr>().is_ok() || ip == "host-gateway")
            });
            if !ok {
                return Err(crate::cli::limits::bad_flag(
                    "--add-host",
                    h,
                    "want HOST:IP",
                ));
            }
        }
        host.extra_hosts.clone_from(&self.add_host);
        for d in &self.dns {
            if d.parse::<IpAddr>().is_err() {
                return Err(crate::cli::limits::bad_flag(
                    "--dns",
                    d,
                    "not an IP address",
                ));
            }
        }
        host.dns.clone_from(&self.dns);
        host.dns_search.clone_from(&self.dns_search);
        host.dns_options.clone_from(&self.dns_option);
        endpoint.ipv4 = ip_flag("--ip", self.ip.as_ref())?;
        endpoint.ipv6 = ip_flag("--ip6", self.ip6.as_ref())?;
        endpoint.aliases.clone_from(&self.network_alias);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_specs() {
        let one = parse_publish("8080:80").unwrap();
        assert_eq!(one[0].0, "80/tcp");
        assert_eq!(one[0].1.host_port, "8080");
        let udp = parse_publish("127.0.0.1:5353:53/udp").unwrap();
        assert_eq!(udp[0].0, "53/udp");
        assert_eq!(udp[0].1.host_ip, "127.0.0.1");
        let range = parse_publish("8000-8001:80-81").unwrap();
        assert_eq!(range.len(), 2);
        assert_eq!(range[1].1.host_port, "8001");
        assert_eq!(parse_publish("80").unwrap()[0].1.host_port, "");
        for bad in [
            "80/sctp",
            "x:80",
            "8000-8002:80-81",
            "1.2.3:80:80",
            "0",
            "a:b:c:d",
        ] {
            assert!(parse_publish(bad).is_err(), "{bad}");
        }
    }
}
