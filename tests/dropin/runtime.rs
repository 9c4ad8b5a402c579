//! The OCI runtime under test, and the tracing wrapper the peers are pointed at.
//!
//! Each peer is given `<sandbox>/runtime/<basename of the runtime>`: a shell script that appends
//! its working directory and argv to a log and `exec`s the real binary, so the argv, environment,
//! stdio and pid the real runtime sees are the ones the peer chose. The log proves the peer
//! called the runtime under test (not its default one) and shows exactly how; it is printed with
//! every test (visible with `--nocapture` or on failure).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Overrides the runtime under test, e.g. `/usr/sbin/runc`.
pub(crate) const ENV: &str = "BERTH_DROPIN_RUNTIME";

/// The runtime binary under test: `$BERTH_DROPIN_RUNTIME` (a path, or a name looked up in PATH),
/// else `berth-runtime` in the target dir of this test binary. Panics with what to do when it
/// is missing.
pub(crate) fn binary() -> PathBuf {
    if let Some(value) = std::env::var_os(ENV).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(&value);
        let found = if path.components().count() > 1 {
            Some(path)
        } else {
            search_path(&value)
        };
        return match found.filter(|p| p.is_file()) {
            Some(p) => p,
            None => panic!("{ENV}={}: no such runtime binary", value.to_string_lossy()),
        };
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    // target/<profile>/deps/dropin-<hash> -> target/<profile>/berth-runtime
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("berth-runtime"))
        .unwrap_or_else(|| panic!("no target dir above {}", exe.display()));
    assert!(
        path.is_file(),
        "runtime under test not found at {}: build it first (`cargo build -p berth-runtime`, same \
         profile as the tests) or point {ENV} at a runc-compatible binary, e.g. \
         {ENV}=/usr/sbin/runc",
        path.display()
    );
    path
}

/// The first `name` in PATH.
pub(crate) fn search_path(name: &std::ffi::OsStr) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The tracing wrapper around [`binary`], installed in a sandbox.
pub(crate) struct TracedRuntime {
    real: PathBuf,
    wrapper: PathBuf,
    log: PathBuf,
}

impl TracedRuntime {
    /// Writes the wrapper into `dir`, named like the real binary (some peers look at the name).
    pub(crate) fn install(dir: &Path) -> Self {
        let real = binary();
        let name = real
            .file_name()
            .unwrap_or_else(|| panic!("runtime path {}", real.display()));
        let wrapper = dir.join(name);
        let log = dir.join("calls.log");
        // One printf per call: appends of a single short write do not interleave. The stdio
        // targets show what the peer hands the runtime (pipes, fifos, /dev/null, a pty). A peer
        // that passes no --root (podman) gets one inside the sandbox, so the runtime's default
        // state root on the host is never touched by a test.
        let script = format!(
            "#!/bin/sh\n\
             io=\"$(readlink /proc/$$/fd/0),$(readlink /proc/$$/fd/1),$(readlink /proc/$$/fd/2)\"\n\
             line=\"cwd=$(pwd) stdio=$io $0\"\n\
             for a in \"$@\"; do line=\"$line '$a'\"; done\n\
             printf '%s\\n' \"$line\" >> '{log}'\n\
             case \" $* \" in *' --root '*|*' --root='*) exec '{real}' \"$@\";; esac\n\
             exec '{real}' --root '{root}' \"$@\"\n",
            log = log.display(),
            real = real.display(),
            root = dir.join("default-root").display(),
        );
        fs::write(&wrapper, script).unwrap_or_else(|e| panic!("write {}: {e}", wrapper.display()));
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", wrapper.display()));
        Self { real, wrapper, log }
    }

    /// What the peers are told to run.
    pub(crate) fn path(&self) -> &Path {
        &self.wrapper
    }

    /// One line per runtime call so far: `cwd=DIR stdio=FD0,FD1,FD2 WRAPPER 'arg' 'arg' ...`.
    pub(crate) fn calls(&self) -> Vec<String> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Prints the calls (with the real binary's path) to the test's stderr.
    pub(crate) fn print_calls(&self, peer: &str) {
        eprintln!("runtime calls by {peer} ({}):", self.real.display());
        for call in self.calls() {
            eprintln!("  {call}");
        }
    }

    /// Panics unless the peer asked the runtime under test to create or run a container.
    pub(crate) fn assert_used(&self, peer: &str) {
        let calls = self.calls();
        assert!(
            calls
                .iter()
                .any(|c| c.contains(" 'create' ") || c.contains(" 'run' ")),
            "{peer} never called `create` or `run` on {}; its calls: {calls:#?}",
            self.wrapper.display()
        );
    }
}

impl Drop for TracedRuntime {
    /// A test that panics before printing the calls (a timeout, a daemon that never came up)
    /// still shows them.
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_calls("the peer");
        }
    }
}
