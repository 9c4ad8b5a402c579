//! A bearer-token realm for the distribution server's token auth.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Auth, TOKEN_ISSUER, TOKEN_SERVICE};

/// A bearer-token realm for [`Registry`](super::Registry): checks basic credentials and answers with an RS256
/// JWT (signed by `openssl`, its certificate in the `x5c` header) granting the requested
/// scopes to the one user; anonymous requests get a token granting nothing.
#[derive(Debug)]
pub struct TokenServer {
    /// `http://127.0.0.1:<port>/token`.
    pub realm: String,
    /// The certificate the registry trusts (PEM).
    pub cert: PathBuf,
    /// Tokens issued (for asserting reuse).
    pub issued: Arc<Mutex<u32>>,
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    addr: String,
    thread: Option<JoinHandle<()>>,
}

impl TokenServer {
    /// Starts a token server for `user`/`password`.
    ///
    /// # Panics
    /// The key cannot be made or the port bound.
    #[must_use]
    pub fn start(user: &str, password: &str) -> TokenServer {
        let dir = std::env::temp_dir().join(crate::unique_name("token"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create token dir: {e}"));
        let key = dir.join("key.pem");
        let cert = dir.join("cert.pem");
        super::self_signed(&key, &cert, "/CN=berth-test-token", &[]);
        let der = super::openssl(&[
            std::ffi::OsStr::new("x509"),
            std::ffi::OsStr::new("-outform"),
            std::ffi::OsStr::new("DER"),
            std::ffi::OsStr::new("-in"),
            cert.as_os_str(),
        ]);
        let x5c = b64(&der, false);
        let listener =
            TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind token server: {e}"));
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|e| panic!("token server address: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let issued = Arc::new(Mutex::new(0));
        let expected = format!(
            "Basic {}",
            b64(format!("{user}:{password}").as_bytes(), false)
        );
        let user = user.to_owned();
        let (s, n, k) = (stop.clone(), issued.clone(), key.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(conn) = conn {
                    answer_token(conn, &expected, &user, &x5c, &k, &n);
                }
            }
        });
        TokenServer {
            realm: format!("http://{addr}/token"),
            cert,
            issued,
            dir,
            stop,
            addr,
            thread: Some(thread),
        }
    }

    /// The registry auth that trusts this server.
    #[must_use]
    pub fn auth(&self) -> Auth {
        Auth::Token {
            realm: self.realm.clone(),
            cert: self.cert.clone(),
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn b64(bytes: &[u8], url: bool) -> String {
    const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let table = if url { URL } else { STD };
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(table[((n >> (18 - 6 * i)) & 63) as usize]));
        }
        if !url {
            for _ in chunk.len()..3 {
                out.push('=');
            }
        }
    }
    out
}

fn answer_token(
    conn: TcpStream,
    expected: &str,
    user: &str,
    x5c: &str,
    key: &Path,
    issued: &Mutex<u32>,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(mut reader) = conn.try_clone().map(BufReader::new) else {
        return;
    };
    let mut out = conn;
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
    let mut authorization = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("authorization")
        {
            authorization = Some(v.trim().to_owned());
        }
    }
    let (status, body) = match authorization.as_deref() {
        Some(a) if a != expected => (401, json!({"details": "wrong credentials"}).to_string()),
        a => {
            let granted = a.is_some();
            let access: Vec<Value> = query_values(&target, "scope")
                .iter()
                .filter(|_| granted)
                .filter_map(|s| {
                    let mut p = s.splitn(3, ':');
                    let (kind, name, actions) = (p.next()?, p.next()?, p.next()?);
                    Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
                })
                .collect();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let header = json!({"alg": "RS256", "typ": "JWT", "x5c": [x5c]});
            let claims = json!({
                "iss": TOKEN_ISSUER, "sub": if granted { user } else { "" }, "aud": TOKEN_SERVICE,
                "exp": now + 600, "nbf": now - 60, "iat": now, "jti": format!("{now}-{}", std::process::id()),
                "access": access,
            });
            let signing_input = format!(
                "{}.{}",
                b64(header.to_string().as_bytes(), true),
                b64(claims.to_string().as_bytes(), true)
            );
            let sig = sign(key, signing_input.as_bytes());
            if let Ok(mut n) = issued.lock() {
                *n += 1;
            }
            let token = format!("{signing_input}.{}", b64(&sig, true));
            (200, json!({"token": token, "expires_in": 600}).to_string())
        }
    };
    let _ = write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn sign(key: &Path, input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run openssl dgst: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    let mut sig = Vec::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_end(&mut sig);
    }
    let _ = child.wait();
    sig
}

fn query_values(target: &str, key: &str) -> Vec<String> {
    let Some((_, query)) = target.split_once('?') else {
        return Vec::new();
    };
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| percent_decode(v))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_values() {
        assert_eq!(b64(b"u:p", false), "dTpw");
        assert_eq!(b64(b"ab", false), "YWI=");
        assert_eq!(b64(b"ab", true), "YWI");
        assert_eq!(
            percent_decode("repository%3Aa%3Apull%2Cpush"),
            "repository:a:pull,push"
        );
    }
}
