//! End-to-end tests of berth's inspection and system verbs through the binary: `ps` flags,
//! `top`, `port`, `pause`/`unpause`, `rename`, `stats`, `events`, `system df|prune|check`,
//! `info`, `version`, and `--runtime PATH` with runc, crun and berth-runtime.

#![allow(clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use testutil::{Berth, describe, stdout, wait_until};

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

/// The freezer state of a process's v1 freezer cgroup (or `frozen` from cgroup v2).
fn frozen(pid: &str) -> bool {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read cgroup");
    for line in cg.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        if ctrls.split(',').any(|c| c == "freezer") {
            let state =
                std::fs::read_to_string(format!("/sys/fs/cgroup/freezer{path}/freezer.state"))
                    .expect("freezer.state");
            return state.trim() == "FROZEN";
        }
    }
    panic!("no freezer cgroup for {pid}: {cg}");
}

#[test]
fn ps_flags_filters_and_formats() {
    let Some(b) = Berth::with_busybox("sys-ps") else {
        return;
    };
    let up = stdout(&b.ok(&["run", "-d", "--name", "up", "bb", "sleep", "60"]))
        .trim()
        .to_owned();
    let out = b.cmd(&[
        "run",
        "--name",
        "three",
        "bb",
        "sh",
        "-c",
        "echo x > /f; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    b.ok(&["run", "--name", "zero", "bb", "true"]);

    // Running only by default; -a all, newest first.
    assert_eq!(stdout(&b.ok(&["ps", "-q"])).trim(), &up[..12]);
    let all = stdout(&b.ok(&["ps", "-a", "--format", "{{.Names}}"]));
    assert_eq!(lines(&all), ["zero", "three", "up"]);
    // -n and -l include stopped containers.
    assert_eq!(
        stdout(&b.ok(&["ps", "-n", "2", "--format", "{{.Names}}"])),
        "zero\nthree\n"
    );
    assert_eq!(
        stdout(&b.ok(&["ps", "-l", "--format", "{{.Names}}"])),
        "zero\n"
    );
    assert_eq!(
        stdout(&b.ok(&["ps", "-aq", "--no-trunc", "--filter", "name=up"])).trim(),
        up
    );
    // Filters: exited codes, status (implies -a), before/since, id prefix; keys AND.
    let f = |args: &[&str]| {
        let mut a = vec!["ps", "-a", "--format", "{{.Names}}"];
        a.extend_from_slice(args);
        stdout(&b.ok(&a))
    };
    assert_eq!(f(&["--filter", "exited=3"]), "three\n");
    assert_eq!(
        stdout(&b.ok(&["ps", "--filter", "status=exited", "--format", "{{.Names}}"])),
        "zero\nthree\n"
    );
    assert_eq!(f(&["--filter", "before=three"]), "up\n");
    assert_eq!(f(&["--filter", "since=three"]), "zero\n");
    assert_eq!(f(&["--filter", &format!("id={}", &up[..8])]), "up\n");
    assert_eq!(
        f(&["--filter", "status=running", "--filter", "name=zero"]),
        ""
    );
    let bad = b.cmd(&["ps", "--filter", "colour=red"]);
    assert_eq!(bad.status.code(), Some(125), "{}", describe(&bad));
    assert_eq!(String::from_utf8_lossy(&bad.stderr).lines().count(), 1);

    // Formats: a table with Docker's headers, json lines, -s sizes.
    let t = stdout(&b.ok(&[
        "ps",
        "-a",
        "--format",
        "table {{.ID}}\t{{.Names}}\t{{.State}}",
    ]));
    let t = lines(&t);
    assert_eq!(
        t[0].split_whitespace().collect::<Vec<_>>(),
        ["CONTAINER", "ID", "NAMES", "STATE"]
    );
    assert!(
        t[3].starts_with(&up[..12]) && t[3].ends_with("running"),
        "{t:?}"
    );
    let j = stdout(&b.ok(&["ps", "-a", "--format", "json", "--filter", "name=three"]));
    let v: serde_json::Value = serde_json::from_str(j.trim()).expect("one JSON object");
    assert_eq!(v["Names"], "three");
    assert_eq!(v["State"], "exited");
    assert_eq!(v["Command"], "\"sh -c echo x > /f; …\"");
    let s = stdout(&b.ok(&["ps", "-a", "-s", "--filter", "name=three"]));
    let s = lines(&s);
    assert!(s[0].ends_with("SIZE"), "{s:?}");
    assert!(
        s[1].contains("2B (virtual "),
        "the upper layer holds /f (2 bytes): {s:?}"
    );
}

#[test]
fn pause_top_port_rename() {
    let Some(b) = Berth::with_busybox("sys-pause") else {
        return;
    };
    b.ok(&["run", "-d", "--name", "p1", "bb", "sleep", "60"]);
    let pid = stdout(&b.ok(&["inspect", "-f", "{{.State.Pid}}", "p1"]))
        .trim()
        .to_owned();

    assert_eq!(stdout(&b.ok(&["pause", "p1"])), "p1\n");
    assert!(frozen(&pid), "the cgroup is frozen");
    let ps = stdout(&b.ok(&["ps", "--format", "{{.Status}} {{.State}}"]));
    assert!(ps.contains("(Paused) paused"), "{ps}");
    let again = b.cmd(&["pause", "p1"]);
    assert_eq!(again.status.code(), Some(1), "{}", describe(&again));
    assert!(String::from_utf8_lossy(&again.stderr).ends_with("is already paused\n"));
    assert_eq!(stdout(&b.ok(&["unpause", "p1"])), "p1\n");
    assert!(!frozen(&pid), "thawed");
    let again = b.cmd(&["unpause", "p1"]);
    assert_eq!(again.status.code(), Some(1), "{}", describe(&again));
    assert!(String::from_utf8_lossy(&again.stderr).ends_with("is not paused\n"));

    // top: the host's ps, only the container's processes, Docker's column titles.
    let top = stdout(&b.ok(&["top", "p1"]));
    let top = lines(&top);
    assert!(top[0].starts_with("UID") && top[0].contains("PID") && top[0].ends_with("CMD"));
    assert_eq!(top.len(), 2, "only the container's process: {top:?}");
    assert!(
        top[1].contains(&pid) && top[1].ends_with("sleep 60"),
        "{top:?}"
    );
    let top = stdout(&b.ok(&["top", "p1", "-o", "pid,comm"]));
    assert_eq!(
        lines(&top)[1].split_whitespace().collect::<Vec<_>>(),
        [pid.as_str(), "sleep"]
    );

    // port: nothing is published on the none network.
    assert_eq!(stdout(&b.ok(&["port", "p1"])), "");
    let out = b.cmd(&["port", "p1", "80"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));

    b.ok(&["rename", "p1", "p2"]);
    assert_eq!(stdout(&b.ok(&["ps", "--format", "{{.Names}}"])), "p2\n");
    b.ok(&["run", "-d", "--name", "other", "bb", "sleep", "60"]);
    let taken = b.cmd(&["rename", "p2", "other"]);
    assert_eq!(taken.status.code(), Some(125), "{}", describe(&taken));
    let out = b.cmd(&["top", "nope"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));

    // A paused container is removed with -f.
    b.ok(&["pause", "p2"]);
    b.ok(&["rm", "-f", "p2", "other"]);
    b.assert_consistent();
}

#[test]
fn stats_no_stream_reports_usage() {
    let Some(b) = Berth::with_busybox("sys-stats") else {
        return;
    };
    b.ok(&["run", "-d", "--name", "s1", "bb", "sleep", "60"]);
    b.ok(&["run", "--name", "s2", "bb", "true"]);
    let out = stdout(&b.ok(&["stats", "--no-stream"]));
    let rows = lines(&out);
    assert!(
        rows[0].starts_with("CONTAINER ID") && rows[0].ends_with("PIDS"),
        "{rows:?}"
    );
    assert_eq!(rows.len(), 2, "running containers only: {rows:?}");
    assert!(
        rows[1].contains(" s1 ") && rows[1].ends_with(" 1"),
        "{rows:?}"
    );
    assert!(rows[1].contains("iB / "), "memory usage / limit: {rows:?}");
    let out = stdout(&b.ok(&[
        "stats",
        "--no-stream",
        "-a",
        "--format",
        "{{.Name}} {{.PIDs}} {{.NetIO}}",
    ]));
    let mut got = lines(&out);
    got.sort_unstable();
    assert_eq!(got.len(), 2, "{got:?}");
    // s1 is on the default bridge: whatever its interface saw (neighbour discovery, say).
    let (name, io) = got[0].split_at("s1 1 ".len().min(got[0].len()));
    assert_eq!(name, "s1 1 ", "{got:?}");
    let (rx, tx) = io.split_once(" / ").unwrap_or_else(|| panic!("{got:?}"));
    assert!(rx.ends_with('B') && tx.ends_with('B'), "{got:?}");
    assert_eq!(got[1], "s2 0 0B / 0B");

    // Without --no-stream the table is redrawn (screen cleared) until interrupted.
    let mut live = b
        .command(&["stats", "s1", "--format", "{{.Name}} {{.PIDs}}"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn stats");
    let mut reader = BufReader::new(live.stdout.take().expect("stdout"));
    let mut redraws = 0;
    let mut line = String::new();
    while redraws < 2 && reader.read_line(&mut line).expect("read stats") > 0 {
        if line.starts_with("\x1b[2J\x1b[H") {
            assert_eq!(line.trim_start_matches("\x1b[2J\x1b[H"), "s1 1\n");
            redraws += 1;
        }
        line.clear();
    }
    let _ = live.kill();
    let _ = live.wait();
    assert_eq!(redraws, 2);
}

#[test]
fn events_history_filters_and_follow() {
    let Some(b) = Berth::with_busybox("sys-events") else {
        return;
    };
    b.ok(&["run", "--name", "e1", "bb", "true"]);
    b.ok(&["rm", "e1"]);
    let out = stdout(&b.ok(&[
        "events",
        "--since",
        "1h",
        "--until",
        "0s",
        "--filter",
        "container=e1",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
    ]));
    assert_eq!(
        lines(&out),
        [
            "container create e1",
            "container start e1",
            "container die e1",
            "container destroy e1"
        ]
    );
    let plain = stdout(&b.ok(&[
        "events",
        "--since",
        "1h",
        "--until",
        "0s",
        "-f",
        "event=die",
    ]));
    let line = plain.lines().next().expect("a die event");
    assert!(
        line.contains(" container die ") && line.ends_with("(exitCode=0, image=bb, name=e1)"),
        "{line}"
    );
    let json = stdout(&b.ok(&[
        "events",
        "--since",
        "1h",
        "--until",
        "0s",
        "--format",
        "json",
        "-f",
        "type=container",
    ]));
    let v: serde_json::Value =
        serde_json::from_str(json.lines().next().expect("a line")).expect("JSON");
    assert_eq!(v["Type"], "container");
    assert!(v["timeNano"].as_i64().is_some(), "{v}");
    let bad = b.cmd(&["events", "--since", "yesterday-ish"]);
    assert_eq!(bad.status.code(), Some(125), "{}", describe(&bad));

    // Without --until, new events stream until the reader stops.
    let mut follow = b
        .command(&[
            "events",
            "--filter",
            "event=start",
            "--format",
            "{{.Actor.Attributes.name}}",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn events");
    let mut reader = BufReader::new(follow.stdout.take().expect("stdout"));
    // Start containers until the follower (which may still be starting) reports one.
    let mut line = String::new();
    let mut n = 0;
    let seen = std::thread::scope(|s| {
        let h = s.spawn(|| reader.read_line(&mut line).map(|_| line.clone()));
        while !h.is_finished() && n < 50 {
            n += 1;
            b.ok(&["run", "--rm", "--name", &format!("f{n}"), "bb", "true"]);
        }
        // Ends the reader too (EOF) if nothing came.
        let _ = follow.kill();
        h.join().expect("reader")
    });
    let _ = follow.wait();
    let seen = seen.expect("read a followed event");
    assert!(seen.trim().starts_with('f'), "{seen}");
}

#[test]
fn system_df_prune_check_info_version() {
    let Some(b) = Berth::with_busybox("sys-system") else {
        return;
    };
    b.ok(&["run", "-d", "--name", "keep", "bb", "sleep", "60"]);
    b.ok(&["run", "--name", "gone", "bb", "sh", "-c", "echo data > /d"]);
    let df = stdout(&b.ok(&["system", "df"]));
    let df = lines(&df);
    assert_eq!(
        df[0].split_whitespace().collect::<Vec<_>>(),
        ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    );
    let containers: Vec<&str> = df[2].split_whitespace().collect();
    assert_eq!(&containers[..3], ["Containers", "2", "1"], "{df:?}");
    assert!(
        df[2].ends_with("5B (100%)"),
        "the stopped one's 5 bytes: {df:?}"
    );
    let v = stdout(&b.ok(&["system", "df", "-v"]));
    assert!(
        v.contains("Containers space usage:") && v.contains("gone"),
        "{v}"
    );

    b.assert_consistent();
    let out = stdout(&b.ok(&["system", "prune", "-f"]));
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert!(out.ends_with("Total reclaimed space: 5B\n"), "{out}");
    assert_eq!(
        stdout(&b.ok(&["ps", "-a", "--format", "{{.Names}}"])),
        "keep\n"
    );
    // Without -f it asks; anything but y keeps everything.
    b.ok(&["run", "--name", "kept", "bb", "true"]);
    let mut c = b.command(&["system", "prune"]);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn prune");
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("prune");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Are you sure"),
        "{}",
        describe(&out)
    );
    assert!(stdout(&b.ok(&["ps", "-a"])).contains("kept"));

    let info = stdout(&b.ok(&["info"]));
    assert!(
        info.contains("\n Containers: 2\n  Running: 1\n  Paused: 0\n  Stopped: 1\n"),
        "{info}"
    );
    assert!(info.contains(" Cgroup Version: "), "{info}");
    let root = b.root.to_string_lossy().into_owned();
    assert_eq!(
        stdout(&b.ok(&["info", "-f", "{{.DockerRootDir}}"])).trim(),
        root
    );
    let version = stdout(&b.ok(&["version", "-f", "{{.Server.Version}}"]));
    assert_eq!(version.trim(), env!("CARGO_PKG_VERSION"));
    assert!(stdout(&b.ok(&["version"])).starts_with("Client:\n Version:"));

    // Images: a tag moved by a second commit leaves the first image dangling; `system prune`
    // removes it (and the stopped container), `-a` also the tagged image no container uses,
    // never the one `keep` runs.
    b.ok(&["commit", "-m", "one", "kept", "snap:1"]);
    let first = stdout(&b.ok(&["inspect", "-f", "{{.Id}}", "snap:1"]));
    b.ok(&["commit", "-m", "two", "kept", "snap:1"]);
    let images = || stdout(&b.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    let out = stdout(&b.ok(&["system", "prune", "-f"]));
    assert!(
        out.contains(&format!("Deleted Images:\ndeleted: {}\n", first.trim())),
        "{out}"
    );
    assert!(out.contains("Deleted Containers:\n"), "{out}");
    assert!(out.contains("Total reclaimed space: "), "{out}");
    assert!(images().contains("snap:1"), "{}", images());
    let out = stdout(&b.ok(&["system", "prune", "-a", "-f"]));
    assert!(
        out.starts_with("Deleted Images:\nuntagged: snap:1\ndeleted: sha256:"),
        "{out}"
    );
    assert!(!out.contains("Total reclaimed space: 0B"), "{out}");
    assert_eq!(images(), "bb:latest\n");
    assert_eq!(
        stdout(&b.ok(&["system", "prune", "-a", "-f"])),
        "Total reclaimed space: 0B\n"
    );
    b.assert_consistent();
}

/// `run --runtime R`: the same container lifecycle through an OCI runtime binary.
fn lifecycle_under(b: &Berth, runtime: &str) {
    let out = b.ok(&["run", "--runtime", runtime, "--rm", "bb", "echo", "hi"]);
    assert_eq!(stdout(&out), "hi\n", "{runtime}");
    let id = stdout(&b.ok(&[
        "run",
        "-d",
        "--runtime",
        runtime,
        "--name",
        "ext",
        "bb",
        "sleep",
        "60",
    ]))
    .trim()
    .to_owned();
    let v = stdout(&b.ok(&["inspect", "-f", "{{.HostConfig.Runtime}}", "ext"]));
    assert!(
        v.trim()
            .ends_with(runtime.rsplit('/').next().expect("name")),
        "{v}"
    );
    let out = b.cmd(&["exec", "ext", "sh", "-c", "echo in; exit 5"]);
    assert_eq!(out.status.code(), Some(5), "{}", describe(&out));
    assert_eq!(stdout(&out), "in\n");
    b.ok(&["pause", "ext"]);
    b.ok(&["unpause", "ext"]);
    assert!(stdout(&b.ok(&["top", "ext"])).contains("sleep 60"));
    b.ok(&["stop", "-t", "0", "ext"]);
    assert!(stdout(&b.ok(&["ps", "-a"])).contains("Exited (137)"));
    b.ok(&["rm", "ext"]);
    assert_eq!(b.leftovers(&id), "", "{runtime}");
    let state = b.run_root.join("runtimes");
    wait_until("runtime state removed", || {
        std::fs::read_dir(&state)
            .into_iter()
            .flatten()
            .flatten()
            .all(|d| !d.path().join(&id).exists())
    });
    b.assert_consistent();
}

#[test]
fn runtime_flag_runs_runc_and_berth_runtime() {
    let Some(b) = Berth::with_busybox("sys-runtime") else {
        return;
    };
    if std::path::Path::new("/usr/sbin/runc").exists() {
        lifecycle_under(&b, "/usr/sbin/runc");
    }
    let ours = testutil::runtime_binary();
    lifecycle_under(&b, ours.to_str().expect("utf-8 path"));

    let out = b.cmd(&["run", "--runtime", "/no/such/runtime", "bb", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("runtime"),
        "{}",
        describe(&out)
    );
    assert_eq!(stdout(&b.ok(&["ps", "-aq"])), "");
}

#[test]
fn runtime_flag_with_crun_fails_cleanly_on_a_hybrid_host() {
    if !std::path::Path::new("/usr/bin/crun").exists() {
        return;
    }
    let Some(b) = Berth::with_busybox("sys-crun") else {
        return;
    };
    let out = b.cmd(&[
        "run",
        "--runtime",
        "/usr/bin/crun",
        "--rm",
        "bb",
        "echo",
        "hi",
    ]);
    let hybrid = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
        .is_ok_and(|c| !c.trim().is_empty());
    if hybrid {
        // crun refuses cgroup v1 hosts whose cgroup2 mount holds controllers.
        assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("crun") && err.contains("hybrid"), "{err}");
    } else {
        assert_eq!(stdout(&out), "hi\n", "{}", describe(&out));
    }
    assert_eq!(stdout(&b.ok(&["ps", "-aq"])), "");
    b.assert_consistent();
}
