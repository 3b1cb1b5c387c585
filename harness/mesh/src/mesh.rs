//! The local mesh: the six services of the platform, two hosts each, behind Envoy.

use crate::envoy::{Envoy, EnvoyConfig, ServiceRoute, Wasm};
use crate::upstream::{Behaviour, Upstream};
use crate::Client;
use anyhow::Result;
use serde_json::Value;

/// One service of the mesh: its route name, prefix and service name.
#[derive(Debug, Clone)]
pub struct Service {
    pub route: String,
    pub prefix: String,
    pub name: String,
}

/// The services of the mesh, from the filter's default configuration (one source).
pub fn services() -> Vec<Service> {
    c4mesh_filter_core::Config::defaults()
        .routes
        .into_iter()
        .map(|r| Service {
            route: r.name,
            prefix: r.prefix,
            name: r.service,
        })
        .collect()
}

/// Envoy plus two simulated hosts per service.
pub struct LocalMesh {
    pub envoy: Envoy,
    pub services: Vec<Service>,
    /// Per service (in [`services`] order), its two hosts.
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
        let services = services();
        let mut hosts = Vec::new();
        for service in &services {
            hosts.push([
                Upstream::start(&service.name, Behaviour::status(200))?,
                Upstream::start(&service.name, Behaviour::status(200))?,
            ]);
        }
        let routes = services
            .iter()
            .zip(&hosts)
            .map(|(service, pair)| ServiceRoute {
                name: service.name.clone(),
                prefix: service.prefix.clone(),
                hosts: pair.iter().map(Upstream::addr).collect(),
            })
            .collect();
        let envoy = Envoy::start(&EnvoyConfig {
            workers: options.workers,
            wasm: options.wasm,
            services: routes,
            num_retries: 3,
            outlier_detection: options.outlier_detection,
            routes: Vec::new(),
            sidecar: None,
        })?;
        Ok(LocalMesh {
            envoy,
            services,
            hosts,
        })
    }

    pub fn client(&self) -> Client {
        Client::new(self.envoy.listener)
    }

    /// The two hosts of a route (by route name).
    pub fn service(&self, route: &str) -> &[Upstream; 2] {
        let index = self
            .services
            .iter()
            .position(|s| s.route == route)
            .unwrap_or(0);
        &self.hosts[index]
    }

    /// Sets every host of a route to answer with `behaviour`.
    pub fn set(&self, route: &str, behaviour: Behaviour) {
        for host in self.service(route) {
            host.set(behaviour);
        }
    }

    /// Sets every host of a route to answer `status`.
    pub fn set_status(&self, route: &str, status: u16) {
        self.set(route, Behaviour::status(status));
    }

    /// Attempts received by a route's hosts.
    pub fn attempts(&self, route: &str) -> u64 {
        self.service(route).iter().map(Upstream::attempts).sum()
    }
}
