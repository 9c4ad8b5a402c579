//! ps, list, pause/resume, events and update: what the runtime reports and changes, checked
//! against the kernel.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use testutil::{Bundle, ChildGuard, Runtime, describe};

use crate::common::{
    bundle_file, cg_read, cgroup_dir, cid, init_pid, kv, run_detached, status, stdout, wait_until,
};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn ps_lists_the_container_processes() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    let bundle = Bundle::busybox(&["sh", "-c", "sleep 1000 & wait"]);
    let id = cid("ps");
    let _g = rt.guard(&id);
    run_detached(&rt, &bundle, &id);
    let init = init_pid(&rt, &id);
    let json_pids = || -> Vec<i32> {
        serde_json::from_slice(&rt.ok(&["ps", "--format", "json", &id]).stdout).expect("ps json")
    };
    assert!(
        wait_until(WAIT, || json_pids().len() == 2),
        "{:?}",
        json_pids()
    );
    let pids = json_pids();
    assert!(pids.contains(&init), "{pids:?} lacks init {init}");
    for p in &pids {
        let cg = std::fs::read_to_string(format!("/proc/{p}/cgroup")).expect("cgroup");
        assert!(
            cg.contains(&id),
            "pid {p} is not in the container's cgroup:\n{cg}"
        );
    }

    // The table is host `ps -ef` filtered to the container's pids.
    let table = stdout(&rt.ok(&["ps", &id]));
    let mut lines = table.lines();
    let header = lines.next().expect("header");
    assert!(header.split_whitespace().any(|h| h == "PID"), "{table}");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(rows.iter().any(|r| r.contains("sleep 1000")), "{table}");
    let pid_col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .expect("PID");
    for r in rows {
        let pid: i32 = r
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse().ok())
            .expect("pid");
        assert!(pids.contains(&pid), "{r}");
    }
}

#[test]
fn list_prints_table_json_and_ids() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    let bundle = Bundle::busybox(&["sleep", "1000"]);
    let (a, b) = (cid("lista"), cid("listb"));
    let (_ga, _gb) = (rt.guard(&a), rt.guard(&b));
    run_detached(&rt, &bundle, &a);
    crate::common::create(&rt, &bundle, &b, &[]);

    let q = stdout(&rt.ok(&["list", "-q"]));
    let mut ids: Vec<&str> = q.lines().collect();
    ids.sort_unstable();
    let mut want = vec![a.as_str(), b.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want);

    let js: Value =
        serde_json::from_slice(&rt.ok(&["list", "--format", "json"]).stdout).expect("list json");
    let arr = js.as_array().expect("array");
    assert_eq!(arr.len(), 2, "{js}");
    for c in arr {
        let want_status = if c["id"] == a.as_str() {
            "running"
        } else {
            "created"
        };
        assert_eq!(c["status"], want_status, "{c}");
        assert!(c["pid"].as_i64().is_some_and(|p| p > 0), "{c}");
        assert_eq!(c["bundle"], json!(bundle.path().to_string_lossy()));
    }

    // The table has runc's columns, each value under its heading.
    let table = stdout(&rt.ok(&["list"]));
    let mut lines = table.lines();
    let header = lines.next().expect("header");
    let cols: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        cols,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
        "{table}"
    );
    let bundle_at = header.find("BUNDLE").expect("BUNDLE");
    for row in lines {
        let fields: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(fields.len(), 6, "{row}");
        assert!(["running", "created"].contains(&fields[2]), "{row}");
        assert_eq!(
            row.find(&*bundle.path().to_string_lossy()),
            Some(bundle_at),
            "BUNDLE column misaligned:\n{table}"
        );
    }
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let rest = stat.rsplit_once(')').expect("comm").1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0)
}

#[test]
fn pause_freezes_and_resume_thaws() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    let bundle = Bundle::busybox(&["sh", "-c", "while :; do :; done"]);
    let id = cid("pause");
    let _g = rt.guard(&id);
    run_detached(&rt, &bundle, &id);
    let pid = init_pid(&rt, &id);
    let t0 = cpu_ticks(pid);
    assert!(
        wait_until(WAIT, || cpu_ticks(pid) > t0),
        "the loop never ran"
    );

    rt.ok(&["pause", &id]);
    assert_eq!(status(&rt, &id), "paused");
    let freezer = cgroup_dir(pid, "freezer");
    assert_eq!(cg_read(&freezer, "freezer.state"), "FROZEN");
    let frozen = cpu_ticks(pid);
    // A frozen task gets no CPU: give it time it would have used.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cpu_ticks(pid), frozen, "a paused process made progress");
    let out = rt.cmd(&["pause", &id]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "pause of a paused container: {}",
        describe(&out)
    );

    // runc's rules for a paused container: no exec, no delete without --force.
    let out = rt.cmd(&["exec", &id, "true"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exec into a paused container: {}",
        describe(&out)
    );
    let out = rt.cmd(&["delete", &id]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "delete of a paused container: {}",
        describe(&out)
    );
    assert_eq!(status(&rt, &id), "paused");

    rt.ok(&["resume", &id]);
    assert_eq!(status(&rt, &id), "running");
    assert!(
        wait_until(WAIT, || cpu_ticks(pid) > frozen),
        "resumed process stays frozen"
    );
    let out = rt.cmd(&["resume", &id]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "resume of a running container: {}",
        describe(&out)
    );
}

#[test]
fn events_stats_prints_cpu_memory_pids_once() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    let bundle = Bundle::busybox(&["sh", "-c", "sleep 1000 & wait"]);
    let id = cid("stats");
    let _g = rt.guard(&id);
    run_detached(&rt, &bundle, &id);
    let out = rt.ok(&["events", "--stats", &id]);
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "one JSON line: {text}");
    let ev: Value = serde_json::from_str(&text).expect("events --stats JSON");
    assert_eq!(ev["type"], "stats", "{ev}");
    assert_eq!(ev["id"], id.as_str());
    let data = &ev["data"];
    assert!(
        data["cpu"]["usage"]["total"]
            .as_u64()
            .is_some_and(|t| t > 0),
        "{data}"
    );
    assert!(
        data["memory"]["usage"]["usage"]
            .as_u64()
            .is_some_and(|u| u > 0),
        "{data}"
    );
    assert!(
        wait_until(WAIT, || {
            let ev: Value = serde_json::from_slice(&rt.ok(&["events", "--stats", &id]).stdout)
                .unwrap_or_default();
            ev["data"]["pids"]["current"] == 2
        }),
        "pids.current should count sh and sleep"
    );
}

#[test]
fn events_reports_an_oom_kill() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    let mut bundle = Bundle::busybox(&["sleep", "1000"]);
    bundle.edit(|s| {
        s["linux"]["resources"]["memory"] = json!({"limit": 32 << 20, "swap": 32 << 20});
    });
    let id = cid("oom");
    let _g = rt.guard(&id);
    run_detached(&rt, &bundle, &id);
    let mut cmd = rt.command(&["events", "--interval", "100ms", &id]);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null());
    let mut events = ChildGuard::spawn(&mut cmd);
    let out = events.child().stdout.take().expect("events stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The first line is a stats event: the stream is up.
    let first = rx.recv_timeout(WAIT).expect("first event");
    assert!(first.contains("\"stats\""), "{first}");

    let out = rt.cmd(&["exec", &id, "contest", "alloc", "256"]);
    assert_eq!(
        out.status.code(),
        Some(137),
        "alloc beyond the limit is OOM-killed: {}",
        describe(&out)
    );
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx.recv_timeout(left).expect("no oom event within 10 s");
        let ev: Value = serde_json::from_str(&line).expect("event JSON");
        if ev["type"] == "oom" {
            assert_eq!(ev["id"], id.as_str());
            break;
        }
    }
}

#[test]
fn update_changes_cgroup_limits_live() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::berth();
    let bundle = Bundle::busybox(&["sleep", "1000"]);
    let id = cid("update");
    let _g = rt.guard(&id);
    run_detached(&rt, &bundle, &id);
    let pid = init_pid(&rt, &id);
    let (mem, pids, cpu) = (
        cgroup_dir(pid, "memory"),
        cgroup_dir(pid, "pids"),
        cgroup_dir(pid, "cpu"),
    );
    rt.ok(&[
        "update",
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        "--cpu-quota",
        "20000",
        &id,
    ]);
    assert_eq!(
        cg_read(&mem, "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    assert_eq!(cg_read(&pids, "pids.max"), "50");
    assert_eq!(cg_read(&cpu, "cpu.cfs_quota_us"), "20000");

    let res = bundle_file(
        &bundle,
        "resources.json",
        &json!({"memory": {"limit": 48 << 20}, "pids": {"limit": 10}}).to_string(),
    );
    rt.ok(&["update", "-r", &res.to_string_lossy(), &id]);
    assert_eq!(
        cg_read(&mem, "memory.limit_in_bytes"),
        (48u64 << 20).to_string()
    );
    assert_eq!(cg_read(&pids, "pids.max"), "10");

    // The new limit binds: the exec'd process counts too, so fewer than 10 forks succeed.
    let out = rt.ok(&["exec", &id, "contest", "forks", "20"]);
    let forked: u32 = kv(&out)["forked"].parse().expect("forked");
    assert!(forked < 10, "pids.max=10 let {forked} forks through");
    assert_eq!(kv(&out).get("errname").map(String::as_str), Some("EAGAIN"));

    // The state remembers the update (runc's `update` then `state` shows it via exec config).
    let bad = rt.cmd(&["update", "--memory", "lots", &id]);
    assert_eq!(bad.status.code(), Some(1), "{}", describe(&bad));
    assert_eq!(
        cg_read(&pids, "pids.max"),
        "10",
        "a refused update changes nothing"
    );
}
