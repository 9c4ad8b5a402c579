//! Pure handling of tar entry paths: containment in the layer root, hard link targets, and the
//! mapping of AUFS-style whiteouts to overlay form.
//!
//! Policy (docs/design/image.md): entry *names* are contained the way Docker and containerd do
//! it, by cleaning them as if rooted at `/`: a leading `/` is dropped, `.` is skipped and `..`
//! never climbs above the layer root (`../../etc/x` is the layer's `etc/x`). Hard link
//! *targets* that climb out with `..` are rejected: they can only be hostile. Symlink targets
//! are data and are not touched here; the extractor never resolves them.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// The AUFS whiteout prefix used by OCI and Docker layers.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The name whose presence makes its directory opaque.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// A path inside a layer: non-empty components, none of them `.` or `..`, no `/` in any.
/// The empty path is the layer root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerPath(Vec<Vec<u8>>);

impl LayerPath {
    /// The components, outermost first.
    #[must_use]
    pub fn components(&self) -> &[Vec<u8>] {
        &self.0
    }

    /// Whether this is the layer root.
    #[must_use]
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The parent's components and the last name; `None` for the root.
    #[must_use]
    pub fn split_last(&self) -> Option<(&[Vec<u8>], &OsStr)> {
        self.0
            .split_last()
            .map(|(name, parent)| (parent, OsStr::from_bytes(name)))
    }

    /// The path with `/` between components, for messages.
    #[must_use]
    pub fn display(&self) -> String {
        let joined: Vec<String> = self
            .0
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        format!("/{}", joined.join("/"))
    }
}

/// Cleans a tar entry name into a path contained in the layer (see the module policy).
#[must_use]
pub fn contain(raw: &[u8]) -> LayerPath {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            name => out.push(name.to_vec()),
        }
    }
    LayerPath(out)
}

/// Cleans a hard link target; `None` when `..` would climb above the layer root.
#[must_use]
pub fn link_target(raw: &[u8]) -> Option<LayerPath> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop()?;
            }
            name => out.push(name.to_vec()),
        }
    }
    Some(LayerPath(out))
}

/// What a (contained) entry name means for overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// An ordinary entry at this path.
    Create(LayerPath),
    /// `.wh.<name>`: `<name>` in that directory is deleted; overlay wants a 0:0 character
    /// device named `<name>`.
    Whiteout(LayerPath),
    /// `.wh..wh..opq`: the directory hides everything below it from lower layers; overlay wants
    /// the `trusted.overlay.opaque=y` xattr on it.
    Opaque(LayerPath),
    /// Other `.wh..wh.*` AUFS metadata (hard link directories): meaningless to overlay.
    Skip,
    /// A whiteout that names nothing usable (`.wh.`, `.wh..`, `.wh...`).
    Invalid,
}

/// Classifies a contained entry path.
#[must_use]
pub fn classify(path: LayerPath) -> Action {
    let Some((last, parent)) = path.0.split_last() else {
        return Action::Create(path);
    };
    if last.as_slice() == OPAQUE_MARKER.as_bytes() {
        return Action::Opaque(LayerPath(parent.to_vec()));
    }
    if last.starts_with(b".wh..wh.") {
        return Action::Skip;
    }
    if let Some(name) = last.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
        if name.is_empty() || name == b"." || name == b".." {
            return Action::Invalid;
        }
        let mut target = parent.to_vec();
        target.push(name.to_vec());
        return Action::Whiteout(LayerPath(target));
    }
    Action::Create(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        contain(s.as_bytes()).display()
    }

    #[test]
    fn names_are_contained_in_the_layer() {
        assert_eq!(p("etc/passwd"), "/etc/passwd");
        assert_eq!(p("./etc/passwd"), "/etc/passwd");
        assert_eq!(p("/etc/passwd"), "/etc/passwd");
        assert_eq!(p("../../../etc/passwd"), "/etc/passwd");
        assert_eq!(p("a/b/../../../../c"), "/c");
        assert_eq!(p("a//b/./c/"), "/a/b/c");
        assert_eq!(p("./"), "/");
        assert!(contain(b"..").is_root());
        assert!(contain(b"").is_root());
    }

    #[test]
    fn escaping_link_targets_are_rejected() {
        assert!(link_target(b"../etc/passwd").is_none());
        assert!(link_target(b"a/../../etc/passwd").is_none());
        assert_eq!(
            link_target(b"/etc/passwd").map(|l| l.display()),
            Some("/etc/passwd".to_owned())
        );
        assert_eq!(
            link_target(b"a/../b").map(|l| l.display()),
            Some("/b".to_owned())
        );
    }

    #[test]
    fn whiteouts_map_to_overlay_form() {
        assert_eq!(
            classify(contain(b"etc/.wh.hosts")),
            Action::Whiteout(contain(b"etc/hosts"))
        );
        assert_eq!(
            classify(contain(b".wh.top")),
            Action::Whiteout(contain(b"top"))
        );
        assert_eq!(
            classify(contain(b"var/cache/.wh..wh..opq")),
            Action::Opaque(contain(b"var/cache"))
        );
        assert_eq!(
            classify(contain(b".wh..wh..opq")),
            Action::Opaque(contain(b""))
        );
        assert_eq!(classify(contain(b"x/.wh..wh.plnk")), Action::Skip);
        assert_eq!(classify(contain(b"x/.wh.")), Action::Invalid);
        assert_eq!(classify(contain(b"x/.wh..")), Action::Invalid);
        assert_eq!(
            classify(contain(b"x/.whiteout")),
            Action::Create(contain(b"x/.whiteout"))
        );
        // A whiteout cannot name something outside its own directory.
        assert_eq!(
            classify(contain(b"a/.wh.../b")),
            Action::Create(contain(b"a/.wh.../b"))
        );
    }
}
