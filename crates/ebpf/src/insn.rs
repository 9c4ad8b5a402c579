//! A minimal eBPF instruction emitter: just the instructions berth's programs need.
//! Encodings from the kernel's `Documentation/bpf/standardization/instruction-set.rst`.

/// A register, r0..r10.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reg(pub u8);

/// r0: the return value, and a helper's.
pub const R0: Reg = Reg(0);
/// r1: the context pointer on entry; a helper's first argument.
pub const R1: Reg = Reg(1);
/// r2: a helper's second argument.
pub const R2: Reg = Reg(2);
/// r3.
pub const R3: Reg = Reg(3);
/// r4.
pub const R4: Reg = Reg(4);
/// r5.
pub const R5: Reg = Reg(5);
/// r10: the frame pointer (read-only; the 512-byte stack lies below it).
pub const R10: Reg = Reg(10);

/// `BPF_PSEUDO_MAP_FD`: the source register of a 64-bit load whose immediate is a map's
/// descriptor.
const PSEUDO_MAP_FD: Reg = Reg(1);

// Instruction classes.
const LD: u8 = 0x00;
const LDX: u8 = 0x01;
const ST: u8 = 0x02;
const STX: u8 = 0x03;
const ALU: u8 = 0x04;
const JMP: u8 = 0x05;
const ALU64: u8 = 0x07;
// Sizes and modes for loads.
const W: u8 = 0x00;
const H: u8 = 0x08;
const DW: u8 = 0x18;
const IMM: u8 = 0x00;
const MEM: u8 = 0x60;
// Source operand: immediate or register.
const K: u8 = 0x00;
const X: u8 = 0x08;
// ALU operations.
const ADD: u8 = 0x00;
const AND: u8 = 0x50;
const RSH: u8 = 0x70;
const MOV: u8 = 0xb0;
// Jump operations.
const JEQ: u8 = 0x10;
const JGT: u8 = 0x20;
const JNE: u8 = 0x50;
const CALL: u8 = 0x80;
const EXIT: u8 = 0x90;

/// One 8-byte eBPF instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
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
    pub const fn load_u32(dst: Reg, src: Reg, off: i16) -> Self {
        Self::new(LDX | W | MEM, dst, src, off, 0)
    }

    /// `dst = *(u16 *)(src + off)`
    pub const fn load_u16(dst: Reg, src: Reg, off: i16) -> Self {
        Self::new(LDX | H | MEM, dst, src, off, 0)
    }

    /// `*(u32 *)(dst + off) = src`
    pub const fn store_u32(dst: Reg, off: i16, src: Reg) -> Self {
        Self::new(STX | W | MEM, dst, src, off, 0)
    }

    /// `*(u16 *)(dst + off) = src`
    pub const fn store_u16(dst: Reg, off: i16, src: Reg) -> Self {
        Self::new(STX | H | MEM, dst, src, off, 0)
    }

    /// `*(u16 *)(dst + off) = imm`
    pub const fn store_u16_imm(dst: Reg, off: i16, imm: i32) -> Self {
        Self::new(ST | H | MEM, dst, R0, off, imm)
    }

    /// `dst = map` (the map whose descriptor is `fd`): two instructions.
    pub const fn load_map_fd(dst: Reg, fd: i32) -> [Self; 2] {
        [
            Self::new(LD | DW | IMM, dst, PSEUDO_MAP_FD, 0, fd),
            Self::new(0, R0, R0, 0, 0),
        ]
    }

    /// `dst = (u32)(dst & imm)`
    pub const fn and32_imm(dst: Reg, imm: i32) -> Self {
        Self::new(ALU | AND | K, dst, R0, 0, imm)
    }

    /// `dst = (u32)(dst >> imm)`
    pub const fn rsh32_imm(dst: Reg, imm: i32) -> Self {
        Self::new(ALU | RSH | K, dst, R0, 0, imm)
    }

    /// `dst = (u32)src`
    pub const fn mov32_reg(dst: Reg, src: Reg) -> Self {
        Self::new(ALU | MOV | X, dst, src, 0, 0)
    }

    /// `dst = imm` (64-bit, sign-extended)
    pub const fn mov64_imm(dst: Reg, imm: i32) -> Self {
        Self::new(ALU64 | MOV | K, dst, R0, 0, imm)
    }

    /// `dst = src` (64-bit)
    pub const fn mov64_reg(dst: Reg, src: Reg) -> Self {
        Self::new(ALU64 | MOV | X, dst, src, 0, 0)
    }

    /// `dst += imm` (64-bit)
    pub const fn add64_imm(dst: Reg, imm: i32) -> Self {
        Self::new(ALU64 | ADD | K, dst, R0, 0, imm)
    }

    /// `if dst > src goto pc + 1 + off` (unsigned)
    pub const fn jgt_reg(dst: Reg, src: Reg, off: i16) -> Self {
        Self::new(JMP | JGT | X, dst, src, off, 0)
    }

    /// `r0 = helper(r1, ..., r5)`, the helper numbered `func` in `enum bpf_func_id`.
    pub const fn call(func: i32) -> Self {
        Self::new(JMP | CALL, R0, R0, 0, func)
    }

    /// `if dst != imm goto pc + 1 + off`
    pub const fn jne_imm(dst: Reg, imm: i32, off: i16) -> Self {
        Self::new(JMP | JNE | K, dst, R0, off, imm)
    }

    /// `if dst == imm goto pc + 1 + off`
    pub const fn jeq_imm(dst: Reg, imm: i32, off: i16) -> Self {
        Self::new(JMP | JEQ | K, dst, R0, off, imm)
    }

    /// `return r0`
    pub const fn exit() -> Self {
        Self::new(JMP | EXIT, R0, R0, 0, 0)
    }

    /// Whether this is a conditional jump whose offset a block may patch.
    pub const fn is_cond_jump(&self) -> bool {
        self.code & 0x07 == JMP && self.code & 0xf0 != EXIT && self.code & 0xf0 != CALL
    }

    /// The kernel's `struct bpf_insn` encoding, in host byte order.
    pub fn encode(&self) -> [u8; 8] {
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
#[must_use]
pub fn encode(prog: &[Insn]) -> Vec<u8> {
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
        assert_eq!(
            Insn::load_u16(R5, R2, 4).encode(),
            [0x69, 0x25, 4, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            Insn::store_u32(R10, -8, R5).encode(),
            [0x63, 0x5a, 0xf8, 0xff, 0, 0, 0, 0]
        );
        assert_eq!(
            Insn::store_u16(R10, -4, R5).encode(),
            [0x6b, 0x5a, 0xfc, 0xff, 0, 0, 0, 0]
        );
        assert_eq!(
            Insn::store_u16_imm(R10, -2, 0).encode(),
            [0x6a, 0x0a, 0xfe, 0xff, 0, 0, 0, 0]
        );
        let [lo, hi] = Insn::load_map_fd(R1, 7);
        assert_eq!(lo.encode(), [0x18, 0x11, 0, 0, 7, 0, 0, 0]);
        assert_eq!(hi.encode(), [0; 8]);
        assert_eq!(
            Insn::mov64_reg(R2, R10).encode(),
            [0xbf, 0xa2, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            Insn::add64_imm(R2, -8).encode(),
            [0x07, 2, 0, 0, 0xf8, 0xff, 0xff, 0xff]
        );
        assert_eq!(
            Insn::jgt_reg(R4, R3, 15).encode(),
            [0x2d, 0x34, 15, 0, 0, 0, 0, 0]
        );
        assert_eq!(Insn::call(155).encode(), [0x85, 0, 0, 0, 155, 0, 0, 0]);
        assert!(!Insn::call(1).is_cond_jump());
        assert!(Insn::jgt_reg(R4, R3, 1).is_cond_jump());
        assert!(Insn::jne_imm(R5, 3, 2).is_cond_jump());
        assert!(!Insn::exit().is_cond_jump());
        assert_eq!(encode(&[Insn::exit(), Insn::exit()]).len(), 16);
    }
}
