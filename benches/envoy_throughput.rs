//! The filter's cost in Envoy (SPEC 2.6, section 5): the same upstream behind Envoy
//! without Wasm, Envoy with a no-op proxy-wasm module and Envoy with the c4mesh filter,
//! measured side by side with the load from `c4mesh replay`.
//!
//! Usage: `envoy-throughput UPSTREAM_ADDR [ROUNDS] [SECONDS]` with a fast upstream
//! (nginx) already listening and `c4mesh` built next to this binary. The Envoys have
//! one worker each, pinned to CPU 0, and route `/api/v1/products` to the upstream; the
//! load runs on CPU 1. Each round loads every Envoy in turn, so the machine's noise
//! falls on all of them alike, and each ratio is taken within a round: the figure is
//! the median of the rounds' ratios, with their spread.
//!
//! - Saturation: closed loop, 16 connections: requests per second and Envoy CPU time
//!   per request.
//! - Latency: open loop at half the no-op module's saturation rate: p99 from the
//!   intended send time.
//!
//! With `C4MESH_BENCH_VARIANT=PATH` a fourth Envoy runs another build of a module
//! (empty configuration), to compare a change side by side with the filter it changes.

use anyhow::{bail, Context, Result};
use c4mesh_benches::{modules, products_envoy, Replay};
use c4mesh_mesh::Envoy;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

/// Connections of the closed loop (saturation) and of the open loop's pool.
const CONNECTIONS: &str = "16";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(upstream) = args.get(1) else {
        bail!("usage: envoy-throughput UPSTREAM_ADDR [ROUNDS] [SECONDS]");
    };
    let upstream: SocketAddr = upstream
        .parse()
        .context("UPSTREAM_ADDR: expected ip:port")?;
    let rounds: usize = args.get(2).map_or(Ok(5), |s| s.parse()).context("ROUNDS")?;
    let seconds: u64 = args
        .get(3)
        .map_or(Ok(5), |s| s.parse())
        .context("SECONDS")?;
    let load = Load::new(seconds)?;

    let mut envoys = Vec::new();
    for (name, wasm) in modules()? {
        let envoy = Envoy::start(&products_envoy(upstream, wasm)?)?;
        Command::new("taskset")
            .args(["-pc", "0", &envoy.pid().to_string()])
            .output()?;
        envoys.push((name, envoy));
    }

    println!(
        "== saturation: closed loop, {CONNECTIONS} connections, {rounds} rounds of {seconds} s"
    );
    // rates[round][variant], cpu[round][variant]
    let mut rates = Vec::new();
    let mut cpu = Vec::new();
    for round in 1..=rounds {
        let (mut round_rates, mut round_cpu) = (Vec::new(), Vec::new());
        for (name, envoy) in &envoys {
            let before = cpu_seconds(envoy.pid())?;
            let run = load.run(&envoy.url(), &["--concurrency", CONNECTIONS])?;
            let us = (cpu_seconds(envoy.pid())? - before) * 1e6 / run.requests;
            println!(
                "round {round} {name:>14}: {:>9.0} req/s, {us:>6.1} us Envoy CPU per request",
                run.rate
            );
            round_rates.push(run.rate);
            round_cpu.push(us);
        }
        rates.push(round_rates);
        cpu.push(round_cpu);
    }

    let rate = (median(&column(&rates, 1)) / 2.0).round();
    println!("\n== latency: open loop at {rate} req/s (half the no-op module's saturation)");
    let mut p99s = Vec::new();
    for round in 1..=rounds {
        let mut round_p99 = Vec::new();
        for (name, envoy) in &envoys {
            let run = load.run(
                &envoy.url(),
                &["--rate", &rate.to_string(), "--connections", CONNECTIONS],
            )?;
            println!(
                "round {round} {name:>14}: p99 {:>6.2} ms (achieved {:.0} req/s)",
                run.p99_ms, run.rate
            );
            round_p99.push(run.p99_ms);
        }
        p99s.push(round_p99);
    }

    println!("\nmedians over {rounds} rounds (spread: lowest..highest round):");
    for (i, (name, _)) in envoys.iter().enumerate() {
        println!(
            "  {name:<14} {:>9.0} req/s  {:>6.1} us/request  p99 {:>6.2} ms",
            median(&column(&rates, i)),
            median(&column(&cpu, i)),
            median(&column(&p99s, i)),
        );
    }
    let ratio = |label: &str, rows: &[Vec<f64>], a: usize, b: usize| {
        let ratios: Vec<f64> = rows.iter().map(|r| r[a] / r[b]).collect();
        let (low, high) = spread(&ratios);
        println!(
            "  {label:<40} {:.3}  ({low:.3}..{high:.3})",
            median(&ratios)
        );
    };
    ratio("throughput filter / no-op module", &rates, 2, 1);
    ratio("throughput no-op module / no wasm", &rates, 1, 0);
    ratio("throughput filter / no wasm", &rates, 2, 0);
    ratio("CPU per request no-op module / filter", &cpu, 1, 2);
    ratio("p99 filter / no-op module", &p99s, 2, 1);
    if envoys.len() > 3 {
        ratio("throughput variant / no-op module", &rates, 3, 1);
        ratio("throughput variant / filter", &rates, 3, 2);
        ratio("p99 variant / no-op module", &p99s, 3, 1);
    }
    Ok(())
}

/// `c4mesh replay` against one Envoy for a fixed time, pinned to CPU 1.
struct Load {
    replay: Replay,
    seconds: u64,
}

/// What one replay run measured.
struct Run {
    requests: f64,
    rate: f64,
    p99_ms: f64,
}

impl Load {
    fn new(seconds: u64) -> Result<Load> {
        Ok(Load {
            replay: Replay::new()?,
            seconds,
        })
    }

    fn run(&self, url: &str, schedule: &[&str]) -> Result<Run> {
        let duration = format!("{}s", self.seconds);
        let mut args = vec!["--duration", &duration];
        args.extend_from_slice(schedule);
        let report = self.replay.run(url, &args, Some(1))?;
        let number = |pointer: &str| report.pointer(pointer).and_then(serde_json::Value::as_f64);
        let (Some(requests), Some(rate), Some(p99_ms)) = (
            number("/requests"),
            number("/achieved_rate"),
            number("/latency_ms/p99"),
        ) else {
            bail!("unexpected replay report: {report}");
        };
        Ok(Run {
            requests,
            rate,
            p99_ms,
        })
    }
}

fn column(rows: &[Vec<f64>], i: usize) -> Vec<f64> {
    rows.iter().map(|r| r[i]).collect()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn spread(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// User + system CPU seconds of a process so far.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat"))?;
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11).and_then(|s| s.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    Ok(ticks / 100.0)
}
