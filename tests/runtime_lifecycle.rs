//! End-to-end tests of `berth-runtime`'s CLI verbs and of how it refuses bad input, with runc's
//! behaviour as the reference. Every container runs under a `ContainerGuard`; every test
//! asserts what the kernel shows (processes, cgroup files, pidfds), not only what the runtime
//! prints.
//!
//! - `verbs`: create/start/state/kill/delete/run, pid files, exit codes, signals by name.
//! - `exec`: exec with flags, `--process`, detached exec, exec into a stopped container.
//! - `observe`: ps, list, pause/resume, events (stats and OOM), update.
//! - `cli`: spec, features, `--log --log-format json`, default root, concurrent containers.
//! - `bad_input`: invalid configs and ids fail with one line naming the field, leaving nothing.

// A test target: helpers outside `#[test]` functions fail the test with `expect` too.
#![allow(clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

#[path = "runtime_lifecycle/bad_input.rs"]
mod bad_input;
#[path = "runtime_lifecycle/cli.rs"]
mod cli;
#[path = "runtime_lifecycle/exec.rs"]
mod exec;
#[path = "runtime_lifecycle/observe.rs"]
mod observe;
#[path = "runtime_lifecycle/verbs.rs"]
mod verbs;
