//! Bad input: each case fails `create` with exit status 1 and one line naming the field, and
//! leaves no state dir, mount, cgroup or process behind.

use serde_json::{Value, json};
use testutil::{Bundle, Runtime, describe};

use crate::common::{assert_clean_failure, assert_nothing_left, cid, create, status, stderr};

/// Creates a container from a busybox bundle changed by `edit` and checks it fails cleanly,
/// naming `field`.
fn refuse(rt: &Runtime, tag: &str, field: &str, edit: impl FnOnce(&mut Value)) {
    let mut bundle = Bundle::busybox(&["sleep", "1000"]);
    bundle.edit(edit);
    refuse_bundle(rt, &bundle, tag, field);
}

fn refuse_bundle(rt: &Runtime, bundle: &Bundle, tag: &str, field: &str) {
    let id = cid(tag);
    let _g = rt.guard(&id);
    let b = bundle.path().to_string_lossy().into_owned();
    let out = rt.cmd(&["create", "--bundle", &b, &id]);
    assert_clean_failure(rt, &out, &id, &bundle.rootfs(), field);
    eprintln!("{tag}: {}", stderr(&out).trim());
}

fn add_userns(s: &mut Value) {
    s["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .push(json!({"type": "user"}));
}

#[test]
fn malformed_and_mistyped_configs() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    let bundle = Bundle::busybox(&["true"]);
    std::fs::write(
        bundle.config_path(),
        "{\"ociVersion\": \"1.0.2\", \"process\": {",
    )
    .expect("write");
    refuse_bundle(&rt, &bundle, "syntax", "config.json");

    refuse(&rt, "cwdrel", "process.cwd", |s| {
        s["process"]["cwd"] = json!("tmp")
    });
    refuse(&rt, "argsempty", "process.args", |s| {
        s["process"]["args"] = json!([])
    });
    refuse(&rt, "uidtype", "process.user.uid", |s| {
        s["process"]["user"]["uid"] = json!("x")
    });
    refuse(&rt, "nsunknown", "linux.namespaces[1].type", |s| {
        s["linux"]["namespaces"][1]["type"] = json!("bogus");
    });
    refuse(&rt, "capunknown", "process.capabilities.bounding[3]", |s| {
        s["process"]["capabilities"]["bounding"]
            .as_array_mut()
            .expect("bounding")
            .push(json!("CAP_BOGUS"));
    });
}

#[test]
fn missing_rootfs_and_namespace_paths() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    refuse(&rt, "norootfs", "root.path", |s| {
        s["root"]["path"] = json!("no-such-rootfs")
    });
    refuse(&rt, "nspath", "linux.namespaces[1].path", |s| {
        s["linux"]["namespaces"][1]["path"] = json!("/run/netns/berth-test-does-not-exist");
    });
    refuse(&rt, "nsnotns", "linux.namespaces[0].path", |s| {
        s["linux"]["namespaces"][0]["path"] = json!("/etc/passwd");
    });
    refuse(&rt, "cgpath", "linux.cgroupsPath", |s| {
        s["linux"]["cgroupsPath"] = json!("../../berth-test-escape");
    });
    refuse(&rt, "oomadj", "process.oomScoreAdj", |s| {
        s["process"]["oomScoreAdj"] = json!(5000);
    });
    refuse(&rt, "noprog", "process.args[0]", |s| {
        s["process"]["args"] = json!(["no-such-program"]);
    });
}

#[test]
fn impossible_id_mappings() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    let gid = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let g2 = gid.clone();
    refuse(&rt, "mapoverlap", "linux.uidMappings[1]", move |s| {
        add_userns(s);
        s["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": 100000, "size": 1000},
            {"containerID": 500, "hostID": 300000, "size": 1000}
        ]);
        s["linux"]["gidMappings"] = g2;
    });
    refuse(&rt, "mapzero", "linux.uidMappings[0]", move |s| {
        add_userns(s);
        s["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 0}]);
        s["linux"]["gidMappings"] = gid;
    });
    refuse(&rt, "mapnons", "linux.uidMappings", |s| {
        s["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 10}]);
    });
}

#[test]
fn refused_security_settings() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    refuse(
        &rt,
        "scunknown",
        "linux.seccomp.syscalls[1].names[2]",
        |s| {
            s["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {"names": ["getpid"], "action": "SCMP_ACT_ERRNO"},
                    {"names": ["read", "write", "no_such_syscall"], "action": "SCMP_ACT_ERRNO"}
                ]
            });
        },
    );
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .expect("finite RLIMIT_NOFILE");
    refuse(&rt, "rlimit", "process.rlimits[0]", move |s| {
        s["process"]["rlimits"] =
            json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": hard + 1}]);
    });
    refuse(&rt, "sysctl", "linux.sysctl.vm.swappiness", |s| {
        s["linux"]["sysctl"] = json!({"vm.swappiness": "10"});
    });
}

#[test]
fn hooks_and_mount_sources() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    refuse(&rt, "hookrel", "hooks.prestart[0].path", |s| {
        s["hooks"] = json!({"prestart": [{"path": "bin/true"}]});
    });
    // A failing prestart hook runs after namespaces and the cgroup exist: all of it must go.
    refuse(&rt, "hookfail", "hooks.prestart[1]", |s| {
        s["hooks"] = json!({"prestart": [
            {"path": "/bin/true"},
            {"path": "/bin/sh", "args": ["sh", "-c", "echo first line >&2; echo second >&2; exit 3"]}
        ]});
    });
    refuse(
        &rt,
        "bindsrc",
        "mounts[7] (bind on /mnt): open bind source /tmp/berth-test-no-such-source",
        |s| {
            s["mounts"].as_array_mut().expect("mounts").push(json!({
                "destination": "/mnt", "type": "bind",
                "source": "/tmp/berth-test-no-such-source", "options": ["rbind"]
            }));
        },
    );
}

#[test]
fn invalid_and_duplicate_ids() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    let bundle = Bundle::busybox(&["sleep", "1000"]);
    let b = bundle.path().to_string_lossy().into_owned();
    for bad in ["../x", "a/b", "..", ""] {
        let out = rt.cmd(&["create", "--bundle", &b, bad]);
        assert_eq!(out.status.code(), Some(1), "id {bad:?}: {}", describe(&out));
        let err = stderr(&out);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains("id"), "{err}");
    }
    let entries: Vec<_> = std::fs::read_dir(&rt.root).expect("root").collect();
    assert!(
        entries.is_empty(),
        "invalid ids left {entries:?} in the state root"
    );
    assert!(
        !rt.root.parent().expect("base").join("x").exists(),
        "../x escaped the root"
    );

    // Ids that climb out of the root never reach another root's containers.
    let other = Runtime::berth();
    let victim = cid("victim");
    let _gv = other.guard(&victim);
    create(&other, &bundle, &victim, &[]);
    let other_name = other.root.file_name().expect("root name").to_string_lossy();
    let parent = other
        .root
        .parent()
        .and_then(|p| p.file_name())
        .expect("base name");
    let climb = format!("../../{}/{other_name}/{victim}", parent.to_string_lossy());
    assert!(
        rt.root.join(&climb).join("state.json").exists(),
        "{climb} must name the victim"
    );
    for verb in [
        &["state"][..],
        &["kill"],
        &["delete", "--force"],
        &["exec"],
        &["pause"],
    ] {
        let mut args = verb.to_vec();
        args.push(&climb);
        if verb == ["exec"] {
            args.push("true");
        }
        let out = rt.cmd(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", describe(&out));
        assert!(
            stderr(&out).contains("invalid container id"),
            "{}",
            describe(&out)
        );
    }
    assert_eq!(
        status(&other, &victim),
        "created",
        "the other root's container was touched"
    );

    let id = cid("dup");
    let _g = rt.guard(&id);
    create(&rt, &bundle, &id, &[]);
    let out = rt.cmd(&["create", "--bundle", &b, &id]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains("already exists"),
        "{}",
        describe(&out)
    );
    assert_eq!(stderr(&out).trim_end().lines().count(), 1);
    assert_eq!(
        status(&rt, &id),
        "created",
        "the first container is untouched"
    );
    rt.ok(&["delete", &id]);
    assert_nothing_left(&rt, &id, &bundle.rootfs());
}

#[test]
fn systemd_cgroup_driver_is_refused_cleanly() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    let bundle = Bundle::busybox(&["true"]);
    let id = cid("systemd");
    let _g = rt.guard(&id);
    let b = bundle.path().to_string_lossy().into_owned();
    let out = rt.cmd(&["--systemd-cgroup", "create", "--bundle", &b, &id]);
    assert_clean_failure(&rt, &out, &id, &bundle.rootfs(), "systemd");
}
