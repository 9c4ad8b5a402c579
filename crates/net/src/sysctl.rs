//! The few sysctls bridge networking needs, written in the calling thread's network namespace
//! (all of them are per namespace).

use std::path::PathBuf;

use crate::error::NetError;

fn write(path: &str, value: &str) -> Result<(), NetError> {
    let path = PathBuf::from(path);
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(&path, value).map_err(|source| NetError::Sysctl {
        path,
        value: value.to_owned(),
        source,
    })
}

/// Forwarding on (IPv4, and IPv6 when `ipv6`): containers reach beyond their bridge, and
/// published ports reach containers.
///
/// Errors: a write failed.
pub fn enable_forwarding(ipv6: bool) -> Result<(), NetError> {
    write("/proc/sys/net/ipv4/ip_forward", "1")?;
    if ipv6 {
        write("/proc/sys/net/ipv6/conf/all/forwarding", "1")?;
    }
    Ok(())
}

/// `route_localnet` on `bridge`: packets from 127.0.0.1 DNAT'ed to a container may leave
/// through it (then masqueraded), so a published port answers on the host's loopback.
///
/// Errors: the write failed.
pub fn route_localnet(bridge: &str) -> Result<(), NetError> {
    write(
        &format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet"),
        "1",
    )
}
