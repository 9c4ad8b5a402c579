//! Behaviour on the real kernel: a forked child installs a compiled program and the parent checks
//! what the filter did. Children only make raw syscalls between fork and exit (the harness is
//! multi-threaded), report failures as exit codes, and are always reaped (a guard kills and reaps
//! a child the test did not wait for).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags, ScmpSyscall};
use rustix::io::Errno;
use rustix::process::{Pid, Signal, WaitOptions, WaitStatus};

use super::docker_profile::docker_default;
use super::sys::testing::{exec, fork, getcwd, personality};
use super::{Program, compile, container_process_state, parse, send_to_listener};

/// A forked child that is killed and reaped on drop unless the test waited for it.
struct Child {
    pid: Option<Pid>,
}

impl Child {
    /// Forks a child running `body`; its return value becomes the exit code.
    fn spawn(body: impl FnOnce() -> i32) -> Self {
        let pid = fork(body).unwrap();
        Self {
            pid: Pid::from_raw(pid),
        }
    }

    fn pid(&self) -> Pid {
        self.pid.unwrap()
    }

    /// Waits for the child to end.
    fn wait(mut self) -> WaitStatus {
        let pid = self.pid.take().unwrap();
        let (_, status) = rustix::process::waitpid(Some(pid), WaitOptions::empty())
            .unwrap()
            .unwrap();
        status
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = rustix::process::kill_process(pid, Signal::KILL);
            let _ = rustix::process::waitpid(Some(pid), WaitOptions::empty());
        }
    }
}

/// Asserts the child exited with 0; other codes name the check that failed in the child.
fn assert_exit_ok(status: WaitStatus, what: &str) {
    assert_eq!(
        (status.exit_status(), status.terminating_signal()),
        (Some(0), None),
        "{what}: child failed (exit code names the failed check)"
    );
}

/// Installs `program` in the current (child) process; exit code 2 if that fails.
fn install_or(program: &Program, code: i32) -> Result<Option<OwnedFd>, i32> {
    program.install().map_err(|_| code)
}

#[test]
fn errno_action_returns_default_and_custom_errno() {
    if !testutil::require_root() {
        return;
    }
    let program = compile(
        &parse(
            r#"{"defaultAction":"SCMP_ACT_ALLOW",
                "flags":["SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_TSYNC","SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
                "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"},
                            {"names":["getcwd"],"action":"SCMP_ACT_ERRNO","errnoRet":77}]}"#,
        )
        .unwrap(),
    )
    .unwrap();
    let child = Child::spawn(|| {
        let run = || -> Result<(), i32> {
            if install_or(&program, 10)?.is_some() {
                return Err(11);
            }
            match rustix::fs::mkdir(c"/berth-test-seccomp-never", rustix::fs::Mode::RWXU) {
                Err(Errno::PERM) => {}
                _ => return Err(12),
            }
            let mut buf = [0_u8; 256];
            match getcwd(&mut buf) {
                Err(e) if e.raw_os_error() == Some(77) => {}
                _ => return Err(13),
            }
            // Everything else still works.
            if rustix::process::getppid().is_none() {
                return Err(14);
            }
            Ok(())
        };
        run().err().unwrap_or(0)
    });
    assert_exit_ok(child.wait(), "errno");
}

#[test]
fn argument_conditions_select_calls() {
    if !testutil::require_root() {
        return;
    }
    // Two conditions on argument 0: runc makes them separate rules, so either value is denied.
    let program = compile(
        &parse(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["personality"],
                "action":"SCMP_ACT_ERRNO","errnoRet":13,
                "args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"},
                        {"index":0,"value":131072,"op":"SCMP_CMP_EQ"}]}]}"#,
        )
        .unwrap(),
    )
    .unwrap();
    let child = Child::spawn(|| {
        let run = || -> Result<(), i32> {
            install_or(&program, 20)?;
            // 0xffffffff only queries the persona.
            personality(0xffff_ffff).map_err(|_| 21)?;
            for (persona, code) in [(8, 22), (131_072, 23)] {
                match personality(persona) {
                    Err(e) if e.raw_os_error() == Some(13) => {}
                    _ => return Err(code),
                }
            }
            personality(0).map_err(|_| 24)?;
            Ok(())
        };
        run().err().unwrap_or(0)
    });
    assert_exit_ok(child.wait(), "argument conditions");
}

#[test]
fn kill_process_kills_with_sigsys() {
    if !testutil::require_root() {
        return;
    }
    let program = compile(
        &parse(
            r#"{"defaultAction":"SCMP_ACT_ALLOW",
                "syscalls":[{"names":["getppid"],"action":"SCMP_ACT_KILL_PROCESS"}]}"#,
        )
        .unwrap(),
    )
    .unwrap();
    let child = Child::spawn(|| {
        // SIGSYS dumps core by default; keep the test from leaving core files behind.
        if rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
            .is_err()
        {
            return 30;
        }
        if program.install().is_err() {
            return 31;
        }
        let _ = rustix::process::getppid();
        32
    });
    let status = child.wait();
    assert_eq!(
        status.terminating_signal(),
        Some(libc::SIGSYS),
        "status {status:?}"
    );
}

#[test]
fn notify_hands_out_a_listener_that_sees_the_call() {
    if !testutil::require_root() {
        return;
    }
    let program = compile(
        &parse(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/berth-test-unused.sock",
                "syscalls":[{"names":["getppid"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        )
        .unwrap(),
    )
    .unwrap();
    assert!(program.needs_listener());
    let (fd_reader, fd_writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let child = Child::spawn(|| {
        let run = || -> Result<(), i32> {
            let listener = install_or(&program, 40)?.ok_or(41)?;
            // `write` is never notified (compile refuses that), so this cannot block.
            let raw = listener.as_raw_fd().to_ne_bytes();
            if rustix::io::write(&fd_writer, &raw) != Ok(raw.len()) {
                return Err(42);
            }
            // Blocks until the agent (the test) answers.
            match rustix::process::getppid() {
                Some(pid) if pid.as_raw_nonzero().get() == 4242 => Ok(()),
                _ => Err(43),
            }
        };
        run().err().unwrap_or(0)
    });
    drop(fd_writer);

    // Take the listener out of the child the way a debugger would, then act as the agent.
    let mut raw = [0_u8; 4];
    std::fs::File::from(fd_reader).read_exact(&mut raw).unwrap();
    let pidfd =
        rustix::process::pidfd_open(child.pid(), rustix::process::PidfdFlags::empty()).unwrap();
    let listener = rustix::process::pidfd_getfd(
        &pidfd,
        i32::from_ne_bytes(raw),
        rustix::process::PidfdGetfdFlags::empty(),
    )
    .unwrap();
    let request = ScmpNotifReq::receive(listener.as_raw_fd()).unwrap();
    assert_eq!(
        request.data.syscall,
        ScmpSyscall::from_name("getppid").unwrap()
    );
    assert_eq!(
        i32::try_from(request.pid).unwrap(),
        child.pid().as_raw_nonzero().get()
    );
    ScmpNotifResp::new_val(request.id, 4242, ScmpNotifRespFlags::empty())
        .respond(listener.as_raw_fd())
        .unwrap();
    assert_exit_ok(child.wait(), "notify");
}

#[test]
fn send_to_listener_delivers_fd_and_state() {
    // Needs no privilege: a UNIX socket in a temp dir.
    let dir = tempfile::Builder::new()
        .prefix(testutil::PREFIX)
        .tempdir()
        .unwrap();
    let path = dir.path().join("agent.sock");
    let agent = UnixListener::bind(&path).unwrap();

    let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let state: oci_spec::runtime::State = serde_json::from_value(serde_json::json!({
        "ociVersion": "1.2.0", "id": "berth-test-notify", "status": "creating",
        "pid": 4321, "bundle": "/bundle", "annotations": {"a": "b"}
    }))
    .unwrap();
    let process_state = container_process_state(&state, 4321, Some("agent metadata"));
    // The connection waits in the agent's backlog, so sending completes before accept.
    send_to_listener(&path, reader.as_fd(), &process_state).unwrap();

    let (connection, _) = agent.accept().unwrap();
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
    let mut buf = vec![0_u8; 64 * 1024];
    let received = rustix::net::recvmsg(
        &connection,
        &mut [std::io::IoSliceMut::new(&mut buf)],
        &mut control,
        rustix::net::RecvFlags::CMSG_CLOEXEC,
    )
    .unwrap();
    let mut message = buf[..received.bytes].to_vec();
    let mut fds = Vec::new();
    for m in control.drain() {
        if let rustix::net::RecvAncillaryMessage::ScmRights(rights) = m {
            fds.extend(rights);
        }
    }
    (&connection).read_to_end(&mut message).unwrap();

    let json: serde_json::Value = serde_json::from_slice(&message).unwrap();
    assert_eq!(json["ociVersion"], "1.2.0");
    assert_eq!(json["fds"], serde_json::json!(["seccompFd"]));
    assert_eq!(json["pid"], 4321);
    assert_eq!(json["metadata"], "agent metadata");
    assert_eq!(json["state"]["id"], "berth-test-notify");
    assert_eq!(json["state"]["status"], "creating");
    assert_eq!(json["state"]["annotations"]["a"], "b");

    // The fd that arrived is the pipe's read end.
    assert_eq!(fds.len(), 1);
    rustix::io::write(&writer, b"x").unwrap();
    let mut got = [0_u8; 1];
    std::fs::File::from(fds.remove(0))
        .read_exact(&mut got)
        .unwrap();
    assert_eq!(&got, b"x");
}

#[test]
fn send_to_listener_checks_fd_names() {
    let (reader, _writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let mut process_state = container_process_state(&oci_spec::runtime::State::default(), 1, None);
    process_state.set_fds(vec!["seccompFd".into(), "other".into()]);
    let error = send_to_listener(
        std::path::Path::new("/nonexistent/berth-test.sock"),
        reader.as_fd(),
        &process_state,
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"container process state must list exactly one fd named "seccompFd""#
    );
    let process_state = container_process_state(&oci_spec::runtime::State::default(), 1, None);
    let error = send_to_listener(
        std::path::Path::new("/nonexistent/berth-test.sock"),
        reader.as_fd(),
        &process_state,
    )
    .unwrap_err();
    assert!(matches!(error, super::SeccompError::Connect { .. }));
}

#[test]
fn docker_like_default_profile_compiles_fast_and_runs_true() {
    let (profile, skipped) = docker_default();
    let names: usize = profile
        .syscalls()
        .iter()
        .flatten()
        .map(|s| s.names().len())
        .sum();
    let first = Instant::now();
    let program = compile(&profile).unwrap();
    let first = first.elapsed();
    let mut runs: Vec<Duration> = (0..20)
        .map(|_| {
            let start = Instant::now();
            compile(&profile).unwrap();
            start.elapsed()
        })
        .collect();
    runs.sort();
    eprintln!(
        "docker-like profile: {names} syscall names ({} unknown to this libseccomp left out: {skipped:?}), \
         {} BPF instructions; compile: first {first:?}, median {:?}, min {:?}",
        skipped.len(),
        program.instructions().len(),
        runs[runs.len() / 2],
        runs[0],
    );
    assert!(names > 300);

    if !testutil::require_root() {
        return;
    }
    let child = Child::spawn(|| {
        if program.install().is_err() {
            return 50;
        }
        // Not on the allow list (PER_SVR4): refused with EPERM.
        match personality(0x0001) {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
            _ => return 51,
        }
        let _ = exec(c"/bin/true");
        52
    });
    assert_exit_ok(child.wait(), "docker profile exec /bin/true");
}
