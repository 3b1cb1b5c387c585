//! A whole request cycle through a .wasm module in the harness host (SPEC section 5):
//! request headers, the upstream's 200, response headers, `on_log`, `on_done`,
//! `on_delete`; the c4mesh filter against the workspace's no-op module, so the ratio
//! is the filter's own cost in the host.
//!
//! `cargo bench -p c4mesh-benches --bench request_cycle`

use c4mesh_host::{DownstreamRequest, Proxy, Response};
use criterion::{criterion_group, criterion_main, Criterion};

fn cycle(c: &mut Criterion) {
    for guest in [c4mesh_guests::FILTER, c4mesh_guests::NOOP] {
        let module = guest.name();
        let wasm = guest.file().unwrap_or_else(|e| panic!("{module}: {e}"));
        let mut proxy = Proxy::builder()
            .wasm_file(&wasm)
            .upstream(|_| Response::status(200))
            .start()
            .unwrap_or_else(|e| panic!("starting {module}: {e}"));
        let request = DownstreamRequest::new("GET", "/api/v1/orders/42", "api.c4ang.com")
            .header("user-agent", "criterion")
            .header("x-request-id", "2f1e2a36-5a7b-4c38-9b3e-0d6c1f3a9e11");
        c.bench_function(&format!("request cycle, {module}"), |b| {
            b.iter(|| {
                let exchange = proxy
                    .send(0, request.clone())
                    .unwrap_or_else(|e| panic!("{module}: {e}"));
                assert!(exchange.finished, "{module}: the request did not finish");
            })
        });
    }
}

criterion_group!(benches, cycle);
criterion_main!(benches);
