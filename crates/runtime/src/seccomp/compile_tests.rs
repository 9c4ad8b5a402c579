//! Unit tests of the profile translation: names, actions, operators, architectures, flags and the
//! field paths in error messages. Nothing here loads a filter.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::seccomp::parse;

fn profile(json: &str) -> LinuxSeccomp {
    parse(json).unwrap()
}

fn compiled(json: &str) -> Program {
    compile(&profile(json)).unwrap()
}

fn error(json: &str) -> String {
    let message = compile(&profile(json)).unwrap_err().to_string();
    assert!(!message.contains('\n'), "error spans lines: {message}");
    message
}

fn same_program(a: &Program, b: &Program) -> bool {
    a.instructions().len() == b.instructions().len()
        && a.instructions()
            .iter()
            .zip(b.instructions())
            .all(|(x, y)| (x.code, x.jt, x.jf, x.k) == (y.code, y.jt, y.jf, y.k))
}

#[test]
fn unknown_syscall_names_its_field() {
    let message = error(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
            {"names":["read"],"action":"SCMP_ACT_ALLOW"},
            {"names":["write"],"action":"SCMP_ACT_ALLOW"},
            {"names":["close"],"action":"SCMP_ACT_ALLOW"},
            {"names":["openat","foo"],"action":"SCMP_ACT_ALLOW"}]}"#,
    );
    assert_eq!(
        message,
        r#"linux.seccomp.syscalls[3].names[1]: unknown syscall "foo""#
    );
}

#[test]
fn unknown_syscall_fails_even_in_a_rule_that_would_be_skipped() {
    // The rule repeats the default action, so it adds nothing, but the typo is still a typo.
    assert_eq!(
        error(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["nope"],"action":"SCMP_ACT_ALLOW"}]}"#
        ),
        r#"linux.seccomp.syscalls[0].names[0]: unknown syscall "nope""#
    );
}

#[test]
fn empty_syscall_name_is_refused() {
    assert_eq!(
        error(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read",""],"action":"SCMP_ACT_ERRNO"}]}"#
        ),
        "linux.seccomp.syscalls[0].names[1]: empty syscall name"
    );
}

#[test]
fn actions_translate_like_runc() {
    let no_errno = || String::from("f");
    for (oci, scmp) in [
        (LinuxSeccompAction::ScmpActKill, ScmpAction::KillThread),
        (
            LinuxSeccompAction::ScmpActKillThread,
            ScmpAction::KillThread,
        ),
        (
            LinuxSeccompAction::ScmpActKillProcess,
            ScmpAction::KillProcess,
        ),
        (LinuxSeccompAction::ScmpActTrap, ScmpAction::Trap),
        (LinuxSeccompAction::ScmpActErrno, ScmpAction::Errno(1)),
        (LinuxSeccompAction::ScmpActTrace, ScmpAction::Trace(1)),
        (LinuxSeccompAction::ScmpActAllow, ScmpAction::Allow),
        (LinuxSeccompAction::ScmpActLog, ScmpAction::Log),
        (LinuxSeccompAction::ScmpActNotify, ScmpAction::Notify),
    ] {
        assert_eq!(action(oci, None, no_errno).unwrap(), scmp, "{oci:?}");
    }
    assert_eq!(
        action(LinuxSeccompAction::ScmpActErrno, Some(38), no_errno).unwrap(),
        ScmpAction::Errno(38)
    );
    assert_eq!(
        action(LinuxSeccompAction::ScmpActTrace, Some(7), no_errno).unwrap(),
        ScmpAction::Trace(7)
    );
}

#[test]
fn errno_ret_only_with_errno_and_trace() {
    assert_eq!(
        error(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_KILL","errnoRet":5}]}"#
        ),
        "linux.seccomp.syscalls[0].errnoRet: SCMP_ACT_KILL takes no errno return code"
    );
    assert_eq!(
        error(r#"{"defaultAction":"SCMP_ACT_ALLOW","defaultErrnoRet":5}"#),
        "linux.seccomp.defaultErrnoRet: SCMP_ACT_ALLOW takes no errno return code"
    );
    assert_eq!(
        error(r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":70000}"#),
        "linux.seccomp.defaultErrnoRet: errno return code 70000 is out of range (0..=65535)"
    );
    compiled(r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38}"#);
}

#[test]
fn errno_values_reach_the_program() {
    let returns = |p: &Program, k: u32| p.instructions().iter().any(|i| i.code == 0x06 && i.k == k);
    // With no rules the default action is one of the few BPF_RET|BPF_K instructions.
    let p = compiled(r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,"flags":[]}"#);
    assert!(returns(&p, 0x0005_0000 | 38));
    let p = compiled(r#"{"defaultAction":"SCMP_ACT_ERRNO","flags":[]}"#);
    assert!(returns(&p, 0x0005_0000 | 1), "EPERM by default");
}

#[test]
fn argument_operators_translate() {
    let arg = |op: &str, value: u64, value_two: Option<u64>| {
        let json = match value_two {
            Some(two) => format!(r#"{{"index":2,"value":{value},"valueTwo":{two},"op":"{op}"}}"#),
            None => format!(r#"{{"index":2,"value":{value},"op":"{op}"}}"#),
        };
        serde_json::from_str::<LinuxSeccompArg>(&json).unwrap()
    };
    for (op, expected) in [
        ("SCMP_CMP_NE", ScmpCompareOp::NotEqual),
        ("SCMP_CMP_LT", ScmpCompareOp::Less),
        ("SCMP_CMP_LE", ScmpCompareOp::LessOrEqual),
        ("SCMP_CMP_EQ", ScmpCompareOp::Equal),
        ("SCMP_CMP_GE", ScmpCompareOp::GreaterEqual),
        ("SCMP_CMP_GT", ScmpCompareOp::Greater),
    ] {
        let c = conditions(0, &[arg(op, 9, Some(3))]).unwrap();
        assert_eq!(
            c,
            [ScmpArgCompare::new(2, expected, 9)],
            "{op}: valueTwo ignored"
        );
    }
    // MASKED_EQ: value is the mask, valueTwo the datum.
    let c = conditions(0, &[arg("SCMP_CMP_MASKED_EQ", 0xff00, Some(0x1200))]).unwrap();
    assert_eq!(
        c,
        [ScmpArgCompare::new(
            2,
            ScmpCompareOp::MaskedEqual(0xff00),
            0x1200
        )]
    );
}

#[test]
fn argument_index_is_checked() {
    assert_eq!(
        error(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO",
                "args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#
        ),
        "linux.seccomp.syscalls[0].args[1].index: argument index 6 is out of range (0..=5)"
    );
}

#[test]
fn same_index_conditions_become_separate_rules() {
    let args = |indices: &[usize]| -> Vec<LinuxSeccompArg> {
        indices
            .iter()
            .map(|i| {
                serde_json::from_str(&format!(r#"{{"index":{i},"value":1,"op":"SCMP_CMP_EQ"}}"#))
                    .unwrap()
            })
            .collect()
    };
    assert!(!shares_index(&args(&[0, 1, 2])));
    assert!(shares_index(&args(&[0, 1, 0])));
    assert!(!shares_index(&[]));
    // Two values of one argument: as one rule no call could match both, so the rule would be dead.
    let one_rule = compiled(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":[],"syscalls":[{"names":["personality"],"action":"SCMP_ACT_ERRNO",
            "args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"},{"index":0,"value":9,"op":"SCMP_CMP_EQ"}]}]}"#,
    );
    let two_rules = compiled(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":[],"syscalls":[
            {"names":["personality"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},
            {"names":["personality"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":9,"op":"SCMP_CMP_EQ"}]}]}"#,
    );
    assert!(same_program(&one_rule, &two_rules));
}

#[test]
fn rules_repeating_the_default_action_are_skipped() {
    let bare = compiled(r#"{"defaultAction":"SCMP_ACT_ERRNO","flags":[]}"#);
    let redundant = compiled(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","flags":[],"syscalls":[
            {"names":["read"],"action":"SCMP_ACT_ERRNO"},
            {"names":["write"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
    );
    assert!(same_program(&bare, &redundant));
    // A different errno is a different action.
    let different = compiled(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","flags":[],"syscalls":[
            {"names":["read"],"action":"SCMP_ACT_ERRNO","errnoRet":2}]}"#,
    );
    assert!(!same_program(&bare, &different));
    // SCMP_ACT_KILL and SCMP_ACT_KILL_THREAD are one action.
    compiled(
        r#"{"defaultAction":"SCMP_ACT_KILL","syscalls":[{"names":["read"],"action":"SCMP_ACT_KILL_THREAD"}]}"#,
    );
}

#[test]
fn notify_rules() {
    assert_eq!(
        error(r#"{"defaultAction":"SCMP_ACT_NOTIFY","listenerPath":"/x"}"#),
        "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action"
    );
    assert_eq!(
        error(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/x","syscalls":[
                {"names":["read","write"],"action":"SCMP_ACT_NOTIFY"}]}"#
        ),
        "linux.seccomp.syscalls[0].names[1]: SCMP_ACT_NOTIFY cannot be used for the write syscall"
    );
    assert_eq!(
        error(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO"},
                {"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#
        ),
        "linux.seccomp.listenerPath: required because linux.seccomp.syscalls[1].action is SCMP_ACT_NOTIFY"
    );
    let p = compiled(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/x","flags":["SECCOMP_FILTER_FLAG_TSYNC"],
            "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    );
    assert!(p.needs_listener());
    let want = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
        | libc::SECCOMP_FILTER_FLAG_TSYNC
        | libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
    assert_eq!(p.flags(), want);
    assert!(!compiled(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).needs_listener());
}

#[test]
fn flags_translate() {
    let flags = |json: &str| compiled(json).flags();
    assert_eq!(
        flags(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#),
        libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
        "no flags field: SPEC_ALLOW, as runc"
    );
    assert_eq!(flags(r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":[]}"#), 0);
    assert_eq!(
        flags(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_LOG",
                "SECCOMP_FILTER_FLAG_SPEC_ALLOW","SECCOMP_FILTER_FLAG_TSYNC"]}"#
        ),
        libc::SECCOMP_FILTER_FLAG_LOG
            | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            | libc::SECCOMP_FILTER_FLAG_TSYNC
    );
    assert_eq!(
        error(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_LOG",
                "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}"#
        ),
        "linux.seccomp.flags[1]: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs a rule with SCMP_ACT_NOTIFY"
    );
    let p = compiled(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/x","flags":["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    );
    assert_eq!(
        p.flags(),
        libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
    );
}

#[test]
fn architectures_translate() {
    let native = compiled(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":[],"syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    // The native architecture is always there; naming it (twice) changes nothing.
    let named = compiled(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":[],"architectures":["SCMP_ARCH_NATIVE","SCMP_ARCH_X86_64","SCMP_ARCH_X86_64"],
            "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    assert!(same_program(&native, &named));
    let multi = compiled(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":[],"architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
            "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    assert!(multi.instructions().len() > native.instructions().len());
    // Every variant maps onto a distinct libseccomp architecture.
    let all = [
        Arch::ScmpArchNative,
        Arch::ScmpArchX86,
        Arch::ScmpArchX86_64,
        Arch::ScmpArchX32,
        Arch::ScmpArchArm,
        Arch::ScmpArchAarch64,
        Arch::ScmpArchMips,
        Arch::ScmpArchMips64,
        Arch::ScmpArchMips64n32,
        Arch::ScmpArchMipsel,
        Arch::ScmpArchMipsel64,
        Arch::ScmpArchMipsel64n32,
        Arch::ScmpArchPpc,
        Arch::ScmpArchPpc64,
        Arch::ScmpArchPpc64le,
        Arch::ScmpArchS390,
        Arch::ScmpArchS390x,
        Arch::ScmpArchParisc,
        Arch::ScmpArchParisc64,
        Arch::ScmpArchRiscv64,
        Arch::ScmpArchLoongarch64,
        Arch::ScmpArchM68k,
        Arch::ScmpArchSh,
        Arch::ScmpArchSheb,
    ];
    let mapped: std::collections::HashSet<_> = all.iter().map(|a| scmp_arch(*a)).collect();
    assert_eq!(mapped.len(), all.len());
    assert_eq!(spec_name(&Arch::ScmpArchX86_64), "SCMP_ARCH_X86_64");
}

#[test]
fn architecture_unknown_to_libseccomp_names_its_field() {
    let ok = ScmpFilterContext::new(ScmpAction::Allow)
        .and_then(|mut c| c.add_arch(ScmpArch::Loongarch64).map(|_| ()))
        .is_ok();
    if ok {
        eprintln!("skipped: this libseccomp knows SCMP_ARCH_LOONGARCH64");
        return;
    }
    let message = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86","SCMP_ARCH_LOONGARCH64"]}"#,
    ))
    .unwrap_err()
    .to_string();
    assert_eq!(
        message,
        "linux.seccomp.architectures[1]: add architecture SCMP_ARCH_LOONGARCH64"
    );
}

#[test]
fn export_is_deterministic_and_ends_in_a_return() {
    let json = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","write","exit_group"],"action":"SCMP_ACT_ALLOW"}]}"#;
    let a = compiled(json);
    let b = compiled(json);
    assert!(same_program(&a, &b));
    let last = a.instructions().last().unwrap();
    assert_eq!(last.code, 0x06, "BPF_RET|BPF_K");
    assert!(format!("{a:?}").contains("needs_listener: false"));
}
