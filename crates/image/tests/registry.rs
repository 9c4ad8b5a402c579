//! The registry client against Debian's `docker-registry` on 127.0.0.1, through the library:
//! chunked uploads (tiny chunks, so every blob goes up in several `PATCH`es), a pull of the
//! pushed image into a second store with equal digests, and the tag list.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TempRoot;
use image::registry::{
    Client, LayerState, PullOptions, PushOptions, PushState, Reference, RegistryConfig, pull, push,
    tags,
};
use image::{ImageStore, ImportOptions, Platform};
use std::sync::Mutex;
use testutil::images::Layer;
use testutil::registry::{Registry, tools_present};

#[test]
fn chunked_push_then_pull_keeps_digests() {
    if !testutil::require_root() || !tools_present() {
        return;
    }
    let root = TempRoot::new("registry-chunks");
    let store = ImageStore::open(&root.path().join("a")).unwrap();
    // Incompressible content: the layer blob is about 300 KiB, five 64 KiB chunks and a tail.
    let mut noise = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open("/dev/urandom").unwrap(), 300_000),
        &mut noise,
    )
    .unwrap();
    let tar = Layer::new().file("noise", &noise).finish();
    let imported = store
        .import_rootfs(
            &tar[..],
            &ImportOptions {
                gzip: true,
                ..ImportOptions::default()
            },
        )
        .unwrap();
    let reg = Registry::start("lib-registry");
    let reference = Reference::parse(&format!("{}/chunks:1", reg.addr)).unwrap();
    let client = Client::new(RegistryConfig::default());
    let session = client.session(&reference, None, "pull,push", &[]).unwrap();
    let states = Mutex::new(Vec::new());
    let opts = PushOptions {
        tag: Some("1".into()),
        chunk_size: 64 << 10,
        ..PushOptions::default()
    };
    let pushed = push(&store, &session, &imported.manifest, &opts, &|p| {
        states.lock().unwrap().push(p.state.clone());
    })
    .unwrap();
    assert_eq!(pushed.digest, imported.manifest);
    let states = states.into_inner().unwrap();
    assert!(
        states.iter().filter(|s| **s == PushState::Pushing).count() > 5,
        "chunks reported: {states:?}"
    );
    assert_eq!(tags(&session).unwrap(), ["1"]);

    let raw = testutil::registry::skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/chunks:1", reg.addr),
    ]);
    assert!(raw.status.success(), "{}", testutil::describe(&raw));
    assert_eq!(
        testutil::images::sha256(&raw.stdout),
        imported.manifest.to_string()
    );

    let other = ImageStore::open(&root.path().join("b")).unwrap();
    let pull_session = client.session(&reference, None, "pull", &[]).unwrap();
    let done = Mutex::new(0);
    let pulled = pull(
        &other,
        &pull_session,
        &reference,
        &PullOptions {
            platform: Platform::host(),
        },
        &|p| {
            if p.state == LayerState::Complete {
                *done.lock().unwrap() += 1;
            }
        },
    )
    .unwrap();
    assert_eq!(pulled.manifest, imported.manifest);
    assert_eq!(*done.lock().unwrap(), 1);
    let image = other.resolve(&pulled.manifest, &Platform::host()).unwrap();
    let layer = other.layers().diff_path(&image.chain_ids[0]).join("noise");
    assert_eq!(std::fs::read(layer).unwrap(), noise);
}
