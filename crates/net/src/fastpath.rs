//! The bridge's fast path: a frame from one container to another on the same network skips the
//! bridge and goes straight into the other container's namespace.
//!
//! Each host-side port of a network's bridge gets a small tc ingress program (`berth_fwd`). It
//! looks the frame's destination MAC up in a hash map shared by the network's ports (MAC of a
//! container's interface -> index of that interface's host-side port) and, on a hit, hands the
//! frame to `bpf_redirect_peer`: the kernel delivers it to the port's veth peer, inside the
//! other container's namespace, as if it had arrived there, with no bridge, no second veth hop
//! and no netfilter pass. Everything else (broadcasts, the gateway's MAC, unknown MACs) goes on
//! to the bridge as before, so the path is only ever a shortcut: a port without the program, or
//! a MAC missing from the map, still works through the bridge. Frames between containers on one
//! bridge are what the bridge would have switched port to port anyway; the firewall's rules for
//! a network (`firewall`) concern its gateway and other bridges, which the program never takes.
//!
//! The map needs no record of its own: it is found from the programs already on the bridge's
//! ports (filter -> program id -> map id) and lives as long as one of them does. Entries whose
//! port has gone are dropped whenever a port joins.
//!
//! Needs a kernel with `bpf_redirect_peer` (5.10) and tc's `bpf` classifier; where loading the
//! program fails, [`Netlink::join_fast_path`] says so and the bridge carries everything.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use ebpf::insn::{Insn, R0, R1, R2, R3, R4, R5, R10};
use ebpf::sys::{self as bpf, Map};

use futures_util::TryStreamExt;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::tc::{
    TcAttribute, TcBpfFlags, TcFilterBpf, TcFilterBpfOption, TcHandle, TcMessage, TcOption,
};
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};

use crate::error::NetError;
use crate::link::{Netlink, errno};

/// The name of the program and of its map (the kernel keeps 15 bytes of either).
const NAME: &str = "berth_fwd";
/// A key: the 6 bytes of a MAC and two of padding.
const KEY: usize = 8;
/// A value: a host-side port's interface index.
const VALUE: usize = 4;
/// Most containers a network's map holds (allocated as they come).
const MAX_ENTRIES: u32 = 65_536;
/// `BPF_FUNC_map_lookup_elem`.
const FUNC_MAP_LOOKUP: i32 = 1;
/// `BPF_FUNC_redirect_peer`.
const FUNC_REDIRECT_PEER: i32 = 155;
/// `ETH_P_ALL`, as tc wants it: in network byte order.
const ETH_P_ALL_BE: u16 = 0x0003_u16.to_be();
const EEXIST: i32 = 17;

/// The program, for the map whose descriptor is `map`. `r1` is the `__sk_buff`; its `data`
/// and `data_end` are at offsets 76 and 80.
fn program(map: i32) -> Vec<Insn> {
    let [map_lo, map_hi] = Insn::load_map_fd(R1, map);
    vec![
        Insn::load_u32(R2, R1, 76), // r2 = skb->data
        Insn::load_u32(R3, R1, 80), // r3 = skb->data_end
        Insn::mov64_reg(R4, R2),
        Insn::add64_imm(R4, 6),
        Insn::jgt_reg(R4, R3, 15), // fewer than 6 bytes: to the bridge
        // The key, on the stack: the destination MAC and two zero bytes.
        Insn::load_u32(R5, R2, 0),
        Insn::store_u32(R10, -8, R5),
        Insn::load_u16(R5, R2, 4),
        Insn::store_u16(R10, -4, R5),
        Insn::store_u16_imm(R10, -2, 0),
        map_lo,
        map_hi,
        Insn::mov64_reg(R2, R10),
        Insn::add64_imm(R2, -8),
        Insn::call(FUNC_MAP_LOOKUP),
        Insn::jeq_imm(R0, 0, 4), // not a container of this network: to the bridge
        Insn::load_u32(R1, R0, 0), // the port's index
        Insn::mov64_imm(R2, 0),
        Insn::call(FUNC_REDIRECT_PEER),
        Insn::exit(),
        Insn::mov64_imm(R0, -1), // TC_ACT_UNSPEC: on to the bridge
        Insn::exit(),
    ]
}

fn key(mac: [u8; 6]) -> [u8; KEY] {
    let mut k = [0; KEY];
    k[..6].copy_from_slice(&mac);
    k
}

fn bpf_err(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> NetError {
    NetError::io(action)
}

impl Netlink {
    /// Puts the host-side port `port` of `bridge`, whose veth peer has the hardware address
    /// `mac`, on the bridge's fast path: frames from its container to another container on
    /// the bridge skip the bridge, and frames from those to it do too.
    ///
    /// Callers serialize joins of one bridge (two first joins at once would make two maps,
    /// each container then reaching only half of the others directly, the rest through the
    /// bridge).
    ///
    /// Errors: the kernel cannot load the program (no BPF, no `bpf_redirect_peer`) or refused
    /// a step. The port works through the bridge all the same.
    pub fn join_fast_path(&self, bridge: &str, port: &str, mac: [u8; 6]) -> Result<(), NetError> {
        let bridge_index = self.index(bridge)?;
        let port_index = self.index(port)?;
        let ports: Vec<u32> = self
            .links()?
            .into_iter()
            .filter(|l| l.master == Some(bridge_index))
            .map(|l| l.index)
            .collect();
        let map = match self.bridge_map(&ports, port_index) {
            Some(m) => m,
            None => Map::create(
                bpf::MAP_TYPE_HASH,
                KEY as u32,
                VALUE as u32,
                MAX_ENTRIES,
                bpf::F_NO_PREALLOC,
                NAME,
            )
            .map_err(bpf_err(format!("make the fast path map of {bridge}")))?,
        };
        let prog = bpf::prog_load(
            bpf::PROG_TYPE_SCHED_CLS,
            &program(map.as_fd().as_raw_fd()),
            NAME,
            c"GPL",
        )
        .map_err(|(e, log)| {
            let why = log
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            NetError::io(format!("load the fast path program: {why}"))(e)
        })?;
        self.attach_ingress(port_index, port, &prog)?;
        map.update(&key(mac), &port_index.to_ne_bytes())
            .map_err(bpf_err(format!("add {port} to the fast path of {bridge}")))?;
        for k in map.keys().unwrap_or_default() {
            let gone = match map.lookup(&k) {
                Ok(Some(v)) => v
                    .try_into()
                    .is_ok_and(|v: [u8; VALUE]| !ports.contains(&u32::from_ne_bytes(v))),
                _ => false,
            };
            if gone && let Err(e) = map.delete(&k) {
                tracing::debug!("drop a stale fast path entry of {bridge}: {e}");
            }
        }
        Ok(())
    }

    /// Whether the port `port` carries the fast path program (for `inspect` and tests).
    ///
    /// Errors: the port does not exist or its filters cannot be listed.
    pub fn on_fast_path(&self, port: &str) -> Result<bool, NetError> {
        let index = self.index(port)?;
        Ok(self.fast_path_prog_ids(index)?.next().is_some())
    }

    /// The map of the programs on `ports` (other than `except`), if any carries one.
    fn bridge_map(&self, ports: &[u32], except: u32) -> Option<Map> {
        for &p in ports.iter().filter(|&&p| p != except) {
            let Ok(ids) = self.fast_path_prog_ids(p) else {
                continue;
            };
            for id in ids {
                let found = bpf::prog_by_id(id)
                    .and_then(|prog| bpf::prog_info(prog.as_fd()))
                    .ok()
                    .filter(|info| info.name == NAME)
                    .and_then(|info| info.map_ids.first().copied())
                    .and_then(|m| Map::by_id(m).ok())
                    .filter(|map| {
                        let i = map.info();
                        i.name == NAME
                            && i.kind == bpf::MAP_TYPE_HASH
                            && i.key_size as usize == KEY
                            && i.value_size as usize == VALUE
                    });
                if found.is_some() {
                    return found;
                }
            }
        }
        None
    }

    /// The ids of the `berth_fwd` programs among the ingress filters of the link `index`.
    fn fast_path_prog_ids(&self, index: u32) -> Result<impl Iterator<Item = u32>, NetError> {
        let msgs = self.rt.block_on(async {
            let mut out = Vec::new();
            let mut dump = self
                .handle
                .traffic_filter(index as i32)
                .get()
                .ingress()
                .execute();
            loop {
                match dump.try_next().await {
                    Ok(Some(m)) => out.push(m),
                    Ok(None) => break,
                    // No ingress qdisc: no filters.
                    Err(e) if matches!(errno(&e), Some(22 | 2)) => break,
                    Err(e) => {
                        return Err(NetError::netlink(format!("list filters of link {index}"))(
                            e,
                        ));
                    }
                }
            }
            Ok(out)
        })?;
        Ok(msgs.into_iter().filter_map(|m| {
            let mut named = false;
            let mut id = None;
            for a in &m.attributes {
                if let TcAttribute::Options(opts) = a {
                    for o in opts {
                        match o {
                            TcOption::Bpf(TcFilterBpfOption::ProgName(n)) => {
                                named = n == NAME;
                            }
                            TcOption::Bpf(TcFilterBpfOption::ProgId(i)) => id = Some(*i),
                            _ => {}
                        }
                    }
                }
            }
            id.filter(|_| named)
        }))
    }

    /// An ingress qdisc on the link `index` (if it has none) and `prog` as its direct-action
    /// `bpf` filter.
    fn attach_ingress(&self, index: u32, port: &str, prog: &OwnedFd) -> Result<(), NetError> {
        let ifindex = index as i32;
        self.rt.block_on(async {
            match self.handle.qdisc().add(ifindex).ingress().execute().await {
                Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
                r => r.map_err(NetError::netlink(format!("add an ingress qdisc to {port}"))),
            }
        })?;
        let mut msg = TcMessage::with_index(ifindex);
        msg.header.parent = TcHandle {
            major: 0xffff,
            minor: TcHandle::MIN_INGRESS,
        };
        msg.header.info = u32::from(TcHandle {
            major: 1,
            minor: ETH_P_ALL_BE,
        });
        msg.attributes
            .push(TcAttribute::Kind(TcFilterBpf::KIND.to_owned()));
        msg.attributes.push(TcAttribute::Options(vec![
            TcOption::Bpf(TcFilterBpfOption::ProgFd(prog.as_raw_fd() as u32)),
            TcOption::Bpf(TcFilterBpfOption::ProgName(NAME.to_owned())),
            TcOption::Bpf(TcFilterBpfOption::Flags(TcBpfFlags::DirectAction)),
        ]));
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::NewTrafficFilter(msg));
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
        let mut handle = self.handle.clone();
        self.rt.block_on(async {
            let mut resp = handle
                .request(req)
                .map_err(NetError::netlink(format!("attach the fast path to {port}")))?;
            while let Some(m) = futures_util::StreamExt::next(&mut resp).await {
                if let NetlinkPayload::Error(e) = m.payload
                    && e.code.is_some()
                {
                    return Err(
                        NetError::netlink(format!("attach the fast path to {port}"))(
                            rtnetlink::Error::NetlinkError(e),
                        ),
                    );
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_programs_jumps_land_on_the_bridge_exit() {
        let p = program(3);
        // Both conditional jumps go to `r0 = -1; exit`.
        let mut jumps = 0;
        for (at, insn) in p.iter().enumerate() {
            if insn.is_cond_jump() {
                jumps += 1;
                let to = usize::try_from(at as i64 + 1 + i64::from(insn.off)).unwrap_or(0);
                assert_eq!(
                    &p[to..],
                    &[Insn::mov64_imm(R0, -1), Insn::exit()],
                    "jump at {at}"
                );
            }
        }
        assert_eq!(jumps, 2);
    }

    #[test]
    fn a_key_is_the_mac_and_two_zero_bytes() {
        assert_eq!(key([2, 0x42, 10, 1, 0, 5]), [2, 0x42, 10, 1, 0, 5, 0, 0]);
    }
}
