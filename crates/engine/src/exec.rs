//! `exec`: another process in a running container. The process starts from the one the
//! container's init runs with (env, user, cwd, capabilities, rlimits, apparmor/selinux labels
//! as in the bundle's `config.json`), with the caller's overrides, and is handed to the
//! container's OCI runtime (in-process or `--runtime` binary, see `oci`).

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;

use oci_spec::runtime::{Process, User};

use crate::engine::{Engine, io_err};
use crate::error::{EngineError, Result};
use crate::state::Status;

/// What `berth exec` asks for.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Program and arguments.
    pub cmd: Vec<String>,
    /// `-e K=V`, added to (or replacing in) the container's environment.
    pub env: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u uid[:gid]`.
    pub user: Option<String>,
    /// `-d`: return once the process runs; its stdio is /dev/null.
    pub detach: bool,
    /// `-i`: the process reads this process's stdin (else /dev/null).
    pub interactive: bool,
    /// `-t`: the process gets a terminal, relayed to this process's stdio.
    pub tty: bool,
    /// With `tty` and `interactive`: typing these detaches, the process runs on (empty: none).
    pub detach_keys: Vec<u8>,
    /// `--privileged`: every capability, whatever the container has.
    pub privileged: bool,
}

impl Engine {
    /// Runs `opts.cmd` in the running container `reference` with the calling process's stdio;
    /// returns its exit code (128 + signal when killed), or 0 once it runs when detached.
    ///
    /// Errors: no such container, `Conflict` when it is not running, `InvalidArgument` for an
    /// empty command or a user name the container's /etc/passwd lacks, or the runtime's failure to start the process.
    pub fn exec(&self, reference: &str, opts: &ExecOptions) -> Result<i32> {
        let c = self.container(reference)?;
        if c.state.status != Status::Running {
            return Err(EngineError::NotRunning {
                id: c.id.to_string(),
            });
        }
        if opts.cmd.is_empty() {
            return Err(EngineError::InvalidValue {
                what: "command (no command specified)",
                value: String::new(),
            });
        }
        let base = base_process(&c)?;
        // `-u name` is looked up in the running container's /etc, through init's root.
        let (passwd, group) = match (&opts.user, c.state.pid) {
            (Some(_), Some(pid)) => {
                let root = [std::path::PathBuf::from(format!("/proc/{pid}/root"))];
                (
                    crate::passwd::read_from_layers(&root, "/etc/passwd")?,
                    crate::passwd::read_from_layers(&root, "/etc/group")?,
                )
            }
            _ => (String::new(), String::new()),
        };
        let mut process = exec_process(base, opts, &passwd, &group)?;
        let oci = crate::oci::for_container(&self.paths, &c);
        if opts.tty {
            return exec_terminal(&c, oci.as_ref(), &mut process, opts);
        }
        if opts.detach {
            // The process inherits fds 0-2: give it /dev/null, not the caller's terminal or pipes.
            let saved = StdioSaved::to_null()?;
            let r = oci.exec(c.id.as_str(), &process, true);
            drop(saved);
            return r;
        }
        // Docker's exec without -i reads nothing: give it /dev/null, not the caller's stdin.
        let _saved = if opts.interactive {
            None
        } else {
            Some(StdioSaved::stdin_to_null()?)
        };
        oci.exec(c.id.as_str(), &process, false)
    }
}

/// `exec -t`: the process gets a pty whose master comes back over a console socket; this
/// process relays it to its own stdio (raw mode, window size, detach keys) and reaps the process
/// (a subreaper, for runtimes that exit before it does). With `-d` the terminal goes straight to
/// a keeper that holds it open and discards its output, as Docker's shim does, and 0 returns.
fn exec_terminal(
    c: &crate::containers::Container,
    oci: &dyn crate::oci::OciRuntime,
    process: &mut Process,
    opts: &ExecOptions,
) -> Result<i32> {
    use runtime::console::{RelayOptions, Relayed};
    process.set_terminal(Some(true));
    if let Ok(ws) = rustix::termios::tcgetwinsize(rustix::stdio::stdout())
        && ws.ws_row > 0
        && ws.ws_col > 0
        && let Ok(size) = oci_spec::runtime::BoxBuilder::default()
            .height(u32::from(ws.ws_row))
            .width(u32::from(ws.ws_col))
            .build()
    {
        process.set_console_size(Some(size));
    }
    let tag = format!("exec-{}", std::process::id());
    let sock_path = c.run_dir.join(format!("{tag}.sock"));
    let pid_file = c.run_dir.join(format!("{tag}.pid"));
    let _ = std::fs::remove_file(&sock_path);
    let (_dir, short) = crate::attach::socket_path(&c.run_dir, &format!("{tag}.sock"))
        .map_err(io_err("listen on", &sock_path))?;
    let listener =
        std::os::unix::net::UnixListener::bind(&short).map_err(io_err("listen on", &sock_path))?;
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .map_err(|e| io_err("become subreaper", &sock_path)(e.into()))?;
    let started = oci.exec_terminal(c.id.as_str(), process, &short, &pid_file);
    let _ = std::fs::remove_file(&sock_path);
    let pid_text = std::fs::read_to_string(&pid_file);
    let _ = std::fs::remove_file(&pid_file);
    started?;
    let pid: i32 = pid_text
        .map_err(io_err("read", &pid_file))?
        .trim()
        .parse()
        .map_err(|_| EngineError::InvalidValue {
            what: "exec pid file content",
            value: pid_file.display().to_string(),
        })?;
    let runtime_err = |source| EngineError::Runtime {
        action: format!("relay the terminal of an exec in {}", c.id.short()),
        source: Box::new(source),
    };
    // The runtime connected and sent the master before returning: it waits in the backlog.
    let (conn, _) = listener.accept().map_err(io_err("accept on", &sock_path))?;
    let master =
        runtime::console::receive_master(std::os::fd::AsFd::as_fd(&conn)).map_err(runtime_err)?;
    drop(conn);
    if opts.detach {
        crate::sys::keep_terminal(master)
            .map_err(|e| io_err("keep the terminal of", &sock_path)(e))?;
        return Ok(0);
    }
    let relay = RelayOptions {
        stdin: opts.interactive,
        detach_keys: if opts.interactive {
            &opts.detach_keys
        } else {
            &[]
        },
    };
    match runtime::console::relay(master, pid, relay).map_err(runtime_err)? {
        Relayed::Exited(code) => Ok(code),
        Relayed::Detached(master) => {
            crate::sys::keep_terminal(master)
                .map_err(|e| io_err("keep the terminal of", &sock_path)(e))?;
            Ok(0)
        }
    }
}

/// The process the container's init runs with, from its bundle's `config.json` (the same for
/// every runtime).
fn base_process(c: &crate::containers::Container) -> Result<Process> {
    let path = c.bundle.join("config.json");
    let text = std::fs::read(&path).map_err(io_err("read", &path))?;
    let spec: oci_spec::runtime::Spec =
        serde_json::from_slice(&text).map_err(|source| EngineError::Json {
            action: format!("decode {}", path.display()),
            source,
        })?;
    Ok(spec.process().clone().unwrap_or_default())
}

/// The container's process with `opts` applied: args replaced, env merged by key, cwd and
/// user overridden. Capabilities, rlimits and labels stay the container's.
/// `-u` names are resolved in `passwd` and `group` (the container's files).
fn exec_process(mut p: Process, opts: &ExecOptions, passwd: &str, group: &str) -> Result<Process> {
    p.set_args(Some(opts.cmd.clone()));
    p.set_terminal(Some(false));
    p.set_console_size(None);
    let mut env = p.env().clone().unwrap_or_default();
    for e in &opts.env {
        let key = e.split('=').next().unwrap_or(e);
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    p.set_env(Some(env));
    if opts.privileged {
        let all: oci_spec::runtime::Capabilities = crate::security::all_capabilities()
            .iter()
            .filter_map(|c| c.parse().ok())
            .collect();
        let mut caps = p.capabilities().clone().unwrap_or_default();
        caps.set_bounding(Some(all.clone()));
        caps.set_effective(Some(all.clone()));
        caps.set_permitted(Some(all));
        p.set_capabilities(Some(caps));
    }
    if let Some(w) = &opts.workdir {
        p.set_cwd(w.into());
    }
    if let Some(u) = &opts.user {
        let resolved = crate::passwd::resolve(u, &[], passwd, group)?;
        let mut user = User::default();
        user.set_uid(resolved.uid);
        user.set_gid(resolved.gid);
        if !resolved.additional_gids.is_empty() {
            user.set_additional_gids(Some(resolved.additional_gids));
        }
        p.set_user(user);
    }
    Ok(p)
}

/// Fds 0-2 pointed elsewhere until dropped.
pub(crate) struct StdioSaved {
    saved: [Option<OwnedFd>; 3],
}

impl StdioSaved {
    /// Points fd 0 at /dev/null until the guard drops.
    pub(crate) fn stdin_to_null() -> Result<StdioSaved> {
        let null = Path::new("/dev/null");
        let null: OwnedFd = File::open(null).map_err(io_err("open", null))?.into();
        let saved = rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stdin(), 3)
            .map_err(|e| io_err("save stdio", Path::new("/dev/null"))(e.into()))?;
        let _ = rustix::stdio::dup2_stdin(&null);
        Ok(StdioSaved {
            saved: [Some(saved), None, None],
        })
    }

    /// Points fds 0-2 at /dev/null until the guard drops.
    pub(crate) fn to_null() -> Result<StdioSaved> {
        let null = Path::new("/dev/null");
        let null = File::options()
            .read(true)
            .write(true)
            .open(null)
            .map_err(io_err("open", null))?;
        Self::redirect(&null.into())
    }

    fn redirect(to: &OwnedFd) -> Result<StdioSaved> {
        let dup = |fd| {
            rustix::io::fcntl_dupfd_cloexec(fd, 3)
                .map_err(|e| io_err("save stdio", Path::new("/dev/null"))(e.into()))
        };
        let saved = [
            Some(dup(rustix::stdio::stdin())?),
            Some(dup(rustix::stdio::stdout())?),
            Some(dup(rustix::stdio::stderr())?),
        ];
        let _ = rustix::stdio::dup2_stdin(to);
        let _ = rustix::stdio::dup2_stdout(to);
        let _ = rustix::stdio::dup2_stderr(to);
        Ok(StdioSaved { saved })
    }
}

impl Drop for StdioSaved {
    fn drop(&mut self) {
        let [i, o, e] = &self.saved;
        if let Some(i) = i {
            let _ = rustix::stdio::dup2_stdin(i);
        }
        if let Some(o) = o {
            let _ = rustix::stdio::dup2_stdout(o);
        }
        if let Some(e) = e {
            let _ = rustix::stdio::dup2_stderr(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_and_env_merges_by_key() {
        let mut base = Process::default();
        base.set_env(Some(vec!["PATH=/bin".into(), "FOO=old".into()]));
        let opts = ExecOptions {
            cmd: vec!["sh".into()],
            env: vec!["FOO=bar".into()],
            workdir: Some("/tmp".into()),
            user: Some("1000:100".into()),
            ..Default::default()
        };
        let p = exec_process(base, &opts, "", "").expect("process");
        assert_eq!(p.args().as_deref(), Some(&["sh".to_owned()][..]));
        assert_eq!(
            p.env().as_deref(),
            Some(&["PATH=/bin".to_owned(), "FOO=bar".to_owned()][..])
        );
        assert_eq!(p.cwd(), Path::new("/tmp"));
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 100));
    }
}
