//! End-to-end tests of the per-container monitor through the `berth` binary: a real terminal
//! session driven by tmux (type, resize, detach, re-attach), containers outliving a killed CLI,
//! `create`/`start -a`/`restart`/`wait`, restart policies, log rotation and the `logs` filters,
//! and the repair after a killed monitor. Each test has its own `berth-test-` roots, torn down
//! (containers, mounts, tmux server) on drop.

// A test target: helpers outside `#[test]` functions fail the test with `expect` too.
#![allow(clippy::expect_used)]

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use testutil::{Berth, cgroups_named, describe, eventually};

/// Private roots with busybox as `bb` (and a tmux server) for one test.
struct Roots {
    b: Berth,
    tmux: String,
}

impl Deref for Roots {
    type Target = Berth;
    fn deref(&self) -> &Berth {
        &self.b
    }
}

impl Roots {
    fn new(tag: &str) -> Roots {
        let b = Berth::new(tag);
        b.import_busybox("bb");
        let tmux = b
            .run_root
            .file_name()
            .expect("run root name")
            .to_string_lossy()
            .into_owned();
        Roots { b, tmux }
    }

    /// `berth` with this test's roots, as a shell command line (for tmux).
    fn shell(&self, args: &str) -> String {
        self.b.shell(args)
    }

    /// `berth args` with stdin closed, not yet run.
    fn berth(&self, args: &[&str]) -> Command {
        let mut c = self.command(args);
        c.stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args)
    }

    fn ok(&self, args: &[&str]) -> String {
        self.stdout(args)
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.tmux, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("run tmux")
    }

    /// Waits until the tmux pane `target` shows `text`.
    fn pane_shows(&self, target: &str, text: &str) {
        let mut last = String::new();
        let found = eventually(|| {
            let out = self.tmux(&["capture-pane", "-p", "-t", target]);
            last = String::from_utf8_lossy(&out.stdout).into_owned();
            last.contains(text)
        });
        assert!(found, "pane {target} never showed {text:?}:\n{last}");
    }

    /// Nothing left of a container: no mount, no cgroup, no process naming it.
    fn assert_clean(&self, id: &str) {
        assert!(self.mounts().is_empty(), "mounts left: {:?}", self.mounts());
        assert!(
            cgroups_named(id).is_empty(),
            "cgroups left: {:?}",
            cgroups_named(id)
        );
    }
}

impl Drop for Roots {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// The parent pid of `pid`, from /proc.
fn parent_of(pid: i64) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn tty_session_types_resizes_detaches_and_reattaches() {
    if !testutil::require_root() {
        return;
    }
    let r = Roots::new("mon-tty");
    if Command::new("tmux").arg("-V").output().is_err() {
        panic!("tmux is needed for this test (apt install tmux)");
    }
    let run = format!(
        "{}; echo berth-exit=$?; exec sleep 600",
        r.shell("run -it --name tt bb sh")
    );
    let out = r.tmux(&[
        "new-session",
        "-d",
        "-s",
        "run",
        "-x",
        "100",
        "-y",
        "30",
        &run,
    ]);
    assert!(out.status.success(), "tmux: {}", describe(&out));
    r.pane_shows("run", "/ #");
    // The quotes make the output differ from the echoed input.
    r.tmux(&[
        "send-keys",
        "-t",
        "run",
        "echo typed-''and-run; stty size",
        "Enter",
    ]);
    r.pane_shows("run", "typed-and-run");
    r.pane_shows("run", "30 100");
    r.tmux(&["resize-window", "-t", "run", "-x", "120", "-y", "40"]);
    r.tmux(&["send-keys", "-t", "run", "stty size", "Enter"]);
    r.pane_shows("run", "40 120");
    // ctrl-p ctrl-q detaches: the CLI exits 0, the container runs on.
    r.tmux(&["send-keys", "-t", "run", "C-p", "C-q"]);
    r.pane_shows("run", "berth-exit=0");
    assert_eq!(r.inspect("{{.State.Status}}", "tt"), "running");

    let attach = format!(
        "{}; echo attach-exit=$?; exec sleep 600",
        r.shell("attach tt")
    );
    r.tmux(&[
        "new-session",
        "-d",
        "-s",
        "att",
        "-x",
        "90",
        "-y",
        "20",
        &attach,
    ]);
    // Attaching sends the new terminal's size.
    r.tmux(&["send-keys", "-t", "att", "stty size", "Enter"]);
    r.pane_shows("att", "20 90");
    r.tmux(&[
        "send-keys",
        "-t",
        "att",
        "echo again-''here; exit 3",
        "Enter",
    ]);
    r.pane_shows("att", "again-here");
    r.pane_shows("att", "attach-exit=3");
    assert_eq!(r.inspect("{{.State.ExitCode}}", "tt"), "3");
    // The terminal's output went to the log as well.
    assert!(r.ok(&["logs", "tt"]).contains("typed-and-run"));
    let id = r.inspect("{{.Id}}", "tt");
    r.ok(&["rm", "tt"]);
    r.assert_clean(&id);
}

#[test]
fn container_outlives_a_killed_cli_and_its_monitor_is_no_child_of_it() {
    if !testutil::require_root() {
        return;
    }
    let r = Roots::new("mon-cli-kill");
    let mut cli = r
        .berth(&["run", "--name", "fg", "bb", "sleep", "600"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn berth run");
    assert!(
        eventually(|| r.run(&["inspect", "-f", "{{.State.Status}}", "fg"]).stdout == b"running\n"),
        "container started"
    );
    let pid: i64 = r.inspect("{{.State.Pid}}", "fg").parse().expect("pid");
    let monitor = parent_of(pid).expect("init's parent");
    assert_ne!(
        parent_of(monitor),
        Some(i64::from(cli.id())),
        "the monitor is not the CLI's child"
    );
    cli.kill().expect("SIGKILL the CLI");
    let _ = cli.wait();
    assert_eq!(r.inspect("{{.State.Status}}", "fg"), "running");
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "init runs on");

    // -d as well: the CLI is gone at once and the container runs.
    let id = r.ok(&["run", "-d", "bb", "sh", "-c", "echo up; exec sleep 600"]);
    let id = id.trim();
    assert!(eventually(|| r.ok(&["logs", id]) == "up\n"), "log of -d");
    r.ok(&["rm", "-f", "fg", id]);
    r.assert_clean(id);
}

#[test]
fn create_start_attach_wait_and_restart() {
    if !testutil::require_root() {
        return;
    }
    let r = Roots::new("mon-create");
    let id = r.ok(&[
        "create",
        "--name",
        "c1",
        "bb",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 5",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "create prints the full id: {id}");
    assert_eq!(r.inspect("{{.State.Status}}", "c1"), "created");
    let out = r.run(&["start", "-a", "c1"]);
    assert_eq!(out.status.code(), Some(5), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    assert_eq!(r.ok(&["wait", "c1"]), "5\n");

    // start -ai: stdin reaches the container.
    r.ok(&["create", "-i", "--name", "cat", "bb", "cat"]);
    let mut child = r
        .berth(&["start", "-ai", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn start -ai");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"through stdin\n").expect("write stdin");
    }
    let out = child.wait_with_output().expect("start -ai");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through stdin\n");

    // start of several, wait of several, restart.
    r.ok(&["create", "--name", "s1", "bb", "sleep", "600"]);
    r.ok(&["create", "--name", "s2", "bb", "sh", "-c", "exit 2"]);
    assert_eq!(r.ok(&["start", "s1", "s2"]), "s1\ns2\n");
    assert_eq!(r.ok(&["wait", "s2", "c1"]), "2\n5\n");
    let pid = r.inspect("{{.State.Pid}}", "s1");
    assert_eq!(r.ok(&["restart", "-t", "0", "s1"]), "s1\n");
    assert_eq!(r.inspect("{{.State.Status}}", "s1"), "running");
    assert_ne!(r.inspect("{{.State.Pid}}", "s1"), pid, "a new init");
    r.ok(&["kill", "s1"]);
    assert_eq!(r.ok(&["wait", "s1"]), "137\n");

    // Docker's codes for a program that cannot run, from the runtime's errno.
    for (program, code) in [("no-such-program", 127), ("/no/such", 127), ("/bin", 126)] {
        let out = r.run(&["run", "--rm", "bb", program]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{program}: {}",
            describe(&out)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).lines().count(),
            1,
            "one line"
        );
    }
    let out = r.run(&["start", "no-such"]);
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
    r.ok(&["rm", "c1", "cat", "s1", "s2"]);
    r.assert_clean(id);
}

#[test]
fn restart_policies_restart_after_a_crash_until_stopped() {
    if !testutil::require_root() {
        return;
    }
    let r = Roots::new("mon-restart");
    r.ok(&[
        "run",
        "-d",
        "--name",
        "twice",
        "--restart",
        "on-failure:2",
        "bb",
        "sh",
        "-c",
        "echo run; exit 3",
    ]);
    assert_eq!(r.ok(&["wait", "twice"]), "3\n");
    assert_eq!(r.inspect("{{.RestartCount}}", "twice"), "2");
    assert_eq!(r.ok(&["logs", "twice"]), "run\nrun\nrun\n", "three runs");

    r.ok(&[
        "run",
        "-d",
        "--name",
        "ever",
        "--restart",
        "always",
        "bb",
        "sh",
        "-c",
        "echo run; exit 0",
    ]);
    assert!(
        eventually(|| r
            .inspect("{{.RestartCount}}", "ever")
            .parse::<u32>()
            .is_ok_and(|n| n >= 3)),
        "always restarts, also after exit 0"
    );
    r.ok(&["stop", "-t", "1", "ever"]);
    assert_eq!(r.inspect("{{.State.Status}}", "ever"), "exited");
    let count = r.inspect("{{.RestartCount}}", "ever");
    // The monitor is gone: nothing restarts it any more.
    assert_eq!(r.ok(&["ps", "-q"]), "");
    assert_eq!(r.inspect("{{.RestartCount}}", "ever"), count);

    let out = r.run(&["run", "--rm", "--restart", "always", "bb", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    let out = r.run(&["run", "--restart", "sometimes", "bb", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    let id = r.inspect("{{.Id}}", "ever");
    r.ok(&["rm", "twice", "ever"]);
    r.assert_clean(&id);
}

#[test]
fn logs_rotate_and_filter() {
    if !testutil::require_root() {
        return;
    }
    let r = Roots::new("mon-logs");
    let script = "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done";
    r.ok(&[
        "run",
        "--name",
        "chatty",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=3",
        "bb",
        "sh",
        "-c",
        script,
    ]);
    let log = PathBuf::from(r.inspect("{{.LogPath}}", "chatty"));
    let dir = log.parent().expect("log dir");
    let name = log
        .file_name()
        .expect("log name")
        .to_string_lossy()
        .into_owned();
    let files: Vec<_> = std::fs::read_dir(dir)
        .expect("list bundle")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&name))
        .collect();
    assert_eq!(files.len(), 3, "max-file=3 keeps three files");
    for f in &files {
        let len = f.metadata().expect("stat").len();
        assert!(len <= 2048, "{:?} is {len} bytes", f.path());
    }
    // The tail across files, in order.
    let tail = r.ok(&["logs", "--tail", "25", "chatty"]);
    let want: String = (275..300).map(|i| format!("line-{i}\n")).collect();
    assert_eq!(tail, want);
    let all = r.ok(&["logs", "chatty"]);
    assert!(
        all.ends_with(&want) && !all.starts_with("line-0\n"),
        "old lines rotated away"
    );

    let out = r.ok(&["logs", "-t", "--tail", "1", "chatty"]);
    let (time, text) = out.split_once(' ').expect("a timestamp");
    assert_eq!(text, "line-299\n");
    assert!(time.ends_with('Z') && time.contains('T'), "{time}");
    assert_eq!(r.ok(&["logs", "--since", time, "chatty"]), "line-299\n");
    assert_eq!(
        r.ok(&["logs", "--until", "2000-01-01T00:00:00Z", "chatty"]),
        ""
    );
    assert_eq!(
        r.ok(&["logs", "--since", "1h", "--tail", "1", "chatty"]),
        "line-299\n"
    );
    assert_eq!(
        r.ok(&["logs", "--since", "4102444800", "chatty"]),
        "",
        "since 2100"
    );
    let out = r.run(&["logs", "--since", "yesterday", "chatty"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));

    // -f follows until the container stops.
    r.ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        "bb",
        "sh",
        "-c",
        "echo a; sleep 1; echo b",
    ]);
    assert_eq!(r.ok(&["logs", "-f", "slow"]), "a\nb\n");
    // -f across rotations: the follower finishes each rotated file before the next.
    let script = "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); \
                  [ $((i % 10)) = 0 ] && sleep 0.2; done";
    r.ok(&[
        "run",
        "-d",
        "--name",
        "rot",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=2",
        "bb",
        "sh",
        "-c",
        script,
    ]);
    let followed = r.ok(&["logs", "-f", "rot"]);
    let want: String = (0..200).map(|i| format!("line-{i}\n")).collect();
    assert_eq!(followed, want);
    // Bursts that rotate several times between two looks of the follower: the files in
    // between are read too (max-file=6 keeps them long enough).
    let script = "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); \
                  [ $((i % 60)) = 0 ] && sleep 0.3; done";
    r.ok(&[
        "run",
        "-d",
        "--name",
        "burst",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=6",
        "bb",
        "sh",
        "-c",
        script,
    ]);
    let followed = r.ok(&["logs", "-f", "burst"]);
    let want: String = (0..300).map(|i| format!("line-{i}\n")).collect();
    assert_eq!(followed, want);
    r.ok(&["rm", "chatty", "slow", "rot", "burst"]);
}

#[test]
fn killed_monitor_is_repaired_by_the_next_command() {
    if !testutil::require_root() {
        return;
    }
    let r = Roots::new("mon-repair");
    let id = r.ok(&["run", "-d", "--name", "orphan", "bb", "sleep", "600"]);
    let id = id.trim();
    let pid: i64 = r.inspect("{{.State.Pid}}", "orphan").parse().expect("pid");
    let monitor = parent_of(pid).expect("monitor pid");
    let st = Command::new("kill")
        .args(["-9", &monitor.to_string()])
        .status();
    assert!(st.is_ok_and(|s| s.success()), "SIGKILL the monitor");
    assert!(
        eventually(|| !Path::new(&format!("/proc/{monitor}")).exists()),
        "monitor gone"
    );
    let ps = r.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (137)"), "{ps}");
    assert!(
        eventually(|| !Path::new(&format!("/proc/{pid}")).exists()),
        "init gone"
    );
    r.assert_clean(id);
    r.ok(&["rm", "orphan"]);
}

#[test]
fn interactive_pipe_stdin_ends_with_eof() {
    if !testutil::require_root() {
        return;
    }
    let r = Roots::new("mon-stdin");
    let mut child = r
        .berth(&["run", "-i", "--rm", "bb", "sh", "-c", "cat; echo done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn run -i");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        for i in 0..1000 {
            writeln!(stdin, "in-{i}").expect("write stdin");
        }
    }
    let out = child.wait_with_output().expect("run -i");
    let want: String = (0..1000).map(|i| format!("in-{i}\n")).collect::<String>() + "done\n";
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
}

/// Runs `berth run [flags] --name NAME bb sh -c <trap TERM script>` in the foreground, waits
/// for the container to be ready, sends SIGTERM to the CLI; returns the CLI's output.
fn terminate_foreground_run(r: &Roots, name: &str, flags: &[&str]) -> Output {
    let script = "trap 'echo got-term; exit 9' TERM; echo ready; while true; do sleep 0.1; done";
    let mut args = vec!["run"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--name", name, "bb", "sh", "-c", script]);
    let cli = r
        .berth(&args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn berth run");
    assert!(
        eventually(|| r.run(&["logs", name]).stdout == b"ready\n"),
        "container ready"
    );
    let st = Command::new("kill")
        .args(["-TERM", &cli.id().to_string()])
        .status();
    assert!(st.is_ok_and(|s| s.success()), "signal the CLI");
    cli.wait_with_output().expect("berth run")
}

#[test]
fn signals_to_a_foreground_run_reach_the_container() {
    if !testutil::require_root() {
        return;
    }
    let r = Roots::new("mon-sigproxy");
    let out = terminate_foreground_run(&r, "sp", &[]);
    assert_eq!(out.status.code(), Some(9), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ready\ngot-term\n");

    // --sig-proxy=false: the CLI dies of the signal, the container runs on.
    let out = terminate_foreground_run(&r, "np", &["--sig-proxy=false"]);
    let code = out.status.code();
    assert_eq!(code, None, "killed by SIGTERM: {}", describe(&out));
    assert_eq!(r.inspect("{{.State.Status}}", "np"), "running");
    r.ok(&["rm", "-f", "sp", "np"]);
}

#[test]
fn health_checks_turn_healthy_then_unhealthy() {
    if !testutil::require_root() {
        return;
    }
    let r = Roots::new("mon-health");
    r.ok(&[
        "run",
        "-d",
        "--name",
        "doc",
        "--health-cmd",
        "test -e /tmp/ok && echo fine",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "bb",
        "sh",
        "-c",
        "touch /tmp/ok; exec sleep 600",
    ]);
    assert!(
        eventually(|| r.inspect("{{.State.Health.Status}}", "doc") == "healthy"),
        "healthy: {}",
        r.inspect("{{json .State.Health}}", "doc")
    );
    assert!(r.ok(&["ps"]).contains("(healthy)"), "{}", r.ok(&["ps"]));
    assert!(
        r.inspect("{{json .State.Health.Log}}", "doc")
            .contains("fine")
    );
    r.ok(&["exec", "doc", "rm", "/tmp/ok"]);
    assert!(
        eventually(|| r.inspect("{{.State.Health.Status}}", "doc") == "unhealthy"),
        "unhealthy after the file went"
    );
    assert!(r.ok(&["ps"]).contains("(unhealthy)"));

    r.ok(&[
        "run",
        "-d",
        "--name",
        "plain",
        "--no-healthcheck",
        "bb",
        "sleep",
        "600",
    ]);
    assert_eq!(r.inspect("{{json .State.Health}}", "plain"), "null");
    let out = r.run(&["run", "--health-interval", "soon", "bb", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    r.ok(&["rm", "-f", "doc", "plain"]);
}

/// An image's `Healthcheck` runs with no `--health-*` flag (Docker's merge: a flag overrides
/// one setting, `--no-healthcheck` all of it).
#[test]
fn image_healthcheck_runs_without_flags() {
    if !testutil::require_root() {
        return;
    }
    let r = Roots::new("mon-imghealth");
    let tarball = std::fs::read(testutil::images::busybox_tarball(&r.scratch)).expect("tarball");
    let mut img =
        testutil::images::ArchiveImage::new("checked:1", vec![tarball], &["sleep", "600"]);
    img.config["Healthcheck"] = serde_json::json!({
        "Test": ["CMD-SHELL", "echo from-image"],
        "Interval": 200_000_000_i64,
        "Retries": 2,
    });
    let archive = testutil::images::docker_archive(&[img]);
    let out = r.cmd_with_input(&["load"], &archive);
    assert!(out.status.success(), "{}", describe(&out));
    r.ok(&["run", "-d", "--name", "img", "checked:1"]);
    assert!(
        eventually(|| r.inspect("{{.State.Health.Status}}", "img") == "healthy"),
        "healthy: {}",
        r.inspect("{{json .State.Health}}", "img")
    );
    assert!(
        r.inspect("{{json .State.Health.Log}}", "img")
            .contains("from-image")
    );
    r.ok(&[
        "run",
        "-d",
        "--name",
        "off",
        "--no-healthcheck",
        "checked:1",
    ]);
    assert_eq!(r.inspect("{{json .State.Health}}", "off"), "null");
    r.ok(&["rm", "-f", "img", "off"]);
}

// ---- `exec -i` / `exec -t` ---------------------------------------------------------------
// Kept together at the end of the file, on the helpers above as they are.

/// `berth exec -it CTR sh` in a tmux pane: typing reaches the shell, its output comes back,
/// a resize reaches the pty, the detach keys leave the process running, and the shell's exit
/// code is the CLI's.
#[test]
fn exec_tty_session_types_resizes_and_exits_with_the_shells_code() {
    if !testutil::require_root() {
        return;
    }
    let r = Roots::new("mon-exec-tty");
    if Command::new("tmux").arg("-V").output().is_err() {
        panic!("tmux is needed for this test (apt install tmux)");
    }
    r.ok(&["run", "-d", "--name", "et", "bb", "sleep", "600"]);
    let exec = format!(
        "{}; echo exec-exit=$?; exec sleep 600",
        r.shell("exec -it et sh")
    );
    let out = r.tmux(&[
        "new-session",
        "-d",
        "-s",
        "ex",
        "-x",
        "100",
        "-y",
        "30",
        &exec,
    ]);
    assert!(out.status.success(), "tmux: {}", describe(&out));
    r.pane_shows("ex", "/ #");
    r.tmux(&[
        "send-keys",
        "-t",
        "ex",
        "echo in-''exec; tty; stty size",
        "Enter",
    ]);
    r.pane_shows("ex", "in-exec");
    r.pane_shows("ex", "/dev/pts/");
    r.pane_shows("ex", "30 100");
    r.tmux(&["resize-window", "-t", "ex", "-x", "120", "-y", "40"]);
    r.tmux(&["send-keys", "-t", "ex", "stty size", "Enter"]);
    r.pane_shows("ex", "40 120");
    r.tmux(&["send-keys", "-t", "ex", "exit 4", "Enter"]);
    r.pane_shows("ex", "exec-exit=4");
    assert_eq!(r.inspect("{{.State.Status}}", "et"), "running");

    // ctrl-p ctrl-q: the CLI exits 0 and the process runs on, its terminal kept open.
    let detached = format!(
        "{}; echo detach-exit=$?; exec sleep 600",
        r.shell("exec -it et sh -c 'echo ready-''to-detach; exec sleep 777'")
    );
    r.tmux(&["new-session", "-d", "-s", "det", &detached]);
    r.pane_shows("det", "ready-to-detach");
    r.tmux(&["send-keys", "-t", "det", "C-p", "C-q"]);
    r.pane_shows("det", "detach-exit=0");
    assert!(
        eventually(|| r.ok(&["exec", "et", "ps"]).contains("sleep 777")),
        "the detached process is gone: {}",
        r.ok(&["exec", "et", "ps"])
    );
    let id = r.inspect("{{.Id}}", "et");
    r.ok(&["rm", "-f", "et"]);
    r.assert_clean(&id);
}

/// Without `-t`, `-i` hands the CLI's stdin to the process; without `-i` it reads /dev/null.
#[test]
fn exec_stdin_is_passed_with_i_and_null_without() {
    if !testutil::require_root() {
        return;
    }
    let r = Roots::new("mon-exec-i");
    r.ok(&["run", "-d", "--name", "ei", "bb", "sleep", "600"]);
    let piped = |args: &[&str]| {
        use std::io::Write;
        let mut child = r
            .berth(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth");
        // Leave stdin open without -i: cat must still end, on /dev/null's EOF.
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"hi\n").expect("write stdin");
        if args.contains(&"-i") {
            drop(stdin);
            child.wait_with_output().expect("wait for berth")
        } else {
            let out = child.wait_with_output().expect("wait for berth");
            drop(stdin);
            out
        }
    };
    let out = piped(&["exec", "-i", "ei", "cat"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    let out = piped(&["exec", "ei", "cat"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    let out = r.run(&["exec", "-i", "ei", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", describe(&out));
    let out = r.run(&["exec", "-it", "--detach-keys", "ctrl-1", "ei", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    let caps = r.ok(&[
        "exec",
        "--privileged",
        "ei",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    let plain = r.ok(&["exec", "ei", "grep", "CapEff", "/proc/self/status"]);
    assert_ne!(caps, plain, "--privileged adds capabilities");

    // -t without a terminal here: the process still gets a pty, through a runc-style runtime
    // binary (exec --console-socket --detach --pid-file) as well as the in-process one.
    let runtime = testutil::runtime_binary();
    let runtime = runtime.to_str().expect("utf-8 path");
    r.ok(&[
        "run",
        "-d",
        "--name",
        "ext",
        "--runtime",
        runtime,
        "bb",
        "sleep",
        "600",
    ]);
    for ctr in ["ei", "ext"] {
        let out = r.run(&["exec", "-t", ctr, "sh", "-c", "tty; exit 5"]);
        assert_eq!(out.status.code(), Some(5), "{ctr}: {}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("/dev/pts/"),
            "{ctr}: {}",
            describe(&out)
        );
        // -d -t: the process keeps its terminal after berth returned (a shell on /dev/null
        // would end at once), as under Docker.
        let out = r.run(&["exec", "-d", "-t", ctr, "sh"]);
        assert_eq!(out.status.code(), Some(0), "{ctr}: {}", describe(&out));
        let shell_on_pty = "for p in /proc/[0-9]*; do \
             [ \"$(cat $p/comm 2>/dev/null)\" = sh ] && readlink $p/fd/0; done; true";
        assert!(
            eventually(|| r
                .ok(&["exec", ctr, "sh", "-c", shell_on_pty])
                .contains("/dev/pts/")),
            "{ctr}: no shell on a terminal"
        );
    }
    r.ok(&["rm", "-f", "ei", "ext"]);
}
