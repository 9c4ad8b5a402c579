//! berth-runtime on a pure cgroup v2 kernel, proven under User-Mode Linux.
//!
//! The development host is cgroup v1 hybrid; production hosts are mostly pure v2. This test
//! boots a UML guest once (see `testutil::Uml`: the host's `/` read-only, cgroup2 on
//! `/sys/fs/cgroup`, 1 CPU) and re-runs this same test binary inside it with
//! [`GUEST_ENV`] set. In the guest, every case in [`CASES`] drives `target/debug/berth-runtime`
//! (state root and bundles in the guest's `/run` tmpfs) on a busybox bundle with the static
//! `contest` helper, and appends `<case>=ok` or `<case>=fail <detail>` to a results file the
//! host reads back. The host fails the test naming every case that failed or never reported.
//!
//! Cases: memory limit OOM kill (exit status, memory.events, `events --stats`, `events`), pids
//! limit against a fork bomb, cpu quota throttling, pause/resume, the eBPF device filter (also
//! after `update`), the `cgroup` mount with and without cgroup (and user) namespaces, placement
//! of nested and relative cgroup paths from a busy caller cgroup, exec into a container that
//! manages its own sub-cgroups, and `update` / `ps` / `kill --all` / `delete --force` leaving no
//! cgroup behind. See docs/design/cgroup-v2-uml.md.
//!
//! Needs root and Debian's `user-mode-linux` and `busybox-static`; without `linux.uml` it skips
//! (under `CI=true` it fails). Run `cargo build --workspace --bins` first.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testutil::{Runtime, Uml, UmlConfig, describe, parse_kv};

/// Set (to the template rootfs path) when this binary runs inside the guest.
const GUEST_ENV: &str = "BERTH_CGROUP_V2_GUEST";
/// The results file in the guest's results directory.
const RESULTS: &str = "cases";
/// The guest's cgroup2 mount.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// How long a case waits for the kernel or the runtime to reach a state.
const WAIT: Duration = Duration::from_secs(10);

type Case = fn(&Guest);

/// Every case, by name, in the order the guest runs them.
const CASES: &[(&str, Case)] = &[
    ("memory_oom_kill", memory_oom_kill),
    ("pids_limit_holds_fork_bomb", pids_limit_holds_fork_bomb),
    ("cpu_quota_throttles", cpu_quota_throttles),
    ("pause_resume", pause_resume),
    ("device_filter", device_filter),
    ("cgroup_mount_with_cgroupns", cgroup_mount_with_cgroupns),
    (
        "cgroup_mount_without_cgroupns",
        cgroup_mount_without_cgroupns,
    ),
    ("update_ps_kill_all_delete", update_ps_kill_all_delete),
    ("delete_force_running", delete_force_running),
    ("absolute_nested_cgroups_path", absolute_nested_cgroups_path),
    ("caller_in_nested_cgroup", caller_in_nested_cgroup),
    ("memory_swap_equal_to_limit", memory_swap_equal_to_limit),
    ("exec_with_nested_init_cgroup", exec_with_nested_init_cgroup),
    ("events_reports_oom", events_reports_oom),
    ("delete_with_unreaped_init", delete_with_unreaped_init),
    ("resource_files", resource_files),
    ("cgroup_mount_userns_cgroupns", cgroup_mount_userns_cgroupns),
];

#[test]
fn cgroup_v2_in_uml() {
    if let Some(template) = std::env::var_os(GUEST_ENV) {
        guest_main(Path::new(&template));
        return;
    }
    if !testutil::require_root() {
        return;
    }
    let Some(uml) = Uml::new() else { return };
    let runtime = testutil::runtime_binary();
    assert!(
        runtime.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first",
        runtime.display()
    );
    // The guest cannot build anything (the host's / is read-only there): stage the rootfs.
    let template = uml.dir().join("rootfs");
    testutil::busybox_rootfs(&template);
    let exe = std::env::current_exe().expect("current_exe");
    let mut cfg = UmlConfig::new(format!(
        "'{}' --exact cgroup_v2_in_uml --nocapture --test-threads=1",
        exe.display()
    ));
    cfg.env = vec![
        (GUEST_ENV.into(), template.display().to_string()),
        ("RUST_BACKTRACE".into(), "1".into()),
    ];
    let run = uml.boot(&cfg);
    let results = run.result_file(RESULTS).unwrap_or_default();
    let mut failed = Vec::new();
    for (name, _) in CASES {
        let line = results
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='));
        match line {
            Some("ok") => {}
            Some(other) => failed.push(format!("{name}: {}", other.replace("\\n", "\n    "))),
            None => failed.push(format!("{name}: no result")),
        }
    }
    // The harness shows this only for a failure (or with --nocapture).
    eprintln!(
        "--- guest console ---\n{}\n--- UML boot took {:?}; results:\n{results}",
        run.console(),
        run.elapsed()
    );
    assert!(
        failed.is_empty() && run.marker() == Some(0),
        "berth-runtime on cgroup v2 (UML): {} case(s) failed, guest exit {:?}{}:\n{}",
        failed.len(),
        run.marker(),
        if run.timed_out() { " (timed out)" } else { "" },
        failed.join("\n"),
    );
}

/// Inside the guest: run every case, record each outcome, fail if any failed.
fn guest_main(template: &Path) {
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let results_path = Path::new(testutil::GUEST_RESULTS).join(RESULTS);
    let mut results =
        fs::File::create(&results_path).unwrap_or_else(|e| panic!("create results file: {e}"));
    let guest = Guest {
        rt: Runtime::berth(),
        template: template.to_owned(),
    };
    let mut failures = 0;
    for (name, case) in CASES {
        eprintln!("=== case {name}");
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            assert_eq!(
                own.trim(),
                "0::/",
                "the guest test must run in the root cgroup"
            );
            case(&guest);
        }));
        let line = match outcome {
            Ok(()) => "ok".to_owned(),
            Err(p) => {
                failures += 1;
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "panic".to_owned());
                format!("fail {}", msg.replace('\n', "\\n"))
            }
        };
        eprintln!("=== case {name}: {line} ({:?})", started.elapsed());
        writeln!(results, "{name}={line}").unwrap_or_else(|e| panic!("write results: {e}"));
        results.sync_all().ok();
    }
    assert_eq!(failures, 0, "{failures} case(s) failed");
}

/// What every case gets: the runtime with a state root in the guest's /run, and the rootfs.
struct Guest {
    rt: Runtime,
    template: PathBuf,
}

/// A bundle in the guest's /run (a copy of the template rootfs), removed on drop.
struct GuestBundle {
    dir: PathBuf,
}

impl Guest {
    /// A bundle named `id` running `args`, with the default spec changed by `edit`.
    fn bundle(&self, id: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> GuestBundle {
        let dir = Path::new("/run/bundles").join(id);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create bundle dir: {e}"));
        let out = Command::new("cp")
            .arg("-a")
            .arg(&self.template)
            .arg(dir.join("rootfs"))
            .output()
            .unwrap_or_else(|e| panic!("run cp: {e}"));
        assert!(out.status.success(), "copy rootfs: {}", describe(&out));
        let mut spec = testutil::default_spec(args);
        edit(&mut spec);
        fs::write(
            dir.join("config.json"),
            serde_json::to_vec_pretty(&spec).unwrap_or_else(|e| panic!("encode spec: {e}")),
        )
        .unwrap_or_else(|e| panic!("write config.json: {e}"));
        GuestBundle { dir }
    }

    /// `run -d`: the container is running when this returns.
    fn run_detached(&self, b: &GuestBundle, id: &str) {
        self.ok(&[
            OsStr::new("run"),
            OsStr::new("-d"),
            OsStr::new("--bundle"),
            b.dir.as_os_str(),
            OsStr::new(id),
        ]);
    }

    /// `run --keep` in the foreground: the container's output and exit status; its state and
    /// cgroup stay until `delete`.
    fn run_keep(&self, b: &GuestBundle, id: &str) -> Output {
        self.rt.cmd(&[
            OsStr::new("run"),
            OsStr::new("--keep"),
            OsStr::new("--bundle"),
            b.dir.as_os_str(),
            OsStr::new(id),
        ])
    }

    fn ok<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.rt.ok(args)
    }

    fn status(&self, id: &str) -> String {
        let out = self.ok(&["state", id]);
        let v: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("state is JSON: {e}"));
        v["status"].as_str().unwrap_or_default().to_owned()
    }

    fn stats(&self, id: &str) -> Value {
        let out = self.ok(&["events", "--stats", id]);
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("events --stats is JSON: {e}"));
        assert_eq!(v["type"], "stats", "{v}");
        v["data"].clone()
    }

    /// `delete` (forced) and check the container's cgroup is gone.
    fn delete(&self, id: &str) {
        self.ok(&["delete", "--force", id]);
        assert!(
            !cgroup(id).exists(),
            "{} left after delete",
            cgroup(id).display()
        );
    }
}

impl Drop for GuestBundle {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Force-deletes the container on drop, so a failed case does not spill into the next.
struct Cleanup<'a>(&'a Guest, &'a str);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.rt.cmd(&["delete", "--force", self.1]);
    }
}

/// The container's cgroup: the guest test runs in the root cgroup, so `/sys/fs/cgroup/<id>`.
fn cgroup(id: &str) -> PathBuf {
    Path::new(CGROUP_ROOT).join(id)
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// `key value` lines (memory.events, cpu.stat, cgroup.events) -> the value of `key`.
fn keyed(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {text:?}"))
}

fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn memory_oom_kill(g: &Guest) {
    let id = "v2-oom";
    let _c = Cleanup(g, id);
    let b = g.bundle(id, &["contest", "alloc", "200"], |s| {
        s["linux"]["resources"]["memory"] = json!({ "limit": 32 << 20 });
    });
    let out = g.run_keep(&b, id);
    assert_eq!(
        out.status.code(),
        Some(128 + libc::SIGKILL),
        "the container must die by SIGKILL: {}",
        describe(&out)
    );
    let got: u64 = parse_kv(&stdout(&out))
        .get("allocated_mib")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(got < 40, "allocated {got} MiB under a 32 MiB limit");
    assert_eq!(read(cgroup(id).join("memory.max")).trim(), "33554432");
    let events = read(cgroup(id).join("memory.events"));
    assert!(keyed(&events, "oom_kill") > 0, "memory.events: {events}");
    let stats = g.stats(id);
    assert!(
        stats["memory"]["event_count"]["oom_kill"].as_u64() > Some(0),
        "events --stats: {stats}"
    );
    assert_eq!(g.status(id), "stopped");
    g.delete(id);
}

fn pids_limit_holds_fork_bomb(g: &Guest) {
    let id = "v2-pids";
    let _c = Cleanup(g, id);
    let b = g.bundle(id, &["contest", "forks", "100"], |s| {
        s["linux"]["resources"]["pids"] = json!({ "limit": 10 });
    });
    let out = g.run_keep(&b, id);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let kv = parse_kv(&stdout(&out));
    let forked: u64 = kv.get("forked").and_then(|v| v.parse().ok()).unwrap_or(999);
    // init itself is one of the 10.
    assert!(forked <= 9, "forked {forked} under pids.max 10: {kv:?}");
    assert_eq!(
        kv.get("errname").map(String::as_str),
        Some("EAGAIN"),
        "{kv:?}"
    );
    assert_eq!(read(cgroup(id).join("pids.max")).trim(), "10");
    let events = read(cgroup(id).join("pids.events"));
    assert!(keyed(&events, "max") > 0, "pids.events: {events}");
    g.delete(id);
}

fn cpu_quota_throttles(g: &Guest) {
    let id = "v2-cpu";
    let _c = Cleanup(g, id);
    let b = g.bundle(id, &["contest", "spin", "1"], |s| {
        s["linux"]["resources"]["cpu"] = json!({ "quota": 20000, "period": 100_000 });
    });
    let out = g.run_keep(&b, id);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let kv = parse_kv(&stdout(&out));
    let num = |k: &str| -> f64 { kv.get(k).and_then(|v| v.parse().ok()).unwrap_or(0.0) };
    let ratio = num("cpu_ms") / num("wall_ms").max(1.0);
    assert!(
        ratio < 0.4,
        "used {ratio:.2} of a CPU under a 20% quota: {kv:?}"
    );
    assert_eq!(read(cgroup(id).join("cpu.max")).trim(), "20000 100000");
    let stat = read(cgroup(id).join("cpu.stat"));
    assert!(keyed(&stat, "nr_throttled") > 0, "cpu.stat: {stat}");
    let stats = g.stats(id);
    assert!(
        stats["cpu"]["throttling"]["throttledPeriods"].as_u64() > Some(0),
        "events --stats: {stats}"
    );
    g.delete(id);
}

/// CPU time the cgroup's tasks have used, in microseconds.
fn usage_usec(id: &str) -> u64 {
    keyed(&read(cgroup(id).join("cpu.stat")), "usage_usec")
}

fn pause_resume(g: &Guest) {
    let id = "v2-pause";
    let _c = Cleanup(g, id);
    let b = g.bundle(id, &["contest", "spin", "60"], |_| {});
    g.run_detached(&b, id);
    g.ok(&["pause", id]);
    assert_eq!(g.status(id), "paused");
    let events = read(cgroup(id).join("cgroup.events"));
    assert_eq!(keyed(&events, "frozen"), 1, "cgroup.events: {events}");
    let before = usage_usec(id);
    // No progress while frozen: a spinning task uses no CPU time at all over this interval.
    std::thread::sleep(Duration::from_millis(300));
    let after = usage_usec(id);
    assert_eq!(before, after, "a frozen container used CPU");
    g.ok(&["resume", id]);
    assert_eq!(g.status(id), "running");
    let events = read(cgroup(id).join("cgroup.events"));
    assert_eq!(keyed(&events, "frozen"), 0, "cgroup.events: {events}");
    wait_until("the thawed container to use CPU", || usage_usec(id) > after);
    // A paused container is deleted by force too: frozen tasks must still die.
    g.ok(&["pause", id]);
    let pids = procs(id);
    g.delete(id);
    for pid in pids {
        assert!(
            !alive(pid),
            "pid {pid} survived delete --force of a paused container"
        );
    }
}

/// A shell that makes two device nodes and opens each for writing: /dev/kmsg (1:11, which
/// anyone may open write-only) and /dev/null (1:3, always allowed).
const MKNOD_AND_OPEN: &str = "mknod /dev/t-kmsg c 1 11 && mknod /dev/t-null c 1 3 || exit 9; \
     echo kmsg; contest open /dev/t-kmsg w; echo null; contest open /dev/t-null w";

fn with_mknod(s: &mut Value) {
    for set in ["bounding", "effective", "permitted"] {
        s["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap_or_else(|| panic!("no capability list"))
            .push("CAP_MKNOD".into());
    }
}

/// `kmsg`/`null` -> `ok` or the errname contest printed for the open.
fn open_results(out: &str) -> (String, String) {
    let mut cur = "";
    let (mut kmsg, mut null) = (String::new(), String::new());
    for l in out.lines() {
        match l {
            "kmsg" | "null" => cur = if l == "kmsg" { "kmsg" } else { "null" },
            _ => {
                let v = if l == "ok" {
                    "ok".to_owned()
                } else if let Some(e) = l.strip_prefix("errname=") {
                    e.to_owned()
                } else {
                    continue;
                };
                if cur == "kmsg" {
                    kmsg = v;
                } else {
                    null = v;
                }
            }
        }
    }
    (kmsg, null)
}

fn device_filter(g: &Guest) {
    // The default spec denies every device; the runtime adds mknod of any and the usual nodes.
    let id = "v2-dev-deny";
    let _c = Cleanup(g, id);
    let b = g.bundle(id, &["sh", "-c", MKNOD_AND_OPEN], with_mknod);
    let out = g.run_keep(&b, id);
    let (kmsg, null) = open_results(&stdout(&out));
    assert_eq!(
        (kmsg.as_str(), null.as_str()),
        ("EPERM", "ok"),
        "c 1:11 is not in linux.resources.devices, c 1:3 is allowed: {}",
        describe(&out)
    );
    g.delete(id);

    // The same node opens once a rule allows it.
    let id = "v2-dev-allow";
    let _c = Cleanup(g, id);
    let b = g.bundle(id, &["sh", "-c", MKNOD_AND_OPEN], |s| {
        with_mknod(s);
        s["linux"]["resources"]["devices"]
            .as_array_mut()
            .unwrap_or_else(|| panic!("no device rules"))
            .push(json!({ "allow": true, "type": "c", "major": 1, "minor": 11, "access": "w" }));
    });
    let out = g.run_keep(&b, id);
    let (kmsg, null) = open_results(&stdout(&out));
    assert_eq!(
        (kmsg.as_str(), null.as_str()),
        ("ok", "ok"),
        "c 1:11 allowed by a rule: {}",
        describe(&out)
    );
    g.delete(id);

    // Privileged (Docker's --privileged): one rule allowing every device.
    let id = "v2-dev-all";
    let _c = Cleanup(g, id);
    let b = g.bundle(id, &["sh", "-c", MKNOD_AND_OPEN], |s| {
        with_mknod(s);
        s["linux"]["resources"]["devices"] = json!([{ "allow": true, "access": "rwm" }]);
    });
    let out = g.run_keep(&b, id);
    let (kmsg, null) = open_results(&stdout(&out));
    assert_eq!(
        (kmsg.as_str(), null.as_str()),
        ("ok", "ok"),
        "every device allowed: {}",
        describe(&out)
    );
    g.delete(id);
}

/// Lists the container's `/sys/fs/cgroup`, its own cgroup and the controllers it sees.
const SHOW_CGROUPS: &str = "echo cgroup=$(cat /proc/self/cgroup); \
     echo ls=$(ls /sys/fs/cgroup | tr '\\n' ' '); \
     echo controllers=$(cat /sys/fs/cgroup/cgroup.controllers); \
     echo memmax=$(cat /sys/fs/cgroup/memory.max); \
     echo procs=$(cat /sys/fs/cgroup/cgroup.procs | tr '\\n' ' '); \
     echo +pids 2>/dev/null > /sys/fs/cgroup/cgroup.subtree_control && echo rw=yes || echo rw=no";

/// A sibling of the container's cgroup, which the container must not see.
struct Sibling(PathBuf);

impl Sibling {
    fn new() -> Sibling {
        let p = Path::new(CGROUP_ROOT).join("v2-sibling");
        let _ = fs::create_dir(&p);
        Sibling(p)
    }
}

impl Drop for Sibling {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.0);
    }
}

fn check_own_cgroup_root(g: &Guest, id: &str, cgroupns: bool, userns: bool) {
    let _c = Cleanup(g, id);
    let _sib = Sibling::new();
    let b = g.bundle(id, &["sh", "-c", SHOW_CGROUPS], |s| {
        if cgroupns {
            s["linux"]["namespaces"]
                .as_array_mut()
                .unwrap_or_else(|| panic!("no namespaces"))
                .push(json!({ "type": "cgroup" }));
        }
        if userns {
            s["linux"]["namespaces"]
                .as_array_mut()
                .unwrap_or_else(|| panic!("no namespaces"))
                .push(json!({ "type": "user" }));
            let map = json!([{ "containerID": 0, "hostID": 100_000, "size": 65536 }]);
            s["linux"]["uidMappings"] = map.clone();
            s["linux"]["gidMappings"] = map;
        }
        s["linux"]["resources"]["memory"] = json!({ "limit": 64 << 20 });
    });
    let out = g.run_keep(&b, id);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let kv = parse_kv(&stdout(&out));
    let get = |k: &str| kv.get(k).cloned().unwrap_or_default();
    let want_cgroup = if cgroupns {
        "0::/".to_owned()
    } else {
        format!("0::/{id}")
    };
    assert_eq!(get("cgroup"), want_cgroup, "{kv:?}");
    let ls = get("ls");
    let names: Vec<&str> = ls.split_whitespace().collect();
    for want in [
        "cgroup.controllers",
        "cgroup.procs",
        "memory.max",
        "pids.max",
    ] {
        assert!(names.contains(&want), "{want} missing in {ls}");
    }
    for host in ["v2-sibling", id, "cgroup.stat.local", "init.scope"] {
        assert!(!names.contains(&host), "host cgroup {host} visible: {ls}");
    }
    // The root cgroup has no memory.max: seeing one proves the mount shows the container's own.
    assert_eq!(get("memmax"), (64u64 << 20).to_string(), "{kv:?}");
    assert!(get("controllers").contains("memory"), "controllers: {kv:?}");
    assert!(!get("procs").trim().is_empty(), "{kv:?}");
    assert_eq!(
        get("rw"),
        "no",
        "the spec mounts /sys/fs/cgroup read-only: {kv:?}"
    );
    g.delete(id);
}

fn cgroup_mount_with_cgroupns(g: &Guest) {
    check_own_cgroup_root(g, "v2-cgns", true, false);
}

/// With a user namespace too: cgroup2 is mounted by the container's (unprivileged) root.
fn cgroup_mount_userns_cgroupns(g: &Guest) {
    check_own_cgroup_root(g, "v2-userns", true, true);
}

fn cgroup_mount_without_cgroupns(g: &Guest) {
    check_own_cgroup_root(g, "v2-nocgns", false, false);
}

fn procs(id: &str) -> Vec<i32> {
    let mut v: Vec<i32> = read(cgroup(id).join("cgroup.procs"))
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    v.sort_unstable();
    v
}

fn update_ps_kill_all_delete(g: &Guest) {
    let id = "v2-update";
    let _c = Cleanup(g, id);
    let b = g.bundle(
        id,
        &["sh", "-c", "sleep 1000 & sleep 1000 & exec sleep 1000"],
        |s| {
            s["linux"]["resources"]["memory"] = json!({ "limit": 64 << 20 });
        },
    );
    g.run_detached(&b, id);
    assert_eq!(read(cgroup(id).join("memory.max")).trim(), "67108864");
    g.ok(&["update", "--memory", "96m", "--pids-limit", "50", id]);
    assert_eq!(read(cgroup(id).join("memory.max")).trim(), "100663296");
    assert_eq!(read(cgroup(id).join("pids.max")).trim(), "50");
    // Each update replaces the device filter: exactly one program stays attached.
    for mem in ["90m", "96m"] {
        g.ok(&["update", "--memory", mem, id]);
    }
    let attached = cgroups::attached_device_programs(&cgroup(id))
        .unwrap_or_else(|e| panic!("query device programs: {e}"));
    assert_eq!(attached, 1, "device programs attached after 3 updates");
    // The update re-applied the device filter: the default nodes must still open.
    let out = g.ok(&["exec", id, "contest", "open", "/dev/null", "w"]);
    assert_eq!(
        stdout(&out).trim(),
        "ok",
        "after update: {}",
        describe(&out)
    );

    wait_until("three processes in the cgroup", || procs(id).len() == 3);
    let out = g.ok(&["ps", "--format", "json", id]);
    let mut listed: Vec<i32> =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("ps json: {e}"));
    listed.sort_unstable();
    assert_eq!(listed, procs(id), "ps --format json");

    // Not KILL: freeze, signal every task, thaw. Init (pid 1 of its namespace, no handler)
    // ignores SIGTERM; the two other sleeps die, and the cgroup must not stay frozen.
    g.ok(&["kill", "--all", id, "TERM"]);
    wait_until("the two non-init sleeps to die of SIGTERM", || {
        procs(id).len() == 1
    });
    let events = read(cgroup(id).join("cgroup.events"));
    assert_eq!(keyed(&events, "frozen"), 0, "left frozen: {events}");
    assert_eq!(g.status(id), "running");
    g.ok(&["kill", "--all", id, "KILL"]);
    wait_until("the cgroup to empty after kill --all", || {
        procs(id).is_empty()
    });
    wait_until("state stopped", || g.status(id) == "stopped");
    g.ok(&["delete", id]);
    assert!(!cgroup(id).exists(), "cgroup left after delete");
}

fn delete_force_running(g: &Guest) {
    let id = "v2-force";
    let _c = Cleanup(g, id);
    let b = g.bundle(
        id,
        &["sh", "-c", "sleep 1000 & sleep 1000 & exec sleep 1000"],
        |_| {},
    );
    g.run_detached(&b, id);
    wait_until("three processes in the cgroup", || procs(id).len() == 3);
    let pids = procs(id);
    g.delete(id);
    for pid in pids {
        assert!(!alive(pid), "pid {pid} survived delete --force");
    }
    let left: Vec<_> = fs::read_dir(CGROUP_ROOT)
        .unwrap_or_else(|e| panic!("list cgroups: {e}"))
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("v2-"))
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "cgroups left: {left:?}");
}

/// Whether `pid` exists and is not a zombie.
fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
}

/// The container's own cgroup, as `0::/path` from its /proc/self/cgroup, as a host directory.
fn cgroup_of_output(out: &Output) -> PathBuf {
    let text = stdout(out);
    let rel = text
        .lines()
        .find_map(|l| l.strip_prefix("0::/"))
        .unwrap_or_else(|| panic!("no cgroup line: {}", describe(out)));
    Path::new(CGROUP_ROOT).join(rel.trim())
}

fn absolute_nested_cgroups_path(g: &Guest) {
    let id = "v2-abs";
    let _c = Cleanup(g, id);
    let parent = Path::new(CGROUP_ROOT).join("v2-abs-parent");
    let _p = RmdirOnDrop(parent.clone());
    let b = g.bundle(id, &["contest", "read", "/proc/self/cgroup"], |s| {
        s["linux"]["cgroupsPath"] = "/v2-abs-parent/ctr".into();
        s["linux"]["resources"]["memory"] = json!({ "limit": 64 << 20 });
    });
    let out = g.run_keep(&b, id);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let dir = cgroup_of_output(&out);
    assert_eq!(dir, parent.join("ctr"), "{}", describe(&out));
    assert_eq!(read(dir.join("memory.max")).trim(), "67108864");
    g.ok(&["delete", id]);
    assert!(!dir.exists(), "{} left after delete", dir.display());
}

/// Removes an (empty) cgroup directory on drop.
struct RmdirOnDrop(PathBuf);

impl Drop for RmdirOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.0);
    }
}

/// The runtime run from the cgroup `dir` (which it joins first), as a service manager or a
/// containerd shim in its own cgroup would run it.
fn runtime_in_cgroup(g: &Guest, dir: &Path, args: &[&OsStr]) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec \"$0\" \"$@\"",
            dir.display()
        ))
        .arg(&g.rt.bin)
        .arg("--root")
        .arg(&g.rt.root)
        .args(args);
    // Files, not pipes: a detached container keeps the runtime's stdio open.
    let io = |name: &str| {
        let p = std::env::temp_dir().join(name);
        let f = fs::File::create(&p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
        (p, f)
    };
    let ((out_path, out_file), (err_path, err_file)) = (io("in-cgroup.out"), io("in-cgroup.err"));
    cmd.stdin(std::process::Stdio::null())
        .stdout(out_file)
        .stderr(err_file);
    let status = testutil::wait_timeout(&mut cmd, testutil::COMMAND_TIMEOUT)
        .unwrap_or_else(|| panic!("{cmd:?} timed out"));
    let out = Output {
        status,
        stdout: fs::read(&out_path).unwrap_or_default(),
        stderr: fs::read(&err_path).unwrap_or_default(),
    };
    assert!(out.status.success(), "{cmd:?}: {}", describe(&out));
    out
}

/// Production v2 hosts run the runtime from a service's cgroup, which has processes (so it
/// cannot enable controllers for children). runc's cgroupfs rule for a relative (or no)
/// cgroupsPath on v2 is then: below the *parent* of the caller's cgroup. Later verbs run from
/// another cgroup must find the same directory.
fn caller_in_nested_cgroup(g: &Guest) {
    let id = "v2-caller-ctr";
    let _c = Cleanup(g, id);
    let service = Path::new(CGROUP_ROOT).join("v2-service");
    let caller = service.join("shim");
    let _s = RmdirOnDrop(service.clone());
    fs::create_dir_all(&caller).unwrap_or_else(|e| panic!("mkdir {}: {e}", caller.display()));
    let _r = RmdirOnDrop(caller.clone());
    let b = g.bundle(
        id,
        &["sh", "-c", "cat /proc/self/cgroup; exec sleep 1000"],
        |s| {
            s["linux"]["resources"]["memory"] = json!({ "limit": 64 << 20 });
        },
    );
    let bundle = b.dir.as_os_str();
    let args = [
        OsStr::new("run"),
        OsStr::new("-d"),
        OsStr::new("--bundle"),
        bundle,
    ];
    runtime_in_cgroup(g, &caller, &[&args[..], &[OsStr::new(id)]].concat());
    // The runtime left the service cgroup; move nothing else there.
    let dir = service.join(id);
    assert!(
        dir.is_dir(),
        "no cgroup {} (runc's placement)",
        dir.display()
    );
    assert_eq!(read(dir.join("memory.max")).trim(), "67108864");
    // From the root cgroup now: every verb must act on that same directory.
    g.ok(&["update", "--memory", "80m", id]);
    assert_eq!(read(dir.join("memory.max")).trim(), "83886080");
    let out = g.ok(&["ps", "--format", "json", id]);
    let listed: Vec<i32> =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("ps json: {e}"));
    assert!(!listed.is_empty(), "ps lists nothing");
    g.ok(&["pause", id]);
    assert_eq!(g.status(id), "paused");
    g.ok(&["resume", id]);
    g.ok(&["delete", "--force", id]);
    assert!(!dir.exists(), "{} left after delete", dir.display());
    for pid in listed {
        assert!(!alive(pid), "pid {pid} survived delete --force");
    }
}

/// Docker's `--memory X --memory-swap X` (no swap): fine on a kernel without swap accounting.
fn memory_swap_equal_to_limit(g: &Guest) {
    let id = "v2-swap";
    let _c = Cleanup(g, id);
    let b = g.bundle(id, &["contest", "exit", "0"], |s| {
        s["linux"]["resources"]["memory"] = json!({ "limit": 64 << 20, "swap": 64 << 20 });
    });
    let out = g.run_keep(&b, id);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(read(cgroup(id).join("memory.max")).trim(), "67108864");
    if let Ok(swap) = fs::read_to_string(cgroup(id).join("memory.swap.max")) {
        assert_eq!(swap.trim(), "0");
    }
    g.delete(id);
}

/// A container that manages its own cgroups (systemd, docker-in-docker): init moves into a
/// child cgroup and enables controllers for its children, so no process may join the
/// container's top cgroup any more (EBUSY). `exec` must still work (runc joins init's cgroup).
fn exec_with_nested_init_cgroup(g: &Guest) {
    let id = "v2-nested-init";
    let _c = Cleanup(g, id);
    let script = "mkdir /sys/fs/cgroup/init && echo $$ > /sys/fs/cgroup/init/cgroup.procs && \
                  echo +pids > /sys/fs/cgroup/cgroup.subtree_control && exec sleep 1000";
    let b = g.bundle(id, &["sh", "-c", script], |s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap_or_else(|| panic!("no namespaces"))
            .push(json!({ "type": "cgroup" }));
        for m in s["mounts"].as_array_mut().into_iter().flatten() {
            if m["destination"] == "/sys/fs/cgroup" {
                m["options"] = json!(["nosuid", "noexec", "nodev", "relatime", "rw"]);
            }
        }
    });
    g.run_detached(&b, id);
    wait_until("init's own child cgroup with pids enabled", || {
        fs::read_to_string(cgroup(id).join("cgroup.subtree_control"))
            .is_ok_and(|c| c.contains("pids"))
    });
    let out = g.ok(&["exec", id, "cat", "/proc/self/cgroup"]);
    assert_eq!(stdout(&out).trim(), "0::/init", "{}", describe(&out));
    g.delete(id);
}

/// `events` (streaming) reports the OOM kill on v2, where it comes from memory.events.
fn events_reports_oom(g: &Guest) {
    let id = "v2-events-oom";
    let _c = Cleanup(g, id);
    let b = g.bundle(id, &["contest", "alloc", "200"], |s| {
        s["linux"]["resources"]["memory"] = json!({ "limit": 32 << 20 });
    });
    g.ok(&[
        OsStr::new("create"),
        OsStr::new("--bundle"),
        b.dir.as_os_str(),
        OsStr::new(id),
    ]);
    let out_path = std::env::temp_dir().join("events.out");
    let out = fs::File::create(&out_path).unwrap_or_else(|e| panic!("create events.out: {e}"));
    let mut events =
        g.rt.command(&["events", "--interval", "100ms", id])
            .stdout(out)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn events: {e}"));
    g.ok(&["start", id]);
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(st) = events
            .try_wait()
            .unwrap_or_else(|e| panic!("wait events: {e}"))
        {
            break st;
        }
        if Instant::now() > deadline {
            let _ = events.kill();
            let _ = events.wait();
            panic!("events did not end when the container stopped");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = read(&out_path);
    assert!(status.success(), "events: {status}: {text}");
    let types: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["id"] == id)
        .map(|v| v["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        types.iter().any(|t| t == "oom"),
        "no oom event; event types: {types:?}"
    );
    g.delete(id);
}

/// Clears the child-subreaper flag on drop.
struct Subreaper;

impl Subreaper {
    fn set() -> Subreaper {
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .unwrap_or_else(|e| panic!("PR_SET_CHILD_SUBREAPER: {e}"));
        Subreaper
    }
}

impl Drop for Subreaper {
    fn drop(&mut self) {
        let _ = rustix::process::set_child_subreaper(None);
    }
}

/// Nobody has reaped the dead init yet (a shim that waits later): the container is stopped and
/// `delete` removes its cgroup all the same.
fn delete_with_unreaped_init(g: &Guest) {
    let id = "v2-zombie";
    let _c = Cleanup(g, id);
    let _reaper = Subreaper::set();
    let b = g.bundle(id, &["sleep", "1000"], |_| {});
    g.run_detached(&b, id);
    let out = g.ok(&["state", id]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("state: {e}"));
    let pid = i32::try_from(v["pid"].as_i64().unwrap_or(0)).unwrap_or(0);
    assert!(pid > 0, "state: {v}");
    g.ok(&["kill", id, "KILL"]);
    // This process is init's reaper now (the runtime exited); it does not reap yet.
    wait_until("init to be a zombie", || {
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
    });
    assert_eq!(g.status(id), "stopped");
    g.ok(&["delete", id]);
    assert!(!cgroup(id).exists(), "cgroup left with an unreaped init");
    let reaped = rustix::process::waitpid(
        rustix::process::Pid::from_raw(pid),
        rustix::process::WaitOptions::empty(),
    )
    .unwrap_or_else(|e| panic!("waitpid {pid}: {e}"));
    assert!(reaped.is_some(), "init {pid} was not this process's child");
}

/// OCI values reach the v2 files converted as runc converts them.
fn resource_files(g: &Guest) {
    let id = "v2-files";
    let _c = Cleanup(g, id);
    let b = g.bundle(id, &["contest", "exit", "0"], |s| {
        s["linux"]["resources"]["memory"] = json!({ "limit": 64 << 20, "reservation": 16 << 20 });
        s["linux"]["resources"]["cpu"] = json!({ "shares": 512 });
        s["linux"]["resources"]["pids"] = json!({ "limit": -1 });
        s["linux"]["resources"]["unified"] = json!({ "memory.high": "50331648" });
    });
    let out = g.run_keep(&b, id);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    for (file, want) in [
        ("memory.max", "67108864"),
        ("memory.low", "16777216"),
        ("memory.high", "50331648"),
        // runc: 1 + ((shares - 2) * 9999) / 262142
        ("cpu.weight", "20"),
        ("pids.max", "max"),
    ] {
        assert_eq!(read(cgroup(id).join(file)).trim(), want, "{file}");
    }
    g.delete(id);
}
