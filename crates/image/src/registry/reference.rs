//! Image references as Docker parses them: `busybox` is `docker.io/library/busybox:latest`,
//! `me/app:1` is `docker.io/me/app:1`, and a first component with a `.` or `:` (or
//! `localhost`, or capitals) names the registry: `localhost:5000/x@sha256:…`.

use crate::digest::Digest;
use std::fmt;

/// The registry Docker assumes when a reference names none.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The host that serves `docker.io`'s distribution API.
pub const DEFAULT_REGISTRY_HOST: &str = "registry-1.docker.io";

/// Why a reference does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reference format: {reason}")]
pub struct ReferenceError {
    /// The reference given.
    pub reference: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The registry as written (`docker.io`, `localhost:5000`, `quay.io`).
    pub registry: String,
    /// The repository path inside it (`library/busybox`).
    pub repository: String,
    /// The tag; `latest` when neither a tag nor a digest was given.
    pub tag: Option<String>,
    /// The digest, when pinned.
    pub digest: Option<Digest>,
}

fn path_component_ok(c: &str) -> bool {
    // [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn tag_ok(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn domain_ok(d: &str) -> bool {
    // host[:port]; host is a name of labels or a bracketed IPv6 address.
    let (host_ok, port) = if let Some(rest) = d.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else {
            return false;
        };
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(p) => Some(p),
                None => return false,
            },
        };
        (ip.parse::<std::net::Ipv6Addr>().is_ok(), port)
    } else {
        let (host, port) = match d.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        };
        let labels_ok = !host.is_empty()
            && host.split('.').all(|l| {
                !l.is_empty()
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
            });
        (labels_ok, port)
    };
    host_ok && port.is_none_or(|p| p.parse::<u16>().is_ok())
}

impl Reference {
    /// Parses `reference` the way the docker CLI does, filling in `docker.io`, `library/` and
    /// `latest`.
    ///
    /// # Errors
    /// Capitals in the repository, a bad tag or digest, an empty component, over 255
    /// characters of name.
    pub fn parse(reference: &str) -> Result<Reference, ReferenceError> {
        let err = |reason| ReferenceError {
            reference: reference.to_owned(),
            reason,
        };
        let (rest, digest) = match reference.split_once('@') {
            Some((r, d)) => (
                r,
                Some(Digest::parse(d).map_err(|_| err("invalid digest"))?),
            ),
            None => (reference, None),
        };
        // A tag follows the last `:` after the last `/` (a `:` before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag
            && !tag_ok(t)
        {
            return Err(err("invalid tag"));
        }
        if name.is_empty() {
            return Err(err("empty repository name"));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                (first.to_owned(), rest.to_owned())
            }
            _ => (DEFAULT_REGISTRY.to_owned(), name.to_owned()),
        };
        if !domain_ok(&registry) {
            return Err(err("invalid registry host"));
        }
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(err("repository name must be lowercase"));
        }
        if !path.split('/').all(path_component_ok) {
            return Err(err("invalid repository name"));
        }
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DEFAULT_REGISTRY.to_owned(),
            _ => registry,
        };
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if registry.len() + 1 + repository.len() > 255 {
            return Err(err("repository name must not be more than 255 characters"));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, None) => Some("latest".to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `docker.io/library/busybox` (no tag or digest).
    #[must_use]
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The short form Docker shows: `busybox`, `me/app`, `localhost:5000/x`.
    #[must_use]
    pub fn familiar_name(&self) -> String {
        if self.registry == DEFAULT_REGISTRY {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_owned()
        } else {
            self.name()
        }
    }

    /// The familiar name with the tag (`busybox:latest`), else with the digest.
    #[must_use]
    pub fn familiar(&self) -> String {
        self.with_suffix(self.familiar_name())
    }

    /// What the manifest is fetched by: the digest when pinned, else the tag.
    #[must_use]
    pub fn object(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        }
    }

    /// The host that serves the registry's API (`registry-1.docker.io` for `docker.io`).
    #[must_use]
    pub fn api_host(&self) -> &str {
        if self.registry == DEFAULT_REGISTRY {
            DEFAULT_REGISTRY_HOST
        } else {
            &self.registry
        }
    }

    fn with_suffix(&self, mut s: String) -> String {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }
}

impl fmt::Display for Reference {
    /// The fully qualified form: `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.with_suffix(self.name()))
    }
}

/// The host part of a registry (`localhost:5000` → `localhost`, `[::1]:5000` → `::1`).
#[must_use]
pub fn registry_hostname(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.rsplit_once(':').map_or(registry, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn docker_defaults_are_filled_in() {
        let r = p("busybox");
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.familiar(), "busybox:latest");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(p("me/app:1").to_string(), "docker.io/me/app:1");
        assert_eq!(
            p("index.docker.io/x").to_string(),
            "docker.io/library/x:latest"
        );
        assert_eq!(
            p("docker.io/library/busybox:1.36").familiar(),
            "busybox:1.36"
        );
    }

    #[test]
    fn registry_is_the_first_component_with_a_dot_colon_or_localhost() {
        let r = p("localhost:5000/x/y:tag");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("localhost:5000", "x/y")
        );
        assert_eq!(r.familiar(), "localhost:5000/x/y:tag");
        assert_eq!(p("localhost/x").registry, "localhost");
        assert_eq!(p("quay.io/a/b").registry, "quay.io");
        assert_eq!(p("127.0.0.1:5000/a").registry, "127.0.0.1:5000");
        assert_eq!(p("[::1]:5000/a").registry, "[::1]:5000");
        assert_eq!(p("a/b/c").registry, "docker.io");
    }

    #[test]
    fn digests_pin_and_drop_the_default_tag() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = p(&format!("localhost:5000/x@{d}"));
        assert_eq!(r.tag, None);
        assert_eq!(r.object(), d);
        assert_eq!(r.familiar(), format!("localhost:5000/x@{d}"));
        let both = p(&format!("x:1@{d}"));
        assert_eq!(both.tag.as_deref(), Some("1"));
        assert_eq!(both.object(), d);
    }

    #[test]
    fn bad_references_say_why() {
        for (s, why) in [
            ("Busybox", "lowercase"),
            ("localhost:5000/X", "lowercase"),
            ("x:", "tag"),
            ("x:-a", "tag"),
            ("x@sha256:zz", "digest"),
            ("", "empty"),
            ("a//b", "repository name"),
            ("a/-b", "repository name"),
            ("host:99999/a", "registry"),
        ] {
            let e = Reference::parse(s).expect_err(s);
            assert!(e.to_string().contains(why), "{s}: {e}");
        }
        assert!(Reference::parse(&"a".repeat(300)).is_err());
    }

    #[test]
    fn hostnames_lose_their_port() {
        assert_eq!(registry_hostname("localhost:5000"), "localhost");
        assert_eq!(registry_hostname("[::1]:5000"), "::1");
        assert_eq!(registry_hostname("quay.io"), "quay.io");
    }
}
