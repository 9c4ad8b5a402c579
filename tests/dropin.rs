//! Drop-in proof: real peers drive the OCI runtime under test exactly as they drive runc.
//!
//! - podman: `podman --runtime <runtime> run ...`
//! - dockerd (Debian's docker.io): `--add-runtime berth=<runtime>`, `docker run --runtime berth`
//! - containerd: `ctr run --runc-binary <runtime>` through the `io.containerd.runc.v2` shim
//!
//! Each peer runs a busybox image (built here from `busybox-static`) twice: a shell that prints
//! `hello-from-<peer>` and exits 7 (the peer's CLI must print it and exit 7), and a shell run as
//! uid 1000 that reads a file of the image only uid 1000 may read.
//!
//! The runtime is `$BERTH_DROPIN_RUNTIME` (e.g. `/usr/sbin/runc` to prove the tests themselves),
//! by default `berth-runtime` next to this test binary in the target dir. Peers are given a
//! tracing wrapper around it; every test prints the runtime calls the peer made.
//!
//! Needs root and the Debian packages `podman docker.io containerd busybox-static iproute2`.
//! Every daemon runs in a network namespace this test created, with its own sockets, state and
//! data below a `berth-test-` temp dir, and containers run with no network. See
//! `dropin/sandbox.rs` for the teardown.

mod dropin {
    pub(crate) mod containerd;
    pub(crate) mod docker;
    pub(crate) mod image;
    pub(crate) mod podman;
    pub(crate) mod process;
    pub(crate) mod runtime;
    pub(crate) mod sandbox;

    use std::time::Duration;

    /// Longest a single peer CLI call may take.
    pub(crate) const CLI_TIMEOUT: Duration = Duration::from_secs(30);
    /// Longest a daemon may take to answer on its socket.
    pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(20);

    /// One container run and what the peer's CLI must report for it.
    pub(crate) struct Case {
        /// Short name, used in container ids.
        pub(crate) tag: &'static str,
        /// The container's command.
        pub(crate) argv: Vec<String>,
        /// `--user` (ctr: an image whose config names this user).
        pub(crate) user: Option<String>,
        /// Exit code the peer's CLI must exit with.
        pub(crate) exit_code: i32,
        /// Exact stdout the peer's CLI must print.
        pub(crate) stdout: String,
    }
}

use std::sync::Mutex;
use std::time::Instant;

use dropin::Case;
use dropin::containerd::Ctr;
use dropin::docker::Docker;
use dropin::image::{GREETING, GREETING_PATH, USER_ID};
use dropin::podman::Podman;
use dropin::process::Outcome;
use dropin::runtime::{self, TracedRuntime};

/// A peer set up in its sandbox, ready to run containers.
trait Peer: Sized {
    const NAME: &'static str;
    /// Programs the peer needs, with the Debian package that ships each.
    const PROGRAMS: &'static [(&'static str, &'static str)];
    fn start() -> Self;
    fn run(&self, case: &Case) -> Outcome;
    fn runtime(&self) -> &TracedRuntime;
    /// Stops the daemons and sweeps the sandbox; returns what could not be removed.
    fn close(self) -> Vec<String>;
}

impl Peer for Podman {
    const NAME: &'static str = "podman";
    const PROGRAMS: &'static [(&'static str, &'static str)] = &[("podman", "podman")];
    fn start() -> Self {
        Podman::start()
    }
    fn run(&self, case: &Case) -> Outcome {
        Podman::run(self, case)
    }
    fn runtime(&self) -> &TracedRuntime {
        Podman::runtime(self)
    }
    fn close(self) -> Vec<String> {
        Podman::close(self)
    }
}

impl Peer for Docker {
    const NAME: &'static str = "docker";
    const PROGRAMS: &'static [(&'static str, &'static str)] = &[
        ("dockerd", "docker.io"),
        ("docker", "docker.io"),
        ("containerd", "containerd"),
    ];
    fn start() -> Self {
        Docker::start()
    }
    fn run(&self, case: &Case) -> Outcome {
        Docker::run(self, case)
    }
    fn runtime(&self) -> &TracedRuntime {
        Docker::runtime(self)
    }
    fn close(self) -> Vec<String> {
        Docker::close(self)
    }
}

impl Peer for Ctr {
    const NAME: &'static str = "containerd";
    const PROGRAMS: &'static [(&'static str, &'static str)] =
        &[("containerd", "containerd"), ("ctr", "containerd")];
    fn start() -> Self {
        Ctr::start()
    }
    fn run(&self, case: &Case) -> Outcome {
        Ctr::run(self, case)
    }
    fn runtime(&self) -> &TracedRuntime {
        Ctr::runtime(self)
    }
    fn close(self) -> Vec<String> {
        Ctr::close(self)
    }
}

/// `sh -c 'echo hello-from-<peer>; exit 7'`: output and exit code reach the peer's CLI.
fn exit_code_case(peer: &str) -> Case {
    Case {
        tag: "exit",
        argv: vec![
            "sh".into(),
            "-c".into(),
            format!("echo hello-from-{peer}; exit 7"),
        ],
        user: None,
        exit_code: 7,
        stdout: format!("hello-from-{peer}\n"),
    }
}

/// As uid 1000: print uid and gid, and read a file of the image that only uid 1000 may read.
fn user_case() -> Case {
    Case {
        tag: "user",
        argv: vec![
            "sh".into(),
            "-c".into(),
            format!("id -u; id -g; cat {GREETING_PATH}"),
        ],
        user: Some(USER_ID.to_string()),
        exit_code: 0,
        stdout: format!("{USER_ID}\n{USER_ID}\n{GREETING}\n"),
    }
}

/// The peers start daemons and measure themselves; on two cores, one at a time.
pub(crate) static SERIAL: Mutex<()> = Mutex::new(());

fn check<P: Peer>(case: Case) {
    if !testutil::require_root() {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // Fail before creating anything when there is no runtime to test or a peer is missing.
    let binary = runtime::binary();
    let common = [
        ("nsenter", "util-linux"),
        ("ip", "iproute2"),
        ("tar", "tar"),
    ];
    for (program, package) in common.iter().chain(P::PROGRAMS) {
        assert!(
            runtime::search_path(program.as_ref()).is_some(),
            "{program} not found in PATH: install the Debian package {package}"
        );
    }
    let t0 = Instant::now();
    let peer = P::start();
    let started = t0.elapsed();
    let outcome = peer.run(&case);
    let ran = t0.elapsed() - started;
    peer.runtime().print_calls(P::NAME);
    let used = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        peer.runtime().assert_used(P::NAME);
    }));
    let leftovers = peer.close();
    eprintln!(
        "{} {} with {}: setup {started:?}, run {ran:?}, total {:?}",
        P::NAME,
        case.tag,
        binary.display(),
        t0.elapsed()
    );
    assert_eq!(
        outcome.status.code(),
        Some(case.exit_code),
        "{}: wrong exit code:\n{outcome}",
        P::NAME
    );
    assert_eq!(
        outcome.stdout,
        case.stdout,
        "{}: wrong output:\n{outcome}",
        P::NAME
    );
    if let Err(panic) = used {
        std::panic::resume_unwind(panic);
    }
    assert!(
        leftovers.is_empty(),
        "{}: teardown left {leftovers:#?}",
        P::NAME
    );
}

#[test]
fn podman_reports_output_and_exit_code() {
    check::<Podman>(exit_code_case("podman"));
}

#[test]
fn podman_runs_as_user_reading_image_file() {
    check::<Podman>(user_case());
}

#[test]
fn docker_reports_output_and_exit_code() {
    check::<Docker>(exit_code_case("docker"));
}

#[test]
fn docker_runs_as_user_reading_image_file() {
    check::<Docker>(user_case());
}

#[test]
fn containerd_reports_output_and_exit_code() {
    check::<Ctr>(exit_code_case("containerd"));
}

#[test]
fn containerd_runs_as_user_reading_image_file() {
    check::<Ctr>(user_case());
}

/// Image archives both ways with a real Docker (20.10): `docker load` reads what `berth save`
/// wrote (a committed image whose top layer deletes a file) and runs it; `berth load` reads
/// what `docker save` wrote (the legacy docker-archive layout) and berth runs it.
#[test]
fn docker_and_berth_load_each_others_saved_images() {
    if !testutil::require_root() {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let docker = Docker::start();
    let berth = testutil::Berth::new("dropin-save");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let rootfs = dropin::image::rootfs_tar(&berth.scratch.join("image"));
        let rootfs = rootfs.to_string_lossy();
        let rootfs = &*rootfs;
        berth.ok(&[
            "import",
            "-c",
            "LABEL made-by=berth",
            rootfs,
            "berth-made:1",
        ]);
        let script = format!("echo committed > /committed; rm {GREETING_PATH}");
        berth.ok(&[
            "run",
            "--name",
            "cm",
            "berth-made:1",
            "/bin/sh",
            "-c",
            &script,
        ]);
        berth.ok(&[
            "commit",
            "-c",
            "CMD [\"cat\", \"/committed\"]",
            "cm",
            "berth-made:2",
        ]);
        let archive = docker.scratch("archives").join("from-berth.tar");
        let archive_s = archive.to_string_lossy();
        let archive_s = &*archive_s;
        berth.ok(&["save", "-o", archive_s, "berth-made:2"]);

        let loaded = docker.cli_call(&["load", "-i", archive_s]).ok();
        assert!(loaded.stdout.contains("berth-made:2"), "{loaded}");
        let ran = docker.run_image("berth-made:2", &[]).ok();
        assert_eq!(ran.stdout, "committed\n", "{ran}");
        let probe = format!("test -e {GREETING_PATH} && echo present || echo deleted");
        let ran = docker
            .run_image("berth-made:2", &["/bin/sh", "-c", &probe])
            .ok();
        assert_eq!(
            ran.stdout, "deleted\n",
            "docker applied the whiteout: {ran}"
        );

        let from_docker = docker.scratch("archives").join("from-docker.tar");
        let from_docker_s = from_docker.to_string_lossy();
        let from_docker_s = &*from_docker_s;
        docker
            .cli_call(&["save", "-o", from_docker_s, Docker::IMAGE])
            .ok();
        let out = berth.ok(&["load", "-i", from_docker_s]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("Loaded image: {}\n", Docker::IMAGE)
        );
        let out = berth.ok(&["run", "--rm", Docker::IMAGE, "cat", GREETING_PATH]);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), GREETING);
    }));
    drop(berth);
    let leftovers = docker.close();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert!(leftovers.is_empty(), "docker teardown left {leftovers:#?}");
}
