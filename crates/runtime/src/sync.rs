//! The parent <-> child protocol over a `SOCK_SEQPACKET` socket pair: one datagram per message,
//! a tag, an integer and an optional text, with at most one descriptor attached (SCM_RIGHTS).

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// Message kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Tag {
    /// Child -> parent: setup failed; text is the error chain.
    Error = 1,
    /// Stage 1 -> parent: namespaces joined; value 1 when a new user namespace awaits its maps.
    Hello = 2,
    /// Parent -> child: go on (maps written, cgroup joined, hooks run).
    Go = 3,
    /// Stage 1 -> parent: the pid of stage 2 (the container's init or exec'd process).
    Stage2Pid = 4,
    /// Init -> parent: namespaces exist, run prestart and createRuntime hooks now.
    RunHooks = 5,
    /// Child -> parent: the seccomp notify listener (fd attached).
    SeccompFd = 6,
    /// Init -> parent: setup done; init now waits on the exec fifo.
    Ready = 7,
}

impl Tag {
    fn from_u8(v: u8) -> Option<Tag> {
        Some(match v {
            1 => Tag::Error,
            2 => Tag::Hello,
            3 => Tag::Go,
            4 => Tag::Stage2Pid,
            5 => Tag::RunHooks,
            6 => Tag::SeccompFd,
            7 => Tag::Ready,
            _ => return None,
        })
    }
}

/// A received message.
pub(crate) struct Msg {
    pub(crate) tag: Tag,
    pub(crate) value: i64,
    pub(crate) text: String,
    pub(crate) fd: Option<OwnedFd>,
}

/// Create a connected, close-on-exec `SOCK_SEQPACKET` pair.
pub(crate) fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::SEQPACKET,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Send one message, optionally with a descriptor.
pub(crate) fn send(
    sock: BorrowedFd<'_>,
    tag: Tag,
    value: i64,
    text: &str,
    fd: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(9 + text.len());
    buf.push(tag as u8);
    buf.extend_from_slice(&value.to_le_bytes());
    buf.extend_from_slice(&text.as_bytes()[..text.len().min(3800)]);
    send_with_fd(sock, &buf, fd)
}

/// Send `payload` with an optional descriptor attached (also used for console sockets).
pub(crate) fn send_with_fd(
    sock: BorrowedFd<'_>,
    payload: &[u8],
    fd: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = SendAncillaryBuffer::new(&mut space);
    let fds;
    if let Some(fd) = fd {
        fds = [fd];
        if !cmsg.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(io::Error::from_raw_os_error(libc::ENOBUFS));
        }
    }
    loop {
        match rustix::net::sendmsg(
            sock,
            &[IoSlice::new(payload)],
            &mut cmsg,
            SendFlags::NOSIGNAL,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            r => return r.map(drop).map_err(Into::into),
        }
    }
}

/// Receive one message; `Ok(None)` when the peer closed its end (for the exec'd child: exec
/// succeeded, since the socket is close-on-exec).
pub(crate) fn recv(sock: BorrowedFd<'_>) -> io::Result<Option<Msg>> {
    let mut buf = vec![0u8; 4096];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let n = loop {
        match rustix::net::recvmsg(
            sock,
            &mut [IoSliceMut::new(&mut buf)],
            &mut cmsg,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            r => break r?.bytes,
        }
    };
    let mut fd = None;
    for m in cmsg.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = m {
            for f in fds {
                fd.get_or_insert(f);
            }
        }
    }
    if n == 0 {
        return Ok(None);
    }
    let tag = Tag::from_u8(buf[0]).ok_or_else(|| io::Error::from_raw_os_error(libc::EPROTO))?;
    let mut v = [0u8; 8];
    if n >= 9 {
        v.copy_from_slice(&buf[1..9]);
    }
    let text = String::from_utf8_lossy(buf.get(9..n).unwrap_or(&[])).into_owned();
    Ok(Some(Msg {
        tag,
        value: i64::from_le_bytes(v),
        text,
        fd,
    }))
}

/// Wait for a `Go` from the parent; anything else is a protocol error.
pub(crate) fn wait_go(sock: impl AsFd) -> io::Result<()> {
    match recv(sock.as_fd())? {
        Some(m) if m.tag == Tag::Go => Ok(()),
        _ => Err(io::Error::from_raw_os_error(libc::EPIPE)),
    }
}
