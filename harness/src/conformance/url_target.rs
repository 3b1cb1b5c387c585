//! The `url` target: a live gateway (the EKS NLB, or any proxy running the filter).
//!
//! Nothing behind the gateway is under control or visible, so only what the client
//! sees is checked: statuses, headers and bodies. Checks on attempts, services,
//! metrics and logs are reported as not observable. Plain HTTP only; `--host` replaces
//! the scenarios' default host `api.c4ang.com`, for a gateway known by another name.

use super::observe::Observed;
use super::scenario::Scenario;
use super::wire::{self, Destination};
use super::Error;
use std::net::ToSocketAddrs;
use std::time::Instant;

/// `http://host[:port]` to a socket address.
pub fn resolve(base: &str) -> Result<std::net::SocketAddr, Error> {
    let rest = base
        .strip_prefix("http://")
        .ok_or_else(|| Error::Url(format!("{base}: only http:// URLs are supported")))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let with_port = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    with_port
        .to_socket_addrs()
        .map_err(|e| Error::Url(format!("{base}: {e}")))?
        .next()
        .ok_or_else(|| Error::Url(format!("{base}: no address")))
}

/// Runs the scenario's traffic against a live gateway.
pub fn run(scenario: &Scenario, base: &str, host: Option<&str>) -> Result<Observed, Error> {
    let destination = Destination {
        addr: resolve(base)?,
        host_override: host.map(str::to_owned),
    };
    let exchanges = wire::drive(scenario, &destination, Instant::now());
    Ok(Observed {
        // A live gateway's configuration is whatever it runs; requests show the rest.
        configured: true,
        exchanges,
        sees_upstreams: false,
        ..Observed::default()
    })
}
