//! exec: arguments, flags, `--process`, detached exec with a pid file, exit codes.

use std::time::Duration;

use serde_json::json;
use testutil::{Bundle, Runtime, describe};

use crate::common::{
    bundle_file, cid, init_pid, kv, run_detached, state, stderr, stdout, wait_pid_exit,
};

const WAIT: Duration = Duration::from_secs(10);

fn cap_bit(hex: &str, bit: u32) -> bool {
    u64::from_str_radix(hex, 16).is_ok_and(|v| v & (1 << bit) != 0)
}

#[test]
fn exec_runs_in_the_container_with_flags_applied() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    let mut bundle = Bundle::busybox(&["sleep", "1000"]);
    // So that --no-new-privs is what sets it.
    bundle.edit(|s| s["process"]["noNewPrivileges"] = json!(false));
    let id = cid("exec");
    let _g = rt.guard(&id);
    run_detached(&rt, &bundle, &id);
    let init = init_pid(&rt, &id);

    // Exit codes pass through.
    let out = rt.cmd(&["exec", &id, "sh", "-c", "exit 5"]);
    assert_eq!(out.status.code(), Some(5), "{}", describe(&out));

    // Plain exec: same namespaces as init, the container's identity.
    let out = rt.ok(&["exec", &id, "contest", "info"]);
    let info = kv(&out);
    for ns in ["mnt", "pid", "net", "ipc", "uts"] {
        let want = std::fs::read_link(format!("/proc/{init}/ns/{ns}")).expect("init ns");
        assert_eq!(
            info.get(&format!("ns.{ns}")).map(String::as_str),
            Some(want.to_string_lossy().as_ref()),
            "exec joins init's {ns} namespace"
        );
    }
    assert_eq!(info["uid"], "0");
    assert_eq!(info["no_new_privs"], "0");
    assert!(
        !cap_bit(&info["cap.eff"], 21),
        "no CAP_SYS_ADMIN by default"
    );

    let out = rt.ok(&[
        "exec",
        "--env",
        "FOO=bar",
        "--cwd",
        "/tmp",
        "--user",
        "1000:1000",
        &id,
        "contest",
        "info",
    ]);
    let info = kv(&out);
    assert_eq!(info["env.FOO"], "bar");
    assert_eq!(info["cwd"], "/tmp");
    assert_eq!(
        (info["uid"].as_str(), info["gid"].as_str()),
        ("1000", "1000")
    );
    assert_eq!(
        info["env.PATH"],
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );

    let out = rt.ok(&["exec", "--cap", "CAP_SYS_ADMIN", &id, "contest", "info"]);
    let info = kv(&out);
    assert!(
        cap_bit(&info["cap.eff"], 21),
        "--cap CAP_SYS_ADMIN: {}",
        info["cap.eff"]
    );
    assert!(cap_bit(&info["cap.bnd"], 21));

    let out = rt.ok(&["exec", "--no-new-privs", &id, "contest", "info"]);
    assert_eq!(kv(&out)["no_new_privs"], "1");

    // --process: a process.json replaces the arguments.
    let proc_json = json!({
        "terminal": false,
        "user": {"uid": 1000, "gid": 1000},
        "args": ["sh", "-c", "echo $GREETING; id -u; exit 9"],
        "env": ["PATH=/bin:/usr/bin", "GREETING=hello-from-process-json"],
        "cwd": "/home/user"
    });
    let p = bundle_file(&bundle, "process.json", &proc_json.to_string());
    let out = rt.cmd(&["exec", "--process", &p.to_string_lossy(), &id]);
    assert_eq!(out.status.code(), Some(9), "{}", describe(&out));
    assert_eq!(stdout(&out), "hello-from-process-json\n1000\n");

    // -d with --pid-file: returns at once, the process runs in the container's cgroup.
    let pid_file = bundle.path().join("exec.pid");
    rt.ok(&[
        "exec",
        "-d",
        "--pid-file",
        &pid_file.to_string_lossy(),
        &id,
        "sleep",
        "1000",
    ]);
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("exec pid file")
        .trim()
        .parse()
        .expect("pid");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("exec'd process alive");
    assert!(cmdline.starts_with(b"sleep\0"), "{cmdline:?}");
    crate::verbs::assert_default_signals(pid);
    let pids: Vec<i32> =
        serde_json::from_slice(&rt.ok(&["ps", "--format", "json", &id]).stdout).expect("ps");
    assert!(pids.contains(&pid) && pids.contains(&init), "{pids:?}");
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok(),
        std::fs::read_link(format!("/proc/{init}/ns/pid")).ok()
    );

    // An unknown program fails with the runtime's error, not silently.
    let out = rt.cmd(&["exec", &id, "no-such-program"]);
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));

    rt.ok(&["kill", &id, "KILL"]);
    assert!(wait_pid_exit(init, WAIT));
    assert_eq!(state(&rt, &id)["status"], "stopped");
    let out = rt.cmd(&["exec", &id, "true"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exec into a stopped container: {}",
        describe(&out)
    );
    assert!(stderr(&out).contains("stopped"), "{}", describe(&out));
}
