//! The soak (`c4mesh soak`): the filter in a real Envoy under load for a bounded time,
//! with rotating faults and thousands of distinct upstream addresses, watched for
//! memory that grows and shared data that spreads (SPEC 2.7).
//!
//! ## Why a soak
//!
//! Unit and property tests show each rule; they do not show that a gateway running
//! the filter for weeks keeps its memory. What could grow is what lives as long as
//! the proxy: the Wasm VMs' heaps (a leak per request, a table per host), the
//! shared-data keys (never deleted: proxy-wasm has no call for it), and Envoy around
//! them. So the soak runs what a gateway meets, compressed: every fault the mesh
//! knows (503s, resets, hangs, an error rate, one bad host of two) in turn on every
//! route, and upstream addresses that keep changing, as pods are rescheduled, while
//! replay sends an open-loop load. Every few seconds it samples the filter's VM
//! memory, Envoy's RSS and heap, the filter's shared-data keys and bytes, and the
//! filter's counters, and at the end it checks that memory stayed flat and the key
//! set bounded ([`verdict`]).
//!
//! ## Setup
//!
//! - Envoy 1.40 with the filter (the plugin configuration [`CONFIG`]: route timeouts
//!   of 1 s, so hangs end quickly, and ejections of 1 to 4 s, so circuits open and
//!   close many times), `--concurrency 2` (two worker VMs sharing the filter's
//!   shared data), the mesh's routes and retry policy.
//! - The six clusters are `ORIGINAL_DST` clusters that take the upstream from the
//!   `x-envoy-original-dst-host` header: every request names one of the live servers
//!   of the rotating pool ([`addresses`]). So the upstream addresses the filter sees
//!   come and go by the thousand while only a few dozen servers are open at a time.
//!   Envoy retries to the same address then (there is one host per request), unlike
//!   the mesh's two replicas; what is soaked is the filter's state, not the retry
//!   policy.
//! - The faults ([`faults`]) and the samples ([`sample`]) follow the wall clock; the
//!   samples are written as CSV and plotted as SVG ([`plot`]).

pub mod addresses;
pub mod faults;
pub mod plot;
pub mod sample;
pub mod verdict;

#[cfg(test)]
mod tests;

use addresses::Addresses;
use c4mesh_filter_core::footprint::{self, Bound};
use c4mesh_filter_core::Config;
use c4mesh_live::Endpoint;
use c4mesh_mesh::envoy::{Envoy, EnvoyConfig, ServiceRoute, Wasm};
use c4mesh_replay::{self as replay, Generator, Load, Progress, ReplayRequest, Routes, Source};
use faults::{FaultState, Phase};
use sample::Sample;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use verdict::{Check, Limits};

/// The plugin configuration of the soak: the mesh's defaults with 1 s route timeouts
/// and short ejections.
pub const CONFIG: &str =
    r#"{"retry": {"timeout": "1s"}, "outlier": {"base_ejection": "1s", "max_ejection": "4s"}}"#;

/// The header an `ORIGINAL_DST` cluster takes the upstream address from.
pub const ORIGINAL_DST_HEADER: &str = "x-envoy-original-dst-host";

/// What can stop a soak, apart from a failed check.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("options: no filter module at {}", .0.display())]
    NoModule(PathBuf),
    #[error("options: the soak's plugin configuration")]
    Config(#[source] c4mesh_filter_core::ConfigError),
    /// One option out of range, named by its field in [`Options`].
    #[error("{field}: {message}")]
    Option {
        field: &'static str,
        message: &'static str,
    },
    #[error("starting: an upstream on 127.0.0.1")]
    Upstream(#[source] c4mesh_mesh::upstream::UpstreamError),
    #[error("starting: the mesh's plan")]
    Plan(#[source] c4mesh_mesh::istio::generated::GenerateError),
    #[error("starting: Envoy")]
    Envoy(#[source] Box<c4mesh_mesh::envoy::EnvoyError>),
    /// Envoy's URL as the load's endpoint.
    #[error("starting: the load's endpoint")]
    Endpoint(#[source] c4mesh_live::EndpointError),
    #[error("starting: the load thread")]
    LoadThread(#[source] std::io::Error),
    #[error("the load thread panicked")]
    LoadPanicked,
    #[error("sampling: Envoy's admin /stats?filter={filter}")]
    Stats {
        filter: String,
        #[source]
        source: Box<c4mesh_mesh::envoy::EnvoyError>,
    },
    #[error("sampling: reading {}", path.display())]
    Status {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("replay: {0}")]
    Replay(#[from] replay::Error),
    #[error("writing {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A soak to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The filter module.
    pub wasm: PathBuf,
    /// How long the load runs.
    pub duration: Duration,
    /// Requests per second, open loop.
    pub rate: f64,
    /// Time between samples.
    pub sample_every: Duration,
    /// How long each fault lasts, at most (shortened for short runs).
    pub phase: Duration,
    /// Upstream servers open at once.
    pub live_addresses: usize,
    /// New upstream addresses per second (as many retired).
    pub new_addresses_per_second: usize,
    /// Envoy worker threads (one filter VM each).
    pub workers: u32,
    /// Where the CSV and the SVG go.
    pub out: PathBuf,
    pub limits: Limits,
}

impl Options {
    pub fn new(wasm: PathBuf, duration: Duration, out: PathBuf) -> Options {
        Options {
            wasm,
            duration,
            rate: 100.0,
            sample_every: Duration::from_secs(2),
            phase: Duration::from_secs(5),
            live_addresses: 32,
            new_addresses_per_second: 8,
            workers: 2,
            out,
            limits: Limits::default(),
        }
    }

    fn validate(&self) -> Result<(), Error> {
        let bad = |field, message| Err(Error::Option { field, message });
        if self.duration < Duration::from_secs(10) {
            return bad("duration", "must be at least 10s (three thirds of samples)");
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return bad("rate", "must be a positive number of requests per second");
        }
        if self.sample_every < Duration::from_millis(500) || self.sample_every * 6 > self.duration {
            return bad(
                "sample_every",
                "must be at least 500ms and fit six times in the duration",
            );
        }
        if self.live_addresses == 0 || self.live_addresses > 1024 {
            return bad("live_addresses", "must be between 1 and 1024");
        }
        if self.new_addresses_per_second > self.live_addresses * 2 {
            return bad(
                "new_addresses_per_second",
                "can be at most twice the live addresses",
            );
        }
        Ok(())
    }
}

/// What a soak saw.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub samples: Vec<Sample>,
    pub checks: Vec<Check>,
    pub bound: Bound,
    /// Phases per fault label.
    pub faults_run: BTreeMap<&'static str, u64>,
    pub phase_length: Duration,
    pub distinct_addresses: usize,
    pub upstream_attempts: u64,
    pub report: replay::Report,
    pub csv: PathBuf,
    pub svg: PathBuf,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// What a person reads at the end: requests, faults, memory and keys at start and
    /// end, each check.
    pub fn summary(&self) -> String {
        let (first, last) = match (self.samples.first(), self.samples.last()) {
            (Some(f), Some(l)) => (f, l),
            _ => return "no samples\n".to_owned(),
        };
        let opt = |v: Option<u64>, f: fn(u64) -> String| v.map_or("-".to_owned(), f);
        let statuses = listed(self.report.overall.statuses(), ": ");
        let errors = listed(self.report.overall.error_kinds(), ": ");
        let faults = listed(&self.faults_run, " x");
        let mut out = String::new();
        let mut line = |text: String| {
            out.push_str(&text);
            out.push('\n');
        };
        line(format!(
            "soak: {:.0} s, {} requests ({} answered, {} errors), {} upstream attempts",
            last.elapsed.as_secs_f64(),
            self.report.requests(),
            self.report.overall.responses(),
            self.report.overall.errors(),
            self.upstream_attempts
        ));
        line(format!("  statuses: {statuses}"));
        if !errors.is_empty() {
            line(format!("  errors: {errors}"));
        }
        line(format!(
            "  faults cycled: {} phases of {:.1} s ({})",
            self.faults_run.values().sum::<u64>(),
            self.phase_length.as_secs_f64(),
            faults
        ));
        line(format!(
            "  upstream addresses: {} distinct; host ejections {}, circuits opened {}, failed fast {}",
            self.distinct_addresses,
            last.proxy.host_ejections,
            last.proxy.circuits_opened,
            last.proxy.fail_fast
        ));
        line(format!(
            "  filter VM memory: {} at the start, {} at the end",
            opt(first.proxy.vm_memory_bytes, verdict::mib),
            opt(last.proxy.vm_memory_bytes, verdict::mib)
        ));
        line(format!(
            "  Envoy RSS: {} at the start, {} at the end",
            verdict::mib(first.proxy.envoy_rss_bytes),
            verdict::mib(last.proxy.envoy_rss_bytes)
        ));
        line(format!(
            "  shared-data keys: {} at the start, {} at the end (bound {}); bytes {} and {} (bound {})",
            opt(first.proxy.shared_keys, |v| v.to_string()),
            opt(last.proxy.shared_keys, |v| v.to_string()),
            self.bound.keys,
            opt(first.proxy.shared_bytes, |v| v.to_string()),
            opt(last.proxy.shared_bytes, |v| v.to_string()),
            self.bound.bytes
        ));
        for check in &self.checks {
            line(format!(
                "  {} {}: {}",
                if check.passed { "ok  " } else { "FAIL" },
                check.name,
                check.detail
            ));
        }
        line(format!(
            "  samples: {} and {}",
            self.csv.display(),
            self.svg.display()
        ));
        out
    }
}

/// `key: count, key: count` (with `between` for `: `).
fn listed<K: std::fmt::Display>(counts: &BTreeMap<K, u64>, between: &str) -> String {
    counts
        .iter()
        .map(|(k, n)| format!("{k}{between}{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs a soak; `progress` is called after each sample.
pub fn run(options: &Options, mut progress: impl FnMut(&Sample)) -> Result<Outcome, Error> {
    options.validate()?;
    let config = Config::parse(CONFIG.as_bytes()).map_err(Error::Config)?;
    let bound = footprint::bound(&config);
    let routes = Routes::defaults();
    let prefixes: Vec<String> = config.routes.iter().map(|r| r.prefix.clone()).collect();
    let route_names: Vec<String> = config.routes.iter().map(|r| r.name.clone()).collect();
    std::fs::create_dir_all(&options.out).map_err(|source| Error::Write {
        path: options.out.clone(),
        source,
    })?;

    let faults = Arc::new(FaultState::default());
    let mut pool = Addresses::start(options.live_addresses, Arc::clone(&faults), prefixes)?;
    let envoy = start_envoy(options, &config)?;

    let picks = pool.picks();
    let generator = Generator::new(move |i| request(&routes, i, addresses::pick(&picks, i)));
    let endpoint = Endpoint::parse(&envoy.url(), Some("api.c4ang.com")).map_err(Error::Endpoint)?;
    let mut replay_options = replay::Options::new(endpoint);
    replay_options.source = Source::Generated(generator);
    replay_options.load = Load::Open {
        rate_per_second: Some(options.rate),
    };
    replay_options.duration = Some(options.duration);
    replay_options.timeout = Duration::from_secs(5);
    replay_options.max_in_flight = 128;
    replay_options.connections = Some(32);

    let stop = Arc::new(AtomicBool::new(false));
    let latest = Arc::new(Mutex::new(nothing_sent()));
    let watched = Watched {
        envoy: &envoy,
        faults: &faults,
        latest: &latest,
        route_names: &route_names,
    };
    // The start: the filter configured and its first report in, before any load.
    let baseline = watched.baseline(&pool)?;
    progress(&baseline);
    let mut samples = vec![baseline];
    let load = {
        let (stop, latest) = (Arc::clone(&stop), Arc::clone(&latest));
        thread::Builder::new()
            .name("soak load".into())
            .spawn(move || {
                replay::run(&replay_options, &stop, |p| {
                    if let Ok(mut latest) = latest.lock() {
                        *latest = *p;
                    }
                })
            })
            .map_err(Error::LoadThread)?
    };

    let phase_length =
        faults::phase_length(options.duration, options.phase, Duration::from_millis(1000));
    let turn_every = Duration::from_millis(500);
    let per_turn = options.new_addresses_per_second.div_ceil(2);
    let started = Instant::now();
    // The load ends by itself; this is the bound if it does not.
    let deadline = started + options.duration + Duration::from_secs(30);
    let mut faults_run: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut phase: Option<Phase> = None;
    let mut next_turn = started + turn_every;
    let mut next_sample = started + options.sample_every;
    let mut failure = None;
    while !load.is_finished() {
        let now = Instant::now();
        if now >= deadline {
            stop.store(true, Ordering::SeqCst);
            break;
        }
        let elapsed = now - started;
        if elapsed < options.duration {
            let current = faults::phase_at(elapsed, phase_length, route_names.len());
            if phase.map(|p| p.index) != Some(current.index) {
                faults.enter(current);
                *faults_run.entry(current.fault.label()).or_default() += 1;
                phase = Some(current);
            }
        }
        if now >= next_turn {
            if let Err(error) = pool.turn(per_turn) {
                failure = Some(error);
                stop.store(true, Ordering::SeqCst);
                break;
            }
            next_turn += turn_every;
        }
        if now >= next_sample {
            match watched.take(&pool, phase, elapsed) {
                Ok(sample) => {
                    progress(&sample);
                    samples.push(sample);
                }
                Err(error) => {
                    failure = Some(error);
                    stop.store(true, Ordering::SeqCst);
                    break;
                }
            }
            next_sample += options.sample_every;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let report = match load.join() {
        Ok(result) => result?,
        Err(_) => return Err(Error::LoadPanicked),
    };
    if let Some(error) = failure {
        return Err(error);
    }
    // One more sample once the filter's last tick has flushed its metrics.
    thread::sleep(Duration::from_millis(1200));
    let end = watched.take(&pool, phase, started.elapsed())?;
    progress(&end);
    samples.push(end);

    let ran: BTreeSet<&'static str> = faults_run.keys().copied().collect();
    let checks = verdict::judge(&samples, options.duration, bound, &ran, &options.limits);
    let csv = options.out.join("soak.csv");
    let svg = options.out.join("soak.svg");
    write(&csv, &sample::csv(&samples))?;
    write(
        &svg,
        &plot::svg(&samples, (bound.keys as u64, bound.bytes as u64)),
    )?;
    Ok(Outcome {
        samples,
        checks,
        bound,
        faults_run,
        phase_length,
        distinct_addresses: pool.distinct(),
        upstream_attempts: faults.attempts(),
        report,
        csv,
        svg,
    })
}

/// The load's progress before it starts.
fn nothing_sent() -> Progress {
    Progress {
        sent: 0,
        answered: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        planned: None,
        planned_duration: None,
    }
}

/// What each sample reads.
struct Watched<'a> {
    envoy: &'a Envoy,
    faults: &'a FaultState,
    latest: &'a Mutex<Progress>,
    route_names: &'a [String],
}

impl Watched<'_> {
    /// Waits (up to 10 s) for the filter's first report of its footprint, and
    /// samples it.
    fn baseline(&self, pool: &Addresses) -> Result<Sample, Error> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let sample = self.take(pool, None, Duration::ZERO)?;
            let reported = [sample.proxy.vm_memory_bytes, sample.proxy.shared_keys]
                .iter()
                .all(|v| v.is_some_and(|v| v > 0));
            if reported || Instant::now() >= deadline {
                return Ok(sample);
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// One sample of the run.
    fn take(
        &self,
        pool: &Addresses,
        phase: Option<Phase>,
        elapsed: Duration,
    ) -> Result<Sample, Error> {
        let proxy = sample::read_proxy(self.envoy)?;
        let progress = self.latest.lock().map(|p| *p).ok();
        Ok(Sample {
            elapsed,
            phase: phase.map_or(0, |p| p.index),
            fault: phase.map_or("none", |p| p.fault.label()),
            fault_route: phase
                .and_then(|p| self.route_names.get(p.route).cloned())
                .unwrap_or_default(),
            requests_sent: progress.map_or(0, |p| p.sent),
            responses: progress.map_or(0, |p| p.answered),
            errors: progress.map_or(0, |p| p.errors),
            upstream_attempts: self.faults.attempts(),
            addresses_live: pool.open() as u64,
            addresses_seen: pool.distinct() as u64,
            proxy,
        })
    }
}

/// Envoy with the filter, the mesh's routes with 1 s timeouts, and `ORIGINAL_DST`
/// clusters.
fn start_envoy(options: &Options, config: &Config) -> Result<Envoy, Error> {
    if !options.wasm.is_file() {
        return Err(Error::NoModule(options.wasm.clone()));
    }
    let services: Vec<ServiceRoute> = config
        .routes
        .iter()
        .map(|r| ServiceRoute {
            name: r.service.clone(),
            prefix: r.prefix.clone(),
            hosts: Vec::new(),
        })
        .collect();
    // The gateway as Istio builds it from the generated manifests for the soak's
    // configuration (its routes' 1 s timeouts included).
    let plan = c4mesh_mesh::istio::generated::gateway_plan(CONFIG, &[]).map_err(Error::Plan)?;
    let envoy_config = EnvoyConfig::of_plan(
        options.workers,
        Wasm::Module {
            path: options.wasm.clone(),
            config: CONFIG.to_owned(),
        },
        services,
        plan,
    );
    Envoy::start_patched(&envoy_config, original_dst_clusters)
        .map_err(|e| Error::Envoy(Box::new(e)))
}

/// Every cluster of the bootstrap becomes an `ORIGINAL_DST` cluster that takes its
/// upstream from [`ORIGINAL_DST_HEADER`]; Envoy forgets a host 5 s after its last use.
pub fn original_dst_clusters(bootstrap: &mut Value) {
    let Some(clusters) = bootstrap
        .pointer_mut("/static_resources/clusters")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for cluster in clusters {
        if let Some(cluster) = cluster.as_object_mut() {
            cluster.remove("load_assignment");
            cluster.insert("type".into(), json!("ORIGINAL_DST"));
            cluster.insert("lb_policy".into(), json!("CLUSTER_PROVIDED"));
            cluster.insert("cleanup_interval".into(), json!("5s"));
            cluster.insert(
                "original_dst_lb_config".into(),
                json!({"use_http_header": true, "http_header_name": ORIGINAL_DST_HEADER}),
            );
        }
    }
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Request `i` of the soak: the replay mix's, naming `address` as its upstream.
pub fn request(routes: &Routes, i: u64, address: Option<std::net::SocketAddr>) -> ReplayRequest {
    let mut request = replay::source::mix_request(routes, i);
    if let Some(address) = address {
        request
            .headers
            .push((ORIGINAL_DST_HEADER.to_owned(), address.to_string()));
    }
    request
}
