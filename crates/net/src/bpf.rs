//! The few `bpf(2)` commands the fast path needs: a hash map, a program loaded from
//! instructions, and finding both again by id. Each attribute block is laid out as
//! `union bpf_attr` in `linux/bpf.h` (little-endian, zero-filled past what is set).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const BPF_MAP_CREATE: i32 = 0;
const BPF_MAP_LOOKUP_ELEM: i32 = 1;
const BPF_MAP_UPDATE_ELEM: i32 = 2;
const BPF_MAP_DELETE_ELEM: i32 = 3;
const BPF_MAP_GET_NEXT_KEY: i32 = 4;
const BPF_PROG_LOAD: i32 = 5;
const BPF_PROG_GET_FD_BY_ID: i32 = 13;
const BPF_MAP_GET_FD_BY_ID: i32 = 14;
const BPF_OBJ_GET_INFO_BY_FD: i32 = 15;

/// `BPF_MAP_TYPE_HASH`.
pub(crate) const MAP_TYPE_HASH: u32 = 1;
/// `BPF_F_NO_PREALLOC`: entries are allocated as they are added.
pub(crate) const MAP_NO_PREALLOC: u32 = 1;
/// `BPF_PROG_TYPE_SCHED_CLS`.
pub(crate) const PROG_TYPE_SCHED_CLS: u32 = 3;

/// One instruction, as `struct bpf_insn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Insn {
    pub(crate) code: u8,
    pub(crate) dst: u8,
    pub(crate) src: u8,
    pub(crate) off: i16,
    pub(crate) imm: i32,
}

impl Insn {
    fn encode(self, out: &mut Vec<u8>) {
        out.push(self.code);
        out.push((self.src << 4) | (self.dst & 0x0f));
        out.extend_from_slice(&self.off.to_le_bytes());
        out.extend_from_slice(&self.imm.to_le_bytes());
    }
}

/// A block of `union bpf_attr`, large enough for every command here.
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Self {
        Self([0; 128])
    }

    fn u32(mut self, at: usize, v: u32) -> Self {
        self.0[at..at + 4].copy_from_slice(&v.to_le_bytes());
        self
    }

    fn u64(mut self, at: usize, v: u64) -> Self {
        self.0[at..at + 8].copy_from_slice(&v.to_le_bytes());
        self
    }

    fn name(mut self, at: usize, name: &str) -> Self {
        let n = name.len().min(15);
        self.0[at..at + n].copy_from_slice(&name.as_bytes()[..n]);
        self
    }
}

fn ptr<T: ?Sized>(p: *const T) -> u64 {
    p.cast::<u8>() as usize as u64
}

#[allow(unsafe_code)]
fn bpf(cmd: i32, attr: &mut Attr) -> io::Result<i64> {
    // SAFETY: `attr` is a live, zero-filled 128-byte block laid out as `union bpf_attr` for
    // `cmd`; every pointer it holds was taken from a buffer the caller keeps alive (and, for
    // output buffers, writable with the length stated next to it) until this call returns.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            std::mem::size_of::<Attr>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

#[allow(unsafe_code)]
fn bpf_fd(cmd: i32, attr: &mut Attr) -> io::Result<OwnedFd> {
    let fd = bpf(cmd, attr)?;
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("bpf returned a bad descriptor"))?;
    // SAFETY: a successful `cmd` (a create, a load or a get-by-id) returns a new descriptor
    // that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `BPF_MAP_CREATE`.
pub(crate) fn map_create(
    kind: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
    name: &str,
) -> io::Result<OwnedFd> {
    let mut a = Attr::new()
        .u32(0, kind)
        .u32(4, key_size)
        .u32(8, value_size)
        .u32(12, max_entries)
        .u32(16, flags)
        .name(28, name);
    bpf_fd(BPF_MAP_CREATE, &mut a)
}

/// `BPF_MAP_UPDATE_ELEM` with `BPF_ANY`.
pub(crate) fn map_update(map: &OwnedFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut a = Attr::new()
        .u32(0, fd_u32(map))
        .u64(8, ptr(key.as_ptr()))
        .u64(16, ptr(value.as_ptr()));
    bpf(BPF_MAP_UPDATE_ELEM, &mut a).map(drop)
}

/// `BPF_MAP_DELETE_ELEM`; a missing key is fine.
pub(crate) fn map_delete(map: &OwnedFd, key: &[u8]) -> io::Result<()> {
    let mut a = Attr::new().u32(0, fd_u32(map)).u64(8, ptr(key.as_ptr()));
    match bpf(BPF_MAP_DELETE_ELEM, &mut a) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        r => r.map(drop),
    }
}

/// Every key of `map` (keys of `N` bytes).
pub(crate) fn map_keys<const N: usize>(map: &OwnedFd) -> io::Result<Vec<[u8; N]>> {
    let mut keys = Vec::new();
    let mut prev: Option<[u8; N]> = None;
    loop {
        let mut next = [0u8; N];
        let mut a = Attr::new()
            .u32(0, fd_u32(map))
            .u64(16, ptr(next.as_mut_ptr()));
        if let Some(p) = &prev {
            a = a.u64(8, ptr(p.as_ptr()));
        }
        match bpf(BPF_MAP_GET_NEXT_KEY, &mut a) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(keys),
            Err(e) => return Err(e),
        }
        keys.push(next);
        prev = Some(next);
        if keys.len() > 1 << 20 {
            return Err(io::Error::other("map keys do not end"));
        }
    }
}

/// `BPF_MAP_LOOKUP_ELEM`: the value of `key`, if any.
pub(crate) fn map_lookup<const V: usize>(map: &OwnedFd, key: &[u8]) -> io::Result<Option<[u8; V]>> {
    let mut value = [0u8; V];
    let mut a = Attr::new()
        .u32(0, fd_u32(map))
        .u64(8, ptr(key.as_ptr()))
        .u64(16, ptr(value.as_mut_ptr()));
    match bpf(BPF_MAP_LOOKUP_ELEM, &mut a) {
        Ok(_) => Ok(Some(value)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `BPF_PROG_LOAD` of a GPL program; the verifier's log is in the error when it refuses.
pub(crate) fn prog_load(kind: u32, insns: &[Insn], name: &str) -> io::Result<OwnedFd> {
    let mut code = Vec::with_capacity(insns.len() * 8);
    for i in insns {
        i.encode(&mut code);
    }
    let license = b"GPL\0";
    let mut log = vec![0u8; 16 * 1024];
    let count = u32::try_from(insns.len()).map_err(|_| io::Error::other("program too long"))?;
    let log_len = u32::try_from(log.len()).map_err(|_| io::Error::other("log too long"))?;
    let attr = |level: u32, log: &mut [u8]| {
        Attr::new()
            .u32(0, kind)
            .u32(4, count)
            .u64(8, ptr(code.as_ptr()))
            .u64(16, ptr(license.as_ptr()))
            .u32(24, level)
            .u32(28, if level > 0 { log_len } else { 0 })
            .u64(32, if level > 0 { ptr(log.as_mut_ptr()) } else { 0 })
            .name(48, name)
    };
    match bpf_fd(BPF_PROG_LOAD, &mut attr(0, &mut log)) {
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
            // The verifier refused: once more with its log, for the error.
            match bpf_fd(BPF_PROG_LOAD, &mut attr(1, &mut log)) {
                Ok(fd) => Ok(fd),
                Err(e) => {
                    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                    let text = String::from_utf8_lossy(&log[..end]);
                    let last = text.lines().rev().find(|l| !l.trim().is_empty());
                    Err(io::Error::new(
                        e.kind(),
                        format!("{e}: {}", last.unwrap_or("verifier gave no reason")),
                    ))
                }
            }
        }
        r => r,
    }
}

/// `BPF_PROG_GET_FD_BY_ID`.
pub(crate) fn prog_by_id(id: u32) -> io::Result<OwnedFd> {
    bpf_fd(BPF_PROG_GET_FD_BY_ID, &mut Attr::new().u32(0, id))
}

/// `BPF_MAP_GET_FD_BY_ID`.
pub(crate) fn map_by_id(id: u32) -> io::Result<OwnedFd> {
    bpf_fd(BPF_MAP_GET_FD_BY_ID, &mut Attr::new().u32(0, id))
}

/// What `BPF_OBJ_GET_INFO_BY_FD` says of a program: its name and the ids of its maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProgInfo {
    pub(crate) name: String,
    pub(crate) map_ids: Vec<u32>,
}

/// What `BPF_OBJ_GET_INFO_BY_FD` says of a map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MapInfo {
    pub(crate) kind: u32,
    pub(crate) key_size: u32,
    pub(crate) value_size: u32,
    pub(crate) name: String,
}

fn obj_info(fd: &OwnedFd, info: &mut [u8]) -> io::Result<()> {
    let len = u32::try_from(info.len()).map_err(|_| io::Error::other("info too long"))?;
    let mut a = Attr::new()
        .u32(0, fd_u32(fd))
        .u32(4, len)
        .u64(8, ptr(info.as_mut_ptr()));
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a).map(drop)
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn cname(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// A program's name and map ids (`struct bpf_prog_info`: `nr_map_ids` at 52, `map_ids` at
/// 56, `name` at 64).
pub(crate) fn prog_info(prog: &OwnedFd) -> io::Result<ProgInfo> {
    let mut ids = [0u32; 8];
    let mut info = [0u8; 80];
    info[52..56].copy_from_slice(&8u32.to_le_bytes());
    info[56..64].copy_from_slice(&ptr(ids.as_mut_ptr()).to_le_bytes());
    obj_info(prog, &mut info)?;
    let n = (le32(&info, 52) as usize).min(ids.len());
    Ok(ProgInfo {
        name: cname(&info[64..80]),
        map_ids: ids[..n].to_vec(),
    })
}

/// A map's type, sizes and name (`struct bpf_map_info`).
pub(crate) fn map_info(map: &OwnedFd) -> io::Result<MapInfo> {
    let mut info = [0u8; 40];
    obj_info(map, &mut info)?;
    Ok(MapInfo {
        kind: le32(&info, 0),
        key_size: le32(&info, 8),
        value_size: le32(&info, 12),
        name: cname(&info[24..40]),
    })
}

fn fd_u32(fd: &OwnedFd) -> u32 {
    u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instruction_encodes_as_struct_bpf_insn() {
        let mut out = Vec::new();
        Insn {
            code: 0x61,
            dst: 2,
            src: 1,
            off: 76,
            imm: -1,
        }
        .encode(&mut out);
        assert_eq!(out, [0x61, 0x12, 76, 0, 0xff, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn a_long_name_is_cut_to_fifteen_bytes_and_a_nul() {
        let a = Attr::new().name(28, "berth_fastpath_map");
        assert_eq!(&a.0[28..43], b"berth_fastpath_");
        assert_eq!(a.0[43], 0);
    }
}
