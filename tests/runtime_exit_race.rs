//! Containers that exit at once must never hang the runtime (youki 0.7.0 hangs in 3-10% of such
//! runs because it starts waiting for the exit too late). `run` is the parent of the container's
//! init, so it reaps it whenever it exits; `start` pins init with a pidfd before releasing it.

use std::time::{Duration, Instant};

use testutil::{Bundle, Runtime, require_root, unique_name, wait_timeout};

#[test]
fn run_of_instantly_exiting_containers_never_hangs() {
    if !require_root() {
        return;
    }
    let runtime = Runtime::berth();
    let bundle = Bundle::busybox(&["/bin/true"]);
    for i in 0..100 {
        let id = unique_name(&format!("race-run-{i}"));
        let _guard = runtime.guard(&id);
        let mut cmd = runtime.command(&[
            "run".as_ref(),
            "--bundle".as_ref(),
            bundle.path().as_os_str(),
            id.as_ref(),
        ]);
        let status = wait_timeout(&mut cmd, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("run {i} of an instantly exiting container hung"));
        assert!(status.success(), "run {i}: {status}");
    }
}

#[test]
fn start_of_instantly_exiting_containers_reports_stopped() {
    if !require_root() {
        return;
    }
    let runtime = Runtime::berth();
    let bundle = Bundle::busybox(&["/bin/true"]);
    for i in 0..40 {
        let id = unique_name(&format!("race-start-{i}"));
        let _guard = runtime.guard(&id);
        runtime.ok(&[
            "create".as_ref(),
            "--bundle".as_ref(),
            bundle.path().as_os_str(),
            id.as_ref(),
        ]);
        let mut start = runtime.command(&["start", &id]);
        let status = wait_timeout(&mut start, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("start {i} hung"));
        assert!(status.success(), "start {i}: {status}");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = runtime.ok(&["state", &id]);
            let state: serde_json::Value =
                serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("state json: {e}"));
            if state["status"] == "stopped" {
                assert_eq!(state["pid"], 0, "a stopped container reports pid 0");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "container {i} never stopped: {state}"
            );
            std::thread::yield_now();
        }
        runtime.ok(&["delete", &id]);
    }
}
