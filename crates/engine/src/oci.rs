//! The OCI runtime a container runs under: berth's in-process `runtime` library (the default),
//! or any runtime binary with runc's command line (`--runtime PATH`: runc, crun,
//! berth-runtime), driven the way podman and containerd's shim drive one. Lifecycle, exec,
//! pause/unpause and the monitor call the runtime only through [`OciRuntime`].
//!
//! An external runtime keeps its state under `<run root>/runtimes/<binary name>` (runc's
//! `--root`), so containers of different runtimes never share a state directory. Its errors are
//! read from a `--log` file (runc, crun and berth-runtime all take one), because the runtime's
//! own stdio is the container's.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use oci_spec::runtime::Process;

use crate::containers::Container;
use crate::engine::io_err;
use crate::error::{EngineError, Result};
use crate::store::Paths;

/// One container runtime; every call names the container by its full id.
pub(crate) trait OciRuntime: std::fmt::Debug {
    /// Creates the container from `bundle` (its init waits for `start`); returns init's pid.
    /// Init inherits the caller's fds 0-2, or with `process.terminal` gets a pty whose master
    /// the runtime sends to `console_socket`.
    fn create(&self, id: &str, bundle: &Path, console_socket: Option<&Path>) -> Result<i32>;
    /// Lets init exec the user's program.
    fn start(&self, id: &str) -> Result<()>;
    /// Signals init (every process of the container with `all`).
    fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()>;
    /// Deletes the runtime's state and the cgroup (killing what is left with `force`).
    fn delete(&self, id: &str, force: bool) -> Result<()>;
    /// Whether the runtime has state for `id`.
    fn exists(&self, id: &str) -> bool;
    /// Freezes the container.
    fn pause(&self, id: &str) -> Result<()>;
    /// Thaws it.
    fn resume(&self, id: &str) -> Result<()>;
    /// Runs `process` in the container with the caller's stdio; its exit code, or 0 once it
    /// runs when `detach`.
    fn exec(&self, id: &str, process: &Process, detach: bool) -> Result<i32>;
    /// Starts `process` (with `process.terminal`) in the container and returns once it runs:
    /// the pty master goes to `console_socket`, the process's pid to `pid_file`. The caller
    /// (a child subreaper) reaps the process.
    fn exec_terminal(
        &self,
        id: &str,
        process: &Process,
        console_socket: &Path,
        pid_file: &Path,
    ) -> Result<()>;
}

/// The runtime `c` was created with.
pub(crate) fn for_container(paths: &Paths, c: &Container) -> Box<dyn OciRuntime> {
    for_name(paths, &c.host_config.runtime)
}

/// The runtime `HostConfig.Runtime` names: empty for the in-process one, else a binary path.
pub(crate) fn for_name(paths: &Paths, runtime: &str) -> Box<dyn OciRuntime> {
    if runtime.is_empty() {
        Box::new(InProcess {
            root: crate::engine::runtime_root(paths),
        })
    } else {
        let binary = PathBuf::from(runtime);
        let name = binary
            .file_name()
            .map_or_else(|| "runtime".into(), |n| n.to_string_lossy().into_owned());
        Box::new(External {
            root: paths.run_root.join("runtimes").join(name),
            binary,
        })
    }
}

/// `--runtime VALUE` as stored in `HostConfig.Runtime`: an executable file given by path, or a
/// name looked up in `PATH`, made absolute (the monitor runs it later, from anywhere).
///
/// Errors: `InvalidArgument` when no executable file of that name exists.
pub(crate) fn resolve_binary(value: &str) -> Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let bad = || EngineError::InvalidValue {
        what: "runtime (not an executable file)",
        value: value.to_owned(),
    };
    let found = if value.contains('/') {
        let p = Path::new(value);
        executable(p).then(|| p.to_path_buf())
    } else {
        std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.join(value))
            .find(|p| executable(p))
    };
    let found = found.ok_or_else(bad)?;
    let abs = fs::canonicalize(&found).map_err(io_err("resolve runtime", &found))?;
    Ok(abs.to_string_lossy().into_owned())
}

/// berth's own runtime, called in-process.
#[derive(Debug)]
struct InProcess {
    root: PathBuf,
}

impl InProcess {
    fn err(&self, action: &str, id: &str) -> impl FnOnce(runtime::RuntimeError) -> EngineError {
        let action = format!("{action} container {}", short(id));
        move |source| EngineError::Runtime {
            action,
            source: Box::new(source),
        }
    }
}

impl OciRuntime for InProcess {
    fn create(&self, id: &str, bundle: &Path, console_socket: Option<&Path>) -> Result<i32> {
        let opts = runtime::container::CreateOptions {
            id: id.to_owned(),
            bundle: bundle.to_path_buf(),
            console_socket: console_socket.map(Path::to_path_buf),
            ..Default::default()
        };
        runtime::container::create(&self.root, &opts).map_err(self.err("create", id))
    }

    fn start(&self, id: &str) -> Result<()> {
        runtime::container::start(&self.root, id).map_err(self.err("start", id))
    }

    fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        runtime::container::kill(&self.root, id, signal, all).map_err(self.err("kill", id))
    }

    fn delete(&self, id: &str, force: bool) -> Result<()> {
        runtime::container::delete(&self.root, id, force).map_err(self.err("delete", id))
    }

    fn exists(&self, id: &str) -> bool {
        runtime::state::state_dir(&self.root, id).exists()
    }

    fn pause(&self, id: &str) -> Result<()> {
        runtime::container::pause(&self.root, id).map_err(self.err("pause", id))
    }

    fn resume(&self, id: &str) -> Result<()> {
        runtime::container::resume(&self.root, id).map_err(self.err("unpause", id))
    }

    fn exec(&self, id: &str, process: &Process, detach: bool) -> Result<i32> {
        let opts = runtime::container::ExecOptions {
            detach,
            ..Default::default()
        };
        runtime::container::exec(&self.root, id, process, &opts).map_err(self.err("exec in", id))
    }

    fn exec_terminal(
        &self,
        id: &str,
        process: &Process,
        console_socket: &Path,
        pid_file: &Path,
    ) -> Result<()> {
        let opts = runtime::container::ExecOptions {
            detach: true,
            console_socket: Some(console_socket.to_path_buf()),
            pid_file: Some(pid_file.to_path_buf()),
            ..Default::default()
        };
        runtime::container::exec(&self.root, id, process, &opts)
            .map(drop)
            .map_err(self.err("exec in", id))
    }
}

/// An OCI runtime binary with runc's command line.
#[derive(Debug)]
struct External {
    binary: PathBuf,
    root: PathBuf,
}

impl External {
    /// `<binary> --root R --log L <args>` with the caller's stdio; a non-zero exit is an error
    /// carrying what the runtime logged.
    fn run(&self, action: &str, id: &str, args: &[&std::ffi::OsStr]) -> Result<i32> {
        fs::create_dir_all(&self.root).map_err(io_err("create directory", &self.root))?;
        let log = self.root.join(format!("{id}.{action}.log"));
        let _ = fs::remove_file(&log);
        let status = Command::new(&self.binary)
            .arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&log)
            .args(args)
            .status()
            .map_err(io_err("run runtime", &self.binary))?;
        let logged = fs::read_to_string(&log).unwrap_or_default();
        let _ = fs::remove_file(&log);
        match status.code() {
            Some(0) => Ok(0),
            code => Err(EngineError::OciRuntime {
                action: format!("{action} container {}", short(id)),
                runtime: self.binary.clone(),
                message: last_error(&logged)
                    .unwrap_or_else(|| format!("exited with {}", code.unwrap_or(-1))),
            }),
        }
    }

    /// Like [`External::run`] with stdio to /dev/null (for verbs whose output nobody reads).
    fn quiet(&self, action: &str, id: &str, args: &[&std::ffi::OsStr]) -> Result<()> {
        let saved = crate::exec::StdioSaved::to_null()?;
        let r = self.run(action, id, args);
        drop(saved);
        r.map(|_| ())
    }
}

impl OciRuntime for External {
    fn create(&self, id: &str, bundle: &Path, console_socket: Option<&Path>) -> Result<i32> {
        let pid_file = self.root.join(format!("{id}.pid"));
        let _ = fs::remove_file(&pid_file);
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "create".as_ref(),
            "--bundle".as_ref(),
            bundle.as_os_str(),
            "--pid-file".as_ref(),
            pid_file.as_os_str(),
        ];
        if let Some(socket) = console_socket {
            args.extend(["--console-socket".as_ref(), socket.as_os_str()]);
        }
        args.push(id.as_ref());
        self.run("create", id, &args)?;
        let text = fs::read_to_string(&pid_file).map_err(io_err("read pid file", &pid_file))?;
        let _ = fs::remove_file(&pid_file);
        text.trim().parse().map_err(|_| EngineError::OciRuntime {
            action: format!("create container {}", short(id)),
            runtime: self.binary.clone(),
            message: format!("bad pid file content {:?}", text.trim()),
        })
    }

    fn start(&self, id: &str) -> Result<()> {
        self.quiet("start", id, &["start".as_ref(), id.as_ref()])
    }

    fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        let sig = signal.to_string();
        let mut args: Vec<&std::ffi::OsStr> = vec!["kill".as_ref()];
        if all {
            args.push("--all".as_ref());
        }
        args.push(id.as_ref());
        args.push(sig.as_ref());
        self.quiet("kill", id, &args)
    }

    fn delete(&self, id: &str, force: bool) -> Result<()> {
        let mut args: Vec<&std::ffi::OsStr> = vec!["delete".as_ref()];
        if force {
            args.push("--force".as_ref());
        }
        args.push(id.as_ref());
        self.quiet("delete", id, &args)
    }

    fn exists(&self, id: &str) -> bool {
        // runc, crun and berth-runtime all keep one directory per container under --root.
        self.root.join(id).is_dir()
    }

    fn pause(&self, id: &str) -> Result<()> {
        self.quiet("pause", id, &["pause".as_ref(), id.as_ref()])
    }

    fn resume(&self, id: &str) -> Result<()> {
        self.quiet("unpause", id, &["resume".as_ref(), id.as_ref()])
    }

    fn exec(&self, id: &str, process: &Process, detach: bool) -> Result<i32> {
        let file = self.process_file(id, process)?;
        let mut args: Vec<&std::ffi::OsStr> =
            vec!["exec".as_ref(), "--process".as_ref(), file.as_os_str()];
        if detach {
            args.push("--detach".as_ref());
        }
        args.push(id.as_ref());
        let r = self.exec_status(id, &args);
        let _ = fs::remove_file(&file);
        r
    }

    fn exec_terminal(
        &self,
        id: &str,
        process: &Process,
        console_socket: &Path,
        pid_file: &Path,
    ) -> Result<()> {
        let file = self.process_file(id, process)?;
        let args: [&std::ffi::OsStr; 9] = [
            "exec".as_ref(),
            "--process".as_ref(),
            file.as_os_str(),
            "--detach".as_ref(),
            "--console-socket".as_ref(),
            console_socket.as_os_str(),
            "--pid-file".as_ref(),
            pid_file.as_os_str(),
            id.as_ref(),
        ];
        // runc's own stdio is not the process's here: keep it off the caller's terminal.
        let r = self.quiet("exec", id, &args);
        let _ = fs::remove_file(&file);
        r
    }
}

impl External {
    /// `process` written where `exec --process` reads it.
    fn process_file(&self, id: &str, process: &Process) -> Result<PathBuf> {
        let file = self
            .root
            .join(format!("{id}.exec-{}.json", std::process::id()));
        let json = serde_json::to_vec(process).map_err(|source| EngineError::Json {
            action: format!("encode exec process of {}", short(id)),
            source,
        })?;
        fs::create_dir_all(&self.root).map_err(io_err("create directory", &self.root))?;
        fs::File::create(&file)
            .and_then(|mut f| f.write_all(&json))
            .map_err(io_err("write", &file))?;
        Ok(file)
    }

    /// `exec` passes the process's exit code through: a non-zero status is the process's, not
    /// a failure, unless the runtime logged an error.
    fn exec_status(&self, id: &str, args: &[&std::ffi::OsStr]) -> Result<i32> {
        match self.run("exec", id, args) {
            Ok(c) => Ok(c),
            Err(EngineError::OciRuntime { message, .. }) if message.starts_with("exited with ") => {
                Ok(message["exited with ".len()..].parse().unwrap_or(126))
            }
            Err(e) => Err(e),
        }
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// The last error a runtime logged: runc and berth-runtime write logrus-style text or JSON
/// (`{"level":"error","msg":...}`), crun `{"msg":...,"level":"error"}` or plain lines.
fn last_error(log: &str) -> Option<String> {
    log.lines()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .find_map(|l| {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(l) {
                let level = v["level"].as_str().unwrap_or("error");
                return matches!(level, "error" | "fatal")
                    .then(|| v["msg"].as_str().unwrap_or(l).to_owned());
            }
            if let Some(i) = l.find("msg=") {
                let msg = l[i + 4..].trim();
                return Some(msg.trim_matches('"').replace("\\\"", "\""));
            }
            (l.contains("level=error") || l.contains("error") || !l.contains("level="))
                .then(|| l.trim().to_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_from_every_log_style() {
        let runc =
            "time=\"2024\" level=error msg=\"runc create failed: exec: \\\"nope\\\": not found\"\n";
        assert_eq!(
            last_error(runc).as_deref(),
            Some("runc create failed: exec: \"nope\": not found")
        );
        let json = "{\"level\":\"info\",\"msg\":\"x\"}\n{\"level\":\"error\",\"msg\":\"boom\"}\n";
        assert_eq!(last_error(json).as_deref(), Some("boom"));
        assert_eq!(
            last_error("executable file not found\n").as_deref(),
            Some("executable file not found")
        );
        assert_eq!(last_error(""), None);
    }

    /// A fake runtime: records its arguments, writes a pid file on `create`, and fails `kill`
    /// with a logged error.
    fn fake_runtime(dir: &Path) -> External {
        use std::os::unix::fs::PermissionsExt;
        let bin = dir.join("fake-runtime");
        let calls = dir.join("calls");
        let script = format!(
            r#"#!/bin/sh
echo "$@" >> {calls}
log=$4
case "$5" in
  create) echo 4242 > "$9" ;;
  kill) echo '{{"level":"error","msg":"container not running"}}' > "$log"; exit 1 ;;
esac
exit 0
"#,
            calls = calls.display()
        );
        fs::write(&bin, script).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        External {
            binary: bin,
            root: dir.join("state"),
        }
    }

    #[test]
    fn external_runtimes_get_runc_command_lines() {
        let dir = tempfile::tempdir().unwrap();
        let rt = fake_runtime(dir.path());
        let id = "c0ffee";
        assert_eq!(rt.create(id, Path::new("/b"), None).unwrap(), 4242);
        rt.start(id).unwrap();
        rt.pause(id).unwrap();
        rt.resume(id).unwrap();
        rt.delete(id, true).unwrap();
        let e = rt.kill(id, 9, true).unwrap_err();
        assert!(e.to_string().ends_with(": container not running"), "{e}");
        let calls = fs::read_to_string(dir.path().join("calls")).unwrap();
        let root = rt.root.display();
        let log = |verb: &str| format!("--root {root} --log {root}/{id}.{verb}.log");
        let want = [
            format!(
                "{} create --bundle /b --pid-file {root}/{id}.pid {id}",
                log("create")
            ),
            format!("{} start {id}", log("start")),
            format!("{} pause {id}", log("pause")),
            format!("{} resume {id}", log("unpause")),
            format!("{} delete --force {id}", log("delete")),
            format!("{} kill --all {id} 9", log("kill")),
        ];
        assert_eq!(calls.lines().collect::<Vec<_>>(), want);
    }

    #[test]
    fn runtime_binaries_resolve_by_path_or_name() {
        assert!(resolve_binary("sh").is_ok_and(|p| p.starts_with('/')));
        assert!(resolve_binary("/bin/sh").is_ok());
        assert!(resolve_binary("/etc/passwd").is_err());
        assert!(resolve_binary("berth-test-no-such-runtime").is_err());
    }
}
