//! Request cycles per second through a module in the harness, on one core.
//!
//! `cargo run --release -p c4mesh --example request_rate -- MODULE.wasm [REQUESTS] [PATH]`
//!
//! Each cycle is a whole stream: request headers, the upstream's 200, response headers,
//! `on_log`, `on_done`, `on_delete`. It runs with the default fuel metering and without,
//! since metering is what a per-callback deadline costs.

use c4mesh::{Limits, Proxy, Request, Response};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let wasm = args
        .next()
        .ok_or("usage: request_rate MODULE.wasm [REQUESTS] [PATH]")?;
    let requests: u32 = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(100_000);
    let path = args.next().unwrap_or_else(|| "/api/v1/orders/42".into());
    for (label, fuel) in [
        ("fuel metered", Limits::default().fuel_per_callback),
        ("unmetered", None),
    ] {
        let mut proxy = Proxy::builder()
            .wasm_file(&wasm)
            .limits(Limits {
                fuel_per_callback: fuel,
                ..Limits::default()
            })
            .upstream(|_| Response::status(200))
            .start()?;
        let request = Request::new("GET", &path, "api.c4ang.com")
            .header("user-agent", "request_rate")
            .header("x-forwarded-proto", "http")
            .header("x-request-id", "2f1e2a36-5a7b-4c38-9b3e-0d6c1f3a9e11");
        for _ in 0..1_000 {
            proxy.send(0, request.clone())?;
        }
        let start = Instant::now();
        for _ in 0..requests {
            let exchange = proxy.send(0, request.clone())?;
            if !exchange.finished {
                return Err(format!("a request did not finish: {exchange:?}").into());
            }
        }
        let elapsed = start.elapsed();
        println!(
            "{wasm} {path} ({label}): {requests} requests in {:.2} s = {:.0} requests/s, {:.1} us each",
            elapsed.as_secs_f64(),
            f64::from(requests) / elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1e6 / f64::from(requests)
        );
    }
    Ok(())
}
