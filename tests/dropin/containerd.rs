//! containerd as a peer: a private containerd in the sandbox netns, and `ctr run
//! --runc-binary <runtime>` through the `io.containerd.runc.v2` shim.

use std::fs;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::dropin::image::{self, OciImage};
use crate::dropin::process::{self, Daemon, Outcome};
use crate::dropin::runtime::TracedRuntime;
use crate::dropin::sandbox::Sandbox;
use crate::dropin::{CLI_TIMEOUT, Case, READY_TIMEOUT};

/// Image reference for cases that run as root.
const IMAGE: &str = "docker.io/berth-test/busybox:latest";
/// Same layer, but the image config says `User: 1000`: `ctr run` (1.6) has no `--user`, it takes
/// the user from the image config.
const IMAGE_USER: &str = "docker.io/berth-test/busybox:user1000";

/// A containerd daemon with its own root, state, sockets and plugin dirs, CRI disabled.
pub(crate) struct ContainerdDaemon {
    daemon: Daemon,
    socket: PathBuf,
}

impl ContainerdDaemon {
    /// Starts containerd in `sandbox`'s netns and waits until its socket answers.
    pub(crate) fn start(sandbox: &Sandbox) -> Self {
        let dir = sandbox.subdir("containerd");
        let socket = dir.join("containerd.sock");
        let config = dir.join("config.toml");
        let q = |p: PathBuf| format!("{:?}", p.display().to_string());
        let text = format!(
            "version = 2\n\
             root = {root}\n\
             state = {state}\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\", \
             \"io.containerd.snapshotter.v1.btrfs\", \"io.containerd.snapshotter.v1.zfs\", \
             \"io.containerd.snapshotter.v1.devmapper\", \"io.containerd.snapshotter.v1.aufs\"]\n\
             [grpc]\n  address = {sock}\n\
             [ttrpc]\n  address = {ttrpc}\n\
             [debug]\n  address = \"\"\n  level = \"info\"\n\
             [metrics]\n  address = \"\"\n\
             [plugins]\n  [plugins.\"io.containerd.internal.v1.opt\"]\n    path = {opt}\n",
            root = q(dir.join("root")),
            state = q(dir.join("state")),
            sock = q(socket.clone()),
            ttrpc = q(dir.join("containerd.sock.ttrpc")),
            opt = q(dir.join("opt")),
        );
        fs::write(&config, text).unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
        let mut cmd = sandbox.in_netns("containerd");
        cmd.arg("--config").arg(&config);
        let mut daemon = Daemon::spawn("containerd", &mut cmd, dir.join("containerd.log"));
        daemon.wait_ready(READY_TIMEOUT, || UnixStream::connect(&socket).is_ok());
        Self { daemon, socket }
    }

    /// The gRPC socket.
    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    /// `ctr -a SOCKET -n NAMESPACE`.
    pub(crate) fn ctr(&self, namespace: &str) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("-a").arg(&self.socket).args(["-n", namespace]);
        cmd
    }

    /// The daemon's last log lines.
    pub(crate) fn log_tail(&self) -> String {
        self.daemon.log_tail()
    }

    /// Stops the daemon (SIGTERM, then SIGKILL). Its shims outlive it; the sandbox sweep ends
    /// them and removes their sockets.
    pub(crate) fn stop(&mut self) {
        self.daemon.stop(Duration::from_secs(10));
    }
}

/// `ctr run` against a private containerd with the runtime under test as the shim's runc.
pub(crate) struct Ctr {
    // Fields drop in order: the daemon before the sandbox sweep.
    containerd: ContainerdDaemon,
    runtime: TracedRuntime,
    sandbox: Sandbox,
}

impl Ctr {
    /// Starts containerd and imports the busybox images.
    pub(crate) fn start() -> Self {
        let sandbox = Sandbox::new("ctr");
        let runtime = TracedRuntime::install(&sandbox.subdir("runtime"));
        let work = sandbox.subdir("image");
        let rootfs = image::rootfs_tar(&work);
        let archive = image::oci_archive(
            &work,
            &rootfs,
            &[
                OciImage {
                    reference: IMAGE,
                    user: None,
                },
                OciImage {
                    reference: IMAGE_USER,
                    user: Some("1000"),
                },
            ],
        );
        let containerd = ContainerdDaemon::start(&sandbox);
        let ctr = Self {
            containerd,
            runtime,
            sandbox,
        };
        let logs = ctr.sandbox.subdir("logs");
        let mut import = ctr.containerd.ctr(ctr.sandbox.name());
        import.args(["images", "import"]).arg(&archive);
        process::run(&mut import, &logs, CLI_TIMEOUT).ok();
        ctr
    }

    /// `ctr run --rm --runc-binary RUNTIME ... IMAGE ID CMD...`.
    pub(crate) fn run(&self, case: &Case) -> Outcome {
        let image = if case.user.is_some() {
            IMAGE_USER
        } else {
            IMAGE
        };
        let id = format!("berth-{}", case.tag);
        let mut cmd = self.containerd.ctr(self.sandbox.name());
        cmd.args([
            "run",
            "--rm",
            "--runtime",
            "io.containerd.runc.v2",
            "--runc-binary",
        ])
        .arg(self.runtime.path())
        .arg("--runc-root")
        .arg(self.sandbox.subdir("runc-root"))
        // ctr's stdio fifos, else in /run/containerd/fifo (and left there if ctr is killed).
        .arg("--fifo-dir")
        .arg(self.sandbox.subdir("fifo"))
        .arg("--cgroup")
        .arg(format!("{}/{id}", self.sandbox.cgroup_parent("ctr")))
        .args([image, &id])
        .args(&case.argv);
        let outcome = process::run(&mut cmd, &self.sandbox.subdir("logs"), CLI_TIMEOUT);
        if !outcome.status.success() && outcome.status.code() != Some(case.exit_code) {
            eprintln!("containerd log:\n{}", self.containerd.log_tail());
        }
        outcome
    }

    /// The tracing wrapper's view of the runtime calls.
    pub(crate) fn runtime(&self) -> &TracedRuntime {
        &self.runtime
    }

    /// Stops containerd and sweeps the sandbox; returns what could not be removed.
    pub(crate) fn close(mut self) -> Vec<String> {
        self.containerd.stop();
        let Self {
            containerd,
            runtime: _,
            sandbox,
        } = self;
        drop(containerd);
        sandbox.close()
    }
}
