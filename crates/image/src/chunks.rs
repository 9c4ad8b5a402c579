//! Handing a byte stream from one thread to the next in large buffers, so that the stages of
//! a layer's way to disk (socket read and blob hashing, decompression and DiffID hashing, tar
//! extraction and file writes) run on different cores.
//!
//! The channel is bounded (a slow consumer holds the producer back) and buffers travel back to
//! the producer once read, so a stream of any length cycles through a few fixed allocations
//! and no byte is copied between the stages. The reader's end of the stream is the producer
//! dropping its [`ChunkSender`]; a producer sees that the reader is gone when `send` fails.

use std::io::{self, BufRead, Read};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};

/// The size of one buffer: large enough that per-chunk costs (a channel hand-over, a wake-up)
/// vanish against the bytes, small enough that a few in flight stay cache friendly.
pub(crate) const CHUNK: usize = 256 << 10;

/// One buffer: `data[..len]` holds the bytes. `data` stays initialized (and [`CHUNK`] long)
/// through its reuse, so filling it again costs no memset.
pub(crate) struct Chunk {
    data: Box<[u8]>,
    len: usize,
}

impl Chunk {
    /// The whole buffer, to fill.
    pub(crate) fn space(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Marks the first `len` bytes as filled.
    pub(crate) fn set_len(&mut self, len: usize) {
        self.len = len.min(self.data.len());
    }

    /// The filled bytes.
    pub(crate) fn filled(&self) -> &[u8] {
        &self.data[..self.len]
    }
}

/// The producer's end.
pub(crate) struct ChunkSender {
    tx: SyncSender<Chunk>,
    spare: Receiver<Chunk>,
}

/// A channel carrying up to `depth` filled chunks at a time.
pub(crate) fn chunk_channel(depth: usize) -> (ChunkSender, ChunkReader) {
    let (tx, rx) = sync_channel(depth);
    let (spare_tx, spare_rx) = channel();
    (
        ChunkSender {
            tx,
            spare: spare_rx,
        },
        ChunkReader {
            rx,
            spare: spare_tx,
            cur: None,
            pos: 0,
        },
    )
}

impl ChunkSender {
    /// An empty chunk: one the reader has finished with, or a new one.
    pub(crate) fn chunk(&self) -> Chunk {
        let mut c = self.spare.try_recv().unwrap_or_else(|_| Chunk {
            data: vec![0; CHUNK].into_boxed_slice(),
            len: 0,
        });
        c.len = 0;
        c
    }

    /// Hands `chunk` to the reader, waiting while the channel is full. `Err`: the reader is
    /// gone (it stopped reading, finished or failed).
    pub(crate) fn send(&self, chunk: Chunk) -> Result<(), ()> {
        self.tx.send(chunk).map_err(drop)
    }
}

/// The consumer's end: the chunks as one stream ([`Read`] and [`BufRead`]).
pub(crate) struct ChunkReader {
    rx: Receiver<Chunk>,
    spare: Sender<Chunk>,
    cur: Option<Chunk>,
    pos: usize,
}

impl BufRead for ChunkReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.cur.as_ref().is_none_or(|c| self.pos == c.len) {
            if let Some(done) = self.cur.take() {
                // The producer may be gone already; the buffer is then simply freed.
                let _ = self.spare.send(done);
            }
            match self.rx.recv() {
                Ok(c) => {
                    self.cur = Some(c);
                    self.pos = 0;
                }
                // The producer dropped its end: the stream is over.
                Err(_) => return Ok(&[]),
            }
        }
        Ok(self.cur.as_ref().map_or(&[], |c| &c.filled()[self.pos..]))
    }

    fn consume(&mut self, amount: usize) {
        let len = self.cur.as_ref().map_or(0, |c| c.len);
        self.pos = (self.pos + amount).min(len);
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = out.len().min(avail.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// Reads from `r` until `buf` is full or the stream ends; the count read.
///
/// # Errors
/// A read error of `r` (interruptions are retried).
pub(crate) fn fill(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_crosses_threads_whole_and_in_order() {
        let data: Vec<u8> = (0..3 * CHUNK + 123).map(|i| (i % 251) as u8).collect();
        let (tx, mut rx) = chunk_channel(2);
        let got = std::thread::scope(|s| {
            let reader = s.spawn(move || {
                let mut got = Vec::new();
                rx.read_to_end(&mut got).map(|_| got)
            });
            for part in data.chunks(CHUNK / 3 + 7) {
                let mut c = tx.chunk();
                c.space()[..part.len()].copy_from_slice(part);
                c.set_len(part.len());
                assert!(tx.send(c).is_ok());
            }
            drop(tx);
            reader.join()
        });
        assert!(matches!(got, Ok(Ok(ref g)) if *g == data));
    }

    #[test]
    fn buffers_are_reused_once_read() {
        let (tx, mut rx) = chunk_channel(2);
        let mut first_ptr = None;
        for byte in [7u8, 8] {
            let mut c = tx.chunk();
            c.space()[0] = byte;
            c.set_len(1);
            first_ptr.get_or_insert(c.space().as_ptr());
            assert!(tx.send(c).is_ok());
        }
        let mut b = [0u8; 2];
        // Reading into the second chunk hands the first back.
        assert_eq!(rx.read(&mut b).ok(), Some(1));
        assert_eq!(rx.read(&mut b[1..]).ok(), Some(1));
        assert_eq!(b, [7, 8]);
        assert_eq!(Some(tx.chunk().space().as_ptr()), first_ptr);
    }

    #[test]
    fn a_gone_reader_fails_the_send() {
        let (tx, rx) = chunk_channel(1);
        drop(rx);
        assert!(tx.send(tx.chunk()).is_err());
    }

    #[test]
    fn fill_reads_until_full_or_end() {
        let mut r = io::Read::chain(&[1u8, 2][..], &[3u8, 4, 5][..]);
        let mut buf = [0u8; 4];
        assert_eq!(fill(&mut r, &mut buf).ok(), Some(4));
        assert_eq!(buf, [1, 2, 3, 4]);
        assert_eq!(fill(&mut r, &mut buf).ok(), Some(1));
        assert_eq!(fill(&mut r, &mut buf).ok(), Some(0));
    }
}
