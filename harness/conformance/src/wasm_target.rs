//! The `wasm` target: the module in the harness host, behind it the emulated router and
//! the simulated upstreams, all in virtual time.
//!
//! ## One world of proxies
//!
//! A scenario without a topology has one proxy: the entry, a gateway routing by path
//! prefix (or, with a sidecar-mode configuration, a pod's sidecar routing by
//! destination authority). With a topology every pod of a calling service gets its
//! own sidecar: a host instance of its own (its own VMs, shared data, metrics), its own
//! emulated router under Istio's in-mesh retry policy and its own cluster state. A
//! simulated service that calls others does so when an attempt reaches it, through
//! its pod's sidecar, one call after the other, and answers 503 when a call fails. All
//! proxies live on one virtual timeline: one event queue, every clock moved together.
//! A proxy that runs "without the filter" runs the workspace's no-op module, which
//! passes every callback through untouched.
//!
//! The run is a discrete-event simulation. Requests arrive as the step's plan says;
//! each goes through the filter at once (the host runs callbacks synchronously), then
//! through the router, whose attempts, back-offs and timeouts are events at their
//! scenario times. The proxy clock is moved to each event's time before it is handled,
//! so the filter's ticks fire in between exactly as they would in Envoy. Requests are
//! spread over the workers in turn, as connections are over Envoy's worker threads.

use super::normalize::normalize;
use super::observe::{Exchange, NoReply, Observed, ProxyObserved, Reply};
use super::rng::Rng;
use super::router::{
    backoff, connect_failure_reply, no_healthy_upstream_reply, overflow_reply, reset_reply,
    timeout_reply, Cluster, Outcome, Policy, RouteEntry, CONSUMED_HEADERS,
};
use super::scenario::{self, OutlierDetection, Scenario};
use super::traffic::{ClientRequest, Plan};
use super::upstreams::{Answer, Upstreams, ANSWERED_BY, REQUEST_ID};
use super::{Error, RunError};
use c4mesh_filter_core::config::Mode;
use c4mesh_host::{Clock, HeaderMap, LogLevel, Proxy, Response, StreamId, Value};
use c4mesh_mesh::istio::plan::VirtualHost;
use c4mesh_mesh::istio::{generated, translate, MeshPlan, ProxyPlan};
use c4mesh_mesh::topology::{self, Topology};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest a scenario may run in virtual time: a request that never ends is a broken
/// scenario, not a reason to loop forever.
const VIRTUAL_LIMIT: Duration = Duration::from_secs(3600);

/// How long after the last step metrics are read: the filter flushes on its tick, and
/// metrics may lag by up to a second (SPEC 2.5).
pub const METRICS_SETTLE: Duration = Duration::from_millis(1100);

/// The mesh of a scenario as Istio builds it: the entry proxy's plan (the gateway, or
/// a pod's sidecar for a sidecar-mode configuration without topology), each calling
/// pod's sidecar plan, the services, and the namespace sidecars resolve authorities in.
pub struct Mesh {
    /// The entry proxy (as `gateway`) and the sidecar of each pod of a calling service.
    pub plan: MeshPlan,
    pub services: Vec<String>,
    pub namespace: String,
    /// The entry proxy is a sidecar (a sidecar-mode configuration without topology).
    pub entry_is_sidecar: bool,
    pub topology: Topology,
    /// Each service's first route prefix: the path its callers use.
    pub call_paths: Vec<String>,
}

impl Mesh {
    /// The translation of the scenario's Istio resources (`scenario::istio_resources`).
    pub fn of(scenario: &Scenario) -> Result<Mesh, Error> {
        let config = scenario::mesh_config(scenario);
        let services = scenario::services_of(scenario);
        let call_paths = services
            .iter()
            .map(|service| {
                config
                    .routes
                    .iter()
                    .find(|r| r.service == *service)
                    .map_or_else(|| "/".to_owned(), |r| r.prefix.clone())
            })
            .collect();
        let topology = Topology {
            calls: scenario
                .topology
                .as_ref()
                .map(|t| t.calls.clone())
                .unwrap_or_default(),
        };
        let resources = scenario::istio_resources(scenario)?;
        let mesh_services: Vec<String> = services
            .iter()
            .filter(|s| s.as_str() != topology::EXTERNAL)
            .cloned()
            .collect();
        let mut workloads = generated::workloads(&mesh_services);
        workloads.path_normalization = match scenario.mesh.path_normalization {
            scenario::PathNormalization::Base => translate::PathNormalization::Base,
            scenario::PathNormalization::None => translate::PathNormalization::None,
        };
        let fail = |e: c4mesh_mesh::istio::TranslateError| Error::Scenario {
            file: scenario.file.display().to_string(),
            line: None,
            field: "istio".into(),
            message: e.to_string(),
        };
        let entry_is_sidecar = config.mode == Mode::Sidecar;
        let entry = if entry_is_sidecar && scenario.topology.is_none() {
            translate::sidecar(&resources, &workloads, "client", 0).map_err(fail)?
        } else if scenario.mesh.gateway == scenario::GatewayKind::GatewayApi {
            translate::gateway_api(&resources, &workloads, c4mesh_manifests::GATEWAY)
                .map_err(fail)?
        } else {
            translate::gateway(&resources, &workloads).map_err(fail)?
        };
        let mut sidecars = Vec::new();
        for service in &mesh_services {
            if topology.calls_out(service) {
                for host in 0..scenario.mesh.hosts {
                    sidecars.push(
                        translate::sidecar(&resources, &workloads, service, host).map_err(fail)?,
                    );
                }
            }
        }
        Ok(Mesh {
            plan: MeshPlan {
                gateway: entry,
                sidecars,
            },
            services,
            namespace: config.namespace.clone(),
            entry_is_sidecar,
            topology,
            call_paths,
        })
    }

    /// The route a proxy's plan takes for a request, as Envoy picks it: the virtual
    /// host by authority (exact domain, then the longest `*.suffix`, then the longest
    /// `prefix*`, then `*`; the port ignored where the plan says so), then its first
    /// route matching method and path. `None`: Envoy's 404.
    pub fn route(
        &self,
        plan: &ProxyPlan,
        authority: &str,
        method: &str,
        target: &str,
    ) -> Option<RouteEntry> {
        let authority = authority.to_ascii_lowercase();
        let host = if plan.ignore_port_in_host_matching {
            authority
                .rsplit_once(':')
                .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
                .map_or(authority.as_str(), |(h, _)| h)
        } else {
            authority.as_str()
        };
        let virtual_host = select_virtual_host(&plan.virtual_hosts, host)?;
        let path = target.split(['?', '#']).next().unwrap_or("");
        let route = virtual_host
            .routes
            .iter()
            .find(|r| r.matches(method, path))?;
        let service = self.services.iter().position(|s| *s == route.cluster)?;
        let retry = route.retry.as_ref();
        Some(RouteEntry {
            service,
            retry_on: retry.map(|r| r.retry_on.clone()).unwrap_or_default(),
            num_retries: retry.map_or(0, |r| r.num_retries),
            timeout: route.timeout,
            per_try_timeout: retry.and_then(|r| r.per_try_timeout),
            retriable_status_codes: retry
                .map(|r| r.retriable_status_codes.clone())
                .unwrap_or_default(),
        })
    }

    /// A proxy's cluster state, one per service, from its plan's cluster policies.
    fn clusters(&self, plan: &ProxyPlan, hosts: usize, workers: usize) -> Vec<Cluster> {
        self.services
            .iter()
            .map(|service| {
                let policy = plan.clusters.iter().find(|c| &c.name == service);
                let outlier = policy
                    .and_then(|c| c.outlier.as_ref())
                    .map(|o| OutlierDetection {
                        consecutive_5xx: o.consecutive(),
                        interval: o.interval(),
                        base_ejection: o.base(),
                        max_ejection_percent: o.max_ejection(),
                    });
                let panic = policy.map_or(50.0, |c| c.panic_threshold());
                let max_requests = policy.map_or(u32::MAX, |c| c.circuit_breakers.max_requests);
                Cluster::new(hosts, workers, outlier, panic).with_max_requests(max_requests)
            })
            .collect()
    }
}

/// Envoy's virtual host choice for a host name.
fn select_virtual_host<'a>(hosts: &'a [VirtualHost], host: &str) -> Option<&'a VirtualHost> {
    let domains = || {
        hosts
            .iter()
            .flat_map(|v| v.domains.iter().map(move |d| (v, d.as_str())))
    };
    if let Some((v, _)) = domains().find(|(_, d)| *d == host) {
        return Some(v);
    }
    let suffix = domains()
        .filter(|(_, d)| {
            d.len() > 1 && d.starts_with('*') && host.ends_with(&d[1..]) && host.len() > d.len() - 1
        })
        .max_by_key(|(_, d)| d.len());
    if let Some((v, _)) = suffix {
        return Some(v);
    }
    let prefix = domains()
        .filter(|(_, d)| {
            d.len() > 1
                && d.ends_with('*')
                && host.starts_with(&d[..d.len() - 1])
                && host.len() > d.len() - 1
        })
        .max_by_key(|(_, d)| d.len());
    if let Some((v, _)) = prefix {
        return Some(v);
    }
    domains().find(|(_, d)| *d == "*").map(|(v, _)| v)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// Request `i` of the current step is due.
    Send(usize),
    /// An attempt of a flight ends.
    AttemptEnd {
        flight: usize,
        attempt: u32,
        outcome: OutcomeKey,
    },
    PerTryTimeout {
        flight: usize,
        attempt: u32,
    },
    Retry {
        flight: usize,
    },
    Deadline {
        flight: usize,
    },
    /// The client of request `request` (of step `step`) gives up: it resets its stream
    /// if no response has come.
    Abort {
        step: usize,
        request: u64,
    },
}

/// [`Outcome`] with an order, for the event queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum OutcomeKey {
    Status(u16),
    Reset,
    ConnectFailure,
}

/// Who sent a request into a proxy.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// The scenario's client: request `request` of step `step`.
    Client { step: usize, request: u64 },
    /// A simulated service serving an attempt ([`Serve`] index).
    Call(usize),
}

/// A request on its way through a proxy's router.
struct Flight {
    node: usize,
    stream: StreamId,
    origin: Origin,
    worker: usize,
    service: usize,
    policy: Policy,
    upstream_headers: Vec<(String, String)>,
    tried: Vec<usize>,
    attempts: u32,
    /// The attempt in progress, if any.
    open: Option<u32>,
    /// Counted against its cluster's `max_requests` (released when it ends).
    admitted: bool,
    done: bool,
}

/// A host of a calling service serving one attempt: its calls, one after the other.
struct Serve {
    /// The attempt served: its flight and number.
    flight: usize,
    attempt: u32,
    service: usize,
    host: usize,
    /// The next callee to call.
    next: usize,
    /// What the host answers when every call succeeded, and after how long.
    status: u16,
    latency: Duration,
    /// The conformance request id, carried to the calls.
    request: Option<String>,
}

/// One proxy of the world: the gateway or a pod's sidecar.
struct Node {
    name: String,
    proxy: Proxy,
    /// Cluster state per service, this proxy's own.
    clusters: Vec<Cluster>,
    /// What istiod sends this proxy: its routes and cluster policies.
    plan: ProxyPlan,
    next_worker: usize,
}

struct Run<'a> {
    scenario: &'a Scenario,
    nodes: Vec<Node>,
    /// The sidecar node of each pod of a calling service.
    pods: HashMap<(usize, usize), usize>,
    mesh: Mesh,
    upstreams: Upstreams,
    rng: Rng,
    now: Duration,
    queue: BinaryHeap<Reverse<(Duration, u64, Event)>>,
    seq: u64,
    flights: Vec<Flight>,
    serves: Vec<Serve>,
    exchanges: Vec<Exchange>,
    next_id: u64,
    /// Entry streams by request id, until their exchange is recorded.
    open: HashMap<u64, StreamId>,
}

/// The entry proxy's node index.
const ENTRY: usize = 0;

/// Runs a scenario on the module at `wasm`.
pub fn run(scenario: &Scenario, wasm: &Path) -> Result<Observed, Error> {
    let mesh = Mesh::of(scenario)?;
    let filter_at = scenario.topology.as_ref().map(|t| t.filter_at);
    let workers = scenario.mesh.workers;
    let entry_module = match filter_at {
        Some(at) if !at.gateway() => Module::without_filter()?,
        _ => Module::filter(wasm, scenario::config_bytes(scenario)),
    };
    let mut nodes = vec![Node {
        name: "gateway".into(),
        proxy: entry_module.start(scenario, workers)?,
        clusters: mesh.clusters(&mesh.plan.gateway, scenario.mesh.hosts, workers),
        plan: mesh.plan.gateway.clone(),
        next_worker: 0,
    }];
    let mut pods = HashMap::new();
    if let Some(spec) = &scenario.topology {
        let module = if spec.filter_at.sidecars() {
            Module::filter(wasm, scenario::sidecar_config_bytes(spec))
        } else {
            Module::without_filter()?
        };
        for (service, name) in mesh.services.iter().enumerate() {
            if !mesh.topology.calls_out(name) {
                continue;
            }
            for host in 0..scenario.mesh.hosts {
                let Some(plan) = mesh.plan.sidecar(&format!("{name}/{host}")) else {
                    return Err(RunError::NoSidecarPlan(format!("{name}/{host}")).into());
                };
                pods.insert((service, host), nodes.len());
                nodes.push(Node {
                    name: format!("{name}/{host}"),
                    proxy: module.start(scenario, workers)?,
                    clusters: mesh.clusters(plan, scenario.mesh.hosts, workers),
                    plan: plan.clone(),
                    next_worker: 0,
                });
            }
        }
    }
    let upstreams = Upstreams::new(
        &mesh.services,
        scenario.mesh.hosts,
        &scenario.upstreams,
        scenario.seed,
    );
    let mut run = Run {
        scenario,
        nodes,
        pods,
        mesh,
        upstreams,
        rng: Rng::new(scenario.seed),
        now: Duration::ZERO,
        queue: BinaryHeap::new(),
        seq: 0,
        flights: Vec::new(),
        serves: Vec::new(),
        exchanges: Vec::new(),
        next_id: 1,
        open: HashMap::new(),
    };
    if run.nodes.iter().any(|n| !n.proxy.configured()) {
        return Ok(run.observed(false));
    }
    for (index, step) in scenario.steps.iter().enumerate() {
        run.step(index, step)?;
    }
    run.advance_to(run.now + METRICS_SETTLE)?;
    Ok(run.observed(true))
}

/// The module a proxy runs and its configuration.
struct Module {
    path: PathBuf,
    config: Vec<u8>,
}

impl Module {
    fn filter(wasm: &Path, config: Vec<u8>) -> Module {
        Module {
            path: wasm.to_path_buf(),
            config,
        }
    }

    /// A proxy without the filter: the no-op module.
    fn without_filter() -> Result<Module, Error> {
        Ok(Module {
            path: c4mesh_guests::NOOP.file()?,
            config: Vec::new(),
        })
    }

    /// Starts the module with the clusters the envoy target's proxies have: one per
    /// service of the scenario.
    fn start(&self, scenario: &Scenario, workers: usize) -> Result<Proxy, Error> {
        Ok(Proxy::builder()
            .wasm_file(&self.path)
            .config(&self.config)
            .workers(workers)
            .clusters(scenario::services_of(scenario))
            .clock(Clock::virtual_time())
            .log_level(LogLevel::Info)
            .seed(scenario.seed)
            .start()?)
    }
}

/// A proxy's metrics as numbers.
fn metrics_of(proxy: &Proxy) -> BTreeMap<String, f64> {
    proxy
        .metrics()
        .into_iter()
        .map(|(name, value)| {
            let number = match value {
                c4mesh_host::MetricValue::Counter(v) | c4mesh_host::MetricValue::Gauge(v) => {
                    v as f64
                }
                c4mesh_host::MetricValue::Histogram(values) => values.len() as f64,
            };
            (name, number)
        })
        .collect()
}

impl Run<'_> {
    fn observed(self, configured: bool) -> Observed {
        let proxies: BTreeMap<String, ProxyObserved> = self
            .nodes
            .iter()
            .map(|node| {
                (
                    node.name.clone(),
                    ProxyObserved {
                        metrics: metrics_of(&node.proxy),
                        logs: node.proxy.logs().into_iter().map(|l| l.message).collect(),
                    },
                )
            })
            .collect();
        Observed::of_proxies(
            configured,
            self.exchanges,
            self.upstreams.records().to_vec(),
            proxies,
        )
    }

    fn schedule(&mut self, at: Duration, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, event)));
    }

    fn advance_to(&mut self, at: Duration) -> Result<(), Error> {
        if at > self.now {
            for node in &mut self.nodes {
                node.proxy.advance(at - self.now)?;
            }
            self.now = at;
        }
        Ok(())
    }

    fn step(&mut self, index: usize, step: &scenario::Step) -> Result<(), Error> {
        if let Some(at) = step.at {
            self.advance_to(at)?;
        }
        let start = self.now;
        let plan = Plan::of(step);
        let mut sent = 0usize;
        let mut in_flight = 0usize;
        let mut waiting = 0usize;
        let mut finished = 0usize;
        let initial = if plan.interval.is_some() {
            plan.count
        } else {
            plan.concurrency.min(plan.count)
        };
        for i in 0..initial {
            self.schedule(start + plan.due(i), Event::Send(i));
        }
        let mut next_closed = initial;
        while finished < plan.count {
            let Some(Reverse((at, _, event))) = self.queue.pop() else {
                return Err(RunError::Stalled {
                    scenario: self.scenario.name.clone(),
                    step: index,
                    left: plan.count - finished,
                    count: plan.count,
                }
                .into());
            };
            if at > VIRTUAL_LIMIT {
                return Err(RunError::TooLong {
                    scenario: self.scenario.name.clone(),
                    limit: VIRTUAL_LIMIT,
                }
                .into());
            }
            self.advance_to(at)?;
            let done = match event {
                Event::Send(_) => {
                    if in_flight >= plan.concurrency {
                        // Open loop with every client busy: sent when one is free.
                        waiting += 1;
                        0
                    } else {
                        in_flight += 1;
                        sent += 1;
                        self.send(index, step)?
                    }
                }
                other => self.handle(other)?,
            };
            for _ in 0..done {
                finished += 1;
                in_flight -= 1;
                if waiting > 0 {
                    waiting -= 1;
                    in_flight += 1;
                    sent += 1;
                    let more = self.send(index, step)?;
                    // A request answered at once frees its client at once.
                    finished += more;
                    in_flight -= more;
                } else if plan.interval.is_none() && next_closed < plan.count {
                    self.schedule(self.now, Event::Send(next_closed));
                    next_closed += 1;
                }
            }
        }
        debug_assert_eq!(sent, plan.count);
        Ok(())
    }

    /// Sends one client request into the entry proxy; returns 1 if it was answered at
    /// once.
    fn send(&mut self, step: usize, spec: &scenario::Step) -> Result<usize, Error> {
        let request = ClientRequest::new(&spec.request, self.next_id);
        self.next_id += 1;
        let worker = (request.id as usize) % self.scenario.mesh.workers.max(1);
        // The connection manager normalises the path before any filter; a path it
        // refuses gets its 400 without reaching the filter.
        let path = if self.nodes[ENTRY].plan.connection_manager.normalize_path {
            match normalize(&request.path) {
                Some(path) => path,
                None => {
                    self.exchanges.push(Exchange {
                        id: request.id,
                        step,
                        response: Ok(Reply {
                            status: 400,
                            headers: vec![("content-length".into(), "0".into())],
                            body: Vec::new(),
                        }),
                    });
                    return Ok(1);
                }
            }
        } else {
            request.path.clone()
        };
        let mut headers = HeaderMap::new();
        if let Some(host) = &request.host {
            headers.add(":authority", host);
        }
        headers.add(":path", &path);
        headers.add(":method", &request.method);
        headers.add(":scheme", "http");
        for (name, value) in &request.headers {
            headers.add(name, value);
        }
        let proxy = &mut self.nodes[ENTRY].proxy;
        let stream = proxy.open_stream(worker)?;
        self.open.insert(request.id, stream);
        match &request.body {
            None => proxy.request_headers(stream, headers, true)?,
            Some(body) => {
                headers.set("content-length", body.len().to_string());
                proxy.request_headers(stream, headers, false)?;
                proxy.request_body(stream, body, true)?;
            }
        }
        let origin = Origin::Client {
            step,
            request: request.id,
        };
        let answered = self.route(ENTRY, stream, worker, origin)?;
        if let Some(patience) = request.abort_after.filter(|_| answered == 0) {
            self.schedule(
                self.now + patience,
                Event::Abort {
                    step,
                    request: request.id,
                },
            );
        }
        Ok(answered)
    }

    /// A service's host calls its next callee through its pod's sidecar, or, when
    /// every call is done, answers the attempt it serves.
    fn call_next(&mut self, serve: usize) -> Result<(), Error> {
        let Some(s) = self.serves.get(serve) else {
            return Ok(());
        };
        let (service, host) = (s.service, s.host);
        let name = self.mesh.services.get(service).cloned().unwrap_or_default();
        let Some(callee) = self.mesh.topology.callees(&name).get(s.next).cloned() else {
            let (flight, attempt, status, latency) = (s.flight, s.attempt, s.status, s.latency);
            self.answer(flight, attempt, status, latency);
            return Ok(());
        };
        let request = s.request.clone();
        let Some(&node) = self.pods.get(&(service, host)) else {
            return Err(RunError::NoSidecar(format!("{name}/{host}")).into());
        };
        let path = self
            .mesh
            .services
            .iter()
            .position(|s| *s == callee)
            .and_then(|i| self.mesh.call_paths.get(i).cloned())
            .unwrap_or_else(|| "/".into());
        let mut headers = HeaderMap::new();
        headers.add(
            ":authority",
            topology::call_authority(&callee, &self.mesh.namespace),
        );
        headers.add(":path", &path);
        headers.add(":method", "GET");
        headers.add(":scheme", "http");
        headers.add(topology::CALLER, format!("{name}/{host}"));
        if let Some(id) = &request {
            headers.add(REQUEST_ID, id);
        }
        let workers = self.scenario.mesh.workers.max(1);
        let n = &mut self.nodes[node];
        let worker = n.next_worker % workers;
        n.next_worker = n.next_worker.wrapping_add(1);
        let stream = n.proxy.open_stream(worker)?;
        n.proxy.request_headers(stream, headers, true)?;
        if let Some(s) = self.serves.get_mut(serve) {
            s.next += 1;
        }
        self.route(node, stream, worker, Origin::Call(serve))?;
        Ok(())
    }

    /// A call of a serving host ended with `status`: a failure makes the host answer
    /// 503, a success moves on to its next call.
    fn call_done(&mut self, serve: usize, status: Option<u16>) -> Result<(), Error> {
        let Some(s) = self.serves.get(serve) else {
            return Ok(());
        };
        if status.is_none_or(|status| status >= 500) {
            let (flight, attempt, latency) = (s.flight, s.attempt, s.latency);
            self.answer(flight, attempt, 503, latency);
            return Ok(());
        }
        self.call_next(serve)
    }

    /// The host serving attempt `attempt` of `flight` answers `status` after `latency`.
    fn answer(&mut self, flight: usize, attempt: u32, status: u16, latency: Duration) {
        self.schedule(
            self.now + latency,
            Event::AttemptEnd {
                flight,
                attempt,
                outcome: OutcomeKey::Status(status),
            },
        );
    }

    /// After a proxy's filter saw a request's headers: either it answered at once, or
    /// the request goes to the proxy's router. Returns 1 when a client request was
    /// answered at once.
    fn route(
        &mut self,
        node: usize,
        stream: StreamId,
        worker: usize,
        origin: Origin,
    ) -> Result<usize, Error> {
        let Some(view) = self.nodes[node].proxy.stream(stream) else {
            return Err(RunError::StreamVanished(stream).into());
        };
        if view.response().is_some() || view.finished() || view.reset() {
            return self.complete(node, stream, origin);
        }
        let Some(upstream) = view.upstream_request() else {
            return match origin {
                Origin::Client { step, request } => {
                    self.record_error(step, request, "the module left the request paused".into());
                    Ok(1)
                }
                Origin::Call(serve) => {
                    self.call_done(serve, None)?;
                    Ok(0)
                }
            };
        };
        let header = |name: &str| upstream.header(name).map(str::to_owned);
        let route = self.mesh.route(
            &self.nodes[node].plan,
            &header(":authority").unwrap_or_default(),
            &header(":method").unwrap_or_default(),
            &header(":path").unwrap_or_default(),
        );
        let Some(route) = route else {
            // Envoy's router: no route, 404 with an empty body.
            self.nodes[node]
                .proxy
                .respond(stream, Response::status(404))?;
            return self.complete(node, stream, origin);
        };
        let policy = Policy::for_request(&route, header);
        let upstream_headers: Vec<(String, String)> = upstream
            .headers
            .to_strings()
            .into_iter()
            .filter(|(n, _)| !CONSUMED_HEADERS.contains(&n.as_bytes()))
            .collect();
        let flight = self.flights.len();
        self.flights.push(Flight {
            node,
            stream,
            origin,
            worker,
            service: route.service,
            policy,
            upstream_headers,
            tried: Vec::new(),
            attempts: 0,
            open: None,
            admitted: false,
            done: false,
        });
        if !policy.timeout.is_zero() {
            self.schedule(self.now + policy.timeout, Event::Deadline { flight });
        }
        self.start_attempt(flight)
    }

    fn start_attempt(&mut self, index: usize) -> Result<usize, Error> {
        let now = self.now;
        let Some(flight) = self.flights.get_mut(index) else {
            return Ok(0);
        };
        let Some(cluster) = self.nodes[flight.node].clusters.get_mut(flight.service) else {
            return Ok(0);
        };
        if !flight.admitted {
            if !cluster.admit() {
                let (status, text) = overflow_reply();
                let reply = router_reply(status, text).header("x-envoy-overloaded", "true");
                return self.finish(index, reply, None);
            }
            flight.admitted = true;
        }
        let Some(host) = cluster.pick(flight.worker, &flight.tried, now) else {
            // Every host ejected under a panic threshold that keeps them out.
            let (status, text) = no_healthy_upstream_reply();
            return self.finish(index, router_reply(status, text), None);
        };
        flight.tried.push(host);
        flight.attempts += 1;
        let attempt = flight.attempts;
        flight.open = Some(attempt);
        let mut headers = flight.upstream_headers.clone();
        headers.push(("x-envoy-attempt-count".into(), attempt.to_string()));
        if !flight.policy.timeout.is_zero() {
            headers.push((
                "x-envoy-expected-rq-timeout-ms".into(),
                flight.policy.timeout.as_millis().to_string(),
            ));
        }
        let request = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(REQUEST_ID))
            .map(|(_, v)| v.clone());
        let per_try = flight.policy.per_try_timeout;
        let service = flight.service;
        let calls_out = self
            .mesh
            .services
            .get(service)
            .is_some_and(|name| self.mesh.topology.calls_out(name));
        if self.upstreams.is_down(service, host) {
            // Nothing listens: the connection is refused at once, no attempt recorded.
            self.schedule(
                now,
                Event::AttemptEnd {
                    flight: index,
                    attempt,
                    outcome: OutcomeKey::ConnectFailure,
                },
            );
            return Ok(0);
        }
        match self.upstreams.attempt(service, host, now, headers) {
            Answer::Respond { status, latency } if calls_out && (200..300).contains(&status) => {
                let serve = self.serves.len();
                self.serves.push(Serve {
                    flight: index,
                    attempt,
                    service,
                    host,
                    next: 0,
                    status,
                    latency,
                    request,
                });
                self.call_next(serve)?;
            }
            Answer::Respond { status, latency } => self.schedule(
                now + latency,
                Event::AttemptEnd {
                    flight: index,
                    attempt,
                    outcome: OutcomeKey::Status(status),
                },
            ),
            Answer::Reset { latency } => self.schedule(
                now + latency,
                Event::AttemptEnd {
                    flight: index,
                    attempt,
                    outcome: OutcomeKey::Reset,
                },
            ),
            Answer::Hang => {}
        }
        if let Some(per_try) = per_try {
            self.schedule(
                now + per_try,
                Event::PerTryTimeout {
                    flight: index,
                    attempt,
                },
            );
        }
        Ok(0)
    }

    /// Handles a router event; returns how many client requests it finished (0 or 1).
    fn handle(&mut self, event: Event) -> Result<usize, Error> {
        let (index, attempt, outcome) = match event {
            Event::Send(_) => return Ok(0),
            Event::AttemptEnd {
                flight,
                attempt,
                outcome,
            } => (
                flight,
                Some(attempt),
                match outcome {
                    OutcomeKey::Status(s) => Outcome::Status(s),
                    OutcomeKey::Reset => Outcome::Reset,
                    OutcomeKey::ConnectFailure => Outcome::ConnectFailure,
                },
            ),
            Event::PerTryTimeout { flight, attempt } => {
                (flight, Some(attempt), Outcome::PerTryTimeout)
            }
            Event::Retry { flight } => {
                if self.flights.get(flight).is_some_and(|f| !f.done) {
                    return self.start_attempt(flight);
                }
                return Ok(0);
            }
            Event::Deadline { flight } => {
                if self.flights.get(flight).is_none_or(|f| f.done) {
                    return Ok(0);
                }
                let (status, text) = timeout_reply();
                return self.finish(flight, router_reply(status, text), None);
            }
            Event::Abort { step, request } => return self.abort(step, request),
        };
        let now = self.now;
        let Some(flight) = self.flights.get_mut(index) else {
            return Ok(0);
        };
        if flight.done || flight.open != attempt {
            return Ok(0);
        }
        flight.open = None;
        let host = flight.tried.last().copied().unwrap_or(0);
        if let Some(cluster) = self.nodes[flight.node].clusters.get_mut(flight.service) {
            cluster.record(host, outcome, now);
        }
        if flight.policy.retry_after(outcome, flight.attempts - 1) {
            let delay = backoff(flight.attempts, &mut self.rng);
            self.schedule(now + delay, Event::Retry { flight: index });
            return Ok(0);
        }
        let service = flight.service;
        let response = match outcome {
            Outcome::Status(status) => {
                let name = self.mesh.services.get(service).cloned().unwrap_or_default();
                Response::status(status)
                    .header("content-type", "application/json")
                    .header(ANSWERED_BY, &format!("{name}/{host}"))
                    .body(Upstreams::body(&name, host))
            }
            Outcome::Reset => {
                let (status, text) = reset_reply();
                router_reply(status, text)
            }
            Outcome::ConnectFailure => {
                let (status, text) = connect_failure_reply();
                router_reply(status, text)
            }
            Outcome::PerTryTimeout => {
                let (status, text) = timeout_reply();
                router_reply(status, text)
            }
        };
        let address = matches!(outcome, Outcome::Status(_)).then_some((service, host));
        self.finish(index, response, address)
    }

    /// The client of request `id` gives up before its response: its entry stream is
    /// reset (the filter sees `on_log` without a response), and the router cancels the
    /// attempt in flight without retrying, as Envoy does on a downstream reset.
    /// Returns 1 when the request was still open.
    fn abort(&mut self, step: usize, id: u64) -> Result<usize, Error> {
        let Some(stream) = self.open.remove(&id) else {
            return Ok(0);
        };
        if let Some(flight) = self
            .flights
            .iter_mut()
            .find(|f| f.node == ENTRY && f.stream == stream && !f.done)
        {
            flight.done = true;
            flight.open = None;
            if std::mem::take(&mut flight.admitted) {
                if let Some(cluster) = self.nodes[ENTRY].clusters.get_mut(flight.service) {
                    cluster.release();
                }
            }
        }
        self.nodes[ENTRY].proxy.reset(stream)?;
        self.exchanges.push(Exchange {
            id,
            step,
            response: Err(NoReply::Aborted),
        });
        Ok(1)
    }

    /// Ends a flight: the response goes back through its proxy's filter to whoever
    /// sent the request. Returns 1 when that was the client.
    fn finish(
        &mut self,
        index: usize,
        response: Response,
        upstream: Option<(usize, usize)>,
    ) -> Result<usize, Error> {
        let Some(flight) = self.flights.get_mut(index) else {
            return Ok(0);
        };
        flight.done = true;
        if flight.admitted {
            flight.admitted = false;
            if let Some(cluster) = self.nodes[flight.node].clusters.get_mut(flight.service) {
                cluster.release();
            }
        }
        let (node, stream, origin, attempts) =
            (flight.node, flight.stream, flight.origin, flight.attempts);
        let host =
            upstream.unwrap_or_else(|| (flight.service, flight.tried.last().copied().unwrap_or(0)));
        let proxy = &mut self.nodes[node].proxy;
        proxy.set_stream_property(
            stream,
            "upstream.address",
            format!("10.0.{}.{}:8080", host.0, host.1 + 1),
        )?;
        proxy.set_stream_property(
            stream,
            "upstream.request_attempt_count",
            Value::Uint(u64::from(attempts)),
        )?;
        proxy.respond(stream, response)?;
        self.complete(node, stream, origin)
    }

    /// A stream of a proxy has its response: the client records it, a calling service
    /// goes on. Returns 1 for the client.
    fn complete(&mut self, node: usize, stream: StreamId, origin: Origin) -> Result<usize, Error> {
        match origin {
            Origin::Client { step, request } => {
                self.record(step, request);
                Ok(1)
            }
            Origin::Call(serve) => {
                let status = self.nodes[node]
                    .proxy
                    .exchange(stream)
                    .ok()
                    .and_then(|e| e.status());
                self.call_done(serve, status)?;
                Ok(0)
            }
        }
    }

    fn record(&mut self, step: usize, id: u64) {
        let Some(stream) = self.open.remove(&id) else {
            return;
        };
        let response = match self.nodes[ENTRY].proxy.exchange(stream) {
            Ok(exchange) => match (exchange.status(), exchange.response.as_ref()) {
                (Some(status), Some(response)) => Ok(Reply {
                    status,
                    headers: response
                        .headers
                        .to_strings()
                        .into_iter()
                        .filter(|(n, _)| !n.starts_with(':'))
                        .collect(),
                    body: response.body.concat(),
                }),
                _ if exchange.reset => Err(NoReply::Failed("the stream was reset".into())),
                _ => Err(NoReply::Failed("no response".into())),
            },
            Err(e) => Err(NoReply::Failed(super::describe(&e))),
        };
        self.exchanges.push(Exchange { id, step, response });
    }

    fn record_error(&mut self, step: usize, id: u64, message: String) {
        self.open.remove(&id);
        self.exchanges.push(Exchange {
            id,
            step,
            response: Err(NoReply::Failed(message)),
        });
    }
}

/// A reply of Envoy's router itself.
fn router_reply(status: u16, text: &str) -> Response {
    Response::status(status)
        .header("content-type", "text/plain")
        .body(text)
}
