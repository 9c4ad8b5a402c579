//! Identifiers: container ids (64 hex, Docker's 12-character short form), content digests,
//! object names, and timestamps as stored.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

/// Length of Docker's short id.
pub const SHORT_ID_LEN: usize = 12;

/// A container id: 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContainerId(String);

impl ContainerId {
    /// A fresh random id. Like Docker, ids whose short form is all decimal digits are skipped so
    /// that a short id is never mistaken for a number.
    pub fn generate() -> Result<Self> {
        loop {
            let id = random_hex()?;
            if !id[..SHORT_ID_LEN].bytes().all(|b| b.is_ascii_digit()) {
                return Ok(Self(id));
            }
        }
    }

    /// Parses a full 64-hex id.
    pub fn parse(s: &str) -> Result<Self> {
        if is_full_hex_id(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(EngineError::InvalidValue {
                what: "container id",
                value: s.to_owned(),
            })
        }
    }

    /// The full id.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Docker's 12-character short id.
    #[must_use]
    pub fn short(&self) -> &str {
        &self.0[..SHORT_ID_LEN]
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ContainerId {
    type Error = EngineError;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}

impl From<ContainerId> for String {
    fn from(id: ContainerId) -> Self {
        id.0
    }
}

/// `true` for exactly 64 lowercase hex digits.
#[must_use]
pub fn is_full_hex_id(s: &str) -> bool {
    s.len() == 64 && is_hex(s)
}

/// `true` for a non-empty string of lowercase hex digits (a possible id prefix).
#[must_use]
pub fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// 32 random bytes as 64 lowercase hex digits.
pub fn random_hex() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|source| EngineError::Random { source })?;
    Ok(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// A random number below `n` (n > 0), for generated names.
pub(crate) fn random_below(n: usize) -> Result<usize> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|source| EngineError::Random { source })?;
    // Modulo bias is irrelevant for picking a name.
    Ok((u64::from_le_bytes(bytes) % n.max(1) as u64) as usize)
}

/// A content digest `sha256:<64 hex>` naming a manifest, config or layer blob.
///
/// The `image` crate owns blob storage; the engine only records digests, so this type checks the
/// textual form and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    /// Parses `sha256:<64 lowercase hex>`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.strip_prefix("sha256:") {
            Some(hex) if is_full_hex_id(hex) => Ok(Self(s.to_owned())),
            _ => Err(EngineError::InvalidValue {
                what: "digest",
                value: s.to_owned(),
            }),
        }
    }

    /// `sha256:<hex>`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex part.
    #[must_use]
    pub fn hex(&self) -> &str {
        self.0.strip_prefix("sha256:").unwrap_or(&self.0)
    }

    /// The first 12 hex digits, as `docker images` shows an image id.
    #[must_use]
    pub fn short(&self) -> &str {
        &self.hex()[..SHORT_ID_LEN]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Digest {
    type Error = EngineError;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> Self {
        d.0
    }
}

/// Checks a container or volume name against Docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]+` and returns it
/// without the leading `/` Docker accepts (and shows in `inspect`).
pub fn validate_name<'a>(what: &'static str, name: &'a str) -> Result<&'a str> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let mut bytes = bare.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    let rest_ok = bare.len() >= 2
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if first_ok && rest_ok {
        Ok(bare)
    } else {
        Err(EngineError::InvalidName {
            what,
            name: name.to_owned(),
        })
    }
}

/// A point in time as the store keeps it: nanoseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    #[must_use]
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// Nanoseconds since the epoch.
    #[must_use]
    pub fn nanos(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (Docker's `Created` in lists).
    #[must_use]
    pub fn secs(self) -> i64 {
        self.0.div_euclid(1_000_000_000)
    }

    /// RFC 3339 in UTC with nanoseconds, as Docker's `inspect` prints times:
    /// `2024-05-01T12:00:00.123456789Z`.
    #[must_use]
    pub fn to_rfc3339(self) -> String {
        runtime::state::rfc3339_from_unix_nanos(self.0)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Self(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
            Err(e) => Self(-i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX)),
        }
    }
}

impl From<Timestamp> for SystemTime {
    fn from(t: Timestamp) -> Self {
        let d = Duration::from_nanos(t.0.unsigned_abs());
        if t.0 >= 0 {
            UNIX_EPOCH + d
        } else {
            UNIX_EPOCH - d
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_64_hex_and_short_is_not_numeric() {
        for _ in 0..200 {
            let id = ContainerId::generate().unwrap();
            assert!(is_full_hex_id(id.as_str()));
            assert_eq!(id.short().len(), 12);
            assert!(!id.short().bytes().all(|b| b.is_ascii_digit()));
        }
        assert_ne!(
            ContainerId::generate().unwrap(),
            ContainerId::generate().unwrap()
        );
    }

    #[test]
    fn id_parsing() {
        assert!(ContainerId::parse(&"a".repeat(64)).is_ok());
        assert!(ContainerId::parse(&"A".repeat(64)).is_err());
        assert!(ContainerId::parse(&"a".repeat(63)).is_err());
        assert!(ContainerId::parse(&"g".repeat(64)).is_err());
        assert!(is_hex("0af"));
        assert!(!is_hex(""));
        assert!(!is_hex("web"));
    }

    #[test]
    fn digests() {
        let d = Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
        assert_eq!(d.hex().len(), 64);
        assert_eq!(d.short(), "abababababab");
        assert!(Digest::parse(&"ab".repeat(32)).is_err());
        assert!(Digest::parse("sha512:00").is_err());
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"sha256:zz\"").is_err());
    }

    #[test]
    fn names_follow_docker() {
        for ok in ["web", "a1", "my_app.v2-x", "/web", "0abc"] {
            assert!(validate_name("container", ok).is_ok(), "{ok}");
        }
        assert_eq!(validate_name("container", "/web").unwrap(), "web");
        for bad in [
            "", "a", "/", "_web", "-web", ".web", "we b", "web/x", "wéb", "//web",
        ] {
            let e = validate_name("container", bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn timestamps_format_like_docker() {
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            Timestamp(1_714_564_800_123_456_789).to_rfc3339(),
            "2024-05-01T12:00:00.123456789Z"
        );
        assert_eq!(
            Timestamp(951_782_400 * 1_000_000_000).to_rfc3339(),
            "2000-02-29T00:00:00.000000000Z"
        );
        let now = Timestamp::now();
        assert_eq!(Timestamp::from(SystemTime::from(now)), now);
    }
}
