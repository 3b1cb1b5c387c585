//! `c4mesh soak`: the filter in a real Envoy under load with rotating faults and
//! changing upstream addresses for a bounded time; a line per sample, then the
//! summary and the checks. Exits non-zero when a check fails.

use anyhow::{bail, Result};
use c4mesh_conformance::scenario::parse_duration;
use c4mesh_soak::{self as soak, sample::Sample, verdict};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct SoakArgs {
    /// How long the load runs (e.g. 30s, 10m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    duration: Duration,
    /// Where the samples go: soak.csv and soak.svg.
    #[arg(long, value_name = "DIR", default_value = "soak")]
    out: PathBuf,
    /// The filter module (default: the c4mesh filter's release build).
    #[arg(long, value_name = "PATH")]
    wasm: Option<PathBuf>,
    /// Requests per second, open loop.
    #[arg(long, value_name = "PER_SECOND", default_value_t = 100.0, value_parser = positive)]
    rate: f64,
    /// Time between samples.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    sample: Duration,
    /// How long each fault lasts at most (shorter runs shorten it so that every fault
    /// runs in the first third).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    phase: Duration,
    /// Upstream servers open at once.
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    addresses: u16,
    /// New upstream addresses per second (as many retired).
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(0..=2048))]
    turnover: u16,
    /// Envoy worker threads (one filter VM each).
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    workers: u32,
}

/// The flag that sets a field of [`soak::Options`].
fn flag(field: &str) -> &'static str {
    match field {
        "duration" => "--duration",
        "rate" => "--rate",
        "sample_every" => "--sample",
        "live_addresses" => "--addresses",
        "new_addresses_per_second" => "--turnover",
        _ => "an option",
    }
}

fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("expected a positive number, got {text:?}")),
    }
}

pub fn command(args: SoakArgs) -> Result<ExitCode> {
    let mut options = soak::Options::new(
        super::module_file(args.wasm.as_deref())?,
        args.duration,
        args.out,
    );
    options.rate = args.rate;
    options.sample_every = args.sample;
    options.phase = args.phase;
    options.live_addresses = usize::from(args.addresses);
    options.new_addresses_per_second = usize::from(args.turnover);
    options.workers = args.workers;
    let outcome = match soak::run(&options, print_sample) {
        Ok(outcome) => outcome,
        Err(soak::Error::Option { field, message }) => {
            bail!("{} {message}", flag(field))
        }
        Err(error) => return Err(error.into()),
    };
    print!("{}", outcome.summary());
    if outcome.passed() {
        Ok(ExitCode::SUCCESS)
    } else {
        let failed: Vec<&str> = outcome
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name)
            .collect();
        eprintln!("c4mesh soak: failed: {}", failed.join("; "));
        Ok(ExitCode::FAILURE)
    }
}

/// One line per sample on stderr.
fn print_sample(s: &Sample) {
    let gauge = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
    eprintln!(
        "{:>6.1} s  {:<10} on {:<15} sent {:>7}  addresses {:>5}  vm {}  rss {}  keys {}  bytes {}",
        s.elapsed.as_secs_f64(),
        s.fault,
        s.fault_route,
        s.requests_sent,
        s.addresses_seen,
        s.proxy.vm_memory_bytes.map_or("-".to_owned(), verdict::mib),
        verdict::mib(s.proxy.envoy_rss_bytes),
        gauge(s.proxy.shared_keys),
        gauge(s.proxy.shared_bytes)
    );
}
