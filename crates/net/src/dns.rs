//! A tiny DNS server for one network: answers A and AAAA queries for the names a lookup
//! function knows (container names and aliases on that network) and relays every other query
//! to upstream resolvers unchanged. Only what a container's stub resolver sends is handled:
//! one question per message, over UDP (RFC 1035 §4).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

/// Query type A.
pub const TYPE_A: u16 = 1;
/// Query type AAAA.
pub const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
/// Seconds a client may cache an answer: short, since containers come and go.
const TTL: u32 = 10;
/// How long a relayed query waits for an upstream answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);

/// The one question of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The name asked for, lowercase, without the trailing dot.
    pub name: String,
    /// Query type.
    pub qtype: u16,
    /// Query class.
    pub qclass: u16,
    /// Where the question section ends in the message.
    end: usize,
}

/// Parses the question of a standard query; `None` for anything else (responses, several
/// questions, compression in the question, truncated messages).
#[must_use]
pub fn parse_query(msg: &[u8]) -> Option<Question> {
    if msg.len() < 12 {
        return None;
    }
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
    if flags & 0x8000 != 0 || (flags >> 11) & 0xf != 0 || qdcount != 1 {
        return None;
    }
    let mut i = 12;
    let mut labels: Vec<String> = Vec::new();
    loop {
        let len = usize::from(*msg.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        let label = msg.get(i..i + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*msg.get(i)?, *msg.get(i + 1)?]);
    let qclass = u16::from_be_bytes([*msg.get(i + 2)?, *msg.get(i + 3)?]);
    Some(Question {
        name: labels.join("."),
        qtype,
        qclass,
        end: i + 4,
    })
}

/// The answer to `query` (whose question is `q`) with `addrs` (those of the asked type are
/// used): authoritative, NOERROR, no additional sections.
#[must_use]
pub fn answer(query: &[u8], q: &Question, addrs: &[IpAddr]) -> Vec<u8> {
    let records: Vec<&IpAddr> = addrs
        .iter()
        .filter(|a| match q.qtype {
            TYPE_A => a.is_ipv4(),
            TYPE_AAAA => a.is_ipv6(),
            _ => false,
        })
        .collect();
    let mut out = Vec::with_capacity(q.end + records.len() * 28);
    out.extend_from_slice(&query[..2]);
    // QR, the query's opcode and RD, AA, RA; RCODE 0.
    let rd = query[2] & 0x01;
    out.push(0x84 | rd);
    out.push(0x80);
    out.extend_from_slice(&1_u16.to_be_bytes());
    out.extend_from_slice(&u16::try_from(records.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&query[12..q.end]);
    for a in records {
        out.extend_from_slice(&[0xc0, 0x0c]);
        out.extend_from_slice(&q.qtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        match a {
            IpAddr::V4(v4) => {
                out.extend_from_slice(&4_u16.to_be_bytes());
                out.extend_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                out.extend_from_slice(&16_u16.to_be_bytes());
                out.extend_from_slice(&v6.octets());
            }
        }
    }
    out
}

/// A SERVFAIL reply to `query` (no resolver could answer it).
#[must_use]
pub fn servfail(query: &[u8], q: &Question) -> Vec<u8> {
    let mut out = answer(query, q, &[]);
    out[3] = 0x82;
    out
}

/// What the server should do with one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// A name of the network: answer with these addresses.
    Local(Vec<IpAddr>),
    /// Someone else's name: relay to these resolvers, in order.
    Forward(Vec<SocketAddr>),
}

/// Serves queries on `sock` until `keep_going` (called about every `tick`) says stop. `resolve`
/// gets the question and the client's address.
///
/// Errors: the socket failed.
pub fn serve(
    sock: &UdpSocket,
    tick: Duration,
    resolve: &dyn Fn(&Question, IpAddr) -> Resolution,
    keep_going: &mut dyn FnMut() -> bool,
) -> std::io::Result<()> {
    sock.set_read_timeout(Some(tick))?;
    let mut buf = [0_u8; 1500];
    std::thread::scope(|scope| {
        loop {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let query = buf[..n].to_vec();
                    let Some(q) = parse_query(&query) else {
                        continue;
                    };
                    match resolve(&q, from.ip()) {
                        Resolution::Local(addrs) => {
                            let _ = sock.send_to(&answer(&query, &q, &addrs), from);
                        }
                        Resolution::Forward(upstream) => {
                            // Relayed on its own thread: a slow upstream never stalls the
                            // network's own names.
                            scope.spawn(move || {
                                let reply = relay(&query, &upstream)
                                    .unwrap_or_else(|| servfail(&query, &q));
                                let _ = sock.send_to(&reply, from);
                            });
                        }
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    if !keep_going() {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
    })
}

fn relay(query: &[u8], upstream: &[SocketAddr]) -> Option<Vec<u8>> {
    for server in upstream {
        let bind: SocketAddr = if server.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0_u16; 8], 0).into()
        };
        let Ok(s) = UdpSocket::bind(bind) else {
            continue;
        };
        if s.set_read_timeout(Some(UPSTREAM_TIMEOUT)).is_err() || s.connect(server).is_err() {
            continue;
        }
        if s.send(query).is_err() {
            continue;
        }
        let mut buf = vec![0_u8; 4096];
        if let Ok(n) = s.recv(&mut buf)
            && n >= 2
            && buf[..2] == query[..2]
        {
            buf.truncate(n);
            return Some(buf);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            m.push(u8::try_from(l.len()).unwrap());
            m.extend_from_slice(l.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&1_u16.to_be_bytes());
        m
    }

    #[test]
    fn parses_a_query_and_answers_it() {
        let m = query("Web.Example", TYPE_A);
        let q = parse_query(&m).unwrap();
        assert_eq!(q.name, "web.example");
        assert_eq!(q.qtype, TYPE_A);
        let addrs: Vec<IpAddr> = vec!["10.1.0.2".parse().unwrap(), "fd00::2".parse().unwrap()];
        let a = answer(&m, &q, &addrs);
        assert_eq!(&a[..2], &[0x12, 0x34]);
        assert_eq!(a[2] & 0x80, 0x80, "a response");
        assert_eq!(u16::from_be_bytes([a[6], a[7]]), 1, "only the A record");
        assert_eq!(&a[a.len() - 4..], &[10, 1, 0, 2]);
        let q6 = parse_query(&query("web", TYPE_AAAA)).unwrap();
        let a6 = answer(&query("web", TYPE_AAAA), &q6, &addrs);
        assert_eq!(a6[a6.len() - 1], 2);
        assert_eq!(servfail(&m, &q)[3] & 0x0f, 2);
    }

    #[test]
    fn survives_garbage_and_truncation() {
        let good = query("some.name.example", TYPE_AAAA);
        for n in 0..good.len() {
            if let Some(q) = parse_query(&good[..n]) {
                let _ = answer(&good[..n], &q, &[]);
            }
        }
        // A fixed pseudo-random walk over flipped bytes (the fuzz target dns_query goes further).
        let mut x: u32 = 0x1234_5678;
        for _ in 0..20_000 {
            let mut m = good.clone();
            for _ in 0..3 {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let i = (x >> 8) as usize % m.len();
                m[i] = (x >> 24) as u8;
            }
            if let Some(q) = parse_query(&m) {
                let a = answer(&m, &q, &["10.0.0.1".parse().unwrap()]);
                assert_eq!(a[..2], m[..2]);
            }
        }
    }

    #[test]
    fn refuses_what_is_not_a_query() {
        assert!(parse_query(&[0; 5]).is_none());
        let mut m = query("web", TYPE_A);
        m[2] |= 0x80;
        assert!(parse_query(&m).is_none());
        let mut t = query("web", TYPE_A);
        t.truncate(t.len() - 3);
        assert!(parse_query(&t).is_none());
    }
}
