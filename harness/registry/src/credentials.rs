//! Registry credentials, found where docker and skopeo find them.
//!
//! `docker login` writes `{"auths": {"HOST": {"auth": base64("user:password")}}}` to
//! `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`); skopeo, podman and
//! Istio's own image fetcher read the same file. Reading it here means an operator who
//! can `docker push` can `c4mesh package --push` with nothing more to configure. An
//! entry may also carry `username` and `password` in clear. Keys are matched as
//! docker matches them: the exact host, or the key's host once a scheme and path are
//! stripped (`https://HOST/v1/`); Docker Hub's `https://index.docker.io/v1/` stands for
//! `docker.io` and its aliases. Entries that only defer to a credential helper carry no
//! secret here and count as anonymous.

use crate::Error;
use base64::Engine;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Who the registry is told we are.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Credentials {
    #[default]
    Anonymous,
    /// HTTP basic credentials, or those a token service exchanges for a bearer token.
    Basic { username: String, password: String },
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// Docker Hub's names, which docker files under one legacy key.
const DOCKER_HUB: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

// === impl Credentials ===

impl Credentials {
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self::Basic {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The credentials docker would use for `host` (`HOST[:PORT]`): the `auths` entry
    /// of the docker config file ([`docker_config_path`]), or anonymous when there is
    /// no file or no entry.
    pub fn from_docker_config(host: &str) -> Result<Self, Error> {
        match docker_config_path() {
            Some(path) => match std::fs::read_to_string(&path) {
                Ok(text) => Self::from_docker_config_text(&text, &path, host),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::Anonymous),
                Err(source) => Err(Error::DockerConfigRead { path, source }),
            },
            None => Ok(Self::Anonymous),
        }
    }

    /// The credentials for `host` in the docker config file at `path`, which must
    /// exist.
    pub fn from_docker_config_file(path: &Path, host: &str) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::DockerConfigRead {
            path: path.to_owned(),
            source,
        })?;
        Self::from_docker_config_text(&text, path, host)
    }

    fn from_docker_config_text(text: &str, path: &Path, host: &str) -> Result<Self, Error> {
        let config: DockerConfig =
            serde_json::from_str(text).map_err(|source| Error::DockerConfigJson {
                path: path.to_owned(),
                source,
            })?;
        let Some((key, entry)) = find_entry(&config.auths, host) else {
            return Ok(Self::Anonymous);
        };
        if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|source| Error::DockerConfigBase64 {
                    path: path.to_owned(),
                    key: key.to_owned(),
                    source,
                })?;
            let pair = String::from_utf8(decoded).ok();
            let Some((username, password)) = pair.as_deref().and_then(|p| p.split_once(':')) else {
                return Err(Error::DockerConfigAuth {
                    path: path.to_owned(),
                    key: key.to_owned(),
                });
            };
            return Ok(Self::basic(username, password));
        }
        match (&entry.username, &entry.password) {
            (Some(username), Some(password)) if !username.is_empty() => {
                Ok(Self::basic(username.as_str(), password.as_str()))
            }
            _ => Ok(Self::Anonymous),
        }
    }

    pub(crate) fn to_oci(&self) -> oci_client::secrets::RegistryAuth {
        match self {
            Self::Anonymous => oci_client::secrets::RegistryAuth::Anonymous,
            Self::Basic { username, password } => {
                oci_client::secrets::RegistryAuth::Basic(username.clone(), password.clone())
            }
        }
    }
}

/// The password never reaches a log.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anonymous => f.write_str("Anonymous"),
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`; `None` without
/// either variable.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".docker/config.json"))
}

/// The entry docker would pick for `host`: the exact key first, then a key whose host
/// part (scheme and path stripped) is `host`.
fn find_entry<'a>(
    auths: &'a BTreeMap<String, AuthEntry>,
    host: &str,
) -> Option<(&'a str, &'a AuthEntry)> {
    let wanted = if DOCKER_HUB.contains(&host) {
        DOCKER_HUB_KEY
    } else {
        host
    };
    if let Some((key, entry)) = auths.get_key_value(wanted) {
        return Some((key.as_str(), entry));
    }
    auths
        .iter()
        .find(|(key, _)| key_host(key) == host)
        .map(|(key, entry)| (key.as_str(), entry))
}

fn key_host(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(json: &str, host: &str) -> Result<Credentials, Error> {
        Credentials::from_docker_config_text(json, Path::new("config.json"), host)
    }

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    #[test]
    fn auth_entries_by_host_as_docker_writes_them() {
        let json = format!(
            r#"{{"auths": {{
                "127.0.0.1:5000": {{"auth": "{}"}},
                "https://registry.example.com/v1/": {{"auth": "{}"}},
                "plain.example.com": {{"username": "carol", "password": "p:w"}},
                "{DOCKER_HUB_KEY}": {{"auth": "{}"}},
                "helper.example.com": {{}}
            }}, "credsStore": "desktop"}}"#,
            b64("alice:s3cret"),
            b64("bob:with:colons"),
            b64("dora:hub"),
        );
        assert_eq!(
            lookup(&json, "127.0.0.1:5000").unwrap(),
            Credentials::basic("alice", "s3cret")
        );
        assert_eq!(
            lookup(&json, "registry.example.com").unwrap(),
            Credentials::basic("bob", "with:colons")
        );
        assert_eq!(
            lookup(&json, "plain.example.com").unwrap(),
            Credentials::basic("carol", "p:w")
        );
        assert_eq!(
            lookup(&json, "docker.io").unwrap(),
            Credentials::basic("dora", "hub")
        );
        assert_eq!(
            lookup(&json, "index.docker.io").unwrap(),
            Credentials::basic("dora", "hub")
        );
        assert_eq!(
            lookup(&json, "helper.example.com").unwrap(),
            Credentials::Anonymous
        );
        assert_eq!(
            lookup(&json, "127.0.0.1:5001").unwrap(),
            Credentials::Anonymous
        );
        assert_eq!(lookup("{}", "ghcr.io").unwrap(), Credentials::Anonymous);
    }

    #[test]
    fn broken_entries_are_refused_with_the_file_and_the_key() {
        let err = lookup(r#"{"auths": {"ghcr.io": {"auth": "%%%"}}}"#, "ghcr.io").unwrap_err();
        assert!(
            matches!(&err, Error::DockerConfigBase64 { key, .. } if key == "ghcr.io"),
            "{err:?}"
        );
        let json = format!(
            r#"{{"auths": {{"ghcr.io": {{"auth": "{}"}}}}}}"#,
            b64("no-colon")
        );
        let err = lookup(&json, "ghcr.io").unwrap_err();
        assert!(
            matches!(&err, Error::DockerConfigAuth { key, .. } if key == "ghcr.io"),
            "{err:?}"
        );
        let err = lookup(r#"{"auths": []}"#, "ghcr.io").unwrap_err();
        assert!(matches!(err, Error::DockerConfigJson { .. }), "{err:?}");
    }

    #[test]
    fn debug_hides_the_password() {
        let shown = format!("{:?}", Credentials::basic("alice", "s3cret"));
        assert!(
            shown.contains("alice") && !shown.contains("s3cret"),
            "{shown}"
        );
    }
}
