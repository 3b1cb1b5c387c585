//! Several workers of one module: shared data with Envoy's CAS rules, shared queues
//! delivered to the registering VM, metrics per proxy.

use crate::support::probe_wasm;
use c4mesh_host::{CallOutcome, DownstreamRequest, Proxy, Response};
use std::time::Duration;

fn probe(workers: usize) -> Proxy {
    Proxy::builder()
        .wasm_file(probe_wasm())
        .config("{}")
        .clusters(["probe"])
        .workers(workers)
        .upstream(|_| Response::status(200))
        .http_calls(|_| CallOutcome::Response(Response::status(200)))
        .start()
        .expect("the probe starts")
}

#[test]
fn every_worker_starts_and_configures() {
    let proxy = probe(3);
    let starts = proxy
        .logs()
        .iter()
        .filter(|l| {
            l.message
                .starts_with("probe-start: on_configure returns true")
        })
        .map(|l| l.worker)
        .collect::<Vec<_>>();
    assert_eq!(starts, [0, 1, 2]);
}

#[test]
fn two_workers_share_data_with_cas() {
    let mut proxy = probe(2);
    // Worker 0 runs the probe's shared-data cases (set, CAS update, stale CAS refused).
    let first = proxy
        .send(
            0,
            DownstreamRequest::new("POST", "/probe/full", "h").body("hello body"),
        )
        .expect("worker 0");
    proxy.advance(Duration::from_millis(5)).expect("tick");
    assert!(proxy.exchange(first.id).expect("exchange").finished);
    let (value, cas) = proxy
        .shared_data("probe.k1")
        .expect("worker 0 wrote probe.k1");
    assert_eq!(value, b"four");

    // Another worker sees the same value and cas, and the same rules apply to it.
    assert!(
        !proxy.set_shared_data("probe.k1", b"stale", cas.wrapping_sub(1)),
        "a stale cas is refused"
    );
    assert!(
        proxy.set_shared_data("probe.k1", b"five", cas),
        "the current cas wins"
    );
    let (_, newer) = proxy.shared_data("probe.k1").expect("set");
    assert_ne!(newer, cas);

    // Worker 1 runs the same cases on the data worker 0 left: its first unconditional
    // set succeeds on an existing key, and its stale CAS is refused just the same.
    let second = proxy
        .send(
            1,
            DownstreamRequest::new("POST", "/probe/full", "h").body("hello body"),
        )
        .expect("worker 1");
    proxy.advance(Duration::from_millis(5)).expect("tick");
    assert!(proxy.exchange(second.id).expect("exchange").finished);
    let logs = proxy.logs();
    let outcome = |worker: usize, prefix: &str| {
        logs.iter()
            .filter(|l| l.worker == worker && l.message.starts_with(prefix))
            .map(|l| l.message.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        outcome(1, "probe: set_shared stale cas"),
        ["probe: set_shared stale cas -> 8"]
    );
    assert_eq!(
        outcome(1, "probe: get_shared missing"),
        ["probe: get_shared missing -> 1 null"]
    );
    assert_eq!(
        outcome(0, "probe: get_shared -> 0 \"four\""),
        outcome(1, "probe: get_shared -> 0 \"four\"")
    );
}

#[test]
fn queues_deliver_to_the_registering_worker_and_metrics_are_per_proxy() {
    let mut proxy = probe(2);
    for worker in [1, 0] {
        proxy
            .send(
                worker,
                DownstreamRequest::new("POST", "/probe/full", "h").body("hello body"),
            )
            .expect("send");
        proxy.advance(Duration::from_millis(5)).expect("tick");
    }
    // Each request's enqueue reached the root context of the worker that registered
    // the queue last, which is the one sending it.
    let ready: Vec<usize> = proxy
        .logs()
        .iter()
        .filter(|l| l.message.starts_with("probe: root on_queue_ready"))
        .map(|l| l.worker)
        .collect();
    assert_eq!(ready, [1, 0]);
    // Both workers incremented the same counter by 1 and recorded 5.
    assert_eq!(proxy.metric_value("probe_counter"), 12);
}
