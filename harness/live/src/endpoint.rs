//! The target URL (where to connect) and the request's host (what to name).

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
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (Scheme::Http, rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (Scheme::Https, rest)
        } else {
            return Err(format!(
                "{url}: expected http://HOST[:PORT] or https://HOST[:PORT]"
            ));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
        if authority.is_empty() || authority.contains('@') {
            return Err(format!(
                "{url}: expected a host after {}://",
                scheme.as_str()
            ));
        }
        let default_port = match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        let (name, port) = split_port(authority, default_port)
            .ok_or_else(|| format!("{url}: the port must be a number from 1 to 65535"))?;
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

/// `name[:port]` (IPv6 in brackets) into name and port.
fn split_port(authority: &str, default: u16) -> Option<(&str, u16)> {
    let (name, port) = if authority.starts_with('[') {
        let close = authority.find(']')?;
        let port = authority[close + 1..].strip_prefix(':');
        (&authority[..=close], port)
    } else {
        match authority.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (authority, None),
        }
    };
    match port {
        None => Some((name, default)),
        Some(port) => port.parse().ok().filter(|p| *p > 0).map(|p| (name, p)),
    }
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
