//! The filter's cost in Envoy as instructions per request (SPEC 2.6, section 5): the
//! figure behind the throughput ratio of `envoy-throughput`, repeatable on a machine
//! whose timings swing with its load.
//!
//! Usage: `envoy-instructions UPSTREAM_ADDR [REQUESTS]` with a fast upstream (nginx)
//! listening, `c4mesh` built next to this binary, valgrind installed and `ENVOY_BIN`
//! naming the Envoy executable itself (not a script that starts it). Each Envoy (one
//! worker: without Wasm, with the no-op module, with the filter, and with
//! `C4MESH_BENCH_VARIANT=PATH` another build) runs under callgrind; after a warm-up its
//! counters are zeroed, `c4mesh replay` sends REQUESTS requests, and the counters are
//! dumped: Envoy's instructions over those requests alone, in every thread, divided by
//! their number.

use anyhow::{bail, Context, Result};
use c4mesh_benches::{modules, products_envoy, Replay};
use c4mesh_mesh::{Envoy, Wasm};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Requests before the counters are zeroed: V8 compiles the module lazily, and the
/// first requests through a connection pool pay for its setup.
const WARM_UP: u64 = 300;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(upstream) = args.get(1) else {
        bail!("usage: envoy-instructions UPSTREAM_ADDR [REQUESTS]");
    };
    let upstream: SocketAddr = upstream
        .parse()
        .context("UPSTREAM_ADDR: expected ip:port")?;
    let requests: u64 = args
        .get(2)
        .map_or(Ok(2000), |s| s.parse())
        .context("REQUESTS: expected a count")?;
    let replay = Replay::new()?;
    // Callgrind's output files, removed with the directory at the end.
    let scratch = tempfile::Builder::new()
        .prefix("c4mesh-envoy-instructions-")
        .tempdir()
        .context("a temporary directory for callgrind's output")?;
    let dir = scratch.path();
    println!("== Envoy instructions per request (callgrind, one worker, {requests} requests after {WARM_UP})");
    let mut figures = Vec::new();
    for (i, (name, wasm)) in modules()?.into_iter().enumerate() {
        let out = dir.join(format!("callgrind.{i}"));
        let per_request = measure(&replay, upstream, wasm, &out, requests)
            .with_context(|| format!("measuring Envoy with {name}"))?;
        println!("{name:>14}: {per_request:>9.0} instructions per request");
        figures.push((name, per_request));
    }
    let of = |wanted: &str| figures.iter().find(|(n, _)| *n == wanted).map(|(_, v)| *v);
    if let (Some(none), Some(noop), Some(filter)) =
        (of("no wasm"), of("no-op module"), of("c4mesh filter"))
    {
        println!(
            "  filter over the no-op module: {:.0} instructions per request",
            filter - noop
        );
        println!(
            "  no-op module over no wasm:    {:.0} instructions per request",
            noop - none
        );
        println!("  instructions no-op module / filter: {:.3}", noop / filter);
        if let Some(variant) = of("variant") {
            println!(
                "  instructions no-op module / variant: {:.3}",
                noop / variant
            );
            println!(
                "  variant over the filter: {:.0} instructions per request",
                variant - filter
            );
        }
    }
    Ok(())
}

/// One Envoy under callgrind: instructions per request over `requests` requests.
fn measure(
    replay: &Replay,
    upstream: SocketAddr,
    wasm: Wasm,
    out: &Path,
    requests: u64,
) -> Result<f64> {
    let wrapper = vec![
        "valgrind".to_owned(),
        "--tool=callgrind".to_owned(),
        // V8 writes and rewrites machine code at run time.
        "--smc-check=all-non-file".to_owned(),
        format!("--callgrind-out-file={}", out.display()),
    ];
    let envoy = Envoy::start_under(
        &products_envoy(upstream, wasm)?,
        &wrapper,
        Duration::from_secs(300),
    )?;
    let pid = envoy.pid().to_string();
    let url = envoy.url();
    let closed_loop = |count: u64| {
        let count = count.to_string();
        replay.run(
            &url,
            &["--concurrency", "4", "--timeout", "60s", "--count", &count],
            None,
        )
    };
    closed_loop(WARM_UP)?;
    callgrind_control(&["-z", &pid])?;
    closed_loop(requests)?;
    // The dump is numbered after the zeroing: `callgrind.N.1`.
    callgrind_control(&["-d", &pid])?;
    let dump = PathBuf::from(format!("{}.1", out.display()));
    let deadline = Instant::now() + Duration::from_secs(60);
    let total = loop {
        if let Some(total) = std::fs::read_to_string(&dump)
            .ok()
            .and_then(|text| summary(&text))
        {
            break total;
        }
        if Instant::now() > deadline {
            bail!("callgrind wrote no dump at {}", dump.display());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    drop(envoy);
    Ok(total as f64 / requests as f64)
}

/// The total of a callgrind dump (its `summary:` or `totals:` line).
fn summary(dump: &str) -> Option<u64> {
    dump.lines().find_map(|line| {
        let rest = line
            .strip_prefix("summary:")
            .or_else(|| line.strip_prefix("totals:"))?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

fn callgrind_control(args: &[&str]) -> Result<()> {
    let output = Command::new("callgrind_control")
        .args(args)
        .output()
        .context("running callgrind_control (valgrind installed?)")?;
    if !output.status.success() {
        bail!(
            "callgrind_control {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn reads_the_total_of_a_dump() {
        let dump = "events: Ir\nfl=(1) x\nfn=(1) f\n0 5\nsummary: 356867688\n";
        assert_eq!(summary(dump), Some(356_867_688));
        assert_eq!(summary("totals: 12\n"), Some(12));
        assert_eq!(summary("events: Ir\n"), None);
    }
}
