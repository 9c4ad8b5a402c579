//! Descriptors and terminals: `--preserve-fds` and LISTEN_FDS, the console socket for
//! `process.terminal` and `exec -t`, exec's `--cwd/--env/--user/--cap`, NOTIFY_SOCKET.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::json;
use testutil::{COMMAND_TIMEOUT, Runtime, describe, parse_kv, wait_timeout};

use super::common::{TempDir, bundle, recv_fd_and_rest, run_detached, runtime};

/// Listens on `<dir>/console.sock`; the thread takes the pty master the runtime sends and
/// returns everything read from it until the last slave closes (EIO), with `\r` removed.
fn console_listener(dir: &TempDir) -> (std::path::PathBuf, JoinHandle<(Vec<u8>, String)>) {
    let path = dir.join("console.sock");
    let listener = UnixListener::bind(&path).unwrap_or_else(|e| panic!("bind: {e}"));
    let handle = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap_or_else(|e| panic!("accept: {e}"));
        let (fd, payload) = recv_fd_and_rest(&mut conn);
        let master = fd.unwrap_or_else(|| panic!("no pty master came over the console socket"));
        let mut master = std::fs::File::from(master);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // EIO once every slave descriptor is closed: the container's output is complete.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        (payload, String::from_utf8_lossy(&out).replace('\r', ""))
    });
    (path, handle)
}

#[test]
fn console_socket_receives_the_pty_master_and_the_output() {
    if !testutil::require_root() {
        return;
    }
    let dir = TempDir::new("console");
    let (sock, reader) = console_listener(&dir);
    let b = bundle(
        &[
            "/bin/sh",
            "-c",
            "/bin/contest tty; /bin/contest stat /dev/console | grep rdev",
        ],
        |s| {
            s["process"]["terminal"] = json!(true);
            s["process"]["consoleSize"] = json!({ "height": 40, "width": 120 });
        },
    );
    let (rt, id, _guard) = runtime("console");
    let out = rt.cmd(&[
        "run",
        "--console-socket",
        sock.to_str().unwrap_or_default(),
        "--bundle",
        b.path().to_str().unwrap_or_default(),
        &id,
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let (payload, text) = reader.join().unwrap_or_else(|_| panic!("reader panicked"));
    assert!(
        !payload.is_empty(),
        "the runtime sent no name with the master"
    );
    let kv = parse_kv(&text);
    for fd in 0..3 {
        assert_eq!(kv[&format!("isatty.{fd}")], "1", "fd {fd}: {text}");
    }
    assert_eq!(kv["ttyname.0"], "/dev/pts/0", "{text}");
    // The shell is PID 1 and the session leader; the pty is its controlling terminal.
    assert_eq!(kv["sid"], "1", "{text}");
    assert_ne!(kv["ctty"], "0:0", "{text}");
    assert_eq!(kv["dev_tty"], "ok", "{text}");
    // /dev/console is the same pty.
    assert_eq!(kv["rdev"], "136:0", "{text}");
}

#[test]
fn a_terminal_without_a_console_socket_is_refused() {
    if !testutil::require_root() {
        return;
    }
    let b = bundle(&["/bin/true"], |s| s["process"]["terminal"] = json!(true));
    super::common::create_fails(&b, "process.terminal");
}

fn exec(rt: &Runtime, args: &[&str]) -> BTreeMap<String, String> {
    let out = rt.ok(args);
    parse_kv(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn exec_with_a_terminal_over_the_console_socket() {
    if !testutil::require_root() {
        return;
    }
    let b = bundle(&["/bin/contest", "sleep", "600"], |_| {});
    let (rt, id, _guard, _pid) = run_detached(&b, "exectty");
    let dir = TempDir::new("execconsole");
    let (sock, reader) = console_listener(&dir);
    rt.ok(&[
        "exec",
        "-t",
        "--console-socket",
        sock.to_str().unwrap_or_default(),
        &id,
        "/bin/contest",
        "tty",
    ]);
    let (_, text) = reader.join().unwrap_or_else(|_| panic!("reader panicked"));
    let kv = parse_kv(&text);
    assert_eq!(kv["isatty.0"], "1", "{text}");
    assert_eq!(kv["isatty.1"], "1", "{text}");
    assert!(kv["ttyname.0"].starts_with("/dev/pts/"), "{text}");
    assert_ne!(kv["ctty"], "0:0", "{text}");
    // Without -t, exec's stdio are the runtime's (files here), not a terminal.
    let kv = exec(&rt, &["exec", &id, "/bin/contest", "tty"]);
    assert_eq!(kv["isatty.1"], "0");
}

#[test]
fn exec_cwd_env_user_groups_and_cap() {
    if !testutil::require_root() {
        return;
    }
    let b = bundle(&["/bin/contest", "sleep", "600"], |_| {});
    let (rt, id, _guard, pid) = run_detached(&b, "execflags");
    let kv = exec(
        &rt,
        &[
            "exec",
            "--cwd",
            "/tmp",
            "--env",
            "BERTH_X=1",
            "--env",
            "TERM=dumb",
            "--user",
            "1000:1001",
            "--additional-gids",
            "5",
            "--cap",
            "CAP_CHOWN",
            &id,
            "/bin/contest",
            "info",
        ],
    );
    assert_eq!(kv["cwd"], "/tmp");
    assert_eq!(kv["env.BERTH_X"], "1");
    assert_eq!(kv["env.TERM"], "dumb", "--env replaces the config's value");
    assert!(kv.contains_key("env.PATH"), "the config's env is kept");
    assert_eq!((kv["uid"].as_str(), kv["gid"].as_str()), ("1000", "1001"));
    assert_eq!(kv["groups"], "5");
    assert_eq!(kv["cap.bnd"], super::common::cap_mask(&[0, 5, 10, 29]));
    // The exec'd process is in the container's namespaces.
    for ns in ["pid", "mnt", "net", "ipc", "uts"] {
        let host = super::common::ns_of(ns, Path::new(&format!("/proc/{pid}/ns/{ns}")));
        assert_eq!(kv[&format!("ns.{ns}")], host, "{ns}");
    }
    // As root, an added capability is effective.
    let kv = exec(
        &rt,
        &[
            "exec",
            "--cap",
            "CAP_SYS_ADMIN",
            &id,
            "/bin/contest",
            "info",
        ],
    );
    assert_eq!(kv["cap.eff"], super::common::cap_mask(&[5, 10, 21, 29]));
    assert_eq!(kv["cwd"], "/");
}

/// Runs `sh -c 'exec <runtime> ... 3<a 4<b 5<c'` so the runtime starts with descriptors 3-5
/// open on files `fd3`, `fd4`, `fd5` of `dir`; `listen` sets LISTEN_FDS (and LISTEN_PID to the
/// runtime's pid, which exec keeps).
fn run_with_fds(
    rt: &Runtime,
    dir: &TempDir,
    bundle: &testutil::Bundle,
    id: &str,
    extra: &str,
    listen: Option<u32>,
) -> String {
    for n in 3..=5 {
        std::fs::write(dir.join(&format!("fd{n}")), "x").unwrap_or_else(|e| panic!("{e}"));
    }
    let listen_env = listen.map_or(String::new(), |n| {
        format!("export LISTEN_FDS={n} LISTEN_PID=$$; ")
    });
    let script = format!(
        "{listen_env}exec \"$0\" --root \"$1\" run {extra} --bundle \"$2\" \"$3\" \
         3<\"$4/fd3\" 4<\"$4/fd4\" 5<\"$4/fd5\""
    );
    let out_path = dir.join("out");
    let out_file = std::fs::File::create(&out_path).unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(script)
        .arg(&rt.bin)
        .arg(&rt.root)
        .arg(bundle.path())
        .arg(id)
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(out_file);
    let status = wait_timeout(&mut cmd, COMMAND_TIMEOUT).unwrap_or_else(|| panic!("timed out"));
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    assert!(status.success(), "{status}: {out}");
    out
}

fn passed_fds(kv: &BTreeMap<String, String>) -> Vec<u32> {
    kv["fds"]
        .split(',')
        .filter_map(|f| f.parse().ok())
        .collect()
}

#[test]
fn preserve_fds_and_listen_fds_pass_exactly_those_descriptors() {
    if !testutil::require_root() {
        return;
    }
    let dir = TempDir::new("fds");
    let b = bundle(&["/bin/contest", "info"], |_| {});

    let (rt, id, _guard) = runtime("preserve");
    let kv = parse_kv(&run_with_fds(&rt, &dir, &b, &id, "--preserve-fds 1", None));
    assert_eq!(passed_fds(&kv), [0, 1, 2, 3], "{kv:?}");
    assert!(kv["fd.3"].ends_with("/fd3"), "{}", kv["fd.3"]);
    assert!(!kv.contains_key("env.LISTEN_FDS"));

    let (rt, id, _guard) = runtime("listen");
    let kv = parse_kv(&run_with_fds(&rt, &dir, &b, &id, "", Some(2)));
    assert_eq!(passed_fds(&kv), [0, 1, 2, 3, 4], "{kv:?}");
    assert!(kv["fd.4"].ends_with("/fd4"), "{}", kv["fd.4"]);
    assert_eq!(kv["env.LISTEN_FDS"], "2");
    assert_eq!(kv["env.LISTEN_PID"], "1");

    // Socket-activation descriptors come first, the preserved ones after them.
    let (rt, id, _guard) = runtime("both");
    let kv = parse_kv(&run_with_fds(
        &rt,
        &dir,
        &b,
        &id,
        "--preserve-fds 1",
        Some(1),
    ));
    assert_eq!(passed_fds(&kv), [0, 1, 2, 3, 4], "{kv:?}");
    assert_eq!(kv["env.LISTEN_FDS"], "1");

    // LISTEN_FDS meant for another process (LISTEN_PID) passes nothing.
    let (rt, id, _guard) = runtime("notours");
    let mut cmd = rt.command(&[
        "run",
        "--bundle",
        b.path().to_str().unwrap_or_default(),
        &id,
    ]);
    cmd.env("LISTEN_FDS", "1").env("LISTEN_PID", "1");
    let out = cmd.output().unwrap_or_else(|e| panic!("{e}"));
    let kv = parse_kv(&String::from_utf8_lossy(&out.stdout));
    assert!(!kv.contains_key("env.LISTEN_FDS"), "{}", describe(&out));
}

#[test]
fn notify_socket_is_passed_through_and_ready_relayed() {
    if !testutil::require_root() {
        return;
    }
    let dir = TempDir::new("notify");
    let host_path = dir.join("host.sock");
    let host = UnixDatagram::bind(&host_path).unwrap_or_else(|e| panic!("bind: {e}"));
    host.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap_or_else(|e| panic!("{e}"));
    let b = bundle(
        &[
            "/bin/sh",
            "-c",
            "echo env=$NOTIFY_SOCKET; /bin/contest stat /run/notify/notify.sock | grep type; \
             /bin/contest notify STATUS=starting && /bin/contest notify READY=1",
        ],
        |s| s["process"]["user"] = json!({ "uid": 1000, "gid": 1000 }),
    );
    let (rt, id, _guard) = runtime("notify");
    let mut cmd = rt.command(&[
        "run",
        "--bundle",
        b.path().to_str().unwrap_or_default(),
        &id,
    ]);
    cmd.env("NOTIFY_SOCKET", &host_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = cmd.output().unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", describe(&out));
    let kv = parse_kv(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(kv["env"], "/run/notify/notify.sock");
    assert_eq!(kv["type"], "socket");
    assert_eq!(kv["sent"], "7", "{}", describe(&out));
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while got.len() < 3 {
        let n = host
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("recv after {got:?}: {e}"));
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(got[0], "STATUS=starting");
    assert!(
        got[1].starts_with("MAINPID=") && got[1].ends_with('\n'),
        "{got:?}"
    );
    let mainpid: i32 = got[1]
        .trim()
        .trim_start_matches("MAINPID=")
        .parse()
        .unwrap_or(0);
    assert!(mainpid > 1, "{got:?}");
    assert_eq!(got[2], "READY=1");
}
