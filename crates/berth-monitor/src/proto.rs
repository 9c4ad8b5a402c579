//! Frames on the attach socket (`<run dir>/attach.sock`, a unix stream socket): one kind byte,
//! a little-endian `u32` payload length, the payload.
//!
//! Client to monitor: [`STDIN`] data, [`CLOSE_STDIN`], [`RESIZE`] (rows, cols as two `u16`),
//! [`SIGNAL`] (an `i32`), and from the client that took the exit, [`EXIT_DONE`] after
//! [`EXIT`]. Monitor to client: [`STDOUT`] and [`STDERR`] data (a terminal's output is
//! `STDOUT`), then [`EXIT`] (the container's exit code as an `i32`) when the run ends.

/// Data for the container's stdin.
pub const STDIN: u8 = 0;
/// Container output on stdout (or its terminal).
pub const STDOUT: u8 = 1;
/// Container output on stderr.
pub const STDERR: u8 = 2;
/// The container's exit code (`i32`); the last frame the monitor sends.
pub const EXIT: u8 = 3;
/// New terminal size: rows and columns, each a little-endian `u16`.
pub const RESIZE: u8 = 4;
/// The client's stdin ended.
pub const CLOSE_STDIN: u8 = 5;
/// Send this signal (`i32`) to the container's init.
pub const SIGNAL: u8 = 6;
/// From the client that took the exit (`Invocation::exit_client`), after [`EXIT`]: it recorded
/// the exit and cleaned up, so the monitor ends without handing the exit to `berth`.
pub const EXIT_DONE: u8 = 7;

/// Largest payload accepted; bigger frames are a protocol error.
pub const MAX_PAYLOAD: usize = 1 << 20;

/// A frame, ready to write.
#[must_use]
pub fn encode(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + payload.len());
    v.push(kind);
    v.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    v.extend_from_slice(payload);
    v
}

/// A [`RESIZE`] frame.
#[must_use]
pub fn resize(rows: u16, cols: u16) -> Vec<u8> {
    let mut p = rows.to_le_bytes().to_vec();
    p.extend_from_slice(&cols.to_le_bytes());
    encode(RESIZE, &p)
}

/// An `i32` payload ([`EXIT`], [`SIGNAL`]).
#[must_use]
pub fn int(kind: u8, value: i32) -> Vec<u8> {
    encode(kind, &value.to_le_bytes())
}

/// Reads an `i32` payload.
#[must_use]
pub fn to_int(payload: &[u8]) -> Option<i32> {
    Some(i32::from_le_bytes(payload.get(..4)?.try_into().ok()?))
}

/// Reads a [`RESIZE`] payload: (rows, cols).
#[must_use]
pub fn to_size(payload: &[u8]) -> Option<(u16, u16)> {
    let rows = u16::from_le_bytes(payload.get(..2)?.try_into().ok()?);
    let cols = u16::from_le_bytes(payload.get(2..4)?.try_into().ok()?);
    Some((rows, cols))
}

/// Splits a byte stream into frames.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

/// A frame that cannot be decoded (its length is over [`MAX_PAYLOAD`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge;

impl Decoder {
    /// Appends bytes read from the socket.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, if any.
    pub fn next_frame(&mut self) -> Result<Option<(u8, Vec<u8>)>, TooLarge> {
        let Some(head) = self.buf.get(..5) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(TooLarge);
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        let kind = self.buf[0];
        let payload = self.buf[5..5 + len].to_vec();
        self.buf.drain(..5 + len);
        Ok(Some((kind, payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_and_join() {
        let mut bytes = encode(STDOUT, b"hello");
        bytes.extend(resize(24, 80));
        bytes.extend(int(EXIT, -3));
        let mut d = Decoder::default();
        for chunk in bytes.chunks(3) {
            d.push(chunk);
        }
        assert_eq!(d.next_frame().unwrap(), Some((STDOUT, b"hello".to_vec())));
        let (k, p) = d.next_frame().unwrap().unwrap();
        assert_eq!((k, to_size(&p)), (RESIZE, Some((24, 80))));
        let (k, p) = d.next_frame().unwrap().unwrap();
        assert_eq!((k, to_int(&p)), (EXIT, Some(-3)));
        assert_eq!(d.next_frame().unwrap(), None);
        d.push(&[STDIN, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(d.next_frame(), Err(TooLarge));
    }
}
