//! The files Docker gives every container: `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`,
//! written into the container's bundle directory (they survive a restart, like Docker's under
//! `/var/lib/docker/containers/<id>/`) and bind-mounted over the image's; and the `--init`
//! binary, bind-mounted read-only at `/sbin/docker-init`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::containers::Container;
use crate::engine::{io_err, write_file};
use crate::error::Result;

/// Where `--init` mounts the init, as Docker does.
pub const INIT_PATH: &str = "/sbin/docker-init";

/// The static init (`crates/berth-init`), compiled by the build script.
const INIT_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-init"));

/// Nameservers Docker uses when none of the host's is reachable from the container.
const FALLBACK_NAMESERVERS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// `/etc/hosts` of a container with its own network namespace.
#[must_use]
pub fn hosts(hostname: &str, domainname: &str) -> String {
    let names = if domainname.is_empty() {
        hostname.to_owned()
    } else {
        format!("{hostname}.{domainname} {hostname}")
    };
    format!(
        "127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\n\
         ff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n\
         127.0.1.1\t{names}\n"
    )
}

/// `/etc/resolv.conf` from the host's: for a container with its own network, nameservers on the
/// host's loopback (a local caching resolver) are unreachable and dropped, and Docker's public
/// fallbacks are used when none is left.
#[must_use]
pub fn resolv_conf(host: &str, host_network: bool) -> String {
    if host_network {
        return host.to_owned();
    }
    let is_loopback = |l: &str| {
        let mut f = l.split_whitespace();
        f.next() == Some("nameserver")
            && f.next()
                .is_some_and(|ip| ip.starts_with("127.") || ip == "::1")
    };
    let mut out: String = host
        .lines()
        .filter(|l| !is_loopback(l))
        .map(|l| format!("{l}\n"))
        .collect();
    if !out
        .lines()
        .any(|l| l.split_whitespace().next() == Some("nameserver"))
    {
        for ns in FALLBACK_NAMESERVERS {
            out.push_str(&format!("nameserver {ns}\n"));
        }
    }
    out
}

/// The host's resolver configuration: systemd-resolved's upstream list when `/etc/resolv.conf`
/// only names its local stub, as Docker does.
fn host_resolv_conf() -> String {
    let main = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let only_stub = main
        .lines()
        .filter(|l| l.starts_with("nameserver"))
        .all(|l| l.split_whitespace().nth(1) == Some("127.0.0.53"));
    if only_stub && let Ok(upstream) = std::fs::read_to_string("/run/systemd/resolve/resolv.conf") {
        return upstream;
    }
    main
}

fn bind(destination: &str, source: &Path, read_only: bool) -> Value {
    let mut options = vec!["rbind", "rprivate"];
    if read_only {
        options.push("ro");
    }
    json!({"destination": destination, "type": "bind", "source": source, "options": options})
}

/// Writes the container's `/etc` files into its bundle and returns their mounts, plus the init's
/// when `--init` is on.
///
/// Errors: writing a file failed.
pub(crate) fn mounts(c: &Container, init_dir: &Path) -> Result<Vec<Value>> {
    let host_network = c.host_config.network_mode == "host";
    let hostname_file = c.bundle.join("hostname");
    write_file(
        &hostname_file,
        format!("{}\n", c.config.hostname).as_bytes(),
    )?;
    let hosts_file = c.bundle.join("hosts");
    let hosts_text = if host_network {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        hosts(&c.config.hostname, &c.config.domainname)
    };
    write_file(&hosts_file, hosts_text.as_bytes())?;
    let resolv_file = c.bundle.join("resolv.conf");
    write_file(
        &resolv_file,
        resolv_conf(&host_resolv_conf(), host_network).as_bytes(),
    )?;
    let mut mounts = vec![
        bind("/etc/hostname", &hostname_file, false),
        bind("/etc/hosts", &hosts_file, false),
        bind("/etc/resolv.conf", &resolv_file, false),
    ];
    if c.host_config.init == Some(true) {
        mounts.push(bind(INIT_PATH, &init_binary(init_dir)?, true));
    }
    Ok(mounts)
}

/// The init binary under `dir`, written once per content (its name carries the size and a
/// checksum, so an upgraded berth never mounts a stale one) and never modified afterwards.
fn init_binary(dir: &Path) -> Result<PathBuf> {
    let sum = INIT_BINARY.iter().fold(0_u64, |h, b| {
        h.rotate_left(5) ^ u64::from(*b).wrapping_mul(0x100_0000_01b3)
    });
    let path = dir.join(format!("berth-init-{}-{sum:016x}", INIT_BINARY.len()));
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == INIT_BINARY.len() as u64) {
        return Ok(path);
    }
    let tmp = dir.join(format!(".berth-init-{}", std::process::id()));
    write_file(&tmp, INIT_BINARY)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o555))
            .map_err(io_err("chmod", &tmp))?;
    }
    std::fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_names_the_container() {
        let h = hosts("abc123", "");
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("127.0.1.1\tabc123\n"));
        assert!(hosts("web", "example.org").ends_with("127.0.1.1\tweb.example.org web\n"));
    }

    #[test]
    fn resolv_conf_drops_loopback_nameservers() {
        let host = "search lan\nnameserver 127.0.0.53\nnameserver 10.0.0.1\noptions edns0\n";
        assert_eq!(
            resolv_conf(host, false),
            "search lan\nnameserver 10.0.0.1\noptions edns0\n"
        );
        assert_eq!(resolv_conf(host, true), host);
        assert_eq!(
            resolv_conf("nameserver 127.0.0.1\n", false),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
    }

    #[test]
    fn init_is_static() {
        assert!(
            testutil::is_static_elf(INIT_BINARY),
            "berth-init must run in images without a libc"
        );
    }
}
