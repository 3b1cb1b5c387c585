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

pub mod envoy_target;
pub mod expect;
pub mod normalize;
pub mod observe;
pub mod report;
pub mod rng;
pub mod router;
pub mod scenario;
pub mod traffic;
pub mod upstreams;
pub mod url_target;
pub mod wasm_target;
pub mod wire;

use report::{ScenarioReport, SuiteReport};
use scenario::{Scenario, TargetKind};
use std::path::PathBuf;
use std::time::Instant;

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
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error(transparent)]
    Harness(#[from] crate::Error),
    #[error("envoy target: {0}")]
    Envoy(String),
    #[error("url target: {0}")]
    Url(String),
    #[error("{0}")]
    Run(String),
}

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
        settings: crate::live::Settings,
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
}

/// Runs every scenario on every target it declares among `options.targets`.
/// `progress` is told each scenario's report as it completes.
pub fn run(options: &Options, mut progress: impl FnMut(&ScenarioReport)) -> SuiteReport {
    let mut suite = SuiteReport::new(options.targets.iter().map(Target::kind).collect());
    for scenario in &options.scenarios {
        let mut report = ScenarioReport::new(scenario);
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
            let elapsed = started.elapsed();
            suite.add_time(target.kind(), elapsed);
            match outcome {
                Ok(observed) => report.add(target.kind(), expect::evaluate(scenario, &observed)),
                Err(error) => report.add_error(target.kind(), error.to_string()),
            }
        }
        progress(&report);
        suite.scenarios.push(report);
    }
    suite
}
