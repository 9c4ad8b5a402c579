//! podman as a peer: `podman --runtime <runtime> run`, rootful, isolated from the host's podman
//! state by its own containers.conf, storage.conf and registries.conf, run inside the sandbox netns.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::dropin::image;
use crate::dropin::process::{self, Outcome};
use crate::dropin::runtime::TracedRuntime;
use crate::dropin::sandbox::Sandbox;
use crate::dropin::{CLI_TIMEOUT, Case};

const IMAGE: &str = "localhost/berth-test/busybox:latest";

/// podman with every path of its own below the sandbox.
pub(crate) struct Podman {
    graphroot: PathBuf,
    runroot: PathBuf,
    tmpdir: PathBuf,
    conf: PathBuf,
    runtime: TracedRuntime,
    // Last: dropped (swept) after everything else.
    sandbox: Sandbox,
}

impl Podman {
    /// Writes podman's config files and imports the busybox rootfs.
    pub(crate) fn start() -> Self {
        let sandbox = Sandbox::new("podman");
        let runtime = TracedRuntime::install(&sandbox.subdir("runtime"));
        let rootfs = image::rootfs_tar(&sandbox.subdir("image"));
        let conf = sandbox.subdir("podman/conf");
        let podman = Self {
            graphroot: sandbox.subdir("graph"),
            runroot: sandbox.subdir("run"),
            tmpdir: sandbox.subdir("podman/tmp"),
            conf,
            runtime,
            sandbox,
        };
        podman.write_config();
        let mut import = podman.cli();
        import.arg("import").arg(&rootfs).arg(IMAGE);
        process::run(&mut import, &podman.sandbox.subdir("logs"), CLI_TIMEOUT).ok();
        podman
    }

    fn write_config(&self) {
        let q = |p: &Path| format!("{:?}", p.display().to_string());
        let (nofile, nproc) = hard_limits();
        // rootful podman defaults nofile and nproc to 1048576; without CAP_SYS_RESOURCE the
        // runtime's setrlimit above the hard limit fails, so ask for the current hard limits.
        // podman also lowers its own (so conmon's and the runtime's) RLIMIT_NPROC to
        // kernel.pid_max, so nproc may be no higher than that either.
        let mut ulimits = Vec::new();
        if let Some(n) = nofile {
            ulimits.push(format!("\"nofile={n}:{n}\""));
        }
        if let Some(n) = nproc {
            ulimits.push(format!("\"nproc={n}:{n}\""));
        }
        let containers = format!(
            "[containers]\n\
             default_ulimits = [{ulimits}]\n\
             log_driver = \"k8s-file\"\n\
             [engine]\n\
             cgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\n\
             events_logfile_path = {events}\n\
             tmp_dir = {tmp}\n\
             static_dir = {static_dir}\n\
             volume_path = {volumes}\n\
             image_copy_tmp_dir = {copy}\n\
             lock_type = \"file\"\n\
             [network]\n\
             network_config_dir = {net}\n",
            ulimits = ulimits.join(", "),
            events = q(&self.tmpdir.join("events.log")),
            tmp = q(&self.tmpdir),
            static_dir = q(&self.graphroot.join("libpod")),
            volumes = q(&self.graphroot.join("volumes")),
            copy = q(&self.tmpdir),
            net = q(&self.sandbox.subdir("podman/net")),
        );
        let storage = format!(
            "[storage]\ndriver = \"overlay\"\ngraphroot = {}\nrunroot = {}\n",
            q(&self.graphroot),
            q(&self.runroot)
        );
        let registries = "unqualified-search-registries = []\n";
        for (name, text) in [
            ("containers.conf", containers.as_str()),
            ("storage.conf", storage.as_str()),
            ("registries.conf", registries),
        ] {
            let path = self.conf.join(name);
            fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        }
    }

    /// podman in the sandbox netns with all of its state and config below the sandbox.
    fn cli(&self) -> Command {
        let mut cmd = self.sandbox.in_netns("podman");
        cmd.env("CONTAINERS_CONF", self.conf.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.conf.join("storage.conf"))
            .env(
                "CONTAINERS_REGISTRIES_CONF",
                self.conf.join("registries.conf"),
            )
            .env("TMPDIR", &self.tmpdir)
            .arg("--runtime")
            .arg(self.runtime.path())
            .arg("--root")
            .arg(&self.graphroot)
            .arg("--runroot")
            .arg(&self.runroot)
            .args(["--storage-driver", "overlay"])
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .arg("--tmpdir")
            .arg(&self.tmpdir);
        cmd
    }

    /// `podman run --rm --network none --cgroup-parent P [--user U] IMAGE CMD...`.
    pub(crate) fn run(&self, case: &Case) -> Outcome {
        let mut cmd = self.cli();
        cmd.args([
            "run",
            "--rm",
            "--pull",
            "never",
            "--network",
            "none",
            "--cgroup-parent",
        ])
        .arg(self.sandbox.cgroup_parent("podman"));
        if let Some(user) = &case.user {
            cmd.args(["--user", user]);
        }
        cmd.arg(IMAGE).args(&case.argv);
        process::run(&mut cmd, &self.sandbox.subdir("logs"), CLI_TIMEOUT)
    }

    /// The tracing wrapper's view of the runtime calls.
    pub(crate) fn runtime(&self) -> &TracedRuntime {
        &self.runtime
    }

    /// Sweeps the sandbox (podman has no daemon); returns what could not be removed.
    pub(crate) fn close(self) -> Vec<String> {
        self.sandbox.close()
    }
}

/// The hard RLIMIT_NOFILE of this process and its hard RLIMIT_NPROC capped at kernel.pid_max
/// (None when unlimited), from /proc/self/limits: "Max open files   <soft>   <hard>   files".
fn hard_limits() -> (Option<u64>, Option<u64>) {
    let limits = fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let hard = |prefix: &str| {
        limits
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|h| h.parse::<u64>().ok())
    };
    let pid_max = fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let nproc = match (hard("Max processes"), pid_max) {
        (Some(h), Some(p)) => Some(h.min(p)),
        (h, p) => h.or(p),
    };
    (hard("Max open files"), nproc)
}
