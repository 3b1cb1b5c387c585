//! The c4mesh filter in the harness, on virtual time: the behaviour its Envoy tests
//! check (SPEC 2.2-2.4), without sockets or sleeps.

use crate::support::filter_wasm;
use c4mesh_host::{DownstreamRequest, Exchange, Proxy, Response};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

const SERVICES: [(&str, &str); 6] = [
    ("customers", "/api/v1/customers"),
    ("orders", "/api/v1/orders"),
    ("products", "/api/v1/products"),
    ("payments", "/api/v1/payments"),
    ("recommendations", "/api/v1/recommendations"),
    ("saga", "/api/v1/saga"),
];

/// The filter with `config`, `workers` workers, and an upstream answering the status
/// in the returned cell.
fn filter(config: &str, workers: usize) -> (Proxy, Arc<AtomicU16>) {
    let status = Arc::new(AtomicU16::new(200));
    let answer = Arc::clone(&status);
    let proxy = Proxy::builder()
        .wasm_file(filter_wasm())
        .config(config)
        .workers(workers)
        .upstream(move |_| Response::status(answer.load(Ordering::SeqCst)))
        .start()
        .expect("the filter starts");
    assert!(proxy.configured(), "{:?}", proxy.logs());
    (proxy, status)
}

fn get(proxy: &mut Proxy, worker: usize, path: &str) -> Exchange {
    proxy
        .send(
            worker,
            DownstreamRequest::new("GET", path, "api.c4ang.com")
                .header("x-forwarded-proto", "http"),
        )
        .expect("send")
}

fn local_reply(exchange: &Exchange, status: u16, reason: &str) {
    assert_eq!(exchange.status(), Some(status), "{exchange:?}");
    assert_eq!(exchange.header("x-c4-reason"), Some(reason), "{exchange:?}");
    assert_eq!(exchange.header("content-type"), Some("application/json"));
    assert!(
        exchange.upstream.is_none(),
        "a local reply never reaches the upstream"
    );
    let body: serde_json::Value = serde_json::from_slice(&exchange.body()).expect("JSON body");
    assert_eq!(body["error"], reason);
}

#[test]
fn routes_the_six_prefixes_and_sets_route_and_timeout() {
    let (mut proxy, _) = filter(r#"{"route_header": true}"#, 1);
    for (route, prefix) in SERVICES {
        let exchange = get(&mut proxy, 0, &format!("{prefix}/42?view=full"));
        assert_eq!(exchange.status(), Some(200), "{route}");
        assert_eq!(exchange.upstream_header("x-c4-route"), Some(route));
        assert_eq!(
            exchange.upstream_header("x-envoy-upstream-rq-timeout-ms"),
            Some("10000")
        );
        assert_eq!(
            exchange.upstream_header(":path"),
            Some(format!("{prefix}/42?view=full").as_str())
        );
    }
    assert!(proxy.faults().is_empty(), "{:?}", proxy.faults());
}

#[test]
fn local_replies_for_unknown_host_no_route_bad_path_and_method() {
    let config = r#"{"hosts": ["api.c4ang.com"], "routes": [
        {"name": "orders", "prefix": "/api/v1/orders", "service": "order-service", "methods": ["GET", "POST"]}]}"#;
    let (mut proxy, _) = filter(config, 1);
    let unknown = proxy
        .send(
            0,
            DownstreamRequest::new("GET", "/api/v1/orders", "evil.example"),
        )
        .expect("send");
    local_reply(&unknown, 404, "unknown_host");
    let cased = proxy
        .send(
            0,
            DownstreamRequest::new("GET", "/api/v1/orders/1", "API.C4ANG.COM:80"),
        )
        .expect("send");
    assert_eq!(cased.status(), Some(200), "case and port do not matter");
    local_reply(&get(&mut proxy, 0, "/api/v1/ordersX"), 404, "no_route");
    for bad in [
        "/api/v1/orders/../x",
        "/api/v1/orders/%2e%2e/x",
        "/api/v1/orders%2f..",
        "/api/v1/orders/%5c..",
    ] {
        local_reply(&get(&mut proxy, 0, bad), 400, "bad_path");
    }
    let delete = proxy
        .send(
            0,
            DownstreamRequest::new("DELETE", "/api/v1/orders/1", "api.c4ang.com"),
        )
        .expect("send");
    local_reply(&delete, 405, "method_not_allowed");
    assert_eq!(delete.header("allow"), Some("GET, POST"));
    // Metrics may lag by up to a second (flushed on the tick).
    proxy.advance(Duration::from_millis(1_100)).expect("tick");
    assert_eq!(proxy.metric_value("c4mesh.bad_path_total"), 4);
    assert_eq!(proxy.metric_value("c4mesh.unknown_host_total"), 1);
    assert_eq!(proxy.metric_value("c4mesh.no_route_total"), 1);
}

#[test]
fn clients_cannot_raise_their_own_retries() {
    let (mut proxy, _) = filter(r#"{"route_header": true}"#, 1);
    let request = DownstreamRequest::new("GET", "/api/v1/orders/1", "api.c4ang.com")
        .header("x-envoy-max-retries", "50")
        .header("x-envoy-upstream-rq-timeout-ms", "999999")
        .header("x-envoy-retry-on", "5xx")
        .header("x-c4-route", "forged");
    let exchange = proxy.send(0, request).expect("send");
    assert_eq!(exchange.upstream_header("x-c4-route"), Some("orders"));
    assert_eq!(
        exchange.upstream_header("x-envoy-upstream-rq-timeout-ms"),
        Some("10000")
    );
    assert_eq!(exchange.upstream_header("x-envoy-retry-on"), None);
    let granted: u32 = exchange
        .upstream_header("x-envoy-max-retries")
        .and_then(|v| v.parse().ok())
        .expect("the filter grants retries");
    assert!(granted <= 3, "at most the route's attempts, got {granted}");
}

#[test]
fn the_circuit_opens_fails_fast_and_probes_once_in_virtual_time() {
    let (mut proxy, status) = filter(r#"{"outlier": {"base_ejection": "4s"}}"#, 1);
    status.store(503, Ordering::SeqCst);
    for i in 0..5 {
        let exchange = get(&mut proxy, 0, "/api/v1/saga/1");
        assert_eq!(exchange.status(), Some(503), "request {i}");
        assert!(
            exchange.upstream.is_some(),
            "request {i} reached the service"
        );
    }
    let fast = get(&mut proxy, 0, "/api/v1/saga/1");
    local_reply(&fast, 503, "circuit_open");
    assert_eq!(fast.header("retry-after"), Some("4"));
    let other = get(&mut proxy, 0, "/api/v1/orders/1");
    assert!(
        other.upstream.is_some(),
        "other routes still reach their service"
    );

    // Half-open after 4 s: one probe at a time. The test holds the probe's answer
    // while a second request fails fast.
    proxy.advance(Duration::from_secs(4)).expect("time");
    proxy.clear_upstream();
    let saga = || DownstreamRequest::new("GET", "/api/v1/saga/1", "api.c4ang.com").headers;
    let probe = proxy.open_stream(0).expect("stream");
    proxy.request_headers(probe, saga(), true).expect("probe");
    assert!(
        proxy.stream(probe).expect("probe").upstream_complete(),
        "the probe is admitted"
    );
    let second = proxy.open_stream(0).expect("stream");
    proxy.request_headers(second, saga(), true).expect("second");
    local_reply(
        &proxy.exchange(second).expect("second"),
        503,
        "circuit_open",
    );
    proxy
        .respond(probe, Response::status(200))
        .expect("the service recovered");
    assert_eq!(proxy.exchange(probe).expect("probe").status(), Some(200));
    status.store(200, Ordering::SeqCst);
    let answer = Arc::clone(&status);
    proxy.set_upstream(move |_| Response::status(answer.load(Ordering::SeqCst)));
    for _ in 0..3 {
        assert_eq!(
            get(&mut proxy, 0, "/api/v1/saga/1").status(),
            Some(200),
            "closed: requests reach the service"
        );
    }
    proxy.advance(Duration::from_millis(1_100)).expect("tick");
    assert_eq!(
        proxy.metric_value("c4mesh.route.saga.circuit_opened_total"),
        1
    );
    assert_eq!(proxy.metric_value("c4mesh.route.saga.fail_fast_total"), 2);
}

#[test]
fn two_workers_share_the_circuit() {
    let (mut proxy, status) = filter(r#"{"outlier": {"base_ejection": "30s"}}"#, 2);
    status.store(503, Ordering::SeqCst);
    for (i, worker) in [0, 1, 0, 1, 0].into_iter().enumerate() {
        let exchange = get(&mut proxy, worker, "/api/v1/payments/1");
        assert!(
            exchange.upstream.is_some(),
            "request {i} on worker {worker} reached the service"
        );
    }
    // Five consecutive 5xx across both workers open the route's circuit for both.
    for worker in [1, 0] {
        local_reply(
            &get(&mut proxy, worker, "/api/v1/payments/1"),
            503,
            "circuit_open",
        );
    }
    assert!(
        proxy
            .shared_data_keys()
            .iter()
            .any(|k| k.contains("payments")),
        "{:?}",
        proxy.shared_data_keys()
    );
}

#[test]
fn two_workers_share_one_retry_budget_during_an_outage() {
    // Over the window, retries stay within half the requests routed plus the reserve
    // (1/s x 10 s), whichever worker routes them (SPEC B1, B4, B5).
    // The circuit is off, or the outage would open it and stop the traffic.
    let config = r#"{"retry_budget": {"ratio": 0.5, "min_retries_per_second": 1, "window": "10s"},
                     "outlier": {"consecutive_5xx": 0}}"#;
    let (mut proxy, _) = filter(config, 2);
    proxy.clear_upstream();
    const N: u32 = 40;
    let mut used = 0u32;
    for i in 0..N {
        let id = proxy.open_stream((i % 2) as usize).expect("stream");
        let request = DownstreamRequest::new("GET", "/api/v1/products/1", "api.c4ang.com").headers;
        proxy.request_headers(id, request, true).expect("headers");
        let granted: u32 = proxy
            .stream(id)
            .and_then(|s| {
                s.upstream_headers()
                    .and_then(|h| h.get_str("x-envoy-max-retries"))
                    .and_then(|v| v.parse().ok())
            })
            .expect("x-envoy-max-retries");
        // The router used every retry it was given: all attempts failed.
        proxy
            .set_stream_property(id, "upstream.request_attempt_count", u64::from(granted + 1))
            .expect("property");
        proxy.respond(id, Response::status(503)).expect("answer");
        used += granted;
        proxy.advance(Duration::from_millis(100)).expect("time");
    }
    let bound = N / 2 + 10 + 3;
    assert!(
        used <= bound,
        "{used} retries for {N} requests, bound {bound}"
    );
    assert!(used > 0, "the budget grants some retries");
    assert!(proxy.faults().is_empty(), "{:?}", proxy.faults());
}
