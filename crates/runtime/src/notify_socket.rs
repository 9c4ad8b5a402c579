//! sd_notify passthrough (runc's `notify_socket.go`): when the runtime runs with `NOTIFY_SOCKET`
//! set, the container gets a socket of its own at [`CONTAINER_SOCKET`] (its directory is
//! bind-mounted from `<state>/notify`) and `NOTIFY_SOCKET` pointing there; `start` relays what
//! the container sends to the host's socket, adding `MAINPID=<init pid>` before `READY=1`, and
//! returns once the container is ready (or has exited), as `runc start` does.

use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{MountBuilder, Spec};
use rustix::event::{PollFd, PollFlags};

use crate::error::{Result, RuntimeError};

/// Where the container finds its notify socket.
pub(crate) const CONTAINER_SOCKET: &str = "/run/notify/notify.sock";
const DIR: &str = "notify";
const SOCKET: &str = "notify.sock";

/// Make `<state_dir>/notify` and add its bind mount and `NOTIFY_SOCKET` to the spec the
/// container's init uses (not to the stored config: exec'd processes do not get it).
pub(crate) fn prepare(state_dir: &Path, spec: &mut Spec) -> Result<()> {
    let dir = state_dir.join(DIR);
    std::fs::create_dir(&dir).map_err(|e| RuntimeError::io("create", &dir, e))?;
    // The container's user may be anyone: it must reach the socket inside.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| RuntimeError::io("chmod", &dir, e))?;
    let mount = MountBuilder::default()
        .destination(PathBuf::from("/run/notify"))
        .typ("bind")
        .source(dir)
        .options(
            ["bind", "nosuid", "noexec", "nodev", "ro"]
                .map(String::from)
                .to_vec(),
        )
        .build()
        .map_err(|e| RuntimeError::invalid("mounts", format!("notify socket mount: {e}")))?;
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(mount);
    spec.set_mounts(Some(mounts));
    if let Some(mut process) = spec.process().clone() {
        let mut env = process.env().clone().unwrap_or_default();
        env.retain(|e| !e.starts_with("NOTIFY_SOCKET="));
        env.push(format!("NOTIFY_SOCKET={CONTAINER_SOCKET}"));
        process.set_env(Some(env));
        spec.set_process(Some(process));
    }
    Ok(())
}

/// Bind the container's socket, replacing one an earlier `start` left. Done before init is
/// released, so the container's first message finds it.
pub(crate) fn bind(state_dir: &Path) -> Result<UnixDatagram> {
    let path = state_dir.join(DIR).join(SOCKET);
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).map_err(|e| RuntimeError::io("bind", &path, e))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
        .map_err(|e| RuntimeError::io("chmod", &path, e))?;
    Ok(sock)
}

/// Forward the container's messages to `host` until one says `READY=1` (sent after
/// `MAINPID=<pid>`) or init exits (`pidfd` readable).
pub(crate) fn relay(sock: &UnixDatagram, host: &Path, pid: i32, pidfd: impl AsFd) -> Result<()> {
    let out = UnixDatagram::unbound().map_err(|e| RuntimeError::sys("notify socket", e))?;
    let send = |msg: &[u8]| {
        out.send_to(msg, host)
            .map_err(|e| RuntimeError::io("send to NOTIFY_SOCKET", host, e))
    };
    let mut buf = vec![0u8; 4096];
    loop {
        let mut fds = [
            PollFd::new(sock, PollFlags::IN),
            PollFd::new(&pidfd, PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, None) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(RuntimeError::sys("poll notify socket", e.into())),
            Ok(_) => {}
        }
        let (sock_ready, exited) = (
            fds[0].revents().contains(PollFlags::IN),
            !fds[1].revents().is_empty(),
        );
        if sock_ready {
            let n = sock
                .recv(&mut buf)
                .map_err(|e| RuntimeError::sys("read notify socket", e))?;
            let msg = &buf[..n];
            let ready = msg.split(|b| *b == b'\n').any(|l| l == b"READY=1");
            if ready {
                send(format!("MAINPID={pid}\n").as_bytes())?;
            }
            send(msg)?;
            if ready {
                return Ok(());
            }
        } else if exited {
            return Ok(());
        }
    }
}
