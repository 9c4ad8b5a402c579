//! IPv4 and IPv6 subnets (`10.1.0.0/24`, `fd00::/64`) and the address arithmetic IPAM needs.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::error::NetError;

/// A network prefix: an address with its host bits cleared and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet {
    addr: IpAddr,
    prefix: u8,
}

/// 127.0.0.0/8.
pub(crate) const LOOPBACK_V4: Subnet = Subnet {
    addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
    prefix: 8,
};

impl Subnet {
    /// The subnet of `addr/prefix` (host bits are cleared).
    ///
    /// Errors: a prefix longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, NetError> {
        if prefix > bits(addr) {
            return Err(NetError::BadSubnet {
                value: format!("{addr}/{prefix}"),
            });
        }
        let n = to_u128(addr) & mask(bits(addr), prefix);
        Ok(Self {
            addr: from_u128(addr, n),
            prefix,
        })
    }

    /// The network address.
    #[must_use]
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    #[must_use]
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// An IPv6 subnet.
    #[must_use]
    pub fn is_ipv6(&self) -> bool {
        self.addr.is_ipv6()
    }

    /// Whether `ip` lies inside.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv6() == self.is_ipv6()
            && to_u128(ip) & mask(bits(ip), self.prefix) == to_u128(self.addr)
    }

    /// Whether the two share any address.
    #[must_use]
    pub fn overlaps(&self, other: &Subnet) -> bool {
        if self.is_ipv6() != other.is_ipv6() {
            return false;
        }
        let shorter = self.prefix.min(other.prefix);
        let m = mask(bits(self.addr), shorter);
        to_u128(self.addr) & m == to_u128(other.addr) & m
    }

    /// Whether every address of `other` is inside.
    #[must_use]
    pub fn covers(&self, other: &Subnet) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    /// The `n`th address (0 is the network address); `None` past the end.
    #[must_use]
    pub fn nth(&self, n: u128) -> Option<IpAddr> {
        (n < self.size()).then(|| from_u128(self.addr, to_u128(self.addr) + n))
    }

    /// How many addresses (saturating at `u128::MAX` for a `/0` IPv6 prefix).
    #[must_use]
    pub fn size(&self) -> u128 {
        let host_bits = u32::from(bits(self.addr) - self.prefix);
        1_u128.checked_shl(host_bits).unwrap_or(u128::MAX)
    }

    /// The index of `ip` inside (`ip` must be contained).
    fn offset(&self, ip: IpAddr) -> u128 {
        to_u128(ip) - to_u128(self.addr)
    }

    /// The first usable host address: Docker's default gateway.
    #[must_use]
    pub fn first_host(&self) -> Option<IpAddr> {
        self.nth(1)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = NetError;

    /// Parses `ADDR/PREFIX`; the address must be the network address, as dockerd requires
    /// (`10.1.0.1/24` is refused: it names a host, not a network).
    fn from_str(s: &str) -> Result<Self, NetError> {
        let bad = || NetError::BadSubnet {
            value: s.to_owned(),
        };
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        let subnet = Self::new(addr, prefix).map_err(|_| bad())?;
        if subnet.addr != addr {
            return Err(bad());
        }
        Ok(subnet)
    }
}

fn bits(ip: IpAddr) -> u8 {
    if ip.is_ipv6() { 128 } else { 32 }
}

fn mask(bits: u8, prefix: u8) -> u128 {
    let all = if bits == 128 {
        u128::MAX
    } else {
        (1_u128 << bits) - 1
    };
    let host = u32::from(bits - prefix);
    all & !(1_u128.checked_shl(host).map_or(u128::MAX, |v| v - 1))
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_u128(like: IpAddr, n: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX))),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

/// The lowest address of `pool` (default: all of `subnet`) that is a host address of `subnet`
/// (not the network address, not the IPv4 broadcast), not in `taken`. IPAM's one decision; the
/// engine keeps `taken` in its store so that no address is handed out twice.
#[must_use]
pub fn next_free(subnet: &Subnet, pool: Option<&Subnet>, taken: &[IpAddr]) -> Option<IpAddr> {
    let pool = pool.unwrap_or(subnet);
    let last = if subnet.is_ipv6() {
        subnet.size() - 1
    } else {
        subnet.size().saturating_sub(2)
    };
    let start = subnet.offset(pool.addr).max(1);
    let end = (subnet.offset(pool.addr) + pool.size() - 1).min(last);
    let mut n = start;
    while n <= end {
        let ip = subnet.nth(n)?;
        if !taken.contains(&ip) {
            return Some(ip);
        }
        n += 1;
    }
    None
}

/// Docker's address pools for bridge networks, in the order it tries them: 172.17-31.0.0/16,
/// then 192.168.0-240.0/20.
#[must_use]
pub fn default_pools() -> Vec<Subnet> {
    let mut pools: Vec<Subnet> = (17..=31)
        .filter_map(|b| Subnet::new(IpAddr::V4(Ipv4Addr::new(172, b, 0, 0)), 16).ok())
        .collect();
    pools.extend(
        (0..=15)
            .filter_map(|i| Subnet::new(IpAddr::V4(Ipv4Addr::new(192, 168, i * 16, 0)), 20).ok()),
    );
    pools
}

/// The first of `pools` that overlaps none of `taken` (routes of the namespace, other networks).
#[must_use]
pub fn pick_subnet(pools: &[Subnet], taken: &[Subnet]) -> Option<Subnet> {
    pools
        .iter()
        .find(|p| !taken.iter().any(|t| t.prefix() > 0 && t.overlaps(p)))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Subnet {
        x.parse().unwrap()
    }

    fn ip(x: &str) -> IpAddr {
        x.parse().unwrap()
    }

    #[test]
    fn parses_and_refuses() {
        assert_eq!(s("10.1.0.0/24").to_string(), "10.1.0.0/24");
        assert_eq!(s("fd00:1::/64").to_string(), "fd00:1::/64");
        for bad in [
            "10.1.0.1/24",
            "10.1.0.0",
            "10.1.0.0/33",
            "x/8",
            "10.0.0.0/-1",
        ] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn contains_and_overlaps() {
        assert!(s("10.1.0.0/24").contains(ip("10.1.0.200")));
        assert!(!s("10.1.0.0/24").contains(ip("10.1.1.1")));
        assert!(!s("10.1.0.0/24").contains(ip("fd00::1")));
        assert!(s("10.0.0.0/8").overlaps(&s("10.1.0.0/24")));
        assert!(s("10.1.0.0/24").overlaps(&s("10.0.0.0/8")));
        assert!(!s("10.1.0.0/24").overlaps(&s("10.1.1.0/24")));
        assert!(s("10.0.0.0/8").covers(&s("10.1.0.0/24")));
        assert!(!s("10.1.0.0/24").covers(&s("10.0.0.0/8")));
        assert!(s("fd00::/48").overlaps(&s("fd00:0:0:1::/64")));
    }

    #[test]
    fn next_free_skips_network_broadcast_and_taken() {
        let net = s("10.1.0.0/30");
        assert_eq!(next_free(&net, None, &[]), Some(ip("10.1.0.1")));
        assert_eq!(
            next_free(&net, None, &[ip("10.1.0.1")]),
            Some(ip("10.1.0.2"))
        );
        assert_eq!(
            next_free(&net, None, &[ip("10.1.0.1"), ip("10.1.0.2")]),
            None
        );
        let big = s("10.2.0.0/16");
        let pool = s("10.2.5.0/24");
        assert_eq!(next_free(&big, Some(&pool), &[]), Some(ip("10.2.5.0")));
        let v6 = s("fd00::/64");
        assert_eq!(next_free(&v6, None, &[ip("fd00::1")]), Some(ip("fd00::2")));
    }

    #[test]
    fn picks_a_pool_clear_of_routes() {
        let pools = default_pools();
        assert_eq!(pick_subnet(&pools, &[]), Some(s("172.17.0.0/16")));
        let taken = [s("172.16.0.0/12"), s("0.0.0.0/0")];
        assert_eq!(pick_subnet(&pools, &taken), Some(s("192.168.0.0/20")));
    }
}
