//! berth's eBPF layer: programs written as instructions ([`insn`]) and the few `bpf(2)`
//! commands that load, attach and find them and their maps ([`sys`]). The cgroup v2 device
//! filter (`cgroups`) and the bridge fast path (`net`) are built on it.
//!
//! No compiler toolchain is involved: each program is a few dozen instructions, emitted by the
//! crate that owns it and checked by the kernel's verifier at load time.

pub mod insn;
#[allow(unsafe_code)]
pub mod sys;

pub use insn::{Insn, Reg};
