//! Layer unpack on the real filesystem (root): hostile layers, metadata, whiteouts, formats.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Tar, TempRoot, chain, diff_id, gzip, host_canary};
use image::media::{OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD};
use image::{ChainId, LayerStore, UnpackError, Unpacked};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

fn store(root: &TempRoot) -> LayerStore {
    LayerStore::open(root.path().join("layers")).unwrap()
}

/// Nothing but complete layers under `layers/`: no staging leftovers.
fn only_layers(layers: &LayerStore) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(layers.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names.iter().all(|n| !n.starts_with('.')),
        "leftovers: {names:?}"
    );
    names
}

fn unpack(layers: &LayerStore, tar: &[u8]) -> Result<(ChainId, Unpacked), UnpackError> {
    layers.unpack(tar, OCI_LAYER, None, &diff_id(tar))
}

#[test]
fn dotdot_and_absolute_entries_are_contained() {
    if !testutil::require_root() {
        return;
    }
    let root = TempRoot::new("unpack-dotdot");
    let layers = store(&root);
    let a = host_canary("dotdot");
    let b = host_canary("abs");
    let an = a.file_name().unwrap().to_str().unwrap();
    let tar = Tar::new()
        .file(&format!("../../../../../../../../tmp/{an}"), b"x")
        .file(&b.to_string_lossy(), b"y")
        .finish();
    let (chain, how) = unpack(&layers, &tar).unwrap();
    assert_eq!(how, Unpacked::Created);
    let diff = layers.diff_path(&chain);
    assert_eq!(fs::read(diff.join("tmp").join(an)).unwrap(), b"x");
    assert_eq!(
        fs::read(diff.join(b.strip_prefix("/").unwrap())).unwrap(),
        b"y"
    );
    assert!(!a.exists() && !b.exists(), "wrote outside the layer");
}

#[test]
fn file_under_a_symlink_to_root_is_refused() {
    if !testutil::require_root() {
        return;
    }
    let root = TempRoot::new("unpack-symroot");
    let layers = store(&root);
    for link in ["/", "../../../../../../../.."] {
        let canary = host_canary("through-symlink");
        let tar = Tar::new()
            .symlink("escape", link)
            .file(&format!("escape{}", canary.display()), b"owned")
            .finish();
        let err = unpack(&layers, &tar).unwrap_err();
        assert!(
            matches!(err, UnpackError::NotADirectory { .. }),
            "{}",
            chain(&err)
        );
        assert!(!canary.exists(), "wrote through a symlink");
        assert!(only_layers(&layers).is_empty());
    }
}

#[test]
fn hard_links_out_of_the_layer_are_refused() {
    if !testutil::require_root() {
        return;
    }
    let root = TempRoot::new("unpack-hardlink");
    let layers = store(&root);
    let before = fs::metadata("/etc/passwd").unwrap().nlink();
    for target in [
        "/etc/passwd",
        "../../../../../../../etc/passwd",
        "etc/passwd",
    ] {
        let tar = Tar::new().hardlink("passwd", target).finish();
        let err = unpack(&layers, &tar).unwrap_err();
        assert!(
            matches!(
                err,
                UnpackError::LinkTarget { .. } | UnpackError::LinkEscapes { .. }
            ),
            "{target}: {}",
            chain(&err)
        );
    }
    // A link through a symlinked directory is refused too.
    let tar = Tar::new()
        .symlink("etc", "/etc")
        .hardlink("passwd", "etc/passwd")
        .finish();
    let err = unpack(&layers, &tar).unwrap_err();
    assert!(
        matches!(err, UnpackError::NotADirectory { .. }),
        "{}",
        chain(&err)
    );
    assert_eq!(fs::metadata("/etc/passwd").unwrap().nlink(), before);
    assert!(only_layers(&layers).is_empty());
}

#[test]
fn directory_replaces_a_symlink_of_the_same_name() {
    if !testutil::require_root() {
        return;
    }
    let root = TempRoot::new("unpack-symdir");
    let layers = store(&root);
    let canary = host_canary("symdir");
    let name = canary.file_name().unwrap().to_str().unwrap();
    let tar = Tar::new()
        .symlink("d", "/tmp")
        .dir("d")
        .file(&format!("d/{name}"), b"inside")
        .finish();
    let (chain, _) = unpack(&layers, &tar).unwrap();
    let d = layers.diff_path(&chain).join("d");
    assert!(fs::symlink_metadata(&d).unwrap().is_dir());
    assert_eq!(fs::read(d.join(name)).unwrap(), b"inside");
    assert!(!canary.exists());
}

#[test]
fn entries_after_a_replaced_directory_land_in_the_new_one() {
    if !testutil::require_root() {
        return;
    }
    let root = TempRoot::new("unpack-redir");
    let layers = store(&root);
    // `a` is entered, replaced by a file, made a directory again and entered again: the
    // extractor keeps its last directory open, which must not outlive what the layer did to it.
    let big = vec![7u8; 700 << 10];
    let tar = Tar::new()
        .dir("a")
        .dir("a/b")
        .file("a/b/old", b"old")
        .file("a", b"now a file")
        .dir("a")
        .file("a/new", &big)
        .dir("a/b")
        .file("a/b/x", b"x")
        .file("a/b/x", b"x again")
        .symlink("a/b/x", "new")
        .finish();
    let (chain, _) = unpack(&layers, &tar).unwrap();
    let a = layers.diff_path(&chain).join("a");
    assert!(fs::symlink_metadata(&a).unwrap().is_dir());
    assert_eq!(fs::read(a.join("new")).unwrap(), big);
    assert!(!a.join("b/old").exists());
    assert_eq!(
        fs::read_link(a.join("b/x")).unwrap(),
        Path::new("new"),
        "the last entry of a name wins"
    );
}

#[test]
fn truncated_gzip_and_wrong_diff_id_name_nothing() {
    if !testutil::require_root() {
        return;
    }
    let root = TempRoot::new("unpack-trunc");
    let layers = store(&root);
    let big: Vec<u8> = (0..300_000u32)
        .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
        .collect();
    let tar = Tar::new().file("a", &big).file("b", b"b").finish();
    let gz = gzip(&tar);
    let cut = &gz[..gz.len() / 2];
    let err = layers
        .unpack(cut, OCI_LAYER_GZIP, None, &diff_id(&tar))
        .unwrap_err();
    assert!(matches!(err, UnpackError::Read { .. }), "{}", chain(&err));
    // Only the trailer (CRC and size) missing.
    let err = layers
        .unpack(&gz[..gz.len() - 4], OCI_LAYER_GZIP, None, &diff_id(&tar))
        .unwrap_err();
    assert!(matches!(err, UnpackError::Read { .. }), "{}", chain(&err));
    // A truncated plain tar (cut at an entry boundary) is caught by its DiffID.
    let err = layers
        .unpack(&tar[..1024], OCI_LAYER, None, &diff_id(&tar))
        .unwrap_err();
    assert!(
        matches!(
            err,
            UnpackError::DiffIdMismatch { .. } | UnpackError::Read { .. }
        ),
        "{}",
        chain(&err)
    );
    let other = diff_id(b"something else");
    let err = layers
        .unpack(&tar[..], OCI_LAYER, None, &other)
        .unwrap_err();
    assert!(
        matches!(err, UnpackError::DiffIdMismatch { .. }),
        "{}",
        chain(&err)
    );
    let err = layers.unpack(
        &tar[..],
        "application/vnd.oci.image.layer.v1.tar+bzip2",
        None,
        &other,
    );
    assert!(matches!(err, Err(UnpackError::MediaType { .. })));
    assert!(only_layers(&layers).is_empty());
    assert!(!layers.contains(&ChainId::of(None, &diff_id(&tar))));
}

#[test]
fn gzip_zstd_and_plain_layers_unpack_and_the_bytes_decide() {
    if !testutil::require_root() {
        return;
    }
    let root = TempRoot::new("unpack-formats");
    let layers = store(&root);
    let tar = Tar::new()
        .dir("etc")
        .file("etc/os-release", b"ID=berth\n")
        .finish();
    let zst = zstd::encode_all(&tar[..], 3).unwrap();
    for (i, (bytes, mt)) in [
        (gzip(&tar), OCI_LAYER_GZIP),
        (zst, OCI_LAYER_ZSTD),
        (tar.clone(), OCI_LAYER),
        // Mislabelled: gzip bytes under the plain media type.
        (gzip(&tar), OCI_LAYER),
    ]
    .into_iter()
    .enumerate()
    {
        let (chain, how) = layers.unpack(&bytes[..], mt, None, &diff_id(&tar)).unwrap();
        assert_eq!(
            how,
            if i == 0 {
                Unpacked::Created
            } else {
                Unpacked::AlreadyPresent
            }
        );
        let p = layers.diff_path(&chain).join("etc/os-release");
        assert_eq!(fs::read(p).unwrap(), b"ID=berth\n");
        if i == 0 {
            layers.remove(&chain).unwrap();
            let (_, how) = layers.unpack(&bytes[..], mt, None, &diff_id(&tar)).unwrap();
            assert_eq!(how, Unpacked::Created);
        }
    }
}

#[test]
fn metadata_devices_links_and_xattrs_are_preserved() {
    if !testutil::require_root() {
        return;
    }
    let root = TempRoot::new("unpack-meta");
    let layers = store(&root);
    let tar = Tar::new()
        .dir("bin")
        .file_with("bin/su", b"#!", 0o4755, 1000, 1001)
        .hardlink("bin/su2", "bin/su")
        .symlink("bin/sh", "/bin/busybox")
        .node(tar::EntryType::Char, "null", 1, 3, 0o666)
        .node(tar::EntryType::Block, "loop9", 7, 9, 0o660)
        .node(tar::EntryType::Fifo, "fifo", 0, 0, 0o600)
        .file_xattr(
            "caps",
            b"",
            &[("user.berth", b"v"), ("trusted.overlay.redirect", b"/x")],
        )
        .finish();
    let (chain, _) = unpack(&layers, &tar).unwrap();
    let d = layers.diff_path(&chain);
    let su = fs::metadata(d.join("bin/su")).unwrap();
    assert_eq!(
        (su.mode() & 0o7777, su.uid(), su.gid()),
        (0o4755, 1000, 1001)
    );
    assert_eq!(su.mtime(), 1_600_000_000);
    assert_eq!(su.nlink(), 2);
    assert_eq!(fs::metadata(d.join("bin/su2")).unwrap().ino(), su.ino());
    assert_eq!(
        fs::read_link(d.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert_eq!(
        fs::symlink_metadata(d.join("bin/sh")).unwrap().mtime(),
        1_600_000_000
    );
    assert_eq!(fs::metadata(d.join("bin")).unwrap().mtime(), 1_600_000_000);
    let null = fs::metadata(d.join("null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(
        (null.rdev(), null.mode() & 0o7777),
        (rustix::fs::makedev(1, 3), 0o666)
    );
    let lp = fs::metadata(d.join("loop9")).unwrap();
    assert!(lp.file_type().is_block_device());
    assert_eq!(lp.rdev(), rustix::fs::makedev(7, 9));
    assert!(fs::metadata(d.join("fifo")).unwrap().file_type().is_fifo());
    let mut buf = [0u8; 16];
    let n = rustix::fs::getxattr(d.join("caps"), "user.berth", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"v");
    // Overlay's own xattrs are berth's to set, never a layer's.
    assert!(
        rustix::fs::getxattr(d.join("caps"), "trusted.overlay.redirect", &mut buf[..]).is_err()
    );
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    if !testutil::require_root() {
        return;
    }
    let root = TempRoot::new("unpack-wh");
    let layers = store(&root);
    let tar = Tar::new()
        .dir("etc")
        .file("etc/.wh.motd", b"")
        .file("opq/.wh..wh..opq", b"")
        .file("opq/new", b"n")
        .file(".wh..wh.plnk", b"")
        .finish();
    let (chain, _) = unpack(&layers, &tar).unwrap();
    let d = layers.diff_path(&chain);
    let wh = fs::symlink_metadata(d.join("etc/motd")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!((wh.rdev(), wh.uid(), wh.gid()), (0, 0, 0));
    assert!(!d.join("etc/.wh.motd").exists());
    let mut buf = [0u8; 4];
    let n = rustix::fs::getxattr(d.join("opq"), image::unpack::OPAQUE_XATTR, &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"y");
    assert!(!d.join("opq/.wh..wh..opq").exists());
    assert!(!d.join(".wh..wh.plnk").exists());
    let bad = Tar::new().file("x/.wh.", b"").finish();
    assert!(matches!(
        unpack(&layers, &bad),
        Err(UnpackError::BadWhiteout { .. })
    ));
}

#[test]
fn concurrent_unpacks_of_one_layer_agree() {
    if !testutil::require_root() {
        return;
    }
    let root = TempRoot::new("unpack-race");
    let layers = store(&root);
    let mut t = Tar::new();
    for i in 0..200 {
        t.file(&format!("d{}/f{i}", i % 10), format!("{i}").as_bytes());
    }
    let tar = gzip(&t.finish());
    let plain_id = {
        let mut d = flate2::read::GzDecoder::new(&tar[..]);
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut d, &mut v).unwrap();
        diff_id(&v)
    };
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|_| {
                s.spawn(|| {
                    layers
                        .unpack(&tar[..], OCI_LAYER_GZIP, None, &plain_id)
                        .unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.iter().all(|(c, _)| *c == results[0].0));
    assert!(results.iter().any(|(_, h)| *h == Unpacked::Created));
    assert_eq!(only_layers(&layers).len(), 1);
    let d = layers.diff_path(&results[0].0);
    assert_eq!(fs::read(d.join("d7/f197")).unwrap(), b"197");
}
