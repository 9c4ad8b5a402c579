//! UDP probes for the network tests (busybox's `nc` has no UDP): an echo server and a client
//! that sends one datagram and prints the reply.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use crate::{Fail, Res, flush, kv};

fn port(s: &str) -> Result<u16, Fail> {
    s.parse()
        .map_err(|_| Fail::Usage(format!("not a port: {s}")))
}

/// Answers every datagram on `port` (all addresses) with `echo:` and its payload, forever.
pub(crate) fn echo(p: &str) -> Res {
    let sock = UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], port(p)?)))?;
    kv("listening", p);
    flush();
    let mut buf = [0_u8; 2048];
    loop {
        let (n, from) = sock.recv_from(&mut buf)?;
        let mut reply = b"echo:".to_vec();
        reply.extend_from_slice(&buf[..n]);
        sock.send_to(&reply, from)?;
    }
}

/// Sends `msg` to `ip:port` and prints `reply=` (waits up to 3 s).
pub(crate) fn send(ip: &str, p: &str, msg: &str) -> Res {
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| Fail::Usage(format!("not an IP address: {ip}")))?;
    let any: SocketAddr = if ip.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0_u16; 8], 0).into()
    };
    let sock = UdpSocket::bind(any)?;
    sock.set_read_timeout(Some(Duration::from_secs(3)))?;
    sock.send_to(msg.as_bytes(), SocketAddr::new(ip, port(p)?))?;
    let mut buf = [0_u8; 2048];
    let n = sock.recv(&mut buf)?;
    kv("reply", String::from_utf8_lossy(&buf[..n]));
    Ok(())
}
