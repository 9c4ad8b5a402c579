//! CVE-2019-5736: a container overwrites the runtime binary through `/proc/<pid>/exe`.
//!
//! The attack opens the exe of a process that runs the runtime (a created container's init
//! waits on the exec fifo as the runtime), keeps the descriptor, and once the runtime has exited
//! (so ETXTBSY no longer protects the file) reopens it for writing via `/proc/self/fd/N`. The
//! runtime under test is a copy in a temp dir that root could write directly, so only the
//! runtime's defence (re-exec from a read-only mount or a sealed memfd) stops the attack.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};
use testutil::{Bundle, Runtime, describe};

use crate::common::{cid, create, init_pid, run_detached, wait_pid_exit, wait_until};

const WAIT: Duration = Duration::from_secs(10);
/// What reopening a protected exe for writing may fail with: read-only mount, sealed memfd,
/// or still being executed.
const REFUSALS: [i32; 4] = [libc::EROFS, libc::EPERM, libc::ETXTBSY, libc::EACCES];

fn sha(path: &Path) -> String {
    format!(
        "{:x}",
        Sha256::digest(fs::read(path).expect("read runtime copy"))
    )
}

/// A copy of berth-runtime in a `berth-test-` temp dir, driven as the runtime under test.
fn runtime_copy() -> (tempfile::TempDir, Runtime) {
    let dir = tempfile::Builder::new()
        .prefix(&testutil::unique_name("rtcopy"))
        .tempdir()
        .expect("temp dir");
    let copy = dir.path().join("berth-runtime");
    fs::copy(testutil::runtime_binary(), &copy).expect("copy berth-runtime");
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).expect("chmod");
    // Root can write the copy directly: the file itself is no obstacle to the attack.
    OpenOptions::new()
        .write(true)
        .open(&copy)
        .expect("the copy is writable by root");
    let rt = Runtime::new(&copy);
    (dir, rt)
}

#[test]
fn host_cannot_reopen_the_runtime_exe_for_writing() {
    if !testutil::require_root() {
        return;
    }
    let (_dir, rt) = runtime_copy();
    let before = sha(&rt.bin);
    let bundle = Bundle::busybox(&["sleep", "1000"]);
    let id = cid("exehost");
    let _g = rt.guard(&id);
    create(&rt, &bundle, &id, &[]);
    let pid = init_pid(&rt, &id);
    let exe = format!("/proc/{pid}/exe");

    let direct = OpenOptions::new().write(true).open(&exe);
    let err = direct.expect_err("opened a created container's runtime exe for writing");
    assert!(REFUSALS.contains(&err.raw_os_error().unwrap_or(0)), "{err}");

    let held = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(&exe)
        .expect("O_PATH open of init's exe");
    rt.ok(&["delete", &id]);
    assert!(wait_pid_exit(pid, WAIT), "init still runs after delete");
    let reopen = format!("/proc/self/fd/{}", held.as_raw_fd());
    let err = OpenOptions::new()
        .write(true)
        .open(&reopen)
        .expect_err("reopened the runtime's exe for writing after it exited");
    assert!(REFUSALS.contains(&err.raw_os_error().unwrap_or(0)), "{err}");
    drop(held);
    assert_eq!(sha(&rt.bin), before, "the runtime binary changed");
}

#[test]
fn container_cannot_overwrite_the_runtime_through_proc_exe() {
    if !testutil::require_root() {
        return;
    }
    let (_dir, rt) = runtime_copy();
    let before = sha(&rt.bin);

    // The attacker: a container with every capability (so ptrace access checks do not stop it)
    // whose pid namespace the victim container joins. It finds a process whose exe is neither
    // busybox nor contest (the victim's init, running the runtime), keeps its exe open, waits
    // for /go, then reopens it for writing.
    let script = "while :; do for d in /proc/[0-9]*; do \
                    l=$(readlink $d/exe 2>/dev/null) || continue; \
                    case \"$l\" in /bin/busybox|/bin/contest) continue;; esac; \
                    exec 3< $d/exe; echo \"$d $l\" > /opened; break 2; \
                  done; done; \
                  while [ ! -e /go ]; do :; done; \
                  contest open /proc/self/fd/3 w > /result 2>&1; touch /done; exec sleep 1000";
    let mut attacker = Bundle::busybox(&["sh", "-c", script]);
    let all_caps: Vec<String> = (0..=40)
        .filter(|&n| host_bounding() & (1 << n) != 0)
        .map(cap_name)
        .collect();
    attacker.edit(|s| {
        s["root"]["readonly"] = json!(false);
        s["process"]["noNewPrivileges"] = json!(false);
        for set in ["bounding", "effective", "permitted"] {
            s["process"]["capabilities"][set] = json!(all_caps);
        }
        s["linux"]["maskedPaths"] = json!([]);
    });
    let a = cid("attacker");
    let _ga = rt.guard(&a);
    run_detached(&rt, &attacker, &a);
    let apid = init_pid(&rt, &a);

    let mut victim = Bundle::busybox(&["true"]);
    victim.edit(|s| {
        s["linux"]["namespaces"][0] =
            json!({"type": "pid", "path": format!("/proc/{apid}/ns/pid")});
    });
    let v = cid("victim");
    let _gv = rt.guard(&v);
    create(&rt, &victim, &v, &[]);
    let vpid = init_pid(&rt, &v);

    let root = attacker.rootfs();
    assert!(
        wait_until(WAIT, || root.join("opened").exists()),
        "the attacker never found the runtime's process"
    );
    let opened = fs::read_to_string(root.join("opened")).expect("read /opened");
    rt.ok(&["delete", &v]);
    assert!(wait_pid_exit(vpid, WAIT));
    File::create(root.join("go")).expect("create /go");
    assert!(
        wait_until(WAIT, || root.join("done").exists()),
        "the attacker never finished"
    );
    let result = testutil::parse_kv(&fs::read_to_string(root.join("result")).expect("result"));
    assert!(
        !result.is_empty() && !result.contains_key("ok") && result.contains_key("errname"),
        "attack on {opened}: {result:?}"
    );
    let errname = result["errname"].as_str();
    eprintln!("attack on {} refused with {errname}", opened.trim());
    assert!(
        ["EROFS", "EPERM", "ETXTBSY", "EACCES"].contains(&errname),
        "reopening {opened} for writing failed with an unexpected {errname}"
    );
    assert_eq!(sha(&rt.bin), before, "the runtime binary changed");
    let out = rt.cmd(&["state", &a]);
    assert!(out.status.success(), "{}", describe(&out));
}

/// This process's bounding set: a container cannot get more (CAP_SYS_RESOURCE is missing here).
fn host_bounding() -> u64 {
    let status = fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("CapBnd")
}

fn cap_name(n: u32) -> String {
    const NAMES: [&str; 41] = [
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ];
    format!("CAP_{}", NAMES[n as usize])
}
