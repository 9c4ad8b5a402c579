use super::*;
use std::io::Write;

fn store() -> (tempfile::TempDir, ContentStore) {
    let dir = tempfile::Builder::new()
        .prefix(&testutil::unique_name("content"))
        .tempdir()
        .unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    (dir, store)
}

fn ingest_is_empty(store: &ContentStore) -> bool {
    fs::read_dir(store.ingest_dir()).unwrap().next().is_none()
}

#[test]
fn commit_names_the_blob_by_its_digest() {
    let (_dir, store) = store();
    let digest = Digest::of(b"hello");
    let got = store.write_blob(b"hello", Some(&digest)).unwrap();
    assert_eq!(got, digest);
    assert_eq!(store.info(&digest).unwrap().size, 5);
    assert_eq!(store.read(&digest, 100).unwrap(), b"hello");
    assert_eq!(store.walk().unwrap().len(), 1);
    assert!(ingest_is_empty(&store));
    assert!(matches!(
        store.read(&digest, 2),
        Err(ContentError::TooLarge { .. })
    ));
}

#[test]
fn bad_digest_names_nothing() {
    let (_dir, store) = store();
    let claimed = Digest::of(b"good bytes");
    let err = store.write_blob(b"evil bytes", Some(&claimed)).unwrap_err();
    assert!(matches!(err, ContentError::DigestMismatch { .. }), "{err}");
    assert!(!store.contains(&claimed));
    assert!(!store.contains(&Digest::of(b"evil bytes")));
    assert!(store.walk().unwrap().is_empty());
    assert!(ingest_is_empty(&store));
}

#[test]
fn wrong_size_names_nothing() {
    let (_dir, store) = store();
    let mut w = store.writer(None).unwrap();
    w.write_all(b"abc").unwrap();
    let err = w.commit(None, Some(4)).unwrap_err();
    assert!(matches!(err, ContentError::SizeMismatch { .. }), "{err}");
    assert!(store.walk().unwrap().is_empty());
    assert!(ingest_is_empty(&store));
}

#[test]
fn writer_refuses_more_than_its_limit() {
    let (_dir, store) = store();
    let mut w = store.writer(Some(3)).unwrap();
    assert!(w.write_all(b"abcd").is_err());
    drop(w);
    assert!(ingest_is_empty(&store));
}

#[test]
fn partial_blobs_are_invisible_and_dropped_writers_leave_nothing() {
    let (_dir, store) = store();
    let mut w = store.writer(None).unwrap();
    w.write_all(b"partial").unwrap();
    assert!(store.walk().unwrap().is_empty());
    assert!(!store.contains(&Digest::of(b"partial")));
    drop(w);
    assert!(ingest_is_empty(&store));
}

#[test]
fn concurrent_writers_of_one_blob_all_succeed() {
    let (_dir, store) = store();
    let data: Vec<u8> = (0..200_000u32).flat_map(u32::to_le_bytes).collect();
    let digest = Digest::of(&data);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                let mut w = store.writer(None).unwrap();
                for chunk in data.chunks(4096) {
                    w.write_all(chunk).unwrap();
                }
                assert_eq!(
                    w.commit(Some(&digest), Some(data.len() as u64)).unwrap(),
                    digest
                );
            });
        }
    });
    assert_eq!(store.read(&digest, u64::MAX).unwrap(), data);
    assert_eq!(store.walk().unwrap().len(), 1);
    assert!(ingest_is_empty(&store));
}

#[test]
fn delete_is_idempotent_and_missing_is_not_found() {
    let (_dir, store) = store();
    let d = store.write_blob(b"x", None).unwrap();
    store.delete(&d).unwrap();
    store.delete(&d).unwrap();
    assert!(matches!(store.info(&d), Err(ContentError::NotFound { .. })));
    assert!(matches!(
        store.open_blob(&d),
        Err(ContentError::NotFound { .. })
    ));
}
