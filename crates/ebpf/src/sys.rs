//! The `bpf(2)` commands berth uses, as safe functions. Layouts follow
//! `include/uapi/linux/bpf.h`; each attribute struct holds the fields of `union bpf_attr` its
//! command reads, and the kernel zero-fills (and checks as zero) whatever lies beyond.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::insn::{self, Insn};

const BPF_MAP_CREATE: libc::c_int = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_int = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
const BPF_MAP_DELETE_ELEM: libc::c_int = 3;
const BPF_MAP_GET_NEXT_KEY: libc::c_int = 4;
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_MAP_GET_FD_BY_ID: libc::c_int = 14;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
const BPF_PROG_QUERY: libc::c_int = 16;

/// `BPF_PROG_TYPE_SCHED_CLS`: a tc classifier.
pub const PROG_TYPE_SCHED_CLS: u32 = 3;
/// `BPF_PROG_TYPE_CGROUP_DEVICE`.
pub const PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `BPF_CGROUP_DEVICE`: the attach type of a device program.
pub const ATTACH_CGROUP_DEVICE: u32 = 6;
/// `BPF_F_ALLOW_MULTI`: several programs may sit on the cgroup; all must allow.
pub const F_ALLOW_MULTI: u32 = 2;
/// `BPF_MAP_TYPE_HASH`.
pub const MAP_TYPE_HASH: u32 = 1;
/// `BPF_F_NO_PREALLOC`: a hash map's entries are allocated as they are added.
pub const F_NO_PREALLOC: u32 = 1;

/// The kernel keeps names of programs and maps to 15 bytes and a NUL.
fn obj_name(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    let n = name.len().min(15);
    out[..n].copy_from_slice(&name.as_bytes()[..n]);
    out
}

fn cname(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// `union bpf_attr` as `BPF_PROG_LOAD` reads it (fields up to `expected_attach_type`).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` as `BPF_PROG_ATTACH` / `BPF_PROG_DETACH` read it.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// `union bpf_attr` as `BPF_PROG_QUERY` reads it.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    pad: u32,
}

/// `union bpf_attr` as `BPF_*_GET_FD_BY_ID` read it.
#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// `union bpf_attr` as `BPF_MAP_CREATE` reads it (fields up to `map_name`).
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

/// `union bpf_attr` as the `BPF_MAP_*_ELEM` and `BPF_MAP_GET_NEXT_KEY` commands read it
/// (`value` is `next_key` for the latter).
#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `union bpf_attr` as `BPF_OBJ_GET_INFO_BY_FD` reads it.
#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The head of `struct bpf_prog_info`, up to `name`.
#[repr(C)]
#[derive(Default)]
struct ProgInfoRaw {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; 16],
}

/// The head of `struct bpf_map_info`, up to `name`.
#[repr(C)]
#[derive(Default)]
struct MapInfoRaw {
    map_type: u32,
    id: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    name: [u8; 16],
}

/// Issues `bpf(cmd, attr, size_of::<T>())`.
///
/// # Safety
///
/// `attr` must be the `bpf_attr` layout the kernel reads for `cmd`, and every pointer stored in
/// it must be valid for the kernel to read (or write, for output buffers) for the length stored
/// beside it, or implied by the object it names, for the duration of the call.
unsafe fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: the caller guarantees `attr` has the layout `cmd` expects and that the buffers it
    // points to are live; the size passed is exactly the size of `*attr`, so the kernel reads
    // (and for queries, writes) only memory we own.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr).cast::<libc::c_void>(),
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Takes ownership of a descriptor a successful `bpf(2)` call returned.
fn owned_fd(r: libc::c_long) -> io::Result<OwnedFd> {
    let fd = i32::try_from(r).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: `fd` was just returned by the kernel as a new descriptor for this process; nothing
    // else holds it, so the OwnedFd becomes its only owner and closes it exactly once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fd_u32(fd: BorrowedFd<'_>) -> u32 {
    // Descriptors are never negative.
    u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX)
}

fn addr<T>(p: *const T) -> u64 {
    p as usize as u64
}

/// Loads a program of type `kind` under `name`. On failure returns the error with the
/// verifier's log (empty when the verifier was not the one refusing).
pub fn prog_load(
    kind: u32,
    prog: &[Insn],
    name: &str,
    license: &CStr,
) -> Result<OwnedFd, (io::Error, String)> {
    let code = insn::encode(prog);
    let mut log = vec![0u8; 64 * 1024];
    let mut attempt = |with_log: bool| {
        let mut attr = ProgLoadAttr {
            prog_type: kind,
            insn_cnt: u32::try_from(prog.len()).unwrap_or(u32::MAX),
            insns: addr(code.as_ptr()),
            license: addr(license.as_ptr()),
            prog_name: obj_name(name),
            ..ProgLoadAttr::default()
        };
        if with_log {
            attr.log_level = 1;
            attr.log_size = u32::try_from(log.len()).unwrap_or(u32::MAX);
            attr.log_buf = addr(log.as_mut_ptr());
        }
        // SAFETY: attr is a PROG_LOAD layout; `code` holds insn_cnt * 8 bytes, `license` is a
        // NUL-terminated string and `log` a writable buffer of log_size bytes, all alive across
        // this call.
        unsafe { bpf(BPF_PROG_LOAD, &mut attr) }
    };
    match attempt(false) {
        Ok(fd) => owned_fd(fd).map_err(|e| (e, String::new())),
        Err(first) => {
            // Load again with the verifier log switched on, to say why.
            let _ = attempt(true);
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            Err((first, String::from_utf8_lossy(&log[..end]).into_owned()))
        }
    }
}

/// Attaches `prog` to `target` (a cgroup) as `attach_type`, with `flags`.
pub fn prog_attach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
    flags: u32,
) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: fd_u32(target),
        attach_bpf_fd: fd_u32(prog),
        attach_type,
        attach_flags: flags,
        ..AttachAttr::default()
    };
    // SAFETY: attr is a PROG_ATTACH layout holding only integers (descriptors borrowed for the
    // call), no pointers.
    unsafe { bpf(BPF_PROG_ATTACH, &mut attr) }.map(drop)
}

/// Detaches `prog` from `target`.
pub fn prog_detach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: fd_u32(target),
        attach_bpf_fd: fd_u32(prog),
        attach_type,
        ..AttachAttr::default()
    };
    // SAFETY: attr is a PROG_DETACH layout holding only integers, no pointers.
    unsafe { bpf(BPF_PROG_DETACH, &mut attr) }.map(drop)
}

/// Ids of the programs attached directly to `target` as `attach_type` (not inherited ones).
pub fn prog_query(target: BorrowedFd<'_>, attach_type: u32) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: fd_u32(target),
        attach_type,
        prog_ids: addr(ids.as_mut_ptr()),
        prog_cnt: u32::try_from(ids.len()).unwrap_or(0),
        ..QueryAttr::default()
    };
    // SAFETY: attr is a PROG_QUERY layout; prog_ids points to `ids`, writable for prog_cnt u32s
    // and alive across the call; the kernel writes at most prog_cnt ids.
    unsafe { bpf(BPF_PROG_QUERY, &mut attr) }?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

/// A descriptor for the loaded program with this id.
pub fn prog_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdAttr {
        id,
        ..GetFdAttr::default()
    };
    // SAFETY: attr is a PROG_GET_FD_BY_ID layout holding only integers.
    let r = unsafe { bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) }?;
    owned_fd(r)
}

/// What the kernel says of a loaded program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgInfo {
    /// Its name (15 bytes at most).
    pub name: String,
    /// The ids of the maps it uses (the first 8).
    pub map_ids: Vec<u32>,
}

/// The name and map ids of the program `prog`.
pub fn prog_info(prog: BorrowedFd<'_>) -> io::Result<ProgInfo> {
    let mut ids = [0u32; 8];
    let mut info = ProgInfoRaw {
        nr_map_ids: 8,
        map_ids: addr(ids.as_mut_ptr()),
        ..ProgInfoRaw::default()
    };
    let mut attr = InfoAttr {
        bpf_fd: fd_u32(prog),
        info_len: u32::try_from(std::mem::size_of::<ProgInfoRaw>()).unwrap_or(0),
        info: addr(&raw mut info),
    };
    // SAFETY: attr is an OBJ_GET_INFO_BY_FD layout; `info` is writable for info_len bytes and
    // its map_ids points to `ids`, writable for nr_map_ids u32s; both live across the call.
    unsafe { bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }?;
    let n = (info.nr_map_ids as usize).min(ids.len());
    Ok(ProgInfo {
        name: cname(&info.name),
        map_ids: ids[..n].to_vec(),
    })
}

/// What the kernel says of a map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapInfo {
    /// `BPF_MAP_TYPE_*`.
    pub kind: u32,
    /// Bytes of a key.
    pub key_size: u32,
    /// Bytes of a value.
    pub value_size: u32,
    /// Its name (15 bytes at most).
    pub name: String,
}

/// A map, with the sizes its keys and values must have.
#[derive(Debug)]
pub struct Map {
    fd: OwnedFd,
    info: MapInfo,
}

impl AsFd for Map {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Map {
    /// `BPF_MAP_CREATE`.
    pub fn create(
        kind: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        flags: u32,
        name: &str,
    ) -> io::Result<Self> {
        let mut attr = MapCreateAttr {
            map_type: kind,
            key_size,
            value_size,
            max_entries,
            map_flags: flags,
            map_name: obj_name(name),
            ..MapCreateAttr::default()
        };
        // SAFETY: attr is a MAP_CREATE layout holding only integers and an inline name.
        let fd = owned_fd(unsafe { bpf(BPF_MAP_CREATE, &mut attr) }?)?;
        Self::from_fd(fd)
    }

    /// The map with this id.
    pub fn by_id(id: u32) -> io::Result<Self> {
        let mut attr = GetFdAttr {
            id,
            ..GetFdAttr::default()
        };
        // SAFETY: attr is a MAP_GET_FD_BY_ID layout holding only integers.
        let fd = owned_fd(unsafe { bpf(BPF_MAP_GET_FD_BY_ID, &mut attr) }?)?;
        Self::from_fd(fd)
    }

    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        let mut info = MapInfoRaw::default();
        let mut attr = InfoAttr {
            bpf_fd: fd_u32(fd.as_fd()),
            info_len: u32::try_from(std::mem::size_of::<MapInfoRaw>()).unwrap_or(0),
            info: addr(&raw mut info),
        };
        // SAFETY: attr is an OBJ_GET_INFO_BY_FD layout; `info` is writable for info_len bytes
        // and lives across the call.
        unsafe { bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }?;
        Ok(Self {
            fd,
            info: MapInfo {
                kind: info.map_type,
                key_size: info.key_size,
                value_size: info.value_size,
                name: cname(&info.name),
            },
        })
    }

    /// Its type, sizes and name.
    #[must_use]
    pub fn info(&self) -> &MapInfo {
        &self.info
    }

    fn check(&self, key: &[u8], value: Option<&[u8]>) -> io::Result<()> {
        let bad = key.len() != self.info.key_size as usize
            || value.is_some_and(|v| v.len() != self.info.value_size as usize);
        if bad {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok(())
    }

    fn elem(&self, key: &[u8], value: u64) -> MapElemAttr {
        MapElemAttr {
            map_fd: fd_u32(self.fd.as_fd()),
            key: addr(key.as_ptr()),
            value,
            ..MapElemAttr::default()
        }
    }

    /// Sets `key` to `value` (`BPF_ANY`).
    pub fn update(&self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.check(key, Some(value))?;
        let mut attr = self.elem(key, addr(value.as_ptr()));
        // SAFETY: attr is a MAP_UPDATE_ELEM layout; key and value are live buffers of exactly
        // the map's key and value sizes (checked above).
        unsafe { bpf(BPF_MAP_UPDATE_ELEM, &mut attr) }.map(drop)
    }

    /// Removes `key`; a missing one is fine.
    pub fn delete(&self, key: &[u8]) -> io::Result<()> {
        self.check(key, None)?;
        let mut attr = self.elem(key, 0);
        // SAFETY: attr is a MAP_DELETE_ELEM layout; key is a live buffer of the map's key size.
        match unsafe { bpf(BPF_MAP_DELETE_ELEM, &mut attr) } {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            r => r.map(drop),
        }
    }

    /// The value of `key`, if it has one.
    pub fn lookup(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        self.check(key, None)?;
        let mut value = vec![0u8; self.info.value_size as usize];
        let mut attr = self.elem(key, addr(value.as_mut_ptr()));
        // SAFETY: attr is a MAP_LOOKUP_ELEM layout; key is a live buffer of the map's key size
        // and value a writable one of its value size.
        match unsafe { bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) } {
            Ok(_) => Ok(Some(value)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every key.
    pub fn keys(&self) -> io::Result<Vec<Vec<u8>>> {
        let size = self.info.key_size as usize;
        let mut keys: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut next = vec![0u8; size];
            let mut attr = MapElemAttr {
                map_fd: fd_u32(self.fd.as_fd()),
                key: keys.last().map_or(0, |k| addr(k.as_ptr())),
                value: addr(next.as_mut_ptr()),
                ..MapElemAttr::default()
            };
            // SAFETY: attr is a MAP_GET_NEXT_KEY layout; key is null (the first key) or a live
            // buffer of the key size, next a writable one of the key size.
            match unsafe { bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) } {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(keys),
                Err(e) => return Err(e),
            }
            keys.push(next);
            if keys.len() > 1 << 20 {
                return Err(io::Error::other("the map's keys do not end"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_name_is_cut_to_fifteen_bytes_and_a_nul() {
        let n = obj_name("berth_fastpath_map");
        assert_eq!(&n[..15], b"berth_fastpath_");
        assert_eq!(n[15], 0);
        assert_eq!(cname(&n), "berth_fastpath_");
    }

    #[test]
    fn attribute_layouts_match_the_kernels() {
        assert_eq!(std::mem::size_of::<ProgLoadAttr>(), 72);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(std::mem::offset_of!(MapCreateAttr, map_name), 28);
        assert_eq!(std::mem::offset_of!(MapElemAttr, key), 8);
        assert_eq!(std::mem::offset_of!(ProgInfoRaw, nr_map_ids), 52);
        assert_eq!(std::mem::offset_of!(ProgInfoRaw, map_ids), 56);
        assert_eq!(std::mem::offset_of!(ProgInfoRaw, name), 64);
        assert_eq!(std::mem::offset_of!(MapInfoRaw, name), 24);
    }

    #[test]
    fn a_key_of_the_wrong_size_is_refused_before_the_kernel_sees_it() {
        // Needs a kernel that lets us make maps (root); otherwise there is nothing to check.
        let Ok(map) = Map::create(MAP_TYPE_HASH, 8, 4, 4, F_NO_PREALLOC, "t") else {
            return;
        };
        assert_eq!(map.info().key_size, 8);
        let e = map.update(&[1, 2, 3], &[0; 4]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        map.update(&[1; 8], &[7, 0, 0, 0]).unwrap();
        assert_eq!(map.lookup(&[1; 8]).unwrap(), Some(vec![7, 0, 0, 0]));
        assert_eq!(map.keys().unwrap(), vec![vec![1u8; 8]]);
        map.delete(&[1; 8]).unwrap();
        assert_eq!(map.lookup(&[1; 8]).unwrap(), None);
    }
}
