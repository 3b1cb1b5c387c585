//! The local mesh: the six services of the platform, two hosts each, behind Envoy.

use crate::envoy::{Envoy, EnvoyConfig, ServiceRoute, Wasm};
use crate::upstream::{Behaviour, Upstream};
use crate::Client;
use anyhow::Result;
use serde_json::Value;

/// (route name, prefix, service) of the mesh, as in the filter's default configuration.
pub const SERVICES: [(&str, &str, &str); 6] = [
    ("customers", "/api/v1/customers", "customer-service"),
    ("orders", "/api/v1/orders", "order-service"),
    ("products", "/api/v1/products", "product-service"),
    ("payments", "/api/v1/payments", "payment-service"),
    (
        "recommendations",
        "/api/v1/recommendations",
        "recommendation-service",
    ),
    ("saga", "/api/v1/saga", "saga-tracker"),
];

/// Envoy plus two simulated hosts per service.
pub struct LocalMesh {
    pub envoy: Envoy,
    /// Per service (in [`SERVICES`] order), its two hosts.
    pub hosts: Vec<[Upstream; 2]>,
}

/// How to start a [`LocalMesh`].
pub struct MeshOptions {
    pub wasm: Wasm,
    pub workers: u32,
    pub outlier_detection: Option<Value>,
}

impl LocalMesh {
    /// The mesh with the filter and the given plugin configuration, 2 workers.
    pub fn with_filter(config: &str) -> Result<LocalMesh> {
        LocalMesh::start(MeshOptions {
            wasm: Wasm::filter(config)?,
            workers: 2,
            outlier_detection: None,
        })
    }

    pub fn start(options: MeshOptions) -> Result<LocalMesh> {
        let mut hosts = Vec::new();
        for (_, _, service) in SERVICES {
            hosts.push([
                Upstream::start(service, Behaviour::status(200))?,
                Upstream::start(service, Behaviour::status(200))?,
            ]);
        }
        let services = SERVICES
            .iter()
            .zip(&hosts)
            .map(|((_, prefix, service), pair)| ServiceRoute {
                name: service.to_string(),
                prefix: prefix.to_string(),
                hosts: pair.iter().map(Upstream::addr).collect(),
            })
            .collect();
        let envoy = Envoy::start(&EnvoyConfig {
            workers: options.workers,
            wasm: options.wasm,
            services,
            num_retries: 3,
            outlier_detection: options.outlier_detection,
        })?;
        Ok(LocalMesh { envoy, hosts })
    }

    pub fn client(&self) -> Client {
        Client::new(self.envoy.listener)
    }

    /// The two hosts of a route (by route name).
    pub fn service(&self, route: &str) -> &[Upstream; 2] {
        let index = SERVICES
            .iter()
            .position(|(r, _, _)| *r == route)
            .unwrap_or(0);
        &self.hosts[index]
    }

    /// Sets every host of a route to answer `status`.
    pub fn set_status(&self, route: &str, status: u16) {
        for host in self.service(route) {
            host.set_status(status);
        }
    }

    /// Attempts received by a route's hosts.
    pub fn attempts(&self, route: &str) -> u64 {
        self.service(route).iter().map(Upstream::attempts).sum()
    }
}
