//! The busybox fixture image, made locally from Debian's `busybox-static` (no registry here).
//!
//! The rootfs holds `/bin/busybox`, one symlink per applet, `/etc/passwd` and `/etc/group` with
//! `root` and `berth` (1000:1000), and `/home/berth/greeting`, owned by 1000:1000 with mode 0400,
//! so only uid 1000 (or root) can read it. It is produced as a plain rootfs tarball (for
//! `podman import` and `docker import`) and as an OCI image-layout archive (for
//! `ctr images import`).

use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, chown, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use sha2::{Digest, Sha256};

/// Where Debian's `busybox-static` installs the binary.
const BUSYBOX: &str = "/bin/busybox";
/// Content of `/home/berth/greeting` in the image.
pub(crate) const GREETING: &str = "greeting-from-the-image";
/// The file only uid 1000 may read.
pub(crate) const GREETING_PATH: &str = "/home/berth/greeting";
/// The non-root user of the image.
pub(crate) const USER_ID: u32 = 1000;

const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Builds the rootfs under `dir/rootfs` and tars it to `dir/rootfs.tar`, which it returns.
pub(crate) fn rootfs_tar(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    build_rootfs(&rootfs).unwrap_or_else(|e| panic!("build busybox rootfs: {e}"));
    let tar = dir.join("rootfs.tar");
    let status = Command::new("tar")
        .args(["--numeric-owner", "--sort=name", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap_or_else(|e| panic!("run tar: {e}"));
    assert!(status.success(), "tar {}: {status}", rootfs.display());
    tar
}

fn build_rootfs(rootfs: &Path) -> io::Result<()> {
    let busybox = fs::read(BUSYBOX).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("{BUSYBOX} ({e}): install Debian's busybox-static"),
        )
    })?;
    // A dynamically linked busybox (Debian's `busybox`) would not run in an image without libc;
    // its PT_INTERP string sits near the start of the file.
    let head = &busybox[..busybox.len().min(4096)];
    if head.windows(8).any(|w| w == b"ld-linux") {
        return Err(io::Error::other(format!(
            "{BUSYBOX} is dynamically linked: install busybox-static"
        )));
    }
    for dir in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc",
        "root",
        "tmp",
        "home/berth",
    ] {
        fs::create_dir_all(rootfs.join(dir))?;
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    fs::write(rootfs.join("bin/busybox"), &busybox)?;
    fs::set_permissions(
        rootfs.join("bin/busybox"),
        fs::Permissions::from_mode(0o755),
    )?;

    let list = Command::new(BUSYBOX).arg("--list-full").output()?;
    if !list.status.success() {
        return Err(io::Error::other(format!(
            "{BUSYBOX} --list-full: {}",
            list.status
        )));
    }
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim().trim_start_matches('/');
        // Skip the binary itself, which would otherwise become a link to itself.
        if applet.is_empty() || applet == "bin/busybox" {
            continue;
        }
        let link = rootfs.join(applet);
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent)?;
        }
        if !link.exists() {
            symlink("/bin/busybox", &link)?;
        }
    }

    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n\
         berth:x:1000:1000:berth:/home/berth:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    fs::write(
        rootfs.join("etc/group"),
        "root:x:0:\nberth:x:1000:\nnogroup:x:65534:\n",
    )?;
    let greeting = rootfs.join(GREETING_PATH.trim_start_matches('/'));
    fs::write(&greeting, format!("{GREETING}\n"))?;
    fs::set_permissions(&greeting, fs::Permissions::from_mode(0o400))?;
    chown(&greeting, Some(USER_ID), Some(USER_ID))?;
    chown(rootfs.join("home/berth"), Some(USER_ID), Some(USER_ID))?;
    Ok(())
}

/// One image in an OCI archive: its reference and the user its config names.
pub(crate) struct OciImage<'a> {
    /// Full reference, e.g. `docker.io/berth-test/busybox:latest`.
    pub(crate) reference: &'a str,
    /// `config.User`, if any.
    pub(crate) user: Option<&'a str>,
}

/// Writes an OCI image layout holding `images` (all with the one uncompressed layer
/// `rootfs_tar`) under `dir/oci` and tars it to `dir/oci.tar`, which it returns.
pub(crate) fn oci_archive(dir: &Path, rootfs_tar: &Path, images: &[OciImage<'_>]) -> PathBuf {
    let layout = dir.join("oci");
    write_oci_layout(&layout, rootfs_tar, images)
        .unwrap_or_else(|e| panic!("write OCI layout {}: {e}", layout.display()));
    let archive = dir.join("oci.tar");
    let status = Command::new("tar")
        .args(["--numeric-owner", "--sort=name", "-C"])
        .arg(&layout)
        .arg("-cf")
        .arg(&archive)
        .arg(".")
        .status()
        .unwrap_or_else(|e| panic!("run tar: {e}"));
    assert!(status.success(), "tar {}: {status}", layout.display());
    archive
}

fn write_oci_layout(layout: &Path, rootfs_tar: &Path, images: &[OciImage<'_>]) -> io::Result<()> {
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs)?;
    let put = |bytes: &[u8]| -> io::Result<serde_json::Value> {
        let hex = format!("{:x}", Sha256::digest(bytes));
        fs::write(blobs.join(&hex), bytes)?;
        Ok(json!({ "digest": format!("sha256:{hex}"), "size": bytes.len() }))
    };
    let layer = put(&fs::read(rootfs_tar)?)?;
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let mut manifests = Vec::new();
    for image in images {
        let mut config = json!({ "Env": [PATH_ENV], "Cmd": ["sh"] });
        if let Some(user) = image.user {
            config["User"] = json!(user);
        }
        let config = json!({
            "architecture": arch,
            "os": "linux",
            "config": config,
            // Uncompressed layer: its diff id is its digest.
            "rootfs": { "type": "layers", "diff_ids": [layer["digest"]] },
        });
        let mut config_desc = put(&serde_json::to_vec(&config)?)?;
        config_desc["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
        let mut layer_desc = layer.clone();
        layer_desc["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar");
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_desc,
            "layers": [layer_desc],
        });
        let mut desc = put(&serde_json::to_vec(&manifest)?)?;
        desc["mediaType"] = json!("application/vnd.oci.image.manifest.v1+json");
        desc["platform"] = json!({ "architecture": arch, "os": "linux" });
        let tag = image
            .reference
            .rsplit_once(':')
            .map_or("latest", |(_, t)| t);
        desc["annotations"] = json!({
            "io.containerd.image.name": image.reference,
            "org.opencontainers.image.ref.name": tag,
        });
        manifests.push(desc);
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    fs::write(layout.join("index.json"), serde_json::to_vec(&index)?)?;
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    Ok(())
}
