//! A minimal eBPF instruction emitter: just the instructions a device filter needs.
//! Encodings from the kernel's `Documentation/bpf/standardization/instruction-set.rst`.

/// A register, r0..r10.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reg(pub(crate) u8);

/// r0: the return value.
pub(crate) const R0: Reg = Reg(0);
/// r1: the context pointer on entry (`struct bpf_cgroup_dev_ctx *`).
pub(crate) const R1: Reg = Reg(1);
pub(crate) const R2: Reg = Reg(2);
pub(crate) const R3: Reg = Reg(3);
pub(crate) const R4: Reg = Reg(4);
pub(crate) const R5: Reg = Reg(5);

// Instruction classes.
const LDX: u8 = 0x01;
const ALU: u8 = 0x04;
const JMP: u8 = 0x05;
const ALU64: u8 = 0x07;
// Sizes and modes for loads.
const W: u8 = 0x00;
const MEM: u8 = 0x60;
// Source operand: immediate or register.
const K: u8 = 0x00;
const X: u8 = 0x08;
// ALU operations.
const AND: u8 = 0x50;
const RSH: u8 = 0x70;
const MOV: u8 = 0xb0;
// Jump operations.
const JEQ: u8 = 0x10;
const JNE: u8 = 0x50;
const EXIT: u8 = 0x90;

/// One 8-byte eBPF instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Insn {
    pub(crate) code: u8,
    pub(crate) dst: u8,
    pub(crate) src: u8,
    pub(crate) off: i16,
    pub(crate) imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Self {
        Self {
            code,
            dst: dst.0,
            src: src.0,
            off,
            imm,
        }
    }

    /// `dst = *(u32 *)(src + off)`
    pub(crate) const fn load_u32(dst: Reg, src: Reg, off: i16) -> Self {
        Self::new(LDX | W | MEM, dst, src, off, 0)
    }

    /// `dst = (u32)(dst & imm)`
    pub(crate) const fn and32_imm(dst: Reg, imm: i32) -> Self {
        Self::new(ALU | AND | K, dst, R0, 0, imm)
    }

    /// `dst = (u32)(dst >> imm)`
    pub(crate) const fn rsh32_imm(dst: Reg, imm: i32) -> Self {
        Self::new(ALU | RSH | K, dst, R0, 0, imm)
    }

    /// `dst = (u32)src`
    pub(crate) const fn mov32_reg(dst: Reg, src: Reg) -> Self {
        Self::new(ALU | MOV | X, dst, src, 0, 0)
    }

    /// `dst = imm` (64-bit, sign-extended)
    pub(crate) const fn mov64_imm(dst: Reg, imm: i32) -> Self {
        Self::new(ALU64 | MOV | K, dst, R0, 0, imm)
    }

    /// `if dst != imm goto pc + 1 + off`
    pub(crate) const fn jne_imm(dst: Reg, imm: i32, off: i16) -> Self {
        Self::new(JMP | JNE | K, dst, R0, off, imm)
    }

    /// `if dst == imm goto pc + 1 + off`
    pub(crate) const fn jeq_imm(dst: Reg, imm: i32, off: i16) -> Self {
        Self::new(JMP | JEQ | K, dst, R0, off, imm)
    }

    /// `return r0`
    pub(crate) const fn exit() -> Self {
        Self::new(JMP | EXIT, R0, R0, 0, 0)
    }

    /// Whether this is a conditional jump whose offset a block may patch.
    pub(crate) const fn is_cond_jump(&self) -> bool {
        self.code & 0x07 == JMP && self.code & 0xf0 != EXIT
    }

    /// The kernel's `struct bpf_insn` encoding, in host byte order.
    pub(crate) fn encode(&self) -> [u8; 8] {
        let regs = if cfg!(target_endian = "little") {
            (self.src << 4) | (self.dst & 0x0f)
        } else {
            (self.dst << 4) | (self.src & 0x0f)
        };
        let off = self.off.to_ne_bytes();
        let imm = self.imm.to_ne_bytes();
        [
            self.code, regs, off[0], off[1], imm[0], imm[1], imm[2], imm[3],
        ]
    }
}

/// Encodes a whole program for `BPF_PROG_LOAD`.
pub(crate) fn encode(prog: &[Insn]) -> Vec<u8> {
    prog.iter().flat_map(Insn::encode).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(Insn::exit().encode(), [0x95, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Insn::mov64_imm(R0, 1).encode(), [0xb7, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(
            Insn::load_u32(R4, R1, 4).encode(),
            [0x61, 0x14, 4, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            Insn::mov32_reg(R1, R3).encode(),
            [0xbc, 0x31, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            Insn::and32_imm(R2, 0xffff).encode(),
            [0x54, 2, 0, 0, 0xff, 0xff, 0, 0]
        );
        assert_eq!(
            Insn::rsh32_imm(R3, 16).encode(),
            [0x74, 3, 0, 0, 16, 0, 0, 0]
        );
        assert_eq!(
            Insn::jne_imm(R5, 3, 2).encode(),
            [0x55, 5, 2, 0, 3, 0, 0, 0]
        );
        assert_eq!(
            Insn::jeq_imm(R1, 0, 7).encode(),
            [0x15, 1, 7, 0, 0, 0, 0, 0]
        );
        assert!(Insn::jne_imm(R5, 3, 2).is_cond_jump());
        assert!(!Insn::exit().is_cond_jump());
        assert_eq!(encode(&[Insn::exit(), Insn::exit()]).len(), 16);
    }
}
