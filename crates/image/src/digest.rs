//! Content identifiers: [`Digest`] (`sha256:<hex>`), the [`DiffId`] of an uncompressed layer and
//! the [`ChainId`] naming an unpacked layer stack, plus a [`Digester`] that hashes as bytes pass.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

/// Why a string is not a digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    /// The algorithm is not `sha256` (the only one berth stores).
    #[error("digest {value:?}: unsupported algorithm (only sha256)")]
    Algorithm {
        /// The string given.
        value: String,
    },
    /// The hex part is not 64 lowercase hex digits.
    #[error("digest {value:?}: expected 64 lowercase hex digits after `sha256:`")]
    Hex {
        /// The string given.
        value: String,
    },
}

/// A sha256 content digest, `sha256:` and 64 lowercase hex digits, validated on construction so
/// that its hex part is safe to use as a file name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// The digest of `bytes`.
    #[must_use]
    pub fn of(bytes: &[u8]) -> Digest {
        let mut d = Digester::new();
        d.update(bytes);
        d.finish()
    }

    /// Parses `sha256:<64 lowercase hex>`.
    ///
    /// # Errors
    /// Any other algorithm or a hex part of the wrong length or alphabet.
    pub fn parse(value: &str) -> Result<Digest, DigestError> {
        let Some((algo, hex)) = value.split_once(':') else {
            return Err(DigestError::Algorithm {
                value: value.to_owned(),
            });
        };
        if algo != "sha256" {
            return Err(DigestError::Algorithm {
                value: value.to_owned(),
            });
        }
        Digest::from_hex(hex).map_err(|_| DigestError::Hex {
            value: value.to_owned(),
        })
    }

    /// Builds a digest from its 64 lowercase hex digits (a blob's file name).
    ///
    /// # Errors
    /// A string that is not 64 lowercase hex digits.
    pub fn from_hex(hex: &str) -> Result<Digest, DigestError> {
        let ok = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !ok {
            return Err(DigestError::Hex {
                value: hex.to_owned(),
            });
        }
        Ok(Digest {
            hex: hex.to_owned(),
        })
    }

    /// The 64 hex digits, without the algorithm: the file name in `blobs/sha256/`.
    #[must_use]
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest(sha256:{})", self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl TryFrom<&oci_spec::image::Digest> for Digest {
    type Error = DigestError;
    fn try_from(d: &oci_spec::image::Digest) -> Result<Self, Self::Error> {
        Digest::parse(d.as_ref())
    }
}

impl TryFrom<&Digest> for oci_spec::image::Digest {
    type Error = DigestError;
    /// Never fails for a validated digest; the error exists because oci-spec re-validates.
    fn try_from(d: &Digest) -> Result<Self, Self::Error> {
        oci_spec::image::Sha256Digest::from_str(&d.hex)
            .map(oci_spec::image::Digest::from)
            .map_err(|_| DigestError::Hex {
                value: d.hex.clone(),
            })
    }
}

macro_rules! digest_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        pub struct $name(pub Digest);

        impl $name {
            /// Parses `sha256:<64 lowercase hex>`.
            ///
            /// # Errors
            /// As [`Digest::parse`].
            pub fn parse(value: &str) -> Result<Self, DigestError> {
                Digest::parse(value).map($name)
            }

            /// The underlying digest.
            #[must_use]
            pub fn digest(&self) -> &Digest {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

digest_newtype!(
    /// The digest of a layer's uncompressed tar stream (`rootfs.diff_ids` in an image config).
    DiffId
);
digest_newtype!(
    /// Names a layer together with all layers below it: for the bottom layer its DiffID, above it
    /// `sha256(parent_chain_id + " " + diff_id)` (OCI image spec, "ChainID"). Unpacked layers
    /// live in `layers/<chain-id hex>/diff`, shared by every image with the same stack.
    ChainId
);

impl ChainId {
    /// The chain id of `diff_id` on top of `parent` (`None` for the bottom layer).
    #[must_use]
    pub fn of(parent: Option<&ChainId>, diff_id: &DiffId) -> ChainId {
        match parent {
            None => ChainId(diff_id.0.clone()),
            Some(p) => ChainId(Digest::of(format!("{p} {diff_id}").as_bytes())),
        }
    }

    /// The chain ids of each prefix of `diff_ids`, bottom layer first.
    #[must_use]
    pub fn chain(diff_ids: &[DiffId]) -> Vec<ChainId> {
        let mut out: Vec<ChainId> = Vec::with_capacity(diff_ids.len());
        for d in diff_ids {
            let next = ChainId::of(out.last(), d);
            out.push(next);
        }
        out
    }
}

/// An incremental sha256 with a byte count.
#[derive(Clone, Default)]
pub struct Digester {
    hasher: Sha256,
    len: u64,
}

impl Digester {
    /// A fresh digester.
    #[must_use]
    pub fn new() -> Digester {
        Digester::default()
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes fed so far.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was fed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything fed.
    #[must_use]
    pub fn finish(self) -> Digest {
        let bytes = self.hasher.finalize();
        let mut hex = String::with_capacity(64);
        for b in bytes {
            hex.push(char::from(HEX[usize::from(b >> 4)]));
            hex.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        Digest { hex }
    }
}

impl fmt::Debug for Digester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Digester").field("len", &self.len).finish()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A reader that hashes every byte read through it.
pub struct DigestReader<R> {
    inner: R,
    digester: Digester,
}

impl<R: Read> DigestReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        DigestReader {
            inner,
            digester: Digester::new(),
        }
    }

    /// Reads `inner` to its end (still hashing) and returns the digest and byte count.
    ///
    /// # Errors
    /// A read error of `inner`.
    pub fn finish(mut self) -> io::Result<(Digest, u64, R)> {
        io::copy(&mut self, &mut io::sink())?;
        let len = self.digester.len();
        Ok((self.digester.finish(), len, self.inner))
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }
}

/// A writer that hashes every byte written through it.
pub struct DigestWriter<W> {
    inner: W,
    digester: Digester,
}

impl<W: Write> DigestWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        DigestWriter {
            inner,
            digester: Digester::new(),
        }
    }

    /// The digest and count of the bytes written, and `inner`.
    pub fn finish(self) -> (Digest, u64, W) {
        let len = self.digester.len();
        (self.digester.finish(), len, self.inner)
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digest_of_empty_input_is_the_well_known_one() {
        assert_eq!(Digest::of(b"").to_string(), EMPTY);
        assert_eq!(
            Digest::parse(EMPTY).map(|d| d.to_string()),
            Ok(EMPTY.to_owned())
        );
    }

    #[test]
    fn bad_digests_are_rejected() {
        for bad in [
            "",
            "sha256",
            "sha512:e3b0",
            "md5:abc",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0",
            "sha256:../../../../etc/passwd",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn chain_id_follows_the_image_spec() {
        let a = DiffId(Digest::of(b"a"));
        let b = DiffId(Digest::of(b"b"));
        let chain = ChainId::chain(&[a.clone(), b.clone()]);
        assert_eq!(chain[0].0, a.0);
        let expected = Digest::of(format!("{} {}", a, b).as_bytes());
        assert_eq!(chain[1].0, expected);
        assert_eq!(ChainId::chain(&[]).len(), 0);
    }

    #[test]
    fn digest_reader_counts_and_hashes() {
        let mut r = DigestReader::new(&b"hello world"[..]);
        let mut first = [0u8; 5];
        r.read_exact(&mut first).unwrap();
        let (d, n, _) = r.finish().unwrap();
        assert_eq!(n, 11);
        assert_eq!(d, Digest::of(b"hello world"));
    }

    #[test]
    fn oci_digest_round_trips() {
        let d = Digest::of(b"x");
        let oci = oci_spec::image::Digest::try_from(&d).unwrap();
        assert_eq!(Digest::try_from(&oci), Ok(d));
    }
}
