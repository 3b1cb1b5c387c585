//! Conformance: declarative scenarios run on the harness host and on a real Envoy, with
//! a report of where they disagree.
//!
//! ## Why two targets
//!
//! The `wasm` target is fast and deterministic: virtual time, seeded faults, the
//! emulated router of [`router`] and the simulated upstreams of [`upstreams`]. But it
//! is only worth trusting if it behaves like the proxy it stands for. So every scenario
//! also runs on the `envoy` target, a real Envoy 1.40 with the same module and
//! configuration, the same simulated upstreams served over HTTP on loopback, and wall
//! time. Each expectation is checked on both; an expectation whose outcome differs
//! between the targets is a disagreement, and a disagreement fails the suite like a
//! failed expectation does: either the filter or the harness is wrong. The `url`
//! target sends the request-level part of scenarios to a live gateway.
//!
//! ## Layout
//!
//! - [`scenario`]: the file format, loading and validation (errors name file, line,
//!   field).
//! - [`traffic`]: when each request of a step goes out, on every target.
//! - [`upstreams`] (H7) and [`router`] (H6): the simulated upstreams and Envoy's
//!   router, in harness time.
//! - `wasm_target`, `envoy_target`, `url_target`: one runner per target, each
//!   producing an [`observe::Observed`]; [`wire`] sends the traffic over HTTP for the
//!   last two.
//! - [`expect`]: the expectations checked against an observation.
//! - [`report`]: the suite's outcome, as a table or JSON.
//!
//! ## Scenarios at a time
//!
//! Scenarios share nothing: each builds its own simulator, and on the `envoy` target
//! starts its own simulated upstreams and Envoys on ports the system hands out, with a
//! base id of their own. Most of an Envoy scenario is waiting for its wall-time
//! schedule, so [`run`] keeps `jobs` scenarios going at once, each on a worker thread
//! that takes the next scenario in file order when it is done with one. Reports are
//! told to `progress` and kept in file order, whichever finishes first, so a run with
//! any number of jobs reads like a serial one; only the times differ. The `url` target
//! is the exception: its scenarios all meet the same gateway, whose budgets and
//! circuits they would share, so with it scenarios run one at a time.

pub mod envoy_target;
pub mod expect;
pub mod normalize;
pub mod observe;
pub mod report;
pub mod rng;
pub mod router;
pub mod scenario;
pub mod suite;
pub mod traffic;
pub mod upstreams;
pub mod url_target;
pub mod wasm_target;
pub mod wire;

use report::{ScenarioReport, SuiteReport};
use scenario::{Scenario, TargetKind};
use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What can go wrong running the suite (as opposed to an expectation failing).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}{}: {}{message}", line.map(|l| format!(":{l}")).unwrap_or_default(), if field.is_empty() { String::new() } else { format!("{field}: ") })]
    Scenario {
        file: String,
        line: Option<usize>,
        field: String,
        message: String,
    },
    #[error("reading {}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: no scenario files (*.yaml) found", .0.display())]
    NoScenarios(std::path::PathBuf),
    #[error(transparent)]
    Harness(#[from] c4mesh_host::Error),
    #[error(transparent)]
    Module(#[from] c4mesh_guests::Error),
    #[error("envoy target")]
    Envoy(#[from] EnvoyTargetError),
    /// The gateway's URL.
    #[error("url target")]
    Url(#[source] c4mesh_live::EndpointError),
    /// How to reach the gateway: its TLS client configuration.
    #[error("url target {url}: the client")]
    UrlClient {
        url: String,
        #[source]
        source: c4mesh_live::TlsConfigError,
    },
    #[error(transparent)]
    Run(#[from] RunError),
}

/// What can go wrong on the envoy target, as opposed to Envoy refusing a scenario's
/// configuration ([`envoy_target::Started::Refused`]).
#[derive(Debug, thiserror::Error)]
pub enum EnvoyTargetError {
    #[error("finding Envoy")]
    Binary(#[source] Box<c4mesh_mesh::envoy::EnvoyError>),
    #[error("holding a refusing port")]
    Refusing(#[source] std::io::Error),
    #[error("starting the simulated upstreams")]
    Upstreams(#[source] c4mesh_mesh::upstream::UpstreamError),
    #[error("starting the proxies")]
    Launch(#[source] c4mesh_mesh::launch::LaunchError),
    #[error("reading /stats")]
    Stats(#[source] Box<c4mesh_mesh::envoy::EnvoyError>),
}

/// A scenario the wasm target cannot carry through.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no sidecar plan for {0}")]
    NoSidecarPlan(String),
    #[error("{0} has no sidecar")]
    NoSidecar(String),
    #[error("{scenario}: step {step}: {left} of {count} requests never finished (nothing left to happen)")]
    Stalled {
        scenario: String,
        step: usize,
        left: usize,
        count: usize,
    },
    #[error("{scenario}: still running after {limit:?} of scenario time")]
    TooLong {
        scenario: String,
        limit: std::time::Duration,
    },
    #[error("stream {0} vanished")]
    StreamVanished(c4mesh_host::StreamId),
}

pub use c4mesh_live::describe;

/// A target to run scenarios on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Wasm,
    Envoy,
    /// A live gateway: its base URL, the Host header to send, and how to reach it
    /// (TLS trust, HTTP version).
    Url {
        base: String,
        host: Option<String>,
        settings: c4mesh_live::Settings,
    },
}

impl Target {
    pub fn kind(&self) -> TargetKind {
        match self {
            Target::Wasm => TargetKind::Wasm,
            Target::Envoy => TargetKind::Envoy,
            Target::Url { .. } => TargetKind::Url,
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub scenarios: Vec<Scenario>,
    pub targets: Vec<Target>,
    /// The proxy-wasm module under test.
    pub wasm: PathBuf,
    /// How many scenarios run at a time.
    pub jobs: NonZeroUsize,
}

impl Options {
    /// One scenario at a time per core, the default of `c4mesh conformance --jobs`.
    ///
    /// An Envoy scenario mostly waits for its schedule in wall time, so more jobs than
    /// cores run the suite faster still (on two loaded cores, 0.51 to 0.59 of a serial
    /// run's time with two jobs, 0.31 to 0.41 with four), but a scenario whose counts
    /// depend on the order its requests' attempts reach the upstreams
    /// (`outlier/error-rate.yaml`: which requests a seeded 30% error rate falls on) has
    /// been seen to miss its bound with four.
    pub fn default_jobs() -> NonZeroUsize {
        std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
    }
}

/// Runs every scenario on every target it declares among `options.targets`, up to
/// `options.jobs` scenarios at a time (one with a `url` target: the gateway's state is
/// shared). `progress` is told each scenario's report in file order, as soon as it and
/// every scenario before it have completed.
pub fn run(options: &Options, mut progress: impl FnMut(&ScenarioReport)) -> SuiteReport {
    let started = Instant::now();
    let mut suite = SuiteReport::new(options.targets.iter().map(Target::kind).collect());
    // A live gateway is one proxy whose budgets and circuits every scenario would share.
    let shared = options
        .targets
        .iter()
        .any(|t| matches!(t, Target::Url { .. }));
    let jobs = if shared {
        1
    } else {
        options.jobs.get().min(options.scenarios.len()).max(1)
    };
    let mut completed = |suite: &mut SuiteReport, (report, times): Completed| {
        for (target, elapsed) in times {
            suite.add_time(target, elapsed);
        }
        progress(&report);
        suite.scenarios.push(report);
    };
    if jobs == 1 {
        for scenario in &options.scenarios {
            completed(&mut suite, run_scenario(options, scenario));
        }
    } else {
        let next = AtomicUsize::new(0);
        let (done, finished) = mpsc::channel();
        std::thread::scope(|scope| {
            for _ in 0..jobs {
                let (done, next) = (done.clone(), &next);
                scope.spawn(move || loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(scenario) = options.scenarios.get(index) else {
                        break;
                    };
                    if done.send((index, run_scenario(options, scenario))).is_err() {
                        break;
                    }
                });
            }
            drop(done);
            // Completed out of order, told in order: hold each report until every
            // scenario before it is in.
            let mut held = BTreeMap::new();
            for (index, outcome) in finished {
                held.insert(index, outcome);
                while let Some(outcome) = held.remove(&suite.scenarios.len()) {
                    completed(&mut suite, outcome);
                }
            }
        });
    }
    suite.elapsed = started.elapsed();
    suite.jobs = jobs;
    suite
}

/// A scenario's report, and the time it took on each target.
type Completed = (ScenarioReport, Vec<(TargetKind, Duration)>);

/// One scenario on every target it declares among `options.targets`, one after another.
fn run_scenario(options: &Options, scenario: &Scenario) -> Completed {
    let mut report = ScenarioReport::new(scenario);
    let mut times = Vec::new();
    for target in &options.targets {
        if !scenario.targets.contains(&target.kind()) {
            continue;
        }
        let started = Instant::now();
        let outcome = match target {
            Target::Wasm => wasm_target::run(scenario, &options.wasm),
            Target::Envoy => envoy_target::run(scenario, &options.wasm),
            Target::Url {
                base,
                host,
                settings,
            } => url_target::run(scenario, base, host.as_deref(), settings),
        };
        times.push((target.kind(), started.elapsed()));
        match outcome {
            Ok(observed) => report.add(target.kind(), expect::evaluate(scenario, &observed)),
            Err(error) => report.add_error(target.kind(), describe(&error)),
        }
    }
    (report, times)
}

#[cfg(test)]
mod error_tests {
    use super::*;

    #[test]
    fn a_missing_scenario_keeps_its_io_error_as_the_source() {
        let path = std::path::Path::new("/nonexistent/c4mesh/scenario.yaml");
        let error = scenario::load(path).expect_err("no such file");
        let source = std::error::Error::source(&error).expect("a source");
        let io = source
            .downcast_ref::<std::io::Error>()
            .expect("the I/O error");
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        assert!(
            describe(&error).starts_with("reading /nonexistent/c4mesh/scenario.yaml: "),
            "{}",
            describe(&error)
        );
    }
}
