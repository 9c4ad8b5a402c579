//! End-to-end proof of the OCI runtime's features, from inside the container.
//!
//! Every test configures one feature through config.json, runs a busybox bundle (built from
//! Debian's `busybox-static` by testutil) with `berth-runtime`, and checks what the container
//! sees with the static `contest` helper (or busybox). Failure paths check the one-line error
//! and that nothing is left behind. Every container has a `ContainerGuard` (delete --force and
//! leak check on drop), every kernel object a `berth-test-` name and a Drop guard.
//!
//! Needs root; run with `cargo build --workspace --bins && cargo nextest run -p berth-tests
//! --test runtime_features`.

mod runtime_features {
    pub(crate) mod common;
    mod devices;
    mod hooks;
    mod io;
    mod mounts;
    mod namespaces;
    mod process;
    mod seccomp;
    #[allow(unsafe_code)]
    pub(crate) mod sys;
}
