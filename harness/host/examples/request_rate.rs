//! Request cycles per second through a module in the host, on one core, with the
//! default limits: the figure of SPEC section 5, and the program `callgrind` counts.
//!
//! ```sh
//! cargo run --release -p c4mesh-host --example request_rate -- MODULE.wasm [CYCLES] [PATH]
//! ```
//!
//! Each cycle is a whole stream: request headers, the upstream's 200, response headers,
//! `on_log`, `on_done`, `on_delete`. Instructions per cycle, repeatable on a noisy
//! machine: run it under `valgrind --tool=callgrind` with two cycle counts and divide
//! the difference of the totals by the difference of the counts (the start, compiling
//! the module, cancels out).

use c4mesh_host::{DownstreamRequest, Proxy, Response};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let wasm = args
        .next()
        .ok_or("usage: request_rate MODULE.wasm [CYCLES] [PATH]")?;
    let cycles: u32 = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(200_000);
    let path = args.next().unwrap_or_else(|| "/api/v1/orders/42".into());
    let mut proxy = Proxy::builder()
        .wasm_file(&wasm)
        .upstream(|_| Response::status(200))
        .start()?;
    let request = DownstreamRequest::new("GET", &path, "api.c4ang.com")
        .header("user-agent", "request_rate")
        .header("x-forwarded-proto", "http")
        .header("x-request-id", "2f1e2a36-5a7b-4c38-9b3e-0d6c1f3a9e11");
    let start = Instant::now();
    for _ in 0..cycles {
        let exchange = proxy.send(0, request.clone())?;
        if !exchange.finished {
            return Err(format!("a request did not finish: {exchange:?}").into());
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{wasm} {path}: {cycles} cycles in {elapsed:.2} s = {:.0} cycles/s, {:.2} us each",
        f64::from(cycles) / elapsed,
        elapsed * 1e6 / f64::from(cycles)
    );
    Ok(())
}
