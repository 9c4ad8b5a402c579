//! dockerd (Debian's docker.io 20.10) as a peer: `--add-runtime berth=<runtime>` and
//! `docker run --runtime berth`, over a private containerd, in the sandbox netns, with no host
//! networking (no bridge, no iptables, no forwarding or masquerading).

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::dropin::containerd::ContainerdDaemon;
use crate::dropin::image;
use crate::dropin::process::{self, Daemon, Outcome};
use crate::dropin::runtime::TracedRuntime;
use crate::dropin::sandbox::Sandbox;
use crate::dropin::{CLI_TIMEOUT, Case, READY_TIMEOUT};

const IMAGE: &str = "berth-test/busybox:latest";
/// The name dockerd knows the runtime under test by.
const RUNTIME_NAME: &str = "berth";

/// A private dockerd + containerd pair and the docker CLI pointed at it.
pub(crate) struct Docker {
    // Fields drop in order: dockerd, then containerd, then the sandbox sweep.
    dockerd: Daemon,
    containerd: ContainerdDaemon,
    socket: PathBuf,
    cli_config: PathBuf,
    runtime: TracedRuntime,
    sandbox: Sandbox,
}

impl Docker {
    /// Starts containerd and dockerd, and imports the busybox rootfs.
    pub(crate) fn start() -> Self {
        let sandbox = Sandbox::new("docker");
        let runtime = TracedRuntime::install(&sandbox.subdir("runtime"));
        let rootfs = image::rootfs_tar(&sandbox.subdir("image"));
        let containerd = ContainerdDaemon::start(&sandbox);

        let dir = sandbox.subdir("docker");
        let socket = dir.join("docker.sock");
        // Our own config file, so that a host /etc/docker/daemon.json is never read; and its
        // trust key here, as 20.10 otherwise writes /etc/docker/key.json (no flag for it).
        let config = dir.join("daemon.json");
        let text = serde_json::json!({ "deprecated-key-path": dir.join("key.json") }).to_string();
        fs::write(&config, text).unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
        let mut cmd = sandbox.in_netns("dockerd");
        cmd.arg("--config-file")
            .arg(&config)
            .arg("--containerd")
            .arg(containerd.socket())
            .arg("--containerd-namespace")
            .arg(sandbox.name())
            .arg("--containerd-plugins-namespace")
            .arg(format!("{}-plugins", sandbox.name()))
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .args(["--bridge", "none", "--iptables=false", "--ip-forward=false"])
            .args(["--ip-masq=false", "--userland-proxy=false"])
            .args([
                "--exec-opt",
                "native.cgroupdriver=cgroupfs",
                "--cgroup-parent",
            ])
            .arg(sandbox.cgroup_parent("docker"))
            .arg("--add-runtime")
            .arg(format!("{RUNTIME_NAME}={}", runtime.path().display()));
        let mut dockerd = Daemon::spawn("dockerd", &mut cmd, dir.join("dockerd.log"));
        dockerd.wait_ready(READY_TIMEOUT, || ping(&socket));

        let docker = Self {
            dockerd,
            containerd,
            socket,
            cli_config: sandbox.subdir("docker-cli"),
            runtime,
            sandbox,
        };
        let mut import = docker.cli();
        import.arg("import").arg(&rootfs).arg(IMAGE);
        process::run(&mut import, &docker.sandbox.subdir("logs"), CLI_TIMEOUT).ok();
        docker
    }

    /// The docker CLI aimed at this dockerd, with its own config dir.
    fn cli(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_CONFIG", &self.cli_config)
            .arg("--host")
            .arg(format!("unix://{}", self.socket.display()));
        cmd
    }

    /// `docker run --rm --network none --runtime berth [--user U] IMAGE CMD...`.
    pub(crate) fn run(&self, case: &Case) -> Outcome {
        let argv: Vec<&str> = case.argv.iter().map(String::as_str).collect();
        let outcome = self.docker_run(case.user.as_deref(), IMAGE, &argv);
        if !outcome.status.success() && outcome.status.code() != Some(case.exit_code) {
            eprintln!("dockerd log:\n{}", self.dockerd.log_tail());
            eprintln!("containerd log:\n{}", self.containerd.log_tail());
        }
        outcome
    }

    fn docker_run(&self, user: Option<&str>, image: &str, argv: &[&str]) -> Outcome {
        let mut cmd = self.cli();
        cmd.args([
            "run",
            "--rm",
            "--network",
            "none",
            "--runtime",
            RUNTIME_NAME,
        ]);
        if let Some(user) = user {
            cmd.args(["--user", user]);
        }
        cmd.arg(image).args(argv);
        process::run(&mut cmd, &self.sandbox.subdir("logs"), CLI_TIMEOUT)
    }

    /// `docker ARGS...` against this dockerd (image verbs: `load`, `save`, `image inspect`).
    pub(crate) fn cli_call(&self, args: &[&str]) -> Outcome {
        let mut cmd = self.cli();
        cmd.args(args);
        process::run(&mut cmd, &self.sandbox.subdir("logs"), CLI_TIMEOUT)
    }

    /// `docker run --rm --network none --runtime berth IMAGE ARGV...`.
    pub(crate) fn run_image(&self, image: &str, argv: &[&str]) -> Outcome {
        self.docker_run(None, image, argv)
    }

    /// A directory of this peer's sandbox (removed with it).
    pub(crate) fn scratch(&self, rel: &str) -> PathBuf {
        self.sandbox.subdir(rel)
    }

    /// The busybox image dockerd imported at start.
    pub(crate) const IMAGE: &'static str = IMAGE;

    /// The tracing wrapper's view of the runtime calls.
    pub(crate) fn runtime(&self) -> &TracedRuntime {
        &self.runtime
    }

    /// Stops dockerd and containerd and sweeps the sandbox; returns what could not be removed.
    pub(crate) fn close(mut self) -> Vec<String> {
        self.dockerd.stop(Duration::from_secs(15));
        self.containerd.stop();
        let Self { sandbox, .. } = self;
        sandbox.close()
    }
}

/// `GET /_ping` over the socket answers `200 OK` once dockerd serves the API.
fn ping(socket: &std::path::Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200")
}
