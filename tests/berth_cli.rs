//! End-to-end tests of the `berth` CLI: import a busybox rootfs tarball, run containers in the
//! foreground and detached, and check that `rm -f` leaves no mount, cgroup or monitor behind.
//! Every test uses its own `berth-test-` roots, removed (containers, mounts, dirs) on drop.

// A test target: helpers outside `#[test]` functions fail the test with `expect` too.
#![allow(clippy::expect_used)]

use testutil::{Berth, cgroups_named, describe, processes_with, stdout, wait_until};

#[test]
fn import_then_images_lists_the_name() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("cli-images");
    let id = b.import_busybox("busybox:1");
    assert!(
        id.starts_with("sha256:"),
        "import prints the image id: {id}"
    );
    let out = stdout(&b.ok(&["images"]));
    let mut lines = out.lines();
    let header = lines.next().expect("header");
    for col in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(header.contains(col), "{header}");
    }
    let row = lines.next().expect("a row");
    assert!(row.starts_with("busybox "), "{row}");
    assert!(row.contains(" 1 ") && row.contains(&id[7..19]), "{row}");
    assert_eq!(stdout(&b.ok(&["images", "-q"])).trim(), &id[7..19]);
}

#[test]
fn foreground_run_prints_output_and_returns_the_exit_code() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("cli-run");
    b.import_busybox("bb");
    let out = b.ok(&["run", "--rm", "bb", "echo", "hi"]);
    assert_eq!(stdout(&out), "hi\n");
    assert_eq!(
        stdout(&b.ok(&["ps", "-aq"])),
        "",
        "--rm removed the container"
    );

    let out = b.cmd(&["run", "bb", "sh", "-c", "echo oops >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    let ps = stdout(&b.ok(&["ps", "-a"]));
    assert!(ps.contains("Exited (3)"), "{ps}");
    assert!(
        b.mounts().is_empty(),
        "rootfs unmounted after exit: {:?}",
        b.mounts()
    );

    let out = b.cmd(&["run", "--rm", "bb", "/no/such/program"]);
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));

    let out = b.cmd(&["run", "no-such-image", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
}

#[test]
fn detached_container_outlives_the_cli_and_rm_force_leaves_nothing() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("cli-detach");
    b.import_busybox("bb");
    let out = b.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "bb",
        "sh",
        "-c",
        "echo ready; exec sleep 30",
    ]);
    let id = stdout(&out).trim().to_owned();
    assert_eq!(id.len(), 64, "run -d prints the full id: {id}");

    // The CLI has exited; the monitor keeps the container running.
    let ps = stdout(&b.ok(&["ps"]));
    assert!(ps.contains("web") && ps.contains("Up "), "{ps}");
    assert!(ps.contains(&id[..12]), "{ps}");
    wait_until("log output", || {
        stdout(&b.ok(&["logs", "web"])) == "ready\n"
    });
    assert!(!processes_with(&id).is_empty(), "a monitor runs for {id}");
    assert!(!b.mounts().is_empty(), "the rootfs is mounted");

    b.ok(&["rm", "-f", "web"]);
    assert_eq!(stdout(&b.ok(&["ps", "-aq"])), "");
    assert!(b.mounts().is_empty(), "mounts left: {:?}", b.mounts());
    assert!(
        cgroups_named(&id).is_empty(),
        "cgroups left: {:?}",
        cgroups_named(&id)
    );
    assert!(
        processes_with(&id).is_empty(),
        "processes left: {:?}",
        processes_with(&id)
    );
    assert!(!b.root.join("containers").join(&id).exists(), "bundle left");
}

#[test]
fn stop_records_the_signal_exit() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("cli-stop");
    b.import_busybox("bb");
    b.ok(&["run", "-d", "--name", "stopper", "bb", "sleep", "30"]);
    b.ok(&["stop", "-t", "1", "stopper"]);
    let ps = stdout(&b.ok(&["ps", "-a"]));
    // sleep as pid 1 ignores SIGTERM; the SIGKILL after the timeout ends it.
    assert!(ps.contains("Exited (137)"), "{ps}");
    assert!(b.mounts().is_empty(), "mounts left: {:?}", b.mounts());
    b.ok(&["rm", "stopper"]);
}

/// `berth inspect` of one object, parsed.
fn inspect(b: &Berth, object: &str) -> serde_json::Value {
    let out = b.ok(&["inspect", object]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect prints JSON");
    let arr = v.as_array().expect("inspect prints an array");
    assert_eq!(arr.len(), 1, "{v}");
    arr[0].clone()
}

#[test]
fn exec_passes_env_and_exit_code_and_joins_the_namespaces() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("cli-exec");
    b.import_busybox("bb");
    let out = b.ok(&["run", "-d", "--name", "box", "bb", "sleep", "30"]);
    let id = stdout(&out).trim().to_owned();

    let out = b.cmd(&[
        "exec",
        "-e",
        "FOO=bar",
        "box",
        "sh",
        "-c",
        "echo $FOO; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    assert_eq!(stdout(&out), "bar\n");

    // The container's uts namespace: its hostname is the short id, not the host's.
    let out = b.ok(&["exec", "box", "hostname"]);
    assert_eq!(stdout(&out).trim(), &id[..12]);
    // Its pid namespace: sleep is pid 1.
    let out = b.ok(&["exec", "box", "cat", "/proc/1/cmdline"]);
    assert!(stdout(&out).starts_with("sleep"), "{}", describe(&out));
    // Overrides: cwd and user.
    let out = b.ok(&[
        "exec",
        "-w",
        "/tmp",
        "-u",
        "1000:100",
        "box",
        "sh",
        "-c",
        "pwd; id -u; id -g",
    ]);
    assert_eq!(stdout(&out), "/tmp\n1000\n100\n");

    b.ok(&["stop", "-t", "0", "box"]);
    let out = b.cmd(&["exec", "box", "true"]);
    assert!(
        matches!(out.status.code(), Some(1 | 125)),
        "{}",
        describe(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("is not running"), "{err}");

    b.ok(&["rm", "-f", "box"]);
    assert_eq!(stdout(&b.ok(&["ps", "-aq"])), "");
    assert!(b.mounts().is_empty(), "mounts left: {:?}", b.mounts());
    assert!(processes_with(&id).is_empty(), "processes left");
}

#[test]
fn inspect_shows_state_pid_exit_code_and_repo_tags() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("cli-inspect");
    let image_id = b.import_busybox("bb:1");
    let id = stdout(&b.ok(&["run", "-d", "--name", "up", "bb:1", "sleep", "30"]))
        .trim()
        .to_owned();
    let v = inspect(&b, "up");
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(v["Name"], "/up");
    assert_eq!(v["Path"], "sleep");
    assert_eq!(v["Args"], serde_json::json!(["30"]));
    assert_eq!(v["Image"], image_id.as_str());
    assert_eq!(v["State"]["Status"], "running");
    assert_eq!(v["State"]["Running"], true);
    let pid = v["State"]["Pid"].as_i64().expect("Pid");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&cmdline).starts_with("sleep"),
        "Pid {pid} is the container's init"
    );
    let out = b.ok(&["inspect", "-f", "{{.Name}} {{.State.Pid}}", "up"]);
    assert_eq!(stdout(&out), format!("/up {pid}\n"));
    let host_uts = std::fs::read_link("/proc/self/ns/uts").expect("own uts ns");
    let uts = std::fs::read_link(format!("/proc/{pid}/ns/uts")).expect("init's uts ns");
    assert_ne!(
        uts, host_uts,
        "Pid {pid} runs in the container's namespaces"
    );

    let out = b.cmd(&["run", "--name", "done", "bb:1", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", describe(&out));
    let v = inspect(&b, "done");
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["Running"], false);
    assert_eq!(v["State"]["ExitCode"], 7);
    assert_eq!(v["State"]["Pid"], 0);

    let v = inspect(&b, "bb:1");
    assert_eq!(v["Id"], image_id.as_str());
    assert_eq!(v["RepoTags"], serde_json::json!(["bb:1"]));
    assert!(
        v["RootFS"]["Layers"]
            .as_array()
            .is_some_and(|l| !l.is_empty()),
        "{v}"
    );

    let out = b.cmd(&["inspect", "no-such-thing"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));

    b.ok(&["rm", "-f", "up", "done"]);
    assert_eq!(stdout(&b.ok(&["ps", "-aq"])), "");
    assert!(b.mounts().is_empty(), "mounts left: {:?}", b.mounts());
}

#[test]
fn output_into_a_closed_pipe_ends_quietly_like_sigpipe() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("cli-pipe");
    b.import_busybox("busybox:1");
    // `berth image inspect x | head -c0`: the reader is gone before berth writes.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = b
        .command(&["image", "inspect", "busybox:1"])
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run berth");
    assert_eq!(out.status.code(), Some(141), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
