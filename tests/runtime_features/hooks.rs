//! Hooks: all six kinds get the state on stdin; a failing prestart hook fails create and leaves
//! nothing; a hanging hook is killed at its timeout.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::common::{TempDir, bundle, create_fails, runtime, state, wait_pid_exit};

const KINDS: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// A hook that writes its stdin to `<dir>/<kind>.json`. /bin/sh exists on the host and in the
/// busybox rootfs (startContainer runs inside the container, where `dir` is bind-mounted at the
/// same path).
fn recording_hook(dir: &TempDir, kind: &str) -> Value {
    let file = dir.join(&format!("{kind}.json"));
    json!({ "path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}", file.display())] })
}

fn read_state(dir: &TempDir, kind: &str) -> Value {
    let p = dir.join(&format!("{kind}.json"));
    let text = std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{kind} hook did not run ({}): {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{kind} state {text:?}: {e}"))
}

#[test]
fn all_six_hooks_get_the_state_on_stdin() {
    if !testutil::require_root() {
        return;
    }
    let dir = TempDir::new("hooks");
    let annotations = json!({ "org.berth.test": "hooks", "com.example.n": "1" });
    let b = bundle(&["/bin/contest", "exit", "0"], |s| {
        let mut hooks = serde_json::Map::new();
        for kind in KINDS {
            hooks.insert(kind.to_owned(), json!([recording_hook(&dir, kind)]));
        }
        s["hooks"] = Value::Object(hooks);
        s["annotations"] = annotations.clone();
        if let Some(m) = s["mounts"].as_array_mut() {
            m.push(
                json!({ "destination": dir.path(), "type": "bind", "source": dir.path(),
                           "options": ["bind"] }),
            );
        }
    });
    let (rt, id, _guard) = runtime("hooks");
    let bundle_path = b.path().to_str().unwrap_or_default();
    rt.ok(&["create", "--bundle", bundle_path, &id]);
    let pid = state(&rt, &id)["pid"].as_i64().unwrap_or(0);
    for kind in ["prestart", "createRuntime", "createContainer"] {
        assert!(
            dir.join(&format!("{kind}.json")).exists(),
            "{kind} before create returned"
        );
    }
    for kind in ["startContainer", "poststart", "poststop"] {
        assert!(
            !dir.join(&format!("{kind}.json")).exists(),
            "{kind} ran at create"
        );
    }
    rt.ok(&["start", &id]);
    assert!(wait_pid_exit(
        i32::try_from(pid).unwrap_or(0),
        Duration::from_secs(30)
    ));
    assert!(
        !dir.join("poststop.json").exists(),
        "poststop ran before delete"
    );
    rt.ok(&["delete", &id]);

    // (kind, status, pid): createContainer and startContainer run in the container, where the
    // process sees itself as PID 1 (as with runc, which passes getpid() there).
    let expect = [
        ("prestart", "created", Some(pid)),
        ("createRuntime", "created", Some(pid)),
        ("createContainer", "created", Some(1)),
        ("startContainer", "created", Some(1)),
        ("poststart", "running", Some(pid)),
        ("poststop", "stopped", None),
    ];
    for (kind, status, want_pid) in expect {
        let st = read_state(&dir, kind);
        assert_eq!(st["id"], json!(id), "{kind}: {st}");
        assert_eq!(st["status"], json!(status), "{kind}: {st}");
        assert_eq!(st["bundle"], json!(bundle_path), "{kind}: {st}");
        assert_eq!(st["annotations"], annotations, "{kind}: {st}");
        assert_eq!(st["ociVersion"], json!("1.0.2-dev"), "{kind}: {st}");
        if let Some(p) = want_pid {
            assert_eq!(st["pid"], json!(p), "{kind}: {st}");
        }
    }
}

#[test]
fn a_failing_prestart_hook_fails_create_and_leaves_nothing() {
    if !testutil::require_root() {
        return;
    }
    let dir = TempDir::new("hookfail");
    let b = bundle(&["/bin/true"], |s| {
        s["hooks"] = json!({
            "prestart": [{ "path": "/bin/sh", "args": ["sh", "-c", "echo boom >&2; exit 3"] }],
            "poststart": [recording_hook(&dir, "poststart")],
        });
    });
    let err = create_fails(&b, "prestart hook /bin/sh");
    assert!(
        err.contains("boom"),
        "the hook's stderr is not in the error: {err}"
    );
    assert!(err.contains('3'), "{err}");
    assert!(!dir.join("poststart.json").exists());
}

#[test]
fn a_hanging_hook_is_killed_at_its_timeout() {
    if !testutil::require_root() {
        return;
    }
    let dir = TempDir::new("hookhang");
    let pidfile = dir.join("hook.pid");
    let script = format!("echo $$ > {}; exec sleep 600", pidfile.display());
    let b = bundle(&["/bin/true"], |s| {
        s["hooks"] = json!({
            "createRuntime": [{ "path": "/bin/sh", "args": ["sh", "-c", script], "timeout": 1 }],
        });
    });
    let started = Instant::now();
    let err = create_fails(&b, "createRuntime hook /bin/sh");
    assert!(err.contains("timed out after 1s"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let hook_pid: i32 = std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("the hook did not write its pid"));
    assert!(
        wait_pid_exit(hook_pid, Duration::from_secs(5)),
        "the hanging hook {hook_pid} still runs"
    );
}
