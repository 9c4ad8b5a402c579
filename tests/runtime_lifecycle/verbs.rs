//! create, start, state, kill, delete and run.

use std::time::Duration;

use serde_json::json;
use testutil::{Bundle, Runtime, describe};

use crate::common::{
    assert_nothing_left, cid, create, init_pid, pidfd, run_detached, state, status, stderr, stdout,
    wait_pid_exit, wait_pidfd, wait_until,
};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn create_start_state_kill_delete_walk_the_states() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    let bundle = Bundle::busybox(&["sleep", "1000"]);
    let id = cid("states");
    let _g = rt.guard(&id);
    let pid_file = bundle.path().join("init.pid");
    create(
        &rt,
        &bundle,
        &id,
        &["--pid-file", &pid_file.to_string_lossy()],
    );

    let st = state(&rt, &id);
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["ociVersion"], "1.0.2-dev");
    assert_eq!(
        st["bundle"],
        json!(bundle.path().to_string_lossy()),
        "bundle must be the absolute bundle path"
    );
    assert!(
        st["created"].as_str().is_some_and(|c| c.contains('T')),
        "{st}"
    );
    let pid = init_pid(&rt, &id);
    assert!(pid > 0, "{st}");
    let written = std::fs::read_to_string(&pid_file).expect("read pid file");
    assert_eq!(
        written.trim(),
        pid.to_string(),
        "--pid-file holds init's pid"
    );
    // The pid is a real process: init, in its own pid namespace, waiting for start.
    let init_fd = pidfd(pid).expect("init of a created container is alive");
    let host_ns = std::fs::read_link("/proc/self/ns/pid").expect("own pid ns");
    let init_ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).expect("init pid ns");
    assert_ne!(host_ns, init_ns, "init runs in a new pid namespace");

    rt.ok(&["start", &id]);
    assert_eq!(status(&rt, &id), "running");
    assert_eq!(init_pid(&rt, &id), pid, "start keeps the pid");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    assert!(cmdline.starts_with(b"sleep\0"), "init exec'd the program");
    assert_default_signals(pid);
    // start twice: runc refuses to start a running container.
    let again = rt.cmd(&["start", &id]);
    assert_eq!(again.status.code(), Some(1), "{}", describe(&again));

    rt.ok(&["kill", &id, "KILL"]);
    assert!(wait_pidfd(&init_fd, WAIT), "init survived SIGKILL");
    let st = state(&rt, &id);
    assert_eq!(st["status"], "stopped", "{st}");
    assert_eq!(st["pid"], 0, "runc reports pid 0 once stopped: {st}");

    let out = rt.cmd(&["kill", &id, "TERM"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "kill of a stopped container: {}",
        describe(&out)
    );
    assert!(stderr(&out).contains("stopped"), "{}", describe(&out));

    rt.ok(&["delete", &id]);
    let out = rt.cmd(&["state", &id]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "state after delete: {}",
        describe(&out)
    );
    assert_nothing_left(&rt, &id, &bundle.rootfs());
}

/// The program starts with every signal at its default disposition and none blocked, as under
/// runc: the runtime's own (Rust ignores SIGPIPE) must not leak into the container.
pub(crate) fn assert_default_signals(pid: i32) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    for field in ["SigIgn:", "SigBlk:"] {
        let v = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .map(str::trim)
            .expect("signal field");
        assert_eq!(v, "0000000000000000", "{field} of pid {pid}");
    }
}

#[test]
fn run_passes_the_exit_code_through() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    let mut bundle = Bundle::busybox(&["sh", "-c", "echo out; exit 7"]);
    let id = cid("exit7");
    let _g = rt.guard(&id);
    let out = rt.run(&bundle, &id);
    assert_eq!(out.status.code(), Some(7), "{}", describe(&out));
    assert_eq!(stdout(&out), "out\n", "the container's stdout is run's");
    // Without --keep, run deletes the container.
    assert_eq!(rt.cmd(&["state", &id]).status.code(), Some(1));
    assert_nothing_left(&rt, &id, &bundle.rootfs());

    // A container killed by a signal exits 128+signal. Without a pid namespace the program
    // is not a namespace init and its own signal ends it.
    bundle.edit(|s| {
        let nss = s["linux"]["namespaces"].as_array_mut().expect("namespaces");
        nss.retain(|n| n["type"] != "pid");
    });
    for (sig, code) in [("KILL", 137), ("TERM", 143), ("USR1", 138)] {
        bundle.edit(|s| s["process"]["args"] = json!(["contest", "signal-self", sig]));
        let id = cid("sig");
        let _g = rt.guard(&id);
        let out = rt.run(&bundle, &id);
        assert_eq!(
            out.status.code(),
            Some(code),
            "SIG{sig}: {}",
            describe(&out)
        );
    }
}

#[test]
fn run_foreground_returns_128_plus_signal_when_killed() {
    if !testutil::require_root() {
        return;
    }
    let rt = std::sync::Arc::new(Runtime::berth());
    let bundle = Bundle::busybox(&["sleep", "1000"]);
    let id = cid("fgkill");
    let _g = rt.guard(&id);
    let (rt2, id2, b) = (rt.clone(), id.clone(), bundle.path().to_path_buf());
    let runner =
        std::thread::spawn(move || rt2.cmd(&["run", "--bundle", &b.to_string_lossy(), &id2]));
    assert!(
        wait_until(WAIT, || rt.cmd(&["state", &id]).status.success()
            && status(&rt, &id) == "running"),
        "container never ran"
    );
    rt.ok(&["kill", &id, "SIGKILL"]);
    let out = runner.join().expect("runner thread");
    assert_eq!(out.status.code(), Some(137), "{}", describe(&out));
}

#[test]
fn run_detached_and_keep() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    let mut bundle = Bundle::busybox(&["sleep", "1000"]);
    let id = cid("detach");
    let g = rt.guard(&id);
    run_detached(&rt, &bundle, &id);
    assert_eq!(status(&rt, &id), "running");
    let pid = init_pid(&rt, &id);
    assert!(pidfd(pid).is_some(), "detached init is alive");
    rt.ok(&["delete", "--force", &id]);
    assert!(wait_pid_exit(pid, WAIT));
    drop(g);

    bundle.edit(|s| s["process"]["args"] = json!(["sh", "-c", "exit 3"]));
    let id = cid("keep");
    let _g = rt.guard(&id);
    let b = bundle.path().to_string_lossy().into_owned();
    let out = rt.cmd(&["run", "--keep", "--bundle", &b, &id]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let st = state(&rt, &id);
    assert_eq!(
        st["status"], "stopped",
        "--keep keeps the stopped container: {st}"
    );
    assert_eq!(st["pid"], 0);
    rt.ok(&["delete", &id]);
    assert_nothing_left(&rt, &id, &bundle.rootfs());
}

/// `contest wait-signal` as the container's init, reporting to /sig in the rootfs.
fn signal_bundle() -> Bundle {
    let mut b = Bundle::busybox(&["sh", "-c", "exec contest wait-signal > /sig"]);
    b.edit(|s| s["root"]["readonly"] = json!(false));
    b
}

#[test]
fn kill_accepts_names_with_and_without_sig_and_numbers() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    for (arg, num) in [
        ("USR1", 10),
        ("SIGUSR2", 12),
        ("10", 10),
        ("TERM", 15),
        ("hup", 1),
    ] {
        let bundle = signal_bundle();
        let id = cid("sig");
        let _g = rt.guard(&id);
        run_detached(&rt, &bundle, &id);
        let out_file = bundle.rootfs().join("sig");
        assert!(
            wait_until(WAIT, || std::fs::read_to_string(&out_file)
                .is_ok_and(|s| s.contains("ready=1"))),
            "contest never got ready"
        );
        let pid = init_pid(&rt, &id);
        rt.ok(&["kill", &id, arg]);
        assert!(wait_pid_exit(pid, WAIT), "init did not exit after {arg}");
        let got = testutil::parse_kv(&std::fs::read_to_string(&out_file).expect("read /sig"));
        assert_eq!(
            got.get("signal").map(String::as_str),
            Some(num.to_string().as_str()),
            "kill {arg}: {got:?}"
        );
    }
    let bundle = signal_bundle();
    let id = cid("badsig");
    let _g = rt.guard(&id);
    run_detached(&rt, &bundle, &id);
    for bad in ["NOPE", "0", "99"] {
        let out = rt.cmd(&["kill", &id, bad]);
        assert_eq!(out.status.code(), Some(1), "kill {bad}: {}", describe(&out));
    }
    assert_eq!(status(&rt, &id), "running", "a refused signal is not sent");
}

#[test]
fn kill_all_signals_every_process_in_the_cgroup() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    // sh is the pid namespace's init: SIGTERM from outside is ignored by it (no handler), so
    // only `--all` reaches the children.
    let bundle = Bundle::busybox(&["sh", "-c", "sleep 1000 & sleep 1000 & wait"]);
    let id = cid("killall");
    let _g = rt.guard(&id);
    run_detached(&rt, &bundle, &id);
    let pids = || -> Vec<i32> {
        serde_json::from_slice(&rt.ok(&["ps", "--format", "json", &id]).stdout).expect("ps json")
    };
    assert!(
        wait_until(WAIT, || pids().len() == 3),
        "expected sh + 2 sleeps: {:?}",
        pids()
    );
    let before = pids();
    let fds: Vec<_> = before.iter().map(|&p| pidfd(p).expect("pidfd")).collect();

    rt.ok(&["kill", &id, "TERM"]);
    assert_eq!(
        pids(),
        before,
        "plain kill signals only init, which ignores TERM"
    );

    rt.ok(&["kill", "--all", &id, "TERM"]);
    for (fd, pid) in fds.iter().zip(&before) {
        assert!(wait_pidfd(fd, WAIT), "pid {pid} survived kill --all TERM");
    }
    assert!(wait_until(WAIT, || status(&rt, &id) == "stopped"));
}

#[test]
fn delete_rules_match_runc() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    let bundle = Bundle::busybox(&["sleep", "1000"]);

    // Running: refused without --force, and the container keeps running.
    let id = cid("delrun");
    let _g = rt.guard(&id);
    run_detached(&rt, &bundle, &id);
    let pid = init_pid(&rt, &id);
    let out = rt.cmd(&["delete", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(status(&rt, &id), "running");
    rt.ok(&["delete", "--force", &id]);
    assert!(wait_pid_exit(pid, WAIT), "delete --force kills init");
    assert_nothing_left(&rt, &id, &bundle.rootfs());

    // Created: delete works without --force and removes the waiting init.
    let id = cid("delcreated");
    let _g = rt.guard(&id);
    create(&rt, &bundle, &id, &[]);
    let pid = init_pid(&rt, &id);
    rt.ok(&["delete", &id]);
    assert!(
        wait_pid_exit(pid, WAIT),
        "delete of a created container kills its init"
    );
    assert_nothing_left(&rt, &id, &bundle.rootfs());

    // Unknown: docker and ctr rely on --force succeeding and plain delete failing.
    let ghost = cid("ghost");
    let out = rt.cmd(&["delete", "--force", &ghost]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let out = rt.cmd(&["delete", &ghost]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains("does not exist"),
        "{}",
        describe(&out)
    );
}
