//! The `url` target: a live gateway (the EKS NLB, or any proxy running the filter).
//!
//! Nothing behind the gateway is under control or visible, so only what the client
//! sees is checked: statuses, headers and bodies. Checks on attempts, services,
//! metrics and logs are reported as not observable. HTTP or HTTPS (verified for the
//! request's host, trusting `--cacert`, or `--insecure`); `--host` replaces the
//! scenarios' default host `api.c4ang.com`, for a gateway known by another name.

use super::observe::Observed;
use super::scenario::Scenario;
use super::wire::{self, Destination};
use super::Error;
use c4mesh_live::connection::Dialer;
use c4mesh_live::{Endpoint, Settings};
use std::time::Instant;

/// Runs the scenario's traffic against a live gateway.
pub fn run(
    scenario: &Scenario,
    base: &str,
    host: Option<&str>,
    settings: &Settings,
) -> Result<Observed, Error> {
    let endpoint = Endpoint::parse(base, Some("api.c4ang.com")).map_err(Error::Url)?;
    let dialer = Dialer::new(endpoint, settings).map_err(|source| Error::UrlClient {
        url: base.to_owned(),
        source,
    })?;
    let destination = Destination {
        addr: dialer.endpoint.addr,
        host_override: host.map(str::to_owned),
        live: Some((dialer, settings.clone())),
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
