//! Tar entry names and hard link targets: whatever the bytes, the cleaned path stays inside the
//! layer (no `..`, no empty or `/`-bearing component) and whiteouts name something in their own
//! directory.
#![no_main]

use image::unpack::path::{Action, classify, contain, link_target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ok = |p: &image::unpack::path::LayerPath| {
        p.components()
            .iter()
            .all(|c| !c.is_empty() && c != b"." && c != b".." && !c.contains(&b'/'))
    };
    let p = contain(data);
    assert!(ok(&p));
    if let Some(t) = link_target(data) {
        assert!(ok(&t));
    }
    match classify(p.clone()) {
        Action::Create(q) => assert_eq!(q, p),
        Action::Whiteout(q) => {
            assert!(ok(&q));
            assert_eq!(q.components().len(), p.components().len());
        }
        Action::Opaque(q) => {
            assert!(ok(&q));
            assert_eq!(q.components().len() + 1, p.components().len());
        }
        Action::Skip | Action::Invalid => {}
    }
});
