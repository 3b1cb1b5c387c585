//! The target URL (where to connect) and the request's host (what to name). The URL
//! is read by `http::Uri`, the type the requests themselves are built with.

use http::Uri;
use std::net::{SocketAddr, ToSocketAddrs};

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
    pub fn parse(url: &str, host: Option<&str>) -> Result<Endpoint, String> {
        let expected = || format!("{url}: expected http://HOST[:PORT] or https://HOST[:PORT]");
        let uri: Uri = url.parse().map_err(|e| {
            if bad_port(url) {
                format!("{url}: the port must be a number from 1 to 65535")
            } else {
                format!("{}: {e}", expected())
            }
        })?;
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            _ => return Err(expected()),
        };
        let authority = uri
            .authority()
            .filter(|a| !a.host().is_empty() && !a.as_str().contains('@'))
            .ok_or_else(|| format!("{url}: expected a host after {}://", scheme.as_str()))?;
        let port = match authority.port_u16() {
            None => match scheme {
                Scheme::Http => 80,
                Scheme::Https => 443,
            },
            Some(0) => return Err(format!("{url}: the port must be a number from 1 to 65535")),
            Some(port) => port,
        };
        let name = authority.host();
        let addr = (name.trim_start_matches('[').trim_end_matches(']'), port)
            .to_socket_addrs()
            .map_err(|e| format!("{url}: cannot resolve {name}: {e}"))?
            .next()
            .ok_or_else(|| format!("{url}: {name} has no address"))?;
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

/// Whether a URL that `http::Uri` refuses has a port that is not a number: the one
/// mistake worth its own message.
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
    port.is_some_and(|p| p.parse::<u16>().is_err())
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
            Endpoint::parse("https://localhost", None).map(|e| e.addr.port()),
            Ok(443)
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
        ] {
            let error = Endpoint::parse(bad, None).expect_err(bad);
            assert!(error.starts_with(bad), "{error}");
        }
    }
}
