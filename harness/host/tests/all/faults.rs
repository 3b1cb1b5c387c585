//! A guest that loops forever, traps or runs out of memory is reported with the
//! callback's name; the harness and the streams of other workers go on.

use crate::support::{lines, wat_proxy, FAULT_GUEST};
use c4mesh_host::{DownstreamRequest, FailurePolicy, FaultKind, Limits, Response};
use std::time::{Duration, Instant};

fn request(fault: Option<&str>) -> DownstreamRequest {
    let request = DownstreamRequest::get("/x");
    match fault {
        Some(f) => request.header("x-fault", f),
        None => request,
    }
}

/// Small limits, so that faults come fast: 16 MiB of memory, 200 ms per callback.
const LIMITS: Limits = Limits {
    memory_bytes: 16 << 20,
    time_per_callback: Some(Duration::from_millis(200)),
    fuel_per_callback: None,
};

fn proxy(policy: FailurePolicy) -> c4mesh_host::Proxy {
    proxy_with(policy, LIMITS)
}

fn proxy_with(policy: FailurePolicy, limits: Limits) -> c4mesh_host::Proxy {
    wat_proxy(FAULT_GUEST)
        .workers(2)
        .failure_policy(policy)
        .limits(limits)
        .upstream(|_| Response::status(200))
        .start()
        .expect("the fault guest starts")
}

#[test]
fn unknown_imports_answer_unimplemented() {
    let proxy = proxy(FailurePolicy::FailClosed);
    assert_eq!(
        proxy.unimplemented_imports(),
        ["env::proxy_from_the_future"]
    );
}

#[test]
fn a_looping_guest_is_reported_and_other_workers_go_on() {
    let mut proxy = proxy(FailurePolicy::FailClosed);
    let looped = proxy
        .send(0, request(Some("loop")))
        .expect("the harness goes on");
    assert_eq!(
        looped.status(),
        Some(503),
        "Envoy fails the stream of a failed VM"
    );
    let fault = &proxy.faults()[0];
    assert_eq!(fault.callback, "proxy_on_request_headers");
    assert_eq!(fault.kind, FaultKind::Deadline);
    assert_eq!(fault.worker, 0);
    assert!(
        fault.to_string().contains("proxy_on_request_headers"),
        "{fault}"
    );

    let other = proxy.send(1, request(None)).expect("worker 1");
    assert_eq!(other.status(), Some(200), "the other worker is unaffected");
    assert_eq!(lines(&proxy.logs()), ["info ok"]);
    let again = proxy.send(0, request(None)).expect("worker 0 again");
    assert_eq!(
        again.status(),
        Some(503),
        "fail-closed: the failed VM stays failed"
    );
    assert_eq!(proxy.faults().len(), 1);
}

#[test]
fn the_default_limits_stop_a_looping_guest_within_its_deadline() {
    let mut proxy = proxy_with(FailurePolicy::FailClosed, Limits::default());
    let started = Instant::now();
    let looped = proxy
        .send(0, request(Some("loop")))
        .expect("the harness goes on");
    let took = started.elapsed();
    assert_eq!(looped.status(), Some(503));
    assert_eq!(proxy.faults()[0].kind, FaultKind::Deadline);
    let deadline = Limits::default().time_per_callback.unwrap_or_default();
    assert!(
        took >= deadline && took < deadline * 3,
        "stopped after {took:?}, deadline {deadline:?}"
    );
}

#[test]
fn fuel_stops_a_looping_guest_after_a_count_of_instructions() {
    let mut proxy = proxy_with(
        FailurePolicy::FailClosed,
        Limits {
            time_per_callback: None,
            fuel_per_callback: Some(10_000_000),
            ..LIMITS
        },
    );
    proxy
        .send(0, request(Some("loop")))
        .expect("the harness goes on");
    assert_eq!(proxy.faults()[0].kind, FaultKind::OutOfFuel);
    let other = proxy.send(1, request(None)).expect("worker 1");
    assert_eq!(
        other.status(),
        Some(200),
        "metering does not change the rest"
    );
}

#[test]
fn a_trapping_guest_is_reported_and_reload_gives_a_fresh_vm() {
    let mut proxy = proxy(FailurePolicy::Reload);
    let trapped = proxy
        .send(0, request(Some("trap")))
        .expect("the harness goes on");
    assert_eq!(trapped.status(), Some(503));
    let fault = &proxy.faults()[0];
    assert_eq!(
        (fault.callback, &fault.kind),
        ("proxy_on_request_headers", &FaultKind::Trap)
    );
    assert!(fault.message.contains("unreachable"), "{}", fault.message);
    let next = proxy.send(0, request(None)).expect("a fresh VM");
    assert_eq!(next.status(), Some(200));
    assert!(!proxy.failed(0));
}

#[test]
fn fail_open_lets_streams_pass() {
    let mut proxy = proxy(FailurePolicy::FailOpen);
    let trapped = proxy
        .send(0, request(Some("trap")))
        .expect("the harness goes on");
    assert_eq!(
        trapped.status(),
        Some(200),
        "fail-open: as if the filter were not there"
    );
    assert_eq!(proxy.faults().len(), 1);
}

#[test]
fn the_memory_limit_is_reported() {
    let mut proxy = proxy(FailurePolicy::FailClosed);
    let grown = proxy
        .send(0, request(Some("memory")))
        .expect("the harness goes on");
    assert_eq!(grown.status(), Some(503));
    assert_eq!(proxy.faults()[0].kind, FaultKind::MemoryLimit);
}
