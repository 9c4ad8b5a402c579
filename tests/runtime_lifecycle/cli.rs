//! spec, features, logging, the default state root, and containers run side by side.

use std::sync::Arc;

use serde_json::{Value, json};
use testutil::{Bundle, Runtime, describe};

use crate::common::{cid, init_pid, kv, run_detached, stdout, wait_pid_exit};

fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&testutil::unique_name(tag))
        .tempdir()
        .expect("temp dir")
}

fn read_json(p: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).expect("read json")).expect("parse json")
}

#[test]
fn spec_writes_runcs_default_and_refuses_to_overwrite() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    let dir = temp_dir("spec");
    let d = dir.path().to_string_lossy().into_owned();
    rt.ok(&["spec", "--bundle", &d]);
    let ours = read_json(&dir.path().join("config.json"));

    // runc's own default, for comparison.
    let runc_dir = temp_dir("runcspec");
    let out = std::process::Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(runc_dir.path())
        .output()
        .expect("run runc spec");
    assert!(out.status.success(), "{}", describe(&out));
    let runc = read_json(&runc_dir.path().join("config.json"));
    for ptr in [
        "/ociVersion",
        "/process/terminal",
        "/process/user",
        "/process/args",
        "/process/env",
        "/process/cwd",
        "/process/capabilities",
        "/process/rlimits",
        "/process/noNewPrivileges",
        "/root",
        "/mounts",
        "/linux/resources",
        "/linux/namespaces",
        "/linux/maskedPaths",
        "/linux/readonlyPaths",
    ] {
        assert_eq!(
            ours.pointer(ptr),
            runc.pointer(ptr),
            "{ptr} differs from runc spec"
        );
    }

    let before = std::fs::read(dir.path().join("config.json")).expect("read");
    let out = rt.cmd(&["spec", "--bundle", &d]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exists"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        std::fs::read(dir.path().join("config.json")).expect("read"),
        before
    );

    let rootless = temp_dir("specrl");
    let r = rootless.path().to_string_lossy().into_owned();
    rt.ok(&["spec", "--rootless", "--bundle", &r]);
    let rl = read_json(&rootless.path().join("config.json"));
    let runc_rl = temp_dir("runcspecrl");
    let out = std::process::Command::new("runc")
        .args(["spec", "--rootless", "--bundle"])
        .arg(runc_rl.path())
        .output()
        .expect("run runc spec --rootless");
    assert!(out.status.success(), "{}", describe(&out));
    let runc_rl = read_json(&runc_rl.path().join("config.json"));
    for ptr in [
        "/linux/namespaces",
        "/linux/uidMappings",
        "/linux/gidMappings",
        "/mounts",
    ] {
        assert_eq!(
            rl.pointer(ptr),
            runc_rl.pointer(ptr),
            "--rootless {ptr} differs from runc"
        );
    }
    assert!(rl.pointer("/linux/resources").is_none());
}

#[test]
fn features_is_valid_json_with_the_oci_keys() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    let f: Value = serde_json::from_slice(&rt.ok(&["features"]).stdout).expect("features JSON");
    assert_eq!(f["ociVersionMin"], "1.0.0");
    assert!(
        f["ociVersionMax"]
            .as_str()
            .is_some_and(|v| v.starts_with("1."))
    );
    let hooks = f["hooks"].as_array().expect("hooks");
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(hooks.contains(&json!(h)), "hooks lacks {h}: {f}");
    }
    assert!(
        f["mountOptions"]
            .as_array()
            .is_some_and(|m| m.contains(&json!("rbind")))
    );
    let linux = &f["linux"];
    let nss = linux["namespaces"].as_array().expect("namespaces");
    for ns in ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"] {
        assert!(nss.contains(&json!(ns)), "{ns}");
    }
    assert!(
        linux["capabilities"]
            .as_array()
            .is_some_and(|c| c.contains(&json!("CAP_SYS_ADMIN")))
    );
    assert!(linux["cgroup"]["v1"].is_boolean() && linux["cgroup"]["v2"].is_boolean());
    assert!(linux["seccomp"]["enabled"].is_boolean(), "{linux}");
    assert!(
        linux["seccomp"]["actions"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("SCMP_ACT_ERRNO")))
    );
}

#[test]
fn log_json_records_failures() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    let dir = temp_dir("log");
    let log = dir.path().join("runtime.log");
    let ghost = cid("ghost");
    // podman writes `--log-format=json`; others pass the value separately.
    for fmt in [vec!["--log-format=json"], vec!["--log-format", "json"]] {
        let mut args = vec!["--log", log.to_str().expect("utf-8")];
        args.extend(fmt);
        args.extend(["delete", &ghost]);
        let out = rt.cmd(&args);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    }
    let text = std::fs::read_to_string(&log).expect("log written");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for l in lines {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert_eq!(v["level"], "error", "{l}");
        assert!(v["msg"].as_str().is_some_and(|m| m.contains(&ghost)), "{l}");
        assert!(v["time"].is_string(), "{l}");
    }
}

#[test]
fn default_root_is_run_berth_runtime() {
    if !testutil::require_root() {
        return;
    }
    let out = std::process::Command::new(testutil::runtime_binary())
        .arg("--help")
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("[default: /run/berth-runtime]"), "{help}");
}

#[test]
fn concurrent_containers_do_not_interfere() {
    if !testutil::require_root() {
        return;
    }
    let rt = Arc::new(Runtime::berth());
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let rt = rt.clone();
            std::thread::spawn(move || {
                let mut bundle = Bundle::busybox(&["sleep", "1000"]);
                let host = format!("berth-test-host{i}");
                bundle.edit(|s| s["hostname"] = json!(host));
                let id = cid(&format!("conc{i}"));
                let _g = rt.guard(&id);
                for _ in 0..3 {
                    run_detached(&rt, &bundle, &id);
                    let pid = init_pid(&rt, &id);
                    let out = rt.ok(&["exec", &id, "contest", "info"]);
                    assert_eq!(
                        kv(&out)["hostname"],
                        host,
                        "exec landed in another container"
                    );
                    let ps = stdout(&rt.ok(&["ps", "--format", "json", &id]));
                    assert_eq!(ps.trim(), format!("[{pid}]"));
                    rt.ok(&["delete", "--force", &id]);
                    assert!(wait_pid_exit(pid, std::time::Duration::from_secs(10)));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker panicked");
    }
    let left = stdout(&rt.ok(&["list", "-q"]));
    assert!(left.trim().is_empty(), "{left}");
}
