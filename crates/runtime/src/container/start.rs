//! `start`: release a created container's init from the exec fifo.

use std::os::fd::AsFd;
use std::path::Path;

use rustix::event::{PollFd, PollFlags};
use rustix::fs::{Mode, OFlags};

use crate::error::{Result, RuntimeError};
use crate::hooks;
use crate::state::{self, ContainerState, EXEC_FIFO, Status};

/// Start container `id`: init execs the user's program once it sees us read the fifo.
pub fn start(root: &Path, id: &str) -> Result<()> {
    let st = ContainerState::load(root, id)?;
    st.require(root, "start", "created", |s| s == Status::Created)?;
    if st.config.process().is_none() {
        // Created without a process: nothing to start. Remove the waiting init.
        let _ = super::kill(root, id, libc::SIGKILL, false);
        return Err(RuntimeError::invalid(
            "process",
            "not set: nothing to start",
        ));
    }
    // Pin init with a pidfd before touching the fifo: once the fifo is open, init may exec and
    // exit at once, and its pid could be reaped and reused.
    let pid = rustix::process::Pid::from_raw(st.pid)
        .ok_or_else(|| RuntimeError::NotFound(id.to_string()))?;
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
        .map_err(|e| RuntimeError::sys("pidfd_open container init", e.into()))?;
    if !state::process_alive(st.pid, st.init_start_time) {
        return Err(RuntimeError::Child(format!(
            "container {id} init exited before start"
        )));
    }
    let notify = st
        .notify_socket
        .as_ref()
        .map(|host| {
            crate::notify_socket::bind(&state::state_dir(root, id)).map(|sock| (sock, host))
        })
        .transpose()?;
    let fifo = state::state_dir(root, id).join(EXEC_FIFO);
    let f = rustix::fs::open(
        &fifo,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RuntimeError::io("open", &fifo, e.into()))?;
    loop {
        let mut fds = [
            PollFd::new(&f, PollFlags::IN),
            PollFd::new(&pidfd, PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, None) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(RuntimeError::sys("poll exec fifo", e.into())),
            Ok(_) => {}
        }
        if fds[0].revents().contains(PollFlags::IN) {
            let mut b = [0u8; 1];
            match rustix::io::read(f.as_fd(), &mut b) {
                Ok(1) => break,
                Ok(_) | Err(rustix::io::Errno::AGAIN) => {}
                Err(e) => return Err(RuntimeError::io("read", &fifo, e.into())),
            }
        }
        if fds[1].revents().contains(PollFlags::IN) {
            return Err(RuntimeError::Child(format!(
                "container {id} init exited before start"
            )));
        }
        if fds[0].revents().contains(PollFlags::HUP) {
            return Err(RuntimeError::Child(format!(
                "container {id} init closed the exec fifo without starting"
            )));
        }
    }
    std::fs::remove_file(&fifo).map_err(|e| RuntimeError::io("remove", &fifo, e))?;
    if let Some((sock, host)) = &notify {
        crate::notify_socket::relay(sock, host, st.pid, &pidfd)?;
    }
    if let Some(h) = st
        .config
        .hooks()
        .as_ref()
        .and_then(|h| h.poststart().as_ref())
    {
        let s = super::hook_state(&st.config, id, st.pid, Status::Running, &st.bundle);
        hooks::run_warn("poststart", h, &s);
    }
    Ok(())
}
