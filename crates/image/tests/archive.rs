//! Save, load, commit's layer writer and garbage collection against real stores (root: layers
//! are unpacked with their owners and overlay xattrs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TempRoot;
use image::{ArchiveError, ContentError, Digest, ImageStore, SaveImage};
use std::collections::BTreeSet;
use testutil::images::{ArchiveImage, ArchiveMembers, ArchiveStyle, Layer};

fn two_layer_image() -> ArchiveImage {
    ArchiveImage::new(
        "two:1",
        vec![
            Layer::new().dir("etc/").file("etc/a", b"a\n").finish(),
            Layer::new()
                .whiteout("etc/a")
                .file("etc/b", b"b\n")
                .finish(),
        ],
        &["true"],
    )
}

fn blobs(store: &ImageStore) -> BTreeSet<Digest> {
    store
        .content()
        .walk()
        .unwrap()
        .into_iter()
        .map(|i| i.digest)
        .collect()
}

#[test]
fn save_then_load_keeps_every_digest_and_name() {
    if !testutil::require_root() {
        return;
    }
    let (ra, rb) = (TempRoot::new("archive-a"), TempRoot::new("archive-b"));
    let a = ImageStore::open(ra.path()).unwrap();
    let b = ImageStore::open(rb.path()).unwrap();
    let archive = ArchiveMembers::of(&[two_layer_image()], ArchiveStyle::DockerLegacy).tar();
    let loaded = a.load(archive.as_slice()).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].names, ["two:1"]);

    let mut saved = Vec::new();
    a.save(
        &[SaveImage {
            manifest: loaded[0].manifest.clone(),
            names: vec!["two:1".into(), "two:2".into()],
        }],
        &mut saved,
    )
    .unwrap();
    let again = b.load(saved.as_slice()).unwrap();
    assert_eq!(again.len(), 1, "one image, two names: {again:?}");
    assert_eq!(
        again[0].manifest, loaded[0].manifest,
        "manifest digest kept"
    );
    assert_eq!(again[0].config, loaded[0].config);
    assert_eq!(again[0].names, ["two:1", "two:2"]);
    assert_eq!(blobs(&a), blobs(&b));
}

#[test]
fn load_refuses_a_blob_whose_bytes_do_not_match_its_name() {
    if !testutil::require_root() {
        return;
    }
    let r = TempRoot::new("archive-bad");
    let store = ImageStore::open(r.path()).unwrap();
    let mut m = ArchiveMembers::of(&[two_layer_image()], ArchiveStyle::Docker25);
    let config = m.paths("blobs/sha256/")[0].clone();
    m.get_mut(&config)[0] ^= 1;
    let err = store.load(m.tar().as_slice()).unwrap_err();
    match &err {
        ArchiveError::Member {
            path,
            source: ContentError::DigestMismatch { .. },
        } => assert_eq!(*path, config),
        other => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn garbage_collection_keeps_what_roots_reach_and_removes_the_rest() {
    if !testutil::require_root() {
        return;
    }
    let r = TempRoot::new("archive-gc");
    let store = ImageStore::open(r.path()).unwrap();
    let archive = ArchiveMembers::of(&[two_layer_image()], ArchiveStyle::Docker25).tar();
    let loaded = store.load(archive.as_slice()).unwrap();
    let stray = store.content().write_blob(b"stray", None).unwrap();
    let layers = std::fs::read_dir(store.layers().root()).unwrap().count();
    assert_eq!(layers, 2);

    let kept = blobs(&store);
    let collected = store
        .collect_garbage(std::slice::from_ref(&loaded[0].manifest))
        .unwrap();
    assert_eq!(collected.blobs, [stray]);
    assert_eq!(collected.bytes, 5);
    assert!(collected.layers.is_empty());
    assert_eq!(blobs(&store).len(), kept.len() - 1);

    let all = store.collect_garbage(&[]).unwrap();
    assert_eq!(all.layers.len(), 2);
    assert!(blobs(&store).is_empty());
    assert_eq!(std::fs::read_dir(store.layers().root()).unwrap().count(), 0);
}

#[test]
fn diff_of_an_upper_dir_uses_the_image_layer_whiteout_form() {
    if !testutil::require_root() {
        return;
    }
    let r = TempRoot::new("archive-diff");
    let upper = r.path().join("upper");
    std::fs::create_dir_all(upper.join("opaque/sub")).unwrap();
    std::fs::write(upper.join("opaque/sub/f"), "f").unwrap();
    rustix::fs::setxattr(
        upper.join("opaque"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        upper.join("gone"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
    std::fs::write(upper.join("file"), "data").unwrap();
    std::fs::hard_link(upper.join("file"), upper.join("file-link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", upper.join("abs-link")).unwrap();

    let mut tar = tar::Builder::new(Vec::new());
    image::commit::write_diff(&upper, &mut tar).unwrap();
    let bytes = tar.into_inner().unwrap();
    let mut ar = tar::Archive::new(bytes.as_slice());
    let entries: Vec<(String, tar::EntryType, String)> = ar
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.display().to_string())
                .unwrap_or_default();
            (
                e.path().unwrap().display().to_string(),
                e.header().entry_type(),
                link,
            )
        })
        .collect();
    let find = |p: &str| entries.iter().find(|(n, _, _)| n == p).cloned();
    assert_eq!(find(".wh.gone").map(|e| e.1), Some(tar::EntryType::Regular));
    assert!(find("gone").is_none(), "{entries:?}");
    assert!(find("opaque/.wh..wh..opq").is_some(), "{entries:?}");
    assert_eq!(
        find("opaque/sub/f").map(|e| e.1),
        Some(tar::EntryType::Regular)
    );
    assert_eq!(
        find("file-link").map(|e| (e.1, e.2)),
        Some((tar::EntryType::Link, "file".into()))
    );
    assert_eq!(
        find("abs-link").map(|e| (e.1, e.2)),
        Some((tar::EntryType::Symlink, "/etc/passwd".into()))
    );
}
