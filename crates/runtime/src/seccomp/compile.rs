//! Translation of an OCI `linux.seccomp` profile into libseccomp rules, and export of the result as
//! raw BPF.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};
use serde::Serialize;

use super::{Program, SeccompError};

/// Field path prefix of every profile error.
const FIELD: &str = "linux.seccomp";

/// Syscalls take at most six arguments.
const MAX_ARGS: usize = 6;

/// The kernel's limit on classic BPF program length (`BPF_MAXINSNS`).
const MAX_INSTRUCTIONS: usize = 4096;

/// Above this many syscall names libseccomp is asked for a binary search tree instead of a
/// linear list. runc uses the same threshold: libseccomp <= 2.5.4 misbehaves with the tree and
/// no rules, and short lists gain nothing from it.
const BINARY_TREE_THRESHOLD: usize = 32;

/// Size of one `struct sock_filter` in libseccomp's export.
const INSTRUCTION_SIZE: usize = 8;

/// Validates `spec` and compiles it into a [`Program`].
///
/// Runs in the runtime before any fork, so a bad profile fails early with an error naming the
/// field (`linux.seccomp.syscalls[3].names[1]: unknown syscall "foo"`). The program is what
/// libseccomp's `seccomp_load` would load: the same BPF (from `seccomp_export_bpf`) and the same
/// filter flags, except that `no_new_privs` is left to the runtime.
pub fn compile(spec: &LinuxSeccomp) -> Result<Program, SeccompError> {
    let default_action = action(spec.default_action(), spec.default_errno_ret(), || {
        format!("{FIELD}.defaultErrnoRet")
    })?;
    if default_action == ScmpAction::Notify {
        return Err(SeccompError::NotifyAsDefault {
            field: format!("{FIELD}.defaultAction"),
        });
    }
    let syscalls = spec.syscalls().as_deref().unwrap_or_default();

    let mut ctx = ScmpFilterContext::new(default_action)
        .map_err(|source| SeccompError::NewFilter { source })?;
    // The runtime sets no_new_privs itself (or not, per `process.noNewPrivileges`).
    ctx.set_ctl_nnp(false)
        .map_err(|source| SeccompError::SetAttribute {
            attribute: "SCMP_FLTATR_CTL_NNP",
            source,
        })?;
    add_architectures(
        &mut ctx,
        spec.architectures().as_deref().unwrap_or_default(),
    )?;
    let mut flags = filter_flags(&mut ctx, spec.flags().as_deref())?;
    let names: usize = syscalls.iter().map(|s| s.names().len()).sum();
    if names > BINARY_TREE_THRESHOLD {
        // A binary search over syscall numbers instead of a linear scan: every syscall of the
        // container runs the filter, so this is worth its cost at compile time (roughly +50% in
        // libseccomp 2.5). An old libseccomp without the attribute still produces a correct
        // (linear) program, so a refusal is not an error.
        let _ = ctx.set_ctl_optimize(2);
    }

    let mut first_notify = None;
    for (i, syscall) in syscalls.iter().enumerate() {
        let rule_action = action(syscall.action(), syscall.errno_ret(), || {
            format!("{FIELD}.syscalls[{i}].errnoRet")
        })?;
        let conditions = conditions(i, syscall.args().as_deref().unwrap_or_default())?;
        // runc's rule: when two conditions test the same argument, each becomes its own rule
        // (any of them matches); otherwise all conditions form one rule (all must match).
        let separate = shares_index(syscall.args().as_deref().unwrap_or_default());
        if rule_action == ScmpAction::Notify && !syscall.names().is_empty() {
            first_notify.get_or_insert(i);
        }

        for (j, name) in syscall.names().iter().enumerate() {
            let field = || format!("{FIELD}.syscalls[{i}].names[{j}]");
            if name.is_empty() {
                return Err(SeccompError::EmptySyscallName { field: field() });
            }
            if rule_action == ScmpAction::Notify && name == "write" {
                return Err(SeccompError::NotifyOnWrite { field: field() });
            }
            let number =
                ScmpSyscall::from_name(name).map_err(|_| SeccompError::UnknownSyscall {
                    field: field(),
                    name: name.clone(),
                })?;
            if rule_action == default_action {
                // libseccomp refuses rules that repeat the default action; they change nothing.
                continue;
            }
            let add_rule_error = |source| SeccompError::AddRule {
                field: field(),
                name: name.clone(),
                source,
            };
            if separate {
                for condition in &conditions {
                    ctx.add_rule_conditional(rule_action, number, std::slice::from_ref(condition))
                        .map_err(add_rule_error)?;
                }
            } else {
                ctx.add_rule_conditional(rule_action, number, &conditions)
                    .map_err(add_rule_error)?;
            }
        }
    }

    let needs_listener = first_notify.is_some();
    if let Some(i) = first_notify
        && spec.listener_path().is_none()
    {
        return Err(SeccompError::MissingListenerPath {
            field: format!("{FIELD}.syscalls[{i}].action"),
        });
    }
    if needs_listener {
        flags |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        // The kernel refuses TSYNC together with NEW_LISTENER unless a failed sync is reported as
        // ESRCH (there would be no way to return both a tid and an fd); libseccomp does the same.
        if flags & libc::SECCOMP_FILTER_FLAG_TSYNC != 0 {
            flags |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
        }
    } else if flags & libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV != 0 {
        let index = spec
            .flags()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .position(|f| *f == LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv)
            .unwrap_or_default();
        return Err(SeccompError::WaitKillableWithoutNotify {
            field: format!("{FIELD}.flags[{index}]"),
        });
    }

    let filter = export(&ctx)?;
    Ok(Program {
        filter,
        flags,
        needs_listener,
    })
}

/// Maps an OCI action (plus its optional errno) to libseccomp's. `errno_field` names the errno
/// field for error messages.
fn action(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    errno_field: impl Fn() -> String,
) -> Result<ScmpAction, SeccompError> {
    // runc's default for ERRNO and TRACE without an explicit value.
    const EPERM: u16 = 1;
    let errno = |default: u16| -> Result<u16, SeccompError> {
        match errno_ret {
            None => Ok(default),
            Some(value) => u16::try_from(value).map_err(|_| SeccompError::ErrnoRetOutOfRange {
                field: errno_field(),
                value,
            }),
        }
    };
    let plain = match action {
        LinuxSeccompAction::ScmpActErrno => return Ok(ScmpAction::Errno(errno(EPERM)?.into())),
        LinuxSeccompAction::ScmpActTrace => return Ok(ScmpAction::Trace(errno(EPERM)?)),
        // SCMP_ACT_KILL is the historical name of KILL_THREAD.
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
    };
    // The OCI spec: "When the action doesn't support an errno, the runtime MUST print and error
    // and fail."
    if errno_ret.is_some() {
        return Err(SeccompError::ErrnoRetNotAllowed {
            field: errno_field(),
            action: spec_name(&action),
        });
    }
    Ok(plain)
}

/// Adds the profile's architectures to `ctx`, which already holds the native one.
fn add_architectures(ctx: &mut ScmpFilterContext, arches: &[Arch]) -> Result<(), SeccompError> {
    for (i, arch) in arches.iter().enumerate() {
        let scmp = scmp_arch(*arch);
        let error = |source| SeccompError::AddArchitecture {
            field: format!("{FIELD}.architectures[{i}]"),
            name: spec_name(arch),
            source,
        };
        // Adding an architecture twice (or the native one) is an error in libseccomp but
        // harmless in a profile; Docker's profiles list the native architecture.
        if !ctx.is_arch_present(scmp).map_err(error)? {
            ctx.add_arch(scmp).map_err(error)?;
        }
    }
    Ok(())
}

/// Maps an OCI architecture to libseccomp's.
fn scmp_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// Turns the profile's flags into `seccomp(2)` flags, checking through libseccomp that the kernel
/// supports each. Without a `flags` field, `SPEC_ALLOW` is used when available, as runc does: the
/// speculative store bypass mitigation costs much and the kernel no longer ties it to seccomp.
fn filter_flags(
    ctx: &mut ScmpFilterContext,
    flags: Option<&[LinuxSeccompFilterFlag]>,
) -> Result<libc::c_ulong, SeccompError> {
    let Some(flags) = flags else {
        return Ok(if ctx.set_ctl_ssb(true).is_ok() {
            libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
        } else {
            0
        });
    };
    let mut bits = 0;
    for (i, flag) in flags.iter().enumerate() {
        let unsupported = |flag, source| SeccompError::UnsupportedFlag {
            field: format!("{FIELD}.flags[{i}]"),
            flag,
            source,
        };
        bits |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => {
                ctx.set_ctl_log(true)
                    .map_err(|e| unsupported("SECCOMP_FILTER_FLAG_LOG", e))?;
                libc::SECCOMP_FILTER_FLAG_LOG
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                ctx.set_ctl_ssb(true)
                    .map_err(|e| unsupported("SECCOMP_FILTER_FLAG_SPEC_ALLOW", e))?;
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => {
                ctx.set_ctl_tsync(true)
                    .map_err(|e| unsupported("SECCOMP_FILTER_FLAG_TSYNC", e))?;
                libc::SECCOMP_FILTER_FLAG_TSYNC
            }
            // libseccomp 2.5 has no attribute for it (Linux 5.19); the kernel checks it at install.
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            }
        };
    }
    Ok(bits)
}

/// Translates the `args` of `syscalls[i]` into libseccomp comparisons.
fn conditions(i: usize, args: &[LinuxSeccompArg]) -> Result<Vec<ScmpArgCompare>, SeccompError> {
    args.iter()
        .enumerate()
        .map(|(j, arg)| {
            let index = arg.index();
            let arg_number = u32::try_from(index)
                .ok()
                .filter(|_| index < MAX_ARGS)
                .ok_or_else(|| SeccompError::ArgIndexOutOfRange {
                    field: format!("{FIELD}.syscalls[{i}].args[{j}].index"),
                    index,
                })?;
            // For MASKED_EQ the spec puts the mask in `value` and the datum in `valueTwo`; the
            // other operators compare against `value` alone.
            let (op, datum) = match arg.op() {
                LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
                LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
                LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
                LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
                LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
                LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
                LinuxSeccompOperator::ScmpCmpMaskedEq => (
                    ScmpCompareOp::MaskedEqual(arg.value()),
                    arg.value_two().unwrap_or_default(),
                ),
            };
            Ok(ScmpArgCompare::new(arg_number, op, datum))
        })
        .collect()
}

/// Whether two conditions test the same argument.
fn shares_index(args: &[LinuxSeccompArg]) -> bool {
    let mut seen = [false; MAX_ARGS];
    args.iter().any(|arg| match seen.get_mut(arg.index()) {
        Some(slot) => std::mem::replace(slot, true),
        None => false,
    })
}

/// Exports the filter as raw BPF, the bytes `seccomp_load` would hand to the kernel.
fn export(ctx: &ScmpFilterContext) -> Result<Box<[libc::sock_filter]>, SeccompError> {
    let buffer_error = |source| SeccompError::ExportBuffer { source };
    // libseccomp 2.5 exports only to an fd (seccomp_export_bpf_mem is 2.6); a memfd keeps it in
    // memory with no size limit, unlike a pipe.
    let memfd = rustix::fs::memfd_create("berth-seccomp-bpf", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| buffer_error(e.into()))?;
    ctx.export_bpf(&memfd)
        .map_err(|source| SeccompError::Export { source })?;
    let mut file = File::from(memfd);
    file.seek(SeekFrom::Start(0)).map_err(buffer_error)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(buffer_error)?;
    if bytes.len() % INSTRUCTION_SIZE != 0 {
        return Err(SeccompError::MalformedExport { len: bytes.len() });
    }
    let filter: Box<[libc::sock_filter]> = bytes
        .chunks_exact(INSTRUCTION_SIZE)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    if filter.len() > MAX_INSTRUCTIONS {
        return Err(SeccompError::ProgramTooLong { len: filter.len() });
    }
    Ok(filter)
}

/// The name a value has in the OCI JSON, e.g. `SCMP_ARCH_X86_64`.
fn spec_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::from("?"),
    }
}

#[cfg(test)]
#[path = "compile_tests.rs"]
mod tests;
