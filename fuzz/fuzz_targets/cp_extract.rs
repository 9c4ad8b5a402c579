//! `berth cp -` input: whatever tar stream arrives, extraction into a directory writes nothing
//! outside it, through `..` names, absolute names, symlinks planted by earlier entries or hard
//! links to outside targets.
#![no_main]

use std::os::fd::AsFd;
use std::path::Path;

use libfuzzer_sys::fuzz_target;

/// Every path below `dir` (not following symlinks).
fn tree(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        out.push(e.path());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            tree(&e.path(), out);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(tmp) = tempfile::tempdir() else { return };
    let (dest, outside) = (tmp.path().join("dest"), tmp.path().join("outside"));
    for d in [&dest, &outside] {
        if std::fs::create_dir(d).is_err() {
            return;
        }
    }
    let _ = std::fs::write(outside.join("sentinel"), b"keep");
    let Ok(fd) = std::fs::File::open(&dest) else {
        return;
    };
    let _ = engine::extract_into(fd.as_fd(), data, false);
    let mut seen = Vec::new();
    tree(&outside, &mut seen);
    assert_eq!(
        seen,
        [outside.join("sentinel")],
        "extraction wrote outside its directory"
    );
    assert_eq!(
        std::fs::read(outside.join("sentinel")).ok().as_deref(),
        Some(&b"keep"[..])
    );
    let mut top = Vec::new();
    tree(tmp.path(), &mut top);
    assert!(
        top.iter()
            .all(|p| p.starts_with(&dest) || p.starts_with(&outside))
    );
});
