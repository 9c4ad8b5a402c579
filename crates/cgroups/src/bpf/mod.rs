//! The cgroup v2 device filter: OCI device rules compiled by hand into a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program.
//!
//! The program sees `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }` where
//! `access_type` is `(access << 16) | type` and returns 1 to allow, 0 to deny. Later OCI rules
//! override earlier ones, so rules are emitted last-first and the first match decides; nothing
//! matching means deny (the v1 default after `a` is written to `devices.deny`).
//!
//! An allow rule matches when the requested access is a subset of the rule's; a deny rule
//! matches when they share any bit (a request for `rw` on a device denied `w` is refused).

use ebpf::insn::{Insn, R0, R1, R2, R3, R4, R5};

use crate::convert::{ACCESS_ALL, DeviceClass, DeviceRule};

/// `BPF_DEVCG_DEV_BLOCK`
const DEV_BLOCK: i32 = 1;
/// `BPF_DEVCG_DEV_CHAR`
const DEV_CHAR: i32 = 2;

/// Compiles rules (OCI order) into a device filter program.
pub(crate) fn device_filter(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut prog = vec![
        // r2 = device type, r3 = requested access, r4 = major, r5 = minor.
        Insn::load_u32(R2, R1, 0),
        Insn::and32_imm(R2, 0xffff),
        Insn::load_u32(R3, R1, 0),
        Insn::rsh32_imm(R3, 16),
        Insn::load_u32(R4, R1, 4),
        Insn::load_u32(R5, R1, 8),
    ];
    for rule in rules.iter().rev() {
        let block = rule_block(rule);
        let unconditional = block.len() == 2;
        prog.extend(block);
        if unconditional {
            // Everything after would be unreachable, which the verifier rejects.
            return prog;
        }
    }
    prog.push(Insn::mov64_imm(R0, 0));
    prog.push(Insn::exit());
    prog
}

/// One rule: tests that fall through to "match", each jumping past the block on mismatch, then
/// `r0 = verdict; exit`.
fn rule_block(rule: &DeviceRule) -> Vec<Insn> {
    let mut b = Vec::new();
    match rule.class {
        DeviceClass::All => {}
        DeviceClass::Block => b.push(Insn::jne_imm(R2, DEV_BLOCK, 0)),
        DeviceClass::Char => b.push(Insn::jne_imm(R2, DEV_CHAR, 0)),
    }
    if rule.access != ACCESS_ALL {
        b.push(Insn::mov32_reg(R1, R3));
        if rule.allow {
            // Any requested bit outside the rule: no match.
            b.push(Insn::and32_imm(R1, i32::from(!rule.access & ACCESS_ALL)));
            b.push(Insn::jne_imm(R1, 0, 0));
        } else {
            // No requested bit inside the rule: no match.
            b.push(Insn::and32_imm(R1, i32::from(rule.access)));
            b.push(Insn::jeq_imm(R1, 0, 0));
        }
    }
    if let Some(major) = rule.major {
        b.push(Insn::jne_imm(R4, major.cast_signed(), 0));
    }
    if let Some(minor) = rule.minor {
        b.push(Insn::jne_imm(R5, minor.cast_signed(), 0));
    }
    b.push(Insn::mov64_imm(R0, i32::from(rule.allow)));
    b.push(Insn::exit());
    // Point every mismatch jump at the first instruction after the block.
    let len = b.len();
    for (i, insn) in b.iter_mut().enumerate() {
        if insn.is_cond_jump() {
            insn.off = i16::try_from(len - i - 1).unwrap_or(i16::MAX);
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::{ACCESS_MKNOD, ACCESS_READ, ACCESS_WRITE};

    fn rule(
        allow: bool,
        class: DeviceClass,
        major: Option<u32>,
        minor: Option<u32>,
        access: u8,
    ) -> DeviceRule {
        DeviceRule {
            allow,
            class,
            major,
            minor,
            access,
        }
    }

    /// Runs a device filter the way the kernel would, for the handful of opcodes we emit.
    fn run(prog: &[Insn], dev_type: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(access << 16) | dev_type, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        for _ in 0..10_000 {
            let i = prog[pc];
            let (d, s) = (usize::from(i.dst), usize::from(i.src));
            pc += 1;
            match i.code {
                0x61 => r[d] = u64::from(ctx[usize::try_from(i.off).unwrap_or(0) / 4]),
                0x54 => r[d] = (r[d] as u32 & i.imm.cast_unsigned()) as u64,
                0x74 => r[d] = ((r[d] as u32) >> i.imm) as u64,
                0xbc => r[d] = r[s] as u32 as u64,
                0xb7 => r[d] = i64::from(i.imm).cast_unsigned(),
                0x55 | 0x15 => {
                    let eq = r[d] == i64::from(i.imm).cast_unsigned();
                    if eq == (i.code == 0x15) {
                        pc += usize::try_from(i.off).unwrap_or(0);
                    }
                }
                0x95 => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
        panic!("program did not exit");
    }

    const R: u32 = ACCESS_READ as u32;
    const W: u32 = ACCESS_WRITE as u32;
    const M: u32 = ACCESS_MKNOD as u32;
    const C: u32 = DEV_CHAR as u32;
    const B: u32 = DEV_BLOCK as u32;

    #[test]
    fn empty_rules_deny_everything() {
        let p = device_filter(&[]);
        assert_eq!(p.len(), 8);
        assert_eq!(p[6], Insn::mov64_imm(R0, 0));
        assert_eq!(p[7], Insn::exit());
        assert_eq!(run(&p, C, R, 1, 3), 0);
    }

    #[test]
    fn allow_one_char_device_exact_sequence() {
        let p = device_filter(&[
            rule(false, DeviceClass::All, None, None, ACCESS_ALL),
            rule(true, DeviceClass::Char, Some(1), Some(3), ACCESS_ALL),
        ]);
        // prologue, then the allow block (type, major, minor, verdict), then deny-all.
        assert_eq!(
            &p[6..],
            &[
                Insn::jne_imm(R2, DEV_CHAR, 4),
                Insn::jne_imm(R4, 1, 3),
                Insn::jne_imm(R5, 3, 2),
                Insn::mov64_imm(R0, 1),
                Insn::exit(),
                Insn::mov64_imm(R0, 0),
                Insn::exit(),
            ]
        );
        assert_eq!(run(&p, C, R | W, 1, 3), 1);
        assert_eq!(run(&p, C, R, 1, 5), 0);
        assert_eq!(run(&p, B, R, 1, 3), 0);
    }

    #[test]
    fn allow_all_stops_emission() {
        let p = device_filter(&[
            rule(true, DeviceClass::Char, Some(1), Some(3), ACCESS_ALL),
            rule(true, DeviceClass::All, None, None, ACCESS_ALL),
        ]);
        assert_eq!(&p[6..], &[Insn::mov64_imm(R0, 1), Insn::exit()]);
        assert_eq!(run(&p, B, M, 8, 0), 1);
    }

    #[test]
    fn wildcards_and_partial_access() {
        let p = device_filter(&[
            rule(false, DeviceClass::All, None, None, ACCESS_ALL),
            // all pty slaves, read+write only
            rule(
                true,
                DeviceClass::Char,
                Some(136),
                None,
                ACCESS_READ | ACCESS_WRITE,
            ),
            // any block device, mknod only
            rule(true, DeviceClass::Block, None, None, ACCESS_MKNOD),
        ]);
        assert_eq!(run(&p, C, R | W, 136, 7), 1);
        assert_eq!(run(&p, C, M, 136, 7), 0);
        assert_eq!(run(&p, C, R, 137, 7), 0);
        assert_eq!(run(&p, B, M, 8, 1), 1);
        assert_eq!(run(&p, B, R, 8, 1), 0);
        // the access test of an allow rule masks with the complement of its bits
        assert!(p.contains(&Insn::and32_imm(R1, i32::from(ACCESS_MKNOD))));
    }

    #[test]
    fn later_deny_overrides_earlier_allow() {
        let p = device_filter(&[
            rule(true, DeviceClass::All, None, None, ACCESS_ALL),
            rule(false, DeviceClass::Char, Some(1), Some(5), ACCESS_WRITE),
        ]);
        assert_eq!(run(&p, C, R, 1, 5), 1);
        assert_eq!(run(&p, C, R | W, 1, 5), 0);
        assert_eq!(run(&p, C, W, 1, 3), 1);
        // the deny block is emitted first and uses "jump if no shared bit"
        assert_eq!(p[7], Insn::mov32_reg(R1, R3));
        assert_eq!(p[8], Insn::and32_imm(R1, i32::from(ACCESS_WRITE)));
        assert!(matches!(p[9], Insn { code: 0x15, .. }));
    }
}
