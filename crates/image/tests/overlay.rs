//! Images end to end on the real kernel (root): multi-layer whiteouts through an overlay mount,
//! ~60 layers, and an imported busybox rootfs run by berth-runtime.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Tar, TempRoot, diff_id, gzip};
use image::media::{OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST};
use image::{Digest, ImageStore, ImportOptions, Platform, mount_overlay};
use serde_json::json;
use std::fs;
use std::path::Path;
use testutil::MountGuard;

/// Stores `layers` (plain tars, bottom first) gzip-compressed with a config and manifest.
fn store_image(store: &ImageStore, layers: &[Vec<u8>]) -> Digest {
    let mut descs = Vec::new();
    let mut diffs = Vec::new();
    for tar in layers {
        let gz = gzip(tar);
        let d = store.content().write_blob(&gz, None).unwrap();
        descs.push(json!({"mediaType": OCI_LAYER_GZIP, "digest": d.to_string(), "size": gz.len()}));
        diffs.push(diff_id(tar).to_string());
    }
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diffs}
    }))
    .unwrap();
    let cd = store.content().write_blob(&config, None).unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cd.to_string(), "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    store.content().write_blob(&manifest, None).unwrap()
}

fn mounted(target: &Path) -> bool {
    testutil::mounts().iter().any(|m| m.point == target)
}

#[test]
fn whiteouts_and_opaque_dirs_show_through_overlay() {
    if !testutil::require_root() {
        return;
    }
    let root = TempRoot::new("overlay-wh");
    let store = ImageStore::open(root.path()).unwrap();
    let base = Tar::new()
        .dir("etc")
        .file("etc/keep", b"base")
        .file("etc/gone", b"base")
        .dir("cache")
        .file("cache/old1", b"1")
        .file("cache/old2", b"2")
        .file("top-gone", b"x")
        .finish();
    let mid = Tar::new()
        .file("etc/keep", b"mid")
        .file("mid-only", b"m")
        .finish();
    let top = Tar::new()
        .file("etc/.wh.gone", b"")
        .file(".wh.top-gone", b"")
        .file("cache/.wh..wh..opq", b"")
        .file("cache/new", b"fresh")
        .finish();
    let digest = store_image(&store, &[base, mid, top]);
    let image = store.resolve(&digest, &Platform::host()).unwrap();
    assert_eq!(image.chain_ids.len(), 3);
    let m = store.prepare("wh", &image).unwrap();
    // The image's init layer (mount points) on top, then its layers, topmost first.
    let top_layer = store.layers().diff_path(&image.chain_ids[2]);
    assert_eq!(
        m.lowerdirs[0],
        top_layer.with_file_name(image::initlayer::DIR)
    );
    assert_eq!(m.lowerdirs[1], top_layer);
    assert!(m.lowerdirs[0].join("proc").is_dir());
    let target = root.path().join("merged");
    fs::create_dir(&target).unwrap();
    mount_overlay(&m, &target).unwrap();
    let guard = MountGuard::adopt(&target);
    assert_eq!(fs::read(target.join("etc/keep")).unwrap(), b"mid");
    assert_eq!(fs::read(target.join("mid-only")).unwrap(), b"m");
    assert!(!target.join("etc/gone").exists());
    assert!(!target.join("top-gone").exists());
    let mut cache: Vec<String> = fs::read_dir(target.join("cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    cache.sort();
    assert_eq!(cache, ["new"]);
    // Writes land in the container's upper dir, never in a shared layer.
    fs::write(target.join("etc/keep"), b"changed").unwrap();
    assert_eq!(fs::read(m.upperdir.join("etc/keep")).unwrap(), b"changed");
    let base_keep = store
        .layers()
        .diff_path(&image.chain_ids[0])
        .join("etc/keep");
    assert_eq!(fs::read(base_keep).unwrap(), b"base");
    image::unmount(&target, false).unwrap();
    drop(guard);
    assert!(!mounted(&target));
    store.snapshots().remove("wh").unwrap();
    assert!(!m.upperdir.exists());
}

#[test]
fn sixty_layers_mount() {
    if !testutil::require_root() {
        return;
    }
    let root = TempRoot::new("overlay-60");
    let store = ImageStore::open(root.path()).unwrap();
    let layers: Vec<Vec<u8>> = (0..60)
        .map(|i| {
            Tar::new()
                .file(&format!("layer-{i:02}"), format!("{i}").as_bytes())
                .file("which", format!("{i}").as_bytes())
                .finish()
        })
        .collect();
    let digest = store_image(&store, &layers);
    let image = store.resolve(&digest, &Platform::host()).unwrap();
    let m = store.prepare("many", &image).unwrap();
    assert!(
        m.options().len() > 4096,
        "the test must exceed a page of mount data"
    );
    let target = root.path().join("merged");
    fs::create_dir(&target).unwrap();
    mount_overlay(&m, &target).unwrap();
    let _guard = MountGuard::adopt(&target);
    for i in 0..60 {
        assert_eq!(
            fs::read(target.join(format!("layer-{i:02}"))).unwrap(),
            format!("{i}").as_bytes()
        );
    }
    assert_eq!(fs::read(target.join("which")).unwrap(), b"59");
}

#[test]
fn imported_busybox_runs_under_berth_runtime() {
    if !testutil::require_root() {
        return;
    }
    let root = TempRoot::new("overlay-busybox");
    let store = ImageStore::open(root.path()).unwrap();
    let tree = root.path().join("tree");
    testutil::busybox_rootfs(&tree);
    fs::write(tree.join("etc/berth-image"), b"from the image\n").unwrap();
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", &tree).unwrap();
    let tar = b.into_inner().unwrap();
    let opts = ImportOptions {
        gzip: true,
        entrypoint: Some(vec!["/bin/sh".into()]),
        env: vec!["PATH=/bin".into()],
        ..ImportOptions::default()
    };
    let imported = store.import_rootfs(&tar[..], &opts).unwrap();
    assert_eq!(imported.diff_id, diff_id(&tar));
    let image = store
        .resolve(&imported.manifest, &Platform::host())
        .unwrap();
    assert_eq!(image.config_digest, imported.config);
    let entry = image.config.config().as_ref().unwrap().entrypoint().clone();
    assert_eq!(entry, Some(vec!["/bin/sh".to_owned()]));
    let m = store.prepare("bb", &image).unwrap();

    let bundle = testutil::Bundle::busybox(&["/bin/busybox", "cat", "/etc/berth-image"]);
    // The overlay hides the bundle's own busybox copy: what runs is the image.
    mount_overlay(&m, &bundle.rootfs()).unwrap();
    let guard = MountGuard::adopt(bundle.rootfs());
    let rt = testutil::Runtime::berth();
    let id = testutil::unique_name("bb");
    let _c = rt.guard(&id);
    let out = rt.run(&bundle, &id);
    assert!(out.status.success(), "{}", testutil::describe(&out));
    assert_eq!(out.stdout, b"from the image\n");
    let mut t = bundle.spec().clone();
    t["process"]["args"] = json!(["/bin/busybox", "true"]);
    let mut bundle = bundle;
    bundle.edit(|s| *s = t);
    let id2 = testutil::unique_name("bb");
    let _c2 = rt.guard(&id2);
    let out = rt.run(&bundle, &id2);
    assert!(out.status.success(), "{}", testutil::describe(&out));
    drop(guard);
    assert!(!mounted(&bundle.rootfs()));
}
