//! The local mesh: the six services of the platform, two hosts each, behind Envoy; and,
//! with a topology, a sidecar Envoy for every pod of a calling service, through which
//! that pod calls the services it depends on (SPEC 3.4). The gateway serves HTTPS too
//! when asked ([`MeshOptions::tls`]), as the Gateway's port 443 does.

use crate::envoy::{Envoy, EnvoyConfig, ServiceRoute, Wasm};
use crate::tls::Certificates;
use crate::topology::Topology;
use crate::upstream::{Behaviour, Upstream};
use crate::Client;
use anyhow::{bail, Result};
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

/// Envoy plus two simulated hosts per service, and the sidecars of a topology.
pub struct LocalMesh {
    pub envoy: Envoy,
    pub services: Vec<Service>,
    /// Per service (in [`services`] order), its two hosts.
    pub hosts: Vec<[Upstream; 2]>,
    /// Each pod of a calling service: `service/index` and its sidecar Envoy.
    pub sidecars: Vec<(String, Envoy)>,
    /// What the gateway's HTTPS listener ([`Envoy::tls_listener`]) presents, and the
    /// CA that signed it.
    pub certificates: Option<Certificates>,
}

/// How to start a [`LocalMesh`].
pub struct MeshOptions {
    /// What the gateway runs.
    pub wasm: Wasm,
    pub workers: u32,
    pub outlier_detection: Option<Value>,
    /// Who calls whom; empty: the gateway alone in front of the services.
    pub topology: Topology,
    /// What the sidecars run (with a topology).
    pub sidecar_wasm: Wasm,
    /// Serve HTTPS at the gateway too, with these certificates ([`crate::tls`]).
    pub tls: Option<Certificates>,
}

impl MeshOptions {
    /// The gateway with `wasm`, 2 workers, no topology.
    pub fn gateway(wasm: Wasm) -> MeshOptions {
        MeshOptions {
            wasm,
            workers: 2,
            outlier_detection: None,
            topology: Topology::default(),
            sidecar_wasm: Wasm::None,
            tls: None,
        }
    }
}

/// The namespace the local mesh's services live in.
pub const NAMESPACE: &str = "ecommerce";

impl LocalMesh {
    /// The mesh with the filter and the given plugin configuration, 2 workers.
    pub fn with_filter(config: &str) -> Result<LocalMesh> {
        LocalMesh::start(MeshOptions::gateway(Wasm::filter(config)?))
    }

    pub fn start(options: MeshOptions) -> Result<LocalMesh> {
        let services = services();
        let names: Vec<String> = services.iter().map(|s| s.name.clone()).collect();
        if let Err(error) = options.topology.validate(&names) {
            bail!("topology: {error}");
        }
        let mut hosts = Vec::new();
        let mut pods = Vec::new();
        for service in &services {
            let mut pair = Vec::new();
            for index in 0..2 {
                let calls = options
                    .topology
                    .pod_calls(&service.name, index, NAMESPACE, |callee| {
                        services
                            .iter()
                            .find(|s| s.name == callee)
                            .map_or_else(|| "/".into(), |s| s.prefix.clone())
                    });
                if let Some(calls) = &calls {
                    pods.push(calls.clone());
                }
                pair.push(Upstream::calling(
                    &service.name,
                    Behaviour::status(200),
                    calls,
                )?);
            }
            let [a, b]: [Upstream; 2] = pair
                .try_into()
                .map_err(|_| anyhow::anyhow!("two hosts per service"))?;
            hosts.push([a, b]);
        }
        let routes: Vec<ServiceRoute> = services
            .iter()
            .zip(&hosts)
            .map(|(service, pair)| ServiceRoute {
                name: service.name.clone(),
                prefix: service.prefix.clone(),
                hosts: pair.iter().map(Upstream::addr).collect(),
            })
            .collect();
        let sidecar = EnvoyConfig::sidecar(
            options.workers,
            options.sidecar_wasm.clone(),
            routes.clone(),
            options.outlier_detection.clone(),
            NAMESPACE,
        );
        let mut sidecars = Vec::new();
        for pod in &pods {
            let envoy = Envoy::start(&sidecar)?;
            let _ = pod.sidecar.set(envoy.listener);
            sidecars.push((pod.pod.clone(), envoy));
        }
        let envoy = Envoy::start(&EnvoyConfig {
            workers: options.workers,
            wasm: options.wasm,
            services: routes,
            num_retries: 3,
            outlier_detection: options.outlier_detection,
            routes: Vec::new(),
            sidecar: None,
            tls: options.tls.as_ref().map(Certificates::listener),
        })?;
        Ok(LocalMesh {
            envoy,
            services,
            hosts,
            sidecars,
            certificates: options.tls,
        })
    }

    /// How long until `consecutive` GETs of `path` in a row succeed, sending one every
    /// `every`; `None` if that does not happen within `limit`.
    pub fn time_to_full_service(
        &self,
        path: &str,
        consecutive: usize,
        every: std::time::Duration,
        limit: std::time::Duration,
    ) -> Option<std::time::Duration> {
        let started = std::time::Instant::now();
        let client = self.client();
        let mut streak = 0;
        let mut since = started;
        while started.elapsed() < limit {
            let sent = std::time::Instant::now();
            if client.get(path, &[]).is_ok_and(|r| r.status == 200) {
                if streak == 0 {
                    since = sent;
                }
                streak += 1;
                if streak >= consecutive {
                    return Some(since - started);
                }
            } else {
                streak = 0;
            }
            std::thread::sleep(every.saturating_sub(sent.elapsed()));
        }
        None
    }

    /// The sum of one stat over the gateway (`gateway`) or the sidecars of a service's
    /// pods (`service`), 0 where absent.
    pub fn stat_at(&self, proxy: &str, name: &str) -> Result<u64> {
        let mut sum = 0;
        for (pod, envoy) in self.proxies() {
            let service = pod.split_once('/').map_or(pod, |(s, _)| s);
            if pod == proxy || service == proxy {
                sum += envoy.stat(name)?.unwrap_or(0);
            }
        }
        Ok(sum)
    }

    /// Every proxy of the mesh: the gateway first, then each pod's sidecar.
    pub fn proxies(&self) -> Vec<(&str, &Envoy)> {
        std::iter::once(("gateway", &self.envoy))
            .chain(self.sidecars.iter().map(|(n, e)| (n.as_str(), e)))
            .collect()
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

    /// Connections a route's hosts accepted (fewer than attempts: the proxies keep
    /// their upstream connections alive).
    pub fn connections(&self, route: &str) -> u64 {
        self.service(route).iter().map(Upstream::connections).sum()
    }
}
