//! Replay: send HTTP traffic to a gateway and measure it honestly (`c4mesh replay`).
//!
//! ## Why it is built this way
//!
//! A load test is only worth reading if its numbers mean what they say. The classic
//! mistake is *coordinated omission*: a client that sends the next request only when
//! the previous one is answered slows down exactly when the server does, so the stall
//! is measured once instead of for every request that should have gone out during it.
//! So there are two loads, and each says what it measures:
//!
//! - **Open loop** ([`Load::Open`]): request `i` is due at `start + i / rate` (or at its
//!   recorded time offset), whether or not earlier ones were answered, and its latency
//!   runs from that *intended* send time to the end of the response. Time a request
//!   spends waiting for a free sender, or behind a stalled server, counts.
//! - **Closed loop** ([`Load::Closed`]): `concurrency` senders, each sending its next
//!   request when the previous one is answered; latency runs from the actual send.
//!   This measures service time under a fixed concurrency, not what users would see.
//!
//! Requests go on kept-alive connections (`--connections`, HTTP/1.1 or HTTP/2, over
//! TLS for `https://` targets) from one or more worker threads (`--threads`), through
//! the client stack of [`c4mesh_live`]: the load generator spends its time on
//! requests, not on handshakes.
//!
//! Latencies go into HdrHistograms (microseconds, 3 significant digits), so
//! percentiles stay exact to 0.1% whatever the run's length, in constant memory.
//!
//! ## Layout
//!
//! - [`source`]: what to send: the built-in mix over the six routes, a JSONL file
//!   of requests or Istio/Envoy JSON access-log lines, or requests made as they fall
//!   due.
//! - [`routes`]: which route a path falls under (the filter's own route table).
//! - `load`: the worker threads, the open and closed loops, connection pools, bounds,
//!   the stop flag and progress.
//! - [`report`]: histograms, per-route statistics, the JSON report and summary.
//! - [`shard`]: one generator's share of a run split over several (`--shard I/N`).
//! - [`merge`]: the reports of the shards read back and added up into one, with
//!   percentiles over every sample (their histograms travel in the JSON).
//! - [`slo`]: the gates a run must pass (`--slo p99<50ms`), judged on the final
//!   report, and the guard that stops sending when the gateway fails
//!   (`--abort-on errors>5%/10s`).

mod load;
pub mod merge;
pub mod report;
pub mod routes;
pub mod shard;
pub mod slo;
pub mod source;

#[cfg(test)]
mod tests;

pub use merge::{merge, read_report, MergeError, ReportError};
pub use report::{Mode, Part, Report, Stats};
pub use routes::Routes;
pub use shard::{Shard, ShardError};
pub use slo::{Abort, AbortRule, Slo, SloVerdict};
pub use source::{Generator, ReplayRequest, Source};

use c4mesh_live::{Endpoint, Settings};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// What can stop a replay, before it starts or while it runs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A line of a traffic file that cannot be used.
    #[error("{file}:{line}: {message}")]
    Line {
        file: String,
        line: usize,
        message: String,
    },
    /// A line of a traffic file that is not JSON, or not the JSON of a request line
    /// (`what` says which; serde's error says where).
    #[error("{file}:{line}: {what}")]
    LineJson {
        file: String,
        line: usize,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A traffic file that cannot be read.
    #[error("{file}: cannot be read")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// A traffic file with nothing to send.
    #[error("{file}: no requests (only blank or comment lines)")]
    NoRequests { file: String },
    /// Options that do not make a run.
    #[error(transparent)]
    Options(#[from] OptionsError),
    /// The client could not be set up (its TLS trust, say).
    #[error("the client")]
    Client(#[source] c4mesh_live::TlsConfigError),
    /// A worker thread could not be started.
    #[error("starting replay worker thread {worker}")]
    Spawn {
        worker: usize,
        #[source]
        source: std::io::Error,
    },
    /// A worker's event loop could not be built.
    #[error("building the event loop of replay worker thread {worker}")]
    Runtime {
        worker: usize,
        #[source]
        source: std::io::Error,
    },
    /// A worker thread panicked; the run's outcomes are incomplete.
    #[error("replay worker thread {worker} panicked")]
    Panicked {
        worker: usize,
        #[source]
        source: Panic,
    },
}

/// A worker thread's panic, by its message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Panic(pub String);

impl Panic {
    /// The message of a panic's payload (`panic!` gives a `&str` or a `String`).
    pub(crate) fn from_payload(payload: &(dyn std::any::Any + Send)) -> Panic {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        Panic(message)
    }
}

/// Options that do not make a run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptionsError {
    #[error("the traffic has no requests")]
    NoTraffic,
    #[error("the request timeout must be positive")]
    Timeout,
    #[error("max in flight must be at least 1")]
    MaxInFlight,
    #[error("the threads must be at least 1")]
    Threads,
    #[error("the connections must be at least 1")]
    Connections,
    #[error("the speed must be a positive factor, got {0}")]
    Speed(f64),
    #[error("the rate must be a positive number of requests per second, got {0}")]
    Rate(f64),
    #[error("an open loop needs a rate, unless the traffic file records time offsets (at_ms or start_time)")]
    NoOffsets,
    #[error("the concurrency must be at least 1")]
    Concurrency,
    #[error("the built-in mix (or generated requests) needs a bound: a count or a duration")]
    NoBound,
    #[error("shard {shard} gets none of the traffic file's {requests} requests")]
    ShardWithoutRequests { shard: Shard, requests: u64 },
    #[error("shard {shard} gets none of the {concurrency} clients")]
    ShardWithoutClients { shard: Shard, concurrency: usize },
    #[error("shard {shard} gets none of the {count} requests to send")]
    ShardWithoutCount { shard: Shard, count: u64 },
}

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// A fixed arrival rate; latency from the intended send time. Without a rate, the
    /// requests go at the time offsets the file records (`at_ms` or `start_time`).
    Open { rate_per_second: Option<f64> },
    /// `concurrency` senders, each sending when its previous request is answered;
    /// latency from the actual send.
    Closed { concurrency: usize },
}

/// A replay to run; with a [`Shard`], this generator's share of it.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where requests go (the gateway's listener) and the host they name (requests
    /// with a Host header of their own keep it).
    pub endpoint: Endpoint,
    /// TLS trust and the HTTP version.
    pub settings: Settings,
    /// Connections to keep open, over all threads; default: the concurrency (closed
    /// loop) or `max_in_flight` (open loop).
    pub connections: Option<usize>,
    /// Worker threads, each with its own connections.
    pub threads: usize,
    /// Recorded timing played this many times faster (2: twice the rate).
    pub speed: f64,
    pub source: Source,
    pub load: Load,
    /// Stop after this many requests...
    pub count: Option<u64>,
    /// ...or once this much time has passed, whichever comes first. With neither, a
    /// file is sent once; the mix needs one of them.
    pub duration: Option<Duration>,
    /// Longest one request may take, connect to last byte.
    pub timeout: Duration,
    /// Most open-loop requests in flight at once; later ones wait for a sender (and
    /// the wait counts in their latency).
    pub max_in_flight: usize,
    /// Gates judged on the final report (a stopped run's too).
    pub slos: Vec<Slo>,
    /// Stop sending when the error rate over a window rises above a limit.
    pub abort_on: Option<AbortRule>,
    /// The share of the run to send ([`shard`]); the whole run by default.
    pub shard: Shard,
}

impl Options {
    /// The built-in mix to `endpoint`, one closed-loop client on one thread, a 10 s
    /// timeout and at most 256 requests in flight; set a bound before running.
    pub fn new(endpoint: Endpoint) -> Options {
        Options {
            endpoint,
            settings: Settings::default(),
            connections: None,
            threads: 1,
            speed: 1.0,
            source: Source::Mix,
            load: Load::Closed { concurrency: 1 },
            count: None,
            duration: None,
            timeout: Duration::from_secs(10),
            max_in_flight: 256,
            slos: Vec::new(),
            abort_on: None,
            shard: Shard::WHOLE,
        }
    }
}

/// How far a run has got; passed to the progress hook.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Requests whose sending has begun.
    pub sent: u64,
    /// Requests answered with a response.
    pub answered: u64,
    /// Requests that ended in an error.
    pub errors: u64,
    pub elapsed: Duration,
    /// The request count the run is bounded by, when known.
    pub planned: Option<u64>,
    /// The duration the run is bounded by, if any.
    pub planned_duration: Option<Duration>,
}

impl Progress {
    /// How far along the run is, from 0 to 1, by whichever bound is nearer; `None`
    /// when the run has no bound to measure against.
    pub fn fraction(&self) -> Option<f64> {
        let by_count = self
            .planned
            .filter(|&n| n > 0)
            .map(|n| (self.answered + self.errors) as f64 / n as f64);
        let by_time = self
            .planned_duration
            .filter(|d| !d.is_zero())
            .map(|d| self.elapsed.as_secs_f64() / d.as_secs_f64());
        let fraction = match (by_count, by_time) {
            (Some(a), Some(b)) => a.max(b),
            (a, b) => a.or(b)?,
        };
        Some(fraction.clamp(0.0, 1.0))
    }
}

/// Runs a replay until its bound is reached or `stop` is set, and reports on it.
///
/// `progress` is called from the calling thread at most about ten times a second,
/// and once more at the end. Setting `stop` (say on Ctrl-C) sends no further
/// requests, waits briefly for those in flight, and returns the partial report with
/// `complete: false`. The abort guard, when set, stops the run the same way and says
/// why in [`Report::aborted`]; the gates are judged either way ([`Report::slo`]).
pub fn run(
    options: &Options,
    stop: &Arc<AtomicBool>,
    progress: impl FnMut(&Progress),
) -> Result<Report, Error> {
    let routes = Routes::defaults();
    let traffic = source::Traffic::new(&options.source, &routes)?.shard(options.shard)?;
    let plan = load::Plan::new(options, &traffic)?;
    let mut report = Report::new(&options.endpoint, plan.mode(), &routes);
    report.shard = (!options.shard.is_whole()).then_some(options.shard);
    load::drive(options, &plan, traffic, stop, progress, &mut report)?;
    report.slo = options
        .slos
        .iter()
        .map(|slo| slo.evaluate(&report))
        .collect();
    Ok(report)
}
