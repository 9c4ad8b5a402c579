//! Handing the seccomp notify listener fd to the agent at `linux.seccomp.listenerPath`.
//!
//! The OCI runtime spec (config-linux.md, "seccomp"; runtime.md, "container process state"):
//! connect to the UNIX socket, send the container process state as JSON and the listener fd as
//! `SCM_RIGHTS`, the fd's name at the same index in `fds`.

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::BorrowedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

use oci_spec::runtime::{ContainerProcessState, SECCOMP_FD_NAME, State};
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

use super::SeccompError;

/// Builds the container process state that goes with the listener fd: the runtime `state`,
/// the pid of the container process as the runtime sees it, `listenerMetadata`, and
/// `fds: ["seccompFd"]`.
#[must_use]
pub fn container_process_state(
    state: &State,
    pid: i32,
    metadata: Option<&str>,
) -> ContainerProcessState {
    let mut process_state = ContainerProcessState::default();
    process_state
        .set_version(state.version().clone())
        .set_fds(vec![SECCOMP_FD_NAME.to_owned()])
        .set_pid(pid)
        .set_metadata(metadata.map(str::to_owned))
        .set_state(state.clone());
    process_state
}

/// Connects to the seccomp agent at `listener_path` (a UNIX stream socket) and sends it
/// `process_state` as JSON with `fd` attached as `SCM_RIGHTS`, then closes the connection.
///
/// `process_state.fds` must be exactly `["seccompFd"]` (see [`container_process_state`]). The fd
/// travels with the first bytes of the message, so an agent that reads once with room for the
/// fd gets both.
pub fn send_to_listener(
    listener_path: &Path,
    fd: BorrowedFd<'_>,
    process_state: &ContainerProcessState,
) -> Result<(), SeccompError> {
    if process_state.fds().as_slice() != [SECCOMP_FD_NAME] {
        return Err(SeccompError::ProcessStateFds);
    }
    let message =
        serde_json::to_vec(process_state).map_err(|source| SeccompError::EncodeState { source })?;
    let stream = UnixStream::connect(listener_path).map_err(|source| SeccompError::Connect {
        path: listener_path.to_owned(),
        source,
    })?;
    let send_error = |e: rustix::io::Errno| SeccompError::Send {
        path: listener_path.to_owned(),
        source: e.into(),
    };

    let fds = [fd];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    // The buffer is sized for exactly this one message, so the push cannot fail.
    let _ = control.push(SendAncillaryMessage::ScmRights(&fds));
    // NOSIGNAL: an agent that hangs up must give an error, not kill the runtime with SIGPIPE.
    let mut sent = loop {
        match rustix::net::sendmsg(
            &stream,
            &[IoSlice::new(&message)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other.map_err(send_error)?,
        }
    };
    // A stream socket may take a long state in several pieces; the fd went with the first.
    while let Some(rest) = message.get(sent..).filter(|rest| !rest.is_empty()) {
        match rustix::net::send(&stream, rest, SendFlags::NOSIGNAL) {
            Err(rustix::io::Errno::INTR) => {}
            other => sent += other.map_err(send_error)?,
        }
    }
    Ok(())
}
