//! The `wasm` target: the module in the harness host, behind it the emulated router and
//! the simulated upstreams, all in virtual time.
//!
//! The run is a discrete-event simulation. Requests arrive as the step's plan says;
//! each goes through the filter at once (the host runs callbacks synchronously), then
//! through the router, whose attempts, back-offs and timeouts are events at their
//! scenario times. The proxy clock is moved to each event's time before it is handled,
//! so the filter's ticks fire in between exactly as they would in Envoy. Requests are
//! spread over the workers in turn, as connections are over Envoy's worker threads.

use super::observe::{Exchange, Observed, Reply};
use super::rng::Rng;
use super::router::{
    backoff, reset_reply, timeout_reply, Cluster, Outcome, Policy, RouteEntry, RouteTable,
    CONSUMED_HEADERS,
};
use super::scenario::{self, Scenario};
use super::traffic::{ClientRequest, Plan};
use super::upstreams::{Answer, Upstreams, ANSWERED_BY};
use super::Error;
use crate::{Clock, HeaderMap, LogLevel, Proxy, Response, StreamId, Value};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::path::Path;
use std::time::Duration;

/// Longest a scenario may run in virtual time: a request that never ends is a broken
/// scenario, not a reason to loop forever.
const VIRTUAL_LIMIT: Duration = Duration::from_secs(3600);

/// How long after the last step metrics are read: the filter flushes on its tick, and
/// metrics may lag by up to a second (SPEC 2.5).
pub const METRICS_SETTLE: Duration = Duration::from_millis(1100);

/// The emulated mesh of a scenario: its route table and hosts.
pub struct Mesh {
    pub table: RouteTable,
    pub services: Vec<String>,
}

impl Mesh {
    /// The Envoy routes an operator would make of the configuration's routes: Envoy
    /// takes the first route that matches, so longer prefixes go first, which gives
    /// the router the filter's longest-prefix choice.
    pub fn of(scenario: &Scenario) -> Mesh {
        let config = scenario::mesh_config(scenario);
        let services = scenario::services_of(scenario);
        let mut ordered: Vec<_> = config.routes.iter().collect();
        ordered.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        let routes = ordered
            .into_iter()
            .map(|r| RouteEntry {
                prefix: r.prefix.clone(),
                service: services.iter().position(|s| *s == r.service).unwrap_or(0),
                retry_on: r.retry.retry_on.clone(),
                num_retries: r.retry.attempts,
                timeout: Duration::from_millis(r.timeout_ms),
                per_try_timeout: scenario.mesh.per_try_timeout,
            })
            .collect();
        Mesh {
            table: RouteTable::new(routes),
            services,
        }
    }
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
}

/// [`Outcome`] with an order, for the event queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum OutcomeKey {
    Status(u16),
    Reset,
}

/// A request on its way through the router.
struct Flight {
    stream: StreamId,
    step: usize,
    request: u64,
    worker: usize,
    service: usize,
    policy: Policy,
    upstream_headers: Vec<(String, String)>,
    tried: Vec<usize>,
    attempts: u32,
    /// The attempt in progress, if any.
    open: Option<u32>,
    done: bool,
}

struct Run<'a> {
    scenario: &'a Scenario,
    proxy: Proxy,
    mesh: Mesh,
    upstreams: Upstreams,
    clusters: Vec<Cluster>,
    rng: Rng,
    now: Duration,
    queue: BinaryHeap<Reverse<(Duration, u64, Event)>>,
    seq: u64,
    flights: Vec<Flight>,
    exchanges: Vec<Exchange>,
    next_id: u64,
    /// Streams by request id, until their exchange is recorded.
    open: HashMap<u64, StreamId>,
}

/// Runs a scenario on the module at `wasm`.
pub fn run(scenario: &Scenario, wasm: &Path) -> Result<Observed, Error> {
    let proxy = Proxy::builder()
        .wasm_file(wasm)
        .config(scenario::config_bytes(scenario))
        .workers(scenario.mesh.workers)
        .clock(Clock::virtual_time())
        .log_level(LogLevel::Info)
        .seed(scenario.seed)
        .start()?;
    let mesh = Mesh::of(scenario);
    let upstreams = Upstreams::new(
        &mesh.services,
        scenario.mesh.hosts,
        &scenario.upstreams,
        scenario.seed,
    );
    let clusters = mesh
        .services
        .iter()
        .map(|_| {
            Cluster::new(
                scenario.mesh.hosts,
                scenario.mesh.workers,
                scenario.mesh.outlier_detection.clone(),
            )
        })
        .collect();
    let mut run = Run {
        scenario,
        proxy,
        mesh,
        upstreams,
        clusters,
        rng: Rng::new(scenario.seed),
        now: Duration::ZERO,
        queue: BinaryHeap::new(),
        seq: 0,
        flights: Vec::new(),
        exchanges: Vec::new(),
        next_id: 1,
        open: HashMap::new(),
    };
    if !run.proxy.configured() {
        return Ok(run.observed(false));
    }
    for (index, step) in scenario.steps.iter().enumerate() {
        run.step(index, step)?;
    }
    run.advance_to(run.now + METRICS_SETTLE)?;
    Ok(run.observed(true))
}

impl Run<'_> {
    fn observed(self, configured: bool) -> Observed {
        let mut metrics = BTreeMap::new();
        for (name, value) in self.proxy.metrics() {
            let number = match value {
                crate::MetricValue::Counter(v) | crate::MetricValue::Gauge(v) => v as f64,
                crate::MetricValue::Histogram(values) => values.len() as f64,
            };
            metrics.insert(name, number);
        }
        Observed {
            configured,
            exchanges: self.exchanges,
            attempts: self.upstreams.records().to_vec(),
            metrics,
            logs: self.proxy.logs().into_iter().map(|l| l.message).collect(),
            sees_upstreams: true,
        }
    }

    fn schedule(&mut self, at: Duration, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, event)));
    }

    fn advance_to(&mut self, at: Duration) -> Result<(), Error> {
        if at > self.now {
            self.proxy.advance(at - self.now)?;
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
                return Err(Error::Run(format!(
                    "{}: step {index}: {} of {} requests never finished (nothing left to happen)",
                    self.scenario.name,
                    plan.count - finished,
                    plan.count
                )));
            };
            if at > VIRTUAL_LIMIT {
                return Err(Error::Run(format!(
                    "{}: still running after {VIRTUAL_LIMIT:?} of scenario time",
                    self.scenario.name
                )));
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

    /// Sends one request through the filter; returns 1 if it was answered at once.
    fn send(&mut self, step: usize, spec: &scenario::Step) -> Result<usize, Error> {
        let request = ClientRequest::new(&spec.request, self.next_id);
        self.next_id += 1;
        let worker = (request.id as usize) % self.scenario.mesh.workers.max(1);
        let mut headers = HeaderMap::new();
        if let Some(host) = &request.host {
            headers.add(":authority", host);
        }
        headers.add(":path", &request.path);
        headers.add(":method", &request.method);
        headers.add(":scheme", "http");
        for (name, value) in &request.headers {
            headers.add(name, value);
        }
        let stream = self.proxy.open_stream(worker)?;
        self.open.insert(request.id, stream);
        match &request.body {
            None => self.proxy.request_headers(stream, headers, true)?,
            Some(body) => {
                headers.set("content-length", body.len().to_string());
                self.proxy.request_headers(stream, headers, false)?;
                self.proxy.request_body(stream, body, true)?;
            }
        }
        let Some(view) = self.proxy.stream(stream) else {
            return Err(Error::Run(format!("stream {stream} vanished")));
        };
        if view.response().is_some() || view.finished() || view.reset() {
            self.record(step, request.id);
            return Ok(1);
        }
        let Some(upstream) = view.upstream_request() else {
            self.record_error(
                step,
                request.id,
                "the module left the request paused".into(),
            );
            return Ok(1);
        };
        let header = |name: &str| upstream.header(name).map(str::to_owned);
        let path = header(":path").unwrap_or_default();
        let Some(route) = self.mesh.table.lookup(&path).cloned() else {
            // Envoy's router: no route, 404 with an empty body.
            self.proxy.respond(stream, Response::status(404))?;
            self.record(step, request.id);
            return Ok(1);
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
            stream,
            step,
            request: request.id,
            worker,
            service: route.service,
            policy,
            upstream_headers,
            tried: Vec::new(),
            attempts: 0,
            open: None,
            done: false,
        });
        if !policy.timeout.is_zero() {
            self.schedule(self.now + policy.timeout, Event::Deadline { flight });
        }
        self.start_attempt(flight);
        Ok(0)
    }

    fn start_attempt(&mut self, index: usize) {
        let now = self.now;
        let Some(flight) = self.flights.get_mut(index) else {
            return;
        };
        let Some(cluster) = self.clusters.get_mut(flight.service) else {
            return;
        };
        let host = cluster.pick(flight.worker, &flight.tried, now);
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
        let per_try = flight.policy.per_try_timeout;
        let service = flight.service;
        match self.upstreams.attempt(service, host, now, headers) {
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
    }

    /// Handles a router event; returns how many requests it finished (0 or 1).
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
                },
            ),
            Event::PerTryTimeout { flight, attempt } => {
                (flight, Some(attempt), Outcome::PerTryTimeout)
            }
            Event::Retry { flight } => {
                if self.flights.get(flight).is_some_and(|f| !f.done) {
                    self.start_attempt(flight);
                }
                return Ok(0);
            }
            Event::Deadline { flight } => {
                if self.flights.get(flight).is_none_or(|f| f.done) {
                    return Ok(0);
                }
                let (status, text) = timeout_reply();
                self.finish(flight, router_reply(status, text), None)?;
                return Ok(1);
            }
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
        if let Some(cluster) = self.clusters.get_mut(flight.service) {
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
            Outcome::PerTryTimeout => {
                let (status, text) = timeout_reply();
                router_reply(status, text)
            }
        };
        let address = matches!(outcome, Outcome::Status(_)).then_some((service, host));
        self.finish(index, response, address)?;
        Ok(1)
    }

    /// Ends a flight: the response goes back through the filter to the client.
    fn finish(
        &mut self,
        index: usize,
        response: Response,
        upstream: Option<(usize, usize)>,
    ) -> Result<(), Error> {
        let Some(flight) = self.flights.get_mut(index) else {
            return Ok(());
        };
        flight.done = true;
        let (stream, step, request, attempts) =
            (flight.stream, flight.step, flight.request, flight.attempts);
        let host =
            upstream.unwrap_or_else(|| (flight.service, flight.tried.last().copied().unwrap_or(0)));
        self.proxy.set_stream_property(
            stream,
            "upstream.address",
            format!("10.0.{}.{}:8080", host.0, host.1 + 1),
        )?;
        self.proxy.set_stream_property(
            stream,
            "upstream.request_attempt_count",
            Value::Uint(u64::from(attempts)),
        )?;
        self.proxy.respond(stream, response)?;
        self.record(step, request);
        Ok(())
    }

    fn record(&mut self, step: usize, id: u64) {
        let Some(stream) = self.open.remove(&id) else {
            return;
        };
        let response = match self.proxy.exchange(stream) {
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
                _ if exchange.reset => Err("the stream was reset".into()),
                _ => Err("no response".into()),
            },
            Err(e) => Err(e.to_string()),
        };
        self.exchanges.push(Exchange { id, step, response });
    }

    fn record_error(&mut self, step: usize, id: u64, message: String) {
        self.open.remove(&id);
        self.exchanges.push(Exchange {
            id,
            step,
            response: Err(message),
        });
    }
}

/// A reply of Envoy's router itself.
fn router_reply(status: u16, text: &str) -> Response {
    Response::status(status)
        .header("content-type", "text/plain")
        .body(text)
}
