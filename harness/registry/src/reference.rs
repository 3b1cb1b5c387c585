//! `oci://HOST/REPO:TAG` and `oci://HOST/REPO@sha256:HEX`, the urls a WasmPlugin and
//! `c4mesh package --push` take.
//!
//! The grammar is distribution's, checked here so that a typo is refused with the
//! text and the reason before any connection is made. A tag or a digest is required:
//! pushing to an implicit `latest` is a mistake more often than a wish.

use crate::Error;
use std::fmt;
use std::str::FromStr;

const SCHEME: &str = "oci://";

/// A parsed `oci://` reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    host: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Why a text is not a reference; carried by [`Error::Reference`] with the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceProblem {
    /// It does not start with `oci://`.
    Scheme,
    /// Nothing names the registry before the first `/`.
    NoHost,
    /// The registry is not `NAME[:PORT]` (letters, digits, `.`, `-`) or `[IPv6][:PORT]`.
    Host,
    /// Nothing names the repository after the registry.
    NoRepository,
    /// A repository path component is not lower-case letters and digits, separated
    /// inside by `.`, `_` or `-`.
    Repository,
    /// Neither `:TAG` nor `@sha256:HEX` ends the reference.
    NoTagOrDigest,
    /// The tag is not 1 to 128 of letters, digits, `_`, `.`, `-`, not starting with
    /// `.` or `-`.
    Tag,
    /// The digest is not `sha256:` and 64 lower-case hex digits.
    Digest,
}

impl fmt::Display for ReferenceProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Scheme => "it does not start with oci://",
            Self::NoHost => "it names no registry host",
            Self::Host => "the registry host is not NAME[:PORT]",
            Self::NoRepository => "it names no repository",
            Self::Repository => {
                "a repository component is not lower-case letters and digits separated by . _ or -"
            }
            Self::NoTagOrDigest => "it ends in neither :TAG nor @sha256:HEX",
            Self::Tag => "the tag is not 1-128 letters, digits, _ . - (not starting with . or -)",
            Self::Digest => "the digest is not sha256: and 64 lower-case hex digits",
        })
    }
}

// === impl Reference ===

impl Reference {
    /// `HOST[:PORT]`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The repository path, e.g. `c4mesh/filter`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// `sha256:HEX`, when the reference is pinned.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The same repository pinned to `digest` (`sha256:HEX`), without a tag: the url a
    /// WasmPlugin should carry.
    pub fn pinned(&self, digest: &str) -> Reference {
        Reference {
            host: self.host.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest.to_owned()),
        }
    }

    pub(crate) fn to_oci(&self) -> oci_client::Reference {
        let (host, repository) = (self.host.clone(), self.repository.clone());
        match (&self.tag, &self.digest) {
            (Some(tag), Some(digest)) => oci_client::Reference::with_tag_and_digest(
                host,
                repository,
                tag.clone(),
                digest.clone(),
            ),
            (None, Some(digest)) => {
                oci_client::Reference::with_digest(host, repository, digest.clone())
            }
            (Some(tag), None) => oci_client::Reference::with_tag(host, repository, tag.clone()),
            // Parsing refuses a reference with neither.
            (None, None) => oci_client::Reference::with_tag(host, repository, "latest".to_owned()),
        }
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        parse(text).map_err(|problem| Error::Reference {
            text: text.to_owned(),
            problem,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.host, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

fn parse(text: &str) -> Result<Reference, ReferenceProblem> {
    let rest = text.strip_prefix(SCHEME).ok_or(ReferenceProblem::Scheme)?;
    let (host, path) = rest.split_once('/').ok_or(if rest.is_empty() {
        ReferenceProblem::NoHost
    } else {
        ReferenceProblem::NoRepository
    })?;
    if host.is_empty() {
        return Err(ReferenceProblem::NoHost);
    }
    if !valid_host(host) {
        return Err(ReferenceProblem::Host);
    }
    let (name, digest) = match path.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (path, None),
    };
    // A tag follows the last `:` of the last path component.
    let last = name.rfind('/').map_or(0, |i| i + 1);
    let (repository, tag) = match name[last..].rfind(':') {
        Some(i) => (&name[..last + i], Some(&name[last + i + 1..])),
        None => (name, None),
    };
    if repository.is_empty() {
        return Err(ReferenceProblem::NoRepository);
    }
    if !repository.split('/').all(valid_component) {
        return Err(ReferenceProblem::Repository);
    }
    if tag.is_none() && digest.is_none() {
        return Err(ReferenceProblem::NoTagOrDigest);
    }
    if let Some(tag) = tag {
        if !valid_tag(tag) {
            return Err(ReferenceProblem::Tag);
        }
    }
    if let Some(digest) = digest {
        if !valid_digest(digest) {
            return Err(ReferenceProblem::Digest);
        }
    }
    Ok(Reference {
        host: host.to_owned(),
        repository: repository.to_owned(),
        tag: tag.map(str::to_owned),
        digest: digest.map(str::to_owned),
    })
}

fn valid_host(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        // `[IPv6]` or `[IPv6]:PORT`
        let Some((address, after)) = rest.split_once(']') else {
            return false;
        };
        if address.is_empty() || !address.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => return false,
            },
        }
    } else {
        match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    let name_ok = host.starts_with('[')
        || name.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    name_ok && port_ok
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    // Between alphanumeric runs: one `.`, one or two `_`, or any number of `-`.
    let mut separator = String::new();
    for &b in bytes {
        if alnum(&b) {
            let ok = matches!(separator.as_str(), "" | "." | "_" | "__")
                || separator.bytes().all(|s| s == b'-');
            if !ok {
                return false;
            }
            separator.clear();
        } else if matches!(b, b'.' | b'_' | b'-') {
            separator.push(char::from(b));
        } else {
            return false;
        }
    }
    true
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`
fn valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    match tag.as_bytes().split_first() {
        Some((&first, rest)) => {
            tag.len() <= 128
                && word(first)
                && rest.iter().all(|&b| word(b) || b == b'.' || b == b'-')
        }
        None => false,
    }
}

/// `sha256:` and 64 lower-case hex digits.
pub(crate) fn valid_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "4f1d8e2c5b7a9d3e6f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60";

    fn problem(text: &str) -> ReferenceProblem {
        match text.parse::<Reference>() {
            Err(Error::Reference {
                text: named,
                problem,
            }) => {
                assert_eq!(named, text, "the error names the text");
                problem
            }
            other => panic!("{text}: expected a reference error, got {other:?}"),
        }
    }

    #[test]
    fn tags_digests_ports_and_nested_repositories() {
        let r: Reference = "oci://127.0.0.1:5000/c4mesh/filter:v1".parse().unwrap();
        assert_eq!(
            (r.host(), r.repository(), r.tag(), r.digest()),
            ("127.0.0.1:5000", "c4mesh/filter", Some("v1"), None)
        );

        let text = format!("oci://ghcr.io/c4ang/c4mesh-filter@sha256:{HEX}");
        let r: Reference = text.parse().unwrap();
        assert_eq!(
            (r.host(), r.repository(), r.tag()),
            ("ghcr.io", "c4ang/c4mesh-filter", None)
        );
        assert_eq!(r.digest(), Some(format!("sha256:{HEX}").as_str()));
        assert_eq!(r.to_string(), text);

        let text = format!("oci://[::1]:5000/a.b/c__d/e--f:1.0_rc-1@sha256:{HEX}");
        let r: Reference = text.parse().unwrap();
        assert_eq!(
            (r.host(), r.repository(), r.tag()),
            ("[::1]:5000", "a.b/c__d/e--f", Some("1.0_rc-1"))
        );
        assert_eq!(r.to_string(), text);
        assert_eq!(
            r.pinned(&format!("sha256:{HEX}")).to_string(),
            format!("oci://[::1]:5000/a.b/c__d/e--f@sha256:{HEX}")
        );
    }

    #[test]
    fn bad_references_name_the_text_and_the_reason() {
        assert_eq!(problem("docker://ghcr.io/a:b"), ReferenceProblem::Scheme);
        assert_eq!(problem("ghcr.io/a:b"), ReferenceProblem::Scheme);
        assert_eq!(problem("oci://"), ReferenceProblem::NoHost);
        assert_eq!(problem("oci:///a:b"), ReferenceProblem::NoHost);
        assert_eq!(problem("oci://ghcr.io"), ReferenceProblem::NoRepository);
        assert_eq!(problem("oci://ghcr.io/:v1"), ReferenceProblem::NoRepository);
        assert_eq!(problem("oci://ghcr.io:port/a:b"), ReferenceProblem::Host);
        assert_eq!(problem("oci://gh_cr.io/a:b"), ReferenceProblem::Host);
        assert_eq!(
            problem("oci://ghcr.io/C4mesh:v1"),
            ReferenceProblem::Repository
        );
        assert_eq!(
            problem("oci://ghcr.io/a//b:v1"),
            ReferenceProblem::Repository
        );
        assert_eq!(
            problem("oci://ghcr.io/a_._b:v1"),
            ReferenceProblem::Repository
        );
        assert_eq!(problem("oci://ghcr.io/-a:v1"), ReferenceProblem::Repository);
        assert_eq!(
            problem("oci://127.0.0.1:5000/c4mesh/filter"),
            ReferenceProblem::NoTagOrDigest
        );
        assert_eq!(problem("oci://ghcr.io/a:"), ReferenceProblem::Tag);
        assert_eq!(problem("oci://ghcr.io/a:.v1"), ReferenceProblem::Tag);
        assert_eq!(
            problem(&format!("oci://ghcr.io/a:{}", "x".repeat(129))),
            ReferenceProblem::Tag
        );
        assert_eq!(
            problem("oci://ghcr.io/a@sha256:abc"),
            ReferenceProblem::Digest
        );
        assert_eq!(
            problem(&format!("oci://ghcr.io/a@sha512:{HEX}")),
            ReferenceProblem::Digest
        );
        assert_eq!(
            problem(&format!("oci://ghcr.io/a@sha256:{}", HEX.to_uppercase())),
            ReferenceProblem::Digest
        );

        let message = "oci://ghcr.io/C4mesh:v1"
            .parse::<Reference>()
            .unwrap_err()
            .to_string();
        assert!(message.contains("\"oci://ghcr.io/C4mesh:v1\""), "{message}");
    }
}
