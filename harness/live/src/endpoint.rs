//! The target URL (where to connect) and the request's host (what to name). The URL
//! is read by `http::Uri`, the type the requests themselves are built with.

use http::uri::InvalidUri;
use http::Uri;
use std::net::{SocketAddr, ToSocketAddrs};

/// Why a target URL names no gateway to talk to. Each variant starts its message with
/// the URL as given.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("{url}: expected http://HOST[:PORT] or https://HOST[:PORT]")]
    Invalid {
        url: String,
        #[source]
        source: InvalidUri,
    },
    /// A port that is no number from 1 to 65535; `http::Uri`'s error when it is the
    /// one that refused the URL (it takes port 0).
    #[error("{url}: the port must be a number from 1 to 65535")]
    Port {
        url: String,
        #[source]
        source: Option<InvalidUri>,
    },
    #[error("{url}: expected http://HOST[:PORT] or https://HOST[:PORT]")]
    Scheme { url: String },
    #[error("{url}: expected a host after {}://", scheme.as_str())]
    NoHost { url: String, scheme: Scheme },
    #[error("{url}: cannot resolve {name}")]
    Resolve {
        url: String,
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{url}: {name} has no address")]
    NoAddress { url: String, name: String },
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// A gateway to talk to: the address to connect to and the host requests name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: Scheme,
    /// The target URL's host and port, resolved.
    pub addr: SocketAddr,
    /// The target URL as given (for reports).
    pub url: String,
    /// The host requests name (`Host`, `:authority`), and the name TLS verifies.
    pub host: String,
}

impl Endpoint {
    /// `http[s]://HOST[:PORT][/...]`, with requests naming `host` (default: the URL's
    /// host). The URL's host is resolved once, here.
    pub fn parse(url: &str, host: Option<&str>) -> Result<Endpoint, EndpointError> {
        let owned = || url.to_owned();
        let uri: Uri = url.parse().map_err(|source| {
            if bad_port(url) {
                EndpointError::Port {
                    url: owned(),
                    source: Some(source),
                }
            } else {
                EndpointError::Invalid {
                    url: owned(),
                    source,
                }
            }
        })?;
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            _ => return Err(EndpointError::Scheme { url: owned() }),
        };
        let authority = uri
            .authority()
            .filter(|a| !a.host().is_empty() && !a.as_str().contains('@'))
            .ok_or_else(|| EndpointError::NoHost {
                url: owned(),
                scheme,
            })?;
        let port = match authority.port_u16() {
            // `http::Uri` takes a port that is not a number, and has none then.
            None if bad_port(url) => {
                return Err(EndpointError::Port {
                    url: owned(),
                    source: None,
                })
            }
            None => match scheme {
                Scheme::Http => 80,
                Scheme::Https => 443,
            },
            Some(0) => {
                return Err(EndpointError::Port {
                    url: owned(),
                    source: None,
                })
            }
            Some(port) => port,
        };
        let name = authority.host();
        let addr = (name.trim_start_matches('[').trim_end_matches(']'), port)
            .to_socket_addrs()
            .map_err(|source| EndpointError::Resolve {
                url: owned(),
                name: name.to_owned(),
                source,
            })?
            .next()
            .ok_or_else(|| EndpointError::NoAddress {
                url: owned(),
                name: name.to_owned(),
            })?;
        let host = match host {
            Some(host) if !host.is_empty() => host.to_owned(),
            _ => name.to_owned(),
        };
        Ok(Endpoint {
            scheme,
            addr,
            url: url.to_owned(),
            host,
        })
    }

    /// The name TLS sends as SNI and verifies: the host without a port or brackets.
    pub fn server_name(&self) -> &str {
        let host = if self.host.starts_with('[') {
            self.host.split(']').next().unwrap_or(&self.host)
        } else {
            self.host.split(':').next().unwrap_or(&self.host)
        };
        host.trim_start_matches('[')
    }

    pub fn is_tls(&self) -> bool {
        self.scheme == Scheme::Https
    }
}

/// Whether a URL has a port that is not a number (an empty one is the default): the
/// one mistake worth its own message, whether `http::Uri` refuses the URL or not.
fn bad_port(url: &str) -> bool {
    let authority = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    let port = match authority.rsplit_once(']') {
        Some((_, after)) => after.strip_prefix(':'),
        None => authority.rsplit_once(':').map(|(_, port)| port),
    };
    port.is_some_and(|p| !p.is_empty() && p.parse::<u16>().is_err())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_gives_the_address_and_the_host_option_the_name() {
        let e = Endpoint::parse("https://127.0.0.1:8443/x", Some("api.c4ang.com")).expect("valid");
        assert_eq!(e.scheme, Scheme::Https);
        assert_eq!(e.addr, "127.0.0.1:8443".parse().expect("addr"));
        assert_eq!(e.server_name(), "api.c4ang.com");
        let e = Endpoint::parse("http://127.0.0.1", None).expect("valid");
        assert_eq!(e.addr.port(), 80);
        assert_eq!(e.host, "127.0.0.1");
        let e = Endpoint::parse("https://[::1]:9443", Some("api.c4ang.com:443")).expect("valid");
        assert_eq!(e.addr.port(), 9443);
        assert_eq!(e.server_name(), "api.c4ang.com");
        assert_eq!(
            Endpoint::parse("https://localhost", None)
                .map(|e| e.addr.port())
                .ok(),
            Some(443)
        );
    }

    #[test]
    fn bad_urls_say_what_is_expected() {
        for bad in [
            "ftp://x",
            "127.0.0.1:80",
            "http://",
            "http://h:0",
            "http://h:port",
            "https://u@h",
            "http://a b",
        ] {
            let error = Endpoint::parse(bad, None).expect_err(bad);
            assert!(error.to_string().starts_with(bad), "{error}");
        }
    }

    #[test]
    fn each_mistake_is_its_own_kind_with_its_cause() {
        let kind = |url| Endpoint::parse(url, None).expect_err(url);
        assert!(matches!(kind("ftp://x"), EndpointError::Scheme { .. }));
        assert!(matches!(kind("127.0.0.1:80"), EndpointError::Scheme { .. }));
        assert!(matches!(
            kind("http://"),
            EndpointError::Invalid { .. } | EndpointError::NoHost { .. }
        ));
        assert!(matches!(
            kind("https://u@h"),
            EndpointError::NoHost {
                scheme: Scheme::Https,
                ..
            }
        ));
        for port in [
            "http://h:0",
            "http://h:port",
            "http://h:65536",
            "http://[::1]:x",
        ] {
            let error = kind(port);
            assert!(matches!(error, EndpointError::Port { .. }), "{error:?}");
        }
        assert!(matches!(kind("http://a b"), EndpointError::Invalid { .. }));
        let unresolved = kind("http://nothing.invalid");
        assert!(
            matches!(unresolved, EndpointError::Resolve { ref name, .. } if name == "nothing.invalid"),
            "{unresolved:?}"
        );
        assert!(std::error::Error::source(&unresolved).is_some());
    }
}
