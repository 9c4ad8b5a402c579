//! A scripted, hostile distribution API and a proxy that cuts a transfer where a test wants.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{OciImage, free_port};
use crate::images::sha256;

/// How a [`FakeRegistry`] answers one path.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Each request takes the next of these replies; once they are used up, the last one
    /// answers every request (a flaky server that recovers).
    Sequence(Arc<Mutex<std::collections::VecDeque<Reply>>>, Box<Reply>),
    /// 200 with these bytes (and a media type).
    Bytes {
        /// `Content-Type`.
        content_type: String,
        /// The body.
        body: Vec<u8>,
    },
    /// A status with an empty body.
    Status(u16),
    /// 200 without a length, then bytes forever.
    Endless,
    /// 200 with the full `Content-Length` of `body`, sends `sent` bytes of it, then nothing
    /// (the connection stays open).
    Stall {
        /// The whole body.
        body: Vec<u8>,
        /// Bytes sent before stalling.
        sent: usize,
    },
    /// As `Stall`, but closes the connection (a server killed mid-transfer).
    Cut {
        /// The whole body.
        body: Vec<u8>,
        /// Bytes sent before closing.
        sent: usize,
    },
}

type Routes = Arc<Mutex<HashMap<String, Reply>>>;

/// A scripted distribution API on 127.0.0.1: `GET /v2/` answers 200; `/v2/<name>/manifests/<ref>`
/// and `/v2/<name>/blobs/<digest>` answer from the routes; anything else 404.
#[derive(Debug)]
pub struct FakeRegistry {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    routes: Routes,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Paths requested, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl FakeRegistry {
    /// Starts serving on a free port.
    #[must_use]
    pub fn start() -> FakeRegistry {
        FakeRegistry::start_on(&format!("127.0.0.1:{}", free_port()))
    }

    /// Starts serving on `addr` (to come back on the same port).
    ///
    /// # Panics
    /// The address cannot be bound.
    #[must_use]
    pub fn start_on(addr: &str) -> FakeRegistry {
        let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let routes: Routes = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let (r, s, q) = (routes.clone(), stop.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (r, s, q) = (r.clone(), s.clone(), q.clone());
                std::thread::spawn(move || serve(conn, &r, &s, &q));
            }
        });
        FakeRegistry {
            addr: addr.to_owned(),
            routes,
            stop,
            thread: Some(thread),
            requests,
        }
    }

    /// Answers `path` (`/v2/x/blobs/sha256:…`) with `reply`.
    pub fn route(&self, path: &str, reply: Reply) {
        if let Ok(mut r) = self.routes.lock() {
            r.insert(path.to_owned(), reply);
        }
    }

    /// Answers `path` with `first`, one request each, then with `then` for good.
    pub fn route_sequence(&self, path: &str, first: Vec<Reply>, then: Reply) {
        self.route(
            path,
            Reply::Sequence(Arc::new(Mutex::new(first.into())), Box::new(then)),
        );
    }

    /// Serves `img` as `<repo>:<tag>` (manifest by tag and digest, every blob).
    pub fn serve_image(&self, repo: &str, tag: &str, img: &OciImage) {
        let manifest = Reply::Bytes {
            content_type: "application/vnd.oci.image.manifest.v1+json".into(),
            body: img.manifest.clone(),
        };
        self.route(&format!("/v2/{repo}/manifests/{tag}"), manifest.clone());
        self.route(&format!("/v2/{repo}/manifests/{}", img.digest()), manifest);
        for (d, b) in img.blobs() {
            self.route(
                &format!("/v2/{repo}/blobs/{d}"),
                Reply::Bytes {
                    content_type: "application/octet-stream".into(),
                    body: b,
                },
            );
        }
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop.
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, routes: &Routes, stop: &AtomicBool, requests: &Mutex<Vec<String>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut reader) = conn.try_clone().map(BufReader::new) else {
        return;
    };
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || stop.load(Ordering::Relaxed) {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let path = parts.next().unwrap_or("").to_owned();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" || h == "\n" {
                break;
            }
        }
        if let Ok(mut q) = requests.lock() {
            q.push(format!("{method} {path}"));
        }
        let head = method == "HEAD";
        let reply = if path == "/v2/" {
            Some(Reply::Bytes {
                content_type: "application/json".into(),
                body: b"{}".to_vec(),
            })
        } else {
            routes.lock().ok().and_then(|r| r.get(&path).cloned())
        };
        let reply = match reply {
            Some(Reply::Sequence(queue, last)) => {
                let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                Some(next.unwrap_or(*last))
            }
            other => other,
        };
        let keep = match reply {
            Some(Reply::Sequence(..)) => {
                respond(&mut out, 500, "text/plain", b"nested sequence", head)
            }
            None => respond(
                &mut out,
                404,
                "application/json",
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
                head,
            ),
            Some(Reply::Status(code)) => respond(&mut out, code, "text/plain", b"", head),
            Some(Reply::Bytes { content_type, body }) => {
                let digest = sha256(&body);
                let _ = write!(
                    out,
                    "HTTP/1.1 200 OK\r\nDocker-Content-Digest: {digest}\r\n"
                );
                respond(&mut out, 200, &content_type, &body, head)
            }
            Some(Reply::Endless) => {
                let _ = write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
                );
                let chunk = vec![0x1fu8; 64 << 10];
                while !stop.load(Ordering::Relaxed) && out.write_all(&chunk).is_ok() {}
                false
            }
            Some(Reply::Stall { body, sent }) => {
                send_partial(&mut out, &body, sent);
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                false
            }
            Some(Reply::Cut { body, sent }) => {
                send_partial(&mut out, &body, sent);
                let _ = out.shutdown(std::net::Shutdown::Both);
                false
            }
        };
        if !keep {
            return;
        }
    }
}

/// A 200 announcing all of `body` but carrying only its first `sent` bytes.
fn send_partial(out: &mut TcpStream, body: &[u8], sent: usize) {
    let _ = write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let _ = out.write_all(&body[..sent.min(body.len())]);
    let _ = out.flush();
}

/// Writes the rest of a response (a 200's status line was already written by the caller).
fn respond(out: &mut TcpStream, code: u16, content_type: &str, body: &[u8], head: bool) -> bool {
    if code != 200 {
        let _ = write!(out, "HTTP/1.1 {code} Status\r\n");
    }
    let _ = write!(
        out,
        "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    if !head {
        let _ = out.write_all(body);
    }
    out.flush().is_ok()
}

/// A TCP proxy on 127.0.0.1 in front of `upstream` that, once `after` bytes of the response to
/// a request containing `needle` (a blob digest) went through, runs `cut` once (the test kills
/// the registry there) and drops that connection: a registry dying mid-layer, exactly where
/// the test wants it. Later connections are forwarded as usual.
#[derive(Debug)]
pub struct CuttingProxy {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

type Cut = Arc<Mutex<Option<Box<dyn FnOnce() + Send>>>>;

impl CuttingProxy {
    /// Starts the proxy.
    ///
    /// # Panics
    /// No port can be bound.
    #[must_use]
    pub fn start(
        upstream: &str,
        needle: &str,
        after: usize,
        cut: Box<dyn FnOnce() + Send>,
    ) -> CuttingProxy {
        let listener =
            TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind proxy: {e}"));
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|e| panic!("proxy address: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let cut: Cut = Arc::new(Mutex::new(Some(cut)));
        let (s, upstream, needle) = (stop.clone(), upstream.to_owned(), needle.to_owned());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue; // the registry is down: the client sees its connection close
                };
                proxy_pair(client, server, needle.clone(), after, cut.clone());
            }
        });
        CuttingProxy {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

fn proxy_pair(client: TcpStream, server: TcpStream, needle: String, after: usize, cut: Cut) {
    let armed = Arc::new(AtomicBool::new(false));
    let (Ok(mut c_in), Ok(mut s_out)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let a = armed.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        while let Ok(n) = c_in.read(&mut buf) {
            if n == 0 {
                break;
            }
            if String::from_utf8_lossy(&buf[..n]).contains(&needle) {
                a.store(true, Ordering::Relaxed);
            }
            if s_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = s_out.shutdown(std::net::Shutdown::Write);
    });
    std::thread::spawn(move || {
        let (mut s_in, mut c_out) = (server, client);
        let mut buf = vec![0u8; 16 << 10];
        let mut sent = 0;
        while let Ok(n) = s_in.read(&mut buf) {
            if n == 0 || c_out.write_all(&buf[..n]).is_err() {
                break;
            }
            if armed.load(Ordering::Relaxed) {
                sent += n;
                let fire = cut
                    .lock()
                    .ok()
                    .and_then(|mut c| if sent >= after { c.take() } else { None });
                if let Some(f) = fire {
                    f();
                    let _ = c_out.shutdown(std::net::Shutdown::Both);
                    let _ = s_in.shutdown(std::net::Shutdown::Both);
                    break;
                }
            }
        }
        let _ = c_out.shutdown(std::net::Shutdown::Write);
    });
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
