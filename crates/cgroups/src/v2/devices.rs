//! Device access on cgroup v2: compile the rules, load the program, attach it, and detach the
//! programs an earlier `set` attached.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::LinuxDeviceCgroup;

use crate::error::CgroupError;
use ebpf::sys as bpf_sys;

use crate::{bpf, convert};

/// Replaces the device filter of the cgroup at `dir` with one enforcing `rules`.
pub(crate) fn apply(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    let rules = convert::device_rules(rules)?;
    let prog = bpf::device_filter(&rules);
    let prog_fd = bpf_sys::prog_load(bpf_sys::PROG_TYPE_CGROUP_DEVICE, &prog, "", c"Apache")
        .map_err(|(source, log)| CgroupError::BpfLoad {
            insns: prog.len(),
            log,
            source,
        })?;
    let cg: OwnedFd = File::open(dir)
        .map_err(|source| CgroupError::Open {
            path: dir.to_owned(),
            source,
        })?
        .into();
    let bpf_err = |op, source| CgroupError::Bpf {
        op,
        path: dir.to_owned(),
        source,
    };
    let old = bpf_sys::prog_query(cg.as_fd(), bpf_sys::ATTACH_CGROUP_DEVICE)
        .map_err(|e| bpf_err("query", e))?;
    bpf_sys::prog_attach(
        cg.as_fd(),
        prog_fd.as_fd(),
        bpf_sys::ATTACH_CGROUP_DEVICE,
        bpf_sys::F_ALLOW_MULTI,
    )
    .map_err(|e| bpf_err("attach", e))?;
    // The new filter is in force; now drop the old ones (all filters must allow, so until this
    // point the old and new rules both applied).
    for id in old {
        let old_fd = match bpf_sys::prog_by_id(id) {
            Ok(fd) => fd,
            // Detached and freed meanwhile by another updater.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(bpf_err("open attached", e)),
        };
        match bpf_sys::prog_detach(cg.as_fd(), old_fd.as_fd(), bpf_sys::ATTACH_CGROUP_DEVICE) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(bpf_err("detach", e)),
        }
    }
    tracing::debug!(dir = %dir.display(), insns = prog.len(), "device filter attached");
    Ok(())
}

/// How many device programs are attached directly to the cgroup at `dir`.
pub(crate) fn attached_count(dir: &Path) -> Result<usize, CgroupError> {
    let cg: OwnedFd = File::open(dir)
        .map_err(|source| CgroupError::Open {
            path: dir.to_owned(),
            source,
        })?
        .into();
    bpf_sys::prog_query(cg.as_fd(), bpf_sys::ATTACH_CGROUP_DEVICE)
        .map(|v| v.len())
        .map_err(|source| CgroupError::Bpf {
            op: "query",
            path: dir.to_owned(),
            source,
        })
}
