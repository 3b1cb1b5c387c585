//! The filter's logic, natively (SPEC section 5): what every request pays for.
//!
//! `cargo bench -p c4mesh-benches --bench filter_core`

use c4mesh_filter_core::{path, Config, MemoryShared, Request, RouteTable, Verdict, Worker};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

fn route_matching(c: &mut Criterion) {
    let config = Config::defaults();
    let six = &config.table;
    c.bench_function("route match, 6 routes", |b| {
        b.iter(|| six.lookup(black_box(b"/api/v1/payments/42/refunds")))
    });
    let prefixes: Vec<String> = (0..1000).map(|i| format!("/svc{i}/v1")).collect();
    let thousand = RouteTable::new(prefixes.iter().map(String::as_str));
    c.bench_function("route match, 1000 routes", |b| {
        b.iter(|| thousand.lookup(black_box(b"/svc777/v1/items/42")))
    });
}

fn path_check(c: &mut Criterion) {
    c.bench_function("path check, clean path", |b| {
        b.iter(|| path::check(black_box(b"/api/v1/orders/42?expand=items")).is_ok())
    });
    c.bench_function("path check, encoded dot segment", |b| {
        b.iter(|| path::check(black_box(b"/api/v1/orders/%2e%2e/payments")).is_err())
    });
}

fn worker() -> (Worker, MemoryShared) {
    let config = Config::parse(b"").unwrap_or_else(|e| panic!("defaults: {e}"));
    let mut shared = MemoryShared::default();
    let mut worker = Worker::new(config, 1);
    worker.init_shared(&mut shared);
    (worker, shared)
}

fn budget_and_circuit(c: &mut Criterion) {
    let request = Request {
        method: b"GET",
        path: b"/api/v1/orders/42",
        authority: Some(b"api.c4ang.com"),
    };
    let (mut healthy, mut shared) = worker();
    let mut now = 0u64;
    c.bench_function("request: grant and settle, healthy upstream", |b| {
        b.iter(|| {
            now += 1;
            if let Verdict::Forward(ticket) = healthy.on_request(&request, now, &mut shared) {
                healthy.on_response(&ticket, 200, Some(1), None, now, &mut shared);
            }
        })
    });
    // Failures on alternating hosts below the threshold: every response updates the
    // shared health with compare-and-swap (the circuit's path), none opens it.
    let (mut failing, mut shared) = worker();
    let hosts: [&[u8]; 2] = [b"10.0.0.1:8080", b"10.0.0.2:8080"];
    let mut n = 0usize;
    c.bench_function("request: circuit update on a 5xx", |b| {
        b.iter(|| {
            now += 1;
            n += 1;
            if let Verdict::Forward(ticket) = failing.on_request(&request, now, &mut shared) {
                let status = if n.is_multiple_of(4) { 200 } else { 503 };
                failing.on_response(
                    &ticket,
                    status,
                    Some(1),
                    Some(hosts[n % 2]),
                    now,
                    &mut shared,
                );
            }
        })
    });
}

fn configuration(c: &mut Criterion) {
    c.bench_function("configuration parse, defaults", |b| {
        b.iter(|| Config::parse(black_box(b"")).is_ok())
    });
    let thousand = format!(
        "{{\"routes\": [{}]}}",
        (0..1000)
            .map(|i| format!(r#"{{"name": "r{i}", "prefix": "/svc{i}/v1", "service": "svc{i}"}}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    c.bench_function("configuration parse, 1000 routes", |b| {
        b.iter(|| Config::parse(black_box(thousand.as_bytes())).is_ok())
    });
}

criterion_group!(
    benches,
    route_matching,
    path_check,
    budget_and_circuit,
    configuration
);
criterion_main!(benches);
