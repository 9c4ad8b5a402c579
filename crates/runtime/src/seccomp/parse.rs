//! Reading a standalone `linux.seccomp` JSON object with errors that name the field.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::SeccompError;

/// Field path prefix of every profile error.
const FIELD: &str = "linux.seccomp";

/// Parses the JSON of an OCI `linux.seccomp` object.
///
/// Names the spec does not define fail with the field and the name, in one line:
/// `linux.seccomp.architectures[0]: unknown architecture "X"`, likewise for actions, operators
/// and flags. Other shape errors name the field where decoding stopped. The result still has to
/// go through [`compile`](super::compile), which checks syscall names and the rules.
pub fn parse(json: &str) -> Result<LinuxSeccomp, SeccompError> {
    let value: Value = serde_json::from_str(json).map_err(|source| SeccompError::Parse {
        field: FIELD.to_owned(),
        source,
    })?;
    check_names(&value)?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        SeccompError::Parse {
            field: if path == "." {
                FIELD.to_owned()
            } else {
                format!("{FIELD}.{path}")
            },
            source: e.into_inner(),
        }
    })
}

/// Checks every enumerated name against the spec's vocabulary, so that an unknown one is reported
/// by kind and name rather than as serde's list of expected variants.
fn check_names(profile: &Value) -> Result<(), SeccompError> {
    let unknown_action = |field: String, name: &str| SeccompError::UnknownAction {
        field,
        name: name.to_owned(),
    };
    if let Some(name) = profile.get("defaultAction").and_then(Value::as_str)
        && !known::<LinuxSeccompAction>(name)
    {
        return Err(unknown_action(format!("{FIELD}.defaultAction"), name));
    }
    for (i, name) in strings(profile.get("architectures")) {
        if !known::<Arch>(name) {
            return Err(SeccompError::UnknownArchitecture {
                field: format!("{FIELD}.architectures[{i}]"),
                name: name.to_owned(),
            });
        }
    }
    for (i, name) in strings(profile.get("flags")) {
        if !known::<LinuxSeccompFilterFlag>(name) {
            return Err(SeccompError::UnknownFlag {
                field: format!("{FIELD}.flags[{i}]"),
                name: name.to_owned(),
            });
        }
    }
    let syscalls = profile.get("syscalls").and_then(Value::as_array);
    for (i, syscall) in syscalls.into_iter().flatten().enumerate() {
        if let Some(name) = syscall.get("action").and_then(Value::as_str)
            && !known::<LinuxSeccompAction>(name)
        {
            return Err(unknown_action(
                format!("{FIELD}.syscalls[{i}].action"),
                name,
            ));
        }
        let args = syscall.get("args").and_then(Value::as_array);
        for (j, arg) in args.into_iter().flatten().enumerate() {
            if let Some(name) = arg.get("op").and_then(Value::as_str)
                && !known::<LinuxSeccompOperator>(name)
            {
                return Err(SeccompError::UnknownOperator {
                    field: format!("{FIELD}.syscalls[{i}].args[{j}].op"),
                    name: name.to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// The string elements of an optional JSON array, with their indices.
fn strings(array: Option<&Value>) -> impl Iterator<Item = (usize, &str)> {
    array
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, v)| v.as_str().map(|s| (i, s)))
}

/// Whether `name` is a JSON name of `T` (decoded the way the whole profile will be).
fn known<T: DeserializeOwned>(name: &str) -> bool {
    T::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(name)).is_ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn error(json: &str) -> String {
        match parse(json) {
            Ok(p) => panic!("parsed {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_a_full_profile() {
        let p = parse(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,
                "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
                "flags":["SECCOMP_FILTER_FLAG_LOG"],
                "listenerPath":"/run/agent.sock","listenerMetadata":"m",
                "syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"},
                            {"names":["personality"],"action":"SCMP_ACT_ALLOW",
                             "args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}]}"#,
        )
        .unwrap();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(38));
        assert_eq!(p.architectures().as_ref().map(Vec::len), Some(3));
        assert_eq!(p.syscalls().as_ref().map(Vec::len), Some(2));
    }

    #[test]
    fn unknown_names_are_reported_by_field() {
        assert_eq!(
            error(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","X"]}"#),
            r#"linux.seccomp.architectures[1]: unknown architecture "X""#
        );
        assert_eq!(
            error(r#"{"defaultAction":"SCMP_ACT_NOPE"}"#),
            r#"linux.seccomp.defaultAction: unknown action "SCMP_ACT_NOPE""#
        );
        assert_eq!(
            error(r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_FOO"]}"#),
            r#"linux.seccomp.flags[0]: unknown flag "SECCOMP_FILTER_FLAG_FOO""#
        );
        assert_eq!(
            error(
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                    {"names":["read"],"action":"SCMP_ACT_ALLOW"},
                    {"names":["read"],"action":"SCMP_ACT_DENY"}]}"#
            ),
            r#"linux.seccomp.syscalls[1].action: unknown action "SCMP_ACT_DENY""#
        );
        assert_eq!(
            error(
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],
                    "action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"},
                    {"index":1,"value":1,"op":"SCMP_CMP_ALMOST"}]}]}"#
            ),
            r#"linux.seccomp.syscalls[0].args[1].op: unknown operator "SCMP_CMP_ALMOST""#
        );
    }

    #[test]
    fn shape_errors_name_the_field() {
        assert_eq!(
            error(
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":"read","action":"SCMP_ACT_ALLOW"}]}"#
            ),
            "linux.seccomp.syscalls[0].names: invalid seccomp profile"
        );
        assert_eq!(error("{"), "linux.seccomp: invalid seccomp profile");
    }

    #[test]
    fn every_spec_name_is_known() {
        for name in [
            "SCMP_ARCH_X86_64",
            "SCMP_ARCH_MIPS64N32",
            "SCMP_ARCH_PPC64LE",
            "SCMP_ARCH_NATIVE",
        ] {
            assert!(known::<Arch>(name), "{name}");
        }
        for name in [
            "SCMP_ACT_KILL",
            "SCMP_ACT_KILL_PROCESS",
            "SCMP_ACT_KILL_THREAD",
            "SCMP_ACT_TRAP",
            "SCMP_ACT_ERRNO",
            "SCMP_ACT_TRACE",
            "SCMP_ACT_ALLOW",
            "SCMP_ACT_LOG",
            "SCMP_ACT_NOTIFY",
        ] {
            assert!(known::<LinuxSeccompAction>(name), "{name}");
        }
        for name in [
            "SCMP_CMP_NE",
            "SCMP_CMP_LT",
            "SCMP_CMP_LE",
            "SCMP_CMP_EQ",
            "SCMP_CMP_GE",
            "SCMP_CMP_GT",
            "SCMP_CMP_MASKED_EQ",
        ] {
            assert!(known::<LinuxSeccompOperator>(name), "{name}");
        }
        for name in [
            "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            "SECCOMP_FILTER_FLAG_TSYNC",
        ] {
            assert!(known::<LinuxSeccompFilterFlag>(name), "{name}");
        }
    }
}
