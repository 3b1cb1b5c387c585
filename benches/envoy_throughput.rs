//! Envoy throughput with the c4mesh filter, against the same Envoy with a no-op
//! proxy-wasm module and without Wasm (SPEC 2.6), measured side by side.
//!
//! Usage: `envoy-throughput UPSTREAM_ADDR [ROUNDS] [SECONDS]` with a fast upstream (nginx)
//! already listening. Three Envoys with one worker each, pinned to CPU 0, route
//! `/api/v1/products` to the upstream; `wrk` (pinned to CPU 1) loads each in turn,
//! round after round, so noise falls on all three alike. Prints requests per second,
//! Envoy CPU time per request, and the ratios. With `C4MESH_BENCH_VARIANT=PATH` a fourth
//! Envoy runs another build of a module (empty configuration), to compare a change side
//! by side with the filter it changes.

use anyhow::{bail, Context, Result};
use c4mesh_mesh::envoy::{EnvoyConfig, ServiceRoute};
use c4mesh_mesh::{Envoy, Wasm};
use std::net::SocketAddr;
use std::process::Command;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(upstream) = args.get(1) else {
        bail!("usage: envoy-throughput UPSTREAM_ADDR [ROUNDS] [SECONDS]");
    };
    let upstream: SocketAddr = upstream
        .parse()
        .context("UPSTREAM_ADDR: expected ip:port")?;
    let rounds: usize = args.get(2).map_or(Ok(3), |s| s.parse()).context("ROUNDS")?;
    let seconds: u64 = args
        .get(3)
        .map_or(Ok(5), |s| s.parse())
        .context("SECONDS")?;
    let mut variants = vec![
        ("no wasm", Wasm::None),
        ("no-op module", Wasm::noop()?),
        ("c4mesh filter", Wasm::filter("")?),
    ];
    if let Some(path) = std::env::var_os("C4MESH_BENCH_VARIANT") {
        variants.push((
            "variant",
            Wasm::Module {
                path: path.into(),
                config: String::new(),
            },
        ));
    }
    let mut envoys = Vec::new();
    for (name, wasm) in variants {
        let envoy = Envoy::start(&EnvoyConfig {
            workers: 1,
            wasm,
            services: vec![ServiceRoute {
                name: "product-service".into(),
                prefix: "/api/v1/products".into(),
                hosts: vec![upstream],
            }],
            num_retries: 3,
            outlier_detection: None,
            routes: Vec::new(),
            sidecar: None,
            tls: None,
        })?;
        Command::new("taskset")
            .args(["-pc", "0", &envoy.pid().to_string()])
            .output()?;
        envoys.push((name, envoy));
    }
    let mut totals = vec![(0f64, 0f64); envoys.len()];
    for round in 1..=rounds {
        for (i, (name, envoy)) in envoys.iter().enumerate() {
            let cpu_before = cpu_seconds(envoy.pid())?;
            let (requests, rps) = wrk(&envoy.url(), seconds)?;
            let cpu = cpu_seconds(envoy.pid())? - cpu_before;
            println!(
                "round {round} {name:>14}: {rps:>9.0} req/s, {:>6.1} us Envoy CPU per request",
                cpu * 1e6 / requests
            );
            totals[i].0 += rps;
            totals[i].1 += cpu * 1e6 / requests;
        }
    }
    let mean = |i: usize| (totals[i].0 / rounds as f64, totals[i].1 / rounds as f64);
    let (plain, noop, filter) = (mean(0), mean(1), mean(2));
    println!("\nmean over {rounds} rounds of {seconds} s (wrk -t1 -c16, one Envoy worker):");
    println!(
        "  no wasm       {:>9.0} req/s  {:>6.1} us/request",
        plain.0, plain.1
    );
    println!(
        "  no-op module  {:>9.0} req/s  {:>6.1} us/request",
        noop.0, noop.1
    );
    println!(
        "  c4mesh filter {:>9.0} req/s  {:>6.1} us/request",
        filter.0, filter.1
    );
    println!(
        "  throughput filter / no-op module: {:.3}",
        filter.0 / noop.0
    );
    println!(
        "  throughput no-op module / no wasm: {:.3}",
        noop.0 / plain.0
    );
    println!(
        "  CPU per request no-op module / filter: {:.3}",
        noop.1 / filter.1
    );
    if totals.len() > 3 {
        let variant = mean(3);
        println!(
            "  variant       {:>9.0} req/s  {:>6.1} us/request",
            variant.0, variant.1
        );
        println!(
            "  throughput variant / no-op module: {:.3}",
            variant.0 / noop.0
        );
    }
    Ok(())
}

/// Runs wrk against the products route; returns (requests, requests per second).
fn wrk(url: &str, seconds: u64) -> Result<(f64, f64)> {
    let output = Command::new("taskset")
        .args(["-c", "1", "wrk", "-t1", "-c16", &format!("-d{seconds}s")])
        .args([
            "-H",
            "Host: api.c4ang.com",
            &format!("{url}/api/v1/products/1"),
        ])
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok());
    let rps = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse::<f64>().ok());
    match (requests, rps) {
        (Some(requests), Some(rps)) if !text.contains("Non-2xx") => Ok((requests, rps)),
        _ => bail!("unexpected wrk output:\n{text}"),
    }
}

/// User + system CPU seconds of a process so far.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
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
