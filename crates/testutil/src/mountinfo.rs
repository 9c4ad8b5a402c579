//! Parsing of /proc/self/mountinfo.

use std::path::PathBuf;

/// One mount of /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Mount id.
    pub id: u32,
    /// Id of the parent mount.
    pub parent: u32,
    /// Mount point, unescaped.
    pub point: PathBuf,
    /// Per-mount options.
    pub opts: String,
    /// Filesystem type.
    pub fstype: String,
    /// Mount source, unescaped.
    pub source: String,
}

/// Undoes mountinfo's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` backslash).
#[must_use]
pub fn unescape_octal(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(oct) = b.get(i + 1..i + 4)
            && oct.iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((oct[0] - b'0') * 64 + (oct[1] - b'0') * 8 + (oct[2] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses the text of a mountinfo file; malformed lines are skipped.
#[must_use]
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let mut post = post.split(' ');
            Some(MountEntry {
                id: pre.first()?.parse().ok()?,
                parent: pre.get(1)?.parse().ok()?,
                point: PathBuf::from(unescape_octal(pre.get(4)?)),
                opts: (*pre.get(5)?).to_owned(),
                fstype: post.next()?.to_owned(),
                source: unescape_octal(post.next().unwrap_or("")),
            })
        })
        .collect()
}

/// The mounts of this process's mount namespace.
///
/// # Panics
/// When /proc/self/mountinfo cannot be read.
#[must_use]
pub fn mounts() -> Vec<MountEntry> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_else(|e| panic!("read /proc/self/mountinfo: {e}"));
    parse_mountinfo(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_with_optional_fields_and_escapes() {
        let text = "22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw\n\
                    90 22 0:44 / /tmp/a\\040b\\134c rw,relatime - tmpfs my\\040src rw,size=4k\n\
                    garbage\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].id, 22);
        assert_eq!(m[0].point, PathBuf::from("/proc"));
        assert_eq!(m[0].fstype, "proc");
        assert_eq!(m[1].parent, 22);
        assert_eq!(m[1].point, PathBuf::from("/tmp/a b\\c"));
        assert_eq!(m[1].source, "my src");
        assert_eq!(m[1].opts, "rw,relatime");
    }

    #[test]
    fn unescape_leaves_non_octal_alone() {
        assert_eq!(unescape_octal("a\\9b\\04"), "a\\9b\\04");
        assert_eq!(unescape_octal("\\011x"), "\tx");
    }
}
