//! `docker load` input: whatever the bytes, loading an archive into a scratch store returns
//! (an error or images) without panicking, and after collecting with no roots the store holds
//! no blob and no layer — a rejected archive leaves nothing behind.
#![no_main]

use image::ImageStore;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn store() -> &'static ImageStore {
    static STORE: OnceLock<ImageStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("berth-fuzz-load-{}", std::process::id()));
        ImageStore::open(&root).unwrap_or_else(|e| panic!("open scratch store: {e}"))
    })
}

fuzz_target!(|data: &[u8]| {
    let store = store();
    let _ = store.load(data);
    let collected = store.collect_garbage(&[]);
    assert!(collected.is_ok(), "collect: {collected:?}");
    let left = store.content().walk().map(|b| b.len()).unwrap_or(0);
    assert_eq!(left, 0, "blobs left after collecting everything");
});
