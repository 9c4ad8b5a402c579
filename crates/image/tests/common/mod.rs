//! Shared helpers for the image crate's privileged tests: temp roots and layer tars built in
//! the test, including hostile ones the `tar` crate's safe setters refuse to write.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use image::{DiffId, Digest};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A `berth-test-` temp directory removed on drop (after detaching mounts under it).
pub struct TempRoot {
    pub dir: tempfile::TempDir,
}

impl TempRoot {
    pub fn new(tag: &str) -> TempRoot {
        testutil::janitor();
        let dir = tempfile::Builder::new()
            .prefix(&testutil::unique_name(tag))
            .tempdir()
            .unwrap();
        TempRoot { dir }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A layer tar under construction.
pub struct Tar {
    b: tar::Builder<Vec<u8>>,
}

fn raw_header(kind: tar::EntryType, name: &[u8], mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h.set_size(0);
    let old = h.as_old_mut();
    old.name = [0; 100];
    old.name[..name.len()].copy_from_slice(name);
    h
}

impl Tar {
    pub fn new() -> Tar {
        Tar {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn append(&mut self, mut h: tar::Header, data: &[u8]) -> &mut Self {
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    /// A regular file; the name is written raw (may hold `..` or start with `/`).
    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.file_with(name, data, 0o644, 0, 0)
    }

    pub fn file_with(
        &mut self,
        name: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        let mut h = raw_header(tar::EntryType::Regular, name.as_bytes(), mode);
        h.set_uid(uid);
        h.set_gid(gid);
        self.append(h, data)
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.append(
            raw_header(tar::EntryType::Directory, name.as_bytes(), 0o755),
            b"",
        )
    }

    pub fn link(&mut self, kind: tar::EntryType, name: &str, target: &str) -> &mut Self {
        let mut h = raw_header(kind, name.as_bytes(), 0o777);
        let old = h.as_old_mut();
        old.linkname = [0; 100];
        old.linkname[..target.len()].copy_from_slice(target.as_bytes());
        self.append(h, b"")
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.link(tar::EntryType::Symlink, name, target)
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.link(tar::EntryType::Link, name, target)
    }

    pub fn node(
        &mut self,
        kind: tar::EntryType,
        name: &str,
        major: u32,
        minor: u32,
        mode: u32,
    ) -> &mut Self {
        let mut h = raw_header(kind, name.as_bytes(), mode);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.append(h, b"")
    }

    /// A file with PAX xattrs.
    pub fn file_xattr(&mut self, name: &str, data: &[u8], xattrs: &[(&str, &[u8])]) -> &mut Self {
        let exts: Vec<(String, &[u8])> = xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
            .collect();
        self.b
            .append_pax_extensions(exts.iter().map(|(k, v)| (k.as_str(), *v)))
            .unwrap();
        self.file(name, data)
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()));
        b.into_inner().unwrap()
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn diff_id(tar: &[u8]) -> DiffId {
    DiffId(Digest::of(tar))
}

/// A host path that must never be created by a test: `/tmp/<unique>`.
pub fn host_canary(tag: &str) -> PathBuf {
    let p = PathBuf::from("/tmp").join(testutil::unique_name(tag));
    assert!(!p.exists());
    p
}

/// The error chain on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
