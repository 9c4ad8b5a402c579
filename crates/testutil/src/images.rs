//! Synthetic image fixtures built in memory: layer tars (with whiteouts, opaque directories and
//! deliberately hostile entries whose names the `tar` crate would refuse to write) and image
//! archives in the three shapes `docker load` reads — Docker 25+ (OCI layout plus
//! `manifest.json`), the legacy docker-archive (`<id>/layer.tar`, `<hex>.json`) and a bare OCI
//! layout — plus [`ArchiveMembers`] for archives broken on purpose.

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::io::Write;

/// `sha256:<hex>` of `bytes`.
#[must_use]
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(bytes))
}

/// The lowercase hex sha256 of `bytes`.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Gzip of `bytes`.
///
/// # Panics
/// Never in practice (writes to memory).
#[must_use]
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes)
        .and_then(|()| gz.finish())
        .unwrap_or_else(|e| panic!("gzip to memory: {e}"))
}

/// A busybox rootfs ([`crate::busybox_rootfs`] under `dir/rootfs`) as a tarball `dir/busybox.tar`,
/// written with the `tar` crate: GNU tar fails with "file changed as we read it" when another
/// test hard-links the shared busybox binary meanwhile (its ctime moves).
///
/// # Panics
/// The tree or the tarball cannot be written.
#[must_use]
pub fn busybox_tarball(dir: &std::path::Path) -> std::path::PathBuf {
    let rootfs = dir.join("rootfs");
    crate::busybox_rootfs(&rootfs);
    let path = dir.join("busybox.tar");
    tar_dir(&rootfs, &path);
    path
}

/// Writes the tree `dir` as the tarball `path` (symlinks kept as links), with the `tar` crate.
///
/// # Panics
/// The tree or the tarball cannot be read or written.
pub fn tar_dir(dir: &std::path::Path, path: &std::path::Path) {
    let file =
        std::fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    tar.follow_symlinks(false);
    tar.append_dir_all(".", dir)
        .and_then(|()| tar.into_inner())
        .and_then(|mut w| w.flush())
        .unwrap_or_else(|e| panic!("tar {}: {e}", dir.display()));
}

/// A layer tar built entry by entry. Names are written into the header verbatim (so `../x`
/// and `/abs` are possible), which limits them to 100 bytes.
#[derive(Debug, Default, Clone)]
pub struct Layer {
    out: Vec<u8>,
}

impl Layer {
    /// An empty layer.
    #[must_use]
    pub fn new() -> Layer {
        Layer::default()
    }

    fn entry(
        mut self,
        name: &str,
        kind: tar::EntryType,
        mode: u32,
        link: &str,
        data: &[u8],
    ) -> Self {
        let mut h = tar::Header::new_gnu();
        {
            let gnu = h
                .as_gnu_mut()
                .unwrap_or_else(|| panic!("a new GNU header is GNU"));
            assert!(
                name.len() <= 100 && link.len() <= 100,
                "fixture names fit 100 bytes"
            );
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.out.extend_from_slice(h.as_bytes());
        self.out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    /// A directory.
    #[must_use]
    pub fn dir(self, name: &str) -> Self {
        self.entry(name, tar::EntryType::Directory, 0o755, "", b"")
    }

    /// A regular file with `content`.
    #[must_use]
    pub fn file(self, name: &str, content: &[u8]) -> Self {
        self.entry(name, tar::EntryType::Regular, 0o644, "", content)
    }

    /// An executable file.
    #[must_use]
    pub fn exe(self, name: &str, content: &[u8]) -> Self {
        self.entry(name, tar::EntryType::Regular, 0o755, "", content)
    }

    /// A symlink to `target` (stored verbatim).
    #[must_use]
    pub fn symlink(self, name: &str, target: &str) -> Self {
        self.entry(name, tar::EntryType::Symlink, 0o777, target, b"")
    }

    /// A hard link to `target` (stored verbatim).
    #[must_use]
    pub fn hardlink(self, name: &str, target: &str) -> Self {
        self.entry(name, tar::EntryType::Link, 0o644, target, b"")
    }

    /// A whiteout deleting `path` of the layers below (`dir/.wh.name`).
    #[must_use]
    pub fn whiteout(self, path: &str) -> Self {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let wh = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&wh, b"")
    }

    /// Marks `dir` opaque: nothing of the layers below shows through it.
    #[must_use]
    pub fn opaque(self, dir: &str) -> Self {
        self.file(&format!("{dir}/.wh..wh..opq"), b"")
    }

    /// The tar bytes (with the end-of-archive blocks).
    #[must_use]
    pub fn finish(mut self) -> Vec<u8> {
        self.out.extend(std::iter::repeat_n(0u8, 1024));
        self.out
    }
}

/// One image of a synthetic archive.
#[derive(Debug, Clone)]
pub struct ArchiveImage {
    /// `repo:tag`, if named.
    pub name: Option<String>,
    /// Uncompressed layer tars, bottom first.
    pub layers: Vec<Vec<u8>>,
    /// Store the layers gzip-compressed.
    pub gzip: bool,
    /// The config's `config` object (Cmd, Env, Entrypoint...).
    pub config: Value,
}

impl ArchiveImage {
    /// A named image of `layers` with `Cmd` set.
    #[must_use]
    pub fn new(name: &str, layers: Vec<Vec<u8>>, cmd: &[&str]) -> ArchiveImage {
        ArchiveImage {
            name: Some(name.to_owned()),
            layers,
            gzip: true,
            config: json!({"Cmd": cmd}),
        }
    }

    /// The config blob.
    #[must_use]
    pub fn config_blob(&self) -> Vec<u8> {
        let diff_ids: Vec<String> = self.layers.iter().map(|l| sha256(l)).collect();
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        let history: Vec<Value> = self
            .layers
            .iter()
            .enumerate()
            .map(|(i, _)| json!({"created": "2024-01-01T00:00:00Z", "created_by": format!("layer {i}")}))
            .collect();
        serde_json::to_vec(&json!({
            "architecture": arch,
            "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "config": self.config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        }))
        .unwrap_or_else(|e| panic!("serialize config: {e}"))
    }

    fn layer_blobs(&self) -> Vec<Vec<u8>> {
        self.layers
            .iter()
            .map(|l| if self.gzip { gzip(l) } else { l.clone() })
            .collect()
    }
}

/// The shape of an archive, as the tools that write them do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveStyle {
    /// Docker 25+: `blobs/sha256/*`, `index.json`, `oci-layout`, `manifest.json`,
    /// `repositories`.
    Docker25,
    /// Docker before 25 (and `skopeo copy docker-archive:`): `<hex>.json` configs,
    /// `<id>/layer.tar` layers, `manifest.json`.
    DockerLegacy,
    /// A bare OCI image layout (`skopeo copy oci-archive:`): no `manifest.json`.
    Oci,
}

/// Archive members (path, bytes), to be tarred in order; tests may edit them before
/// [`ArchiveMembers::tar`] to break an archive on purpose.
#[derive(Debug, Clone, Default)]
pub struct ArchiveMembers(pub Vec<(String, Vec<u8>)>);

impl ArchiveMembers {
    /// The archive of `images` in `style`.
    #[must_use]
    pub fn of(images: &[ArchiveImage], style: ArchiveStyle) -> ArchiveMembers {
        let mut m = ArchiveMembers::default();
        let mut index = Vec::new();
        let mut docker = Vec::new();
        for img in images {
            let config = img.config_blob();
            let blobs = img.layer_blobs();
            let (config_path, layer_paths): (String, Vec<String>) = match style {
                ArchiveStyle::DockerLegacy => (
                    format!("{}.json", hex(&config)),
                    img.layers
                        .iter()
                        .map(|l| format!("{}/layer.tar", hex(l)))
                        .collect(),
                ),
                _ => (
                    format!("blobs/sha256/{}", hex(&config)),
                    blobs
                        .iter()
                        .map(|b| format!("blobs/sha256/{}", hex(b)))
                        .collect(),
                ),
            };
            m.push(&config_path, config.clone());
            for (p, b) in layer_paths.iter().zip(&blobs) {
                m.push(p, b.clone());
            }
            if style != ArchiveStyle::DockerLegacy {
                let layer_type = if img.gzip {
                    "application/vnd.oci.image.layer.v1.tar+gzip"
                } else {
                    "application/vnd.oci.image.layer.v1.tar"
                };
                let manifest = serde_json::to_vec(&json!({
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
                    "layers": blobs.iter().map(|b| json!({"mediaType": layer_type, "digest": sha256(b), "size": b.len()})).collect::<Vec<_>>(),
                }))
                .unwrap_or_else(|e| panic!("serialize manifest: {e}"));
                let mut d = json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": sha256(&manifest),
                    "size": manifest.len(),
                });
                if let Some(n) = &img.name {
                    d["annotations"] = json!({
                        "io.containerd.image.name": n,
                        "org.opencontainers.image.ref.name": n.rsplit_once(':').map_or("latest", |(_, t)| t),
                    });
                }
                index.push(d);
                m.push(&format!("blobs/sha256/{}", hex(&manifest)), manifest);
            }
            docker.push(json!({
                "Config": config_path,
                "RepoTags": img.name.iter().collect::<Vec<_>>(),
                "Layers": layer_paths,
            }));
        }
        if style != ArchiveStyle::DockerLegacy {
            m.push("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec());
            let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": index});
            m.push(
                "index.json",
                serde_json::to_vec(&index).unwrap_or_else(|e| panic!("serialize index: {e}")),
            );
        }
        if style != ArchiveStyle::Oci {
            m.push(
                "manifest.json",
                serde_json::to_vec(&docker)
                    .unwrap_or_else(|e| panic!("serialize manifest.json: {e}")),
            );
        }
        m
    }

    /// Appends a member.
    pub fn push(&mut self, path: &str, bytes: Vec<u8>) {
        self.0.push((path.to_owned(), bytes));
    }

    /// The member at `path`.
    ///
    /// # Panics
    /// No such member.
    pub fn get_mut(&mut self, path: &str) -> &mut Vec<u8> {
        &mut self
            .0
            .iter_mut()
            .find(|(p, _)| p == path)
            .unwrap_or_else(|| panic!("archive has no member {path}"))
            .1
    }

    /// Paths of the members starting with `prefix`.
    #[must_use]
    pub fn paths(&self, prefix: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// The archive as a tar.
    #[must_use]
    pub fn tar(&self) -> Vec<u8> {
        let mut layer = Layer::new();
        for (p, b) in &self.0 {
            layer = layer.file(p, b);
        }
        layer.finish()
    }
}

/// A docker-archive (Docker 25 style) of `images`.
#[must_use]
pub fn docker_archive(images: &[ArchiveImage]) -> Vec<u8> {
    ArchiveMembers::of(images, ArchiveStyle::Docker25).tar()
}

/// Three layers exercising overlay conversion: a base with `/etc/{a,b}`, `/keep/x`,
/// `/opaque/{old1,old2}`; a middle layer deleting `/etc/a`, making `/opaque` opaque with a new
/// `new` file; a top layer adding `/etc/a2`, a symlink `/etc/link -> b` and `/etc/c` with a
/// hard link `/etc/c-link`. `busybox` (the static binary's bytes) goes in the base as
/// `/bin/busybox` so the image can run commands.
#[must_use]
pub fn multilayer_layers(busybox: &[u8]) -> Vec<Vec<u8>> {
    let base = Layer::new()
        .dir("bin/")
        .exe("bin/busybox", busybox)
        .symlink("bin/sh", "busybox")
        .dir("etc/")
        .file("etc/a", b"a\n")
        .file("etc/b", b"b\n")
        .dir("keep/")
        .file("keep/x", b"x\n")
        .dir("opaque/")
        .file("opaque/old1", b"1\n")
        .file("opaque/old2", b"2\n")
        .dir("tmp/")
        .dir("proc/")
        .dir("sys/")
        .dir("dev/")
        .finish();
    let middle = Layer::new()
        .whiteout("etc/a")
        .dir("opaque/")
        .opaque("opaque")
        .file("opaque/new", b"new\n")
        .finish();
    let top = Layer::new()
        .file("etc/a2", b"a2\n")
        .symlink("etc/link", "b")
        .file("etc/c", b"c\n")
        .hardlink("etc/c-link", "etc/c")
        .finish();
    vec![base, middle, top]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_valid_tars_with_verbatim_names() {
        let t = Layer::new().file("../x", b"hi").whiteout("a/b").finish();
        let mut ar = tar::Archive::new(t.as_slice());
        let names: Vec<String> = ar
            .entries()
            .expect("entries")
            .map(|e| String::from_utf8_lossy(&e.expect("entry").path_bytes()).into_owned())
            .collect();
        assert_eq!(names, ["../x", "a/.wh.b"]);
    }

    #[test]
    fn archives_name_blobs_by_digest() {
        let img = ArchiveImage::new(
            "x:1",
            vec![Layer::new().file("f", b"f").finish()],
            &["true"],
        );
        let m = ArchiveMembers::of(&[img], ArchiveStyle::Docker25);
        for (p, b) in &m.0 {
            if let Some(h) = p.strip_prefix("blobs/sha256/") {
                assert_eq!(h, hex(b));
            }
        }
        assert!(m.paths("").contains(&"manifest.json".to_owned()));
    }
}
