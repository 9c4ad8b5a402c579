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
        let process = exec_process(base, opts, &passwd, &group)?;
        let oci = crate::oci::for_container(&self.paths, &c);
        if opts.detach {
            // The process inherits fds 0-2: give it /dev/null, not the caller's terminal or pipes.
            let saved = StdioSaved::to_null()?;
            let r = oci.exec(c.id.as_str(), &process, true);
            drop(saved);
            return r;
        }
        oci.exec(c.id.as_str(), &process, false)
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
    saved: [OwnedFd; 3],
}

impl StdioSaved {
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
            dup(rustix::stdio::stdin())?,
            dup(rustix::stdio::stdout())?,
            dup(rustix::stdio::stderr())?,
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
        let _ = rustix::stdio::dup2_stdin(i);
        let _ = rustix::stdio::dup2_stdout(o);
        let _ = rustix::stdio::dup2_stderr(e);
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
            detach: false,
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
