//! Seccomp: errno with errnoRet, argument conditions, KILL, and user notification handed to a
//! listener at `listenerPath`.

use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;

use serde_json::{Value, json};
use testutil::parse_kv;

use super::common::{TempDir, bundle, run_any, runtime, sh};
use super::sys;

fn profile(syscalls: Value) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": syscalls,
    })
}

#[test]
fn errno_with_errno_ret_and_an_argument_condition() {
    if !testutil::require_root() {
        return;
    }
    let out = sh(
        "/bin/contest syscall mkdir | sed 's/^/mkdir./'; \
         /bin/contest syscall personality 0xffffffff | sed 's/^/query./'; \
         /bin/contest syscall personality 0x8 | sed 's/^/linux32./'; \
         /bin/contest info | grep -E '^seccomp='",
        |s| {
            s["linux"]["seccomp"] = profile(json!([
                { "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95 },
                { "names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                  "args": [{ "index": 0, "value": 8, "op": "SCMP_CMP_EQ" }] },
            ]));
        },
    );
    let kv = parse_kv(&out);
    assert_eq!(kv["mkdir.errname"], "EOPNOTSUPP", "{out}");
    assert!(
        kv.contains_key("query.ret"),
        "personality(0xffffffff) must pass: {out}"
    );
    assert_eq!(kv["linux32.errname"], "EPERM", "{out}");
    // Mode 2: a filter is installed.
    assert_eq!(kv["seccomp"], "2");
}

#[test]
fn kill_action_kills_the_container_with_sigsys() {
    if !testutil::require_root() {
        return;
    }
    let b = bundle(&["/bin/contest", "syscall", "userfaultfd"], |s| {
        s["linux"]["seccomp"] = profile(json!([
            { "names": ["userfaultfd"], "action": "SCMP_ACT_KILL_PROCESS" },
        ]));
    });
    let out = run_any(&b, "sigsys");
    assert_eq!(
        out.status.code(),
        Some(128 + libc::SIGSYS),
        "{}",
        testutil::describe(&out)
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("ret="),
        "the call returned"
    );
}

#[test]
fn notify_hands_the_listener_and_state_to_listener_path() {
    if !testutil::require_root() {
        return;
    }
    let dir = TempDir::new("seccompagent");
    let sock = dir.join("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap_or_else(|e| panic!("bind: {e}"));
    let b = bundle(
        &["/bin/contest", "syscall", "mkdir", "/tmp/notified"],
        |s| {
            let mut p = profile(json!([
                { "names": ["mkdir"], "action": "SCMP_ACT_NOTIFY" },
            ]));
            p["listenerPath"] = json!(sock);
            p["listenerMetadata"] = json!("berth-test-metadata");
            s["linux"]["seccomp"] = p;
        },
    );
    // The agent: takes the listener, reads the state, fails the container's mkdir with EXDEV.
    let agent = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap_or_else(|e| panic!("accept: {e}"));
        let (fd, bytes) = super::common::recv_fd_and_rest(&mut conn);
        let fd = fd.unwrap_or_else(|| panic!("no descriptor came with the state"));
        let n = sys::notif_recv(fd.as_fd()).unwrap_or_else(|e| panic!("NOTIF_RECV: {e}"));
        sys::notif_fail(fd.as_fd(), n.id, libc::EXDEV)
            .unwrap_or_else(|e| panic!("NOTIF_SEND: {e}"));
        (bytes, n)
    });
    let (rt, id, _guard) = runtime("notify");
    let out = rt.run(&b, &id);
    let (bytes, notif) = agent.join().unwrap_or_else(|_| panic!("agent panicked"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        parse_kv(&text).get("errname").map(String::as_str),
        Some("EXDEV"),
        "{}",
        testutil::describe(&out)
    );
    assert_eq!(i64::from(notif.data.nr), libc::SYS_mkdir);
    let st: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("state {:?}: {e}", String::from_utf8_lossy(&bytes)));
    assert_eq!(st["fds"], json!(["seccompFd"]), "{st}");
    assert_eq!(st["metadata"], json!("berth-test-metadata"), "{st}");
    assert_eq!(st["state"]["id"], json!(id), "{st}");
    assert_eq!(st["state"]["bundle"], json!(b.path()), "{st}");
    assert_eq!(st["pid"], st["state"]["pid"], "{st}");
    assert!(st["pid"].as_i64().is_some_and(|p| p > 1), "{st}");
    // The notification came from the container's process.
    assert_eq!(st["pid"].as_i64(), Some(i64::from(notif.pid)), "{st}");
}
