//! The `envoy` target: a real Envoy with the module, the scenario's configuration and
//! the mesh's routes, in front of the simulated upstreams served over HTTP on loopback.
//!
//! Every proxy's bootstrap is its plan from the translation of the scenario's Istio
//! resources (the generated manifests for its configuration, its `mesh` settings and
//! its `istio` resources; [`Mesh::of`]), the same plan the wasm target's emulated
//! router follows, with the simulated hosts as the clusters' endpoints. Envoy comes
//! from `ENVOY_BIN`, the project's `.venv`, or `PATH`.
//!
//! With a topology every pod of a calling service gets a sidecar of its own, another
//! real Envoy with its sidecar plan (the filter in sidecar mode, or without Wasm), and
//! the pod's simulated host makes its calls through it before answering.

use super::observe::Observed;
use super::observe::ProxyObserved;
use super::scenario::{self, Scenario};
use super::upstreams::{Answer, Upstreams, ANSWERED_BY, REQUEST_ID};
use super::wasm_target::Mesh;
use super::wire::{self, Destination};
use super::{EnvoyTargetError, Error};
use c4mesh_mesh::envoy::{envoy_binary, EnvoyError};
use c4mesh_mesh::launch::{self, Launch, LaunchError};
use c4mesh_mesh::topology::PodCalls;
use c4mesh_mesh::{Envoy, Handler, Reply, ServiceRoute, TlsListener, Upstream, Wasm};
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// One simulated host: serving, or down (an address nothing listens on, so every
/// connection to it is refused).
enum Host {
    Serving(Upstream),
    Down(Refusing),
}

impl Host {
    fn addr(&self) -> SocketAddr {
        match self {
            Host::Serving(upstream) => upstream.addr(),
            Host::Down(refusing) => refusing.addr,
        }
    }
}

/// A loopback address that refuses every connection for as long as it is held: the
/// local end of a connection whose listener is gone. Nothing listens on its port, and
/// while the connection holds the port nothing else can bind it, so an Envoy or an
/// upstream of a scenario running alongside cannot start answering there (as it could
/// on a port found free and let go).
struct Refusing {
    addr: SocketAddr,
    _ends: (TcpStream, TcpStream),
}

impl Refusing {
    fn new() -> std::io::Result<Refusing> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let near = TcpStream::connect(listener.local_addr()?)?;
        let (far, _) = listener.accept()?;
        Ok(Refusing {
            addr: near.local_addr()?,
            _ends: (near, far),
        })
    }
}

/// The simulated hosts of every service, serving the shared simulator.
struct Hosts {
    servers: Vec<Vec<Host>>,
    simulator: Arc<Mutex<Upstreams>>,
    start: Arc<OnceLock<Instant>>,
    /// The calls of each pod of a calling service: (service, host) and its calls.
    pods: Vec<((usize, usize), PodCalls)>,
}

fn serve(scenario: &Scenario, mesh: &Mesh) -> Result<Hosts, Error> {
    let services = &mesh.services;
    let simulator = Arc::new(Mutex::new(Upstreams::new(
        services,
        scenario.mesh.hosts,
        &scenario.upstreams,
        scenario.seed,
    )));
    let start: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
    let mut servers = Vec::new();
    let mut pods = Vec::new();
    for (s, service) in services.iter().enumerate() {
        let mut hosts = Vec::new();
        for h in 0..scenario.mesh.hosts {
            let down = simulator.lock().is_ok_and(|sim| sim.is_down(s, h));
            if down {
                let refusing = Refusing::new().map_err(EnvoyTargetError::Refusing)?;
                hosts.push(Host::Down(refusing));
                continue;
            }
            let calls = mesh
                .topology
                .pod_calls(service, h, &mesh.namespace, |callee| {
                    services
                        .iter()
                        .position(|s| s == callee)
                        .and_then(|i| mesh.call_paths.get(i).cloned())
                        .unwrap_or_else(|| "/".into())
                });
            if let Some(calls) = &calls {
                pods.push(((s, h), calls.clone()));
            }
            let (simulator, start, name) =
                (Arc::clone(&simulator), Arc::clone(&start), service.clone());
            let handler: Handler = Arc::new(move |attempt| {
                let now = start.get().map(Instant::elapsed).unwrap_or_default();
                let answer = match simulator.lock() {
                    Ok(mut sim) => sim.attempt(s, h, now, attempt.headers.clone()),
                    Err(_) => Answer::Reset {
                        latency: std::time::Duration::ZERO,
                    },
                };
                // A calling service makes its calls (outside the simulator's lock)
                // before it answers, and answers 503 when one fails.
                let answer = match (answer, &calls) {
                    (Answer::Respond { status, latency }, Some(calls))
                        if (200..300).contains(&status) =>
                    {
                        let id = attempt.header(REQUEST_ID).unwrap_or_default().to_owned();
                        let headers = [(REQUEST_ID, id.as_str())];
                        let ok = calls.run(if id.is_empty() { &[] } else { &headers });
                        Answer::Respond {
                            status: if ok { status } else { 503 },
                            latency,
                        }
                    }
                    (answer, _) => answer,
                };
                match answer {
                    Answer::Respond { status, latency } => Reply::Respond {
                        status,
                        headers: vec![
                            ("content-type".into(), "application/json".into()),
                            (ANSWERED_BY.into(), format!("{name}/{h}")),
                        ],
                        body: Upstreams::body(&name, h).into_bytes(),
                        delay: latency,
                    },
                    Answer::Reset { latency } => Reply::Reset { delay: latency },
                    Answer::Hang => Reply::Hang,
                }
            });
            let server = Upstream::with_handler(&format!("{service}/{h}"), handler)
                .map_err(EnvoyTargetError::Upstreams)?;
            hosts.push(Host::Serving(server));
        }
        servers.push(hosts);
    }
    Ok(Hosts {
        servers,
        simulator,
        start,
        pods,
    })
}

/// The clusters of a proxy: every service with its simulated hosts.
fn service_routes(mesh: &Mesh, hosts: &Hosts) -> Vec<ServiceRoute> {
    mesh.services
        .iter()
        .zip(&hosts.servers)
        .map(|(name, servers)| ServiceRoute {
            name: name.clone(),
            prefix: String::new(),
            hosts: servers.iter().map(Host::addr).collect(),
        })
        .collect()
}

/// The module a proxy runs: the filter with a configuration, or none.
fn module(wasm: &Path, filter: bool, config: Vec<u8>) -> Wasm {
    if filter {
        Wasm::Module {
            path: wasm.to_path_buf(),
            config: String::from_utf8_lossy(&config).into_owned(),
        }
    } else {
        Wasm::None
    }
}

/// A local gateway: Envoy with a module in front of the simulated services, and with a
/// topology the sidecar of each pod of a calling service.
pub struct Gateway {
    pub envoy: Envoy,
    /// Each pod's sidecar: `service/index` and its Envoy.
    pub sidecars: Vec<(String, Envoy)>,
    hosts: Hosts,
    services: Vec<String>,
}

/// What starting a gateway gave.
pub enum Started {
    Serving(Box<Gateway>),
    /// Envoy refused the configuration; its log says why.
    Refused(String),
}

impl Gateway {
    /// Starts the simulated services of `scenario` (its mesh and upstream faults) and an
    /// Envoy with the module and the scenario's configuration in front of them.
    pub fn start(scenario: &Scenario, wasm: &Path) -> Result<Started, Error> {
        Gateway::start_serving(scenario, wasm, None)
    }

    /// Like [`Gateway::start`], with the gateway also serving HTTPS when `tls` is given
    /// (at [`Envoy::tls_listener`]), as the Gateway's port 443 does.
    pub fn start_serving(
        scenario: &Scenario,
        wasm: &Path,
        tls: Option<TlsListener>,
    ) -> Result<Started, Error> {
        envoy_binary().map_err(|e| EnvoyTargetError::Binary(Box::new(e)))?;
        let mesh = Mesh::of(scenario)?;
        let hosts = serve(scenario, &mesh)?;
        let gateway_filter = scenario
            .topology
            .as_ref()
            .is_none_or(|spec| spec.filter_at.gateway());
        let sidecar_wasm = match &scenario.topology {
            Some(spec) => module(
                wasm,
                spec.filter_at.sidecars(),
                scenario::sidecar_config_bytes(spec),
            ),
            None => Wasm::None,
        };
        let launch = Launch {
            workers: u32::try_from(scenario.mesh.workers).unwrap_or(2),
            gateway_wasm: module(wasm, gateway_filter, scenario::config_bytes(scenario)),
            sidecar_wasm,
            tls,
            services: service_routes(&mesh, &hosts),
        };
        let pods: Vec<PodCalls> = hosts.pods.iter().map(|(_, calls)| calls.clone()).collect();
        match launch::start(&mesh.plan, launch, &pods) {
            Ok(proxies) => Ok(Started::Serving(Box::new(Gateway {
                envoy: proxies.gateway,
                sidecars: proxies.sidecars,
                hosts,
                services: mesh.services,
            }))),
            Err(error) => refused(error),
        }
    }

    /// Starts scenario time: upstream faults count their `at` from now.
    pub fn begin(&self) -> Instant {
        *self.hosts.start.get_or_init(Instant::now)
    }

    /// Every simulated host: service, index, address.
    pub fn hosts(&self) -> Vec<(String, usize, SocketAddr)> {
        self.services
            .iter()
            .zip(&self.hosts.servers)
            .flat_map(|(service, servers)| {
                servers
                    .iter()
                    .enumerate()
                    .map(move |(i, s)| (service.clone(), i, s.addr()))
            })
            .collect()
    }

    /// Every upstream attempt so far.
    pub fn attempts(&self) -> Vec<super::upstreams::AttemptRecord> {
        self.hosts
            .simulator
            .lock()
            .map(|s| s.records().to_vec())
            .unwrap_or_default()
    }
}

/// An Envoy that would not start: refused its configuration (it exited, and its log
/// says why), or could not be started at all.
fn refused(error: LaunchError) -> Result<Started, Error> {
    match error {
        LaunchError::Envoy { source, .. } if matches!(*source, EnvoyError::Exited { .. }) => {
            Ok(Started::Refused(source.to_string()))
        }
        other => Err(EnvoyTargetError::Launch(other).into()),
    }
}

/// Runs a scenario on a real Envoy with the module at `wasm`.
pub fn run(scenario: &Scenario, wasm: &Path) -> Result<Observed, Error> {
    let gateway = match Gateway::start(scenario, wasm)? {
        Started::Serving(gateway) => gateway,
        // Refused: Envoy exits and its log says why (the filter's error line).
        Started::Refused(log) => {
            return Ok(Observed {
                configured: false,
                logs: log.lines().map(str::to_owned).collect(),
                sees_upstreams: true,
                ..Observed::default()
            })
        }
    };
    let start = gateway.begin();
    let destination = Destination {
        addr: gateway.envoy.listener,
        host_override: None,
        live: None,
    };
    let exchanges = wire::drive(scenario, &destination, start);
    // Only a scenario that checks metrics waits for the filter's next flush, or one
    // whose client gives up early (an attempt may still be on its way upstream): the
    // waits were most of the suite's wall time on Envoy.
    let reads_metrics = scenario.finally.as_ref().is_some_and(|f| f.reads_metrics());
    let aborts = scenario
        .steps
        .iter()
        .any(|step| step.request.abort_after.is_some());
    if reads_metrics || aborts {
        std::thread::sleep(wire::METRICS_SETTLE);
    }
    let mut proxies = BTreeMap::new();
    proxies.insert("gateway".to_owned(), observe(&gateway.envoy)?);
    for (name, envoy) in &gateway.sidecars {
        proxies.insert(name.clone(), observe(envoy)?);
    }
    let attempts = gateway.attempts();
    drop(gateway);
    Ok(Observed::of_proxies(true, exchanges, attempts, proxies))
}

/// One Envoy's filter metrics and log.
fn observe(envoy: &Envoy) -> Result<ProxyObserved, Error> {
    Ok(ProxyObserved {
        metrics: read_metrics(envoy)?,
        logs: envoy.log().lines().map(str::to_owned).collect(),
    })
}

/// The filter's metrics from Envoy's admin `/stats`, without the `wasmcustom.` prefix.
fn read_metrics(envoy: &Envoy) -> Result<BTreeMap<String, f64>, Error> {
    let stats = envoy
        .stats("^wasmcustom\\.")
        .map_err(|e| EnvoyTargetError::Stats(Box::new(e)))?;
    Ok(stats
        .into_iter()
        .filter_map(|(name, value)| {
            let name = name.strip_prefix("wasmcustom.")?;
            Some((name.to_owned(), value as f64))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn an_envoy_that_exited_is_a_refusal_and_any_other_failure_an_error() {
        let exited = LaunchError::Envoy {
            proxy: "gateway".into(),
            source: Box::new(EnvoyError::Exited {
                status: std::process::ExitStatus::from_raw(1 << 8),
                log: "wasm log: invalid configuration".into(),
            }),
        };
        match refused(exited) {
            Ok(Started::Refused(log)) => assert!(log.ends_with("invalid configuration"), "{log}"),
            _ => panic!("an Envoy that exited refused its configuration"),
        }
        let unready = LaunchError::Envoy {
            proxy: "gateway".into(),
            source: Box::new(EnvoyError::NotReady {
                within: std::time::Duration::from_secs(30),
                log: String::new(),
            }),
        };
        assert!(matches!(
            refused(unready),
            Err(Error::Envoy(EnvoyTargetError::Launch(_)))
        ));
    }
}
