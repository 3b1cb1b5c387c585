//! `c4mesh replay`: traffic from a file or the built-in mix against a gateway, with a
//! progress line on a terminal, and a summary or the JSON report at the end — also
//! when interrupted with Ctrl-C. Its exit status gates a pipeline: 3 when an `--slo`
//! failed, 4 when `--abort-on` stopped the run.
//!
//! `--shard I/N` sends one generator's share of the run; `c4mesh replay merge
//! REPORT...` adds the shards' JSON reports into one, printed and gated the same way.

use anyhow::{bail, Context, Result};
use c4mesh_live::{Endpoint, Protocol, Settings};
use c4mesh_replay::{
    self as replay, AbortRule, Load, Options, Progress, Report, Shard, Slo, Source,
};
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The exit status when a gate (`--slo`) failed.
const SLO_FAILED: u8 = 3;

/// The exit status when the abort guard (`--abort-on`) stopped the run.
const ABORTED: u8 = 4;

#[derive(clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Exit status: 0 when the run ends and every --slo holds, 3 when an \
--slo failed, 4 when --abort-on stopped the run (its gates are still judged and \
reported), 2 for bad arguments, 1 for other failures."
)]
pub struct ReplayArgs {
    #[command(subcommand)]
    command: Option<ReplayCommand>,
    /// The gateway: http[s]://HOST[:PORT] (the NLB by hostname or IP, or `c4mesh
    /// up`'s gateway). Connections go there; requests name --host.
    #[arg(long, value_name = "URL", required = true)]
    target: Option<String>,
    /// The host requests name: the Host header (`:authority` on HTTP/2), TLS SNI and
    /// the name the certificate must carry; requests with a Host of their own keep it.
    #[arg(long, value_name = "HOST", default_value = "api.c4ang.com")]
    host: String,
    /// Also trust the certificates in this PEM file (a self-signed gateway's CA).
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Accept any certificate.
    #[arg(long)]
    insecure: bool,
    /// HTTP/2 only: h2c with prior knowledge on http://, h2 by ALPN on https://
    /// (default: HTTP/1.1 on http://, whatever ALPN picks on https://).
    #[arg(long, conflicts_with = "http1")]
    http2: bool,
    /// HTTP/1.1 only.
    #[arg(long)]
    http1: bool,
    /// Connections kept open, over all threads (default: the concurrency, or 256 in an
    /// open loop).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=4096))]
    connections: Option<u16>,
    /// Worker threads, each with its own event loop and share of the connections.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// With --recorded: play the recorded timing this many times faster (2: twice the
    /// rate, 0.5: half).
    #[arg(long, value_name = "FACTOR", requires = "recorded")]
    speed: Option<f64>,
    /// Traffic from a JSONL file (requests, or Istio/Envoy JSON access-log lines);
    /// default: the built-in mix over the six routes.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Open loop at this many requests per second (latency from the intended send time).
    #[arg(long, value_name = "PER_SECOND", conflicts_with = "concurrency")]
    rate: Option<f64>,
    /// Open loop at the file's recorded times.
    #[arg(long, conflicts_with_all = ["rate", "concurrency"])]
    recorded: bool,
    /// Closed loop with this many concurrent clients (the default, with 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: Option<u16>,
    /// Stop after this many requests.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Stop after this long (e.g. 30s, 2m).
    #[arg(long, value_name = "DURATION", value_parser = c4mesh_conformance::scenario::parse_duration)]
    duration: Option<Duration>,
    /// Longest one request may take.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = c4mesh_conformance::scenario::parse_duration)]
    timeout: Duration,
    /// A pass criterion judged at the end, as k6's thresholds: [route=NAME:]METRIC OP
    /// LIMIT, with METRIC p50, p90, p99, p99.9 or max (a latency in ms, s or us) or
    /// errors (the share of requests with no response or a 5xx, in %), OP <, <=, > or
    /// >=. Repeatable: `--slo 'p99<50ms' --slo 'errors<0.1%' --slo
    /// 'route=payments:p99<200ms'`. Exit status 3 if one fails.
    #[arg(long = "slo", value_name = "EXPR")]
    slos: Vec<Slo>,
    /// Stop sending when the error rate (no response or a 5xx) over the last WINDOW
    /// of finished requests rises above RATE, once the window holds at least 20
    /// requests: `--abort-on 'errors>5%/10s'`. Requests in flight get 1 s to finish;
    /// the report says why it stopped, and the exit status is 4.
    #[arg(long, value_name = "RULE")]
    abort_on: Option<AbortRule>,
    /// Send shard I of N (counted from 0) of the run, so that N generators given the
    /// same options send it between them: the rate divided by N; the concurrency and
    /// --count split so the shards add up (the first ones taking the remainder); every
    /// N-th request of a --file from the I-th, at its recorded time with --recorded.
    /// `c4mesh replay merge` adds their reports up.
    #[arg(long, value_name = "I/N")]
    shard: Option<Shard>,
    /// Print the JSON report instead of the summary.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum ReplayCommand {
    /// Merges the JSON reports of a run's shards into one report.
    ///
    /// Reports as `c4mesh replay --shard I/N --json > FILE` writes them: the merged
    /// percentiles are those of every sample (the shards' histograms added), counts
    /// are summed, the rate and the achieved rate are the sums of the shards' rates,
    /// the duration the longest shard's. Exit status as a run's: 3 when an --slo
    /// fails on the merged numbers, 4 when --abort-on stopped a shard.
    Merge(MergeArgs),
}

#[derive(clap::Args)]
struct MergeArgs {
    /// Reports as `c4mesh replay --json` writes them, one a file.
    #[arg(value_name = "REPORT", required = true)]
    reports: Vec<PathBuf>,
    /// A pass criterion judged on the merged report, as for a run.
    #[arg(long = "slo", value_name = "EXPR")]
    slos: Vec<Slo>,
    /// Print the JSON report instead of the summary.
    #[arg(long)]
    json: bool,
}

pub fn command(args: ReplayArgs) -> Result<ExitCode> {
    match args.command {
        Some(ReplayCommand::Merge(merge)) => merge_reports(merge),
        None => run(args),
    }
}

/// `c4mesh replay merge`: the reports read, merged, judged and printed.
fn merge_reports(args: MergeArgs) -> Result<ExitCode> {
    let named = args
        .reports
        .iter()
        .map(|path| Ok((path.display().to_string(), replay::read_report(path)?)))
        .collect::<Result<Vec<_>>>()?;
    let mut report = replay::merge(&named)?;
    report.slo = args.slos.iter().map(|slo| slo.evaluate(&report)).collect();
    print(&report, args.json)
}

fn run(args: ReplayArgs) -> Result<ExitCode> {
    let target = args.target.as_deref().context("--target is required")?;
    let endpoint = Endpoint::parse(target, Some(&args.host)).context("--target")?;
    if let Some(speed) = args.speed {
        if !(speed > 0.0 && speed.is_finite()) {
            bail!("--speed must be a positive factor, got {speed}");
        }
    }
    if (args.cacert.is_some() || args.insecure) && !endpoint.is_tls() {
        bail!("--cacert and --insecure apply to https:// targets");
    }
    if let Some(rate) = args.rate {
        if !(rate > 0.0 && rate.is_finite()) {
            bail!("--rate must be a positive number of requests per second, got {rate}");
        }
    }
    if args.recorded && args.file.is_none() {
        bail!("--recorded replays a file's recorded times: give --file");
    }
    let mut options = Options::new(endpoint);
    options.settings = Settings {
        cacert: args.cacert,
        insecure: args.insecure,
        protocol: if args.http2 {
            Protocol::Http2
        } else if args.http1 {
            Protocol::Http1
        } else {
            Protocol::Auto
        },
        ..Settings::default()
    };
    options.connections = args.connections.map(usize::from);
    options.threads = usize::from(args.threads);
    options.speed = args.speed.unwrap_or(1.0);
    options.source = args.file.map_or(Source::Mix, Source::File);
    options.load = match (args.rate, args.recorded, args.concurrency) {
        (Some(rate), _, _) => Load::Open {
            rate_per_second: Some(rate),
        },
        (None, true, _) => Load::Open {
            rate_per_second: None,
        },
        (None, false, concurrency) => Load::Closed {
            concurrency: usize::from(concurrency.unwrap_or(1)),
        },
    };
    options.count = args.count;
    options.duration = args.duration;
    options.timeout = args.timeout;
    options.slos = args.slos;
    options.abort_on = args.abort_on;
    options.shard = args.shard.unwrap_or(Shard::WHOLE);

    let stop = Arc::new(AtomicBool::new(false));
    let on_interrupt = Arc::clone(&stop);
    ctrlc::set_handler(move || on_interrupt.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    let terminal = std::io::stderr().is_terminal();
    let report = replay::run(&options, &stop, |progress| {
        if terminal {
            draw(progress);
        }
    })?;
    if terminal {
        eprint!("\r\x1b[2K");
    }
    print(&report, args.json)
}

/// Prints the report (JSON or the summary) and says how to exit: 4 when the abort
/// guard stopped the run (or a merged shard), else 3 when a gate failed.
fn print(report: &Report, json: bool) -> Result<ExitCode> {
    let mut out = std::io::stdout();
    if json {
        let text = serde_json::to_string_pretty(&report.to_json()).context("writing the report")?;
        let _ = writeln!(out, "{text}");
    } else {
        let _ = write!(out, "{}", report.summary());
    }
    let aborted =
        report.aborted.is_some() || report.parts.iter().any(|part| part.aborted.is_some());
    Ok(if aborted {
        ExitCode::from(ABORTED)
    } else if !report.slo_passed() {
        ExitCode::from(SLO_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

/// One progress line on stderr: a bar when the run's length is known.
fn draw(progress: &Progress) {
    let counts = format!(
        "sent {} answered {} errors {} in {:.1} s",
        progress.sent,
        progress.answered,
        progress.errors,
        progress.elapsed.as_secs_f64()
    );
    let line = match progress.fraction() {
        Some(fraction) => {
            let width = 30;
            let filled = ((fraction.clamp(0.0, 1.0)) * width as f64).round() as usize;
            format!(
                "[{}{}] {:>3.0}%  {counts}",
                "#".repeat(filled),
                " ".repeat(width - filled),
                fraction * 100.0
            )
        }
        None => counts,
    };
    let mut err = std::io::stderr();
    let _ = write!(err, "\r\x1b[2K{line}");
    let _ = err.flush();
}
