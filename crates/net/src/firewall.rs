//! berth's nftables table, `inet berth`: outbound NAT for bridge networks, isolation between
//! networks, no way out of `--internal` ones, and DNAT for published ports.
//!
//! The table is a pure function of the engine's state ([`Ruleset`] -> [`render`]): every change
//! replaces the whole table in one nft transaction (add, delete, add again: atomic, and it works
//! whether or not the table existed). So a crash can never leave half a rule set, and repair is
//! "render what the store says and apply it" — there is no per-rule bookkeeping to lose.
//!
//! ```text
//! table inet berth
//!   raw         (filter, raw)   iifname BR ip saddr NET ip daddr NET ip daddr != GW notrack
//!   prerouting  (nat, dstnat)   fib daddr type local jump publish
//!   output      (nat, -100)     fib daddr type local jump publish     the host's own loopback
//!   publish                     [ip daddr H] tcp|udp dport P dnat ip to C:Q   per published port
//!                               [ip6 daddr H6] ... dnat ip6 to [C6]:Q        and its IPv6
//!   postrouting (nat, srcnat)   ip saddr NET oifname != BR masquerade          not internal
//!                               ip saddr 127.0.0.0/8 oifname BR masquerade     loopback -> DNAT
//!                               ct status dnat ip saddr NET oifname BR masquerade  hairpin
//!   forward     (filter)        ct state established,related accept
//!                               iifname BR oifname { other bridges } drop      isolation
//!                               iifname BR oifname != BR drop                  internal
//!                               oifname BR iifname != BR drop                  internal
//! ```
//! Traffic between two containers of one bridge never needs conntrack (no NAT, no rule looks at
//! it), but where `br_netfilter` is loaded (Docker and Kubernetes load it; some kernels build it
//! in) every bridged frame goes through the IP hooks and conntrack would track each such flow:
//! the `raw` chain marks it `notrack`, sparing a conntrack lookup per frame and an entry per
//! flow in the namespace's conntrack table. Traffic to the gateway stays tracked: a container
//! reaching a published port through a host address (hairpin) is DNATed there, and the
//! masquerade rule for it makes the reply come back through the host, to be un-NATed (without
//! it a sibling would answer the client directly, from the wrong address), with or without
//! `br_netfilter`.
//!
//! Loopback DNAT needs `route_localnet` on the bridge (a 127.0.0.1 source may then leave
//! through it); the masquerade rule gives such packets the bridge's address, so replies come
//! back (see `sysctl.rs`).

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nftables::expr::{
    CT, Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload, PayloadField,
    Prefix, SetItem,
};
use nftables::schema::{Chain, NfCmd, NfListObject, NfObject, Nftables, Rule, Table};
use nftables::stmt::{JumpTarget, Match, NAT, NATFamily, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::error::NetError;
use crate::subnet::Subnet;

/// The table's name (family `inet`).
pub const TABLE: &str = "berth";

/// A transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// `tcp` or `udp`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// One bridge network's part of the rule set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeRules {
    /// The bridge's interface name.
    pub bridge: String,
    /// Its subnets (IPv4 and maybe IPv6).
    pub subnets: Vec<Subnet>,
    /// Its gateway address in each subnet, in the same order.
    pub gateways: Vec<IpAddr>,
    /// `--internal`: no traffic in or out of the bridge but between its own ports.
    pub internal: bool,
}

/// One published port: traffic to the host's `host_port` goes to `addr:port` (IPv4) or
/// `[addr6]:port` (IPv6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRule {
    /// Protocol.
    pub proto: Proto,
    /// Only traffic to this host address (`None` or `0.0.0.0`: any local address of either
    /// family; `::`: any IPv6 one).
    pub host_ip: Option<IpAddr>,
    /// Host port.
    pub host_port: u16,
    /// The container's IPv4 address.
    pub addr: Ipv4Addr,
    /// The container's IPv6 address, if its network has IPv6 (else IPv6 traffic is not
    /// forwarded).
    pub addr6: Option<Ipv6Addr>,
    /// The container's port.
    pub port: u16,
}

impl PortRule {
    /// The destinations this port DNATs to: `(host address to match, if any; the
    /// container's address)`, one per family it serves.
    fn targets(&self) -> Vec<(Option<IpAddr>, IpAddr)> {
        let v4 = IpAddr::V4(self.addr);
        let v6 = self.addr6.map(IpAddr::V6);
        match self.host_ip {
            None => std::iter::once((None, v4))
                .chain(v6.map(|a| (None, a)))
                .collect(),
            Some(h) if h.is_unspecified() && h.is_ipv4() => std::iter::once((None, v4))
                .chain(v6.map(|a| (None, a)))
                .collect(),
            Some(h) if h.is_unspecified() => v6.map(|a| (None, a)).into_iter().collect(),
            Some(h @ IpAddr::V4(_)) => vec![(Some(h), v4)],
            Some(h) => v6.map(|a| (Some(h), a)).into_iter().collect(),
        }
    }
}

/// Everything the table holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Bridge networks.
    pub bridges: Vec<BridgeRules>,
    /// Published ports of running containers.
    pub ports: Vec<PortRule>,
}

fn s(x: &str) -> Cow<'static, str> {
    Cow::Owned(x.to_owned())
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn field(protocol: &str, name: &str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: s(protocol),
            field: s(name),
        },
    )))
}

fn is(left: Expression<'static>, op: Operator, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

fn prefix(net: &Subnet) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(Expression::String(s(&net.addr().to_string()))),
        len: u32::from(net.prefix()),
    }))
}

fn ip_proto(net: &Subnet) -> &'static str {
    if net.is_ipv6() { "ip6" } else { "ip" }
}

fn saddr(net: &Subnet) -> Statement<'static> {
    is(field(ip_proto(net), "saddr"), Operator::EQ, prefix(net))
}

fn ct(key: &str) -> Expression<'static> {
    Expression::Named(NamedExpression::CT(CT {
        key: s(key),
        family: None,
        dir: None,
    }))
}

fn chain(name: &str, hook: Option<(NfChainType, NfHook, i32)>) -> NfObject<'static> {
    NfObject::CmdObject(NfCmd::Add(NfListObject::Chain(Chain {
        family: NfFamily::INet,
        table: s(TABLE),
        name: s(name),
        _type: hook.map(|h| h.0),
        hook: hook.map(|h| h.1),
        prio: hook.map(|h| h.2),
        policy: hook.map(|_| NfChainPolicy::Accept),
        ..Chain::default()
    })))
}

fn rule(chain: &str, expr: Vec<Statement<'static>>) -> NfObject<'static> {
    NfObject::CmdObject(NfCmd::Add(NfListObject::Rule(Rule {
        family: NfFamily::INet,
        table: s(TABLE),
        chain: s(chain),
        expr: Cow::Owned(expr),
        ..Rule::default()
    })))
}

fn table() -> NfListObject<'static> {
    NfListObject::Table(Table {
        family: NfFamily::INet,
        name: s(TABLE),
        handle: None,
    })
}

fn local_daddr() -> Statement<'static> {
    is(
        Expression::Named(NamedExpression::Fib(Fib {
            result: FibResult::Type,
            flags: HashSet::from([FibFlag::Daddr]),
        })),
        Operator::EQ,
        Expression::String(s("local")),
    )
}

/// The nft transaction that replaces the table with `rules`.
#[must_use]
pub fn render(rules: &Ruleset) -> Nftables<'static> {
    let mut o = vec![
        NfObject::CmdObject(NfCmd::Add(table())),
        NfObject::CmdObject(NfCmd::Delete(table())),
        NfObject::CmdObject(NfCmd::Add(table())),
        chain(
            "prerouting",
            Some((NfChainType::NAT, NfHook::Prerouting, -100)),
        ),
        chain("output", Some((NfChainType::NAT, NfHook::Output, -100))),
        chain("publish", None),
        chain(
            "postrouting",
            Some((NfChainType::NAT, NfHook::Postrouting, 100)),
        ),
        chain("forward", Some((NfChainType::Filter, NfHook::Forward, 0))),
        chain("raw", Some((NfChainType::Filter, NfHook::Prerouting, -300))),
    ];
    let jump = || {
        Statement::Jump(JumpTarget {
            target: s("publish"),
        })
    };
    o.push(rule("prerouting", vec![local_daddr(), jump()]));
    o.push(rule("output", vec![local_daddr(), jump()]));
    for p in &rules.ports {
        for (host, to) in p.targets() {
            let (proto, family) = if to.is_ipv6() {
                ("ip6", NATFamily::IP6)
            } else {
                ("ip", NATFamily::IP)
            };
            let mut e = Vec::new();
            if let Some(h) = host {
                e.push(is(
                    field(proto, "daddr"),
                    Operator::EQ,
                    Expression::String(s(&h.to_string())),
                ));
            } else {
                // A family-less match: the DNAT below only applies to this family.
                e.push(is(
                    meta(MetaKey::Nfproto),
                    Operator::EQ,
                    Expression::String(s(if to.is_ipv6() { "ipv6" } else { "ipv4" })),
                ));
            }
            e.push(is(
                field(p.proto.as_str(), "dport"),
                Operator::EQ,
                Expression::Number(u32::from(p.host_port)),
            ));
            e.push(Statement::DNAT(Some(NAT {
                addr: Some(Expression::String(s(&to.to_string()))),
                family: Some(family),
                port: Some(Expression::Number(u32::from(p.port))),
                flags: None,
            })));
            o.push(rule("publish", e));
        }
    }
    let name = |b: &BridgeRules| Expression::String(s(&b.bridge));
    o.push(rule(
        "forward",
        vec![
            is(
                ct("state"),
                Operator::IN,
                Expression::List(vec![
                    Expression::String(s("established")),
                    Expression::String(s("related")),
                ]),
            ),
            Statement::Accept(None),
        ],
    ));
    for b in &rules.bridges {
        for (net, gw) in b.subnets.iter().zip(&b.gateways) {
            let proto = ip_proto(net);
            o.push(rule(
                "raw",
                vec![
                    is(meta(MetaKey::Iifname), Operator::EQ, name(b)),
                    saddr(net),
                    is(field(proto, "daddr"), Operator::EQ, prefix(net)),
                    is(
                        field(proto, "daddr"),
                        Operator::NEQ,
                        Expression::String(s(&gw.to_string())),
                    ),
                    Statement::Notrack,
                ],
            ));
        }
        if b.internal {
            o.push(rule(
                "forward",
                vec![
                    is(meta(MetaKey::Iifname), Operator::EQ, name(b)),
                    is(meta(MetaKey::Oifname), Operator::NEQ, name(b)),
                    Statement::Drop(None),
                ],
            ));
            o.push(rule(
                "forward",
                vec![
                    is(meta(MetaKey::Oifname), Operator::EQ, name(b)),
                    is(meta(MetaKey::Iifname), Operator::NEQ, name(b)),
                    Statement::Drop(None),
                ],
            ));
        } else {
            for net in &b.subnets {
                o.push(rule(
                    "postrouting",
                    vec![
                        saddr(net),
                        is(meta(MetaKey::Oifname), Operator::NEQ, name(b)),
                        Statement::Masquerade(None),
                    ],
                ));
                o.push(rule(
                    "postrouting",
                    vec![
                        is(ct("status"), Operator::IN, Expression::String(s("dnat"))),
                        saddr(net),
                        is(meta(MetaKey::Oifname), Operator::EQ, name(b)),
                        Statement::Masquerade(None),
                    ],
                ));
            }
        }
        let others: Vec<SetItem<'static>> = rules
            .bridges
            .iter()
            .filter(|x| x.bridge != b.bridge)
            .map(|x| SetItem::Element(name(x)))
            .collect();
        if !others.is_empty() {
            o.push(rule(
                "forward",
                vec![
                    is(meta(MetaKey::Iifname), Operator::EQ, name(b)),
                    is(
                        meta(MetaKey::Oifname),
                        Operator::EQ,
                        Expression::Named(NamedExpression::Set(others)),
                    ),
                    Statement::Drop(None),
                ],
            ));
        }
        if !b.internal {
            let lo = crate::subnet::LOOPBACK_V4;
            o.push(rule(
                "postrouting",
                vec![
                    saddr(&lo),
                    is(meta(MetaKey::Oifname), Operator::EQ, name(b)),
                    Statement::Masquerade(None),
                ],
            ));
        }
    }
    Nftables {
        objects: Cow::Owned(o),
    }
}

/// How many rules [`render`] puts in the table for `rules`.
#[must_use]
pub fn rule_count(rules: &Ruleset) -> usize {
    render(rules)
        .objects
        .iter()
        .filter(|o| matches!(o, NfObject::CmdObject(NfCmd::Add(NfListObject::Rule(_)))))
        .count()
}

/// Replaces the table in the calling process's network namespace with `rules`.
///
/// Errors: `nft` is missing or refused the rule set.
pub fn apply(rules: &Ruleset) -> Result<(), NetError> {
    let payload = nft_json(&render(rules)).map_err(nft_err)?;
    nftables::helper::apply_ruleset_raw(
        &payload,
        nftables::helper::DEFAULT_NFT,
        nftables::helper::DEFAULT_ARGS,
    )
    .map(drop)
    .map_err(nft_err)
}

fn nft_err(source: nftables::helper::NftablesError) -> NetError {
    NetError::Nftables { source }
}

/// The JSON `nft -j -f -` reads for `n`. The nftables crate writes the `notrack` statement as
/// a bare string, which nft's JSON parser refuses; nft wants `{"notrack": null}`.
fn nft_json(n: &Nftables) -> Result<String, nftables::helper::NftablesError> {
    fn fix(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(x) if x == "notrack" => {
                *v = serde_json::json!({ "notrack": null });
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(fix),
            serde_json::Value::Object(map) => map.values_mut().for_each(fix),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(n).map_err(nftables::helper::NftablesError::NftInvalidJson)?;
    if let Some(objects) = v.get_mut("nftables") {
        objects
            .as_array_mut()
            .into_iter()
            .flatten()
            .filter_map(|o| o.get_mut("add")?.get_mut("rule")?.get_mut("expr"))
            .for_each(fix);
    }
    Ok(v.to_string())
}

/// Deletes the table (nothing of berth's stays in the namespace's firewall).
///
/// Errors: `nft` is missing or refused.
pub fn remove() -> Result<(), NetError> {
    let n = Nftables {
        objects: Cow::Owned(vec![
            NfObject::CmdObject(NfCmd::Add(table())),
            NfObject::CmdObject(NfCmd::Delete(table())),
        ]),
    };
    nftables::helper::apply_ruleset(&n).map_err(|source| NetError::Nftables { source })
}

/// The number of rules the table holds now (0 when it does not exist): what `system check`
/// compares with what the store wants.
///
/// Errors: `nft` is missing or its output does not parse.
pub fn current_rule_count() -> Result<usize, NetError> {
    let args = ["list", "table", "inet", TABLE];
    // Read as plain JSON: the nftables crate cannot read back every statement nft prints
    // (`{"notrack": null}`).
    match nftables::helper::get_current_ruleset_raw(nftables::helper::DEFAULT_NFT, args) {
        Ok(text) => {
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| nft_err(nftables::helper::NftablesError::NftInvalidJson(e)))?;
            Ok(v.get("nftables")
                .and_then(serde_json::Value::as_array)
                .map_or(0, |objects| {
                    objects.iter().filter(|o| o.get("rule").is_some()).count()
                }))
        }
        Err(nftables::helper::NftablesError::NftFailed { stderr, .. })
            if stderr.contains("No such file") =>
        {
            Ok(0)
        }
        Err(source) => Err(nft_err(source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_replacing_transaction() {
        let rules = Ruleset {
            bridges: vec![
                BridgeRules {
                    bridge: "br-a".into(),
                    subnets: vec!["10.1.0.0/24".parse().unwrap()],
                    gateways: vec!["10.1.0.1".parse().unwrap()],
                    internal: false,
                },
                BridgeRules {
                    bridge: "br-b".into(),
                    subnets: vec!["10.2.0.0/24".parse().unwrap()],
                    gateways: vec!["10.2.0.1".parse().unwrap()],
                    internal: true,
                },
            ],
            ports: vec![
                PortRule {
                    proto: Proto::Udp,
                    host_ip: None,
                    host_port: 5353,
                    addr: Ipv4Addr::new(10, 1, 0, 2),
                    addr6: None,
                    port: 53,
                },
                PortRule {
                    proto: Proto::Tcp,
                    host_ip: Some("2001:db8::1".parse().unwrap()),
                    host_port: 8080,
                    addr: Ipv4Addr::new(10, 1, 0, 3),
                    addr6: Some("fd00::3".parse().unwrap()),
                    port: 80,
                },
            ],
        };
        let json = serde_json::to_value(render(&rules)).unwrap();
        let objs = json["nftables"].as_array().unwrap();
        assert!(objs[0]["add"]["table"].is_object());
        assert!(objs[1]["delete"]["table"].is_object());
        let text = json.to_string();
        assert!(
            text.contains(r#""dnat":{"addr":"10.1.0.2","family":"ip","port":53}"#),
            "{text}"
        );
        assert!(text.contains(r#""protocol":"udp","field":"dport""#));
        // An IPv6 host address: one rule, to the container's IPv6 address.
        assert!(
            text.contains(r#""dnat":{"addr":"fd00::3","family":"ip6","port":80}"#),
            "{text}"
        );
        assert!(!text.contains(r#""addr":"10.1.0.3""#), "{text}");
        assert_eq!(text.matches(r#""dnat":{"#).count(), 2);
        // For the outbound network: one masquerade out, one for hairpin DNAT, one for loopback
        // DNAT; none for internal.
        assert_eq!(text.matches("masquerade").count(), 3);
        assert_eq!(text.matches(r#""drop""#).count(), 4);
        // Traffic within each bridge, the gateway apart, is not tracked, in the form nft reads.
        assert_eq!(text.matches("notrack").count(), 2);
        let payload = nft_json(&render(&rules)).unwrap();
        assert_eq!(
            payload.matches(r#"{"notrack":null}"#).count(),
            2,
            "{payload}"
        );
        assert!(
            text.contains(
                r#"{"left":{"payload":{"protocol":"ip","field":"daddr"}},"right":"10.1.0.1","op":"!="}"#
            ),
            "{text}"
        );
    }

    #[test]
    fn a_published_port_serves_each_family_it_can() {
        let rule = |host: Option<&str>, v6: bool| PortRule {
            proto: Proto::Tcp,
            host_ip: host.map(|h| h.parse().unwrap()),
            host_port: 80,
            addr: Ipv4Addr::new(10, 0, 0, 2),
            addr6: v6.then(|| "fd00::2".parse().unwrap()),
            port: 80,
        };
        let families = |r: PortRule| -> Vec<(bool, bool)> {
            r.targets()
                .iter()
                .map(|(h, to)| (h.is_some(), to.is_ipv6()))
                .collect()
        };
        assert_eq!(families(rule(None, false)), [(false, false)]);
        assert_eq!(families(rule(None, true)), [(false, false), (false, true)]);
        assert_eq!(families(rule(Some("0.0.0.0"), true)).len(), 2);
        assert_eq!(families(rule(Some("::"), true)), [(false, true)]);
        assert!(families(rule(Some("::"), false)).is_empty());
        assert_eq!(families(rule(Some("10.1.1.1"), true)), [(true, false)]);
        assert_eq!(families(rule(Some("2001:db8::1"), true)), [(true, true)]);
    }
}
