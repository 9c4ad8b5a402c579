//! Crash and concurrency tests of the engine through the `berth` binary: many `run -d` and
//! `rm -f` at once leave the store consistent; a `berth` SIGKILLed at named points of `run`
//! and `rm` (the `BERTH_TEST_CRASH_AT` hook) or after a delay, and a monitor SIGKILLed while
//! its container runs, leave nothing that `system check` (or the next command) does not repair:
//! no orphan mount, cgroup or process, and a consistent record.

#![allow(clippy::expect_used)]

use std::time::Duration;

use testutil::{Berth, describe, processes_with, stdout, wait_until};

/// The engine's test hook: `berth` SIGKILLs itself at the crash point this names.
const CRASH_AT: &str = "BERTH_TEST_CRASH_AT";

/// Ids of every container of `b` (all states).
fn ids(b: &Berth) -> Vec<String> {
    stdout(&b.ok(&["ps", "-aq", "--no-trunc"]))
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Whether a process with this pid still runs (not a zombie).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

/// After a crash and a repair: every container left can be removed, and then nothing of it
/// remains anywhere.
/// Nothing of container `id` is left once its monitor, which may still be finishing its own
/// cleanup (the firewall render after a bridge container's exit) when `rm` returns, is gone.
fn assert_left_nothing(b: &Berth, id: &str, what: &str) {
    let gone = testutil::eventually(|| b.leftovers(id).is_empty());
    let procs: Vec<String> = testutil::processes_with(id)
        .iter()
        .map(|p| std::fs::read_to_string(format!("/proc/{p}/cmdline")).unwrap_or_default())
        .collect();
    assert!(gone, "{what}: {} ({procs:?})", b.leftovers(id));
}

fn assert_all_clean(b: &Berth, seen: &[String]) {
    for id in ids(b) {
        b.ok(&["rm", "-f", &id]);
    }
    b.assert_consistent();
    for id in seen {
        assert_left_nothing(b, id, &format!("container {id}"));
    }
    assert!(b.mounts().is_empty(), "mounts left: {:?}", b.mounts());
    let leftover: Vec<_> = std::fs::read_dir(b.root.join("containers"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(leftover.is_empty(), "bundles left: {leftover:?}");
}

#[test]
fn parallel_run_and_rm_leave_a_consistent_store() {
    let Some(b) = Berth::with_busybox("crash-parallel") else {
        return;
    };
    let seen = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..20 {
            let (b, seen) = (&b, &seen);
            s.spawn(move || {
                for i in 0..3 {
                    let name = format!("t{t}-{i}");
                    let out = b.ok(&["run", "-d", "--name", &name, "bb", "sleep", "30"]);
                    let id = stdout(&out).trim().to_owned();
                    seen.lock().expect("lock").push(id);
                    let out = b.cmd(&["rm", "-f", &name]);
                    assert!(out.status.success(), "rm -f {name}: {}", describe(&out));
                }
            });
        }
    });
    assert_eq!(ids(&b), Vec::<String>::new());
    let seen = seen.into_inner().expect("lock");
    assert_eq!(seen.len(), 60);
    assert_all_clean(&b, &seen);
}

/// Runs `berth ARGS` with the crash hook at `point`, checks it died by SIGKILL, calls
/// `after_kill`, then has `system check` repair what it left.
fn crash_at(b: &Berth, args: &[&str], point: &str, after_kill: impl FnOnce()) {
    let out = b
        .command(args)
        .env(CRASH_AT, point)
        .output()
        .expect("run berth");
    assert_eq!(
        out.status.code(),
        None,
        "SIGKILLed at {point}: {}",
        describe(&out)
    );
    after_kill();
    let check = b.cmd(&["system", "check"]);
    assert!(check.status.success(), "{point}: {}", describe(&check));
}

#[test]
fn berth_killed_at_each_crash_point_is_repaired() {
    let Some(b) = Berth::with_busybox("crash-points") else {
        return;
    };
    let mut seen = Vec::new();
    for point in ["create-after-record", "create-after-prepare"] {
        crash_at(
            &b,
            &["run", "-d", "--name", point, "bb", "sleep", "30"],
            point,
            || {
                seen.extend(ids(&b));
            },
        );
        // A record killed before its bundle was written is repaired away; one with a bundle
        // stays a created container that can start over or be removed.
        for id in ids(&b) {
            b.ok(&["rm", "-f", &id]);
        }
        b.assert_consistent();
    }
    for point in ["rm-after-kill", "rm-after-cleanup", "rm-after-record"] {
        let id = stdout(&b.ok(&["run", "-d", "--name", point, "bb", "sleep", "30"]))
            .trim()
            .to_owned();
        seen.push(id.clone());
        crash_at(&b, &["rm", "-f", point], point, || {});
        b.assert_consistent();
        // Whatever the record says now, removing it again finishes the job.
        if ids(&b).contains(&id) {
            b.ok(&["rm", "-f", &id]);
        }
        assert_left_nothing(&b, &id, point);
    }
    assert_all_clean(&b, &seen);
}

/// A `run` that was to record its container's exit, SIGKILLed as it begins: its monitor sees
/// it go and records the exit (and removes an `--rm` container) by itself.
#[test]
fn run_killed_taking_the_exit_leaves_it_to_the_monitor() {
    let Some(b) = Berth::with_busybox("crash-take-exit") else {
        return;
    };
    let kill_taking = |args: &[&str]| {
        let out = b
            .command(args)
            .env(CRASH_AT, "take-exit")
            .output()
            .expect("run berth");
        assert_eq!(out.status.code(), None, "SIGKILLed: {}", describe(&out));
    };
    kill_taking(&["run", "--name", "kept", "bb", "sh", "-c", "exit 5"]);
    wait_until("the monitor records the exit", || {
        b.inspect("{{.State.Status}} {{.State.ExitCode}}", "kept") == "exited 5"
    });
    let kept = b.inspect("{{.Id}}", "kept");
    kill_taking(&["run", "--rm", "--name", "gone", "bb", "true"]);
    wait_until("the monitor removes the --rm container", || {
        ids(&b) == [kept.clone()]
    });
    let check = b.ok(&["system", "check"]);
    assert!(
        stdout(&check).contains("no problems"),
        "{}",
        describe(&check)
    );
    assert_all_clean(&b, &[kept]);
}

/// Runs `berth ARGS` and SIGKILLs it after `ms` milliseconds (or lets it finish first).
fn kill_after(b: &Berth, args: &[&str], ms: u64) {
    let mut child = b
        .command(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn berth");
    std::thread::sleep(Duration::from_millis(ms));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn berth_killed_after_a_delay_is_repaired() {
    let Some(b) = Berth::with_busybox("crash-delay") else {
        return;
    };
    let mut seen = Vec::new();
    for ms in [2, 10, 30, 60, 120, 250] {
        kill_after(&b, &["run", "-d", "bb", "sleep", "30"], ms);
        seen.extend(ids(&b));
        if let Some(id) = ids(&b).first() {
            kill_after(&b, &["rm", "-f", id], ms);
        }
        let check = b.cmd(&["system", "check"]);
        assert!(
            check.status.success(),
            "after {ms} ms: {}",
            describe(&check)
        );
        for id in ids(&b) {
            b.ok(&["rm", "-f", &id]);
        }
        b.assert_consistent();
    }
    seen.sort();
    seen.dedup();
    assert_all_clean(&b, &seen);
}

#[test]
fn monitor_killed_while_the_container_runs_is_repaired() {
    let Some(b) = Berth::with_busybox("crash-monitor") else {
        return;
    };
    for runtime in [None, Some("/usr/sbin/runc")] {
        if runtime.is_some_and(|r| !std::path::Path::new(r).exists()) {
            continue;
        }
        let mut args = vec!["run", "-d", "--name", "m1"];
        if let Some(r) = runtime {
            args.extend(["--runtime", r]);
        }
        args.extend(["bb", "sleep", "60"]);
        let id = stdout(&b.ok(&args)).trim().to_owned();
        let pid = stdout(&b.ok(&["inspect", "-f", "{{.State.Pid}}", "m1"]))
            .trim()
            .to_owned();
        // `run -d` returns on the monitor's report, just before it execs the idle binary,
        // whose command line names the container.
        wait_until("the idle monitor", || processes_with(&id).len() == 1);
        let monitors = processes_with(&id);
        assert_eq!(monitors.len(), 1, "one monitor: {monitors:?}");
        let st = std::process::Command::new("kill")
            .arg("-9")
            .arg(monitors[0].to_string())
            .status()
            .expect("kill");
        assert!(st.success());
        wait_until("the monitor is gone", || processes_with(&id).is_empty());
        assert!(alive(&pid), "the container outlives its monitor");

        let dry = b.cmd(&["system", "check", "--dry-run"]);
        assert_eq!(dry.status.code(), Some(1), "{}", describe(&dry));
        assert!(
            stdout(&dry).contains("monitor is gone"),
            "{}",
            describe(&dry)
        );
        let fix = b.ok(&["system", "check"]);
        assert!(stdout(&fix).contains("repaired"), "{}", describe(&fix));
        wait_until("the container's process is gone", || !alive(&pid));
        let status = stdout(&b.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "m1",
        ]));
        assert_eq!(status.trim(), "exited 137");
        assert_eq!(b.leftovers(&id), "", "{runtime:?}");
        b.assert_consistent();
        b.ok(&["rm", "m1"]);
    }

    // Monitor and container both killed: the next `ps` notices and records the exit.
    let id = stdout(&b.ok(&["run", "-d", "--name", "m2", "bb", "sleep", "60"]))
        .trim()
        .to_owned();
    let pid = stdout(&b.ok(&["inspect", "-f", "{{.State.Pid}}", "m2"]))
        .trim()
        .to_owned();
    let monitor = processes_with(&id);
    let mut kill = std::process::Command::new("kill");
    kill.arg("-9").arg(&pid);
    for m in &monitor {
        kill.arg(m.to_string());
    }
    assert!(kill.status().expect("kill").success());
    wait_until("both gone", || {
        !alive(&pid) && processes_with(&id).is_empty()
    });
    let ps = stdout(&b.ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]));
    assert_eq!(ps, "m2 exited\n");
    assert_eq!(b.leftovers(&id), "");
    b.assert_consistent();
    assert_all_clean(&b, &[id]);
}

#[test]
fn damage_done_by_hand_is_found_and_repaired() {
    let Some(b) = Berth::with_busybox("crash-hand") else {
        return;
    };
    // A bundle deleted under a stopped container's record: the record goes.
    let id = stdout(&b.ok(&["run", "-d", "--name", "h1", "bb", "true"]))
        .trim()
        .to_owned();
    wait_until("h1 exits", || {
        stdout(&b.ok(&["ps", "-a", "--format", "{{.State}}"])) == "exited\n"
    });
    std::fs::remove_dir_all(b.root.join("containers").join(&id)).expect("remove bundle");
    // A volume directory without a record: adopted, its data kept.
    let data = b.root.join("volumes/berth-test-vol/_data");
    std::fs::create_dir_all(&data).expect("make volume dir");
    std::fs::write(data.join("keep"), "precious").expect("write volume data");

    let dry = b.cmd(&["system", "check", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(1), "{}", describe(&dry));
    let report = stdout(&dry);
    assert!(
        report.contains("bundle directory") && report.contains("is missing"),
        "{report}"
    );
    assert!(
        report.contains("volume directory") && report.contains("has no record"),
        "{report}"
    );
    let fix = b.ok(&["system", "check"]);
    assert_eq!(
        stdout(&fix).matches("repaired").count(),
        2,
        "{}",
        describe(&fix)
    );
    b.assert_consistent();
    assert_eq!(ids(&b), Vec::<String>::new());
    assert_eq!(
        std::fs::read_to_string(data.join("keep")).expect("data"),
        "precious"
    );
    let df = stdout(&b.ok(&["system", "df"]));
    assert!(
        df.lines()
            .any(|l| l.split_whitespace().take(3).eq(["Local", "Volumes", "1"])),
        "{df}"
    );
}

#[test]
fn berth_killed_during_commit_leaves_nothing_frozen_or_recorded() {
    let Some(b) = Berth::with_busybox("crash-commit") else {
        return;
    };
    let id = stdout(&b.ok(&["run", "-d", "--name", "busy", "bb", "sleep", "30"]))
        .trim()
        .to_owned();
    let images = stdout(&b.ok(&["images", "-q", "--no-trunc"]));
    // Killed while the container is frozen for the commit: check names it and thaws it.
    crash_at(
        &b,
        &["commit", "busy", "snap:1"],
        "commit-after-pause",
        || {
            let report = stdout(&b.cmd(&["system", "check", "--dry-run"]));
            assert!(report.contains("frozen by a commit"), "{report}");
        },
    );
    let report = stdout(&b.cmd(&["system", "check", "--dry-run"]));
    assert!(report.contains("no problems found"), "{report}");
    assert_eq!(
        stdout(&b.ok(&["exec", "busy", "echo", "alive"])).trim(),
        "alive"
    );
    // Killed after the layer was stored, before the image was recorded: no new image.
    crash_at(
        &b,
        &["commit", "busy", "snap:1"],
        "commit-after-layer",
        || {},
    );
    assert_eq!(stdout(&b.ok(&["images", "-q", "--no-trunc"])), images);
    b.ok(&["exec", "busy", "true"]);
    // And the next commit works.
    b.ok(&["commit", "busy", "snap:1"]);
    b.ok(&["rm", "-f", "busy"]);
    b.assert_consistent();
    assert_all_clean(&b, &[id]);
}

/// `ps` repairs containers whose monitor died (lazily, as `system check` does); looking in
/// while `run --rm` containers are on their way out it must take none of them for such a one
/// (it would record exit 137 for it and race the cleanup).
#[test]
fn ps_while_run_rm_containers_exit_leaves_their_exits_alone() {
    let Some(b) = Berth::with_busybox("crash-rm-ps") else {
        return;
    };
    let done = std::sync::atomic::AtomicBool::new(false);
    let runs = 12;
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = b.cmd(&["ps", "-a"]);
            }
        });
        for _ in 0..runs {
            let out = b.cmd(&["run", "--rm", "bb", "sh", "-c", "exit 3"]);
            assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let out = stdout(&b.ok(&[
        "events",
        "--since",
        "1h",
        "--until",
        "0s",
        "--filter",
        "event=die",
        "--format",
        "{{.Actor.Attributes.exitCode}}",
    ]));
    let codes: Vec<&str> = out.lines().collect();
    assert_eq!(codes, vec!["3"; runs], "{out}");
    assert!(b.containers().is_empty(), "every --rm container is gone");
    b.assert_consistent();
}
