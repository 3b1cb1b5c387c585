//! The local mesh: the six services of the platform, two hosts each, behind Envoy; and,
//! with a topology, a sidecar Envoy for every pod of a calling service, through which
//! that pod calls the services it depends on (SPEC 3.4). The gateway serves HTTPS too
//! when asked ([`MeshOptions::tls`]), as the Gateway's port 443 does.
//!
//! Every proxy is configured from the translation of the mesh's Istio resources
//! ([`crate::istio`]): the generated manifests for the gateway's and the sidecars'
//! plugin configurations, with [`MeshOptions::istio`] laid over them (an operator's
//! own VirtualServices, DestinationRules, ...).

use crate::envoy::{Envoy, EnvoyError, ServiceRoute, Wasm};
use crate::istio::generated::GenerateError;
use crate::istio::{generated, MeshPlan, Resources, TranslateError};
use crate::launch::{self, Launch, LaunchError};
use crate::tls::Certificates;
use crate::topology::{Topology, TopologyError};
use crate::upstream::{Behaviour, Upstream, UpstreamError};
use crate::Client;

/// Why a local mesh could not start.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("topology")]
    Topology(#[source] TopologyError),
    #[error("the gateway's module")]
    Module(#[from] EnvoyError),
    #[error("generating the mesh's Istio resources")]
    Generate(#[from] GenerateError),
    #[error("translating the mesh's Istio resources")]
    Translate(#[from] TranslateError),
    #[error("starting a simulated service")]
    Upstream(#[from] UpstreamError),
    #[error("starting the mesh's proxies")]
    Launch(#[from] LaunchError),
}

type Result<T, E = MeshError> = std::result::Result<T, E>;

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
    /// Istio resources laid over the generated ones (same kind, namespace and name
    /// replaces; others add).
    pub istio: Resources,
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
            istio: Resources::default(),
            topology: Topology::default(),
            sidecar_wasm: Wasm::None,
            tls: None,
        }
    }
}

/// The plugin configuration a module runs with (empty for none).
fn plugin_config(wasm: &Wasm) -> &str {
    match wasm {
        Wasm::None => "",
        Wasm::Module { config, .. } | Wasm::Named { config, .. } => config,
    }
}

/// The mesh's proxies as Istio builds them from the generated resources for the
/// gateway's and sidecars' plugin configurations, with the options' resources laid
/// over them.
fn mesh_plan(
    options: &MeshOptions,
    services: &[String],
    pods: &[crate::topology::PodCalls],
) -> Result<MeshPlan> {
    let config = |wasm: &Wasm| {
        let text = plugin_config(wasm);
        // A module that is not the filter has a configuration of its own.
        if c4mesh_filter_core::Config::parse(text.as_bytes()).is_ok() {
            text.to_owned()
        } else {
            String::new()
        }
    };
    let mut resources =
        generated::resources(&config(&options.wasm), &config(&options.sidecar_wasm))?;
    resources.overlay(options.istio.clone());
    let workloads = generated::workloads(services);
    let pods: Vec<(String, usize)> = pods
        .iter()
        .map(|p| {
            let (service, index) = p.pod.split_once('/').unwrap_or((&p.pod, "0"));
            (service.to_owned(), index.parse().unwrap_or(0))
        })
        .collect();
    Ok(MeshPlan::translate(&resources, &workloads, &pods)?)
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
        options
            .topology
            .validate(&names)
            .map_err(MeshError::Topology)?;
        let mut hosts = Vec::new();
        let mut pods = Vec::new();
        for service in &services {
            let mut host = |index: usize| {
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
                Upstream::calling(&service.name, Behaviour::status(200), calls)
            };
            hosts.push([host(0)?, host(1)?]);
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
        let plan = mesh_plan(&options, &names, &pods)?;
        let proxies = launch::start(
            &plan,
            Launch {
                workers: options.workers,
                gateway_wasm: options.wasm,
                sidecar_wasm: options.sidecar_wasm,
                tls: options.tls.as_ref().map(Certificates::listener),
                services: routes,
            },
            &pods,
        )?;
        Ok(LocalMesh {
            envoy: proxies.gateway,
            services,
            hosts,
            sidecars: proxies.sidecars,
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
    pub fn stat_at(&self, proxy: &str, name: &str) -> Result<u64, EnvoyError> {
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
