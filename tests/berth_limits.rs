//! End-to-end tests of the `run` flags that shape a container — limits, capabilities, seccomp,
//! identity, `--init`, the /etc files — and of `update`, each observed through the real kernel:
//! from inside the container (/proc/self/status, /etc) or in its cgroup on the host.
//! Every test has its own `berth-test-` roots, removed (containers, mounts, dirs) on drop.

// A test target: helpers outside `#[test]` functions fail the test with `expect` too.
#![allow(clippy::expect_used)]

use std::fs;

use testutil::{Berth, cgroup_dir, describe, stdout, wait_until};

/// One `Key:\tvalue` line of `/proc/self/status` as the container's process sees it.
fn status_field(b: &Berth, flags: &[&str], key: &str) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["bb", "cat", "/proc/self/status"]);
    let status = b.stdout(&args);
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no {key} in {status}"))
}

fn cap_mask(hex: &str) -> u64 {
    u64::from_str_radix(hex, 16).expect("hex capability mask")
}

#[test]
fn memory_limit_oom_kill_exits_137_and_is_recorded() {
    let Some(b) = Berth::with_busybox("limits-oom") else {
        return;
    };
    let out = b.cmd(&[
        "run",
        "--name",
        "hog",
        "--memory",
        "32m",
        "bb",
        "sh",
        "-c",
        "tail /dev/zero",
    ]);
    assert_eq!(out.status.code(), Some(137), "{}", describe(&out));
    assert_eq!(
        b.inspect("{{.State.OOMKilled}} {{.State.ExitCode}}", "hog"),
        "true 137"
    );
    assert_eq!(b.inspect("{{.HostConfig.Memory}}", "hog"), "33554432");
    // An exit that is not an OOM kill is not recorded as one.
    let _ = b.cmd(&["run", "--name", "calm", "--memory", "32m", "bb", "true"]);
    assert_eq!(b.inspect("{{.State.OOMKilled}}", "calm"), "false");
}

/// The cgroup path of each hierarchy in a `/proc/<pid>/cgroup` text (`0::` for cgroup2).
fn cgroup_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            Some((ctrls.to_owned(), path.to_owned()))
        })
        .collect()
}

/// Init and an `exec`'d process enter the container's cgroup in every hierarchy the host has
/// (each v1 one and, on a hybrid host, the cgroup2 one): they put themselves there as they are
/// forked; the monitor stays out.
#[test]
fn container_processes_are_in_every_hierarchy_and_the_monitor_is_not() {
    let Some(b) = Berth::with_busybox("limits-cgroups") else {
        return;
    };
    let id = stdout(&b.ok(&["run", "-d", "bb", "sleep", "60"]))
        .trim()
        .to_owned();
    let init = b.inspect("{{.State.Pid}}", &id);
    let host = fs::read_to_string("/proc/self/cgroup").expect("own cgroups");
    let expect_all_in = |what: &str, text: &str| {
        let lines = cgroup_lines(text);
        assert_eq!(lines.len(), cgroup_lines(&host).len(), "{what}: {text}");
        for (ctrls, path) in lines {
            assert!(
                path.ends_with(&id),
                "{what} not in the container's {ctrls:?} cgroup: {text}"
            );
        }
    };
    let text = fs::read_to_string(format!("/proc/{init}/cgroup")).expect("init's cgroups");
    expect_all_in("init", &text);
    expect_all_in(
        "exec",
        &b.stdout(&["exec", &id, "cat", "/proc/self/cgroup"]),
    );
    let monitor = fs::read_to_string(format!("/proc/{init}/stat"))
        .expect("init's stat")
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.split_whitespace().nth(1).map(str::to_owned))
        .expect("init's parent");
    let text = fs::read_to_string(format!("/proc/{monitor}/cgroup")).expect("monitor's cgroups");
    assert!(
        cgroup_lines(&text).iter().all(|(_, p)| !p.contains(&id)),
        "the monitor is in the container's cgroup: {text}"
    );
}

#[test]
fn oom_kill_disable_makes_the_hog_wait() {
    let Some(b) = Berth::with_busybox("limits-oomoff") else {
        return;
    };
    let id = b.stdout(&[
        "run",
        "-d",
        "--memory",
        "32m",
        "--oom-kill-disable",
        "bb",
        "sh",
        "-c",
        // Memory touched from user space: a charge failing inside a syscall (`tail /dev/zero`'s
        // read) returns ENOMEM instead of waiting.
        "x=aaaaaaaa; while :; do x=$x$x; done",
    ]);
    let id = id.trim();
    let memory = cgroup_dir("memory", id).expect("the container's memory cgroup");
    let oom_control = || fs::read_to_string(memory.join("memory.oom_control")).unwrap_or_default();
    assert!(
        oom_control().contains("oom_kill_disable 1"),
        "{}",
        oom_control()
    );
    // The hog reaches the limit and waits there instead of being killed.
    wait_until("the hog to be under OOM", || {
        oom_control().contains("under_oom 1")
    });
    assert!(oom_control().contains("oom_kill 0"), "{}", oom_control());
    assert_eq!(b.inspect("{{.State.Status}}", id), "running");
    let _ = b.stdout(&["rm", "-f", id]);
}

#[test]
fn pids_limit_stops_a_fork_loop() {
    let Some(b) = Berth::with_busybox("limits-pids") else {
        return;
    };
    // 40 background sleeps cannot all start under a limit of 20.
    let out = b.cmd(&[
        "run",
        "--rm",
        "--pids-limit",
        "20",
        "bb",
        "sh",
        "-c",
        "n=0; while [ $n -lt 40 ]; do sleep 30 & n=$((n+1)); done; echo all started",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!stdout(&out).contains("all started"), "{}", describe(&out));
    assert!(err.contains("can't fork"), "{}", describe(&out));
}

#[test]
fn cpus_sets_the_cfs_quota_and_the_kernel_throttles() {
    let Some(b) = Berth::with_busybox("limits-cpus") else {
        return;
    };
    let id = b.stdout(&[
        "run",
        "-d",
        "--cpus",
        "0.5",
        "bb",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    let id = id.trim();
    // Seen from inside: the container's own cpu cgroup is its /sys/fs/cgroup/cpu.
    let inside = b.stdout(&["exec", id, "cat", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"]);
    assert_eq!(inside.trim(), "50000");
    let dir = cgroup_dir("cpu", id).expect("the container's cpu cgroup");
    let read = |f: &str| fs::read_to_string(dir.join(f)).expect("read cpu cgroup file");
    assert_eq!(read("cpu.cfs_quota_us").trim(), "50000");
    assert_eq!(read("cpu.cfs_period_us").trim(), "100000");
    wait_until("the busy loop to be throttled", || {
        read("cpu.stat")
            .lines()
            .find_map(|l| l.strip_prefix("nr_throttled "))
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
    });
    let _ = b.stdout(&["rm", "-f", id]);
}

#[test]
fn capabilities_default_drop_add_and_privileged() {
    let Some(b) = Berth::with_busybox("limits-caps") else {
        return;
    };
    // Docker's 14: chown, dac_override, fowner, fsetid, kill, setgid, setuid, setpcap,
    // net_bind_service, net_raw, sys_chroot, mknod, audit_write, setfcap.
    let default = 0xa804_25fb;
    assert_eq!(cap_mask(&status_field(&b, &[], "CapEff")), default);
    assert_eq!(cap_mask(&status_field(&b, &[], "CapBnd")), default);
    assert_eq!(
        cap_mask(&status_field(&b, &["--cap-drop", "ALL"], "CapEff")),
        0
    );
    let sys_admin = 1 << 21;
    let chown = 1;
    let added = cap_mask(&status_field(
        &b,
        &["--cap-add", "sys_admin", "--cap-drop", "CAP_CHOWN"],
        "CapEff",
    ));
    assert_eq!(added, (default | sys_admin) & !chown);
    assert_eq!(
        cap_mask(&status_field(
            &b,
            &["--cap-drop", "ALL", "--cap-add", "NET_RAW"],
            "CapEff"
        )),
        1 << 13
    );
    // Privileged: every capability berth itself holds, no seccomp, writable /sys.
    let own = fs::read_to_string("/proc/self/status").expect("own status");
    let own_bounding = own
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(|v| cap_mask(v.trim()))
        .expect("CapBnd");
    assert_eq!(
        cap_mask(&status_field(&b, &["--privileged"], "CapEff")),
        own_bounding
    );
    assert_eq!(status_field(&b, &["--privileged"], "Seccomp"), "0");
    let out = b.stdout(&[
        "run",
        "--rm",
        "--privileged",
        "bb",
        "sh",
        "-c",
        "grep ' /sys ' /proc/self/mounts; cat /proc/1/status >/dev/null; ls /dev/kmsg",
    ]);
    assert!(out.contains("sysfs /sys sysfs rw"), "{out}");
}

#[test]
fn default_seccomp_profile_blocks_what_docker_blocks() {
    let Some(b) = Berth::with_busybox("limits-seccomp") else {
        return;
    };
    assert_eq!(status_field(&b, &[], "Seccomp"), "2");
    // Creating a user namespace needs no capability, only the profile forbids unshare.
    let out = b.cmd(&["run", "--rm", "bb", "unshare", "-U", "true"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
        "{}",
        describe(&out)
    );
    let _ = b.stdout(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "bb",
        "unshare",
        "-U",
        "true",
    ]);
    assert_eq!(
        status_field(&b, &["--security-opt", "seccomp=unconfined"], "Seccomp"),
        "0"
    );
    // CAP_SYS_ADMIN opens unshare in the default profile, as in Docker's.
    let _ = b.stdout(&[
        "run",
        "--rm",
        "--cap-add",
        "SYS_ADMIN",
        "bb",
        "unshare",
        "-U",
        "true",
    ]);
    // A profile file in Docker's format.
    let profile = b.scratch.join("no-mkdir.json");
    fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .expect("write profile");
    let opt = format!("seccomp={}", profile.display());
    let out = b.cmd(&["run", "--rm", "--security-opt", &opt, "bb", "mkdir", "/x"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let _ = b.stdout(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "bb",
        "unshare",
        "-U",
        "true",
    ]);
}

#[test]
fn no_new_privileges() {
    let Some(b) = Berth::with_busybox("limits-nnp") else {
        return;
    };
    assert_eq!(status_field(&b, &[], "NoNewPrivs"), "0");
    assert_eq!(
        status_field(&b, &["--security-opt", "no-new-privileges"], "NoNewPrivs"),
        "1"
    );
    assert_eq!(
        status_field(
            &b,
            &["--security-opt", "no-new-privileges=true"],
            "NoNewPrivs"
        ),
        "1"
    );
}

#[test]
fn user_names_resolve_in_the_image() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("limits-user");
    b.import_busybox_with("bb", |rootfs| {
        let etc = rootfs.join("etc");
        fs::create_dir_all(&etc).expect("mkdir etc");
        fs::write(
            etc.join("passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:App:/home/app:/bin/sh\n",
        )
        .expect("write passwd");
        fs::write(
            etc.join("group"),
            "root:x:0:\nwheel:x:10:app\nstaff:x:50:\napp:x:1000:\n",
        )
        .expect("write group");
    });
    let out = b.stdout(&[
        "run",
        "--rm",
        "-u",
        "app",
        "bb",
        "sh",
        "-c",
        "id -u; id -g; id -G; echo $HOME",
    ]);
    assert_eq!(out, "1000\n1000\n1000 10\n/home/app\n");
    let out = b.stdout(&[
        "run",
        "--rm",
        "-u",
        "app:staff",
        "--group-add",
        "4242",
        "bb",
        "sh",
        "-c",
        "id -u; id -g; id -G",
    ]);
    assert_eq!(out, "1000\n50\n50 10 4242\n");
    assert_eq!(
        b.stdout(&["run", "--rm", "bb", "sh", "-c", "echo $HOME"]),
        "/root\n"
    );
    // exec resolves names in the running container's /etc.
    let id = b.stdout(&["run", "-d", "bb", "sleep", "1000"]);
    let id = id.trim();
    assert_eq!(
        b.stdout(&["exec", "-u", "app:staff", id, "sh", "-c", "id -u; id -g"]),
        "1000\n50\n"
    );
    let out = b.cmd(&["exec", "-u", "nobody", id, "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    let _ = b.stdout(&["rm", "-f", id]);
    let out = b.cmd(&["run", "--rm", "-u", "nobody", "bb", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unable to find user nobody"),
        "{}",
        describe(&out)
    );
    assert!(b.containers().is_empty(), "no container left");
}

/// Process states (`/proc/<pid>/stat` third field) and names inside container `id`.
fn processes(b: &Berth, id: &str) -> Vec<(String, String)> {
    // A process that exits between the glob and the read is skipped, not an error.
    let out = b.stdout(&[
        "exec",
        id,
        "sh",
        "-c",
        "cat /proc/[0-9]*/stat 2>/dev/null; true",
    ]);
    out.lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(" (")?.1.split_once(") ")?;
            Some((name.to_owned(), rest.split(' ').next()?.to_owned()))
        })
        .collect()
}

#[test]
fn init_is_pid_1_reaps_orphans_and_forwards_signals() {
    let Some(b) = Berth::with_busybox("limits-init") else {
        return;
    };
    // The inner shell leaves a short sleep orphaned: it is re-parented to pid 1.
    let script = "sh -c 'sleep 0.1 &'; exec sleep 1000";
    let with = b.stdout(&["run", "-d", "--init", "bb", "sh", "-c", script]);
    let with = with.trim();
    let cmdline = b.stdout(&["exec", with, "cat", "/proc/1/cmdline"]);
    assert!(
        cmdline.starts_with("/sbin/docker-init\0--\0sh\0"),
        "{cmdline:?}"
    );
    wait_until("the orphan to be reaped", || {
        let ps = processes(&b, with);
        ps.iter().filter(|(n, _)| n == "sleep").count() == 1 && !ps.iter().any(|(_, s)| s == "Z")
    });
    // Without an init, pid 1 (sleep) never reaps it.
    let without = b.stdout(&["run", "-d", "bb", "sh", "-c", script]);
    let without = without.trim();
    wait_until("the orphan to become a zombie", || {
        processes(&b, without)
            .iter()
            .any(|(n, s)| n == "sleep" && s == "Z")
    });
    // SIGTERM reaches the command through the init (sleep as pid 1 would ignore it).
    let _ = b.stdout(&["stop", "-t", "30", with]);
    assert_eq!(b.inspect("{{.State.ExitCode}}", with), "143");
    let _ = b.stdout(&["rm", "-f", with, without]);
}

#[test]
fn etc_files_name_the_container() {
    let Some(b) = Berth::with_busybox("limits-etc") else {
        return;
    };
    let id = b.stdout(&["run", "-d", "bb", "sleep", "1000"]);
    let short = &id.trim()[..12];
    let cat = |f: &str| b.stdout(&["exec", short, "cat", f]);
    assert_eq!(cat("/etc/hostname"), format!("{short}\n"));
    let hosts = cat("/etc/hosts");
    assert!(hosts.starts_with("127.0.0.1\tlocalhost\n"), "{hosts}");
    assert!(hosts.contains(&format!("\t{short}\n")), "{hosts}");
    let resolv = cat("/etc/resolv.conf");
    assert!(
        !resolv.lines().any(|l| l.starts_with("nameserver 127.")),
        "no loopback nameserver: {resolv}"
    );
    assert!(resolv.contains("nameserver "), "{resolv}");
    let _ = b.stdout(&["rm", "-f", short]);

    let out = b.stdout(&[
        "run",
        "--rm",
        "-h",
        "web",
        "--domainname",
        "example.org",
        "bb",
        "sh",
        "-c",
        "hostname; cat /etc/hostname; tail -n1 /etc/hosts",
    ]);
    // On the default bridge the name is the container's address there, as under Docker.
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[..2], ["web", "web"], "{out}");
    let (addr, name) = lines[2].split_once('\t').unwrap_or(("", ""));
    let addr: std::net::Ipv4Addr = addr.parse().unwrap_or_else(|_| panic!("{out}"));
    assert!(!addr.is_loopback(), "{out}");
    assert_eq!(name, "web.example.org web", "{out}");
    // Without a network it is a loopback address.
    let out = b.stdout(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-h",
        "web",
        "bb",
        "tail",
        "-n1",
        "/etc/hosts",
    ]);
    assert_eq!(out, "127.0.1.1\tweb\n");

    let host_resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let host_hosts = fs::read_to_string("/etc/hosts").unwrap_or_default();
    let out = b.stdout(&[
        "run",
        "--rm",
        "--network",
        "host",
        "bb",
        "sh",
        "-c",
        "cat /etc/resolv.conf; echo ---; cat /etc/hosts",
    ]);
    assert_eq!(out, format!("{host_resolv}---\n{host_hosts}"));
}

#[test]
fn update_changes_the_live_limits() {
    let Some(b) = Berth::with_busybox("limits-update") else {
        return;
    };
    let id = b.stdout(&[
        "run", "-d", "--name", "svc", "--memory", "64m", "bb", "sleep", "1000",
    ]);
    let id = id.trim();
    let memory = cgroup_dir("memory", id).expect("the container's memory cgroup");
    let limit = || {
        fs::read_to_string(memory.join("memory.limit_in_bytes"))
            .expect("read memory limit")
            .trim()
            .to_owned()
    };
    assert_eq!(limit(), (64 << 20).to_string());
    let out = b.stdout(&[
        "update",
        "--memory",
        "128m",
        "--pids-limit",
        "50",
        "--cpus",
        "1.5",
        "--restart",
        "on-failure:3",
        "svc",
    ]);
    assert_eq!(out, "svc\n");
    assert_eq!(limit(), (128 << 20).to_string());
    let pids = cgroup_dir("pids", id).expect("pids cgroup");
    assert_eq!(
        fs::read_to_string(pids.join("pids.max"))
            .expect("pids.max")
            .trim(),
        "50"
    );
    let cpu = cgroup_dir("cpu", id).expect("cpu cgroup");
    assert_eq!(
        fs::read_to_string(cpu.join("cpu.cfs_quota_us"))
            .expect("quota")
            .trim(),
        "150000"
    );
    assert_eq!(
        b.inspect(
            "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.NanoCpus}} {{.HostConfig.RestartPolicy.Name}}",
            "svc"
        ),
        "134217728 50 1500000000 on-failure"
    );
    // A limit the kernel cannot take leaves the old one in place.
    let out = b.cmd(&["update", "--memory", "1k", "svc"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    assert_eq!(limit(), (128 << 20).to_string());
    let out = b.cmd(&["update", "svc"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
}

#[test]
fn process_settings_reach_the_container() {
    let Some(b) = Berth::with_busybox("limits-process") else {
        return;
    };
    let env_file = b.scratch.join("env");
    fs::write(&env_file, "# comment\nFROM_FILE=1\n\nOVERRIDDEN=file\n").expect("write env");
    let label_file = b.scratch.join("labels");
    fs::write(&label_file, "team=infra\n").expect("write labels");
    let out = b.stdout(&[
        "run",
        "--name",
        "proc",
        "--env-file",
        &env_file.to_string_lossy(),
        "-e",
        "OVERRIDDEN=flag",
        "--label-file",
        &label_file.to_string_lossy(),
        "-l",
        "tier=web",
        "--ulimit",
        "nofile=512:1024",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--device",
        "/dev/null:/dev/mynull:rw",
        "--shm-size",
        "2m",
        "--stop-signal",
        "SIGQUIT",
        "--stop-timeout",
        "3",
        "bb",
        "sh",
        "-c",
        "echo $FROM_FILE $OVERRIDDEN; ulimit -n; ulimit -Hn; \
         cat /proc/sys/net/ipv4/ip_forward; echo x > /dev/mynull && echo written; \
         df -k /dev/shm | tail -n1",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..5],
        ["1 flag", "512", "1024", "1", "written"],
        "{out}"
    );
    assert!(lines[5].contains(" 2048 "), "/dev/shm is 2 MiB: {out}");
    assert_eq!(
        b.inspect(
            "{{.Config.Labels.team}} {{.Config.Labels.tier}} {{.Config.StopSignal}} {{.Config.StopTimeout}}",
            "proc"
        ),
        "infra web SIGQUIT 3"
    );
}

#[test]
fn bad_flags_are_one_line_errors_and_leave_nothing() {
    let Some(b) = Berth::with_busybox("limits-bad") else {
        return;
    };
    for (flags, expect) in [
        (&["--memory", "abc"][..], "invalid size: 'abc'"),
        (&["--memory", "1m"][..], "minimum memory limit"),
        (&["--cpus", "-1"][..], "range of CPUs"),
        (&["--cpus", "x"][..], "--cpus"),
        (&["--cap-add", "CAP_BOGUS"][..], "unknown capability"),
        (&["--ulimit", "nofile=999999999"][..], "current hard limit"),
        (&["--ulimit", "bogus=1"][..], "invalid ulimit type"),
        (
            &["--security-opt", "seccomp=/no/such/file"][..],
            "seccomp profile",
        ),
        (&["--security-opt", "bogus"][..], "security-opt"),
        (&["--sysctl", "vm.swappiness=1"][..], "sysctl"),
        (&["--device", "/no/such/device"][..], "device"),
        (&["--stop-signal", "SIGBOGUS"][..], "stop-signal"),
        (&["--cpuset-cpus", "4000-4001"][..], "not available"),
        (&["--pids-limit", "many"][..], "--pids-limit"),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["bb", "true"]);
        let out = b.cmd(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(125),
            "{flags:?}: {}",
            describe(&out)
        );
        assert_eq!(err.lines().count(), 1, "{flags:?}: one line: {err}");
        assert!(err.starts_with("berth: "), "{flags:?}: {err}");
        assert!(err.contains(expect), "{flags:?}: {err}");
        assert!(b.containers().is_empty(), "{flags:?}: a container was left");
    }
    assert!(b.mounts().is_empty(), "mounts left: {:?}", b.mounts());
}
